"""``densitylab rdm``: datasets of exact 1-RDMs, PCA, functionals γ[n] and autoencoders."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.table import Table

from densitylab.cli.common import command, err, out, print_summary, progress_bar, systems_progress, typer_app
from densitylab.errors import InvalidParameterError

app = typer_app("1-RDM learning: datasets of exact one-body density matrices.")


@command(app, "generate", outputs={"output": "file"})
def rdm_generate(
    output: Annotated[Path, typer.Option(help="The dataset file to create or resume (.h5).")],
    systems: Annotated[int, typer.Option(help="Number of systems.")] = 50_000,
    seed: Annotated[int, typer.Option(help="Base seed; system i uses default_rng([seed, i]).")] = 0,
    points: Annotated[int, typer.Option(help="Grid points.")] = 62,
    x_min: Annotated[float, typer.Option(help="Left box edge (bohr).")] = -7.5,
    x_max: Annotated[float, typer.Option(help="Right box edge (bohr).")] = 7.5,
    stencil: Annotated[int, typer.Option(help="Finite-difference stencil points.")] = 13,
    length: Annotated[float, typer.Option(help="L in cos(kπx/L) (bohr).")] = 15.0,
    confinement: Annotated[float, typer.Option(help="D in D·x^10 (Ha bohr^-10).")] = 1e-11,
    amplitude: Annotated[float, typer.Option(help="F, the Fourier amplitude (Ha).")] = 0.1,
    harmonics: Annotated[int, typer.Option(help="Number of Fourier harmonics.")] = 3,
    interaction: Annotated[str, typer.Option(help="Interaction spec, e.g. softened.")] = "softened",
    chunk_size: Annotated[
        int, typer.Option(help="Systems per chunk (unit of work and of resumption).")
    ] = 1000,
    tolerance: Annotated[float, typer.Option(help="Residual tolerance of the exact solves.")] = 1e-12,
    workers: Annotated[int, typer.Option(help="Local Dask worker processes (1: in this process).")] = 2,
    scheduler: Annotated[
        str | None, typer.Option(help="Address of a running dask.distributed scheduler.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
) -> None:
    """Generate (or resume) a dataset of exact, non-interacting and UHF 1-RDMs of the
    random-potential family of Wetherell et al. (2020)."""
    from densitylab.rdm.dataset import DatasetSpec, generate_dataset

    spec = DatasetSpec(
        systems=systems,
        seed=seed,
        points=points,
        x_min=x_min,
        x_max=x_max,
        stencil=stencil,
        length=length,
        confinement=confinement,
        amplitude=amplitude,
        harmonics=harmonics,
        interaction=interaction,
        chunk_size=chunk_size,
        tolerance=tolerance,
    )
    progress, update = systems_progress("generating")
    with progress:
        summary = generate_dataset(spec, output, workers=workers, scheduler=scheduler, progress=update)
    summary["systems_per_second"] = summary["systems"] / summary["seconds"] if summary["seconds"] else None
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        out.print(
            f"{summary['systems']} systems in {output} ({summary['computed_chunks']} chunks computed, "
            f"{summary['resumed_chunks']} resumed) in {summary['seconds']:.1f} s"
        )


def _compression_table(title: str, rows: list[tuple[int, list[dict]]]) -> Table:
    table = Table(title=title)
    for column in (
        "points",
        "quantity",
        "features",
        "k: var ≤ 1e-14",
        "k: var ≤ 1e-6",
        "k: max err ≤ 1e-12",
        "k: max err ≤ 1e-6",
    ):
        table.add_column(column)
    for points, curves in rows:
        for row in curves:
            table.add_row(
                str(points),
                row["name"],
                str(row["features"]),
                str(row["components_variance_machine_precision"]),
                str(row["components_variance_1e-6"]),
                str(row["components_machine_precision"]),
                str(row["components_error_1e-6"]),
            )
    return table


@command(app, "compression", outputs={"output": "folder"})
def rdm_compression(
    output: Annotated[Path, typer.Option(help="Folder for the datasets, compression.json and the figure.")],
    grids: Annotated[str, typer.Option(help="Comma-separated grid sizes.")] = "2,3,4,6,62",
    systems: Annotated[int, typer.Option(help="Systems per grid.")] = 50_000,
    seed: Annotated[int, typer.Option(help="Base seed.")] = 0,
    workers: Annotated[int, typer.Option(help="Local Dask worker processes.")] = 2,
    test_fraction: Annotated[float, typer.Option(help="Held-out fraction.")] = 0.04,
) -> None:
    """The paper's compression study: generate (or resume) the random family on several grids
    and report how many principal components the densities and 1-RDMs need. Grids with fewer
    than 13 points use the 3-point stencil."""
    from densitylab.plots import plot_compression
    from densitylab.rdm.dataset import DatasetSpec, generate_dataset, load_dataset
    from densitylab.rdm.pca import analyse_dataset

    try:
        sizes = [int(item) for item in grids.split(",") if item.strip()]
    except ValueError:
        raise InvalidParameterError("grids", "comma-separated integers, e.g. 2,3,4,6,62", grids) from None
    output.mkdir(parents=True, exist_ok=True)
    rows, all_curves = [], []
    for points in sizes:
        spec = DatasetSpec(systems=systems, seed=seed, points=points, stencil=3 if points < 13 else 13)
        progress, update = systems_progress(f"{points} points")
        with progress:
            generate_dataset(spec, output / f"family-{points}.h5", workers=workers, progress=update)
        data = load_dataset(output / f"family-{points}.h5")
        with err.status(f"PCA, {points} points"):
            curves = analyse_dataset(data.arrays["density"], data.rdm1(), test_fraction)
        for curve in curves:
            all_curves.append(
                curve.__class__(
                    name=f"{curve.name}, {points} points",
                    features=curve.features,
                    explained_variance_ratio=curve.explained_variance_ratio,
                    max_error=curve.max_error,
                    mean_error=curve.mean_error,
                )
            )
        rows.append((points, [curve.summary() for curve in curves]))
    (output / "compression.json").write_text(
        json.dumps({"systems": systems, "seed": seed, "grids": {str(p): c for p, c in rows}}, indent=1)
    )
    plot_compression(all_curves, output / "compression.png", f"PCA compression, {systems} systems per grid")
    out.print(_compression_table(f"PCA compression ({systems} systems per grid)", rows))


def _epoch_progress(epochs: int):
    """A Rich progress bar over training epochs; returns (progress, callback)."""
    progress = progress_bar("loss {task.fields[loss]} held-out MAE {task.fields[mae]}")
    task = progress.add_task("training", total=epochs, loss="—", mae="—")

    def report(epoch, total, loss, mae):
        progress.update(task, completed=epoch, loss=f"{loss:.2e}", mae=f"{mae:.2e}")

    return progress, report


RDM_MODELS = ("neural", "pca-linear", "conv-autoencoder", "denoiser")


@command(app, "train", outputs={"output": "any"})
def rdm_train(
    dataset: Annotated[Path, typer.Option(help="Training dataset (densitylab rdm generate).")],
    output: Annotated[Path, typer.Option(help="Model to write: a .npz (pca-linear) or a folder.")],
    model: Annotated[
        str, typer.Option(help="neural (γ[n]), pca-linear, conv-autoencoder (γ→γ) or denoiser.")
    ] = "neural",
    components: Annotated[int, typer.Option(help="pca-linear: density principal components used.")] = 40,
    source: Annotated[
        str, typer.Option(help="denoiser: approximate γ it corrects: uhf, noninteracting or pca.")
    ] = "uhf",
    input_components: Annotated[
        int, typer.Option(help="denoiser: principal components of the input γ fed to the encoder.")
    ] = 32,
    bottleneck: Annotated[int, typer.Option(help="conv-autoencoder / denoiser: code size.")] = 62,
    epochs: Annotated[int, typer.Option(help="Network models: training epochs.")] = 40,
    rank: Annotated[int, typer.Option(help="neural / denoiser: rank r of the correlation matrix.")] = 12,
    width: Annotated[int, typer.Option(help="neural / denoiser: hidden width.")] = 512,
    depth: Annotated[int, typer.Option(help="neural / denoiser: hidden layers.")] = 3,
    learning_rate: Annotated[float, typer.Option(help="Initial Adam learning rate.")] = 1e-3,
    loss: Annotated[str, typer.Option(help="conv-autoencoder / denoiser: loss, mse or mae.")] = "mse",
    seed: Annotated[int, typer.Option(help="Initialisation and shuffling seed.")] = 0,
    test_fraction: Annotated[float, typer.Option(help="Held-out fraction (never trained on).")] = 0.04,
    as_json: Annotated[bool, typer.Option("--json", help="Print held-out metrics as JSON.")] = False,
) -> None:
    """Fit an rdm model on the training split of DATASET and report held-out metrics.

    neural and pca-linear are functionals γ[n] of the density; conv-autoencoder reconstructs
    exact 1-RDMs through a bottleneck; denoiser maps the --source 1-RDM to the exact one."""
    from densitylab.rdm.dataset import load_dataset
    from densitylab.rdm.functionals import LinearPCAFunctional
    from densitylab.rdm.metrics import evaluate_rdm
    from densitylab.rdm.models import model_inputs
    from densitylab.rdm.pca import split

    if model not in RDM_MODELS:
        raise InvalidParameterError("model", f"one of {RDM_MODELS}", model)
    with err.status("loading"):
        data = load_dataset(dataset)
    train, test = split(len(data), test_fraction)
    density, rdm1 = data.arrays["density"], data.rdm1()
    points = data.parameters["points"]
    extra = {}
    if model == "pca-linear":
        with err.status("fitting"):
            functional = LinearPCAFunctional.fit(density[train], rdm1[train], data.dx, components)
        functional.save(output)
    else:
        from densitylab.plots import plot_learning_curve

        progress, report = _epoch_progress(epochs)
        common = {"epochs": epochs, "learning_rate": learning_rate, "progress": report}
        with progress:
            if model == "neural":
                from densitylab.rdm.neural import NeuralConfig, train_neural

                config = NeuralConfig(
                    points=points, dx=data.dx, rank=rank, width=width, depth=depth, seed=seed
                )
                functional, history = train_neural(
                    density[train], rdm1[train], data.kinetic(), config,
                    validation=(density[test], rdm1[test]), **common,
                )  # fmt: skip
            elif model == "conv-autoencoder":
                from densitylab.rdm.autoencoders import ConvAutoencoderConfig, train_conv_autoencoder

                config = ConvAutoencoderConfig(points=points, dx=data.dx, bottleneck=bottleneck, seed=seed)
                functional, history = train_conv_autoencoder(
                    rdm1[train], config, validation=rdm1[test], loss=loss, **common
                )
            else:
                from densitylab.rdm.autoencoders import DenoiserConfig, denoiser_inputs, train_denoiser

                config = DenoiserConfig(
                    points=points, dx=data.dx, source=source, components=input_components,
                    bottleneck=bottleneck, rank=rank, width=width, depth=depth, seed=seed,
                )  # fmt: skip
                pca = None
                if source == "pca":
                    pca = LinearPCAFunctional.fit(density[train], rdm1[train], data.dx, components)
                functional, history = train_denoiser(
                    denoiser_inputs(data, source, train, pca), rdm1[train], config,
                    validation=(denoiser_inputs(data, source, test, pca), rdm1[test]),
                    pca=pca, loss=loss, **common,
                )  # fmt: skip
        functional.save(output)
        (Path(output) / "history.json").write_text(
            json.dumps(
                {
                    **history,
                    "model": model,
                    "dataset": str(dataset),
                    "dataset_parameters": data.parameters,
                    "epochs": epochs,
                    "learning_rate": learning_rate,
                    "loss": loss if model in ("conv-autoencoder", "denoiser") else "mse",
                    "config": {k: v for k, v in vars(config).items()},
                    "test_fraction": test_fraction,
                }
            )
        )
        plot_learning_curve(history, Path(output) / "learning_curve.png")
        extra = {"history": str(Path(output) / "history.json")}
    metrics = evaluate_rdm(
        functional(model_inputs(functional, data, test)), rdm1[test], density[test], data.kinetic(),
        data.interaction_matrix(), data.dx,
    )  # fmt: skip
    summary = {"model": model, "output": str(output), "held_out": metrics, **extra}
    print_summary(summary, as_json)


@command(app, "evaluate")
def rdm_evaluate(
    dataset: Annotated[Path, typer.Option(help="Dataset to evaluate on (its held-out split).")],
    model: Annotated[str, typer.Option(help="'sqrt' (√(n n') baseline), 'pretrained' or a model.")] = "sqrt",
    test_fraction: Annotated[float, typer.Option(help="Held-out fraction; must match training.")] = 0.04,
    plot: Annotated[Path | None, typer.Option(help="Folder for example γ heat maps.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics as JSON.")] = False,
) -> None:
    """Held-out accuracy of an rdm model: mae, kinetic_rel_error, exchange error,
    occupation error and the fraction of kinetic correlation recovered; the √(n n') baseline
    is reported beside it (and, for a denoiser, its raw input)."""
    from densitylab.plots import plot_rdm_comparison
    from densitylab.rdm.dataset import load_dataset
    from densitylab.rdm.functionals import sqrt_functional
    from densitylab.rdm.metrics import evaluate_rdm
    from densitylab.rdm.models import load_model, model_inputs
    from densitylab.rdm.pca import split

    with err.status("loading"):
        data = load_dataset(dataset)
    functional = load_model(model, data.parameters["points"], data.dx)
    _, test = split(len(data), test_fraction)
    density, exact = data.arrays["density"][test], data.rdm1()[test]
    kinetic, w = data.kinetic(), data.interaction_matrix()
    inputs = model_inputs(functional, data, test)
    predicted = functional(inputs)
    metrics = evaluate_rdm(predicted, exact, density, kinetic, w, data.dx)
    references = {
        "baseline_sqrt": evaluate_rdm(sqrt_functional(density), exact, density, kinetic, w, data.dx)
    }
    source = getattr(functional, "source", None)
    if source not in (None, "exact"):  # a denoiser: its raw input, beside it
        references[f"input_{source}"] = evaluate_rdm(inputs, exact, density, kinetic, w, data.dx)
    summary = {"model": model, "dataset": str(dataset), **metrics, **references}
    if plot is not None:
        plot.mkdir(parents=True, exist_ok=True)
        errors = np.mean(np.abs(predicted - exact), axis=(1, 2))
        for label, index in (
            ("median", int(np.argsort(errors)[len(errors) // 2])),
            ("worst", int(np.argmax(errors))),
        ):
            plot_rdm_comparison(
                data.x,
                exact[index],
                predicted[index],
                f"{model}: {label} held-out system",
                plot / f"rdm_{label}.png",
            )
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        table = Table(title=f"{model} on {len(test)} held-out systems")
        table.add_column("metric")
        table.add_column(model, justify="right")
        for name in references:
            table.add_column(name, justify="right")
        for key in (
            "mae",
            "kinetic_rel_error",
            "exchange_rel_error",
            "occupation_mae",
            "kinetic_correlation_recovered",
            "variance_captured",
        ):
            table.add_row(key, f"{metrics[key]:.4g}", *(f"{r[key]:.4g}" for r in references.values()))
        out.print(table)


@command(app, "predict", outputs={"output": "file"})
def rdm_predict(
    density: Annotated[Path, typer.Option(help="Densities, shape (S, 62) (or (62,)), as .npy.")],
    output: Annotated[Path, typer.Option(help="1-RDMs, shape (S, 62, 62), as .npy (written as named).")],
    model: Annotated[
        str, typer.Option(help="'pretrained' (or 'pretrained:NAME'), 'sqrt', or a trained model.")
    ] = "pretrained",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Apply a γ[n] functional to densities on its grid (default: the shipped model)."""
    from densitylab.data import atomic_output
    from densitylab.rdm.models import load_model

    if not density.is_file():
        raise InvalidParameterError("density", "an existing .npy file of shape (S, 62)", str(density))
    try:
        values = np.load(density, allow_pickle=False)
    except ValueError as exc:
        raise InvalidParameterError("density", f"a plain numeric .npy array ({exc})", str(density)) from None
    # every functional validates its input (shape, sign, electron count) against its own grid;
    # 'sqrt' has none, so it is taken on the default 62-point grid
    functional = load_model(model, 62, 15.0 / 61)
    if getattr(functional, "source", None) is not None:
        raise InvalidParameterError(
            "model", "a functional of the density (pretrained, sqrt, neural or pca-linear)", model
        )
    gamma = functional(values)
    with atomic_output(output) as temporary, open(temporary, "wb") as handle:
        np.save(handle, gamma)
    print_summary({"model": model, "systems": len(np.atleast_2d(values)), "output": str(output)}, as_json)


@command(app, "dimer", outputs={"output": "folder"})
def rdm_dimer(
    output: Annotated[Path, typer.Option(help="Folder for the dataset, dimer.json and dimer.png.")] = Path(
        "rdm-dimer"
    ),
    systems: Annotated[int, typer.Option(help="Two-site systems of the random family.")] = 5000,
    seed: Annotated[int, typer.Option(help="Base seed.")] = 0,
    steps: Annotated[int, typer.Option(help="c-model training steps.")] = 6000,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """The Hubbard-dimer study: log-perceptron exponents (non-interacting and interacting) and
    the c-model γ₁₂ = c(n)·√(n₁n₂), on the random family on 2 grid points."""
    from densitylab.plots import plot_dimer
    from densitylab.rdm.dataset import DatasetSpec, generate_dataset, load_dataset
    from densitylab.rdm.dimer import dimer_study

    output.mkdir(parents=True, exist_ok=True)
    spec = DatasetSpec(systems=systems, seed=seed, points=2, stencil=3, chunk_size=min(systems, 5000))
    generate_dataset(spec, output / "dimer.h5")
    data = load_dataset(output / "dimer.h5")
    with err.status("fitting the log perceptron and the c-model"):
        summary, curves = dimer_study(
            data.arrays["density"],
            data.rdm1(),
            data.arrays["noninteracting/density"],
            data.rdm1("noninteracting"),
            steps=steps,
        )
    (output / "dimer.json").write_text(json.dumps(summary, indent=1))
    plot_dimer(curves, output / "dimer.png")
    print_summary(summary, as_json)


@command(app, "pca", outputs={"output": "folder"})
def rdm_pca(
    dataset: Annotated[Path, typer.Argument(help="A dataset made by 'densitylab rdm generate'.")],
    output: Annotated[Path, typer.Option(help="Folder for pca.json and pca.png.")] = Path("rdm-pca"),
    test_fraction: Annotated[float, typer.Option(help="Held-out fraction for reconstruction errors.")] = 0.04,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """PCA of the densities and 1-RDMs: explained variance, and the components needed for
    machine precision (max held-out error ≤ 1e-12) and for an error of 1e-6."""
    from densitylab.plots import plot_compression
    from densitylab.rdm.dataset import load_dataset
    from densitylab.rdm.pca import analyse_dataset

    with err.status("loading"):
        data = load_dataset(dataset)
    with err.status("fitting PCA"):
        curves = analyse_dataset(data.arrays["density"], data.rdm1("exact"), test_fraction)
    output.mkdir(parents=True, exist_ok=True)
    points = data.parameters["points"]
    plot_compression(curves, output / "pca.png", f"PCA of {len(data)} systems on {points} points")
    summary = {
        "dataset": str(dataset),
        "systems": len(data),
        "points": points,
        "test_fraction": test_fraction,
        "curves": [curve.summary() for curve in curves],
        "max_error": {curve.name: curve.max_error.tolist() for curve in curves},
        "explained_variance_ratio": {curve.name: curve.explained_variance_ratio.tolist() for curve in curves},
    }
    (output / "pca.json").write_text(json.dumps(summary))
    if as_json:
        sys.stdout.write(
            json.dumps({key: summary[key] for key in ("dataset", "systems", "points", "curves")}) + "\n"
        )
    else:
        table = Table(title=f"PCA compression, {points} points")
        for column in (
            "quantity",
            "features",
            "k (machine precision)",
            "k (max error 1e-6)",
            "k (mean error 1e-6)",
        ):
            table.add_column(column)
        for row in summary["curves"]:
            table.add_row(
                row["name"],
                str(row["features"]),
                str(row["components_machine_precision"]),
                str(row["components_error_1e-6"]),
                str(row["components_mean_error_1e-6"]),
            )
        out.print(table)
