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
    """Bytes a cell reference needs at its peak, estimated before the SCF: the SCF's complex
    AO values on the whole uniform mesh (points × nao × 16 bytes, which PySCF's Γ-point SCF
    holds at once), its other grids (about 16 values per point) and nao² matrices (about 40
    of them: Fock, density, overlap, DIIS history), then the fit's overlap and its
    factorisation (2 naux²) and one block of three-centre integrals. Measured peaks (GTH-DZVP,
    300 Ry): 2.06 GB for 8 waters (estimate 1.24 GB), 13.7 GB for 32 (estimate 14.8 GB); the
    mesh term alone is 0.97 and 13.7 GB there, and 54 GB for 64 waters."""
    points = float(np.prod(cell.mesh))
    nao, naux = cell.nao_nr(), auxcell.nao_nr()
    return 16.0 * points * nao + 8.0 * (16 * points + 40 * nao**2 + 2 * naux**2) + block_bytes


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


def _grid_densities(
    cell, auxcell, coefficient_sets: list, density_matrix: np.ndarray, gradients: bool, block: int
) -> np.ndarray:
    """(1 + len(coefficient_sets), 4 with ``gradients`` (ρ, ∇ρ) else 1, ngrid) on the cell's
    uniform grid: the SCF density first, then each coefficient vector's (featomic order)."""
    from pyscf.pbc.dft import numint

    deriv, kind = (1, "GGA") if gradients else (0, "LDA")
    expansions = [pyscf_coefficients(auxcell, c) for c in coefficient_sets]
    coords = cell.gen_uniform_grids(cell.mesh)
    densities = np.empty((len(expansions) + 1, 4 if gradients else 1, len(coords)))
    for start in range(0, len(coords), block):
        points = coords[start : start + block]
        stop = start + len(points)
        densities[0, :, start:stop] = numint.eval_rho(
            cell, numint.eval_ao(cell, points, deriv=deriv), density_matrix, xctype=kind
        )
        values = numint.eval_ao(auxcell, points, deriv=deriv)
        for index, c in enumerate(expansions, start=1):
            densities[index, :, start:stop] = np.einsum("kgp,p->kg", values, c) if gradients else values @ c
    return densities


def cell_grid_densities(cell, auxcell, coefficient_sets: list, density_matrix: np.ndarray, block: int = 8192):
    """ρ (SCF) and the densities of several coefficient vectors (featomic order) on the cell's
    uniform grid, and the grid weight (bohr³ per point): (rho (ngrid,), [ρ̃ (ngrid,)], weight)."""
    densities = _grid_densities(cell, auxcell, coefficient_sets, density_matrix, False, block)[:, 0]
    return densities[0], list(densities[1:]), cell.vol / densities.shape[-1]


def cell_one_step_energies(
    cell, auxcell, coefficient_sets: list, xc: str, density_matrix: np.ndarray, block: int = 4096
) -> list:
    """One Kohn–Sham step of a cell from each density (Harris–Foulkes), Γ point, on the cell's
    uniform grid: the first result is the SCF density's own (from ``density_matrix``), then one
    per coefficient vector (featomic order).

    For a density ρ̃: v = v_H[ρ̃] + v_xc[ρ̃] with v_H by FFT (4π/G², G = 0 dropped: the Ewald
    energy and the pseudopotential's G = 0 term hold the neutralising background, as in PySCF's
    FFTDF); F = T + V_pp + V; the occupied eigenvalues ε_i of F give
    E = 2Σε_i − E_H[ρ̃] + E_xc[ρ̃] − ∫v_xc ρ̃ + E_nuc (Ewald). At the self-consistent density this
    is the KS energy itself (tested against an FFTDF SCF); elsewhere its error is second order
    in the density's. Each result: energy, band_energy, hartree, xc, nuclear_repulsion,
    homo_lumo_gap (hartree). Hand-written because PySCF builds potentials from density
    matrices only, and a predicted density is an auxiliary expansion.
    """
    import scipy.linalg
    from pyscf.dft import libxc
    from pyscf.pbc import dft, tools
    from pyscf.pbc.dft import numint

    from densitylab.density.xc import XCAccumulator

    require(
        libxc.xc_type(xc) in ("LDA", "GGA") and not libxc.is_hybrid_xc(xc),
        "xc",
        "an LDA or GGA without exact exchange (one KS step has no density matrix for it)",
        xc,
    )
    gga = libxc.xc_type(xc) == "GGA"
    ngrid, nao = int(np.prod(cell.mesh)), cell.nao_nr()
    weight = cell.vol / ngrid
    densities = _grid_densities(cell, auxcell, coefficient_sets, density_matrix, gga, block)
    coords = cell.gen_uniform_grids(cell.mesh)
    blocks = [(start, min(start + block, ngrid)) for start in range(0, ngrid, block)]
    coulomb = tools.get_coulG(cell, mesh=cell.mesh)
    hartree = np.array(
        [tools.ifft(coulomb * tools.fft(rho[0], cell.mesh), cell.mesh).real for rho in densities]
    )
    potentials = [XCAccumulator(nao) for _ in densities]
    coulomb_matrices = np.zeros((len(densities), nao, nao))
    weights = np.full(block, weight)
    for start, stop in blocks:
        ao = numint.eval_ao(cell, coords[start:stop], deriv=1 if gga else 0)
        values = ao[0] if gga else ao
        for index, potential in enumerate(potentials):
            rho = densities[index, :, start:stop] if gga else densities[index, 0, start:stop]
            potential.add(xc, rho, weights[: stop - start], ao, gga)
            coulomb_matrices[index] += values.T @ ((weight * hartree[index, start:stop])[:, None] * values)
    core = dft.RKS(cell).get_hcore()
    overlap = cell.pbc_intor("int1e_ovlp", hermi=1)
    occupied = cell.nelectron // 2
    nuclear = float(cell.energy_nuc())
    results = []
    for index, potential in enumerate(potentials):
        hartree_energy = 0.5 * weight * float(densities[index, 0] @ hartree[index])
        energies, _ = scipy.linalg.eigh(core + coulomb_matrices[index] + potential.matrix(), overlap)
        band = 2.0 * float(np.sum(energies[:occupied]))
        results.append(
            {
                "energy": band - hartree_energy + potential.energy - potential.expectation + nuclear,
                "band_energy": band,
                "hartree": hartree_energy,
                "xc": potential.energy,
                "nuclear_repulsion": nuclear,
                "homo_lumo_gap": float(energies[occupied] - energies[occupied - 1]),
            }
        )
    return results
