"""``densitylab exact1d``: exact or mean-field ground states of a 1D model system, through
:mod:`densitylab.model1d.workflow`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from densitylab.cli.common import Json, Plot, command, config_from, err, plot_folder, print_summary

app = typer.Typer()

Potential = Annotated[
    str,
    typer.Option(
        help="Built-in (harmonic, atom, soft-coulomb-atom, double-well, random) with optional "
        "':key=value,...', a math expression in x, or a .npy file."
    ),
]
InteractionOption = Annotated[
    str, typer.Option(help="softened | soft-coulomb | none, optionally ':strength=s,softening=a'.")
]
Restricted = Annotated[
    bool | None,
    typer.Option(
        "--restricted/--unrestricted", help="Mean-field only. Default: restricted for closed shells."
    ),
]
ENERGIES = ("kinetic", "external", "interaction", "hartree", "exchange", "correlation")
TABLE = (
    "energy",
    "energies",
    *(f"{name}_energy" for name in ENERGIES),
    "density_integral",
    "natural_occupations",
)


@command(app, "exact1d", outputs={"output": "artefact"})
def exact1d(
    points: Annotated[int, typer.Option(help="Grid points N (x_min and x_max included).")] = 100,
    x_min: Annotated[float, typer.Option(help="Left box edge (bohr).")] = -10.0,
    x_max: Annotated[float, typer.Option(help="Right box edge (bohr).")] = 10.0,
    electrons: Annotated[str, typer.Option(help="Spin string, e.g. ud, uu, uud, uudd.")] = "ud",
    potential: Potential = "harmonic",
    interaction: InteractionOption = "softened",
    stencil: Annotated[int, typer.Option(help="Finite-difference stencil points (3..13).")] = 13,
    states: Annotated[int, typer.Option(help="Number of lowest states (exact method).")] = 1,
    method: Annotated[
        str, typer.Option(help="exact | hartree-fock | lda | hartree | non-interacting.")
    ] = "exact",
    restricted: Restricted = None,
    output: Annotated[Path | None, typer.Option(help="Folder for the result (an artefact).")] = None,
    plot: Plot = None,
    as_json: Json = False,
) -> None:
    """Solve a 1D model system exactly or with a mean-field method."""
    from densitylab.model1d.workflow import Exact1DConfig, run

    config = config_from(Exact1DConfig, locals())
    with err.status(f"solving {electrons} on {points} points ({method})"):
        report = run(config)
    summary = report.summary()
    if output is not None:
        summary["output"] = str(report.save(output))
    if plot_folder(plot) is not None:
        summary["plot"] = str(report.plot(plot / "state.png"))
    if not as_json:
        summary = {key: summary[key] for key in (*TABLE, "seconds", "output", "plot") if key in summary}
    print_summary(summary, as_json, f"{method}: {electrons} on {points} points")
