"""The ``densitylab`` command line. Every workflow has a sub-command; this is the only module
that imports all of them."""

from __future__ import annotations

import json
import sys
from functools import wraps
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from densitylab.errors import DensitylabError, InvalidParameterError, require

app = typer.Typer(help="densitylab: machine learning for electronic structure.", no_args_is_help=True)
rdm_app = typer.Typer(
    help="1-RDM learning: datasets of exact one-body density matrices.", no_args_is_help=True
)
app.add_typer(rdm_app, name="rdm")
tdks_app = typer.Typer(
    help="Time-dependent Kohn–Sham: exact two-electron dynamics and learned correlation potentials.",
    no_args_is_help=True,
)
app.add_typer(tdks_app, name="tdks")
density_app = typer.Typer(
    help="Electron-density learning: density-fitting coefficients by symmetry-adapted sparse GPR.",
    no_args_is_help=True,
)
app.add_typer(density_app, name="density")
err = Console(stderr=True)


def _progress(fields: str = ""):
    """A Rich progress bar on stderr: the task's description, a bar, done/total, ``fields``
    (a column template over the task's fields) and the time remaining."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(fields),
        TimeRemainingColumn(),
        console=err,
    )


def _print_summary(summary: dict, as_json: bool) -> None:
    """One JSON object on stdout with --json, else a readable dump."""
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        Console().print(summary)


def _systems_progress(description: str):
    """A Rich progress bar that shows systems per second; returns (progress, callback)."""
    progress = _progress("{task.fields[rate]} systems/s")
    task = progress.add_task(description, total=None, rate="—")
    started: dict[str, float] = {}

    def update(done: int, total: int) -> None:
        import time

        now = time.perf_counter()
        if "time" not in started:
            started.update(time=now, done=done)
        elapsed = now - started["time"]
        rate = f"{(done - started['done']) / elapsed:.0f}" if elapsed > 0 and done > started["done"] else "—"
        progress.update(task, completed=done, total=total, rate=rate)

    return progress, update


def friendly_errors(function):
    """Turn densitylab's own errors into a one-line message and exit code 2."""

    @wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except DensitylabError as exc:
            err.print(f"[bold red]Error:[/] {exc}")
            raise typer.Exit(code=2) from None

    return wrapper


@app.command("exact1d")
@friendly_errors
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
    Console().print(table)


@rdm_app.command("generate")
@friendly_errors
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
    progress, update = _systems_progress("generating")
    with progress:
        summary = generate_dataset(spec, output, workers=workers, scheduler=scheduler, progress=update)
    summary["systems_per_second"] = summary["systems"] / summary["seconds"] if summary["seconds"] else None
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        Console().print(
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


@rdm_app.command("compression")
@friendly_errors
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
        progress, update = _systems_progress(f"{points} points")
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
    Console().print(_compression_table(f"PCA compression ({systems} systems per grid)", rows))


def _load_rdm_model(model: str, dataset_points: int, dx: float):
    """'sqrt', 'pretrained' or a saved model → a callable. Functionals of n take densities;
    autoencoders and denoisers (which have a ``source``) take 1-RDMs."""
    from densitylab.rdm.functionals import LinearPCAFunctional, check_densities, sqrt_functional

    if model == "sqrt":
        return lambda density: sqrt_functional(check_densities(density, dataset_points, dx))
    if model == "pretrained" or model.startswith("pretrained:"):
        from densitylab.rdm.neural import pretrained

        return pretrained(model.partition(":")[2] or "gamma-n")
    path = Path(model)
    if path.is_dir():
        config = path / "config.json"
        if config.is_file() and json.loads(config.read_text()).get("kind", "gamma-n") != "gamma-n":
            from densitylab.rdm.autoencoders import load_autoencoder

            return load_autoencoder(path)
        from densitylab.rdm.neural import NeuralFunctional

        return NeuralFunctional.load(path)
    if not path.is_file():
        raise InvalidParameterError(
            "model", "'sqrt', 'pretrained' or a model made by 'densitylab rdm train'", model
        )
    return LinearPCAFunctional.load(path)


def _model_inputs(functional, data, index: np.ndarray) -> np.ndarray:
    """What an rdm model takes, for systems ``index`` of a dataset: densities for a
    functional of n, exact 1-RDMs for an autoencoder, its approximate 1-RDMs for a denoiser."""
    source = getattr(functional, "source", None)
    if source is None:
        return data.arrays["density"][index]
    if source == "exact":
        return data.rdm1()[index]
    from densitylab.rdm.autoencoders import denoiser_inputs

    return denoiser_inputs(data, source, index, functional.pca)


def _epoch_progress(epochs: int):
    """A Rich progress bar over training epochs; returns (progress, callback)."""
    progress = _progress("loss {task.fields[loss]} held-out MAE {task.fields[mae]}")
    task = progress.add_task("training", total=epochs, loss="—", mae="—")

    def report(epoch, total, loss, mae):
        progress.update(task, completed=epoch, loss=f"{loss:.2e}", mae=f"{mae:.2e}")

    return progress, report


RDM_MODELS = ("neural", "pca-linear", "conv-autoencoder", "denoiser")


@rdm_app.command("train")
@friendly_errors
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
        functional(_model_inputs(functional, data, test)), rdm1[test], density[test], data.kinetic(),
        data.interaction_matrix(), data.dx,
    )  # fmt: skip
    summary = {"model": model, "output": str(output), "held_out": metrics, **extra}
    _print_summary(summary, as_json)


@rdm_app.command("evaluate")
@friendly_errors
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
    from densitylab.rdm.pca import split

    with err.status("loading"):
        data = load_dataset(dataset)
    functional = _load_rdm_model(model, data.parameters["points"], data.dx)
    _, test = split(len(data), test_fraction)
    density, exact = data.arrays["density"][test], data.rdm1()[test]
    kinetic, w = data.kinetic(), data.interaction_matrix()
    inputs = _model_inputs(functional, data, test)
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
        Console().print(table)


@rdm_app.command("predict")
@friendly_errors
def rdm_predict(
    density: Annotated[Path, typer.Option(help="Densities, shape (S, 62) (or (62,)), as .npy.")],
    output: Annotated[Path, typer.Option(help="1-RDMs, shape (S, 62, 62), as .npy.")],
    model: Annotated[
        str, typer.Option(help="'pretrained' (or 'pretrained:NAME'), 'sqrt', or a trained model.")
    ] = "pretrained",
) -> None:
    """Apply a γ[n] functional to densities on its grid (default: the shipped model)."""
    if not density.is_file():
        raise InvalidParameterError("density", "an existing .npy file of shape (S, 62)", str(density))
    try:
        values = np.load(density, allow_pickle=False)
    except ValueError as exc:
        raise InvalidParameterError("density", f"a plain numeric .npy array ({exc})", str(density)) from None
    # every functional validates its input (shape, sign, electron count) against its own grid;
    # 'sqrt' has none, so it is taken on the default 62-point grid
    functional = _load_rdm_model(model, 62, 15.0 / 61)
    if getattr(functional, "source", None) is not None:
        raise InvalidParameterError(
            "model", "a functional of the density (pretrained, sqrt, neural or pca-linear)", model
        )
    gamma = functional(values)
    np.save(output, gamma)
    err.print(f"wrote {gamma.shape} 1-RDMs to {output}")


@rdm_app.command("dimer")
@friendly_errors
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
    _print_summary(summary, as_json)


@rdm_app.command("pca")
@friendly_errors
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
        Console().print(table)


@tdks_app.command("exact")
@friendly_errors
def tdks_exact(
    output: Annotated[Path, typer.Option(help="Trajectory file to write (.h5).")],
    scenario: Annotated[
        str, typer.Option(help="scattering (e + H) or laser (driven 2-electron atom).")
    ] = "scattering",
    momentum: Annotated[float, typer.Option(help="scattering: wavepacket momentum p (a.u.).")] = -1.0,
    spin: Annotated[str, typer.Option(help="scattering: singlet or triplet spatial state.")] = "singlet",
    amplitude: Annotated[float, typer.Option(help="laser: peak field (Ha/bohr).")] = 0.05,
    frequency: Annotated[float, typer.Option(help="laser: carrier frequency (Ha).")] = 0.5,
    interaction_strength: Annotated[float, typer.Option(help="laser: scale of the e–e repulsion.")] = 1.0,
    time: Annotated[float, typer.Option(help="Propagation time (a.u.).")] = 30.0,
    dt: Annotated[float, typer.Option(help="Exact time step (a.u.).")] = 0.01,
    store_every: Annotated[int, typer.Option(help="Store (and KS step) every this many steps.")] = 5,
    dx: Annotated[float, typer.Option(help="Grid spacing (bohr).")] = 0.1,
    stencil: Annotated[int, typer.Option(help="Kinetic stencil points (3 = the KS stencil).")] = 3,
    method: Annotated[
        str, typer.Option(help="split-operator or crank-nicolson (small grids).")
    ] = "split-operator",
    boundary: Annotated[
        str | None,
        typer.Option(
            help="split-operator: hard-wall (3-point stencil; its default, like the KS propagation) "
            "or periodic (the default for wider stencils)."
        ),
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="Draw the x–t density map to FILE.png.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Propagate two electrons exactly and store n(x, t), j(x, t), norm and energy.

    Resumable: progress is checkpointed next to OUTPUT and picked up by the same command.
    The summary's edge_charge is the largest charge found within 5 bohr of either end of the
    box: where it is not small, the box is too small for the run."""
    import time as clock

    from densitylab.model1d.propagation import (
        edge_charge,
        laser_scenario,
        propagate,
        save_trajectory,
        scattering_scenario,
    )
    from densitylab.plots import plot_xt_maps

    steps = round(time / dt)
    if steps < 1 or abs(steps * dt - time) > 1e-9 * max(1.0, time):
        raise InvalidParameterError("time", f"a positive multiple of dt={dt}", time)
    if scenario == "scattering":
        built = scattering_scenario(momentum=momentum, spin=spin, dx=dx, stencil=stencil, boundary=boundary)
    elif scenario == "laser":
        built = laser_scenario(
            amplitude=amplitude, frequency=frequency, duration=time, dx=dx, stencil=stencil,
            interaction=interaction_strength, boundary=boundary,
        )  # fmt: skip
    else:
        raise InvalidParameterError("scenario", "'scattering' or 'laser'", scenario)
    progress = _progress()
    task = progress.add_task(f"{scenario}: {built.grid.points}² grid", total=steps)
    started = clock.perf_counter()
    with progress:
        trajectory = propagate(
            built, dt, steps, store_every, method,
            progress=lambda done, total: progress.update(task, completed=done),
            checkpoint=Path(str(output) + ".partial.npz"),
        )  # fmt: skip
    seconds = clock.perf_counter() - started
    save_trajectory(trajectory, output)
    summary = {
        "output": str(output),
        "scenario": scenario,
        "points": built.grid.points,
        "steps": steps,
        "stored": len(trajectory.times),
        "seconds": seconds,
        "norm_drift": float(np.max(np.abs(trajectory.norm - 1.0))),
        "energy_drift": float(np.max(np.abs(trajectory.energy - trajectory.energy[0]))),
        "electrons": float(np.sum(trajectory.density[-1]) * (trajectory.x[1] - trajectory.x[0])),
        "boundary": trajectory.parameters["boundary"],
        "edge_charge": edge_charge(trajectory),
    }
    if plot is not None:
        plot_xt_maps(trajectory.x, trajectory.times, {"exact n(x, t)": trajectory.density}, plot)
        summary["plot"] = str(plot)
    _print_summary(summary, as_json)


TDKS_MODELS = ("values", "adiabatic", "memory")


@tdks_app.command("learn")
@friendly_errors
def tdks_learn(
    trajectory: Annotated[list[Path], typer.Option(help="Exact trajectory (repeat for several).")],
    output: Annotated[Path, typer.Option(help="Folder for the learned model.")],
    model: Annotated[str, typer.Option(help="values (a), adiabatic (b) or memory (c).")] = "values",
    iterations: Annotated[
        int | None,
        typer.Option(help="Optimiser iterations (default 300; gauss-newton: 8 per window)."),
    ] = None,
    optimiser: Annotated[
        str, typer.Option(help="lbfgs, adam, or gauss-newton (values: windowed Gauss–Newton).")
    ] = "lbfgs",
    gn_window: Annotated[int, typer.Option(help="gauss-newton: steps per window.")] = 20,
    gn_lookahead: Annotated[
        int, typer.Option(help="gauss-newton: extra steps fitted past each window, then dropped.")
    ] = 10,
    gn_cg_iterations: Annotated[
        int, typer.Option(help="gauss-newton: preconditioned CG iterations per Gauss–Newton step.")
    ] = 100,
    gn_floor: Annotated[
        list[float] | None,
        typer.Option(
            help="gauss-newton: relative floor of the CG preconditioner (regularises); repeat it for a "
            "continuation that splits each window's iterations among the floors in order "
            "(default: 1e-6, then 1e-8)."
        ),
    ] = None,
    learning_rate: Annotated[float, typer.Option(help="adam: learning rate.")] = 1e-3,
    smoothness: Annotated[float, typer.Option(help="values: weight of the smoothness penalty.")] = 0.0,
    memory: Annotated[int, typer.Option(help="memory: densities seen (present + past).")] = 4,
    channels: Annotated[int, typer.Option(help="adiabatic/memory: hidden channels.")] = 16,
    depth: Annotated[int, typer.Option(help="adiabatic/memory: convolution layers.")] = 3,
    kernel: Annotated[int, typer.Option(help="adiabatic/memory: kernel width (odd).")] = 9,
    coarsen: Annotated[int, typer.Option(help="KS grid takes every COARSEN-th exact point.")] = 1,
    seed: Annotated[int, typer.Option(help="Network initialisation seed.")] = 0,
    segment: Annotated[
        int,
        typer.Option(help="adiabatic/memory: train on segments of SEGMENT steps, each from the exact state."),
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Learn v_c so that TDKS reproduces the exact densities (checkpointed adjoint gradients).

    Resumable: parameters are checkpointed in OUTPUT every 10 iterations and the same command
    continues from them."""
    import time as clock

    from densitylab.model1d.propagation import load_trajectory
    from densitylab.plots import plot_density_errors, plot_optimisation, plot_xt_maps
    from densitylab.tdks.evaluate import ANCHORS, VcModel, evaluate, save_net, save_values
    from densitylab.tdks.learn import (
        GN_FLOORS,
        fit_values_gauss_newton,
        gauss_newton_floors,
        shooting_segments,
        train,
    )
    from densitylab.tdks.models import (
        DensityNetConfig,
        build_density_net,
        density_net_model,
        free_values,
        parameter_count,
        smoothness_penalty,
    )
    from densitylab.tdks.propagation import problem_from_trajectory

    if model not in TDKS_MODELS:
        raise InvalidParameterError("model", f"one of {TDKS_MODELS}", model)
    if model == "values" and len(trajectory) != 1:
        raise InvalidParameterError("trajectory", "exactly one trajectory for free values", len(trajectory))
    if segment and model == "values":
        raise InvalidParameterError("segment", "0 with --model values (its step index is global)", segment)
    if iterations is None:
        iterations = 8 if optimiser == "gauss-newton" else 300
    gn_floors = tuple(gn_floor) if gn_floor else GN_FLOORS[:iterations]  # one iteration: the first only
    loaded = [load_trajectory(path) for path in trajectory]
    pairs = [problem_from_trajectory(exact, coarsen) for exact in loaded]
    problems, targets = [p for p, _ in pairs], [t for _, t in pairs]
    first = problems[0]
    if any(abs(p.dx - first.dx) > 1e-12 or abs(p.dt - first.dt) > 1e-12 for p in problems):
        raise InvalidParameterError(
            "trajectory", "trajectories with one grid spacing and KS step", trajectory
        )
    penalty, window = None, 1
    if model == "values":
        params, function = free_values(first.steps, first.points)
        if smoothness > 0:
            penalty = smoothness_penalty(smoothness, first.dx, first.dt)
    else:
        window = 1 if model == "adiabatic" else memory
        config = DensityNetConfig(
            memory=window, channels=channels, depth=depth, kernel=kernel, dx=first.dx, dt=first.dt, seed=seed
        )
        params, function = density_net_model(build_density_net(config))
    if optimiser == "gauss-newton":  # checked before anything is written
        if model != "values" or smoothness > 0:
            raise InvalidParameterError(
                "optimiser", "gauss-newton only for --model values without smoothness", model
            )
        gauss_newton_floors(gn_window, gn_lookahead, iterations, gn_cg_iterations, gn_floors)
    # built (and --segment checked) before anything is written
    segments = (
        [
            shooting_segments(p, t, exact.current[:, ::coarsen], segment, window)
            for p, t, exact in zip(problems, targets, loaded, strict=True)
        ]
        if segment
        else None
    )
    progress = _progress("loss {task.fields[loss]} |g| {task.fields[gradient]}")
    task = progress.add_task(f"learning v_c ({model})", total=iterations, loss="—", gradient="—")

    def report(iteration, total, loss, gradient):
        progress.update(task, completed=iteration, loss=f"{loss:.3e}", gradient=f"{gradient:.2e}")

    started = clock.perf_counter()
    output.mkdir(parents=True, exist_ok=True)
    if optimiser == "gauss-newton":
        from densitylab.jaxsetup import jax_modules

        progress.update(task, total=-(-first.steps // gn_window))  # one unit per window
        with progress:
            values, history = fit_values_gauss_newton(
                first, targets[0], gn_window, iterations, gn_cg_iterations, lookahead=gn_lookahead,
                preconditioner_floor=gn_floors,
                progress=lambda i, n, loss, _: progress.update(task, completed=i, loss=f"{loss:.3e}"),
                checkpoint=output / "checkpoint.npz",
            )  # fmt: skip
        params = jax_modules()[1].asarray(values)
        history["gradient_norm"] = [float("nan")] * len(history["loss"])
    else:
        with progress:
            params, history = train(
                problems, targets, params, function, window, iterations, optimiser, learning_rate,
                penalty, report, checkpoint=output / "checkpoint.eqx", segments=segments,
            )  # fmt: skip
    seconds = clock.perf_counter() - started
    metadata = {
        "model": model,
        "trajectories": [str(path) for path in trajectory],
        "iterations": iterations,
        "optimiser": optimiser,
        **(
            {
                "gn_window": gn_window,
                "gn_lookahead": gn_lookahead,
                "gn_cg_iterations": gn_cg_iterations,
                "gn_floor": list(gn_floors),
            }
            if optimiser == "gauss-newton"
            else {}
        ),
        "smoothness": smoothness,
        "coarsen": coarsen,
        "segment": segment,
        "seconds": seconds,
        "history": history,
    }
    if model == "values":
        save_values(output, params, metadata)
    else:
        save_net(output, params, metadata)
    plot_optimisation(history, output / "optimisation.png", f"learning v_c ({model})")
    learned = VcModel(model, params, function, window)
    summary = {
        "output": str(output),
        "model": model,
        "seconds": seconds,
        "parameters": parameter_count(params),
    }
    for index, (problem, target) in enumerate(zip(problems, targets, strict=True)):
        results = evaluate(problem, target, [learned] + [anchor(problem) for anchor in ANCHORS.values()])
        summary[f"trajectory_{index}"] = {
            "path": str(trajectory[index]),
            "density_error_max": float(results[model]["errors"].max()),
        }
        for name in ANCHORS:
            summary[f"trajectory_{index}"][f"density_error_{name.replace('-', '_')}"] = float(
                results[name]["errors"].max()
            )
        times = np.arange(problem.steps + 1) * problem.dt
        plot_density_errors(
            times, {k: v["errors"] for k, v in results.items()}, output / f"errors_{index}.png"
        )
        plot_xt_maps(
            problem.x, times,
            {"exact n": target, "KS n": results[model]["densities"], "v_c": results[model]["v_c"]},
            output / f"maps_{index}.png",
        )  # fmt: skip
    _print_summary(summary, as_json)


@tdks_app.command("evaluate")
@friendly_errors
def tdks_evaluate(
    trajectory: Annotated[Path, typer.Option(help="Exact trajectory (densitylab tdks exact).")],
    model: Annotated[
        str,
        typer.Option(
            help="A shipped model name, a 'tdks learn' folder, or an anchor (exchange-only, alda, sce)."
        ),
    ],
    coarsen: Annotated[int, typer.Option(help="KS grid takes every COARSEN-th exact point.")] = 1,
    plot: Annotated[Path | None, typer.Option(help="Folder for the error and x–t figures.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics as JSON.")] = False,
) -> None:
    """Density error of a v_c model on an exact trajectory, beside the anchors v_c = 0
    (exact exchange only), adiabatic LDA correlation and adiabatic strictly correlated
    electrons (SCE)."""
    from densitylab.model1d.propagation import load_trajectory
    from densitylab.plots import plot_density_errors, plot_xt_maps
    from densitylab.tdks.evaluate import ANCHORS, evaluate, load_model
    from densitylab.tdks.propagation import problem_from_trajectory

    problem, target = problem_from_trajectory(load_trajectory(trajectory), coarsen)
    candidate = load_model(model, problem)
    models = [candidate] + [anchor(problem) for name, anchor in ANCHORS.items() if name != model]
    results = evaluate(problem, target, models)
    errors = results[candidate.label]["errors"]
    summary = {
        "model": model,
        "trajectory": str(trajectory),
        "density_error_max": float(errors.max()),
        "density_error_mean": float(errors.mean()),
        **{
            f"density_error_{name.replace('-', '_')}": float(results[name]["errors"].max())
            for name in ANCHORS
        },
    }
    if plot is not None:
        plot.mkdir(parents=True, exist_ok=True)
        times = np.arange(problem.steps + 1) * problem.dt
        plot_density_errors(times, {k: v["errors"] for k, v in results.items()}, plot / "errors.png")
        result = results[candidate.label]
        maps = {"exact n": target, "KS n": result["densities"], "v_c": result["v_c"]}
        plot_xt_maps(problem.x, times, maps, plot / "maps.png")
    _print_summary(summary, as_json)


@app.command("dft")
@friendly_errors
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
    progress = _progress(
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
    _print_summary(summary, as_json)
    if not report.result.converged:
        err.print(
            "[bold yellow]Warning:[/] not converged; raise --max-iterations or loosen --gradient-tolerance."
        )


@density_app.command("reference")
@friendly_errors
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
    from densitylab.density.reference import ReferenceSettings, check_output, generate_reference
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
        write_structures(frames, output.with_suffix(".xyz"))
    elif qm9 is not None:
        with err.status(f"reading {qm9} QM9 molecules with {heavy_atoms} heavy atoms"):
            frames = qm9_structures(heavy_atoms, qm9, seed=seed)
        write_structures(frames, output.with_suffix(".xyz"))
    else:
        frames = read_structures(structures)
    progress, update = _systems_progress("reference DFT")
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
    _print_summary(summary, as_json)


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


@density_app.command("train")
@friendly_errors
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
    _print_summary({**info, "train": count, "model": str(output)}, as_json)


@density_app.command("evaluate")
@friendly_errors
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
    _print_summary({"model": str(model), "reference": str(reference), **summary}, as_json)


@density_app.command("predict")
@friendly_errors
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
    write_h5(output / "coefficients.h5", arrays, {"model": str(model), "structures": str(structures)})
    _print_summary({"structures": len(frames), "electron_counts": counts, "output": str(output)}, as_json)


@app.command("demo")
@friendly_errors
def demo(
    output: Annotated[Path, typer.Option(help="Folder for figures and the summary table.")] = Path(
        "demo-output"
    ),
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
    lines = ["# densitylab demo", ""]
    with Progress(console=err) as progress:
        task = progress.add_task("demo", total=len(sections))
        for title, run in sections:
            progress.update(task, description=title[:40])
            columns, rows = run(output)
            lines += [f"## {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            lines += ["| " + " | ".join(row) + " |" for row in rows]
            lines.append("")
            progress.advance(task)
    (output / "summary.md").write_text("\n".join(lines))
    Console().print("\n".join(lines), markup=False, highlight=False)
    Console().print(f"Figures and summary written to {output}/")


if __name__ == "__main__":
    app()
