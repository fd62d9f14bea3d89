"""Structures for density learning: extxyz files in, ``ase.Atoms`` lists out, and a built-in
generator of distorted water monomers by thermal sampling of the harmonic normal modes.

Positions in ångström (the xyz convention).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from densitylab.data import atomic_output
from densitylab.dft.molecule import check_geometry
from densitylab.errors import InvalidParameterError, require

HARTREE_PER_KELVIN = 3.166811563e-6
AMU_IN_ELECTRON_MASSES = 1822.888486
BOHR_IN_ANGSTROM = 0.529177210903


def read_structures(path: str | Path) -> list:
    """Every frame of an xyz/extxyz file as ``ase.Atoms``; a clear error if missing, empty or
    malformed."""
    import ase.io

    path = Path(path)
    require(path.is_file(), "structures", "an existing xyz/extxyz file", str(path))
    require(path.stat().st_size > 0, "structures", "a non-empty xyz/extxyz file", str(path))
    try:
        frames = ase.io.read(str(path), index=":", format="extxyz")
    except Exception as error:  # ase raises many types for malformed files
        raise InvalidParameterError(
            "structures", f"an extxyz file ({type(error).__name__}: {error})", str(path)
        ) from None
    require(len(frames) > 0, "structures", "an xyz file with at least one structure", str(path))
    for frame in frames:
        check_geometry(frame, "structures")
    return frames


def write_structures(frames: list, path: str | Path) -> Path:
    """Write ``frames`` as extxyz (atomically)."""
    import ase.io

    path = Path(path)
    with atomic_output(path) as temporary:
        ase.io.write(str(temporary), frames, format="extxyz")
    return path


def water_normal_modes(xc: str = "pbe", basis: str = "def2-svp"):
    """Equilibrium-like water (r = 0.9572 Å, ∠ = 104.52°) and its harmonic normal modes from a
    PySCF Hessian: (atoms, frequencies (3N,) hartree, mass-weighted modes (3N, 3N) columns).
    The six rigid-body modes have near-zero frequencies and are excluded by the sampler."""
    import ase
    from pyscf import dft, gto
    from pyscf.hessian import rks as rks_hessian

    angle = np.deg2rad(104.52)
    bond = 0.9572
    positions = np.array(
        [
            [0.0, 0.0, 0.0],
            [bond * np.sin(angle / 2), 0.0, bond * np.cos(angle / 2)],
            [-bond * np.sin(angle / 2), 0.0, bond * np.cos(angle / 2)],
        ]
    )
    atoms = ase.Atoms("OH2", positions=positions)
    mol = gto.M(atom=[("O", positions[0]), ("H", positions[1]), ("H", positions[2])], basis=basis, verbose=0)
    mf = dft.RKS(mol, xc=xc)
    mf.conv_tol = 1e-11
    mf.kernel()
    hessian = rks_hessian.Hessian(mf).kernel()  # (N, N, 3, 3), hartree / bohr²
    natoms = len(atoms)
    cartesian = hessian.transpose(0, 2, 1, 3).reshape(3 * natoms, 3 * natoms)
    masses = np.repeat(atoms.get_masses() * AMU_IN_ELECTRON_MASSES, 3)
    weighted = cartesian / np.sqrt(np.outer(masses, masses))
    eigenvalues, modes = np.linalg.eigh(0.5 * (weighted + weighted.T))
    # eigenvectors are defined up to sign: fix it (largest component positive) so that the same
    # seed gives the same structures on every run and machine
    largest = np.argmax(np.abs(modes), axis=0)
    modes = modes * np.sign(modes[largest, np.arange(modes.shape[1])])
    frequencies = np.sqrt(np.abs(eigenvalues)) * np.sign(eigenvalues)
    return atoms, frequencies, modes


def sample_normal_modes(
    atoms, frequencies: np.ndarray, modes: np.ndarray, count: int, temperature: float, seed: int
) -> list:
    """``count`` structures displaced along the vibrational modes with the harmonic quantum
    (Wigner) distribution at ``temperature`` (K): q_k ~ N(0, coth(ω_k/2kT)/(2ω_k)) in
    mass-weighted coordinates, then a uniformly random rotation of the whole molecule."""
    from scipy.spatial.transform import Rotation

    require(isinstance(count, int) and count >= 1, "count", "a positive integer", count)
    require(temperature >= 0, "temperature", "a non-negative temperature in K", temperature)
    rng = np.random.default_rng(seed)
    vibrational = frequencies > 1e-4
    omega = frequencies[vibrational]
    thermal = (
        np.ones_like(omega)
        if temperature == 0
        else 1.0 / np.tanh(omega / (2 * HARTREE_PER_KELVIN * temperature))
    )
    spread = np.sqrt(thermal / (2 * omega))
    masses = np.repeat(atoms.get_masses() * AMU_IN_ELECTRON_MASSES, 3)
    rotations = Rotation.random(count, random_state=rng.integers(2**31))
    frames = []
    for index in range(count):
        q = rng.normal(size=omega.size) * spread
        displacement_bohr = (modes[:, vibrational] @ q) / np.sqrt(masses)
        positions = atoms.get_positions() + displacement_bohr.reshape(-1, 3) * BOHR_IN_ANGSTROM
        positions -= positions.mean(axis=0)
        frame = atoms.copy()
        # rounded to 1e-8 Å: far below any physical scale, and stable against last-digit noise
        frame.set_positions(np.round(rotations[index].apply(positions), 8))
        frames.append(frame)
    return frames


def water_monomers(count: int, seed: int = 0, temperature: float = 300.0) -> list:
    """``count`` thermally distorted, randomly oriented water molecules (see
    :func:`sample_normal_modes`; modes from PBE/def2-SVP)."""
    atoms, frequencies, modes = water_normal_modes()
    return sample_normal_modes(atoms, frequencies, modes, count, temperature, seed)


QM9_HEAVY = ("C", "N", "O", "F")


def parse_qm9_rows(lines) -> list[tuple[str, list[str], np.ndarray]]:
    """(name, symbols, positions Å) from the rows of a qm9pack CSV file (header included)."""
    import csv

    reader = csv.DictReader(lines)
    rows = []
    for row in reader:
        symbols = [item.strip().strip("'\"") for item in row["Elements"].strip("[]").split(",")]
        values = np.array([float(v) for v in row["XYZ_Ang"].replace("[", " ").replace("]", " ").split(",")])
        require(
            values.size == 3 * len(symbols),
            "structures",
            "QM9 rows with 3 coordinates per atom",
            row["XYZ_file"],
        )
        rows.append((row["XYZ_file"], symbols, values.reshape(len(symbols), 3)))
    return rows


def qm9_structures(
    heavy_atoms: int, count: int, seed: int = 0, path: str | Path | None = None, up_to: bool = False
) -> list:
    """``count`` QM9 molecules with exactly ``heavy_atoms`` heavy atoms (C, N, O, F), or with
    at most that many if ``up_to`` (then every file is read and the molecules come in random
    order), drawn at random (``seed``) from the geometries shipped by the ``qm9pack`` package (or
    the qm9pack-format CSV files in ``path``). The QM9 name is kept in ``atoms.info['name']``."""
    import ase

    if path is None:
        try:
            from importlib.resources import files

            folder = files("qm9pack") / "data"
        except ModuleNotFoundError:
            raise InvalidParameterError(
                "qm9", "the qm9pack package (pip install 'densitylab[qm9]')", "not installed"
            ) from None
        sources = [folder / f"qm9_part{part}.csv" for part in (1, 2, 3)]
    else:
        sources = sorted(Path(path).glob("*.csv"))
        require(len(sources) > 0, "qm9", "a folder of qm9pack-format CSV files", str(path))
    require(
        isinstance(heavy_atoms, int) and heavy_atoms >= 1, "heavy_atoms", "a positive integer", heavy_atoms
    )
    candidates = []
    for source in sources:
        with source.open() as handle:
            for name, symbols, positions in parse_qm9_rows(handle):
                heavy = sum(symbol in QM9_HEAVY for symbol in symbols)
                if heavy == heavy_atoms or (up_to and heavy <= heavy_atoms):
                    candidates.append((name, symbols, positions))
        if not up_to and len(candidates) >= 20 * count:
            break
    size = f"{'up to ' if up_to else ''}{heavy_atoms} heavy atoms"
    require(candidates, "heavy_atoms", f"a size of the files' molecules (none has {size}; QM9's have 1 to 9)")
    require(
        len(candidates) >= count,
        "count",
        f"at most {len(candidates)} molecules with {size} in the files read",
        count,
    )
    chosen = np.random.default_rng(seed).choice(len(candidates), size=count, replace=False)
    frames = []
    for index in chosen if up_to else sorted(chosen):
        name, symbols, positions = candidates[index]
        frame = ase.Atoms(symbols=symbols, positions=positions)
        frame.info["name"] = name
        frames.append(frame)
    return frames
