import jax  # noqa: F401  (a hard dependency: missing, it fails the suite)
import numpy as np
import pytest

from densitylab.rdm.dataset import DatasetSpec, solve_chunk
from densitylab.rdm.dimer import dimer_study, fit_log_perceptron


@pytest.fixture(scope="module")
def dimer():
    return solve_chunk(DatasetSpec(systems=1500, points=2, stencil=3, seed=9), 0, 1500)


def _free_rdm(chunk):
    orbital = chunk["noninteracting/orbital"]
    return 2 * orbital[:, :, None] * orbital[:, None, :]


def test_log_perceptron_learns_square_root_exponents_without_interaction(dimer):
    model = fit_log_perceptron(dimer["noninteracting/density"], _free_rdm(dimer))
    np.testing.assert_allclose(model.exponents, (0.5, 0.5), atol=1e-10)
    assert model.bias == pytest.approx(0.0, abs=1e-10)


def test_exact_dimer_obeys_cauchy_schwarz_and_models_beat_sqrt(dimer):
    n, gamma = dimer["density"], dimer["rdm1"]
    assert np.all(np.abs(gamma[:, 0, 1]) <= np.sqrt(n[:, 0] * n[:, 1]) + 1e-14)
    summary, curves = dimer_study(n, gamma, dimer["noninteracting/density"], _free_rdm(dimer), steps=1500)
    errors = summary["held_out_mae_gamma12"]
    assert errors["c_model"] < 0.2 * errors["sqrt"]
    assert errors["log_perceptron"] < 0.2 * errors["sqrt"]
    # the c-model cannot exceed the Cauchy–Schwarz bound
    assert np.all(curves["c_model"] <= curves["sqrt"] * (1 + 1e-12))
