"""The Cholesky wrapper that steps around OpenBLAS's crash on large matrices (densitylab.linalg):
both of its paths give the factor NumPy gives."""

import numpy as np
import pytest

from densitylab import linalg


@pytest.mark.parametrize("threshold", [0.0, 1e18])  # one BLAS thread, and every thread
@pytest.mark.parametrize("lower", [True, False])
def test_both_paths_give_the_cholesky_factor(monkeypatch, threshold, lower):
    monkeypatch.setattr(linalg, "SINGLE_THREAD_BYTES", threshold)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 40))
    matrix = a @ a.T + np.eye(300)
    factor = linalg.cholesky(matrix, lower=lower)
    expected = np.linalg.cholesky(matrix)
    np.testing.assert_allclose(factor, expected if lower else expected.T, atol=1e-12)
    stored, is_lower = linalg.cho_factor(matrix.copy(), lower=lower)
    assert is_lower == lower
    np.testing.assert_allclose(np.tril(stored) if lower else np.triu(stored), factor, atol=1e-12)
