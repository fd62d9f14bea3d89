"""``densitylab density``: references, training, evaluation and prediction of electron densities."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from densitylab.cli.common import command, err, print_summary, systems_progress, typer_app
from densitylab.errors import require

app = typer_app("Electron-density learning: density-fitting coefficients by symmetry-adapted sparse GPR.")


@command(app, "reference", outputs={"output": "file"})
def density_reference(
    output: Annotated[Path, typer.Option(help="Reference file to write (.h5).")],
    structures: Annotated[Path | None, typer.Option(help="Structures (extxyz, Å).")] = None,
    water: Annotated[
        int | None, typer.Option(help="Instead: N water monomers by normal-mode sampling.")
    ] = None,
    qm9: Annotated[int | None, typer.Option(help="Instead: N QM9 molecules (needs the qm9 extra).")] = None,
    heavy_atoms: Annotated[int, typer.Option(help="Heavy atoms (C, N, O, F) of the QM9 molecules.")] = 4,
    seed: Annotated[int, typer.Option(help="Seed of the water generator.")] = 0,
    temperature: Annotated[float, typer.Option(help="Water sampling temperature (K).")] = 300.0,
    xc: Annotated[str, typer.Option(help="Reference functional.")] = "pbe",
    basis: Annotated[str, typer.Option(help="Reference basis.")] = "def2-svp",
    auxbasis: Annotated[str, typer.Option(help="def2-universal-jkfit, any PySCF auxbasis, or etb.")] = (
        "def2-universal-jkfit"
    ),
    metric: Annotated[str, typer.Option(help="Fitting metric: overlap or coulomb.")] = "overlap",
    chunk_size: Annotated[int, typer.Option(help="Structures per task and resumable part.")] = 10,
    workers: Annotated[int, typer.Option(help="Local Dask worker processes.")] = 1,
    scheduler: Annotated[str | None, typer.Option(help="Address of a running Dask scheduler.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """PySCF DFT and density fitting for every structure; resumable (rerun the same command)."""
    from densitylab.density.reference import (
        ReferenceSettings,
        check_inputs,
        check_output,
        generate_reference,
    )
    from densitylab.density.structures import (
        qm9_structures,
        read_structures,
        water_monomers,
        write_structures,
    )

    sources = [option is not None for option in (structures, water, qm9)]
    require(sum(sources) == 1, "structures", "exactly one of --structures, --water or --qm9")
    settings = ReferenceSettings(xc=xc, basis=basis, auxbasis=auxbasis, metric=metric, chunk_size=chunk_size)
    settings.check()
    check_output(output)
    if water is not None:
        with err.status(f"sampling {water} water monomers"):
            frames = water_monomers(water, seed=seed, temperature=temperature)
    elif qm9 is not None:
        with err.status(f"reading {qm9} QM9 molecules with {heavy_atoms} heavy atoms"):
            frames = qm9_structures(heavy_atoms, qm9, seed=seed)
    else:
        frames = read_structures(structures)
    check_inputs(frames, output, settings)  # nothing is written for a refused command
    if structures is None:
        write_structures(frames, output.with_suffix(".xyz"))
    progress, update = systems_progress("reference DFT")
    with progress:
        summary = generate_reference(
            frames,
            output,
            settings,
            workers=workers,
            scheduler=scheduler,
            progress=update,
            seed=seed if structures is None else None,
        )
    print_summary(summary, as_json)


def _index_range(text: str | None, size: int, parameter: str) -> list[int]:
    """'a:b' (Python slice of structure indices) or None for all."""
    if text is None:
        return list(range(size))
    parts = text.split(":")
    try:
        bounds = [int(p) if p else None for p in parts]
    except ValueError:
        bounds = []
    require(len(bounds) == 2, parameter, "a range START:STOP of structure indices", text)
    return list(range(size))[slice(*bounds)]


@command(app, "train", outputs={"output": "folder"})
def density_train(
    reference: Annotated[Path, typer.Option(help="Reference file (densitylab density reference).")],
    output: Annotated[Path, typer.Option(help="Model folder to write.")],
    train: Annotated[int | None, typer.Option(help="Train on the first N structures (default all).")] = None,
    sparse: Annotated[int, typer.Option(help="Sparse environments per species.")] = 100,
    zeta: Annotated[int, typer.Option(help="Kernel exponent ζ.")] = 2,
    regularisation: Annotated[
        str,
        typer.Option(help="Ridge η in the metric, or auto: chosen on 20% of the training molecules."),
    ] = "auto",
    solver: Annotated[
        str, typer.Option(help="auto (direct up to 20,000 weights), cg (matrix-free) or direct.")
    ] = "auto",
    columns: Annotated[int, typer.Option(help="Feature columns kept per block (FPS).")] = 600,
    cutoff: Annotated[float, typer.Option(help="λ-SOAP cutoff (Å).")] = 4.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Fit the symmetry-adapted sparse GPR on reference structures."""
    from densitylab.density.features import FeatureSettings
    from densitylab.density.pipeline import save_model
    from densitylab.density.pipeline import train as train_model
    from densitylab.density.reference import load_reference
    from densitylab.density.regression import RegressionSettings

    eta: float | str = regularisation
    if regularisation != "auto":
        try:
            eta = float(regularisation)
        except ValueError:
            eta = regularisation  # refused by RegressionSettings.check with its name
    RegressionSettings(regularisation=eta).check()
    data = load_reference(reference)
    count = len(data) if train is None else train
    require(1 <= count <= len(data), "train", f"1 to {len(data)} structures", train)
    with err.status(f"training on {count} structures"):
        trained, info = train_model(
            data,
            list(range(count)),
            FeatureSettings(cutoff=cutoff, columns=columns),
            RegressionSettings(sparse_environments=sparse, zeta=zeta, regularisation=eta, solver=solver),
        )
    save_model(trained, output)
    print_summary({**info, "train": count, "model": str(output)}, as_json)


@command(app, "evaluate")
def density_evaluate(
    model: Annotated[Path, typer.Option(help="Model folder (densitylab density train).")],
    reference: Annotated[Path, typer.Option(help="Reference file with the test structures.")],
    indices: Annotated[str | None, typer.Option(help="Structures START:STOP (default all).")] = None,
    energies: Annotated[bool, typer.Option(help="One-step energies too.")] = True,
    plot: Annotated[
        Path | None, typer.Option(help="Folder for the parity plot and density-difference slices.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics as JSON.")] = False,
) -> None:
    """% RMSE, grid NMAE (and its fitting floor) and one-step energy errors on reference structures."""
    from densitylab.density.pipeline import evaluate, load_model
    from densitylab.density.reference import load_reference

    trained = load_model(model)
    data = load_reference(reference)
    chosen = _index_range(indices, len(data), "indices")
    require(len(chosen) > 0, "indices", "a non-empty range of structures", indices)
    with err.status(f"evaluating {len(chosen)} structures"):
        summary, predicted = evaluate(trained, data, chosen, energies=energies)
    if plot is not None:
        from densitylab.density.energies import density_slices
        from densitylab.density.reference import auxiliary_molecule, build_molecule
        from densitylab.plots import plot_density_slices, plot_parity

        plot.mkdir(parents=True, exist_ok=True)
        summary["plot"] = str(
            plot_parity(
                np.concatenate([data.coefficients[i] for i in chosen]),
                np.concatenate(predicted),
                plot / "parity.png",
            )
        )
        first = chosen[0]
        mol = build_molecule(data.numbers[first], data.positions[first], data.settings.basis)
        extent, slices, atoms = density_slices(
            mol,
            auxiliary_molecule(mol, data.settings),
            predicted[0],
            data.coefficients[first],
            data.density_matrices[first],
        )
        summary["slices"] = str(plot_density_slices(extent, slices, atoms, plot / "density_slices.png"))
    print_summary({"model": str(model), "reference": str(reference), **summary}, as_json)


@command(app, "predict", outputs={"output": "folder"})
def density_predict(
    structures: Annotated[Path, typer.Argument(help="Structures (extxyz, Å).")],
    model: Annotated[Path, typer.Option(help="Model folder (densitylab density train).")],
    output: Annotated[Path, typer.Option(help="Folder for coefficients.h5 and one cube file per structure.")],
    cube_points: Annotated[int, typer.Option(help="Cube points per axis.")] = 60,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Predict coefficients, electron counts and densities (cube files) for new structures."""
    from densitylab.data import write_h5
    from densitylab.density.pipeline import load_model, predict, write_density_cube
    from densitylab.density.structures import read_structures

    trained = load_model(model)
    frames = read_structures(structures)
    with err.status(f"predicting {len(frames)} structures"):
        coefficients, labels = predict(trained, frames)
    output.mkdir(parents=True, exist_ok=True)
    counts = []
    arrays = {}
    for index, (frame, c, label) in enumerate(zip(frames, coefficients, labels, strict=True)):
        count, _ = write_density_cube(trained, frame, c, output / f"density-{index:04d}.cube", cube_points)
        counts.append(count)
        arrays[f"coefficients/{index:06d}"] = c
        arrays[f"labels/{index:06d}"] = label
    arrays["electron_count"] = np.array(counts)
    write_h5(
        output / "coefficients.h5",
        arrays,
        {"model": str(model), "structures": str(structures)},
        kind="density-prediction",
    )
    print_summary({"structures": len(frames), "electron_counts": counts, "output": str(output)}, as_json)
