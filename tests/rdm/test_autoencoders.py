import json

import equinox
import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from densitylab.errors import InvalidParameterError
from densitylab.rdm.autoencoders import (
    ConvAutoencoder,
    ConvAutoencoderConfig,
    Denoiser,
    DenoiserConfig,
    build_conv_autoencoder,
    build_denoiser,
    load_autoencoder,
    train_conv_autoencoder,
    train_denoiser,
)
from densitylab.rdm.dataset import DatasetSpec, generate_dataset, load_dataset

POINTS, DX = 20, 15.0 / 19


def _scaled(model, factor):
    return jax.tree_util.tree_map(
        lambda leaf: leaf * factor if equinox.is_inexact_array(leaf) else leaf, model
    )


def _random_rdm1(rng, rank=3, electrons=2.0):
    """A PSD 1-RDM with Tr γ dx = electrons built from random orbitals."""
    orbitals = rng.normal(size=(POINTS, rank))
    gamma = orbitals @ np.diag(rng.uniform(0.1, 1.0, rank)) @ orbitals.T
    return gamma * electrons / (np.trace(gamma) * DX)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("ae") / "d.h5"
    generate_dataset(DatasetSpec(systems=360, seed=11, chunk_size=360), path)
    return path, load_dataset(path)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**31 - 1))
def test_denoiser_output_is_symmetric_psd_and_keeps_the_electron_count(seed):
    config = DenoiserConfig(
        points=POINTS, dx=DX, components=4, bottleneck=5, rank=3, width=16, depth=1, seed=1
    )
    basis = np.random.default_rng(2).normal(size=(4, POINTS * (POINTS + 1) // 2))
    # enlarge every weight so that the correction is far from the identity start
    denoiser = Denoiser(config, _scaled(build_denoiser(config, basis), 3.0))
    rdm1_in = _random_rdm1(np.random.default_rng(seed))
    gamma = denoiser(rdm1_in)[0]
    np.testing.assert_allclose(gamma, gamma.T, atol=1e-13)
    occupations = np.linalg.eigvalsh(gamma * DX)
    assert occupations.min() > -1e-12 and occupations.max() < 2 + 1e-12
    assert np.trace(gamma) * DX == pytest.approx(2.0, abs=1e-12)
    assert np.sort(occupations)[-2] > 1e-6  # correlated, not the rank-1 √(n n')
    assert np.abs(np.diag(gamma) - np.diag(rdm1_in)).max() > 1e-3  # the density is corrected


def test_untrained_denoiser_starts_at_sqrt_of_the_input_density():
    config = DenoiserConfig(points=POINTS, dx=DX, components=3, bottleneck=5, rank=3, width=16, depth=1)
    rdm1_in = _random_rdm1(np.random.default_rng(0))
    gamma = Denoiser(config, build_denoiser(config))(rdm1_in)[0]
    root = np.sqrt(np.diag(rdm1_in))
    assert np.abs(gamma - np.outer(root, root)).max() < 0.05 * np.abs(rdm1_in).max()


def test_conv_autoencoder_shapes_symmetry_and_code_round_trip(tmp_path):
    config = ConvAutoencoderConfig(points=POINTS, dx=DX, bottleneck=7, channels=(4, 8), seed=2)
    assert config.padded == 20  # a multiple of 2² with at least 2 pixels at the bottom
    autoencoder = ConvAutoencoder(config, build_conv_autoencoder(config))
    rdm1 = np.stack([_random_rdm1(np.random.default_rng(s)) for s in range(3)])
    code = autoencoder.encode(rdm1)
    assert code.shape == (3, 7)
    output = autoencoder(rdm1)
    np.testing.assert_allclose(output, np.swapaxes(output, 1, 2), atol=1e-14)
    np.testing.assert_allclose(autoencoder.decode(code), output, atol=1e-13)
    autoencoder.save(tmp_path / "ae")
    np.testing.assert_array_equal(load_autoencoder(tmp_path / "ae")(rdm1), output)


def test_bad_configurations_and_inputs_are_refused():
    with pytest.raises(InvalidParameterError, match="bottleneck"):
        ConvAutoencoderConfig(bottleneck=0)
    with pytest.raises(InvalidParameterError, match="source"):
        DenoiserConfig(source="hartree")
    config = DenoiserConfig(points=POINTS, dx=DX, components=2, bottleneck=3, width=8, depth=1)
    with pytest.raises(InvalidParameterError, match="rdm1"):
        Denoiser(config, build_denoiser(config))(np.ones((POINTS + 1, POINTS + 1)))


def test_denoiser_beats_its_noninteracting_input_on_held_out_systems(small_dataset):
    _, data = small_dataset
    exact, rough = data.rdm1(), data.rdm1("noninteracting")
    train, test = np.arange(300), np.arange(300, 360)
    config = DenoiserConfig(
        dx=data.dx, source="noninteracting", components=8, bottleneck=32, width=128, depth=1
    )
    denoiser, history = train_denoiser(
        rough[train], exact[train], config, epochs=100, batch_size=16, learning_rate=3e-3,
        validation=(rough[test], exact[test]), loss="mae",
    )  # fmt: skip
    before = np.mean(np.abs(rough[test] - exact[test]), axis=(1, 2))  # per held-out system
    after = np.mean(np.abs(denoiser(rough[test]) - exact[test]), axis=(1, 2))
    # a stated statistical margin instead of a copied ratio: the mean per-system gain must exceed
    # three standard errors of the mean (measured: gain 3.9e-3, standard error 5.4e-4, ≈ 7σ; the
    # error ratio is 0.69). A denoiser that learned nothing gains 0 ± noise and fails.
    gain = before - after
    assert gain.mean() > 3.0 * gain.std(ddof=1) / np.sqrt(len(gain))
    assert history["validation_mae"][-1] == pytest.approx(after.mean(), rel=1e-9)


def test_conv_autoencoder_learns_to_reconstruct(small_dataset):
    _, data = small_dataset
    exact = data.rdm1()
    train, test = np.arange(300), np.arange(300, 360)
    config = ConvAutoencoderConfig(dx=data.dx, bottleneck=8, channels=(4, 8, 16, 32))
    autoencoder, _ = train_conv_autoencoder(
        exact[train], config, epochs=40, batch_size=32, learning_rate=3e-3
    )
    reconstructed = autoencoder(exact[test])
    spread = np.mean(np.abs(exact[test] - exact[train].mean(axis=0)))
    assert np.mean(np.abs(reconstructed - exact[test])) < 0.3 * spread


def test_train_evaluate_and_predict_commands_for_a_denoiser(tmp_path, small_dataset):
    from typer.testing import CliRunner

    from densitylab.cli import app

    runner = CliRunner()
    path, data = small_dataset
    dataset = str(path)
    common = ["--dataset", dataset, "--test-fraction", "0.2"]
    result = runner.invoke(
        app,
        ["rdm", "train", *common, "--model", "denoiser", "--source", "pca", "--output",
         str(tmp_path / "dn"), "--epochs", "2", "--width", "16", "--depth", "1", "--bottleneck", "4",
         "--components", "10", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (tmp_path / "dn" / "pca-linear" / "manifest.json").is_file()  # its linear functional, inside
    result = runner.invoke(app, ["rdm", "evaluate", *common, "--model", str(tmp_path / "dn"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert {"mae", "input_pca", "baseline_sqrt"} <= summary.keys()
    np.save(tmp_path / "n.npy", data.arrays["density"][:2])
    refused = runner.invoke(
        app,
        ["rdm", "predict", "--density", str(tmp_path / "n.npy"), "--output", str(tmp_path / "g.npy"),
         "--model", str(tmp_path / "dn")],
    )  # fmt: skip
    assert refused.exit_code == 2 and "model" in refused.output
