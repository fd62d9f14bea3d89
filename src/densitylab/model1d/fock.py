"""Antisymmetric spin blocks: ordered same-spin coordinates and their kinetic operators.

A spin block holds n same-spin electrons on N grid points. Its antisymmetric wavefunctions are
stored on ordered tuples i_1 < … < i_n only (dimension C(N, n)), in colexicographic order so
that a tuple's index is its combinatorial rank Σ_k C(i_k, k+1). The full Nx^n space is never
built. The kinetic operator Σ_k T_k on this space is sparse with at most n·(stencil−1)+1 entries
a row; moving coordinate k past others gives the fermionic sign.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cache, cached_property
from math import comb

import numpy as np
import scipy.sparse as sps

from densitylab.model1d.grid import Grid


@cache
def _binomial_table(points: int, electrons: int) -> np.ndarray:
    """C(i, k) for i < points + 1, k ≤ electrons, as int64, shape (points + 1, electrons + 1)."""
    return np.array([[comb(i, k) for k in range(electrons + 1)] for i in range(points + 1)], dtype=np.int64)


def colex_rank(tuples: np.ndarray, points: int) -> np.ndarray:
    """Colex rank of sorted tuples (rows), shape (D, n) → (D,)."""
    n = tuples.shape[1]
    if n == 0:
        return np.zeros(tuples.shape[0], dtype=np.int64)
    table = _binomial_table(points, n)
    return sum(table[tuples[:, k], k + 1] for k in range(n))


def ordered_tuples(points: int, electrons: int) -> np.ndarray:
    """All i_1 < … < i_n in colex order, shape (C(points, n), n), int64."""
    if electrons == 0:
        return np.zeros((1, 0), dtype=np.int64)
    lexicographic = np.fromiter(
        itertools.chain.from_iterable(itertools.combinations(range(points), electrons)),
        dtype=np.int64,
        count=comb(points, electrons) * electrons,
    ).reshape(-1, electrons)
    tuples = np.empty_like(lexicographic)
    tuples[colex_rank(lexicographic, points)] = lexicographic
    return tuples


@dataclass(frozen=True, eq=False)
class SpinBlock:
    """n same-spin electrons on a grid, in the antisymmetric (ordered-tuple) representation."""

    grid: Grid
    electrons: int

    @property
    def dimension(self) -> int:
        return comb(self.grid.points, self.electrons)

    @cached_property
    def tuples(self) -> np.ndarray:
        """Grid indices of each basis tuple, shape (D, n)."""
        return ordered_tuples(self.grid.points, self.electrons)

    @cached_property
    def kinetic(self) -> sps.csr_matrix:
        """Σ_k T_k on the antisymmetric block, sparse (D, D), Ha."""
        points, n, tuples = self.grid.points, self.electrons, self.tuples
        dimension = tuples.shape[0]
        if n == 0:
            return sps.csr_matrix((1, 1))
        offsets, weights = self.grid.kinetic_offsets, self.grid.kinetic_weights
        rows, cols, values = (
            [np.arange(dimension)],
            [np.arange(dimension)],
            [np.full(dimension, n * weights[offsets == 0][0])],
        )
        for k in range(n):
            others = np.delete(tuples, k, axis=1)
            for offset, weight in zip(offsets, weights, strict=True):
                if offset == 0:
                    continue
                moved = tuples[:, k] + offset
                valid = (moved >= 0) & (moved < points) & ~np.any(others == moved[:, None], axis=1)
                if not np.any(valid):
                    continue
                index = np.nonzero(valid)[0]
                old, new, rest = tuples[index, k], moved[index], others[index]
                low, high = np.minimum(old, new), np.maximum(old, new)
                crossings = np.sum((rest > low[:, None]) & (rest < high[:, None]), axis=1)
                target = np.sort(np.concatenate([rest, new[:, None]], axis=1), axis=1)
                rows.append(index)
                cols.append(colex_rank(target, points))
                values.append(weight * (1.0 - 2.0 * (crossings % 2)))
        matrix = sps.coo_matrix(
            (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))),
            shape=(dimension, dimension),
        )
        return matrix.tocsr()

    @cached_property
    def removal(self) -> sps.csr_matrix:
        """Map ψ(I) → Φ(x, R) = sign·ψ(x ∪ R), sparse (N·C(N, n−1), D), for 1-RDMs."""
        points, n, tuples = self.grid.points, self.electrons, self.tuples
        rest_dimension = comb(points, n - 1)
        rows, cols, values = [], [], []
        for k in range(n):
            rest_rank = colex_rank(np.delete(tuples, k, axis=1), points)
            rows.append(tuples[:, k] * rest_dimension + rest_rank)
            cols.append(np.arange(tuples.shape[0]))
            values.append(np.full(tuples.shape[0], (-1.0) ** k))
        return sps.coo_matrix(
            (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))),
            shape=(points * rest_dimension, tuples.shape[0]),
        ).tocsr()

    def one_body_sum(self, values: np.ndarray) -> np.ndarray:
        """Σ_k f(x_{i_k}) for each tuple, shape (D,)."""
        return values[self.tuples].sum(axis=1) if self.electrons else np.zeros(1)

    def pair_sum(self, pair_values: np.ndarray) -> np.ndarray:
        """Σ_{k<l} w(x_{i_k}, x_{i_l}) for each tuple, shape (D,)."""
        total = np.zeros(self.tuples.shape[0])
        for k, l in itertools.combinations(range(self.electrons), 2):
            total += pair_values[self.tuples[:, k], self.tuples[:, l]]
        return total

    def determinant(self, orbitals: np.ndarray) -> np.ndarray:
        """Slater determinant of the given n orbitals (columns of (N, n)) on each tuple, shape (D,)."""
        if self.electrons == 0:
            return np.ones(1)
        return np.linalg.det(orbitals[self.tuples, :])

    @cached_property
    def _signed_permutations(self) -> list[tuple[tuple[int, ...], float]]:
        result = []
        for permutation in itertools.permutations(range(self.electrons)):
            inversions = sum(1 for a, b in itertools.combinations(permutation, 2) if a > b)
            result.append((permutation, -1.0 if inversions % 2 else 1.0))
        return result

    def transform_cost(self, columns: int) -> float:
        """Multiply-adds of :meth:`transform` on ``columns`` columns."""
        points = self.grid.points
        return float(self.electrons * points ** (self.electrons + 1) * columns) if self.electrons > 1 else 0.0

    def transform(
        self, matrix: np.ndarray, values: np.ndarray, chunk_elements: int = 4_000_000
    ) -> np.ndarray:
        """Apply M⊗…⊗M (n factors, M of shape (N, N)) to axis 0 of ``values`` (D, K).

        In the ordered basis this is the n-th compound matrix of M (:meth:`compound`), applied
        here without forming it: each column is expanded to its antisymmetric n-index tensor
        (in chunks of at most ``chunk_elements`` entries), M is contracted into every index, and
        the ordered entries are read back. One electron is simply M @ values.
        """
        if self.electrons == 0:
            return values
        if self.electrons == 1:
            return matrix @ values
        points, n = self.grid.points, self.electrons
        ordered = tuple(self.tuples[:, k] for k in range(n))
        step = max(1, chunk_elements // points**n)
        out = np.empty((self.tuples.shape[0], values.shape[1]))
        for start in range(0, values.shape[1], step):
            block = values[:, start : start + step]
            tensor = np.zeros((points,) * n + (block.shape[1],))
            for permutation, sign in self._signed_permutations:
                tensor[tuple(ordered[p] for p in permutation)] = sign * block
            for axis in range(n):
                tensor = np.moveaxis(np.tensordot(matrix, tensor, axes=(1, axis)), 0, axis)
            out[:, start : start + step] = tensor[ordered]
        return out

    def compound(self, orbitals: np.ndarray) -> np.ndarray:
        """n-th compound matrix of a square matrix: det(U[I, J]) for tuples I, J, shape (D, D).

        Reference implementation (Leibniz formula) of what :meth:`transform` applies.
        """
        if self.electrons == 0:
            return np.ones((1, 1))
        tuples = self.tuples
        result = np.zeros((tuples.shape[0], tuples.shape[0]))
        for permutation, sign in self._signed_permutations:
            term = np.ones_like(result)
            for k, p in enumerate(permutation):
                term *= orbitals[np.ix_(tuples[:, k], tuples[:, p])]
            result += sign * term
        return result

    def rdm1(self, coefficients: np.ndarray, dx: float, chunk_elements: int = 4_000_000) -> np.ndarray:
        """Spin-resolved 1-RDM γ(x, x') of this block, shape (N, N), bohr⁻¹.

        Args:
            coefficients: the wavefunction as a (D, D_other) matrix with unit Frobenius norm
                (the packed amplitudes; ψ = coefficients / √(n_up! n_down! dx^N)).
            dx: grid spacing.
        """
        points = self.grid.points
        if self.electrons == 0:
            return np.zeros((points, points))
        rest_dimension = self.removal.shape[0] // points
        columns = coefficients.shape[1]
        step = max(1, chunk_elements // max(1, points * rest_dimension))
        gamma = np.zeros((points, points))
        for start in range(0, columns, step):
            phi = (self.removal @ coefficients[:, start : start + step]).reshape(points, -1)
            gamma += phi @ phi.T
        return gamma / dx
