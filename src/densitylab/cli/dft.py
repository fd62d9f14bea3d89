"""``densitylab dft``: direct-minimisation Kohn–Sham DFT for molecules, through
:mod:`densitylab.dft.workflow`."""

from __future__ import annotations

from pathlib import Path

import typer

from densitylab.cli.common import (
    Json,
    Plot,
    checkpoint_beside,
    command,
    config_from,
    err,
    input_argument,
    one_input,
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
ORBITAL_FIELDS = {"energy": ".10f", "gradient": ".2e"}


@command(app, "dft", outputs={"output": "artefact"})
def dft_command(
    molecule_file: input_argument("Molecule as an xyz/extxyz file (ångström); or --molecule.") = None,
    molecule: option(Path | None, "The molecule file, as an option.") = None,
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
    shape_buckets: option(bool, "Pad shapes to buckets: other compositions reuse compiled code.") = False,
    compare: option(bool, "Also run PySCF's SCF with the same settings; saved beside ours.") = False,
    forces: option(bool, "Also compute the forces -dE/dR (Ha/bohr, one row per atom).") = False,
    orbitals: option(str, "fixed, optimised-basis, flow or optimised-basis,flow (LDA/GGA).") = "fixed",
    tie: option(str, "--orbitals optimised-basis: parameters per element or per atom.") = "element",
    extra_shell: option(list[str] | None, "Shell ELEMENT:L:EXPONENT to add and optimise (repeat).") = None,
    output: option(Path | None, "Folder for the result (an artefact: orbitals, cube, figure).") = None,
    plot: Plot = None,
    as_json: Json = False,
) -> None:
    """Kohn-Sham DFT by direct minimisation (D4FT style); with --output resumable from
    OUTPUT.checkpoint.npz (the density, every 30 s). --orbitals goes beyond the fixed basis."""
    arguments = locals() | {"molecule": one_input(molecule_file, molecule, "molecule")}
    return (_fixed if orbitals == "fixed" else _orbitals)(arguments)


def _fixed(arguments: dict) -> None:
    """``dft``: :func:`densitylab.dft.workflow.run`, saved and printed."""
    from densitylab.dft.workflow import DFTConfig, run

    config = config_from(DFTConfig, arguments)
    output, plot = arguments["output"], arguments["plot"]
    bar, report = rich_progress(f"dft {arguments['molecule'].name}", config.max_iterations, FIELDS)
    with bar:
        result = run(config, report, checkpoint_beside(output))
    summary = result.summary()
    if output is not None:
        summary["output"] = str(result.save(output))
    if plot_folder(plot) is not None:
        summary["plot"] = str(result.plot(plot / "convergence.png"))
    shown = summary if arguments["as_json"] else {k: summary[k] for k in SHOWN if k in summary}
    print_summary(shown, arguments["as_json"], "dft")
    if not result.result.converged:
        err.print(_unconverged(summary, config.max_iterations), markup=False)


def _unconverged(summary: dict, max_iterations: int) -> str:
    """The warning for an unconverged run: out of evaluations, or stalled with some left
    (no step lowers the energy or the gradient: the tolerance is below the energy's rounding)."""
    if summary.get("optimiser") == "lbfgs" and summary["iterations"] < max_iterations:
        return (
            f"Warning: not converged: stalled at max|gradient| = {summary['gradient_max']:.2g} Ha, where "
            "no step lowers the energy or the gradient (rounding): --gradient-tolerance is out of reach."
        )
    return "Warning: not converged; raise --max-iterations (with --output it resumes)."


def _orbitals(arguments: dict) -> None:
    """``dft --orbitals``: :func:`densitylab.dft.workflow.run_orbitals`, saved and printed; with
    --output resumable from OUTPUT.checkpoint.npz. Options of the fixed-basis run alone are
    refused rather than ignored."""
    from dataclasses import fields

    from densitylab.dft.workflow import DFTConfig, OrbitalsConfig, run_orbitals
    from densitylab.errors import require

    shared = {f.name for f in fields(OrbitalsConfig)}
    for own in (f for f in fields(DFTConfig) if f.name not in shared):
        require(arguments[own.name] == own.default, own.name,
                f"its default ({own.default}) with --orbitals", arguments[own.name])  # fmt: skip
    config = config_from(OrbitalsConfig, arguments, extra_shell=tuple(arguments["extra_shell"] or ()))
    output, plot = arguments["output"], arguments["plot"]
    bar, report = rich_progress(
        f"dft {arguments['molecule'].name} --orbitals", config.max_iterations, ORBITAL_FIELDS
    )
    with bar:
        result = run_orbitals(config, report, checkpoint_beside(output))
    summary = {k: v for k, v in result.summary().items() if k != "components"} | result.components
    if output is not None:
        summary["output"] = str(result.save(output))
    if plot_folder(plot) is not None:
        summary["plot"] = str(result.plot(plot / "energy.png"))
    print_summary(summary, arguments["as_json"], "dft --orbitals")
