import equinox
import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from densitylab.errors import InvalidParameterError
from densitylab.model1d import Grid, Interaction
from densitylab.rdm.dataset import DatasetSpec, generate_dataset, load_dataset
from densitylab.rdm.functionals import sqrt_functional
from densitylab.rdm.metrics import evaluate_rdm
from densitylab.rdm.models import pretrained
from densitylab.rdm.neural import NeuralConfig, NeuralFunctional, build_model

POINTS, DX = 20, 15.0 / 19


def _perturbed_model():
    config = NeuralConfig(points=POINTS, dx=DX, rank=4, width=32, depth=2, seed=1)
    model = build_model(config)
    # push the vectors u(x) far from e₁ so that the constraints are exercised, not trivially met
    model = jax.tree_util.tree_map(
        lambda leaf: leaf * 30.0 if equinox.is_inexact_array(leaf) else leaf, model
    )
    return NeuralFunctional(config, model)


FUNCTIONAL = _perturbed_model()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.floats(min_value=0.0, max_value=3.0, allow_nan=False), min_size=POINTS, max_size=POINTS))
def test_gamma_is_symmetric_with_exact_diagonal_and_psd(values):
    raw = np.array(values) + 1e-3
    density = 2.0 * raw / (raw.sum() * DX)
    gamma = FUNCTIONAL(density)[0]
    np.testing.assert_allclose(gamma, gamma.T, atol=1e-14)
    np.testing.assert_allclose(np.diag(gamma), density, rtol=1e-12, atol=1e-15)
    occupations = np.linalg.eigvalsh(gamma * DX)
    assert occupations.min() > -1e-12 and occupations.max() < 2 + 1e-12
    assert occupations.sum() == pytest.approx(2.0, abs=1e-12)
    assert np.sort(occupations)[-2] > 1e-6  # genuinely correlated, not the rank-1 baseline


def test_untrained_model_starts_next_to_the_sqrt_baseline():
    config = NeuralConfig(points=POINTS, dx=DX, rank=4, width=32, depth=2)
    density = np.full((1, POINTS), 2.0 / (POINTS * DX))
    gamma = NeuralFunctional(config, build_model(config))(density)
    np.testing.assert_allclose(gamma, sqrt_functional(density), atol=1e-3)


def test_save_and_load_round_trip(tmp_path):
    FUNCTIONAL.save(tmp_path / "model")
    density = np.full((2, POINTS), 2.0 / (POINTS * DX))
    np.testing.assert_array_equal(NeuralFunctional.load(tmp_path / "model")(density), FUNCTIONAL(density))


def test_densities_that_do_not_fit_the_model_are_refused():
    with pytest.raises(InvalidParameterError, match="shape"):
        FUNCTIONAL(np.ones(POINTS + 1))
    with pytest.raises(InvalidParameterError, match="electrons"):
        FUNCTIONAL(np.ones(POINTS))


@pytest.mark.parametrize("name", ["gamma-n", "gamma-n-pca-denoised"])
def test_pretrained_functional_beats_the_baseline_on_unseen_systems(tmp_path, name):
    functional = pretrained(name)
    spec = DatasetSpec(systems=60, seed=987654, chunk_size=60)  # a seed the model never saw
    generate_dataset(spec, tmp_path / "unseen.h5")
    data = load_dataset(tmp_path / "unseen.h5")
    density, exact = data.arrays["density"], data.rdm1()
    kinetic, w = Grid(62, -7.5, 7.5).kinetic_dense(), Interaction().matrix(data.x)
    gamma = functional(density)
    np.testing.assert_allclose(np.einsum("sii->si", gamma), density, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gamma, np.swapaxes(gamma, 1, 2), atol=1e-14)
    assert np.linalg.eigvalsh(gamma * data.dx).min() > -1e-12
    ours = evaluate_rdm(gamma, exact, density, kinetic, w, data.dx)
    baseline = evaluate_rdm(sqrt_functional(density), exact, density, kinetic, w, data.dx)
    assert ours["mae"] < 0.5 * baseline["mae"]
    assert ours["kinetic_rel_error"] < baseline["kinetic_rel_error"]
    # the documented accuracy, with a margin of about 3× (measured on these 60 systems: MAE
    # 1.4e-4 / 2.0e-4 and kinetic errors 0.9 % / 0.6 % for gamma-n / gamma-n-pca-denoised,
    # against 7.8e-3 and 5.9 % for √(nn′)): a model several times worse than shipped fails
    assert ours["mae"] < 5e-4
    assert ours["kinetic_rel_error"] < 0.02


def test_train_neural_and_predict_commands(tmp_path):
    import json

    from typer.testing import CliRunner

    from densitylab.cli import app

    runner = CliRunner()
    generate_dataset(DatasetSpec(systems=120, seed=3, chunk_size=120), tmp_path / "d.h5")
    result = runner.invoke(
        app,
        [
            "rdm",
            "train",
            "--dataset",
            str(tmp_path / "d.h5"),
            "--model",
            "neural",
            "--output",
            str(tmp_path / "m"),
            "--epochs",
            "2",
            "--width",
            "32",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert np.isfinite(summary["held_out"]["mae"]) and (tmp_path / "m" / "learning_curve.png").exists()
    density = load_dataset(tmp_path / "d.h5").arrays["density"][:3]
    np.save(tmp_path / "n.npy", density)
    result = runner.invoke(
        app,
        [
            "rdm",
            "predict",
            "--density",
            str(tmp_path / "n.npy"),
            "--output",
            str(tmp_path / "g.npy"),
            "--model",
            str(tmp_path / "m"),
        ],
    )
    assert result.exit_code == 0, result.output
    gamma = np.load(tmp_path / "g.npy")
    assert gamma.shape == (3, 62, 62)
    np.testing.assert_allclose(np.diagonal(gamma, axis1=1, axis2=2), density, rtol=1e-12)
    np.save(tmp_path / "bad.npy", density[:, :50])
    bad = runner.invoke(
        app,
        [
            "rdm",
            "predict",
            "--density",
            str(tmp_path / "bad.npy"),
            "--output",
            str(tmp_path / "g.npy"),
            "--model",
            str(tmp_path / "m"),
        ],
    )
    assert bad.exit_code == 2 and "Error: density" in bad.output
