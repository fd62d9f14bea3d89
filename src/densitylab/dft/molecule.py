"""Molecules for direct-minimisation DFT: from an xyz/extxyz file, an ``ase.Atoms`` or a PySCF
``Mole``, with the basis, charge and spin (2S) checked before any integral is computed.

Coordinates in files and ``ase.Atoms`` are in ångström (the xyz convention); PySCF converts to
bohr internally. Every failure names the parameter at fault.
"""

from __future__ import annotations

from pathlib import Path

from densitylab.errors import InvalidParameterError, require


def _atoms_from_file(path: Path):
    """The first structure of an xyz/extxyz file as ``ase.Atoms``; a clear error if malformed."""
    import ase.io

    require(path.is_file(), "molecule", "an existing xyz/extxyz file", str(path))
    require(path.stat().st_size > 0, "molecule", "a non-empty xyz file", str(path))
    try:
        atoms = ase.io.read(str(path), index=0, format="extxyz")
    except Exception as error:  # ase raises many types for malformed files
        raise InvalidParameterError(
            "molecule",
            "an xyz file: a first line with the atom count, a comment line, then 'Symbol x y z' "
            f"lines in ångström ({type(error).__name__}: {error})",
            str(path),
        ) from None
    require(len(atoms) > 0, "molecule", "an xyz file with at least one atom", str(path))
    check_geometry(atoms)
    return atoms


MIN_DISTANCE = 0.1  # Å: closer nuclei are a mistake in the input, not chemistry


def check_geometry(atoms, parameter: str = "molecule") -> None:
    """Refuse non-finite coordinates and nuclei closer than ``MIN_DISTANCE`` (Å), naming the
    pair, before any integral is computed (PySCF would stop with "Ill geometry"). In a periodic
    cell the distances are minimum-image ones."""
    import numpy as np

    positions = np.asarray(atoms.get_positions(), dtype=float)
    require(bool(np.all(np.isfinite(positions))), parameter, "finite atomic coordinates (Å)")
    if len(positions) < 2:
        return
    if np.any(atoms.pbc):
        require(bool(np.all(np.isfinite(atoms.cell.array))), parameter, "a finite lattice (Å)")
        require(atoms.cell.rank == 3, parameter, "a lattice of three independent vectors when pbc is set")
        distances = atoms.get_all_distances(mic=True)
    else:
        distances = np.linalg.norm(positions[:, None, :] - positions[None, :, :], axis=-1)
    distances[np.diag_indices(len(positions))] = np.inf
    first, second = np.unravel_index(int(np.argmin(distances)), distances.shape)
    require(
        distances[first, second] >= MIN_DISTANCE,
        parameter,
        f"atoms at least {MIN_DISTANCE} Å apart; atoms {first} and {second} are "
        f"{distances[first, second]:.3g} Å apart",
    )


def _atom_string(atoms) -> str:
    """PySCF's ``atom`` string ('Symbol x y z; ...', ångström) from ``ase.Atoms``."""
    return "; ".join(
        f"{symbol} {x:.10f} {y:.10f} {z:.10f}"
        for symbol, (x, y, z) in zip(atoms.get_chemical_symbols(), atoms.get_positions(), strict=True)
    )


def load_molecule(molecule, basis: str = "6-31g", charge: int = 0, spin: int = 0):
    """A built PySCF ``Mole``.

    Args:
        molecule: a path to an xyz/extxyz file (ångström), an ``ase.Atoms`` or a PySCF ``Mole``
            (its own basis, charge and spin are replaced by the arguments here).
        basis: any basis-set name PySCF knows (e.g. ``6-31g``, ``def2-svp``, ``cc-pvdz``).
        charge: net charge in units of e.
        spin: 2S = N_alpha − N_beta; must have the parity of the electron count.

    Raises:
        InvalidParameterError: naming ``molecule``, ``basis``, ``charge`` or ``spin``.
    """
    import ase
    from pyscf import gto

    require(isinstance(charge, int), "charge", "an integer", charge)
    require(isinstance(spin, int) and spin >= 0, "spin", "a non-negative integer 2S", spin)
    if isinstance(molecule, gto.Mole):
        atom, unit = molecule._atom, "bohr"
    elif isinstance(molecule, ase.Atoms):
        require(len(molecule) > 0, "molecule", "an ase.Atoms with at least one atom", molecule)
        check_geometry(molecule)
        atom, unit = _atom_string(molecule), "angstrom"
    elif isinstance(molecule, str | Path):
        atom, unit = _atom_string(_atoms_from_file(Path(molecule))), "angstrom"
    else:
        raise InvalidParameterError("molecule", "an xyz path, an ase.Atoms or a pyscf Mole", molecule)

    mol = gto.Mole(atom=atom, unit=unit, basis=basis, charge=charge, spin=spin, verbose=0)
    symbols = [gto.mole._std_symbol(entry[0]) for entry in mol.format_atom(atom, unit=unit)]
    unknown = sorted({symbol for symbol in symbols if symbol not in gto.mole.elements.ELEMENTS[1:]})
    require(not unknown, "molecule", "known chemical element symbols", unknown)
    electrons = sum(gto.charge(symbol) for symbol in symbols) - charge
    require(electrons > 0, "charge", f"less than the nuclear charge {electrons + charge}", charge)
    require(
        spin <= electrons and (electrons - spin) % 2 == 0,
        "spin",
        f"2S = N_alpha − N_beta with the parity of the {electrons} electrons and at most {electrons}",
        spin,
    )
    try:
        mol.build(parse_arg=False, dump_input=False)
    except RuntimeError as error:  # pyscf.lib.exceptions.BasisNotFoundError is a RuntimeError
        raise InvalidParameterError(
            "basis", f"a basis set PySCF knows for every element of {sorted(set(symbols))} ({error})", basis
        ) from None
    require(
        mol.nao_nr() >= max(mol.nelec),
        "basis",
        f"at least {max(mol.nelec)} functions for {max(mol.nelec)} electrons of one spin",
        basis,
    )
    return mol
