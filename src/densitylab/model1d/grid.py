"""Real-space grids and central finite-difference second derivatives.

The grid convention is iDEA's: ``points`` points from ``x_min`` to ``x_max`` inclusive, spacing
``dx = (x_max - x_min) / (points - 1)``, and hard walls (the wavefunction vanishes beyond the
box), so that results can be compared with iDEA point for point.

The grid owns the physics of its box: the stencil of the kinetic operator and the boundary,
"hard-wall" (ψ = 0 beyond the outermost points) or "periodic" (the point after the last is
the first). Every propagator takes both from it: the exact one (sparse operator, or the
transform that diagonalises it, :meth:`Grid.kinetic_eigenvalues`) and the Kohn–Sham one
(:meth:`Grid.kinetic_weights`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cache, cached_property

import numpy as np
import scipy.sparse as sps

from densitylab.errors import require

STENCILS = (3, 5, 7, 9, 11, 13)
BOUNDARIES = ("hard-wall", "periodic")


@cache
def second_derivative_weights(stencil: int) -> tuple[Fraction, ...]:
    """Exact central-difference weights of f'' (times dx²) for a ``stencil``-point stencil.

    Derived here from the Taylor conditions Σ_k w_k k^m = 2 δ_{m2} (m = 0..stencil-1), solved in
    exact rational arithmetic, so the 13-point weights come out as −1/16632, 2/1925, … exactly.

    Returns:
        ``stencil`` weights for offsets −h..h, h = (stencil − 1) / 2.
    """
    require(stencil in STENCILS, "stencil", f"one of {STENCILS}", stencil)
    half = (stencil - 1) // 2
    offsets = list(range(-half, half + 1))
    size = len(offsets)
    # Gauss-Jordan elimination on the Vandermonde system with Fractions.
    rows = [[Fraction(k) ** m for k in offsets] + [Fraction(2 if m == 2 else 0)] for m in range(size)]
    for col in range(size):
        pivot = next(r for r in range(col, size) if rows[r][col] != 0)
        rows[col], rows[pivot] = rows[pivot], rows[col]
        lead = rows[col][col]
        rows[col] = [value / lead for value in rows[col]]
        for r in range(size):
            if r != col and rows[r][col] != 0:
                factor = rows[r][col]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[col], strict=True)]
    return tuple(row[-1] for row in rows)


@dataclass(frozen=True)
class Grid:
    """A uniform 1D grid with a finite-difference Laplacian.

    Attributes:
        points: number of grid points N.
        x_min, x_max: box edges (bohr), both on the grid.
        stencil: points in the central second-derivative stencil (3, 5, …, 13).
        boundary: "hard-wall" or "periodic" (see the module docstring).
    """

    points: int
    x_min: float
    x_max: float
    stencil: int = 13
    boundary: str = "hard-wall"

    def __post_init__(self) -> None:
        require(
            isinstance(self.points, int | np.integer) and not isinstance(self.points, bool),
            "points",
            "an integer",
            self.points,
        )
        require(self.stencil in STENCILS, "stencil", f"one of {STENCILS}", self.stencil)
        require(self.boundary in BOUNDARIES, "boundary", f"one of {BOUNDARIES}", self.boundary)
        minimum = max((self.stencil + 1) // 2, 2)
        require(
            self.points >= minimum,
            "points",
            f"at least {minimum} points for a {self.stencil}-point stencil (half-width + 1)",
            self.points,
        )
        require(np.isfinite(self.x_min) and np.isfinite(self.x_max), "x_min/x_max", "finite numbers")
        require(self.x_max > self.x_min, "x_max", f"a value greater than x_min={self.x_min}", self.x_max)

    @cached_property
    def x(self) -> np.ndarray:
        """Grid coordinates, shape (N,), bohr."""
        return np.linspace(self.x_min, self.x_max, self.points)

    @property
    def dx(self) -> float:
        """Grid spacing (bohr)."""
        return (self.x_max - self.x_min) / (self.points - 1)

    @property
    def kinetic_offsets(self) -> np.ndarray:
        """Stencil offsets −h..h, shape (stencil,)."""
        half = (self.stencil - 1) // 2
        return np.arange(-half, half + 1)

    @cached_property
    def kinetic_weights(self) -> np.ndarray:
        """Weights of T = −½ d²/dx² for each stencil offset, shape (stencil,), Ha."""
        weights = np.array([float(w) for w in second_derivative_weights(self.stencil)])
        return -0.5 * weights / self.dx**2

    def with_boundary(self, boundary: str) -> Grid:
        """The same points with another boundary."""
        return replace(self, boundary=boundary)

    def kinetic_sparse(self) -> sps.csr_matrix:
        """Single-particle kinetic operator −½ D2 as a sparse (N, N) matrix with the grid's
        boundary (periodic: the stencil wraps around), Ha."""
        n = self.points
        pairs = list(zip(self.kinetic_offsets.tolist(), self.kinetic_weights, strict=True))
        diagonals = [np.full(n - abs(k), w) for k, w in pairs]
        offsets = [k for k, _ in pairs]
        if self.boundary == "periodic":
            require(n > self.stencil, "points", f"more than {self.stencil} points on a periodic grid", n)
            for k, w in pairs:
                if k != 0:
                    diagonals.append(np.full(abs(k), w))
                    offsets.append(k - n if k > 0 else k + n)
        return sps.diags(diagonals, offsets, shape=(n, n), format="csr")

    def kinetic_eigenvalues(self) -> np.ndarray:
        """Eigenvalues of the kinetic operator in the order of the transform that diagonalises
        it, (N,), Ha: FFT order on a periodic grid (any stencil); type-I sine-transform order
        with hard walls, w₀ + 2w₁ cos(πk/(N + 1)), which needs the 3-point stencil."""
        weights = self.kinetic_weights
        if self.boundary == "periodic":
            k = 2.0 * np.pi * np.fft.fftfreq(self.points, self.dx)
            eigenvalues = np.full(self.points, weights[len(weights) // 2])
            for offset, weight in zip(self.kinetic_offsets, weights, strict=True):
                if offset > 0:
                    eigenvalues = eigenvalues + 2.0 * weight * np.cos(k * offset * self.dx)
            return eigenvalues
        require(len(weights) == 3, "boundary", "'periodic' for a stencil wider than 3 points")
        k = np.arange(1, self.points + 1)
        return weights[1] + 2.0 * weights[2] * np.cos(np.pi * k / (self.points + 1))

    def kinetic_dense(self) -> np.ndarray:
        """Single-particle kinetic operator as a dense (N, N) matrix, Ha."""
        return self.kinetic_sparse().toarray()

    def second_derivative(self, values: np.ndarray) -> np.ndarray:
        """Apply the stencil's d²/dx² to ``values`` along axis 0 (hard walls)."""
        return (self.kinetic_sparse() @ values) / -0.5

    def integrate(self, values: np.ndarray, axis: int = -1) -> np.ndarray:
        """Riemann sum Σ f dx along ``axis`` (exact for the discrete inner product used here)."""
        return np.sum(values, axis=axis) * self.dx
