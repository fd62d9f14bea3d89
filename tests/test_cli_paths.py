"""CLI paths that no other test runs (issue 21): the rdm studies, the convolutional autoencoder,
and resuming `tdks exact` and `density reference` from the command line."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from densitylab.cli import app
from densitylab.data import read_h5

runner = CliRunner()


def invoke(*arguments):
    result = runner.invoke(app, [str(a) for a in arguments])
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def small_family(tmp_path_factory):
    path = tmp_path_factory.mktemp("family") / "family.h5"
    invoke(
        "rdm",
        "generate",
        "--systems",
        80,
        "--points",
        16,
        "--stencil",
        3,
        "--chunk-size",
        80,
        "--output",
        path,
    )
    return path


def test_rdm_pca_finds_the_density_rank(small_family, tmp_path):
    """Catches a PCA that counts components wrongly: 16-point densities have 16 features, and the
    components needed for machine precision cannot exceed them (nor the training systems)."""
    result = invoke("rdm", "pca", "--dataset", small_family, "--output", tmp_path / "pca", "--json")
    summary = json.loads(result.stdout)
    density = next(curve for curve in summary["curves"] if curve["name"].startswith("densit"))
    assert density["features"] == 16
    assert 1 <= density["components_machine_precision"] <= 16
    assert (tmp_path / "pca" / "pca.png").stat().st_size > 10_000


def test_rdm_compression_and_dimer_commands_write_their_studies(tmp_path):
    """Catches a study that runs but writes nothing, or mislabels its grids."""
    result = invoke(
        "rdm", "compression", "--grids", "2,3", "--systems", 40, "--output", tmp_path / "c", "--json"
    )
    assert sorted(json.loads(result.stdout)["grids"]) == ["2", "3"]
    assert (tmp_path / "c" / "compression.png").is_file() and (tmp_path / "c" / "family-3.h5").is_file()
    result = invoke("rdm", "dimer", "--systems", 200, "--steps", 50, "--output", tmp_path / "d", "--json")
    assert json.loads((tmp_path / "d" / "dimer.json").read_text()) == json.loads(result.stdout)


def test_rdm_train_a_conv_autoencoder_from_the_cli(small_family, tmp_path):
    """Catches the autoencoder path of `rdm train` breaking (it had no CLI test): it trains,
    saves an artefact and reports held-out metrics of reconstructed exact 1-RDMs."""
    result = invoke("rdm", "train", "--dataset", small_family, "--model", "conv-autoencoder", "--epochs", 2,
                    "--bottleneck", 8, "--output", tmp_path / "ae", "--json")  # fmt: skip
    summary = json.loads(result.stdout)
    assert summary["model"] == "conv-autoencoder" and summary["held_out"]["mae"] > 0
    assert json.loads((tmp_path / "ae" / "manifest.json").read_text())["kind"] == "rdm-conv-autoencoder"


def test_tdks_exact_resumes_from_its_checkpoint_to_the_same_trajectory(tmp_path):
    """Catches a CLI resume that starts over, or mixes two runs: an interrupted run, finished by
    the same command, gives the uninterrupted run's trajectory bit for bit."""
    from densitylab.tdks.workflow import ExactConfig, exact

    options = ["--scenario", "laser", "--time", "0.4", "--dt", "0.01", "--store-every", "2", "--dx", "0.5"]
    invoke("tdks", "exact", *options, "--output", tmp_path / "whole.h5")
    config = ExactConfig(scenario="laser", time=0.4, dt=0.01, store_every=2, dx=0.5)

    def interrupt(step, total):
        if step == 30:
            raise KeyboardInterrupt

    partial = tmp_path / "resumed.h5.partial.npz"
    with pytest.raises(KeyboardInterrupt):
        from densitylab.model1d.propagation import propagate

        propagate(config.build(), config.dt, config.steps(), config.store_every, progress=interrupt,
                  checkpoint=partial, checkpoint_every=1)  # fmt: skip
    assert partial.is_file()
    invoke("tdks", "exact", *options, "--output", tmp_path / "resumed.h5")
    assert not partial.exists()
    whole, resumed = read_h5(tmp_path / "whole.h5")[0], read_h5(tmp_path / "resumed.h5")[0]
    for name in ("density", "current", "norm", "energy"):
        np.testing.assert_array_equal(resumed[name], whole[name])
    assert exact  # the library entry point the CLI uses


def test_density_reference_resumes_from_its_parts(tmp_path):
    """Catches a reference run that recomputes finished structures or mixes parameters: a run
    stopped after its first chunk, finished by the same command, matches an uninterrupted one."""
    frames = "".join(
        f"3\n\nO 0 0 0.1173\nH 0 {0.7572 + 0.02 * i:.4f} -0.4692\nH 0 -0.7572 -0.4692\n" for i in range(4)
    )
    (tmp_path / "w.xyz").write_text(frames)
    common = [
        "density",
        "reference",
        "--structures",
        tmp_path / "w.xyz",
        "--basis",
        "sto-3g",
        "--chunk-size",
        2,
    ]
    invoke(*common, "--output", tmp_path / "whole.h5")

    from densitylab import parallel

    original, calls = parallel.run_tasks, {"count": 0}

    def one_chunk_then_stop(function, tasks, on_result, **options):
        def stop_after_first(key, result):
            on_result(key, result)
            calls["count"] += 1
            raise KeyboardInterrupt

        return original(function, tasks, stop_after_first, **options)

    parallel.run_tasks = one_chunk_then_stop
    try:
        stopped = runner.invoke(app, [str(a) for a in (*common, "--output", tmp_path / "resumed.h5")])
    finally:
        parallel.run_tasks = original
    assert stopped.exit_code != 0 and calls["count"] == 1
    assert (tmp_path / "resumed.h5.parts").is_dir()
    result = invoke(*common, "--output", tmp_path / "resumed.h5", "--json")
    assert json.loads(result.stdout)["resumed_chunks"] == 1
    whole, resumed = read_h5(tmp_path / "whole.h5")[0], read_h5(tmp_path / "resumed.h5")[0]
    assert sorted(whole) == sorted(resumed)
    np.testing.assert_allclose(resumed["energy"], whole["energy"], rtol=0, atol=1e-10)


def test_tdks_learn_resumes_from_its_checkpoint_to_the_same_values(tmp_path):
    """Catches a `tdks learn` rerun that starts over or continues another job: a Gauss–Newton fit
    interrupted after its first window and finished by the same command gives the uninterrupted
    fit's v_c bit for bit."""
    from densitylab.tdks.evaluate import read_values
    from densitylab.tdks.workflow import LearnConfig, learn

    trajectory = tmp_path / "laser.h5"
    invoke("tdks", "exact", "--scenario", "laser", "--time", "1.0", "--dt", "0.01", "--store-every", "5",
           "--dx", "0.5", "--amplitude", "0.1", "--output", trajectory)  # fmt: skip
    options = [
        "--optimiser",
        "gauss-newton",
        "--gn-window",
        "5",
        "--iterations",
        "2",
        "--gn-cg-iterations",
        "20",
    ]
    invoke("tdks", "learn", "--trajectory", trajectory, *options, "--output", tmp_path / "whole")

    def interrupt(done, total, **fields):
        if done == 1:
            raise KeyboardInterrupt

    config = LearnConfig(
        (str(trajectory),), optimiser="gauss-newton", gn_window=5, iterations=2, gn_cg_iterations=20
    )
    checkpoint = tmp_path / "resumed.checkpoint.npz"
    with pytest.raises(KeyboardInterrupt):
        learn(config, interrupt, checkpoint=checkpoint)
    assert checkpoint.is_file()
    invoke("tdks", "learn", "--trajectory", trajectory, *options, "--output", tmp_path / "resumed")
    assert not checkpoint.exists()
    np.testing.assert_array_equal(read_values(tmp_path / "resumed"), read_values(tmp_path / "whole"))


def test_rdm_train_resumes_from_its_checkpoint_to_the_same_weights(small_family, tmp_path):
    """Catches an `rdm train` rerun that starts over, restarts Adam's moments or the shuffling
    generator, or continues another job: a fit interrupted after its second epoch and finished
    by the same command writes the uninterrupted fit's weights bit for bit; the same checkpoint
    under another learning rate is refused before any training."""
    from densitylab.rdm.workflow import TrainConfig, train

    options = {"epochs": 4, "width": 16, "depth": 2, "rank": 4}
    flags = [item for name, value in options.items() for item in (f"--{name}", value)]
    invoke("rdm", "train", "--dataset", small_family, *flags, "--output", tmp_path / "whole")

    def interrupt(done, total, **fields):
        if done == 2:
            raise KeyboardInterrupt

    checkpoint = tmp_path / "resumed.checkpoint.npz"
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(str(small_family), **options), interrupt, checkpoint=checkpoint)
    assert checkpoint.is_file()
    refused = runner.invoke(
        app, ["rdm", "train", "--dataset", str(small_family), *map(str, flags), "--learning-rate", "0.01",
              "--output", str(tmp_path / "resumed")],
    )  # fmt: skip
    assert refused.exit_code == 2 and "learning_rate: 0.001 there, 0.01 now" in refused.output
    assert not (tmp_path / "resumed").exists()
    invoke("rdm", "train", "--dataset", small_family, *flags, "--output", tmp_path / "resumed")
    assert not checkpoint.exists()
    whole, resumed = (
        json.loads((tmp_path / name / "manifest.json").read_text()) for name in ("whole", "resumed")
    )
    assert resumed["history"] == whole["history"] and len(whole["history"]["epoch"]) == 4
    weights = [(tmp_path / name / "weights.eqx").read_bytes() for name in ("whole", "resumed")]
    assert weights[0] == weights[1]
