import numpy as np
import pytest

from densitylab.rdm.dataset import DatasetSpec, generate_dataset, load_dataset
from densitylab.rdm.pca import analyse_dataset, compression_curve, fit_pca, upper_triangle


def test_rank_of_synthetic_data_is_recovered_to_machine_precision():
    rng = np.random.default_rng(0)
    basis = rng.standard_normal((5, 30))
    data = 0.3 + rng.standard_normal((400, 5)) @ basis
    curve = compression_curve("synthetic", data[:300], data[300:])
    assert curve.components_needed(1e-12) == 5
    assert curve.max_error[4] > 1e-3
    np.testing.assert_allclose(np.sum(curve.explained_variance_ratio), 1.0)


def test_pca_components_are_orthonormal_and_sorted():
    data = np.random.default_rng(1).standard_normal((200, 12)) * np.arange(1, 13)
    model = fit_pca(data)
    np.testing.assert_allclose(model.components @ model.components.T, np.eye(12), atol=1e-12)
    assert np.all(np.diff(model.variance) <= 0)
    np.testing.assert_allclose(model.decode(model.encode(data)), data, atol=1e-12)


def test_two_point_grid_has_one_density_and_two_rdm_degrees_of_freedom(tmp_path):
    # normalisation fixes n1 + n2 and γ11 + γ22: one free density value and two free 1-RDM values
    spec = DatasetSpec(systems=300, points=2, stencil=3, chunk_size=300)
    generate_dataset(spec, tmp_path / "dimer.h5")
    data = load_dataset(tmp_path / "dimer.h5")
    density, rdm = analyse_dataset(data.arrays["density"], data.rdm1(), test_fraction=0.2)
    assert density.components_needed(1e-12) == 1
    assert rdm.components_needed(1e-12) == 2
    assert upper_triangle(data.rdm1()).shape == (300, 3)


def test_tiny_grid_datasets_satisfy_the_dimer_limit():
    # non-interacting two-site singlet: γ12 = √(n1 n2) exactly
    from densitylab.model1d import Grid, Interaction
    from densitylab.model1d.batch import solve_singlet_batch

    grid = Grid(2, -7.5, 7.5, 3)
    potentials = np.random.default_rng(2).uniform(-0.5, 0.5, (20, 2))
    batch = solve_singlet_batch(grid, potentials, Interaction(kind="none"))
    n = batch.density
    np.testing.assert_allclose(batch.rdm1[:, 0, 1], np.sqrt(n[:, 0] * n[:, 1]), rtol=1e-10)


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_bad_test_fraction_is_rejected(fraction):
    from densitylab.errors import InvalidParameterError
    from densitylab.rdm.pca import split

    with pytest.raises(InvalidParameterError, match="test_fraction"):
        split(10, fraction)


def test_variance_counts_use_accurate_tail_sums():
    ratio = np.array([0.9, 0.1 - 1e-15, 1e-15])
    from densitylab.rdm.pca import CompressionCurve

    curve = CompressionCurve("toy", 3, ratio, np.zeros(4), np.zeros(4))
    assert curve.components_for_variance(1e-14) == 2
    assert curve.components_for_variance(1e-16) == 3
