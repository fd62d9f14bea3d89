"""Exact two-electron singlets for many potentials at once (same grid and interaction).

Datasets of thousands of small systems (e.g. 62 points, singlet dimension 1953) are bound by
per-call overhead, not arithmetic, when solved one by one. Here a block of B systems is solved
together by LOBPCG with one vector per system, vectorised over the batch:

* Ψ_b is a symmetric N×N matrix (the spatial singlet), so H Ψ = T Ψ + Ψ T + V∘Ψ becomes
  A + Aᵀ + V∘Ψ with A = Ψ T: one large GEMM for the whole batch.
* The preconditioner is the exact inverse of each system's separable one-body part
  h_b ⊗ 1 + 1 ⊗ h_b, h_b = T + v_b, applied in h_b's eigenbasis.
* Rayleigh–Ritz on span{Ψ, W, P} uses 3×3 batched eigenproblems; converged systems are
  frozen.

The result equals :func:`densitylab.model1d.exact.solve_exact` for electrons "ud" (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from densitylab.errors import DensitylabError, require
from densitylab.model1d.grid import Grid
from densitylab.model1d.interactions import Interaction


@dataclass(frozen=True, eq=False)
class SingletBatch:
    """Exact ground-state singlets of B systems on one grid (atomic units).

    Attributes:
        energy: (B,) Ha; kinetic_energy, external_energy, interaction_energy: (B,) Ha.
        wavefunction: (B, N, N) symmetric spatial ψ(x1, x2) with Σ ψ² dx² = 1.
        iterations: LOBPCG iterations used; residual: (B,) final residual norms.
    """

    energy: np.ndarray
    kinetic_energy: np.ndarray
    external_energy: np.ndarray
    interaction_energy: np.ndarray
    wavefunction: np.ndarray
    iterations: int
    residual: np.ndarray
    dx: float

    @property
    def rdm1(self) -> np.ndarray:
        """Spin-summed 1-RDM γ(x, x') = 2 Σ_y ψ(x, y) ψ(x', y) dx, (B, N, N), bohr⁻¹."""
        return 2.0 * self.wavefunction @ self.wavefunction * self.dx

    @property
    def density(self) -> np.ndarray:
        """n(x) = 2 Σ_y ψ(x, y)² dx, (B, N), bohr⁻¹."""
        return 2.0 * np.sum(self.wavefunction**2, axis=2) * self.dx


DENSE_POINTS = 16  # grids this small are diagonalised directly in the symmetric subspace


def _dense_singlets(
    grid: Grid, kinetic: np.ndarray, w: np.ndarray, external: np.ndarray, diagonal: np.ndarray
):
    """Tiny grids (e.g. the 2–6-point systems of the compression study): build H in an
    orthonormal basis of symmetric N×N matrices and diagonalise it, batched."""
    points = grid.points
    rows, cols = np.triu_indices(points)
    basis = np.zeros((rows.size, points, points))
    basis[np.arange(rows.size), rows, cols] = 1.0
    basis[np.arange(rows.size), cols, rows] = 1.0
    basis /= np.linalg.norm(basis.reshape(rows.size, -1), axis=1)[:, None, None]
    kinetic_part = basis @ kinetic
    kinetic_part = kinetic_part + kinetic_part.transpose(0, 2, 1)
    kinetic_matrix = np.einsum("aij,bij->ab", basis, kinetic_part)
    potential_matrix = np.einsum("aij,bij,sij->sab", basis, basis, diagonal)
    energies, vectors = np.linalg.eigh(kinetic_matrix[None] + potential_matrix)
    psi = np.einsum("sa,aij->sij", vectors[:, :, 0], basis)
    sign = np.sign(np.einsum("bii->b", psi))
    psi *= np.where(sign == 0, 1.0, sign)[:, None, None]
    weight = psi**2
    energy = energies[:, 0]
    return SingletBatch(
        energy=energy,
        kinetic_energy=energy - np.einsum("bij,bij->b", weight, diagonal),
        external_energy=np.einsum("bij,bij->b", weight, external),
        interaction_energy=np.einsum("bij,ij->b", weight, w),
        wavefunction=psi / grid.dx,
        iterations=0,
        residual=np.zeros(len(energy)),
        dx=grid.dx,
    )


def rdm1_from_orbitals(*orbitals: np.ndarray, occupation: float = 1.0) -> np.ndarray:
    """Σ_k occupation·φ_k(x)φ_k(x') over orbitals of shape (B, N) each → (B, N, N)."""
    return occupation * sum(phi[:, :, None] * phi[:, None, :] for phi in orbitals)


def _inner(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Frobenius inner product of each pair of matrices, (B, N, N) × (B, N, N) → (B,)."""
    return np.vecdot(a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1))


def one_body_eigen(grid: Grid, v_ext: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of h_b = T + v_b for each potential: energies (B, N), unit eigenvectors (B, N, N)."""
    points = grid.points
    return np.linalg.eigh(grid.kinetic_dense()[None] + v_ext[:, :, None] * np.eye(points)[None])


def solve_singlet_batch(
    grid: Grid,
    v_ext: np.ndarray,
    interaction: Interaction,
    tol: float = 1e-9,
    max_iterations: int = 200,
    one_body: tuple[np.ndarray, np.ndarray] | None = None,
) -> SingletBatch:
    """Exact two-electron singlet ground states for a batch of external potentials.

    Args:
        grid: the shared grid (N points).
        v_ext: external potentials, shape (B, N), Ha.
        interaction: the shared interaction.
        tol: residual norm ‖HΨ − EΨ‖ (unit-norm Ψ) at which a system is converged; the
            energy error is then ~tol².
        max_iterations: iterations before :class:`DensitylabError`.
    """
    v_ext = np.asarray(v_ext, dtype=float)
    require(
        v_ext.ndim == 2 and v_ext.shape[1] == grid.points, "v_ext", f"shape (B, {grid.points})", v_ext.shape
    )
    require(bool(np.all(np.isfinite(v_ext))), "v_ext", "finite values")
    batch, points = v_ext.shape
    dx = grid.dx
    kinetic = grid.kinetic_dense()
    w = interaction.matrix(grid.x)
    external = v_ext[:, :, None] + v_ext[:, None, :]
    diagonal = external + w[None]
    if points <= DENSE_POINTS:
        return _dense_singlets(grid, kinetic, w, external, diagonal)

    def apply(psi: np.ndarray, index: np.ndarray) -> np.ndarray:
        half = (psi.reshape(-1, points) @ kinetic).reshape(psi.shape)
        return half + half.transpose(0, 2, 1) + diagonal[index] * psi

    # preconditioner basis: eigenpairs of h_b = T + v_b (a screened mean field was tried and
    # gave no fewer iterations on the random family, at the cost of a second diagonalisation)
    energies, orbitals = one_body if one_body is not None else one_body_eigen(grid, v_ext)
    orbitals_t = orbitals.transpose(0, 2, 1)
    level = energies[:, :, None] + energies[:, None, :]
    gap = np.maximum(energies[:, 1] - energies[:, 0], 1e-3)
    denominator = level - level[:, :1, :1] + gap[:, None, None]

    def precondition(residual: np.ndarray, index: np.ndarray) -> np.ndarray:
        u, u_t = orbitals[index], orbitals_t[index]
        return u @ ((u_t @ residual @ u) / denominator[index]) @ u_t

    def normalise(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        norms = np.sqrt(np.maximum(_inner(vectors, vectors), 0.0))
        safe = np.where(norms > 1e-300, norms, 1.0)
        return vectors / safe[:, None, None], norms

    psi = orbitals[:, :, :1] * orbitals_t[:, :1, :]  # ground determinant φ0(x)φ0(y)
    psi, _ = normalise(psi)
    everything = np.arange(batch)
    h_psi = apply(psi, everything)
    search = np.zeros_like(psi)
    h_search = np.zeros_like(psi)
    active = np.ones(batch, dtype=bool)
    residual_norm = np.full(batch, np.inf)
    for iteration in range(1, max_iterations + 1):
        rayleigh = _inner(psi, h_psi)
        residual = h_psi - rayleigh[:, None, None] * psi
        residual_norm = np.sqrt(_inner(residual, residual))
        active = residual_norm > tol
        if not np.any(active):
            break
        index = np.nonzero(active)[0]
        x, hx, p, hp = psi[index], h_psi[index], search[index], h_search[index]
        trial = precondition(residual[index], index)
        trial = 0.5 * (trial + trial.transpose(0, 2, 1))
        trial -= _inner(x, trial)[:, None, None] * x
        trial, trial_norm = normalise(trial)
        h_trial = apply(trial, index)
        # orthonormalise the previous direction against x and the trial vector
        overlap_x, overlap_t = _inner(x, p), _inner(trial, p)
        p = p - overlap_x[:, None, None] * x - overlap_t[:, None, None] * trial
        hp = hp - overlap_x[:, None, None] * hx - overlap_t[:, None, None] * h_trial
        p_norm = np.sqrt(np.maximum(_inner(p, p), 0.0))
        usable = p_norm > 1e-8 * np.maximum(trial_norm, 1e-300)
        scale = np.where(usable, 1.0 / np.where(p_norm > 0, p_norm, 1.0), 0.0)
        p, hp = p * scale[:, None, None], hp * scale[:, None, None]
        basis, h_basis = (x, trial, p), (hx, h_trial, hp)
        projected = np.empty((len(index), 3, 3))
        for i in range(3):
            for j in range(i, 3):
                projected[:, i, j] = projected[:, j, i] = _inner(basis[i], h_basis[j])
        projected[~usable, 2, :] = 0.0
        projected[~usable, :, 2] = 0.0
        projected[~usable, 2, 2] = 1e30
        vanished = trial_norm <= 1e-300  # preconditioned residual vanished: nothing new to add
        projected[vanished, 1, :] = 0.0
        projected[vanished, :, 1] = 0.0
        projected[vanished, 1, 1] = 1e30
        _, vectors = np.linalg.eigh(projected)
        c = vectors[:, :, 0]
        new_search = c[:, 1, None, None] * trial + c[:, 2, None, None] * p
        new_h_search = c[:, 1, None, None] * h_trial + c[:, 2, None, None] * hp
        new_psi = c[:, 0, None, None] * x + new_search
        new_h_psi = c[:, 0, None, None] * hx + new_h_search
        new_psi, norms = normalise(new_psi)
        psi[index], h_psi[index] = new_psi, new_h_psi / norms[:, None, None]
        search[index], h_search[index] = new_search, new_h_search
        if iteration % 10 == 0:  # refresh H Ψ against drift of the recurrence
            h_psi[index] = apply(psi[index], index)
    else:
        raise DensitylabError(
            f"batched singlet solver: {int(np.sum(active))} of {batch} systems unconverged after "
            f"{max_iterations} iterations (largest residual {residual_norm.max():.2e} > tol {tol:.1e})"
        )
    h_psi = apply(psi, everything)
    energy = _inner(psi, h_psi)
    sign = np.sign(np.einsum("bii->b", psi))
    psi *= np.where(sign == 0, 1.0, sign)[:, None, None]
    weight = psi**2
    return SingletBatch(
        energy=energy,
        kinetic_energy=energy - np.einsum("bij,bij->b", weight, diagonal),
        external_energy=np.einsum("bij,bij->b", weight, external),
        interaction_energy=np.einsum("bij,ij->b", weight, w),
        wavefunction=psi / dx,
        iterations=iteration,
        residual=residual_norm,
        dx=dx,
    )


@dataclass(frozen=True, eq=False)
class TwoElectronUHFBatch:
    """Unrestricted Hartree–Fock ground states of B one-up-one-down systems (atomic units).

    Attributes:
        energy, kinetic_energy: (B,) Ha.
        orbital_up, orbital_down: (B, N), normalised Σ φ² dx = 1.
        iterations, residual: iterations used and final max residual per system.
    """

    energy: np.ndarray
    kinetic_energy: np.ndarray
    orbital_up: np.ndarray
    orbital_down: np.ndarray
    iterations: int
    residual: np.ndarray

    @property
    def density(self) -> np.ndarray:
        return self.orbital_up**2 + self.orbital_down**2

    @property
    def rdm1(self) -> np.ndarray:
        return rdm1_from_orbitals(self.orbital_up, self.orbital_down)


def uhf_two_electron_batch(
    grid: Grid,
    v_ext: np.ndarray,
    interaction: Interaction,
    tol: float = 1e-9,
    max_iterations: int = 300,
    break_symmetry: float = 0.3,
    one_body: tuple[np.ndarray, np.ndarray] | None = None,
) -> TwoElectronUHFBatch:
    """UHF for one up and one down electron, for a batch of potentials.

    For two electrons the self-exchange cancels the self-Hartree term, so
    E = ⟨φ↑|h|φ↑⟩ + ⟨φ↓|h|φ↓⟩ + ∫∫ φ↑(x)² w(x, x') φ↓(x')², and each electron moves in the
    other's potential: F↑ = h + v[φ↓²], F↓ = h + v[φ↑²]. The energy is quadratic in each
    orbital with the other fixed, so block-coordinate descent, one preconditioned
    Rayleigh–Ritz step (in span{φ, K r, previous step}) per spin per iteration, lowers E
    monotonically at O(N²) cost per step (no diagonalisations). The start mixes the two
    lowest mean-field orbitals by ±``break_symmetry`` rad, so that a spin-symmetry-broken
    minimum is found where one exists; otherwise it relaxes to the restricted solution.

    Near a symmetry-breaking bifurcation the energy surface is flat and descent is slow; the
    few systems still unconverged after ``max_iterations`` are finished one by one by the
    DIIS solver of :mod:`densitylab.model1d.meanfield` (which keeps the lower of a
    symmetric and a broken start).
    """
    v_ext = np.asarray(v_ext, dtype=float)
    require(
        v_ext.ndim == 2 and v_ext.shape[1] == grid.points, "v_ext", f"shape (B, {grid.points})", v_ext.shape
    )
    batch = v_ext.shape[0]
    dx = grid.dx
    kinetic = grid.kinetic_dense()
    w = interaction.matrix(grid.x)
    energies, basis = one_body if one_body is not None else one_body_eigen(grid, v_ext)
    basis_t = basis.transpose(0, 2, 1)
    denominator = energies - energies[:, :1] + np.maximum(energies[:, 1:2] - energies[:, :1], 1e-3)
    # unit vectors c = φ √dx
    up = np.cos(break_symmetry) * basis[:, :, 0] + np.sin(break_symmetry) * basis[:, :, 1]
    down = np.cos(break_symmetry) * basis[:, :, 0] - np.sin(break_symmetry) * basis[:, :, 1]
    previous = {"up": np.zeros_like(up), "down": np.zeros_like(down)}
    orbitals = {"up": up, "down": down}

    residual_norm = np.full(batch, np.inf)
    active = np.arange(batch)

    def descend(active: np.ndarray, limit: int) -> tuple[np.ndarray, int]:
        """Block-coordinate descent on the systems ``active`` for at most ``limit`` iterations."""
        iteration = 0
        while iteration < limit:
            iteration += 1
            worst = np.zeros(active.size)
            v_active, basis_active, basis_t_active = v_ext[active], basis[active], basis_t[active]
            denominator_active = denominator[active]
            for spin, other in (("up", "down"), ("down", "up")):
                c, p, c_other = orbitals[spin][active], previous[spin][active], orbitals[other][active]
                potential = (c_other**2) @ w  # v[φ_other²]: Σ_y w φ² dx = Σ_y w c² for c = φ √dx

                def operator(vectors: np.ndarray, local=potential + v_active) -> np.ndarray:
                    return vectors @ kinetic + local * vectors  # h = T + v_ext: one GEMM for the batch

                fc = operator(c)
                rayleigh = np.sum(c * fc, axis=1)
                residual = fc - rayleigh[:, None] * c
                worst = np.maximum(worst, np.linalg.norm(residual, axis=1))
                trial = np.einsum(
                    "bij,bj->bi",
                    basis_active,
                    np.einsum("bij,bj->bi", basis_t_active, residual) / denominator_active,
                )
                trial -= np.sum(c * trial, axis=1)[:, None] * c
                trial_norm = np.linalg.norm(trial, axis=1)
                trial /= np.where(trial_norm > 1e-300, trial_norm, 1.0)[:, None]
                p = p - np.sum(c * p, axis=1)[:, None] * c - np.sum(trial * p, axis=1)[:, None] * trial
                p_norm = np.linalg.norm(p, axis=1)
                usable = p_norm > 1e-8
                p = p / np.where(usable, p_norm, 1.0)[:, None] * usable[:, None]
                vectors = (c, trial, p)
                images = (fc, operator(trial), operator(p))
                projected = np.empty((active.size, 3, 3))
                for i in range(3):
                    for j in range(i, 3):
                        projected[:, i, j] = projected[:, j, i] = np.sum(vectors[i] * images[j], axis=1)
                projected[~usable, 2, :] = 0.0
                projected[~usable, :, 2] = 0.0
                projected[~usable, 2, 2] = 1e30
                vanished = trial_norm <= 1e-14  # residual already zero (or no room left, e.g. 2 points)
                projected[vanished, 1, :] = 0.0
                projected[vanished, :, 1] = 0.0
                projected[vanished, 1, 1] = 1e30
                _, eigenvectors = np.linalg.eigh(projected)
                coefficients = eigenvectors[:, :, 0]
                step = coefficients[:, 1, None] * trial + coefficients[:, 2, None] * p
                new = coefficients[:, 0, None] * c + step
                orbitals[spin][active] = new / np.linalg.norm(new, axis=1)[:, None]
                previous[spin][active] = step
            residual_norm[active] = worst
            active = active[worst >= tol]
            if active.size == 0:
                break
        return active, iteration

    active, iteration = descend(np.arange(batch), max_iterations)
    stubborn = []
    for index in active:  # stragglers near a bifurcation: DIIS one by one
        from densitylab.errors import SCFConvergenceError
        from densitylab.model1d.meanfield import solve_mean_field
        from densitylab.model1d.system import System

        system = System(grid=grid, v_ext=v_ext[index], electrons="ud", interaction=interaction)
        try:
            result = solve_mean_field(system, "hartree-fock", restricted=False, tol=min(tol, 1e-9))
        except SCFConvergenceError:
            stubborn.append(index)  # DIIS oscillates; the monotone descent will get there
            continue
        orbitals["up"][index] = result.orbitals_up[:, 0] * np.sqrt(dx)
        orbitals["down"][index] = result.orbitals_down[:, 0] * np.sqrt(dx)
        residual_norm[index] = result.residual
    if stubborn:
        left, extra = descend(np.array(stubborn), 100 * max_iterations)
        iteration += extra
        if left.size:
            raise DensitylabError(
                f"batched UHF: {left.size} of {batch} systems unconverged (largest residual "
                f"{residual_norm[left].max():.2e} > tol {tol:.1e}) after descent and DIIS"
            )
    c_up, c_down = orbitals["up"], orbitals["down"]
    kinetic_energy = np.einsum("bi,ij,bj->b", c_up, kinetic, c_up) + np.einsum(
        "bi,ij,bj->b", c_down, kinetic, c_down
    )
    one_body = kinetic_energy + np.sum(v_ext * (c_up**2 + c_down**2), axis=1)
    coulomb = np.einsum("bi,ij,bj->b", c_up**2, w, c_down**2)
    sign_up = np.sign(c_up.sum(axis=1))
    sign_down = np.sign(c_down.sum(axis=1))
    return TwoElectronUHFBatch(
        energy=one_body + coulomb,
        kinetic_energy=kinetic_energy,
        orbital_up=c_up * np.where(sign_up == 0, 1, sign_up)[:, None] / np.sqrt(dx),
        orbital_down=c_down * np.where(sign_down == 0, 1, sign_down)[:, None] / np.sqrt(dx),
        iterations=iteration,
        residual=residual_norm,
    )
