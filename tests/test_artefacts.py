"""One artefact format: a CLI run and the equivalent Python run save identical artefacts, for
every workflow; densitylab.load opens each kind and refuses the wrong one; the shipped models
moved to the format give bit-identical outputs."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import densitylab
from densitylab.artefacts import artefact_folder, read_manifest
from densitylab.cli import app
from densitylab.data import read_h5
from densitylab.errors import InvalidParameterError
from densitylab.loading import kind_of

runner = CliRunner()
DATA = Path(__file__).parent / "data"
VOLATILE = {"created", "seconds", "setup_seconds", "predict_seconds", "feature_seconds", "fit_seconds"}


def invoke(*arguments):
    result = runner.invoke(app, [str(a) for a in arguments])
    assert result.exit_code == 0, result.output
    return result


def _stable(value):
    """A manifest without its timings and creation time (the only things two runs may differ in)."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE and not k.endswith("_seconds")}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def assert_same_artefact(first: Path, second: Path, ignore: tuple[str, ...] = ()):
    """Same files, same arrays bit for bit, same manifest but for timings (and ``ignore``, the
    keys that name the run's own paths)."""
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    manifests = [json.loads((folder / "manifest.json").read_text()) for folder in (first, second)]
    for manifest in manifests:
        for key in ignore:
            manifest.pop(key, None)
    assert _stable(manifests[0]) == _stable(manifests[1])
    for name in names:
        if name.endswith(".h5"):
            (a, _), (b, _) = read_h5(first / name), read_h5(second / name)
            assert sorted(a) == sorted(b)
            for key in a:
                np.testing.assert_array_equal(a[key], b[key])
        elif name.endswith(".eqx"):
            assert (first / name).read_bytes() == (second / name).read_bytes()
        elif name.endswith(".cube"):  # its two comment lines hold PySCF's time stamp
            lines = [(folder / name).read_text().splitlines()[2:] for folder in (first, second)]
            assert lines[0] == lines[1]


# ------------------------------------------------------------------ shipped models


def test_shipped_models_give_bit_identical_outputs():
    """Outputs recorded with the pre-manifest loaders (tests/data/make_shipped_outputs.py), to
    1e-12 relative: bit for bit on the machine that recorded them, but BLAS rounds differently
    on other CPUs (5e-15 relative on an AMD EPYC), while a loader fault is of order one."""
    import jax.numpy as jnp

    from densitylab.tdks.models import with_config

    recorded = np.load(DATA / "shipped_outputs.npz")
    for name in ("gamma-n", "gamma-n-pca-denoised"):
        output = densitylab.load(name)(recorded["rdm_density"])
        np.testing.assert_allclose(output, recorded[name], rtol=1e-12, atol=0)
    for name in ("scattering-memory", "scattering-dagger"):
        network = densitylab.load(name)
        output = np.asarray(network(jnp.asarray(recorded["tdks_window"])))
        np.testing.assert_allclose(output, recorded[name], rtol=1e-12, atol=0)
    switch = densitylab.load("memory-switch")  # its network, with the gate off (closed on this window)
    ungated = dict(gate_threshold=None, gate_center=None, gate_whitening=None, gate_scope="point")
    output = np.asarray(with_config(switch.network, **ungated)(jnp.asarray(recorded["tdks_window"])))
    np.testing.assert_allclose(output, recorded["memory-switch"], rtol=1e-12, atol=0)
    kinds = {"gamma-n": "rdm-gamma-n", "scattering-memory": "tdks-density-net"}
    for name, kind in (
        kinds | {"scattering-dagger": "tdks-density-net", "memory-switch": "tdks-switch"}
    ).items():
        assert kind_of(name) == kind


# ------------------------------------------------------------------ the format itself


def test_an_interrupted_write_leaves_the_old_artefact_and_no_temporary(tmp_path):
    target = tmp_path / "result"
    with artefact_folder(target) as folder:
        (folder / "manifest.json").write_text('{"kind": "exact1d-result"}')
    with pytest.raises(RuntimeError), artefact_folder(target) as folder:
        (folder / "half").write_text("x")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result"]
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json"]


def test_a_folder_of_user_files_is_never_replaced(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(InvalidParameterError, match="densitylab artefact to replace"):
        with artefact_folder(tmp_path):
            pass
    result = runner.invoke(app, ["exact1d", "--points", "20", "--output", str(tmp_path)])
    assert result.exit_code == 2 and (tmp_path / "notes.txt").read_text() == "mine"


def test_load_refuses_the_wrong_kind_and_foreign_files(tmp_path):
    invoke("exact1d", "--points", "20", "--output", tmp_path / "ud")
    assert kind_of(tmp_path / "ud") == "exact1d-result"
    with pytest.raises(InvalidParameterError, match=r"expected a neural γ\[n\].*is an exact1d result"):
        densitylab.load(tmp_path / "ud", kind="rdm-gamma-n")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(InvalidParameterError, match="not an HDF5 file"):
        densitylab.load(tmp_path / "x.txt")
    with pytest.raises(InvalidParameterError, match="shipped model"):
        densitylab.load("no-such-model")
    with pytest.raises(InvalidParameterError, match=r"model: expected .*learned"):
        from densitylab.tdks.evaluate import read_values

        read_values(tmp_path / "ud")


# ------------------------------------------------------------------ CLI and Python, side by side


def test_exact1d_cli_and_python_save_identical_artefacts(tmp_path):
    from densitylab.model1d.workflow import Exact1DConfig, run

    options = {"points": 40, "electrons": "uud", "potential": "atom:charge=3", "stencil": 7}
    invoke("exact1d", *[f"--{k}={v}" for k, v in options.items()], "--output", tmp_path / "cli")
    run(Exact1DConfig(**options)).save(tmp_path / "python")
    assert_same_artefact(tmp_path / "cli", tmp_path / "python")
    loaded = densitylab.load(tmp_path / "python")
    assert loaded.config["electrons"] == "uud" and loaded.summary()["density_integral"] == pytest.approx(3.0)


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    from densitylab.rdm.dataset import DatasetSpec, generate_dataset

    path = tmp_path_factory.mktemp("rdm") / "family.h5"
    generate_dataset(DatasetSpec(systems=60, points=16, stencil=3, chunk_size=60), path)
    return path


@pytest.mark.parametrize("model", ["pca-linear", "neural"])
def test_rdm_cli_and_python_save_identical_artefacts(tmp_path, small_dataset, model):
    from densitylab.rdm.workflow import TrainConfig, train

    options = {"model": model, "components": 6, "epochs": 2, "width": 16, "depth": 1, "rank": 3}
    invoke("rdm", "train", "--dataset", small_dataset, *[f"--{k}={v}" for k, v in options.items()],
           "--output", tmp_path / "cli")  # fmt: skip
    train(TrainConfig(dataset=str(small_dataset), **options)).save(tmp_path / "python")
    assert_same_artefact(tmp_path / "cli", tmp_path / "python")
    assert read_manifest(tmp_path / "cli")["training"]["model"] == model


def test_tdks_cli_and_python_save_identical_artefacts(tmp_path):
    from densitylab.tdks.workflow import LearnConfig, learn

    trajectory = tmp_path / "laser.h5"
    invoke("tdks", "exact", "--scenario", "laser", "--time", "1.0", "--dt", "0.01", "--store-every", "5",
           "--dx", "0.5", "--amplitude", "0.1", "--output", trajectory)  # fmt: skip
    options = {"optimiser": "gauss-newton", "gn-window": 10, "iterations": 2}
    invoke("tdks", "learn", "--trajectory", trajectory, *[f"--{k}={v}" for k, v in options.items()],
           "--output", tmp_path / "cli")  # fmt: skip
    config = LearnConfig(
        trajectories=(str(trajectory),), optimiser="gauss-newton", gn_window=10, iterations=2
    )
    learn(config).save(tmp_path / "python")
    assert_same_artefact(tmp_path / "cli", tmp_path / "python")
    assert densitylab.load(tmp_path / "cli").shape == (20, read_h5(trajectory)[0]["x"].size)


WATER = "3\n\nO 0 0 0.1173\nH 0 0.7572 -0.4692\nH 0 -0.7572 -0.4692\n"


def test_dft_cli_and_python_save_identical_artefacts(tmp_path):
    from densitylab.dft.workflow import DFTConfig, run

    (tmp_path / "water.xyz").write_text(WATER)
    options = {"basis": "sto-3g", "xc": "lda,vwn", "grid-level": 1}
    invoke("dft", "--molecule", tmp_path / "water.xyz", *[f"--{k}={v}" for k, v in options.items()],
           "--output", tmp_path / "cli")  # fmt: skip
    config = DFTConfig(molecule=str(tmp_path / "water.xyz"), basis="sto-3g", xc="lda,vwn", grid_level=1)
    run(config).save(tmp_path / "python")
    assert_same_artefact(tmp_path / "cli", tmp_path / "python")
    saved = densitylab.load(tmp_path / "cli")
    assert np.trace(saved.density_matrix() @ saved.arrays["overlap"]) == pytest.approx(10.0, abs=1e-8)


def test_density_cli_and_python_save_identical_artefacts(tmp_path):
    from densitylab.density.workflow import ReferenceConfig, TrainConfig, reference, train

    frames = "".join(WATER.replace("0.7572", f"{0.7572 + 0.02 * i:.4f}") for i in range(3))
    (tmp_path / "w.xyz").write_text(frames)
    reference(ReferenceConfig(structures=str(tmp_path / "w.xyz"), basis="sto-3g"), tmp_path / "ref.h5")
    options = {"sparse": 3, "columns": 20, "regularisation": "1e-6"}
    arguments = [f"--{k}={v}" for k, v in options.items()]
    invoke("density", "train", "--reference", tmp_path / "ref.h5", *arguments, "--output", tmp_path / "cli")
    train(TrainConfig(reference=str(tmp_path / "ref.h5"), **options)).save(tmp_path / "python")
    assert_same_artefact(tmp_path / "cli", tmp_path / "python")
    assert kind_of(tmp_path / "cli") == "density-model"
    compact = ["--single-precision", "--output", tmp_path / "compact"]
    invoke("density", "train", "--reference", tmp_path / "ref.h5", *arguments, *compact)
    singles, _ = read_h5(tmp_path / "compact" / "arrays.h5")
    doubles, _ = read_h5(tmp_path / "cli" / "arrays.h5")
    halved = [name for name, array in singles.items() if array.dtype == np.float32]
    assert halved and all(doubles[name].dtype == np.float64 for name in halved)
