"""``densitylab density``: references, training, evaluation and prediction of electron
densities, through :mod:`densitylab.density.workflow`."""

from __future__ import annotations

from pathlib import Path

from densitylab.cli.common import (
    Json,
    Plot,
    Scheduler,
    Seed,
    Workers,
    checkpoint_beside,
    command,
    config_from,
    err,
    input_argument,
    one_input,
    option,
    plot_folder,
    print_summary,
    systems_progress,
    typer_app,
)

app = typer_app("Electron-density learning: density-fitting coefficients by symmetry-adapted sparse GPR.")


Model = option(str, "Model folder (densitylab density train) or a shipped model: qm9-pbe, water-pbe.")
Reference = option(Path, "Reference file (densitylab density reference).")
Structures = option(Path, "Structures (extxyz, Å).")


@command(app, "reference", outputs={"output": "file"})
def density_reference(
    output: option(Path, "Reference file to write (.h5)."),
    structures: option(Path | None, "Structures (extxyz, Å).") = None,
    water: option(int | None, "Instead: N water monomers by normal-mode sampling.") = None,
    qm9: option(int | None, "Instead: N QM9 molecules (needs the qm9 extra).") = None,
    heavy_atoms: option(int, "Heavy atoms (C, N, O, F) of the QM9 molecules.") = 4,
    seed: Seed = 0,
    temperature: option(float, "Water sampling temperature (K).") = 300.0,
    xc: option(str, "Reference functional.") = "pbe",
    basis: option(str | None, "Reference basis (default def2-svp; gth-dzvp for cells).") = None,
    auxbasis: option(str, "def2-universal-jkfit, any PySCF auxbasis, or etb.") = "def2-universal-jkfit",
    metric: option(str, "Fitting metric: overlap or coulomb.") = "overlap",
    chunk_size: option(int | None, "Structures per task and resumable part (default 10; 1 cell).") = None,
    pseudo: option(str, "Cells: pseudopotential.") = "gth-pbe",
    ke_cutoff: option(float, "Cells: grid cutoff (Ry).") = 300.0,
    etb_beta: option(float | None, "Even-tempered basis ratio (default 1.6; 1.3 for cells).") = None,
    workers: Workers = 1,
    scheduler: Scheduler = None,
    as_json: Json = False,
) -> None:
    """PySCF DFT and density fitting for every structure (cells, with a lattice, at the Γ point
    with GTH pseudopotentials); resumable (rerun the same command)."""
    from densitylab.density.workflow import ReferenceConfig, reference

    config = config_from(
        ReferenceConfig, locals(), structures=None if structures is None else str(structures)
    )
    bar, update = systems_progress("reference DFT")
    with bar:
        summary = reference(config, output, workers, scheduler, update)
    print_summary(summary, as_json, "density references")


@command(app, "cells", outputs={"output": "file"})
def density_cells(
    output: option(Path, "Cells to write (extxyz with Lattice= and pbc)."),
    count: option(int, "Cells to sample.") = 10,
    molecules: option(int, "Water molecules per cell.") = 8,
    density: option(float, "Mass density (g/cm³).") = 1.0,
    temperature: option(float, "Langevin temperature (K).") = 300.0,
    equilibration: option(float, "Picoseconds of TIP3P dynamics before the first sample.") = 5.0,
    interval: option(float, "Picoseconds between samples.") = 2.0,
    seed: Seed = 0,
    as_json: Json = False,
) -> None:
    """Liquid-water cells: packed, equilibrated with rigid TIP3P (ASE, Langevin), sampled."""
    from densitylab.density.cells import WaterCellSettings, water_cells
    from densitylab.density.structures import write_structures

    settings = WaterCellSettings(molecules, density, temperature, equilibration, interval)
    bar, update = systems_progress("TIP3P samples")
    with bar:
        cells = water_cells(count, settings, seed, update)
    write_structures(cells, output)
    summary = {"cells": len(cells), "molecules": molecules, "length_angstrom": settings.length}
    print_summary({**summary, "output": str(output)}, as_json, "liquid-water cells")


@command(app, "train", outputs={"output": "artefact"})
def density_train(
    reference: Reference,
    output: option(Path, "Model folder to write (an artefact)."),
    train: option(int | None, "Train on the first N structures (default all).") = None,
    sparse: option(int, "Sparse environments per species.") = 100,
    zeta: option(int, "Kernel exponent ζ.") = 2,
    regularisation: option(
        str, "Ridge η in the metric, or auto: chosen on 20% of the training molecules."
    ) = "auto",
    solver: option(str, "auto (direct up to 20,000 weights), cg (matrix-free) or direct.") = "auto",
    columns: option(int, "Feature columns kept per block (FPS).") = 600,
    cutoff: option(float, "λ-SOAP cutoff (Å).") = 4.0,
    single_precision: option(bool, "Save the sparse features as float32 (half the size).") = False,
    metric_precision: option(str, "CG's training metrics: double, or single (half the memory).") = "double",
    as_json: Json = False,
) -> None:
    """Fit the symmetry-adapted sparse GPR on reference structures; a CG fit resumes from
    OUTPUT.checkpoint.npz."""
    from densitylab.density.workflow import TrainConfig
    from densitylab.density.workflow import train as fit

    config = config_from(TrainConfig, locals())
    with err.status("training"):
        result = fit(config, checkpoint_beside(output))
    result.save(output)
    print_summary({**result.summary(), "model": str(output)}, as_json, "density model")


@command(app, "evaluate")
def density_evaluate(
    model: Model,
    reference: option(Path, "Reference file with the test structures."),
    indices: option(str | None, "Structures START:STOP (default all).") = None,
    energies: option(bool, "One-step energies too.") = True,
    plot: Plot = None,
    workers: Workers = 1,
    scheduler: Scheduler = None,
    as_json: Json = False,
) -> None:
    """% RMSE, grid NMAE (and its fitting floor) and one-step energy errors on reference structures."""
    from densitylab.density.workflow import evaluate

    with err.status("evaluating"):
        evaluation = evaluate(model, reference, indices, energies, workers=workers, scheduler=scheduler)
    summary = evaluation.summary
    if plot_folder(plot) is not None:
        summary = {**summary, **evaluation.plot(plot)}
    print_summary(summary, as_json, "density model on reference structures")


@command(app, "predict", outputs={"output": "folder"})
def density_predict(
    structures_file: input_argument("Structures (xyz/extxyz, Å); or --structures.") = None,
    structures: option(Path | None, "The structures file, as an option.") = None,
    model: option(
        str, "Model folder or a shipped model (qm9-pbe: H/C/N/O/F molecules; water-pbe)."
    ) = "qm9-pbe",
    output: option(Path | None, "Folder for coefficients.h5 and one cube file per structure.") = None,
    cube_points: option(int, "Cube points per axis.") = 60,
    as_json: Json = False,
) -> None:
    """Predict coefficients, electron counts and densities (cube files, with --output) for new
    structures."""
    from densitylab.density.workflow import predict
    from densitylab.dft.cube import check_cube_points

    structures = one_input(structures_file, structures, "structures")
    check_cube_points(cube_points)  # before the prediction; the disk once the structures are known
    with err.status("predicting"):
        prediction = predict(model, structures)
    summary = prediction.summary() if output is None else prediction.save(output, cube_points)
    print_summary(summary, as_json, "predicted densities")
