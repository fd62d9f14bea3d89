"""Bad input gets one line, ``Error: <parameter>: expected …``, exit code 2, before any long work
and with nothing left on disk (issue: one workflow contract). Each case is one a new user tried."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from densitylab import limits
from densitylab.cli import app
from densitylab.data import check_output, file_kind, require_kind
from densitylab.errors import InvalidParameterError
from densitylab.model1d import make_system
from densitylab.model1d.exact import exact_memory_estimate, solve_exact
from densitylab.model1d.potentials import resolve_potential

runner = CliRunner()
WATER = "3\n\nO 0 0 0\nH 0.757 0 0.587\nH -0.757 0 0.587\n"


def refused(arguments, parameter, cwd=None):
    """Run the CLI; assert exit code 2 and a one-line error naming ``parameter``; return it."""
    if cwd is not None:
        os.chdir(cwd)
    result = runner.invoke(app, [str(a) for a in arguments])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Error: {parameter}: expected"), lines[0]
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ------------------------------------------------------------------ expressions and interactions


@pytest.mark.parametrize("expression", ["1/0*x", "10**10**10", "log(x-100)", "exp(1, 2)", "x +"])
def test_bad_potential_expressions_are_refused_naming_potential(workdir, expression):
    refused(["exact1d", "--points", "20", "--potential", expression], "potential")
    assert list(workdir.iterdir()) == []


def test_a_division_by_zero_in_the_library_is_refused_not_raised_as_zerodivision():
    with pytest.raises(InvalidParameterError, match="potential"):
        resolve_potential("1/0*x", np.linspace(-1, 1, 5))


def test_a_non_numeric_interaction_argument_names_interaction():
    refused(["exact1d", "--points", "20", "--interaction", "softened:strength=abc"], "interaction")


def test_user_text_with_rich_markup_is_printed_literally():
    line = refused(["exact1d", "--points", "20", "--potential", "[/red]x"], "potential")
    assert "[/red]x" in line


def test_hints_with_brackets_keep_them():
    """The qm9 hint names the extra as ``densitylab[qm9]``; Rich markup used to eat it."""
    from densitylab.cli.common import err

    with err.capture() as captured:
        err.print("Error: " + "pip install 'densitylab[qm9]'", markup=False)
    assert "densitylab[qm9]" in captured.get()


# ------------------------------------------------------------------ sizes


def test_memory_estimate_bounds_the_exact_vector_from_below():
    """Independent count: the vector has C(N, n↑)·C(N, n↓) float64 entries."""
    from math import comb

    for points, up, down in [(30, 1, 1), (40, 2, 1), (100, 4, 2)]:
        assert exact_memory_estimate(points, up, down) >= 8 * comb(points, up) * comb(points, down)


@pytest.mark.parametrize(
    ("arguments", "parameter"),
    [
        (["--electrons", "uuuudd", "--points", "100"], "electrons"),
        (["--points", "100000"], "points"),
        (["--points", "100000", "--method", "lda"], "points"),
    ],
)
def test_problems_that_cannot_fit_in_memory_are_refused_with_the_estimate(arguments, parameter):
    line = refused(["exact1d", *arguments], parameter)
    assert "GiB" in line and "available" in line


def test_the_memory_check_uses_what_is_available(monkeypatch):
    system = make_system(40, -5, 5, "ud", "harmonic", stencil=3)
    monkeypatch.setattr(limits, "available_memory", lambda: 1e3)
    with pytest.raises(InvalidParameterError, match="points: expected a size that fits in memory"):
        solve_exact(system)


@pytest.mark.parametrize("systems", ["1000000000000", "1000000000"])
def test_huge_rdm_datasets_are_refused_and_leave_nothing(workdir, systems):
    line = refused(["rdm", "generate", "--systems", systems, "--output", "r.h5"], "systems")
    assert "GiB" in line
    assert list(workdir.iterdir()) == []


def test_a_negative_confinement_is_refused_before_any_solve(workdir):
    """D·x^10 with D < 0 pulls the electrons onto the walls; the solves then failed to converge
    after the work, with an error that named no parameter."""
    line = refused(
        ["rdm", "generate", "--systems", "10", "--confinement", "-1", "--output", "r.h5"], "confinement"
    )
    assert "D ≥ 0" in line
    assert list(workdir.iterdir()) == []


def test_more_denoiser_input_components_than_the_inputs_have_are_refused(workdir):
    """The input γ of 38 training systems has 38 principal axes; asking for more crashed inside
    JAX (a dot_general shape error) after the training had started."""
    from densitylab.rdm import dataset

    spec = dataset.DatasetSpec(systems=40, points=16, stencil=3, chunk_size=40)
    dataset.generate_dataset(spec, workdir / "r.h5")
    arguments = ["rdm", "train", "--dataset", "r.h5", "--output", "m", "--model", "denoiser", "--epochs", "1"]
    line = refused([*arguments, "--input-components", "39"], "input_components")
    assert "at most 38" in line
    assert sorted(p.name for p in workdir.iterdir()) == ["r.h5"]
    result = runner.invoke(app, [*arguments, "--input-components", "38"])
    assert result.exit_code == 0, result.output


def test_a_test_fraction_that_leaves_nothing_to_train_on_is_refused_naming_it(workdir):
    """rdm pca named 'features' (an (S, F) array with S = 0); rdm train failed inside the fit.
    An evaluation needs no training part, so it takes every system."""
    from densitylab.rdm import dataset
    from densitylab.rdm.pca import split

    dataset.generate_dataset(
        dataset.DatasetSpec(systems=8, points=16, stencil=3, chunk_size=8), workdir / "r.h5"
    )
    for command, least in ((["rdm", "pca", "--output", "pc"], 2), (["rdm", "train", "--output", "m"], 1)):
        line = refused([*command, "--dataset", "r.h5", "--test-fraction", "0.95"], "test_fraction")
        assert f"at least {least} of the 8 systems" in line
    assert sorted(p.name for p in workdir.iterdir()) == ["r.h5"]
    result = runner.invoke(
        app, ["rdm", "evaluate", "--dataset", "r.h5", "--model", "sqrt", "--test-fraction", "0.95"]
    )
    assert result.exit_code == 0, result.output
    train, test = split(8, 0.95, least_training=0)
    assert len(train) == 0 and sorted(test) == list(range(8))


def test_a_first_run_that_fails_leaves_no_parts_folder(workdir, monkeypatch):
    from densitylab.rdm import dataset

    def broken(*arguments):
        raise RuntimeError("worker failed")

    monkeypatch.setattr(dataset, "solve_chunk", broken)
    spec = dataset.DatasetSpec(systems=4, points=8, stencil=3, chunk_size=2)
    with pytest.raises(RuntimeError):
        dataset.generate_dataset(spec, workdir / "r.h5")
    assert list(workdir.iterdir()) == []


# ------------------------------------------------------------------ outputs


@pytest.mark.parametrize("where", ["/proc/x/y.h5", "/proc/y.h5", "afile/y.h5", "missing/y.h5"])
def test_unwritable_outputs_are_refused_before_computing(workdir, where):
    (workdir / "afile").write_text("")
    refused(["exact1d", "--points", "20", "--output", where], "output")
    assert sorted(p.name for p in workdir.iterdir()) == ["afile"]


@pytest.mark.parametrize(
    "command",
    [
        ["tdks", "exact", "--time", "0.05"],
        ["rdm", "generate", "--systems", "4", "--points", "8", "--stencil", "3"],
        ["dft", "--molecule", "water.xyz", "--basis", "sto-3g", "--xc", "lda,vwn"],
        ["density", "reference", "--structures", "water.xyz", "--basis", "sto-3g"],
    ],
)
def test_every_writing_command_checks_its_output_first(workdir, command):
    (workdir / "water.xyz").write_text(WATER)
    refused([*command, "--output", "/proc/x/out.h5"], "output")
    assert sorted(p.name for p in workdir.iterdir()) == ["water.xyz"]


def test_check_output_kinds(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("")
    with pytest.raises(InvalidParameterError, match="not an existing folder"):
        check_output(tmp_path / "folder", kind="file")
    with pytest.raises(InvalidParameterError, match="not an existing file"):
        check_output(tmp_path / "file", kind="folder")
    assert check_output(tmp_path / "new.h5", kind="file") == tmp_path / "new.h5"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"]  # the probe is gone


# ------------------------------------------------------------------ non-finite numbers


@pytest.mark.parametrize(
    ("arguments", "parameter"),
    [
        (["exact1d", "--x-min", "nan"], "x_min"),
        (["tdks", "exact", "--scenario", "laser", "--amplitude", "nan", "--output", "a.h5"], "amplitude"),
        (["tdks", "exact", "--momentum", "inf", "--output", "a.h5"], "momentum"),
        (["tdks", "exact", "--momentum", "1e300", "--output", "a.h5"], "momentum"),
        (["tdks", "exact", "--time", "nan", "--output", "a.h5"], "time"),
        (["tdks", "exact", "--dt", "0", "--output", "a.h5"], "dt"),
        (["tdks", "exact", "--dt", "-0.01", "--output", "a.h5"], "dt"),
        (["tdks", "exact", "--dx", "0.001", "--output", "a.h5"], "dx"),
        (
            ["dft", "--molecule", "water.xyz", "--optimiser", "adam", "--learning-rate", "nan"],
            "learning_rate",
        ),
        (["tdks", "learn", "--trajectory", "t.h5", "--output", "m", "--gn-floor", "nan"], "gn_floor"),
        (  # 0 means no fine-tuning; beside another horizon it was silently dropped
            ["tdks", "functional", "--dataset", "d", "--output", "f", "--horizon", "0", "--horizon", "60"],
            "horizon",
        ),
        (
            ["density", "train", "--reference", "r.h5", "--output", "m", "--metric-precision", "half"],
            "metric_precision",
        ),
    ],
)
def test_non_finite_and_out_of_range_numbers_name_their_parameter(workdir, arguments, parameter):
    (workdir / "water.xyz").write_text(WATER)
    refused(arguments, parameter)
    assert sorted(p.name for p in workdir.iterdir()) == ["water.xyz"]


def test_a_propagation_that_turns_non_finite_stops_with_an_error():
    from densitylab.errors import NumericalError
    from densitylab.model1d.propagation import propagate, scattering_scenario

    scenario = scattering_scenario(dx=0.5, x_min=-20, x_max=20, x0=5, atom_center=-5, stencil=3)
    broken = scenario.__class__(
        scenario.name, scenario.grid, scenario.interaction, scenario.psi0 * np.nan,
        scenario.v_ext, None, scenario.parameters,
    )  # fmt: skip
    with pytest.raises(NumericalError, match="non-finite"):
        propagate(broken, 0.01, 2)


# ------------------------------------------------------------------ files of the wrong kind


@pytest.fixture
def exact1d_file(workdir):
    result = runner.invoke(app, ["exact1d", "--points", "20", "--output", "ud.h5"])
    assert result.exit_code == 0, result.output
    return workdir / "ud.h5"


@pytest.mark.parametrize(
    "command",
    [
        ["rdm", "evaluate", "--dataset", "ud.h5"],
        ["rdm", "train", "--dataset", "ud.h5", "--output", "model"],
        ["rdm", "pca", "--dataset", "ud.h5"],
    ],
)
def test_an_exact1d_file_given_as_a_dataset_is_named_as_such(exact1d_file, command):
    line = refused(command, "dataset")
    assert "ud.h5 is an exact1d result" in line and "expected an rdm dataset" in line


def test_a_trajectory_given_to_rdm_train_and_a_result_to_tdks_are_named(exact1d_file, workdir):
    from densitylab.model1d.propagation import propagate, save_trajectory, scattering_scenario

    scenario = scattering_scenario(dx=0.5, x_min=-20, x_max=20, x0=5, atom_center=-5, stencil=3)
    save_trajectory(propagate(scenario, 0.01, 2), workdir / "t.h5")
    assert file_kind(workdir / "t.h5") == "exact-trajectory"
    assert "t.h5 is an exact trajectory" in refused(
        ["rdm", "train", "--dataset", "t.h5", "--output", "m"], "dataset"
    )
    assert "ud.h5 is an exact1d result" in refused(
        ["tdks", "evaluate", "--trajectory", "ud.h5", "--model", "alda"], "trajectory"
    )


def test_a_file_that_is_not_hdf5_is_named_as_such(workdir):
    (workdir / "notes.txt").write_text("hello")
    with pytest.raises(InvalidParameterError, match=r"notes\.txt is not an HDF5 file"):
        require_kind(workdir / "notes.txt", "rdm-dataset", "dataset")


# ------------------------------------------------------------------ molecules


def test_two_atoms_at_one_position_are_refused_in_dft_and_density(workdir):
    (workdir / "bad.xyz").write_text("3\n\nO 0 0 0\nH 0 0 0\nH 0 0.75 0.58\n")
    assert "atoms 0 and 1 are 0 Å apart" in refused(
        ["dft", "--molecule", "bad.xyz", "--basis", "sto-3g"], "molecule"
    )
    refused(["density", "reference", "--structures", "bad.xyz", "--output", "r.h5"], "structures")
    assert sorted(p.name for p in workdir.iterdir()) == ["bad.xyz"]


@pytest.mark.parametrize(
    ("arguments", "parameter"),
    [
        (["dft", "--basis", "sto-3g"], "molecule"),
        (["dft", "water.xyz", "--molecule", "water.xyz"], "molecule"),
        (["density", "predict", "--model", "qm9-pbe"], "structures"),
        (["density", "predict", "water.xyz", "--structures", "water.xyz"], "structures"),
    ],
)
def test_an_input_file_is_given_once_as_the_argument_or_the_option(workdir, arguments, parameter):
    (workdir / "water.xyz").write_text(WATER)
    refused(arguments, parameter)


@pytest.mark.parametrize(
    ("text", "changes", "parameter"),
    [
        ("1\n\nH 0 0 0\n", {}, "spin"),  # one electron, spin 0
        ("2\n\nXx 0 0 0\nH 0 0 0.7\n", {}, "molecule"),
        (WATER, {"basis": "no-such-basis"}, "basis"),
        (WATER, {"charge": 1}, "spin"),  # nine electrons, spin 0
    ],
)
def test_a_dft_config_refuses_a_molecule_it_cannot_build_when_made(workdir, text, changes, parameter):
    """Catches a molecule checked only once the run has begun (after the progress bar was
    drawn): the config refuses it when it is made, naming the parameter."""
    from densitylab.dft.workflow import DFTConfig

    (workdir / "m.xyz").write_text(text)
    with pytest.raises(InvalidParameterError, match=rf"^{parameter}"):
        DFTConfig("m.xyz", **changes)


def test_density_reference_names_xc_and_basis_and_leaves_no_structures_file(workdir):
    (workdir / "water.xyz").write_text(WATER)
    refused(["density", "reference", "--water", "2", "--xc", "foo", "--output", "ref.h5"], "xc")
    refused(
        ["density", "reference", "--structures", "water.xyz", "--basis", "foo", "--output", "ref.h5"], "basis"
    )
    assert sorted(p.name for p in workdir.iterdir()) == ["water.xyz"]


# ------------------------------------------------------------------ the CLI as a whole


def test_version():
    from densitylab import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"densitylab {__version__}"


def _heavy_modules(code: str) -> list[str]:
    probe = (
        code + "\nimport json, sys\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules}"
        " & {'matplotlib', 'jax', 'pyscf', 'equinox', 'optax', 'featomic', 'dask'})))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_help_and_exact1d_import_neither_matplotlib_jax_nor_pyscf(tmp_path):
    run = "from densitylab.cli import app\ntry:\n    app({})\nexcept SystemExit:\n    pass\n"
    assert _heavy_modules(run.format(["--help"])) == []
    output = str(tmp_path / "ud.h5")
    assert _heavy_modules(run.format(["exact1d", "--points", "30", "--json", "--output", output])) == []


def test_a_dft_run_imports_neither_equinox_nor_optax(tmp_path):
    """The fixed-basis DFT has no neural network: equinox's import alone is 7 MB of resident
    memory, 5 % of PySCF's whole peak on water (issue 19's memory target)."""
    (tmp_path / "h2.xyz").write_text("2\n\nH 0 0 0\nH 0 0 0.74\n")
    run = (
        "from densitylab.dft.workflow import DFTConfig, run\n"
        f"run(DFTConfig({str(tmp_path / 'h2.xyz')!r}, basis='sto-3g', xc='lda,vwn', grid_level=1,"
        " forces=True))\n"
    )
    assert _heavy_modules(run) == ["jax", "pyscf"]


def test_plotting_leaves_the_callers_matplotlib_backend_alone(tmp_path):
    code = (
        "import matplotlib\nmatplotlib.use('svg')\nimport numpy as np\n"
        "import densitylab.model1d, densitylab.plots as plots\n"
        f"plots.plot_state(np.arange(3.), np.ones(3), np.eye(3), np.ones(3), 't', r'{tmp_path / 's.png'}')\n"
        "print(matplotlib.get_backend())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().lower() == "svg"
    assert (tmp_path / "s.png").stat().st_size > 5_000


def test_help_texts_keep_their_brackets():
    """Rich markup used to swallow '[…]' in help texts."""
    result = runner.invoke(app, ["rdm", "evaluate", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert (
        "pretrained[:NAME]" in result.stdout
        and "γ[n]" in runner.invoke(app, ["rdm", "train", "--help"]).stdout
    )


def test_training_that_turns_non_finite_stops_with_an_error():
    import jax.numpy as jnp
    import optax

    from densitylab.errors import NumericalError
    from densitylab.training import optax_loop

    with pytest.raises(NumericalError, match="non-finite"):
        optax_loop(lambda p: jnp.sum(jnp.log(p)), jnp.array([-1.0, 2.0]), optax.adam(0.1), 3)


def test_a_dft_iteration_with_a_non_finite_energy_stops_the_run():
    """Every iteration passes through the history record, which refuses NaN and inf."""
    from densitylab.dft.optimise import _record
    from densitylab.errors import NumericalError

    history: list = []
    _record(history, None, 0.0, -1.0, 0.1, 0.0)
    with pytest.raises(NumericalError, match="iteration 2"):
        _record(history, None, 0.0, float("nan"), 0.1, 0.0)


@pytest.mark.parametrize(
    ("arguments", "parameter"),
    [
        (["exact1d", "--points", "20", "--potential", "random:seed=1.5"], "potential"),
        (["rdm", "train", "--dataset", "d.h5", "--output", "m", "--rank", "0"], "rank"),
        (["rdm", "train", "--dataset", "d.h5", "--output", "m", "--width", "0"], "width"),
    ],
)
def test_integers_that_would_be_truncated_or_zero_sizes_are_refused(workdir, arguments, parameter):
    (workdir / "d.h5").write_text("")
    refused(arguments, parameter)


def test_a_coarsening_that_leaves_too_few_points_is_refused(workdir):
    from densitylab.model1d.propagation import propagate, save_trajectory, scattering_scenario

    scenario = scattering_scenario(dx=0.5, x_min=-20, x_max=20, x0=5, atom_center=-5, stencil=3)
    save_trajectory(propagate(scenario, 0.01, 2), workdir / "t.h5")
    refused(["tdks", "learn", "--trajectory", "t.h5", "--output", "m", "--coarsen", "1000"], "coarsen")


@pytest.mark.parametrize(
    "command",
    [
        ["rdm", "train", "--dataset", "d.h5"],
        ["tdks", "learn", "--trajectory", "t.h5"],
        ["dft", "--molecule", "water.xyz"],
        ["density", "train", "--reference", "r.h5"],
        ["exact1d", "--points", "20"],
    ],
)
def test_an_artefact_output_holding_other_files_is_refused_before_any_work(workdir, command):
    """Catches a refusal that comes only when the result is saved, after hours of training."""
    (workdir / "water.xyz").write_text(WATER)
    (workdir / "mine").mkdir()
    (workdir / "mine" / "notes.txt").write_text("keep")
    line = refused([*command, "--output", "mine"], "output")
    assert "densitylab artefact to replace" in line
    assert (workdir / "mine" / "notes.txt").read_text() == "keep"
