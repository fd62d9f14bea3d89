"""The matrix-free solver of the density regression's normal equations: preconditioned
conjugate gradients on Σ ΦᵀSΦ + η, never forming the P × P matrix, with every molecule's
metric held once, packed. Used by :func:`densitylab.density.regression.fit` for models too
large for the direct solve."""

from __future__ import annotations

import time

import numpy as np
import scipy.linalg
import scipy.sparse

from densitylab.density.design import channel_gram


def pack_metric(overlap, dtype=np.float64) -> np.ndarray:
    """The upper triangle of a symmetric S (n, n), row by row: LAPACK's packed lower triangle
    (n(n+1)/2,), half the memory of S. CG holds every training molecule's metric this way (a
    QM9 molecule's even-tempered S is 25 MB dense), applied by :func:`metric_times`. With
    ``dtype`` float32 a quarter of S's memory: S is then rounded to single precision (entries
    move by ≤ 6e-8 relative; on QM9 molecules the smallest eigenvalues, ≈ 2e-7, by ≈ 1.3e-7)
    and applied in double, so CG solves the rounded problem exactly."""
    overlap = np.asarray(overlap)
    size = len(overlap)
    packed = np.empty(size * (size + 1) // 2, dtype=dtype)
    start = 0
    for row in range(size):
        packed[start : start + size - row] = overlap[row, row:]
        start += size - row
    return packed


def metric_times(overlap: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """S·v for S dense (n, n) or packed by :func:`pack_metric` (BLAS dspmv; as fast as the dense
    product, measured), in double precision whatever S is stored in."""
    if overlap.ndim == 1:
        packed = overlap if overlap.dtype == np.float64 else overlap.astype(np.float64)
        return scipy.linalg.blas.dspmv(len(vector), 1.0, packed, vector, lower=1)
    return overlap @ vector


def one_centre_overlaps(overlaps: list, labels_list: list, numbers_list: list) -> dict:
    """{(species, λ): s (channels, channels)}: the overlap ⟨φ_{nλm}|φ_{n'λm}⟩ of two radial
    channels on one atom, read from the first molecule that has the species (it depends on the
    element alone)."""
    found: dict = {}
    for index, (labels, numbers) in enumerate(zip(labels_list, numbers_list, strict=True)):
        keys = {(int(numbers[atom]), int(l)) for atom, l in labels[:, :2]}
        if keys <= set(found):
            continue  # nothing new here: its overlap (possibly computed on access) is not read
        overlap = overlaps[index]
        for atom in range(len(numbers)):
            for l in np.unique(labels[labels[:, 0] == atom, 1]):
                key = (int(numbers[atom]), int(l))
                if key not in found:
                    mask = (labels[:, 0] == atom) & (labels[:, 1] == l) & (labels[:, 3] == 0)
                    _, first = np.unique(labels[mask, 2], return_index=True)  # one row per channel n
                    rows = np.flatnonzero(mask)[first]
                    found[key] = overlap[np.ix_(rows, rows)]
    return found


class CGProblem:
    """The stacked normal operator Σ ΦᵀSΦ of a set of molecules (never formed) and its
    preconditioner.

    The preconditioner keeps, for every (species a, λ), the part of the normal matrix that
    couples an atom with itself: Σ_atoms Σ_m Ψ_mᵀ S_{nn'} Ψ_m = s^{aλ} ⊗ G^{aλ}, exactly a
    Kronecker product, because the one-centre overlap s^{aλ}_{nn'} of radial channels depends
    on the element alone and G^{aλ} = Σ_atoms Ψᵀ Ψ (D × D). With s = UσUᵀ and G = VκVᵀ,
    (s ⊗ G + η)⁻¹ costs two small eigendecompositions and four matrix products per apply.
    Unlike a block-Jacobi over single channels it keeps the near-linear dependence between
    radial channels that makes the even-tempered metric ill-conditioned (on water: 20,000
    iterations without reaching a 1e-10 residual before; BENCHMARKS.md for the count now).
    The coupling between different atoms is left to CG."""

    def __init__(self, designs: list, metrics: list, layout: dict, one_centre: dict):
        # Φ and the packed metrics of every molecule, shared with the caller, not copied: no
        # stacked Φ (8 MB per QM9 molecule) and no transposed one (Φᵀ·x goes through each CSR
        # matrix's own transpose product)
        self.designs, self.metrics = designs, metrics
        self.factors = []
        for (a, l, n), (offset, width) in layout.items():
            if n != 0:
                continue
            channels = sum(1 for key in layout if key[:2] == (a, l))
            gram = sum(channel_gram(design, offset, width) for design in designs)  # Ψ rows of channel 0
            sigma, u = np.linalg.eigh(one_centre[(a, l)])
            kappa, v = np.linalg.eigh(0.5 * (gram + gram.T))
            self.factors.append((offset, channels, width, u, sigma, v, kappa))

    def solve(self, rhs: np.ndarray, eta: float, tolerance: float, max_iterations: int, start=None,
              reference_norm=None, callback=None):  # fmt: skip
        """(Σ ΦᵀSΦ + η) b = rhs by preconditioned CG from ``start`` (see
        :func:`conjugate_gradients` for the stopping rule, ``reference_norm`` and
        ``callback``); returns b and CG info."""

        def preconditioner(vector):
            result = np.empty_like(vector)
            for offset, channels, width, u, sigma, v, kappa in self.factors:
                piece = vector[offset : offset + channels * width].reshape(channels, width)
                rotated = (u.T @ piece @ v) / (np.outer(sigma, kappa) + eta)
                result[offset : offset + channels * width] = (u @ rotated @ v.T).ravel()
            return result

        def apply(vector):
            result = eta * vector
            for design, metric in zip(self.designs, self.metrics, strict=True):
                result += design.T @ metric_times(metric, design @ vector)
            return result

        from threadpoolctl import threadpool_limits

        # one BLAS thread: every product here is small (Ψ blocks, D ≤ 900), called thousands of
        # times; threads gain ≤ 2× on an idle machine and lose 150× when the cores are busy
        # (OpenBLAS's threads wait on each other; BENCHMARKS.md, "CG and BLAS threads")
        with threadpool_limits(limits=1, user_api="blas"):
            return conjugate_gradients(
                apply, rhs, preconditioner, tolerance, max_iterations, start, reference_norm, callback
            )


def conjugate_gradients(
    apply, rhs: np.ndarray, preconditioner, tolerance: float, max_iterations: int, start=None,
    reference_norm=None, callback=None,
):  # fmt: skip
    """Preconditioned CG for A x = b (A symmetric positive definite, given as ``apply``; the
    ``preconditioner`` applies M⁻¹): SciPy's ``cg`` on matrix-free operators. From 0 it stops at
    ‖r‖ ≤ tolerance·‖b‖. From a ``start`` x₀ it solves the correction A δ = b − A x₀ to
    tolerance·‖b − A x₀‖, so a warm start is always improved: a tolerance relative to ‖b‖
    would return the solution of a neighbouring problem (the η scan's previous η) unchanged.
    ``reference_norm``: stop at tolerance·reference_norm instead (a resumed solve keeps the
    stopping point of the interrupted one: its first ‖b − A x₀‖). ``callback(x, reference_norm)``
    sees every iterate. Returns x and {iterations, relative_residual (‖b − A x‖/‖b‖, recomputed
    from x), reference_norm}."""
    import scipy.sparse.linalg as spla

    size = rhs.shape[0]
    operator = spla.LinearOperator((size, size), matvec=apply, dtype=float)
    inverse = spla.LinearOperator((size, size), matvec=preconditioner, dtype=float)
    origin = np.zeros_like(rhs) if start is None else np.array(start, dtype=float)
    target = rhs if start is None else rhs - apply(origin)
    target_norm = float(np.linalg.norm(target))
    reference_norm = target_norm if reference_norm is None else float(reference_norm)
    count = [0]

    def counted(correction):
        count[0] += 1
        if callback is not None:
            callback(origin + correction, reference_norm)

    if target_norm <= tolerance * reference_norm:  # converged already (a finished resume)
        x = origin
    else:
        correction, _ = spla.cg(operator, target, rtol=tolerance * reference_norm / target_norm, atol=0.0,
                                maxiter=max_iterations, M=inverse, callback=counted)  # fmt: skip
        x = origin + correction
    residual = float(np.linalg.norm(rhs - apply(x)) / np.linalg.norm(rhs))
    return x, {"iterations": count[0], "relative_residual": residual, "reference_norm": reference_norm}


CHECKPOINT_SECONDS = 120.0  # a CG solve in progress is saved at most this often


class FitCheckpoint:
    """The resumable state of a CG fit (``path``, a .npz in densitylab's one checkpoint format;
    None: nothing is kept): the solution of every finished solve, by key (each η of the scan,
    then the final fit), and the latest iterate of the solve in progress, saved at most every
    :data:`CHECKPOINT_SECONDS`. ``job`` (the settings and a fingerprint of the normal
    equations' right-hand side) must match for a resume; otherwise it is refused, naming it.
    A QM9 fit on 1,000 molecules takes hours here: an interrupted one loses minutes."""

    def __init__(self, path, job: dict):
        from densitylab.checkpoint import read_checkpoint

        self.path, self.job = path, job
        self.arrays: dict = {}
        self.state: dict = {"finished": {}, "partial": None}
        self._saved = time.monotonic()
        found = None if path is None else read_checkpoint(path, job)
        if found is not None:
            self.arrays, self.state = dict(found[0]), found[1]

    def solve(self, key: str, solve, start=None):
        """The solution for ``key``: stored, or ``solve(start, reference_norm, callback)``
        resumed from the stored iterate of an interrupted run (its stopping point kept)."""
        if key in self.state["finished"]:
            return self.arrays[f"finished_{key}"], self.state["finished"][key]
        partial = self.state["partial"]
        reference_norm, before = None, 0
        if partial is not None and partial["key"] == key:
            start, reference_norm, before = (
                self.arrays["partial"],
                partial["reference_norm"],
                partial["iterations"],
            )
        progress = {"iterations": before}

        def callback(x, norm):
            progress["iterations"] += 1
            if self.path is not None and time.monotonic() - self._saved > CHECKPOINT_SECONDS:
                self.state["partial"] = {
                    "key": key,
                    "reference_norm": norm,
                    "iterations": progress["iterations"],
                }
                self._write({"partial": x})

        x, info = solve(start, reference_norm, callback)
        info["iterations"] += before
        self.state["finished"][key] = info
        self.state["partial"] = None
        self.arrays.pop("partial", None)
        self._write({f"finished_{key}": x})
        return x, info

    def _write(self, arrays: dict) -> None:
        from densitylab.checkpoint import write_checkpoint

        self.arrays.update(arrays)
        if self.path is not None:
            write_checkpoint(self.path, self.job, self.arrays, self.state)
        self._saved = time.monotonic()
