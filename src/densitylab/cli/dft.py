"""``densitylab dft``: direct-minimisation Kohn–Sham DFT for molecules, through
:mod:`densitylab.dft.workflow`."""

from __future__ import annotations

from pathlib import Path

import typer

from densitylab.cli.common import (
    Json,
    Plot,
    command,
    config_from,
    err,
    option,
    plot_folder,
    print_summary,
    rich_progress,
)

app = typer.Typer()


SHOWN = ("energy", "converged", "iterations", "seconds", "gradient_max", "homo_lumo_gap", "s_squared", "xc",
         "basis", "nao", "grid_points", "xc_grid", "energy_minus_pyscf", "forces", "forces_minus_pyscf_max",
         "output", "plot")  # fmt: skip


FIELDS = {"energy": ".10f", "gradient": ".2e", "step": ".1e"}


@command(app, "dft", outputs={"output": "artefact"})
def dft_command(
    molecule: option(Path, "Molecule as an xyz/extxyz file (ångström)."),
    basis: option(str, "Any basis set PySCF knows.") = "6-31g",
    xc: option(str, "Functional: lda,vwn, pbe, blyp, b3lyp, pbe0, ...") = "b3lyp",
    charge: option(int, "Net charge (e).") = 0,
    spin: option(int, "2S = N_alpha - N_beta; spin > 0 runs UKS.") = 0,
    unrestricted: option(bool, "UKS even for a closed shell.") = False,
    optimiser: option(str, "lbfgs (preconditioned, production) or adam (D4FT).") = "lbfgs",
    minibatch: option(int | None, "Grid points per step for the XC term (adam only).") = None,
    learning_rate: option(float, "Adam step size.") = 1e-2,
    max_iterations: option(int, "Energy/gradient evaluations allowed.") = 300,
    gradient_tolerance: option(float, "Converged when max|gradient| is below (Ha).") = 1e-5,
    coulomb: option(str, "df (density fitting) or exact (4-index ERIs, small systems).") = "df",
    auxbasis: option(str, "Auxiliary basis for density fitting.") = "def2-universal-jkfit",
    grid_level: option(int, "PySCF grid level 0-9.") = 3,
    xc_grid: option(str, "AO values on the XC grid: stored (fast), streamed (lean) or auto.") = "auto",
    df_storage: option(str, "DF tensor on the device (fast), on disk (least memory) or auto.") = "auto",
    compare: option(bool, "Also run PySCF's SCF with the same settings; saved beside ours.") = False,
    forces: option(bool, "Also compute the forces -dE/dR (Ha/bohr, one row per atom).") = False,
    output: option(Path | None, "Folder for the result (an artefact: orbitals, cube, figure).") = None,
    plot: Plot = None,
    as_json: Json = False,
) -> None:
    """Kohn-Sham DFT by direct minimisation (D4FT style); with --output resumable from
    OUTPUT.checkpoint.npz (the density, every 30 s)."""
    from densitylab.dft.workflow import DFTConfig, run

    config = config_from(DFTConfig, locals())
    bar, report = rich_progress(f"dft {molecule.name}", max_iterations, FIELDS)
    with bar:
        result = run(config, report, None if output is None else Path(str(output) + ".checkpoint.npz"))
    summary = result.summary()
    if output is not None:
        summary["output"] = str(result.save(output))
    if plot_folder(plot) is not None:
        summary["plot"] = str(result.plot(plot / "convergence.png"))
    print_summary(summary if as_json else {k: summary[k] for k in SHOWN if k in summary}, as_json, "dft")
    if not result.result.converged:
        err.print("Warning: not converged; raise --max-iterations (with --output it resumes).", markup=False)
