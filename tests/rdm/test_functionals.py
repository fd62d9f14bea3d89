import json

import numpy as np
import pytest
from typer.testing import CliRunner

from densitylab.cli import app
from densitylab.errors import InvalidParameterError
from densitylab.model1d import Grid, Interaction
from densitylab.rdm.dataset import DatasetSpec, generate_dataset, load_dataset
from densitylab.rdm.functionals import LinearPCAFunctional, check_densities, sqrt_functional
from densitylab.rdm.metrics import evaluate_rdm, exchange_energy, kinetic_energy


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("rdm") / "family.h5"
    generate_dataset(DatasetSpec(systems=240, points=30, chunk_size=80, seed=4), path)
    return path


def test_sqrt_functional_is_exact_for_the_non_interacting_singlet(dataset):
    data = load_dataset(dataset)
    np.testing.assert_allclose(
        sqrt_functional(data.arrays["noninteracting/density"]), data.rdm1("noninteracting"), atol=1e-12
    )


def test_kinetic_energy_from_rdm_matches_the_solver(dataset):
    data = load_dataset(dataset)
    kinetic = Grid(30, -7.5, 7.5).kinetic_dense()
    np.testing.assert_allclose(
        kinetic_energy(data.rdm1(), kinetic, data.dx), data.arrays["kinetic_energy"], atol=1e-9
    )
    np.testing.assert_allclose(
        kinetic_energy(data.rdm1("uhf"), kinetic, data.dx), data.arrays["uhf/kinetic_energy"], atol=1e-7
    )


def test_exchange_of_one_doubly_occupied_orbital_is_minus_half_hartree(dataset):
    data = load_dataset(dataset)
    w = Interaction().matrix(data.x)
    density = data.arrays["noninteracting/density"]
    hartree = 0.5 * np.einsum("si,ij,sj->s", density, w, density) * data.dx**2
    np.testing.assert_allclose(
        exchange_energy(data.rdm1("noninteracting"), w, data.dx), -0.5 * hartree, rtol=1e-12
    )


def test_linear_pca_functional_is_symmetric_with_exact_diagonal(dataset):
    data = load_dataset(dataset)
    density, rdm = data.arrays["density"], data.rdm1()
    functional = LinearPCAFunctional.fit(density[:200], rdm[:200], data.dx, components=20)
    predicted = functional(density[200:])
    np.testing.assert_allclose(predicted, predicted.transpose(0, 2, 1), atol=0)
    np.testing.assert_allclose(np.diagonal(predicted, axis1=1, axis2=2), density[200:], atol=0)


def test_linear_pca_functional_recovers_an_exactly_linear_map():
    rng = np.random.default_rng(0)
    dx, points = 0.5, 6
    base = np.full(points, 2.0 / (points * dx))
    directions = rng.standard_normal((3, points))
    directions -= directions.mean(axis=1, keepdims=True)  # keep Σ n dx = 2
    density = base + 0.01 * rng.standard_normal((200, 3)) @ directions
    matrix = rng.standard_normal((points * (points + 1) // 2, points))
    rows, cols = np.triu_indices(points)
    upper = density @ matrix.T
    upper[:, rows == cols] = density  # the diagonal must be n for the map to be consistent
    rdm = np.zeros((200, points, points))
    rdm[:, rows, cols] = upper
    rdm[:, cols, rows] = upper
    functional = LinearPCAFunctional.fit(density[:150], rdm[:150], dx, components=3, ridge=0.0)
    np.testing.assert_allclose(functional(density[150:]), rdm[150:], atol=1e-9)


def test_metrics_are_zero_for_a_perfect_prediction_and_baseline_recovers_nothing(dataset):
    data = load_dataset(dataset)
    kinetic, w = Grid(30, -7.5, 7.5).kinetic_dense(), Interaction().matrix(data.x)
    density, exact = data.arrays["density"], data.rdm1()
    perfect = evaluate_rdm(exact, exact, density, kinetic, w, data.dx)
    assert perfect["mae"] == 0 and perfect["kinetic_correlation_recovered"] == pytest.approx(1.0)
    baseline = evaluate_rdm(sqrt_functional(density), exact, density, kinetic, w, data.dx)
    assert baseline["kinetic_correlation_recovered"] == pytest.approx(0.0, abs=1e-12)
    assert baseline["mae"] > 0


@pytest.mark.parametrize(
    "density, message",
    [
        (np.full((1, 29), 2 / (29 * 0.5)), "shape"),
        (np.full((1, 30), -0.1), "non-negative"),
        (np.full((1, 30), 1.0), "electrons"),
    ],
)
def test_densities_that_do_not_fit_are_rejected(density, message):
    with pytest.raises(InvalidParameterError, match=message):
        check_densities(density, 30, 0.5)


def test_train_and_evaluate_commands(dataset, tmp_path):
    runner = CliRunner()
    model = tmp_path / "linear.npz"
    result = runner.invoke(
        app,
        [
            "rdm",
            "train",
            "--dataset",
            str(dataset),
            "--output",
            str(model),
            "--model",
            "pca-linear",
            "--components",
            "15",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        [
            "rdm",
            "evaluate",
            "--dataset",
            str(dataset),
            "--model",
            str(model),
            "--json",
            "--plot",
            str(tmp_path / "figures"),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    for key in (
        "mae",
        "kinetic_rel_error",
        "exchange_rel_error",
        "occupation_mae",
        "kinetic_correlation_recovered",
    ):
        assert np.isfinite(summary[key])
    assert summary["baseline_sqrt"]["kinetic_correlation_recovered"] == pytest.approx(0.0, abs=1e-12)
    assert (tmp_path / "figures" / "rdm_worst.png").exists()
    bad = runner.invoke(app, ["rdm", "evaluate", "--dataset", str(dataset), "--model", "missing.npz"])
    assert bad.exit_code == 2 and "Error: model" in bad.output
