"""Periodic references for density learning (issue 20, first part): Γ-point Kohn–Sham of a
cell with GTH pseudopotentials (PySCF ``pbc``, multigrid XC and Coulomb), and its valence
density fitted into a lattice-summed auxiliary basis in the overlap metric.

ρ̃(r) = Σ_P c_P φ̄_P(r) with φ̄_P(r) = Σ_T φ_P(r − T) summed over lattice vectors T. The fit
minimises ∫_cell (ρ − ρ̃)², so c = S̄⁻¹ p with the lattice-summed overlap S̄_PQ = ∫_cell φ̄_P φ̄_Q
(= Σ_T ⟨φ_P|φ_Q(· − T)⟩, PySCF's ``pbc_intor``) and p_P = Σ_μν D_μν (μν|P)₁ₑ from the lattice-summed
three-centre overlaps. Coefficients and labels in featomic order, as for molecules
(:mod:`densitylab.density.reference`); lengths in Å in the API, bohr inside PySCF; energies in
hartree. Measured on one 8-molecule water cell (184 AOs, GTH-DZVP, 200 Ry): SCF 45–78 s here,
the fit 4 s; the even-tempered basis (β = 2.0, 1,040 functions) fits the valence density to
0.8 % grid NMAE.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from densitylab.density.basis import (
    auxiliary_integrals,
    featomic_order,
    featomic_overlap,
    function_labels,
    overlap_matrix,
    pyscf_coefficients,
)
from densitylab.dft.system import parse_xc
from densitylab.errors import InvalidParameterError, require

RYDBERG_IN_HARTREE = 0.5


@dataclass(frozen=True)
class CellSettings:
    """How a periodic reference is computed.

    Attributes:
        xc, basis, pseudo: the Γ-point Kohn–Sham reference (PBE, GTH-DZVP, GTH-PBE).
        ke_cutoff: plane-wave kinetic-energy cutoff of the grids (Ry). 300 by default: moving
            an 8-water cell by an arbitrary vector changes its energy by 0.010 meV/atom at
            300 Ry and 0.49 meV/atom at 200 Ry (the egg-box effect, against the 0.1 meV/atom
            target; benchmarks/density_cells_cutoff.py).
        etb_beta: ratio of the even-tempered auxiliary basis built from the cell's basis.
        conv_tol: SCF energy tolerance (hartree).
        chunk_size: cells per parallel task (and per resumable part).
    """

    xc: str = "pbe"
    basis: str = "gth-dzvp"
    pseudo: str = "gth-pbe"
    ke_cutoff: float = 300.0
    etb_beta: float = 1.6
    conv_tol: float = 1e-9
    chunk_size: int = 1

    def __post_init__(self) -> None:
        require(
            np.isfinite(self.ke_cutoff) and self.ke_cutoff > 0,
            "ke_cutoff",
            "a positive cutoff (Ry)",
            self.ke_cutoff,
        )
        require(self.etb_beta > 1.0, "etb_beta", "a ratio above 1", self.etb_beta)
        require(0 < self.conv_tol < 1e-4, "conv_tol", "a tolerance in (0, 1e-4) hartree", self.conv_tol)
        require(self.chunk_size >= 1, "chunk_size", "a positive integer", self.chunk_size)
        parse_xc(self.xc)


def build_cell(numbers: np.ndarray, positions: np.ndarray, lattice: np.ndarray, settings: CellSettings):
    """A built PySCF ``pbc.gto.Cell`` (positions and lattice vectors (3, 3) rows in Å), with the
    atoms wrapped into the home cell: PySCF's lattice sums are centred on it, and an atom one
    lattice vector outside moved an SCF energy by 1e-6 Ha (wrapped: 1e-14, measured)."""
    from pyscf.pbc import gto

    lattice = np.asarray(lattice, dtype=float)
    require(
        lattice.shape == (3, 3) and np.all(np.isfinite(lattice)),
        "lattice",
        "three finite vectors (Å)",
        lattice.tolist(),
    )
    require(
        abs(np.linalg.det(lattice)) > 1.0,
        "lattice",
        "three independent vectors spanning > 1 Å³",
        lattice.tolist(),
    )
    fractional = np.asarray(positions, dtype=float) @ np.linalg.inv(lattice)
    wrapped = (fractional - np.floor(fractional)) @ lattice
    try:
        return gto.M(
            atom=[
                (z if isinstance(z, str) else int(z), xyz)
                for z, xyz in zip(numbers, wrapped.tolist(), strict=True)
            ],
            a=lattice,
            basis=settings.basis,
            pseudo=settings.pseudo,
            ke_cutoff=settings.ke_cutoff * RYDBERG_IN_HARTREE,
            verbose=0,
        )
    except (RuntimeError, KeyError) as error:
        raise InvalidParameterError(
            "basis", f"a basis and pseudopotential for every species ({error})", settings.basis
        ) from None


def auxiliary_cell(cell, settings: CellSettings):
    """The lattice-summed even-tempered auxiliary basis of ``cell`` (all-electron functions: the
    valence density needs no pseudopotential)."""
    from pyscf import df

    auxcell = cell.copy(deep=True)
    auxcell.basis = df.aug_etb(cell, beta=settings.etb_beta)
    auxcell.pseudo = None
    auxcell.build()
    return auxcell


FIT_BLOCK_BYTES = 256 * 2**20  # three-centre integrals held at once by the fit


def fit_cell_density(
    cell, auxcell, density_matrix: np.ndarray, block_bytes: int = FIT_BLOCK_BYTES
) -> tuple[np.ndarray, np.ndarray]:
    """Fitted coefficients c (naux,) and the lattice-summed overlap S̄ (naux, naux), PySCF order.

    The projections Σ_μν D_μν (μν|P) are accumulated over blocks of auxiliary shells whose
    three-centre integrals take at most ``block_bytes`` (at least one shell per block): all of
    them at once would be nao(nao+1)/2 × naux doubles, 6 GB for 32 waters in GTH-DZVP.
    """
    from pyscf.pbc.df import incore

    overlap = overlap_matrix(auxcell)
    nao = cell.nao_nr()
    rows, columns = np.tril_indices(nao)
    pairs = density_matrix[rows, columns] * np.where(rows == columns, 1.0, 2.0)
    offsets = auxcell.ao_loc_nr()
    projections = np.empty(offsets[-1])
    start = 0
    while start < auxcell.nbas:
        stop = start + 1
        while stop < auxcell.nbas and len(pairs) * (offsets[stop + 1] - offsets[start]) * 8 <= block_bytes:
            stop += 1
        block = incore.aux_e2(
            cell, auxcell, "int3c1e", aosym="s2", shls_slice=(0, cell.nbas, 0, cell.nbas, start, stop)
        )
        projections[offsets[start] : offsets[stop]] = pairs @ block.reshape(len(pairs), -1)
        start = stop
    return np.linalg.solve(overlap, projections), overlap


def reference_memory(cell, auxcell, block_bytes: int = FIT_BLOCK_BYTES) -> float:
    """Bytes a cell reference needs at its peak, estimated before the SCF: the SCF's grids
    (about 16 values per point of the uniform mesh) and its nao² matrices (about 40 of them:
    Fock, density, overlap, DIIS history), then the fit's overlap and its factorisation
    (2 naux²) and one block of three-centre integrals."""
    points = float(np.prod(cell.mesh))
    nao, naux = cell.nao_nr(), auxcell.nao_nr()
    return 8.0 * (16 * points + 40 * nao**2 + 2 * naux**2) + block_bytes


def cell_scf(cell, settings: CellSettings):
    """The converged Γ-point RKS of ``cell`` (multigrid XC and Coulomb)."""
    from pyscf.pbc import dft
    from pyscf.pbc.dft import multigrid

    mf = dft.RKS(cell, xc=settings.xc)
    mf._numint = multigrid.MultiGridNumInt(cell)
    mf.conv_tol = settings.conv_tol
    mf.kernel()
    require(
        bool(mf.converged), "structures", "cells whose reference SCF converges", cell.atom_coords().tolist()
    )
    return mf


def cell_reference(
    numbers: np.ndarray, positions: np.ndarray, lattice: np.ndarray, settings: CellSettings
) -> dict:
    """SCF and valence-density fit of one cell, everything in featomic order: coefficients
    (naux,), labels (naux, 4) = (atom, l, n, m), integrals ∫φ_P (naux,), the density matrix,
    the SCF energy (hartree) and the valence electron count."""
    cell = build_cell(numbers, positions, lattice, settings)
    auxcell = auxiliary_cell(cell, settings)
    _require_reference_memory(cell, auxcell)
    mf = cell_scf(cell, settings)
    density_matrix = mf.make_rdm1()
    coefficients, _ = fit_cell_density(cell, auxcell, density_matrix)
    labels = function_labels(auxcell)
    order = featomic_order(labels)
    return {
        "density_matrix": density_matrix,
        "coefficients": coefficients[order],
        "labels": labels[order],
        "integrals": auxiliary_integrals(auxcell)[order],
        "energy": float(mf.e_tot),
        "energy_components": np.array(
            [
                mf.scf_summary.get("e1", np.nan),
                mf.scf_summary.get("coul", np.nan),
                mf.scf_summary.get("exc", np.nan),
                cell.energy_nuc(),
            ]
        ),
        "valence_electrons": int(cell.nelectron),
    }


def cell_overlap(
    numbers: np.ndarray, positions: np.ndarray, lattice: np.ndarray, settings: CellSettings
) -> np.ndarray:
    """The lattice-summed auxiliary overlap S̄ (naux, naux) of one cell, featomic order,
    recomputed from the geometry (as the molecular overlap is)."""
    return featomic_overlap(auxiliary_cell(build_cell(numbers, positions, lattice, settings), settings))


def _require_reference_memory(cell, auxcell) -> None:
    from densitylab.limits import require_memory

    atoms = cell.natm
    require_memory(
        reference_memory(cell, auxcell), "structures", f"the reference of a {atoms}-atom cell", atoms
    )


def check_cell_memory(frame, settings: CellSettings) -> None:
    """Refuse a cell (an ``ase.Atoms``) whose reference would not fit in memory, before any SCF."""
    cell = build_cell(frame.numbers, frame.positions, frame.cell.array, settings)
    _require_reference_memory(cell, auxiliary_cell(cell, settings))


def check_cell_species(symbols: list, settings: CellSettings) -> None:
    """Refuse species the basis or pseudopotential do not cover, before any SCF."""
    for symbol in symbols:  # two atoms: an even electron count for any element
        build_cell([symbol, symbol], [[0.0, 0.0, 0.0], [2.0, 2.0, 2.0]], np.eye(3) * 10.0, settings)


def cell_grid_densities(cell, auxcell, coefficient_sets: list, density_matrix: np.ndarray, block: int = 8192):
    """ρ (SCF) and the densities of several coefficient vectors (featomic order) on the cell's
    uniform grid, and the grid weight (bohr³ per point): (rho (ngrid,), [ρ̃ (ngrid,)], weight)."""
    from pyscf.pbc.dft import numint

    expansions = [pyscf_coefficients(auxcell, c) for c in coefficient_sets]
    coords = cell.gen_uniform_grids(cell.mesh)
    rho, fitted = np.empty(len(coords)), [np.empty(len(coords)) for _ in expansions]
    for start in range(0, len(coords), block):
        points = coords[start : start + block]
        rho[start : start + block] = numint.eval_rho(cell, numint.eval_ao(cell, points), density_matrix)
        values = numint.eval_ao(auxcell, points)
        for target, c in zip(fitted, expansions, strict=True):
            target[start : start + block] = values @ c
    return rho, fitted, cell.vol / len(coords)
