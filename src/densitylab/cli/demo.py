"""``densitylab demo``: a short run of every workflow, with figures and a summary table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from densitylab.cli.common import Json, command, err, out
from densitylab.data import atomic_write_bytes

app = typer.Typer()


@command(app, "demo", outputs={"output": "folder"})
def demo(
    output: Annotated[Path, typer.Option(help="Folder for figures and the summary table.")] = Path(
        "demo-output"
    ),
    as_json: Json = False,
) -> None:
    """Run a short demo of every workflow; figures and summary.md go to OUTPUT."""
    from rich.progress import Progress

    from densitylab.density import demo as density_demo
    from densitylab.dft import demo as dft_demo
    from densitylab.model1d import demo as model1d_demo
    from densitylab.rdm import demo as rdm_demo
    from densitylab.tdks import demo as tdks_demo

    sections = [
        ("Exact 1D model systems: two electrons in a double well", model1d_demo.run),
        ("1-RDM learning: 1000 exact 1-RDMs, PCA and density functionals", rdm_demo.run),
        ("TDKS: a laser-driven two-electron atom, exact and Kohn-Sham", tdks_demo.run),
        ("Direct-minimisation DFT: water, B3LYP/6-31G, against PySCF", dft_demo.run),
        ("Density learning: ten water molecules, PBE/def2-SVP densities by sparse GPR", density_demo.run),
    ]
    lines, tables = ["# densitylab demo", ""], {}
    with Progress(console=err) as progress:
        task = progress.add_task("demo", total=len(sections))
        for title, run in sections:
            progress.update(task, description=title[:40])
            columns, rows = run(output)
            tables[title] = [dict(zip(columns, row, strict=True)) for row in rows]
            lines += [f"## {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            lines += ["| " + " | ".join(row) + " |" for row in rows]
            lines.append("")
            progress.advance(task)
    atomic_write_bytes(output / "summary.md", "\n".join(lines).encode())
    if as_json:
        return out.print_json(data={"output": str(output), "sections": tables})
    out.print("\n".join(lines), markup=False, highlight=False)
    out.print(f"Figures and summary written to {output}/")
