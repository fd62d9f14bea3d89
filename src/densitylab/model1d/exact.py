"""Exact ground and excited states of a few interacting electrons on a 1D grid.

The spatial wavefunction of a state with n↑ up and n↓ down electrons is antisymmetric within
each spin block and is stored as a matrix Ψ[I, J] over ordered up-tuples I and down-tuples J
(see :mod:`densitylab.model1d.fock`). H is applied without ever forming it:

    H Ψ = K↑ Ψ + Ψ K↓ᵀ + V ∘ Ψ,

with K the sparse kinetic operators of the blocks (banded for one electron) and V the diagonal
of external potential plus all pair interactions. When n↑ = n↓, the spin-flip symmetry
Ψ[I, J] = p Ψ[J, I] (p = ±1 = (−1)^S) halves the space again; the Lieb–Mattis ground state
(S = 0) lies in p = +1. An implicitly restarted Lanczos solver (ARPACK) finds the lowest states,
started from the non-interacting Slater determinant.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.linalg
import scipy.sparse.linalg as spla

from densitylab.errors import require
from densitylab.limits import require_memory
from densitylab.model1d.fock import SpinBlock
from densitylab.model1d.system import System

DENSE_LIMIT = 600
PRECONDITIONER_COST_LIMIT = 2e10  # multiply-adds per preconditioner application before Lanczos is preferred


@dataclass(frozen=True, eq=False)
class ExactHamiltonian:
    """The many-electron Hamiltonian of ``system`` restricted to its S_z sector.

    Blocks are ordered so that ``major`` holds max(n↑, n↓) electrons; ``swapped`` says whether
    major is the down block.
    """

    system: System

    @cached_property
    def swapped(self) -> bool:
        return self.system.n_down > self.system.n_up

    @cached_property
    def major(self) -> SpinBlock:
        return SpinBlock(self.system.grid, max(self.system.n_up, self.system.n_down))

    @cached_property
    def minor(self) -> SpinBlock:
        return SpinBlock(self.system.grid, min(self.system.n_up, self.system.n_down))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.major.dimension, self.minor.dimension)

    @property
    def has_spin_flip_symmetry(self) -> bool:
        return self.major.electrons == self.minor.electrons and self.major.electrons > 0

    @cached_property
    def external(self) -> np.ndarray:
        """Σ_i v_ext(x_i) on each (I, J), shape (D↑, D↓), Ha."""
        v = self.system.v_ext
        return self.major.one_body_sum(v)[:, None] + self.minor.one_body_sum(v)[None, :]

    @cached_property
    def interaction(self) -> np.ndarray:
        """Σ_{i<j} w(x_i, x_j) on each (I, J), shape (D↑, D↓), Ha."""
        w = self.system.w
        total = self.major.pair_sum(w)[:, None] + self.minor.pair_sum(w)[None, :]
        for a in range(self.major.electrons):
            for b in range(self.minor.electrons):
                total = total + w[np.ix_(self.major.tuples[:, a], self.minor.tuples[:, b])]
        return total

    @cached_property
    def diagonal(self) -> np.ndarray:
        return self.external + self.interaction

    def apply(self, psi: np.ndarray) -> np.ndarray:
        """H Ψ for Ψ of shape (D↑, D↓); a small minor block uses one dense BLAS product."""
        result = self.diagonal * psi
        if self.major.electrons:
            result += self.major.kinetic @ psi
        if self._minor_kinetic_dense is not None:
            result += psi @ self._minor_kinetic_dense.T
        elif self.minor.electrons:
            result += (self.minor.kinetic @ psi.T).T
        return result

    # ----------------------------------------------------------------- sector packing

    @cached_property
    def _upper(self) -> tuple[np.ndarray, np.ndarray]:
        return np.triu_indices(self.major.dimension, k=1)

    @cached_property
    def _flat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flat indices of the strict upper triangle, its mirror, and the diagonal of a (D, D) matrix."""
        d = self.major.dimension
        rows, cols = self._upper
        return rows * d + cols, cols * d + rows, np.arange(d) * (d + 1)

    @cached_property
    def _minor_kinetic_dense(self) -> np.ndarray | None:
        """The minor block's kinetic matrix as a dense array when small (then Ψ K↓ᵀ is one BLAS call)."""
        return self.minor.kinetic.toarray() if 0 < self.minor.dimension <= 400 else None

    def sector_dimension(self, parity: int | None) -> int:
        d = self.major.dimension
        if parity is None:
            return d * self.minor.dimension
        return d * (d - 1) // 2 + (d if parity == 1 else 0)

    def pack(self, psi: np.ndarray, parity: int | None) -> np.ndarray:
        """Orthonormal sector coordinates of Ψ (an isometry on the sector)."""
        if parity is None:
            return psi.reshape(-1)
        upper, _, diagonal = self._flat
        flat = psi.reshape(-1)
        packed = flat[upper] * np.sqrt(2.0)
        return np.concatenate([packed, flat[diagonal]]) if parity == 1 else packed

    def unpack(self, vector: np.ndarray, parity: int | None) -> np.ndarray:
        """Inverse of :meth:`pack`: Ψ of shape (D↑, D↓)."""
        if parity is None:
            return vector.reshape(self.shape)
        d = self.major.dimension
        upper, lower, diagonal = self._flat
        off_diagonal = vector[: upper.size] * (1.0 / np.sqrt(2.0))
        flat = np.zeros(d * d, dtype=vector.dtype)
        flat[upper] = off_diagonal
        flat[lower] = off_diagonal if parity == 1 else -off_diagonal
        if parity == 1:
            flat[diagonal] = vector[upper.size :]
        return flat.reshape(d, d)

    def apply_packed(self, vector: np.ndarray, parity: int | None) -> np.ndarray:
        """H acting on sector coordinates, without forming HΨ's redundant half.

        With spin-flip symmetry Ψ K↓ᵀ = p (K↑ Ψ)ᵀ, so one sparse product serves both blocks and
        the packed result is gathered straight from A = K↑ Ψ.
        """
        if parity is None:
            return self.apply(vector.reshape(self.shape)).reshape(-1)
        psi = self.unpack(vector, parity)
        kinetic = (self.major.kinetic @ psi).reshape(-1)
        potential = (self.diagonal * psi).reshape(-1)
        upper, lower, diagonal = self._flat
        packed = (kinetic[upper] + parity * kinetic[lower] + potential[upper]) * np.sqrt(2.0)
        if parity == -1:
            return packed
        return np.concatenate([packed, 2.0 * kinetic[diagonal] + potential[diagonal]])

    def operator(self, parity: int | None) -> spla.LinearOperator:
        dimension = self.sector_dimension(parity)

        def matvec(vector: np.ndarray) -> np.ndarray:
            return self.apply_packed(np.ravel(vector), parity)

        return spla.LinearOperator((dimension, dimension), matvec=matvec, dtype=float)

    @cached_property
    def mean_field_orbitals(self) -> tuple[np.ndarray, np.ndarray]:
        """Eigenpairs of h = T + v_ext + (N−1)/N·v_H[n₀], n₀ the non-interacting density.

        A cheap screened mean field: its product states diagonalise the separable part of H.
        """
        system = self.system
        grid = system.grid
        h = grid.kinetic_dense() + np.diag(system.v_ext)
        _, orbitals = np.linalg.eigh(h)
        occupied = orbitals[:, : self.major.electrons] ** 2
        density = (occupied.sum(axis=1) + (orbitals[:, : self.minor.electrons] ** 2).sum(axis=1)) / grid.dx
        v_hartree = system.w @ density * grid.dx
        scale = (system.count - 1) / system.count
        return np.linalg.eigh(h + np.diag(scale * v_hartree))

    @property
    def can_precondition(self) -> bool:
        cost = self.major.transform_cost(self.minor.dimension) + self.minor.transform_cost(
            self.major.dimension
        )
        return cost <= PRECONDITIONER_COST_LIMIT

    @cached_property
    def _levels(self) -> np.ndarray:
        """Σ of mean-field orbital energies of each product state (I, J), shifted to be ≥ gap > 0."""
        energies = self.mean_field_orbitals[0]
        level = self.major.one_body_sum(energies)[:, None] + self.minor.one_body_sum(energies)[None, :]
        gap = max(energies[1] - energies[0], 1e-3)
        return level - level.min() + gap

    def preconditioner(self, parity: int | None) -> spla.LinearOperator:
        """(H₀ − E₀ + δ)⁻¹ for the separable mean-field H₀, applied in its product basis (SPD).

        H₀'s eigenvectors are the Slater determinants of h's orbitals U; the basis change acts on
        each block as U⊗…⊗U restricted to antisymmetric functions (:meth:`SpinBlock.transform`).
        """
        orbitals = self.mean_field_orbitals[1]
        transposed = np.ascontiguousarray(orbitals.T)
        denominator = self._levels
        dimension = self.sector_dimension(parity)

        def both_blocks(matrix: np.ndarray, psi: np.ndarray) -> np.ndarray:
            psi = self.major.transform(matrix, psi)
            return self.minor.transform(matrix, psi.T).T

        def apply(vector: np.ndarray) -> np.ndarray:
            columns = vector.reshape(dimension, -1)
            out = np.empty_like(columns)
            for c in range(columns.shape[1]):
                psi = self.unpack(columns[:, c], parity)
                transformed = both_blocks(transposed, psi) / denominator
                out[:, c] = self.pack(both_blocks(orbitals, transformed), parity)
            return out

        return spla.LinearOperator((dimension, dimension), matvec=apply, matmat=apply, dtype=float)

    def start_vector(self, parity: int | None, seed: int = 0) -> np.ndarray:
        """Non-interacting Slater determinant in the sector, plus a little seeded noise."""
        grid, system = self.system.grid, self.system
        h = grid.kinetic_dense() + np.diag(system.v_ext)
        _, orbitals = np.linalg.eigh(h)
        n_major, n_minor = self.major.electrons, self.minor.electrons
        major = self.major.determinant(orbitals[:, :n_major])
        minor = self.minor.determinant(orbitals[:, :n_minor])
        psi = np.outer(major, minor)
        if parity == -1:
            excited = self.major.determinant(orbitals[:, [*range(n_major - 1), n_major]])
            psi = np.outer(major, excited) - np.outer(excited, major)
        vector = self.pack(psi, parity)
        noise = np.random.default_rng(seed).standard_normal(vector.size)
        vector = vector / max(np.linalg.norm(vector), 1e-300) + 1e-3 * noise / np.sqrt(vector.size)
        return vector / np.linalg.norm(vector)


@dataclass(frozen=True, eq=False)
class ExactState:
    """One exact eigenstate and its observables (atomic units).

    Attributes:
        energy: total energy E (Ha).
        kinetic_energy, external_energy, interaction_energy: E = T + V_ext + W (Ha).
        density_up, density_down: spin densities, shape (N,), bohr⁻¹.
        rdm1_up, rdm1_down: spin 1-RDMs γ_σ(x, x'), shape (N, N), bohr⁻¹, with
            Σ_i γ_σ(x_i, x_i) dx = N_σ.
        coefficients: Ψ as a (C(N, n↑), C(N, n↓)) matrix with unit Frobenius norm.
        spin_flip_parity: +1 / −1 = (−1)^S when n↑ = n↓, else None.
    """

    energy: float
    kinetic_energy: float
    external_energy: float
    interaction_energy: float
    rdm1_up: np.ndarray
    rdm1_down: np.ndarray
    coefficients: np.ndarray
    spin_flip_parity: int | None
    dx: float

    @property
    def density_up(self) -> np.ndarray:
        return np.diag(self.rdm1_up).copy()

    @property
    def density_down(self) -> np.ndarray:
        return np.diag(self.rdm1_down).copy()

    @property
    def density(self) -> np.ndarray:
        """Total density n(x), shape (N,), bohr⁻¹."""
        return self.density_up + self.density_down

    @property
    def rdm1(self) -> np.ndarray:
        """Spin-summed 1-RDM, shape (N, N), bohr⁻¹."""
        return self.rdm1_up + self.rdm1_down

    @cached_property
    def _natural(self) -> tuple[np.ndarray, np.ndarray]:
        occupations, vectors = np.linalg.eigh(self.rdm1 * self.dx)
        order = np.argsort(occupations)[::-1]
        return occupations[order], vectors[:, order] / np.sqrt(self.dx)

    @property
    def natural_occupations(self) -> np.ndarray:
        """Eigenvalues of γ·dx (spin-summed), descending; they sum to N."""
        return self._natural[0]

    @property
    def natural_orbitals(self) -> np.ndarray:
        """Natural orbitals as columns, shape (N, N), normalised Σ φ² dx = 1."""
        return self._natural[1]

    def spin_occupations(self) -> tuple[np.ndarray, np.ndarray]:
        """Eigenvalues of γ↑·dx and γ↓·dx, each descending, in [0, 1]."""
        up = np.sort(np.linalg.eigvalsh(self.rdm1_up * self.dx))[::-1]
        down = np.sort(np.linalg.eigvalsh(self.rdm1_down * self.dx))[::-1]
        return up, down


@dataclass(frozen=True, eq=False)
class ExactSolution:
    """The lowest ``len(states)`` eigenstates of a system's S_z sector, ascending in energy."""

    system: System
    states: tuple[ExactState, ...]
    seconds: float
    solver: dict = field(default_factory=dict)

    @property
    def ground(self) -> ExactState:
        return self.states[0]

    @property
    def energies(self) -> np.ndarray:
        return np.array([state.energy for state in self.states])


def _lowest_in_sector(
    hamiltonian: ExactHamiltonian, parity: int | None, count: int, tol: float
) -> tuple[np.ndarray, np.ndarray, dict]:
    dimension = hamiltonian.sector_dimension(parity)
    count = min(count, dimension)
    if dimension <= DENSE_LIMIT or count >= dimension - 1:
        operator = hamiltonian.operator(parity)
        matrix = operator.matmat(np.eye(dimension))
        energies, vectors = scipy.linalg.eigh((matrix + matrix.T) / 2, subset_by_index=(0, count - 1))
        return energies, vectors, {"method": "dense", "dimension": dimension}
    if hamiltonian.can_precondition:
        return _lobpcg(hamiltonian, parity, count, tol)
    operator = hamiltonian.operator(parity)
    calls = [0]
    base = operator.matvec

    def counted(vector: np.ndarray) -> np.ndarray:
        calls[0] += 1
        return base(vector)

    counted_operator = spla.LinearOperator(operator.shape, matvec=counted, dtype=float)
    ncv = min(dimension - 1, max(2 * count + 1, 24))
    energies, vectors = spla.eigsh(
        counted_operator, k=count, which="SA", v0=hamiltonian.start_vector(parity), ncv=ncv, tol=tol
    )
    order = np.argsort(energies)
    return (
        energies[order],
        vectors[:, order],
        {"method": "lanczos", "dimension": dimension, "matvecs": calls[0]},
    )


def _lobpcg(
    hamiltonian: ExactHamiltonian, parity: int | None, count: int, tol: float
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Preconditioned LOBPCG; falls back to Lanczos if the residual target is not met."""
    dimension = hamiltonian.sector_dimension(parity)
    operator = hamiltonian.operator(parity)
    block = [hamiltonian.start_vector(parity)]
    rng = np.random.default_rng(1)
    block += [rng.standard_normal(dimension) for _ in range(count - 1)]
    start = np.linalg.qr(np.column_stack(block))[0]
    residual_tol = max(tol, 1e-14) ** 0.5 * 1e-2
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        energies, vectors, history = spla.lobpcg(
            operator,
            start,
            M=hamiltonian.preconditioner(parity),
            tol=residual_tol,
            maxiter=400,
            largest=False,
            retResidualNormsHistory=True,
        )
    residuals = np.linalg.norm(operator.matmat(vectors) - vectors * energies, axis=0)
    info = {
        "method": "lobpcg",
        "dimension": dimension,
        "iterations": len(history),
        "residual": float(residuals.max()),
    }
    if residuals.max() > 1e3 * residual_tol:
        info["fallback"] = "lanczos"
        ncv = min(dimension - 1, max(2 * count + 1, 24))
        energies, vectors = spla.eigsh(operator, k=count, which="SA", v0=vectors[:, 0], ncv=ncv, tol=tol)
    order = np.argsort(energies)
    return energies[order], vectors[:, order], info


def exact_memory_estimate(points: int, n_up: int, n_down: int, states: int = 1) -> float:
    """Bytes the exact solver will need at least, from the sizes alone (before any allocation).

    The many-electron vector has D = C(N, n↑)·C(N, n↓) entries (the spin-flip sectors halve it,
    ignored here to stay on the safe side). A dense solve (D ≤ DENSE_LIMIT) holds two D×D
    matrices; an iterative one holds its Krylov space, max(24, 2·states + 1) vectors, plus
    LOBPCG's blocks and a few work vectors. The one-body matrices take a few N×N arrays.
    """
    dimension = float(math.comb(points, n_up)) * float(math.comb(points, n_down))
    one_body = 6.0 * points**2
    if dimension <= DENSE_LIMIT:
        return 8.0 * (2.0 * dimension**2 + one_body)
    vectors = max(24, 2 * states + 1) + 3 * states + 8
    return 8.0 * (vectors * dimension + one_body)


def solve_exact(system: System, states: int = 1, tol: float = 1e-13) -> ExactSolution:
    """Exact lowest eigenstates of ``system`` in its S_z sector.

    Args:
        system: the model system (grid, v_ext, interaction, spin string).
        states: how many of the lowest states to return (≥ 1). For states = 1 with n↑ = n↓,
            only the spin-flip-even sector (p = +1, S even; the singlet for two electrons) is
            searched. By Lieb–Mattis that is the ground state whenever all lattice hoppings are
            non-positive (the 3-point stencil, and the continuum limit). Higher-order stencils
            have positive next-neighbour hoppings, so for well-separated electrons an S-odd
            state can lie below the singlet by an exponentially small amount (~1e-11 Ha seen on
            coarse grids); ask for states ≥ 2 to search both sectors.
        tol: relative eigenvalue tolerance passed to ARPACK.

    Returns:
        ExactSolution with ``states`` ExactState objects, lowest energy first.
    """
    require(isinstance(states, int) and states >= 1, "states", "a positive integer", states)
    require(
        system.grid.boundary == "hard-wall", "boundary", "a hard-wall grid (the exact solver's box)",
        system.grid.boundary,
    )  # fmt: skip
    estimate = exact_memory_estimate(system.grid.points, system.n_up, system.n_down, states)
    require_memory(
        estimate,
        "points" if system.count <= 2 else "electrons",
        f"the exact solve of {system.electrons!r} on {system.grid.points} points",
        f"{system.electrons} on {system.grid.points} points",
    )
    start = time.perf_counter()
    hamiltonian = ExactHamiltonian(system)
    dx = system.grid.dx
    if hamiltonian.has_spin_flip_symmetry:
        parities: tuple[int | None, ...] = (1,) if states == 1 else (1, -1)
    else:
        parities = (None,)
    candidates: list[tuple[float, np.ndarray, int | None]] = []
    solver_info = {}
    for parity in parities:
        energies, vectors, info = _lowest_in_sector(hamiltonian, parity, states, tol)
        solver_info[str(parity)] = info
        candidates += [(energies[i], vectors[:, i], parity) for i in range(len(energies))]
    candidates.sort(key=lambda item: item[0])
    found = []
    for energy, vector, parity in candidates[:states]:
        psi = hamiltonian.unpack(vector, parity)
        psi = psi * np.sign(psi.flat[np.argmax(np.abs(psi))])
        psi = psi / np.linalg.norm(psi)
        kinetic = energy - float(np.sum(psi * psi * hamiltonian.diagonal))
        rdm_major = hamiltonian.major.rdm1(psi, dx)
        rdm_minor = hamiltonian.minor.rdm1(psi.T, dx)
        rdm_up, rdm_down = (rdm_minor, rdm_major) if hamiltonian.swapped else (rdm_major, rdm_minor)
        found.append(
            ExactState(
                energy=float(energy),
                kinetic_energy=kinetic,
                external_energy=float(np.sum(psi * psi * hamiltonian.external)),
                interaction_energy=float(np.sum(psi * psi * hamiltonian.interaction)),
                rdm1_up=rdm_up,
                rdm1_down=rdm_down,
                coefficients=psi,
                spin_flip_parity=parity,
                dx=dx,
            )
        )
    return ExactSolution(
        system=system, states=tuple(found), seconds=time.perf_counter() - start, solver=solver_info
    )
