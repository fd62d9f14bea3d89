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
        ke_cutoff: plane-wave kinetic-energy cutoff of the grids (Ry). 300 by default. Moving
            an 8-water cell by four arbitrary vectors changes its PBE energy by up to 0.49,
            0.63, 0.60 and 0.20 meV/atom at 200, 300, 400 and 500 Ry (the egg-box effect of
            the mesh, mostly PBE's gradient terms: 0.12 with LDA at 300 Ry), and going from
            300 to 500 Ry moves the energy of one cell relative to another by 0.74 meV/atom,
            GTH-DZVP to GTH-TZV2P by 1.31 (benchmarks/density_cells_cutoff.py and
            density_cells_accuracy.py). These are the references' own errors; the one-step
            energies are measured in the references' discretisation and do not contain them.
        etb_beta: ratio of the even-tempered auxiliary basis built from the cell's basis. 1.3
            by default: the fit's own one-step energy error (the floor of any prediction) is
            0.28 and 0.30 meV/atom on two 8-water cells, against 0.81 and 0.89 at 1.6 (1.7×
            the functions: 2,624 against 1,544), and no lower at 1.25 or 1.2.
        conv_tol: SCF energy tolerance (hartree).
        chunk_size: cells per parallel task (and per resumable part).
    """

    xc: str = "pbe"
    basis: str = "gth-dzvp"
    pseudo: str = "gth-pbe"
    ke_cutoff: float = 300.0
    etb_beta: float = 1.3
    conv_tol: float = 1e-9
    chunk_size: int = 1

    def __post_init__(self) -> None:
        require(
            np.isfinite(self.ke_cutoff) and self.ke_cutoff > 0,
            "ke_cutoff",
            "a positive cutoff (Ry)",
            self.ke_cutoff,
        )
        require(1.0 < self.etb_beta < np.inf, "etb_beta", "a finite ratio above 1", self.etb_beta)
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
BASE_BYTES = 200 * 2**20  # the interpreter, NumPy and PySCF before any array


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
    import scipy.linalg

    from densitylab.linalg import cho_factor

    # Cholesky (S is positive definite), one BLAS thread when large: OpenBLAS's threaded
    # factorisations crash from n ≈ 15,800, and 64 waters need 21,000 functions
    return scipy.linalg.cho_solve(cho_factor(overlap), projections), overlap


def reference_memory(cell, auxcell, block_bytes: int = FIT_BLOCK_BYTES) -> float:
    """Bytes a cell reference needs at its peak, estimated before the SCF: the SCF's grids
    (about 16 values per mesh point) and nao² matrices (about 40 of them: Fock, density,
    overlap, DIIS history), then the fit's overlap, PySCF's buffer for it and its
    factorisation (3 naux²) and one block of three-centre integrals, beside the interpreter
    and libraries (0.2 GB). Measured peaks of whole references (GTH-DZVP, 300 Ry,
    ``MultiGridNumInt2``, β = 1.3; ``/usr/bin/time``): 8 waters 0.67 GB (estimate 0.69 GB),
    32 waters 3.10 GB (3.44 GB), 64 waters 11.3 GB (12.0 GB)."""
    points = float(np.prod(cell.mesh))
    nao, naux = cell.nao_nr(), auxcell.nao_nr()
    return 8.0 * (16 * points + 40 * nao**2 + 3 * naux**2) + block_bytes + BASE_BYTES


def cell_scf(cell, settings: CellSettings):
    """The converged Γ-point RKS of ``cell`` (multigrid XC and Coulomb)."""
    from pyscf.pbc import dft

    mf = dft.RKS(cell, xc=settings.xc)
    mf._numint = mesh_numint(cell)
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


def check_cells_memory(frames: list, settings: CellSettings) -> None:
    """Refuse cells whose references would not fit in memory, before any SCF. The estimate
    grows with the mesh (the cell's volume) and with the basis (its atoms), so the cells with
    the most atoms, the largest volume and the largest product of the two are checked (a few
    cell builds, however many frames)."""
    atoms = [len(frame) for frame in frames]
    volumes = [abs(frame.get_volume()) for frame in frames]
    products = [count * volume for count, volume in zip(atoms, volumes, strict=True)]
    for index in sorted({int(np.argmax(measure)) for measure in (atoms, volumes, products)}):
        check_cell_memory(frames[index], settings)


def check_evaluation_memory(frame, settings: CellSettings, count: int) -> None:
    """Refuse a cell (an ``ase.Atoms``) whose evaluation with ``count`` densities besides the
    SCF's would not fit in memory, before any prediction."""
    from densitylab.limits import require_memory

    cell = build_cell(frame.numbers, frame.positions, frame.cell.array, settings)
    memory = evaluation_memory(cell, auxiliary_cell(cell, settings), count)
    require_memory(memory, "reference", f"the evaluation of a {cell.natm}-atom cell", cell.natm)


def check_cell_species(symbols: list, settings: CellSettings) -> None:
    """Refuse species the basis or pseudopotential do not cover, before any SCF."""
    for symbol in symbols:  # two atoms: an even electron count for any element
        build_cell([symbol, symbol], [[0.0, 0.0, 0.0], [2.0, 2.0, 2.0]], np.eye(3) * 10.0, settings)


FT_BLOCK_BYTES = 256 * 2**20  # analytic Fourier transforms of the auxiliary basis held at once


def mesh_numint(cell):
    """PySCF's multigrid for ``cell`` (``MultiGridNumInt2``, Γ point): the reference SCF's
    Coulomb and XC, and here its density and potential passes on the cell's mesh. Chosen over
    the first multigrid and FFTDF for a measured reason: their pseudopotential builds the
    Fourier transform of every AO on the whole mesh at once (points × nao × 16 bytes, 13.7 GB
    for 32 waters at 300 Ry, 54 GB for 64), where this one integrates the non-local part
    analytically; 32 waters: SCF 71 s and 0.66 GB against about 900 s and 13.7 GB, energies
    within 1.2e-5 Ha (benchmarks/density_cells_multigrid.py)."""
    from pyscf.pbc.dft import multigrid

    return multigrid.MultiGridNumInt2(cell)


def cell_mesh_densities(
    cell, auxcell, coefficient_sets: list, density_matrix: np.ndarray, block_bytes: int = FT_BLOCK_BYTES
) -> np.ndarray:
    """Fourier coefficients (1 + len(coefficient_sets), ngrid) complex on the cell's mesh, in
    NumPy's FFT convention ρ(G) = Σ_r ρ(r) e^(−iG·r): first the SCF density of
    ``density_matrix``, as the reference SCF builds it (multigrid), then each coefficient
    vector's (featomic order), ρ̃(G) = (ngrid/Ω) Σ_P c_P φ̂_P(G) with φ̂_P the analytic
    Fourier transform of the auxiliary function (a lattice sum in real space is the sampling
    of φ̂ at the reciprocal lattice vectors), in blocks of at most ``block_bytes``. Both are
    band-limited to the mesh, as the SCF's own densities are, and about 8× faster for 32
    waters than the basis values on the real-space grid with gradients (155 s against 1,270 s,
    both extrapolated from timed blocks of 20,000 and 4,096 points)."""
    from pyscf import lib
    from pyscf.pbc.df import ft_ao
    from pyscf.pbc.dft.multigrid import multigrid_pair

    mesh = np.asarray(cell.mesh)
    ngrid = int(np.prod(mesh))
    weight = cell.vol / ngrid
    densities = np.empty((len(coefficient_sets) + 1, ngrid), dtype=complex)
    densities[0] = multigrid_pair._eval_rhoG(mesh_numint(cell), density_matrix, deriv=0)[0, 0] / weight
    if not coefficient_sets:
        return densities
    expansions = np.stack([pyscf_coefficients(auxcell, c) for c in coefficient_sets], axis=1)
    vectors = cell.get_Gv(mesh)
    indices = lib.cartesian_prod([np.arange(n) for n in mesh]).astype(np.int32)
    frequencies = tuple(np.fft.fftfreq(n, 1.0 / n) for n in mesh)
    reciprocal = cell.reciprocal_vectors()
    block = max(1, block_bytes // (16 * auxcell.nao_nr()))
    for start in range(0, ngrid, block):
        stop = min(start + block, ngrid)
        values = ft_ao.ft_ao(auxcell, vectors[start:stop], None, reciprocal, indices[start:stop], frequencies)
        densities[1:, start:stop] = (values @ expansions).T / weight
    return densities


def _real_space(cell, density: np.ndarray, gradients: bool) -> np.ndarray:
    """(4 with ``gradients`` (ρ, ∇ρ) else 1, ngrid) on the mesh from Fourier coefficients."""
    from pyscf.pbc import tools

    fields = [density] + ([1j * g * density for g in cell.get_Gv(cell.mesh).T] if gradients else [])
    return np.array([tools.ifft(field, cell.mesh).real for field in fields])


def mesh_nmae_percents(cell, densities: np.ndarray) -> list[float]:
    """Grid NMAE (%) of each density after the first (Fourier coefficients as
    :func:`cell_mesh_densities` gives them), 100 ∫|ρ − ρ̃| / N over the mesh, N the valence
    electrons."""
    rho = _real_space(cell, densities[0], False)[0]
    weight = cell.vol / rho.size
    return [
        100.0 * weight * float(np.abs(rho - _real_space(cell, d, False)[0]).sum()) / cell.nelectron
        for d in densities[1:]
    ]


def cell_one_step_energies(cell, densities: np.ndarray, xc: str) -> list:
    """One Kohn–Sham step of a cell from each density (Harris–Foulkes), Γ point, in the
    reference SCF's discretisation: Fourier coefficients on the mesh
    (:func:`cell_mesh_densities`), XC on the mesh with FFT gradients and the potential
    matrices by PySCF's multigrid, as its SCF does them.

    For a density ρ̃: v = v_H[ρ̃] + v_xc[ρ̃], v_H(G) = 4πρ̃(G)/G² (G = 0 dropped: the Ewald energy
    and the pseudopotential's G = 0 term hold the neutralising background); F = T + V_pp + V;
    the occupied eigenvalues ε_i of F give E = 2Σε_i − E_H[ρ̃] + E_xc[ρ̃] − ⟨v_xc⟩[ρ̃] + E_nuc
    (Ewald), ⟨v_xc⟩ = ∫ v_ρ ρ̃ + 2 v_σ |∇ρ̃|². From the SCF density this is the SCF energy itself
    (tested, to 1e-8 Ha); elsewhere its error is second order in the density's. Each result:
    energy, band_energy, hartree, xc, nuclear_repulsion, homo_lumo_gap (hartree). Hand-written
    because PySCF builds potentials from density matrices only, and a predicted density is an
    auxiliary expansion; memory about 12 values per mesh point beside ``densities``.
    """
    import scipy.linalg
    from pyscf.dft import libxc
    from pyscf.pbc import tools
    from pyscf.pbc.dft.multigrid import multigrid_pair

    require(
        libxc.xc_type(xc) in ("LDA", "GGA") and not libxc.is_hybrid_xc(xc),
        "xc",
        "an LDA or GGA without exact exchange (one KS step has no density matrix for it)",
        xc,
    )
    kind = libxc.xc_type(xc)
    ngrid, nao = densities.shape[1], cell.nao_nr()
    weight = cell.vol / ngrid
    numint = mesh_numint(cell)
    vectors = cell.get_Gv(cell.mesh)
    coulomb = tools.get_coulG(cell, mesh=cell.mesh)
    core = numint.get_pp(np.zeros(3), return_full=True) + cell.pbc_intor("int1e_kin", hermi=1)
    overlap = cell.pbc_intor("int1e_ovlp", hermi=1)
    occupied = cell.nelectron // 2
    nuclear = float(cell.energy_nuc())
    results = []
    for density in densities:
        fields = _real_space(cell, density, kind == "GGA")
        exc, vxc = numint.eval_xc_eff(xc, fields if kind == "GGA" else fields[0], deriv=1, xctype=kind)[:2]
        vxc = np.asarray(vxc).reshape(len(fields), ngrid)
        hartree_energy = 0.5 * weight / ngrid * float(np.vdot(density, coulomb * density).real)
        potential = tools.fft(vxc, cell.mesh).reshape(len(fields), ngrid)
        total = potential[0] - 1j * np.einsum("xg,gx->g", potential[1:], vectors) + coulomb * density
        matrix = np.asarray(multigrid_pair._get_j_pass2(numint, weight * total)).reshape(nao, nao)
        energies = scipy.linalg.eigh(core + matrix, overlap, eigvals_only=True)
        band = 2.0 * float(np.sum(energies[:occupied]))
        xc_energy = weight * float(fields[0] @ exc)
        expectation = weight * float(np.sum(vxc * fields))
        results.append(
            {
                "energy": band - hartree_energy + xc_energy - expectation + nuclear,
                "band_energy": band,
                "hartree": hartree_energy,
                "xc": xc_energy,
                "nuclear_repulsion": nuclear,
                "homo_lumo_gap": float(energies[occupied] - energies[occupied - 1]),
            }
        )
    return results


def evaluation_memory(cell, auxcell, count: int, block_bytes: int = FT_BLOCK_BYTES) -> float:
    """Bytes :func:`cell_mesh_densities` and :func:`cell_one_step_energies` need at their peak
    for ``count`` densities besides the SCF's: the Fourier coefficients (16 bytes a point
    each), the mesh vectors and the fields, potentials and their transforms of one density
    (about 24 values a point), one block of transforms and a few nao² matrices; before them,
    the lattice-summed auxiliary overlap of the % RMSE with PySCF's buffer and its reordered
    copy, and the prediction's design matrices (3.5 naux² in all). Measured peak (β = 1.3,
    ``/usr/bin/time``): 11.3 GB for a 64-water cell (estimate 12.5 GB)."""
    points = float(np.prod(cell.mesh))
    nao, naux = cell.nao_nr(), auxcell.nao_nr()
    mesh = 16.0 * points * (count + 1) + 8.0 * (24 * points + 8 * nao**2) + block_bytes
    return max(mesh, 28.0 * naux**2) + BASE_BYTES
