"""Kohn–Sham inversion: the local potential whose non-interacting ground state has a given
density.

Newton's method on the density residual, with the exact static KS response
χ_s(x, x') = Σ_σ Σ_{i occ} Σ_{a unocc} 2 φ_i(x)φ_a(x)φ_a(x')φ_i(x') / (ε_i − ε_a),
inverted on its well-conditioned subspace (truncated eigen-decomposition) and damped by a
backtracking line search on ∫|Δn| dx. Directions the density cannot see (a constant shift, the
far tails) are left as they start, so the start's asymptotics survive.

Gauge: the result is shifted so that v_KS − v_ext averages to zero at the two box edges,
i.e. v_KS matches v_ext at the box edge.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from densitylab.errors import DensitylabError, require
from densitylab.model1d.grid import Grid
from densitylab.model1d.system import System, parse_electrons


@dataclass(frozen=True, eq=False)
class InversionResult:
    """Attributes:
    v_ks: the Kohn–Sham potential, shape (N,), Ha, in the edge gauge.
    density: the KS density it produces, shape (N,), bohr⁻¹.
    error: ∫ |n_KS − n_target| dx.
    iterations, seconds: the cost.
    eigenvalues: KS orbital energies (Ha) in the returned gauge.
    """

    v_ks: np.ndarray
    density: np.ndarray
    error: float
    iterations: int
    seconds: float
    eigenvalues: np.ndarray


def _ks_ground(grid: Grid, kinetic: np.ndarray, v: np.ndarray, counts: tuple[int, int]):
    eigenvalues, vectors = np.linalg.eigh(kinetic + np.diag(v))
    density = sum(np.sum(vectors[:, :n] ** 2, axis=1) for n in counts) / grid.dx
    return eigenvalues, vectors, density


def _response(
    grid: Grid, eigenvalues: np.ndarray, vectors: np.ndarray, counts: tuple[int, int]
) -> np.ndarray:
    """δn(x)/δv(x') as a matrix J with δn = J δv, shape (N, N), bohr⁻¹ Ha⁻¹."""
    response = np.zeros((grid.points, grid.points))
    for n in counts:
        for i in range(n):
            pair = vectors[:, i : i + 1] * vectors[:, n:]
            response += (pair / (eigenvalues[i] - eigenvalues[n:])) @ pair.T
    return 2.0 * response / grid.dx


def invert_density(
    grid: Grid,
    density: np.ndarray,
    electrons: str,
    v_start: np.ndarray,
    v_edge: np.ndarray | None = None,
    tol: float = 1e-8,
    max_iterations: int = 100,
    rcond: float = 1e-10,
) -> InversionResult:
    """Find v_KS with non-interacting density equal to ``density``.

    Args:
        grid: the grid.
        density: target density, shape (N,), bohr⁻¹, integrating to the electron count.
        electrons: spin string; n↑ and n↓ orbitals are filled in the common potential.
        v_start: starting potential, shape (N,), Ha (its tails are kept).
        v_edge: potential to match at the box edges (default ``v_start``).
        tol: target ∫|Δn| dx.
        max_iterations: Newton iterations before giving up.
        rcond: relative cut-off of the response's eigenvalues.

    Raises:
        InvalidParameterError: density with wrong shape, negative or non-finite values, or the
            wrong electron count.
        DensitylabError: the target was not reached.
    """
    counts = parse_electrons(electrons)
    density = np.asarray(density, dtype=float)
    require(density.shape == (grid.points,), "density", f"shape ({grid.points},)", density.shape)
    require(
        bool(np.all(np.isfinite(density))) and bool(np.all(density >= -1e-12)),
        "density",
        "finite, non-negative values",
    )
    total = float(np.sum(density) * grid.dx)
    require(
        abs(total - sum(counts)) < 1e-6 * max(1, sum(counts)),
        "density",
        f"a density integrating to {sum(counts)} electrons",
        round(total, 8),
    )
    start = time.perf_counter()
    kinetic = grid.kinetic_dense()
    v = np.array(v_start, dtype=float)
    eigenvalues, vectors, current = _ks_ground(grid, kinetic, v, counts)
    error = float(np.sum(np.abs(current - density)) * grid.dx)
    iteration = 0
    while error > tol and iteration < max_iterations:
        iteration += 1
        response = _response(grid, eigenvalues, vectors, counts)
        values, modes = np.linalg.eigh(response)
        keep = np.abs(values) > rcond * np.abs(values).max()
        step = modes[:, keep] @ ((modes[:, keep].T @ (density - current)) / values[keep])
        scale = 1.0
        while True:
            trial = v + scale * step
            trial_eigenvalues, trial_vectors, trial_density = _ks_ground(grid, kinetic, trial, counts)
            trial_error = float(np.sum(np.abs(trial_density - density)) * grid.dx)
            if trial_error < error or scale < 1e-4:
                break
            scale *= 0.5
        if trial_error >= error:
            break
        v, eigenvalues, vectors, current, error = (
            trial,
            trial_eigenvalues,
            trial_vectors,
            trial_density,
            trial_error,
        )
    if error > tol:
        raise DensitylabError(
            f"Kohn–Sham inversion stopped at ∫|Δn|dx = {error:.3e} > tol {tol:.1e} after {iteration} "
            "iterations; the target density may not be non-interacting v-representable on this grid."
        )
    reference = np.asarray(v_start if v_edge is None else v_edge, dtype=float)
    shift = 0.5 * ((reference[0] - v[0]) + (reference[-1] - v[-1]))
    return InversionResult(
        v_ks=v + shift,
        density=current,
        error=error,
        iterations=iteration,
        seconds=time.perf_counter() - start,
        eigenvalues=eigenvalues + shift,
    )


def invert_system_density(system: System, density: np.ndarray, tol: float = 1e-8) -> InversionResult:
    """Invert a density of ``system``: start from v_ext + (N−1)/N·v_H[n] (Fermi–Amaldi, which
    has the right far-field tail) and return v_KS matching v_ext at the box edges."""
    density = np.asarray(density, dtype=float)
    points = system.grid.points
    require(density.shape == (points,), "density", f"shape ({points},)", density.shape)
    v_hartree = system.w @ density * system.grid.dx
    v_start = system.v_ext + (system.count - 1) / system.count * v_hartree
    return invert_density(system.grid, density, system.electrons, v_start, v_edge=system.v_ext, tol=tol)
