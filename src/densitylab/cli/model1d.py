"""``densitylab exact1d``: exact or mean-field ground states of a 1D model system."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from densitylab.cli.common import command, err, out

app = typer.Typer()


@command(app, "exact1d", outputs={"output": "file", "plot": "file"})
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
    out.print(table)
