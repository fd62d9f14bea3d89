import json

import numpy as np
import pytest
from typer.testing import CliRunner

from densitylab.cli import app
from densitylab.data import read_h5
from densitylab.model1d import make_system, solve_exact

runner = CliRunner()


def test_exact1d_json_output_file_and_plot(tmp_path):
    output, plot = tmp_path / "result", tmp_path / "figures"  # an artefact folder, a figures folder
    result = runner.invoke(
        app,
        [
            "exact1d",
            "--points",
            "60",
            "--x-min",
            "-8",
            "--x-max",
            "8",
            "--electrons",
            "uud",
            "--potential",
            "0.5*0.25**2*x**2 - exp(-(x-1)**2)",
            "--json",
            "--output",
            str(output),
            "--plot",
            str(plot),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    occupations = np.array(summary["natural_occupations"])
    assert summary["density_integral"] == pytest.approx(3.0, abs=1e-10)
    assert np.all(np.diff(occupations) <= 1e-14)
    assert occupations.sum() == pytest.approx(3.0, abs=1e-6)
    assert summary["seconds"] > 0
    system = make_system(60, -8, 8, "uud", "0.5*0.25**2*x**2 - exp(-(x-1)**2)")
    assert summary["energy"] == pytest.approx(solve_exact(system).ground.energy, abs=1e-10)
    arrays, attributes = read_h5(output / "arrays.h5")
    assert (
        attributes["electrons"] == "uud" and attributes["points"] == 60 and "densitylab_version" in attributes
    )
    np.testing.assert_allclose(np.trace(arrays["rdm1"]) * (16 / 59), 3.0, atol=1e-10)
    assert (plot / "state.png").stat().st_size > 10_000


@pytest.mark.parametrize("method", ["hartree-fock", "lda", "non-interacting", "hartree"])
def test_exact1d_mean_field_methods(method):
    result = runner.invoke(
        app, ["exact1d", "--points", "50", "--electrons", "ud", "--method", method, "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["method"] == method
    assert summary["natural_occupations"][0] == pytest.approx(2.0, abs=1e-10)
    # the energy is the library's (a CLI that dropped an option would not be), and for
    # non-interacting electrons it is 2ε₀ of the one-body Hamiltonian (independent truth)
    from densitylab.model1d.meanfield import solve_mean_field

    system = make_system(50, -10, 10, "ud", "harmonic")
    assert summary["energy"] == pytest.approx(solve_mean_field(system, method).energy, abs=1e-9)
    if method == "non-interacting":
        lowest = np.linalg.eigvalsh(system.grid.kinetic_dense() + np.diag(system.v_ext))[0]
        assert summary["energy"] == pytest.approx(2.0 * lowest, abs=1e-10)


def test_exact1d_excited_states_are_ascending():
    result = runner.invoke(app, ["exact1d", "--points", "40", "--states", "3", "--json"])
    assert result.exit_code == 0, result.output
    energies = json.loads(result.stdout)["energies"]
    assert len(energies) == 3 and energies == sorted(energies)
    expected = solve_exact(make_system(40, -10, 10, "ud", "harmonic"), states=3).energies
    np.testing.assert_allclose(energies, expected, atol=1e-10)
    assert energies[1] - energies[0] > 1e-3  # three distinct states, not one found three times


@pytest.mark.parametrize(
    "arguments, parameter",
    [
        (["--points", "5"], "points"),
        (["--electrons", "uxd"], "electrons"),
        (["--potential", "x*nan"], "potential"),
        (["--potential", "__import__('os').getcwd()"], "potential"),
        (["--stencil", "4"], "stencil"),
        (["--method", "ccsd"], "method"),
        (["--interaction", "yukawa"], "interaction"),
        (["--output", "result.txt"], "output"),
        (["--method", "lda", "--states", "2"], "states"),
    ],
)
def test_exact1d_bad_input_gets_a_clear_error(arguments, parameter, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "result.txt").write_text("")  # an existing file where the output folder goes
    result = runner.invoke(
        app,
        ["exact1d", "--points", "30", *arguments] if arguments[0] != "--points" else ["exact1d", *arguments],
    )
    assert result.exit_code == 2
    assert f"Error: {parameter}" in result.output
    assert "Traceback" not in result.output


def test_demo_writes_figures_and_summary(tmp_path):
    result = runner.invoke(app, ["demo", "--output", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = (tmp_path / "summary.md").read_text()
    for label in (
        "exact",
        "Hartree-Fock",
        "LDA",
        "KS inversion",
        "√(n(x) n(x')) baseline",
        "linear PCA functional",
        "pretrained neural γ[n]",
        "exchange-only",
        "alda",
        "learned values",
        "densitylab L-BFGS",
        "PySCF DIIS",
        "% RMSE in the overlap metric",
    ):
        assert label in summary
    for figure in (
        "exact1d_state.png",
        "exact1d_densities.png",
        "exact1d_potentials.png",
        "rdm_pca.png",
        "rdm_functionals.png",
        "tdks_errors.png",
        "tdks_maps.png",
        "dft_convergence.png",
        "density/parity.png",
        "density/density_slices.png",
    ):
        assert (tmp_path / figure).stat().st_size > 10_000
    # every table row has as many cells as its header (no stray '|' inside a cell)
    tables = [block.splitlines() for block in summary.split("\n\n") if block.startswith("|")]
    assert len(tables) == 5
    for table in tables:
        assert len({line.count("|") for line in table}) == 1, table
    # the demo's water energy matches PySCF's to 1 µHa
    dft_rows = [line for line in tables[3] if line.startswith("| densitylab L-BFGS")]
    assert abs(float(dft_rows[0].split("|")[3])) < 1e-6
    assert (tmp_path / "dft_water" / "density.cube").stat().st_size > 100_000


def test_exact1d_unrestricted_hartree_fock_breaks_symmetry_in_a_double_well():
    common = [
        "exact1d",
        "--points",
        "60",
        "--electrons",
        "ud",
        "--potential",
        "double-well:barrier=2,separation=7",
        "--method",
        "hartree-fock",
        "--json",
    ]
    restricted = json.loads(runner.invoke(app, [*common, "--restricted"]).stdout)["energy"]
    unrestricted = json.loads(runner.invoke(app, [*common, "--unrestricted"]).stdout)["energy"]
    assert unrestricted < restricted - 1e-4


def test_a_batch_job_logs_its_progress_as_plain_lines_at_most_every_interval(monkeypatch, capsys):
    from densitylab.cli import common

    clock = [0.0]
    monkeypatch.setattr(common.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(common, "LOG_EVERY", 60.0)
    _bar, callback = common.rich_progress("training", 8, {"stage": "s", "loss": ".2e"})
    for step, now in enumerate((10.0, 59.0, 61.0, 90.0, 125.0), start=1):
        clock[0] = now
        callback(step, 8, stage="horizon-600", loss=0.5 / step)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("training:")]
    # captured stderr is no terminal: one line after 60 s, none within the next 60 s, one at 125 s
    assert lines == [
        "training: 3/8 stage horizon-600  loss 1.67e-01 (61 s)",
        "training: 5/8 stage horizon-600  loss 1.00e-01 (125 s)",
    ]


def test_warnings_print_as_one_line_and_the_default_display_comes_back(tmp_path, monkeypatch):
    """A library warning reaches a command's user as 'Warning: …' on stderr, not as Python's
    path, line number and source line; after the command Python's display is back."""
    import warnings

    from densitylab.model1d import propagation

    monkeypatch.setattr(propagation, "edge_charge", lambda trajectory, width=5.0: 0.25)
    before = warnings.showwarning
    arguments = ["tdks", "exact", "--scenario", "laser", "--time", "0.5", "--dx", "0.5"]
    result = runner.invoke(app, [*arguments, "--output", str(tmp_path / "t.h5")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "walls" in line]
    assert len(lines) == 1 and lines[0].startswith("Warning: charge reached the box's walls"), result.stderr
    assert "UserWarning" not in result.stderr and "workflow.py" not in result.stderr
    assert warnings.showwarning is before


def test_summaries_and_rows_print_brackets_as_text_not_markup():
    """``memory-switch [sce]`` (the expert a switch propagated) and a path with brackets print
    as they are: Rich would otherwise read ``[sce]`` as a style and drop it."""
    from rich.console import Console

    from densitylab.cli.common import summary_table

    console = Console(record=True, width=200)
    console.print(summary_table({"propagated": "memory-switch [sce]", "output": "runs/a[1]"}, "x [bold]"))
    text = console.export_text()
    assert "memory-switch [sce]" in text and "runs/a[1]" in text and "x [bold]" in text
