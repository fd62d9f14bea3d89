"""Dense linear algebra that works around a crash of the BLAS that SciPy and NumPy ship.

OpenBLAS 0.3.31 (the build in SciPy 1.17 and NumPy 2.4 wheels) crashes with a segmentation
fault in its threaded Cholesky factorisation (``dpotrf``) of large matrices, upper or lower,
through ``scipy.linalg.cho_factor`` and ``numpy.linalg.cholesky`` alike. Measured on the 2-core
development machine (2 BLAS threads), a random SPD matrix: n = 15,500 factors in 17 s,
n = 15,800 and above crash (about 2.0e9 bytes, near 2³¹: an overflow in the threaded path,
it seems); with one BLAS thread n = 15,900 factors in 27 s. A density-learning fit of 30
8-water cells (15,900 weights) crashed this way. Such matrices are therefore factored with
one BLAS thread (``threadpoolctl``), which costs at most the threads' speed-up on that one
call; smaller ones keep every thread.
"""

from __future__ import annotations

import numpy as np

SINGLE_THREAD_BYTES = 1.5e9  # matrices at least this large are factored with one BLAS thread


def cho_factor(matrix: np.ndarray, lower: bool = False, overwrite_a: bool = False):
    """``scipy.linalg.cho_factor`` (no finiteness check), with one BLAS thread for matrices of
    ``SINGLE_THREAD_BYTES`` or more."""
    import scipy.linalg

    if matrix.nbytes < SINGLE_THREAD_BYTES:
        return scipy.linalg.cho_factor(matrix, lower=lower, overwrite_a=overwrite_a, check_finite=False)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return scipy.linalg.cho_factor(matrix, lower=lower, overwrite_a=overwrite_a, check_finite=False)


def cholesky(matrix: np.ndarray, lower: bool = True) -> np.ndarray:
    """The Cholesky factor itself (the other triangle zeroed), as ``scipy.linalg.cholesky``."""
    factor, _ = cho_factor(np.array(matrix), lower=lower, overwrite_a=True)
    return np.tril(factor) if lower else np.triu(factor)
