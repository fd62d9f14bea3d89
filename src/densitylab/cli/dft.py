"""``densitylab dft``: direct-minimisation Kohn–Sham DFT for molecules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from densitylab.cli.common import command, err, print_summary, progress_bar

app = typer.Typer()


@command(app, "dft", outputs={"output": "folder"})
def dft_command(
    molecule: Annotated[Path, typer.Argument(help="Molecule as an xyz/extxyz file (ångström).")],
    basis: Annotated[str, typer.Option(help="Any basis set PySCF knows.")] = "6-31g",
    xc: Annotated[str, typer.Option(help="Functional: lda,vwn, pbe, blyp, b3lyp, pbe0, ...")] = "b3lyp",
    charge: Annotated[int, typer.Option(help="Net charge (e).")] = 0,
    spin: Annotated[int, typer.Option(help="2S = N_alpha - N_beta; spin > 0 runs UKS.")] = 0,
    unrestricted: Annotated[bool, typer.Option(help="UKS even for a closed shell.")] = False,
    optimizer: Annotated[
        str, typer.Option(help="lbfgs (preconditioned, production) or adam (D4FT).")
    ] = "lbfgs",
    minibatch: Annotated[
        int | None, typer.Option(help="Grid points per step for the XC term (adam only).")
    ] = None,
    learning_rate: Annotated[float, typer.Option(help="Adam step size.")] = 1e-2,
    max_iterations: Annotated[int, typer.Option(help="Energy/gradient evaluations allowed.")] = 300,
    gradient_tolerance: Annotated[
        float, typer.Option(help="Converged when max|gradient| is below (Ha).")
    ] = 1e-5,
    coulomb: Annotated[
        str, typer.Option(help="df (density fitting) or exact (4-index ERIs, small systems).")
    ] = "df",
    auxbasis: Annotated[
        str, typer.Option(help="Auxiliary basis for density fitting.")
    ] = "def2-universal-jkfit",
    grid_level: Annotated[int, typer.Option(help="PySCF grid level 0-9.")] = 3,
    compare: Annotated[bool, typer.Option(help="Also run PySCF's SCF with the same settings.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    output: Annotated[
        Path | None, typer.Option(help="Folder for result.json, orbitals.npz, density.cube, convergence.png.")
    ] = None,
) -> None:
    """Kohn-Sham DFT by direct minimisation over QR-parameterised orbitals (D4FT style)."""
    from densitylab.dft.optimise import OptimiserSettings
    from densitylab.dft.run import pyscf_reference, run_dft
    from densitylab.dft.system import DFTSettings

    settings = DFTSettings(
        xc=xc, grid_level=grid_level, coulomb=coulomb, auxbasis=auxbasis, unrestricted=unrestricted
    )
    optimiser = OptimiserSettings(
        method=optimizer,
        max_iterations=max_iterations,
        gradient_tolerance=gradient_tolerance,
        learning_rate=learning_rate,
        minibatch=minibatch,
    )
    progress = progress_bar(
        "E = {task.fields[energy]}  |g| = {task.fields[gradient]}  step = {task.fields[step]}"
    )
    with progress:
        task = progress.add_task(
            f"dft {molecule.name}", total=max_iterations, energy="—", gradient="—", step="—"
        )

        def update(entry: dict) -> None:
            progress.update(
                task,
                completed=entry["iteration"],
                energy=f"{entry['energy']:.10f}",
                gradient=f"{entry['gradient']:.2e}",
                step=f"{entry['step']:.1e}",
            )

        report = run_dft(
            molecule,
            basis=basis,
            xc=xc,
            charge=charge,
            spin=spin,
            settings=settings,
            optimiser=optimiser,
            progress=update,
        )
    summary = report.summary()
    if compare:
        with err.status("PySCF SCF with the same settings"):
            energy, converged, seconds, cycles = pyscf_reference(report.mol, settings)
        summary["pyscf"] = {"energy": energy, "converged": converged, "seconds": seconds, "cycles": cycles}
        summary["energy_minus_pyscf"] = report.result.energy - energy
    if output is not None:
        summary["files"] = report.save(output)
    print_summary(summary, as_json)
    if not report.result.converged:
        err.print(
            "[bold yellow]Warning:[/] not converged; raise --max-iterations or loosen --gradient-tolerance."
        )
