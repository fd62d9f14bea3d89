"""Reference densities: PySCF Kohn–Sham DFT per structure, then a density fit of the converged
density matrix into an auxiliary basis, stored in one HDF5 file.

For a density matrix D (AO basis) the fitted density ρ̃ = Σ_P c_P φ_P minimises the error in
a metric: overlap, c = S⁻¹ (P|ρ)_S with S_PQ = ∫φ_P φ_Q and (P|ρ)_S = Σ_μν D_μν ∫φ_P χ_μ χ_ν;
or Coulomb, c = J⁻¹ (P|ρ) with J the 2-centre and (P|ρ) the 3-centre Coulomb integrals. The
auxiliary basis is def2-universal-jkfit by default, or an even-tempered basis (PySCF's
``aug_etb``, β = 1.6), which lowers the fitting floor.

Auxiliary functions are reordered to real spherical harmonics with m = −l … l for every l
(PySCF orders p functions x, y, z, i.e. m = +1, −1, 0), the order featomic uses.

Generation runs one task per chunk of structures through :func:`densitylab.parallel.run_resumable`
(Dask when workers > 1 or a scheduler is given), writes each finished chunk atomically and
resumes from them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np

from densitylab.data import (
    PartsStore,
    atomic_output,
    refuse_mismatch,
    require_kind,
    stored_parameters,
    write_attributes,
)
from densitylab.density.basis import auxiliary_integrals, featomic_order, featomic_overlap, function_labels
from densitylab.dft.system import parse_xc
from densitylab.errors import InvalidParameterError, require
from densitylab.parallel import run_resumable

METRICS = ("overlap", "coulomb")


@dataclass(frozen=True)
class ReferenceSettings:
    """How reference densities are computed.

    Attributes:
        xc, basis: the Kohn–Sham reference (PBE/def2-SVP by default).
        auxbasis: ``def2-universal-jkfit`` (default), any PySCF auxiliary basis name, or ``etb``
            for an even-tempered basis with ratio ``etb_beta``.
        metric: ``overlap`` (default) or ``coulomb``, for the fit and the stored metric.
        grid_level: PySCF grid level of the reference SCF.
        chunk_size: structures per parallel task (and per resumable part).
    """

    xc: str = "pbe"
    basis: str = "def2-svp"
    auxbasis: str = "def2-universal-jkfit"
    etb_beta: float = 1.6
    metric: str = "overlap"
    grid_level: int = 3
    chunk_size: int = 10

    def __post_init__(self) -> None:
        require(self.metric in METRICS, "metric", "overlap or coulomb", self.metric)
        require(1.0 < self.etb_beta < np.inf, "etb_beta", "a finite ratio above 1", self.etb_beta)
        require(self.chunk_size >= 1, "chunk_size", "a positive integer", self.chunk_size)
        parse_xc(self.xc)  # names xc if libxc does not know it


def auxiliary_molecule(mol, settings: ReferenceSettings):
    """The auxiliary-basis ``Mole`` for ``mol``."""
    from pyscf import df

    auxbasis = df.aug_etb(mol, beta=settings.etb_beta) if settings.auxbasis == "etb" else settings.auxbasis
    try:
        return df.addons.make_auxmol(mol, auxbasis)
    except (RuntimeError, KeyError) as error:
        raise InvalidParameterError(
            "auxbasis", f"an auxiliary basis PySCF knows for every element ({error})", settings.auxbasis
        ) from None


def build_molecule(numbers: np.ndarray, positions: np.ndarray, basis: str):
    """A built PySCF ``Mole`` (positions in ångström); unknown species are a clear error."""
    from pyscf import gto

    try:
        return gto.M(
            atom=list(zip(numbers.tolist(), positions.tolist(), strict=True)), basis=basis, verbose=0
        )
    except RuntimeError as error:
        raise InvalidParameterError("basis", f"a basis for every species ({error})", basis) from None


def fit_density(mol, auxmol, density_matrix: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Fitted coefficients c (naux,) and the auxiliary overlap S (naux, naux), PySCF order."""
    from pyscf import df

    overlap = auxmol.intor("int1e_ovlp")
    if metric == "overlap":
        three_centre = df.incore.aux_e2(mol, auxmol, "int3c1e", aosym="s1")
        matrix = overlap
    else:
        three_centre = df.incore.aux_e2(mol, auxmol, "int3c2e", aosym="s1")
        matrix = auxmol.intor("int2c2e")
    nao = mol.nao_nr()
    projections = np.einsum("ijp,ij->p", three_centre.reshape(nao, nao, -1), density_matrix)
    coefficients = np.linalg.solve(matrix, projections)
    return coefficients, overlap


def molecular_grid(mol, level: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """PySCF's molecular integration grid of ``mol``: coordinates (ngrid, 3) bohr, weights (ngrid,)."""
    from pyscf import dft

    grids = dft.gen_grid.Grids(mol)
    grids.level = level
    grids.build(with_non0tab=False)
    return grids.coords, grids.weights


def auxiliary_overlap(numbers: np.ndarray, positions: np.ndarray, settings: ReferenceSettings) -> np.ndarray:
    """The auxiliary overlap S_PQ (naux, naux) of one structure (positions Å), featomic order.
    Recomputed from the geometry when needed (milliseconds) instead of stored: for QM9-sized
    molecules in the even-tempered basis it is 2,000² numbers, 32 MB per molecule."""
    return featomic_overlap(auxiliary_molecule(build_molecule(numbers, positions, settings.basis), settings))


def reference_for_structure(numbers: np.ndarray, positions: np.ndarray, settings: ReferenceSettings) -> dict:
    """SCF, density fit and metric of one structure; everything in featomic order.

    Returns coefficients (naux,), labels (naux, 4) = (atom, l, n, m),
    integrals (naux,) = ∫φ_P, energy and its components (hartree), and the SCF iterations.
    """
    from pyscf import dft

    mol = build_molecule(numbers, positions, settings.basis)
    mf = dft.RKS(mol, xc=settings.xc)
    mf.grids.level = settings.grid_level
    mf.conv_tol = 1e-10
    mf.kernel()
    require(bool(mf.converged), "structures", "structures whose reference SCF converges", positions.tolist())
    auxmol = auxiliary_molecule(mol, settings)
    density_matrix = mf.make_rdm1()
    coefficients, _ = fit_density(mol, auxmol, density_matrix, settings.metric)
    labels = function_labels(auxmol)
    order = featomic_order(labels)
    one_electron = float(mf.scf_summary.get("e1", np.nan))
    return {
        "density_matrix": density_matrix,
        "coefficients": coefficients[order],
        "labels": labels[order],
        "integrals": auxiliary_integrals(auxmol)[order],
        "energy": float(mf.e_tot),
        "energy_components": np.array(
            [
                one_electron,
                mf.scf_summary.get("coul", np.nan),
                mf.scf_summary.get("exc", np.nan),
                mf.energy_nuc(),
            ]
        ),
    }


ENERGY_COMPONENTS = ("one_electron", "coulomb", "xc", "nuclear_repulsion")


def _chunk_task(numbers_list, positions_list, settings, lattices=None) -> dict:
    """References for a chunk of structures, as flat arrays with offsets (one resumable part);
    cells (with ``lattices``, :class:`densitylab.density.periodic.CellSettings`) or molecules."""
    if lattices is not None:
        from densitylab.density.periodic import cell_reference

        results = [
            cell_reference(np.asarray(n), np.asarray(p), np.asarray(a), settings)
            for n, p, a in zip(numbers_list, positions_list, lattices, strict=True)
        ]
    else:
        results = [
            reference_for_structure(np.asarray(n), np.asarray(p), settings)
            for n, p in zip(numbers_list, positions_list, strict=True)
        ]
    sizes = np.array([len(r["coefficients"]) for r in results])
    nao = np.array([len(r["density_matrix"]) for r in results])
    return {
        "sizes": sizes,
        "nao": nao,
        "density_matrix": np.concatenate([r["density_matrix"].ravel() for r in results]),
        "coefficients": np.concatenate([r["coefficients"] for r in results]),
        "labels": np.concatenate([r["labels"] for r in results]),
        "integrals": np.concatenate([r["integrals"] for r in results]),
        "energy": np.array([r["energy"] for r in results]),
        "energy_components": np.stack([r["energy_components"] for r in results]),
    }


def is_periodic(settings) -> bool:
    """Whether ``settings`` are for cells (:class:`~densitylab.density.periodic.CellSettings`)."""
    from densitylab.density.periodic import CellSettings

    return isinstance(settings, CellSettings)


def check_periodicity(frames: list, periodic: bool) -> None:
    """Cells (a lattice, pbc on all three axes) for periodic settings or models, molecules
    (no pbc) for molecular ones; anything else is refused, naming the structure."""
    for index, frame in enumerate(frames):
        cell = bool(np.all(frame.pbc)) and frame.cell.rank == 3
        if periodic:
            expected = "cells (a lattice and pbc on all three axes) for periodic settings or models"
            require(cell, "structures", expected, f"structure {index}, which is not")
        else:
            expected = "molecules (no pbc) for molecular settings or models; cells need periodic ones"
            require(not np.any(frame.pbc), "structures", expected, f"structure {index}, a cell")


def _check_species(frames: list, settings: ReferenceSettings) -> None:
    """Refuse structures with species the basis or auxiliary basis do not cover, before any SCF."""
    from pyscf import gto

    species = sorted({symbol for frame in frames for symbol in frame.get_chemical_symbols()})
    for symbol in species:
        try:
            probe = gto.M(atom=f"{symbol} 0 0 0", basis=settings.basis, spin=None, verbose=0)
        except (RuntimeError, KeyError):
            raise InvalidParameterError(
                "basis",
                f"a basis set PySCF knows for every species of the structures ({symbol})",
                settings.basis,
            ) from None
        auxiliary_molecule(probe, settings)


def check_output(output: str | Path) -> Path:
    """The reference file name, refused unless it ends in .h5/.hdf5 (checked before any work)."""
    output = Path(output)
    require(output.suffix in (".h5", ".hdf5"), "output", "a file name ending in .h5", str(output))
    return output


def check_inputs(frames: list, output: str | Path, settings: ReferenceSettings) -> Path:
    """Everything :func:`generate_reference` refuses, checked without computing anything: the
    settings, the output name, and that basis and auxiliary basis cover every species."""
    output = check_output(output)
    require(len(frames) > 0, "structures", "at least one structure", 0)
    check_periodicity(frames, is_periodic(settings))
    if is_periodic(settings):
        from densitylab.density.periodic import check_cell_species, check_cells_memory

        check_cell_species(sorted({s for frame in frames for s in frame.get_chemical_symbols()}), settings)
        check_cells_memory(frames, settings)
    else:
        _check_species(frames, settings)
    return output


def generate_reference(
    frames: list,
    output: str | Path,
    settings: ReferenceSettings | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    seed: int | None = None,
    structures_copy: str | Path | None = None,
) -> dict:
    """Compute (or resume) references for ``frames`` (``ase.Atoms``) into ``output`` (.h5).

    ``structures_copy``: an extxyz file to write the frames to once every input has been
    checked (sampled structures are kept beside their references; a refused run writes nothing).

    The file holds, per structure s: ``numbers/s``, ``positions/s`` (Å), ``coefficients/s``,
    ``labels/s`` (atom, l, n, m), ``integrals/s``, ``density_matrix/s`` (the SCF
    density matrix, AO basis); and ``energy`` (S,),
    ``energy_components`` (S, 4) in hartree; the settings, version and seed as attributes.
    With :class:`~densitylab.density.periodic.CellSettings` the frames must be cells, and each
    also has ``lattice/s`` (3, 3) Å.
    """
    settings = settings or ReferenceSettings()
    output = check_inputs(frames, output, settings)
    if structures_copy is not None:
        from densitylab.density.structures import write_structures

        write_structures(frames, structures_copy)
    parameters = {
        **asdict(settings),
        "structures": len(frames),
        "geometry_hash": _geometry_hash(frames),
        "seed": seed,
    }
    periodic = is_periodic(settings)
    if periodic:  # only for cells: the parameters of molecular files (and their resumes) stay
        parameters["periodic"] = True
        # the SCF's grids: cells made before MultiGridNumInt2 (energies 1e-5 Ha apart) do not resume
        parameters["scf_grids"] = "multigrid2"
    started = time.perf_counter()
    if output.exists():
        refuse_mismatch(stored_parameters(output), parameters, output)
        return {"structures": len(frames), "computed_chunks": 0, "seconds": 0.0, "output": str(output)}
    chunks = [
        (index, start, min(start + settings.chunk_size, len(frames)))
        for index, start in enumerate(range(0, len(frames), settings.chunk_size))
    ]
    store = PartsStore(output, parameters)
    tasks = [
        (
            index,
            (
                [f.numbers for f in frames[a:b]],
                [f.positions for f in frames[a:b]],
                settings,
                [f.cell.array for f in frames[a:b]] if periodic else None,
            ),
            b - a,
        )
        for index, a, b in chunks
    ]
    computed, resumed = run_resumable(
        _chunk_task, tasks, store, len(frames), progress, workers=workers, scheduler=scheduler
    )
    _assemble(frames, chunks, store, output, parameters)
    return {
        "structures": len(frames),
        "computed_chunks": computed,
        "resumed_chunks": resumed,
        "seconds": time.perf_counter() - started,
        "output": str(output),
    }


def _geometry_hash(frames: list) -> str:
    import hashlib

    digest = hashlib.sha256()
    for frame in frames:
        digest.update(np.asarray(frame.numbers, dtype=np.int64).tobytes())
        digest.update(np.round(np.asarray(frame.positions, dtype=np.float64), 6).tobytes())
        if np.any(frame.pbc):  # molecules hash as before
            digest.update(np.round(np.asarray(frame.cell.array, dtype=np.float64), 6).tobytes())
    return digest.hexdigest()[:16]


def _assemble(frames, chunks, store: PartsStore, output: Path, parameters: dict) -> None:
    energies, components = [], []
    with atomic_output(output) as temporary, h5py.File(temporary, "w") as handle:
        write_attributes(handle, parameters, kind="density-reference")
        handle.attrs["energy_components"] = ",".join(ENERGY_COMPONENTS)
        for index, start, stop in chunks:
            part = store.load(index)
            offsets = np.concatenate([[0], np.cumsum(part["sizes"])])
            dm_offsets = np.concatenate([[0], np.cumsum(part["nao"] ** 2)])
            for local, structure in enumerate(range(start, stop)):
                a, b = offsets[local], offsets[local + 1]
                key = f"{structure:06d}"
                handle[f"numbers/{key}"] = np.asarray(frames[structure].numbers)
                handle[f"positions/{key}"] = np.asarray(frames[structure].positions)
                if parameters.get("periodic"):
                    handle[f"lattice/{key}"] = np.asarray(frames[structure].cell.array)
                handle[f"coefficients/{key}"] = part["coefficients"][a:b]
                handle[f"labels/{key}"] = part["labels"][a:b]
                handle[f"integrals/{key}"] = part["integrals"][a:b]
                nao = part["nao"][local]
                dm = part["density_matrix"][dm_offsets[local] : dm_offsets[local + 1]]
                handle[f"density_matrix/{key}"] = dm.reshape(nao, nao)
            energies.append(part["energy"])
            components.append(part["energy_components"])
        handle["energy"] = np.concatenate(energies)
        handle["energy_components"] = np.concatenate(components)
    store.remove()


class _Overlaps:
    """The auxiliary overlaps of a reference set, computed on access (not cached: a QM9 training
    set's would fill the memory); files from before they stopped being stored read theirs."""

    def __init__(self, settings, numbers: list, positions: list, lattices: list | None = None):
        self.settings, self.numbers, self.positions, self.lattices = settings, numbers, positions, lattices

    def __len__(self) -> int:
        return len(self.numbers)

    def __getitem__(self, index: int) -> np.ndarray:
        if self.lattices is not None:
            from densitylab.density.periodic import cell_overlap

            return cell_overlap(
                self.numbers[index], self.positions[index], self.lattices[index], self.settings
            )
        return auxiliary_overlap(self.numbers[index], self.positions[index], self.settings)


@dataclass(frozen=True, eq=False)
class ReferenceSet:
    """A reference file read into memory: per-structure lists and the settings (``overlap[s]``
    is computed from the geometry on access)."""

    settings: ReferenceSettings
    numbers: list
    positions: list
    coefficients: list
    overlap: list
    labels: list
    integrals: list
    density_matrices: list
    energy: np.ndarray
    energy_components: np.ndarray
    lattices: list | None = None  # cells: (3, 3) lattice vectors (rows, Å) per structure

    def __len__(self) -> int:
        return len(self.numbers)

    def electron_counts(self) -> np.ndarray:
        """Σ_P c_P ∫φ_P per structure."""
        return np.array([c @ i for c, i in zip(self.coefficients, self.integrals, strict=True)])

    def atoms(self, index: int):
        import ase

        if self.lattices is not None:
            cell = self.lattices[index]
            return ase.Atoms(
                numbers=self.numbers[index], positions=self.positions[index], cell=cell, pbc=True
            )
        return ase.Atoms(numbers=self.numbers[index], positions=self.positions[index])


def concatenate_references(sets: list) -> ReferenceSet:
    """One reference set from several made with the same settings (shards generated apart);
    its overlaps are computed on access."""
    require(len(sets) >= 1, "references", "at least one reference set", 0)
    settings = sets[0].settings
    for other in sets[1:]:
        require(
            other.settings == settings,
            "references",
            f"sets made with the same settings {settings}",
            other.settings,
        )

    def joined(name: str) -> list:
        return [item for each in sets for item in getattr(each, name)]

    numbers, positions = joined("numbers"), joined("positions")
    lattices = joined("lattices") if sets[0].lattices is not None else None
    return ReferenceSet(
        settings=settings,
        numbers=numbers,
        positions=positions,
        coefficients=joined("coefficients"),
        overlap=_Overlaps(settings, numbers, positions, lattices),
        labels=joined("labels"),
        integrals=joined("integrals"),
        density_matrices=joined("density_matrices"),
        energy=np.concatenate([each.energy for each in sets]),
        energy_components=np.concatenate([each.energy_components for each in sets]),
        lattices=lattices,
    )


def load_reference(path: str | Path) -> ReferenceSet:
    """Read a file written by :func:`generate_reference`."""
    path = Path(path)
    require_kind(path, "density-reference", "reference")
    with h5py.File(path, "r") as handle:
        require(
            "coefficients" in handle, "reference", "a file written by densitylab density reference", str(path)
        )
        parameters = stored_parameters(path)
        if parameters.get("periodic"):
            from densitylab.density.periodic import CellSettings as kind
        else:
            kind = ReferenceSettings
        settings = kind(**{k: parameters[k] for k in kind.__dataclass_fields__})
        keys = sorted(handle["coefficients"].keys())

        def each(group):
            return [handle[f"{group}/{key}"][()] for key in keys]

        numbers, positions = each("numbers"), each("positions")
        lattices = each("lattice") if "lattice" in handle else None

        return ReferenceSet(
            settings=settings,
            numbers=numbers,
            positions=positions,
            coefficients=each("coefficients"),
            overlap=each("overlap")
            if "overlap" in handle
            else _Overlaps(settings, numbers, positions, lattices),
            labels=each("labels"),
            integrals=each("integrals"),
            density_matrices=each("density_matrix"),
            energy=handle["energy"][()],
            energy_components=handle["energy_components"][()],
            lattices=lattices,
        )
