"""The ``densitylab`` command line. Every workflow has a sub-command; this is the only module
that imports all of them."""

from __future__ import annotations

import json
import math
import sys
from functools import wraps
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from densitylab.errors import DensitylabError

app = typer.Typer(help="densitylab: machine learning for electronic structure.", no_args_is_help=True)
err = Console(stderr=True)


def friendly_errors(function):
    """Turn densitylab's own errors into a one-line message and exit code 2."""

    @wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except DensitylabError as exc:
            err.print(f"[bold red]Error:[/] {exc}")
            raise typer.Exit(code=2) from None

    return wrapper


@app.command("exact1d")
@friendly_errors
def exact1d(
    points: Annotated[int, typer.Option(help="Grid points N (x_min and x_max included).")] = 100,
    x_min: Annotated[float, typer.Option(help="Left box edge (bohr).")] = -10.0,
    x_max: Annotated[float, typer.Option(help="Right box edge (bohr).")] = 10.0,
    electrons: Annotated[str, typer.Option(help="Spin string, e.g. ud, uu, uud, uudd.")] = "ud",
    potential: Annotated[
        str,
        typer.Option(
            help="Built-in (harmonic, atom, soft-coulomb-atom, double-well, random) with optional "
            "':key=value,...', a math expression in x, or a .npy file."
        ),
    ] = "harmonic",
    interaction: Annotated[
        str, typer.Option(help="softened | soft-coulomb | none, optionally ':strength=s,softening=a'.")
    ] = "softened",
    stencil: Annotated[int, typer.Option(help="Finite-difference stencil points (3..13).")] = 13,
    states: Annotated[int, typer.Option(help="Number of lowest states (exact method).")] = 1,
    method: Annotated[
        str, typer.Option(help="exact | hartree-fock | lda | hartree | non-interacting.")
    ] = "exact",
    restricted: Annotated[
        bool | None,
        typer.Option(
            "--restricted/--unrestricted", help="Mean-field only. Default: restricted for closed shells."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    output: Annotated[Path | None, typer.Option(help="Write the result to FILE.h5.")] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Draw density, 1-RDM and occupations to FILE.png.")
    ] = None,
) -> None:
    """Solve a 1D model system exactly or with a mean-field method."""
    from densitylab.model1d.results import solve_ground_state
    from densitylab.model1d.system import make_system

    system = make_system(points, x_min, x_max, electrons, potential, interaction, stencil)
    options = {} if method == "exact" or restricted is None else {"restricted": restricted}
    with err.status(f"solving {electrons} on {points} points ({method})"):
        report = solve_ground_state(system, method, states=states, **options)
    summary = report.summary()
    if output is not None:
        report.save(output)
        summary["output"] = str(output)
    if plot is not None:
        report.plot(plot)
        summary["plot"] = str(plot)
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
        return
    table = Table(title=f"{method}: {electrons} on {points} points")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for key in (
        "energy",
        "kinetic_energy",
        "external_energy",
        "interaction_energy",
        "hartree_energy",
        "exchange_energy",
        "correlation_energy",
        "density_integral",
        "seconds",
    ):
        if key in summary:
            table.add_row(key, f"{summary[key]:.10f}")
    if states > 1:
        table.add_row("energies", ", ".join(f"{e:.8f}" for e in summary["energies"]))
    table.add_row("natural occupations", ", ".join(f"{v:.3e}" for v in summary["natural_occupations"][:6]))
    Console().print(table)


@app.command("demo")
@friendly_errors
def demo(
    output: Annotated[Path, typer.Option(help="Folder for figures and the summary table.")] = Path(
        "demo-output"
    ),
) -> None:
    """Run a short demo of every workflow; figures and summary.md go to OUTPUT."""
    from rich.progress import Progress

    from densitylab.model1d import demo as model1d_demo

    sections = [("Exact 1D model systems: two electrons in a double well", model1d_demo.run)]
    lines = ["# densitylab demo", ""]
    with Progress(console=err) as progress:
        task = progress.add_task("demo", total=len(sections))
        for title, run in sections:
            progress.update(task, description=title[:40])
            rows = run(output)
            lines += [
                f"## {title}",
                "",
                "| method | energy (Ha) | ∫|n − n_exact| dx | seconds |",
                "|---|---|---|---|",
            ]
            for row in rows:
                energy = "—" if math.isnan(row["energy_ha"]) else f"{row['energy_ha']:.8f}"
                lines.append(
                    f"| {row['method']} | {energy} | {row['density_error']:.2e} | {row['seconds']:.3f} |"
                )
            lines.append("")
            progress.advance(task)
    (output / "summary.md").write_text("\n".join(lines))
    Console().print("\n".join(lines))
    Console().print(f"Figures and summary written to {output}/")


if __name__ == "__main__":
    app()
