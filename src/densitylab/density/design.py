"""The design matrix Φ of one structure (coefficients = Φ · weights), held in factored form.

For an atom of species a, the coefficient of radial channel n, angular momentum λ and order m
is Σ_D Ψ_{(atom, m), D} w_{aλn, D}: the same kernel row Ψ (one per atom and m) multiplies every
radial channel's weights. As a sparse matrix, Φ repeats each Ψ row once per channel (a QM9
molecule in the even-tempered basis: 760,000 stored entries, 9 MB, and 4 bytes of column index
each). Held per (species, λ) as the Ψ stack and the rows it feeds, Φ takes about 1/C of that
(C ≈ 2–20 channels) and its products are dense BLAS calls: Φw is Ψ·Wᵀ and Φᵀz is Zᵀ·Ψ with W
and Z the (channels × D) and (rows × channels) reshapes. A 1,000-molecule QM9 fit holds every
Φ through its CG iterations, so this is the difference between 9 GB and under 1 GB.

Nothing here is a numerical method: the reshapes are SciPy-free bookkeeping around two GEMMs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse


@dataclass(frozen=True)
class DesignBlock:
    """One (species, λ) block of a structure's Φ.

    offset: index of the first weight of radial channel 0; channel n's D weights follow at
        offset + n·D (the layout of :func:`densitylab.density.regression._weight_layout`).
    psi: Ψ (k, D), one row per (atom of the species, m) of this structure.
    rows: (r,) the coefficient rows this block fills; kernel_rows (r,) the Ψ row and
        channel (r,) the radial channel n of each.
    channels: the model's radial channel count C for (species, λ)."""

    offset: int
    channels: int
    psi: np.ndarray
    rows: np.ndarray
    kernel_rows: np.ndarray
    channel: np.ndarray

    @property
    def width(self) -> int:
        return self.psi.shape[1]

    @property
    def columns(self) -> slice:
        return slice(self.offset, self.offset + self.channels * self.width)


class FactoredDesign:
    """Φ (rows, weights) of one structure as :class:`DesignBlock` s; supports what the fit and
    the prediction need of a matrix: ``Φ @ w`` and ``Φ.T @ z`` for vectors, ``shape``, ``nnz``
    (the entries of the equivalent sparse Φ, for cost estimates), ``tocsr`` and ``toarray``."""

    def __init__(self, blocks: list[DesignBlock], shape: tuple[int, int]):
        self.blocks, self.shape = blocks, shape

    @property
    def nnz(self) -> int:
        return sum(block.rows.size * block.width for block in self.blocks)

    @property
    def nbytes(self) -> int:
        arrays = [(b.psi, b.rows, b.kernel_rows, b.channel) for b in self.blocks]
        return sum(x.nbytes for group in arrays for x in group)

    def __matmul__(self, weights: np.ndarray) -> np.ndarray:
        """Φ · weights: (P,) → (rows,), or (P, k) → (rows, k)."""
        weights = np.asarray(weights)
        tail = weights.shape[1:]
        result = np.zeros((self.shape[0], *tail))
        for block in self.blocks:
            matrix = weights[block.columns].reshape(block.channels, block.width, -1)
            values = np.matmul(block.psi, matrix)  # (C, Ψ rows, k): BLAS GEMMs
            result[block.rows] = values[block.channel, block.kernel_rows].reshape(-1, *tail)
        return result

    def rmatvec(self, vector: np.ndarray) -> np.ndarray:
        """Φᵀ · vector: (rows,) → (P,), or (rows, k) → (P, k)."""
        vector = np.asarray(vector)
        tail = vector.shape[1:]
        result = np.zeros((self.shape[1], *tail))
        for block in self.blocks:
            spread = np.zeros((block.psi.shape[0], block.channels, *tail))
            spread[block.kernel_rows, block.channel] = vector[block.rows]
            product = np.tensordot(spread, block.psi, axes=(0, 0))  # (C, …, D): one GEMM
            result[block.columns] = np.moveaxis(product, -1, 1).reshape(-1, *tail)
        return result

    @property
    def T(self) -> _Transposed:
        return _Transposed(self)

    def tocsr(self) -> scipy.sparse.csr_matrix:
        rows, columns, values = [], [], []
        for block in self.blocks:
            width = block.width
            rows.append(np.repeat(block.rows, width))
            first = block.offset + block.channel * width
            columns.append((first[:, None] + np.arange(width)).ravel())
            values.append(block.psi[block.kernel_rows].ravel())
        if not rows:
            return scipy.sparse.csr_matrix(self.shape)
        return scipy.sparse.csr_matrix(
            (np.concatenate(values), (np.concatenate(rows), np.concatenate(columns))), shape=self.shape
        )

    def toarray(self) -> np.ndarray:
        return self.tocsr().toarray()


class _Transposed:
    def __init__(self, design: FactoredDesign):
        self.design = design

    def __matmul__(self, vector: np.ndarray) -> np.ndarray:
        return self.design.rmatvec(vector)


def as_sparse(design):
    """A sparse (CSR) Φ from a :class:`FactoredDesign` or a SciPy sparse matrix."""
    return design.tocsr() if isinstance(design, FactoredDesign) else design


def channel_gram(design, offset: int, width: int) -> np.ndarray:
    """Σ ΨᵀΨ (D × D) over the rows of Φ that feed the weights offset … offset + D (one radial
    channel of one (species, λ)): the G of the CG preconditioner's s ⊗ G."""
    if isinstance(design, FactoredDesign):
        gram = np.zeros((width, width))
        for block in design.blocks:
            if block.offset <= offset < block.columns.stop:
                n = (offset - block.offset) // block.width
                psi = block.psi[block.kernel_rows[block.channel == n]]
                gram += psi.T @ psi
        return gram
    columns = design[:, offset : offset + width]
    return (columns.T @ columns).toarray()
