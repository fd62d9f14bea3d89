"""Mean-field methods on the 1D grid: non-interacting, Hartree, Hartree–Fock and the 1D LDA,
restricted (closed shell) or unrestricted, converged with DIIS.

Conventions (atomic units): orbitals φ are normalised Σ_x φ(x)² dx = 1; a spin 1-RDM is
γ_σ(x, x') = Σ_occ φ(x)φ(x'); operators act on grid vectors, so a non-local kernel K(x, x')
enters the Fock matrix as K·dx.

Energies:
    E = T_s + ∫ v_ext n + E_H + E_x + E_c,
    E_H = ½ ∫∫ n(x) w(x, x') n(x'),
    E_x^HF = −½ Σ_σ ∫∫ γ_σ(x, x')² w(x, x')   (same-spin pairs only: exchange counted once).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from densitylab.errors import SCFConvergenceError, require
from densitylab.limits import require_memory
from densitylab.model1d import lda
from densitylab.model1d.system import System

METHODS = ("non-interacting", "hartree", "hartree-fock", "lda")


@dataclass(frozen=True, eq=False)
class MeanFieldResult:
    """A converged mean-field ground state.

    Attributes:
        method, restricted: what was solved.
        energy and its parts (Ha): kinetic, external, hartree, exchange, correlation.
        orbitals_up, orbitals_down: all orbitals of each spin's final Fock matrix as columns,
            shape (N, N), normalised Σ φ² dx = 1; the first n_σ are occupied.
        eigenvalues_up, eigenvalues_down: orbital energies (Ha), shape (N,).
        iterations, residual: SCF iterations and final max |[F, P]|.
    """

    method: str
    restricted: bool
    n_up: int
    n_down: int
    energy: float
    kinetic_energy: float
    external_energy: float
    hartree_energy: float
    exchange_energy: float
    correlation_energy: float
    orbitals_up: np.ndarray
    orbitals_down: np.ndarray
    eigenvalues_up: np.ndarray
    eigenvalues_down: np.ndarray
    iterations: int
    residual: float
    seconds: float
    dx: float

    @property
    def rdm1_up(self) -> np.ndarray:
        occupied = self.orbitals_up[:, : self.n_up]
        return occupied @ occupied.T

    @property
    def rdm1_down(self) -> np.ndarray:
        occupied = self.orbitals_down[:, : self.n_down]
        return occupied @ occupied.T

    @property
    def rdm1(self) -> np.ndarray:
        return self.rdm1_up + self.rdm1_down

    @property
    def density_up(self) -> np.ndarray:
        return np.sum(self.orbitals_up[:, : self.n_up] ** 2, axis=1)

    @property
    def density_down(self) -> np.ndarray:
        return np.sum(self.orbitals_down[:, : self.n_down] ** 2, axis=1)

    @property
    def density(self) -> np.ndarray:
        return self.density_up + self.density_down

    @property
    def natural_occupations(self) -> np.ndarray:
        """Eigenvalues of γ·dx, descending (integers for a single determinant)."""
        return np.sort(np.linalg.eigvalsh(self.rdm1 * self.dx))[::-1]


@dataclass(frozen=True)
class _Terms:
    fock_up: np.ndarray
    fock_down: np.ndarray
    hartree: float
    exchange: float
    correlation: float


def hartree_potential(system: System, density: np.ndarray) -> np.ndarray:
    """v_H(x) = ∫ w(x, x') n(x') dx', shape (N,), Ha."""
    return system.w @ density * system.grid.dx


def _terms(
    system: System, method: str, rdm_up: np.ndarray, rdm_down: np.ndarray, spin_scaling: bool
) -> _Terms:
    grid = system.grid
    dx = grid.dx
    h = grid.kinetic_dense() + np.diag(system.v_ext)
    if method == "non-interacting":
        return _Terms(h, h, 0.0, 0.0, 0.0)
    density_up, density_down = np.diag(rdm_up).copy(), np.diag(rdm_down).copy()
    density = density_up + density_down
    v_h = hartree_potential(system, density)
    hartree = 0.5 * float(density @ v_h) * dx
    fock_up = h + np.diag(v_h)
    fock_down = fock_up.copy()
    exchange = correlation = 0.0
    if method == "hartree-fock":
        fock_up -= system.w * rdm_up * dx
        fock_down -= system.w * rdm_down * dx
        exchange = -0.5 * float(np.sum(system.w * (rdm_up**2 + rdm_down**2))) * dx * dx
    elif method == "lda":
        v_up, v_down = lda.lda_potentials(density_up, density_down, spin_scaling)
        fock_up += np.diag(v_up)
        fock_down += np.diag(v_down)
        exchange, correlation = lda.lda_energy(density_up, density_down, dx, spin_scaling)
    return _Terms(fock_up, fock_down, hartree, exchange, correlation)


def _diis_extrapolate(focks: list[np.ndarray], errors: list[np.ndarray]) -> np.ndarray:
    size = len(focks)
    b = np.empty((size + 1, size + 1))
    b[-1, :] = b[:, -1] = -1.0
    b[-1, -1] = 0.0
    for i in range(size):
        for j in range(i, size):
            b[i, j] = b[j, i] = float(np.vdot(errors[i], errors[j]))
    rhs = np.zeros(size + 1)
    rhs[-1] = -1.0
    try:
        coefficients = np.linalg.solve(b, rhs)[:size]
    except np.linalg.LinAlgError:
        return focks[-1]
    return sum(c * f for c, f in zip(coefficients, focks, strict=True))


def _occupied_projector(vectors: np.ndarray, count: int) -> np.ndarray:
    occupied = vectors[:, :count]
    return occupied @ occupied.T


def _scf(
    system: System,
    method: str,
    restricted: bool,
    spin_scaling: bool,
    tol: float,
    max_iterations: int,
    diis_size: int,
    break_symmetry: float,
    level_shift: float = 0.0,
) -> MeanFieldResult:
    start = time.perf_counter()
    grid = system.grid
    dx = grid.dx
    n_up, n_down = system.n_up, system.n_down
    h = grid.kinetic_dense() + np.diag(system.v_ext)
    _, vectors = np.linalg.eigh(h)
    vectors_up, vectors_down = vectors.copy(), vectors.copy()
    if break_symmetry and n_down > 0:
        # rotate the down HOMO towards the LUMO to let an unrestricted solution break spin symmetry
        homo, lumo = vectors_down[:, n_down - 1].copy(), vectors_down[:, n_down].copy()
        vectors_down[:, n_down - 1] = np.cos(break_symmetry) * homo + np.sin(break_symmetry) * lumo
        vectors_down[:, n_down] = -np.sin(break_symmetry) * homo + np.cos(break_symmetry) * lumo
    history_fock: list[np.ndarray] = []
    history_error: list[np.ndarray] = []
    residual = np.inf
    for iteration in range(1, max_iterations + 1):  # noqa: B007 (reported after the loop)
        projector_up = _occupied_projector(vectors_up, n_up)
        projector_down = _occupied_projector(vectors_down, n_down)
        terms = _terms(system, method, projector_up / dx, projector_down / dx, spin_scaling)
        fock_up, fock_down = terms.fock_up, terms.fock_down
        if restricted:
            fock_up = fock_down = 0.5 * (fock_up + fock_down)
            projector_down = projector_up
        error = np.concatenate(
            [
                (fock_up @ projector_up - projector_up @ fock_up).ravel(),
                (fock_down @ projector_down - projector_down @ fock_down).ravel(),
            ]
        )
        residual = float(np.max(np.abs(error)))
        if residual < tol or method == "non-interacting":
            break
        history_fock.append(np.stack([fock_up, fock_down]))
        history_error.append(error)
        history_fock, history_error = history_fock[-diis_size:], history_error[-diis_size:]
        extrapolated = (
            _diis_extrapolate(history_fock, history_error) if len(history_fock) > 1 else history_fock[-1]
        )
        if level_shift:
            # raise the virtual space: same fixed point ([F, P] = 0), damped occupied/virtual mixing
            identity = np.eye(grid.points)
            extrapolated = extrapolated + level_shift * np.stack(
                [identity - projector_up, identity - projector_down]
            )
        eigen_up, vectors_up = np.linalg.eigh(extrapolated[0])
        eigen_down, vectors_down = (eigen_up, vectors_up) if restricted else np.linalg.eigh(extrapolated[1])
    else:
        raise SCFConvergenceError(method, residual, max_iterations, tol)
    eigen_up, vectors_up = np.linalg.eigh(fock_up)
    eigen_down, vectors_down = np.linalg.eigh(fock_down)
    orbitals_up, orbitals_down = vectors_up / np.sqrt(dx), vectors_down / np.sqrt(dx)
    density = np.sum(orbitals_up[:, :n_up] ** 2, axis=1) + np.sum(orbitals_down[:, :n_down] ** 2, axis=1)
    kinetic_matrix = grid.kinetic_dense()
    kinetic = float(
        np.sum(vectors_up[:, :n_up] * (kinetic_matrix @ vectors_up[:, :n_up]))
        + np.sum(vectors_down[:, :n_down] * (kinetic_matrix @ vectors_down[:, :n_down]))
    )
    external = float(density @ system.v_ext) * dx
    energy = kinetic + external + terms.hartree + terms.exchange + terms.correlation
    return MeanFieldResult(
        method=method,
        restricted=restricted,
        n_up=n_up,
        n_down=n_down,
        energy=energy,
        kinetic_energy=kinetic,
        external_energy=external,
        hartree_energy=terms.hartree,
        exchange_energy=terms.exchange,
        correlation_energy=terms.correlation,
        orbitals_up=orbitals_up,
        orbitals_down=orbitals_down,
        eigenvalues_up=eigen_up,
        eigenvalues_down=eigen_down,
        iterations=iteration,
        residual=residual,
        seconds=time.perf_counter() - start,
        dx=dx,
    )


def solve_mean_field(
    system: System,
    method: str = "hartree-fock",
    restricted: bool | None = None,
    spin_scaling: bool = True,
    tol: float = 1e-10,
    max_iterations: int = 300,
    diis_size: int = 8,
    break_symmetry: bool = True,
) -> MeanFieldResult:
    """Self-consistent mean-field ground state.

    Args:
        system: the model system.
        method: one of ``METHODS``.
        restricted: same spatial orbitals for both spins (needs n↑ = n↓). Default: True for
            closed shells, else False.
        spin_scaling: LDA only; exact spin scaling of exchange (True) or iDEA's convention of
            evaluating the polarised fit on the total density (False).
        tol: convergence threshold on max |F P − P F| (Ha).
        max_iterations: SCF iterations before :class:`SCFConvergenceError`.
        diis_size: DIIS subspace size.
        break_symmetry: unrestricted only; also start from a spin-symmetry-broken guess and
            keep the lower of the two solutions.

    A run whose DIIS oscillates is retried with a 1 Ha level shift on the virtual orbitals,
    which leaves the converged solution unchanged.

    Raises:
        InvalidParameterError: unknown method; restricted with n↑ ≠ n↓.
        SCFConvergenceError: no convergence; the message reports the residual.
    """
    require(method in METHODS, "method", f"one of {METHODS}", method)
    require(
        system.grid.boundary == "hard-wall", "boundary", "a hard-wall grid (the mean-field solvers' box)",
        system.grid.boundary,
    )  # fmt: skip
    # Fock, density, orbital, DIIS (diis_size × 2 spins × 2) and one-body matrices, all N×N
    require_memory(
        8.0 * (4 * diis_size + 16) * system.grid.points**2,
        "points",
        f"a {method} solve on {system.grid.points} points",
        system.grid.points,
    )
    if restricted is None:
        restricted = system.n_up == system.n_down
    require(
        not restricted or system.n_up == system.n_down,
        "restricted",
        "False for open shells (restricted needs equal numbers of up and down electrons)",
        system.electrons,
    )
    try:
        result = _scf(system, method, restricted, spin_scaling, tol, max_iterations, diis_size, 0.0)
    except SCFConvergenceError:
        # oscillating DIIS (small gaps, coarse grids): retry with a level shift of 1 Ha
        result = _scf(system, method, restricted, spin_scaling, tol, 2 * max_iterations, diis_size, 0.0, 1.0)
    if (
        not restricted
        and break_symmetry
        and method != "non-interacting"
        and system.n_down > 0
        and system.n_up > 0
    ):
        try:
            broken = _scf(system, method, restricted, spin_scaling, tol, max_iterations, diis_size, 0.3)
        except SCFConvergenceError:
            try:
                broken = _scf(
                    system, method, restricted, spin_scaling, tol, 2 * max_iterations, diis_size, 0.3, 1.0
                )
            except SCFConvergenceError:
                broken = result
        if broken.energy < result.energy - 1e-10:
            result = broken
    return result
