"""Shapes rounded up to buckets, so that molecules of similar size share compiled code.

Every compiled stage of the DFT is keyed by its argument shapes: the number of basis functions
``nao``, the occupied counts per spin, the auxiliary functions ``naux`` and the grid points.
Without buckets those follow the composition (isomers and geometry steps share executables;
a new composition compiles its own, 1.5–4 s on the CPU here). With
``DFTSettings(shape_buckets=True)`` each of them is rounded up to a bucket (:func:`bucket`)
and the padding is made invisible to the energy:

- *ghost* basis functions: zero rows and columns of H, T and the orthogonaliser X, zero AO
  values on the grid, zero columns of the density-fitting factor B;
- *ghost* auxiliary functions: zero rows of B; *ghost* grid points: zero weight and zero AO
  values (as the chunk padding already is);
- *ghost* occupied orbitals: unit vectors on ghost orthonormal functions, whose columns of X
  are zero, so they carry no density; the remaining ghost functions are virtual.

The optimisers, results and checkpoints keep the real shapes. The :class:`Padding` of a system
embeds each point of the real problem into the padded one (:meth:`Padding.pad`) so that the
padded energy *at the embedded point* equals the real energy, and its gradient's real block is
the real gradient (:meth:`Padding.unpad_gradient`); the ghost blocks are never moved, so no
mask is needed. What buckets cost: up to 1/8 more of each dimension beyond the minimum step
(more for the smallest molecules), hence more work per evaluation; they pay where compilation
dominates, in screens over many compositions (BENCHMARKS.md, issue 19).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STEPS_PER_OCTAVE = 8  # sizes rounded up in steps of 1/8 of their leading power of two
MINIMUM_STEP = {"nao": 8, "electrons": 2, "naux": 32, "points": 1024, "pairs": 64}


def bucket(size: int, minimum_step: int) -> int:
    """``size`` rounded up to a multiple of max(``minimum_step``, 2^⌊log₂ size⌋ / 8): at most
    1/8 above ``size`` once the step exceeds the minimum. 0 stays 0."""
    size = int(size)
    if size <= 0:
        return 0
    step = max(int(minimum_step), (1 << (size.bit_length() - 1)) // STEPS_PER_OCTAVE)
    return -(-size // step) * step


@dataclass(frozen=True)
class Padding:
    """The real and padded sizes of one system's compiled problem.

    Attributes:
        nao, nmo: real basis functions and orthonormal functions (nmo ≤ nao).
        counts: real occupied orbitals per spin (N_α, N_β).
        padded_nao: basis functions of the compiled problem; also its orthonormal functions.
        padded_counts: occupied orbitals of the compiled problem per spin.
        padded_naux: auxiliary functions of the compiled problem.
        padded_points: grid points of the compiled problem (before chunking).
    """

    nao: int
    nmo: int
    counts: tuple[int, int]
    padded_nao: int
    padded_counts: tuple[int, int]
    padded_naux: int
    padded_points: int

    @staticmethod
    def of(nao: int, nmo: int, counts: tuple[int, int], naux: int, points: int) -> Padding:
        """Buckets for a basis of ``nao`` functions (``nmo`` independent), ``counts`` electrons
        per spin, ``naux`` auxiliary functions and ``points`` grid points: there are always at
        least as many ghost orthonormal functions as ghost occupied orbitals of either spin."""
        padded_counts = tuple(bucket(n, MINIMUM_STEP["electrons"]) for n in counts)
        ghosts = max(p - n for p, n in zip(padded_counts, counts, strict=True))
        padded_nao = bucket(nao + ghosts, MINIMUM_STEP["nao"])
        return Padding(
            int(nao), int(nmo), tuple(int(n) for n in counts), padded_nao, padded_counts,
            bucket(naux, MINIMUM_STEP["naux"]), bucket(points, MINIMUM_STEP["points"]),
        )  # fmt: skip

    def array_bytes(self, gga: bool) -> tuple[float, float]:
        """Bytes of the padded DF tensor B and of the padded AO values (and their gradients
        for a GGA) on the grid."""
        npair = self.padded_nao * (self.padded_nao + 1) // 2
        grid = 8.0 * self.padded_points * (4 if gga else 1) * self.padded_nao
        return 8.0 * self.padded_naux * npair, grid

    def matrix(self, matrix: np.ndarray) -> np.ndarray:
        """(nao, ≤ nao) → (padded_nao, padded_nao), zeros outside."""
        padded = np.zeros((self.padded_nao, self.padded_nao))
        padded[: matrix.shape[0], : matrix.shape[1]] = matrix
        return padded

    def _orthonormal_basis(self, basis: np.ndarray, count: int, padded_count: int) -> np.ndarray:
        """A chart basis U (nmo, nmo) (occupied first) → (padded_nao, padded_nao): columns real
        occupied, ghost occupied, real virtual, ghost virtual; rows real, then ghost functions."""
        size = self.padded_nao
        padded = np.zeros((size, size))
        padded[: self.nmo, :count] = basis[:, :count]
        padded[: self.nmo, padded_count : padded_count + self.nmo - count] = basis[:, count:]
        ghost_rows = np.arange(self.nmo, size)
        ghost_columns = np.r_[count:padded_count, padded_count + self.nmo - count : size]
        padded[ghost_rows, ghost_columns] = 1.0
        return padded

    def _parameters(self, parameters: np.ndarray, count: int, padded_count: int) -> np.ndarray:
        """Free orbital parameters W (nmo, n) → (padded_nao, padded_n), ghost columns unit
        vectors on the first ghost functions."""
        padded = np.zeros((self.padded_nao, padded_count))
        padded[: self.nmo, :count] = parameters
        padded[self.nmo + np.arange(padded_count - count), np.arange(count, padded_count)] = 1.0
        return padded

    def pad(self, kind: str, spins: tuple[int, ...], variables, fixed):
        """The point of the padded problem whose energy is that of the real point (``kind`` as
        in :meth:`~densitylab.dft.evaluator.Evaluator.value_and_grad`)."""
        if kind == "density":
            return tuple(self.matrix(np.asarray(d)) for d in variables), fixed
        counts = [self.counts[s] for s in spins]
        padded_counts = [self.padded_counts[s] for s in spins]
        if kind == "parameters":
            padded = [
                self._parameters(np.asarray(w), n, p)
                for w, n, p in zip(variables, counts, padded_counts, strict=True)
            ]
            return padded, fixed
        blocks, offset = [], 0
        for n, p in zip(counts, padded_counts, strict=True):
            virtual = self.nmo - n
            block = np.zeros((self.padded_nao - p, p))
            block[:virtual, :n] = np.asarray(variables[offset : offset + virtual * n]).reshape(virtual, n)
            blocks.append(block.ravel())
            offset += virtual * n
        bases = [
            self._orthonormal_basis(np.asarray(u), n, p)
            for u, n, p in zip(fixed, counts, padded_counts, strict=True)
        ]
        return np.concatenate(blocks), bases

    def unpad_gradient(self, kind: str, spins: tuple[int, ...], gradient):
        """The real block of the padded problem's gradient: the real problem's gradient."""
        if kind == "density":
            return tuple(np.asarray(g)[: self.nao, : self.nao] for g in gradient)
        counts = [self.counts[s] for s in spins]
        if kind == "parameters":
            return [np.asarray(g)[: self.nmo, :n] for g, n in zip(gradient, counts, strict=True)]
        gradient, blocks, offset = np.asarray(gradient), [], 0
        for s, n in zip(spins, counts, strict=True):
            p = self.padded_counts[s]
            block = gradient[offset : offset + (self.padded_nao - p) * p].reshape(self.padded_nao - p, p)
            blocks.append(block[: self.nmo - n, :n].ravel())
            offset += (self.padded_nao - p) * p
        return np.concatenate(blocks)
