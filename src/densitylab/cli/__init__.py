"""The ``densitylab`` command line: one module per workflow, each a thin face over the library
(commands parse options, call the library and print). This package is the only place that
imports every workflow, and it does so inside the commands, so ``densitylab --help`` and a
command that needs neither figures nor JAX load neither."""

from __future__ import annotations

from typing import Annotated

import typer

from densitylab import __version__
from densitylab.cli import demo, density, dft, model1d, rdm, tdks
from densitylab.cli.common import typer_app

app = typer_app("densitylab: machine learning for electronic structure.")


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"densitylab {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """densitylab: machine learning for electronic structure."""


app.add_typer(model1d.app)
app.add_typer(rdm.app, name="rdm")
app.add_typer(tdks.app, name="tdks")
app.add_typer(dft.app)
app.add_typer(density.app, name="density")
app.add_typer(demo.app)

__all__ = ["app"]
