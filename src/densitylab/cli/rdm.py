"""``densitylab rdm``: datasets of exact 1-RDMs, PCA, functionals γ[n] and autoencoders. Each
command builds the library's config from its options (same names), calls
:mod:`densitylab.rdm` and prints."""

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
    option,
    plot_folder,
    print_rows,
    print_summary,
    rich_progress,
    systems_progress,
    typer_app,
)

app = typer_app("1-RDM learning: datasets of exact one-body density matrices.")


Dataset = option(Path, "An rdm dataset (densitylab rdm generate).")
TestFraction = option(float, "Held-out fraction (the last systems; never trained on).")
CURVES = {
    "quantity": "name",
    "features": "features",
    "k (machine precision)": "components_machine_precision",
    "k (max error 1e-6)": "components_error_1e-6",
    "k (mean error 1e-6)": "components_mean_error_1e-6",
}


@command(app, "generate", outputs={"output": "file"})
def rdm_generate(
    output: option(Path, "The dataset file to create or resume (.h5)."),
    systems: option(int, "Number of systems.") = 50_000,
    seed: option(int, "Base seed; system i uses default_rng([seed, i]).") = 0,
    points: option(int, "Grid points.") = 62,
    x_min: option(float, "Left box edge (bohr).") = -7.5,
    x_max: option(float, "Right box edge (bohr).") = 7.5,
    stencil: option(int, "Finite-difference stencil points.") = 13,
    length: option(float, "L in cos(kπx/L) (bohr).") = 15.0,
    confinement: option(float, "D in D·x^10 (Ha bohr^-10).") = 1e-11,
    amplitude: option(float, "F, the Fourier amplitude (Ha).") = 0.1,
    harmonics: option(int, "Number of Fourier harmonics.") = 3,
    interaction: option(str, "Interaction spec, e.g. softened.") = "softened",
    chunk_size: option(int, "Systems per chunk (unit of work and of resumption).") = 1000,
    tolerance: option(float, "Residual tolerance of the exact solves.") = 1e-12,
    workers: Workers = 1,
    scheduler: Scheduler = None,
    as_json: Json = False,
) -> None:
    """Generate (or resume) a dataset of exact, non-interacting and UHF 1-RDMs of the
    random-potential family of Wetherell et al. (2020)."""
    from densitylab.rdm.dataset import DatasetSpec, generate_dataset

    spec = config_from(DatasetSpec, locals())
    bar, update = systems_progress("generating")
    with bar:
        summary = generate_dataset(spec, output, workers=workers, scheduler=scheduler, progress=update)
    summary["systems_per_second"] = summary["systems"] / summary["seconds"] if summary["seconds"] else None
    print_summary(summary, as_json, "rdm dataset")


@command(app, "compression", outputs={"output": "folder"})
def rdm_compression(
    output: option(Path, "Folder for the datasets, compression.json and the figure."),
    grids: option(str, "Comma-separated grid sizes.") = "2,3,4,6,62",
    systems: option(int, "Systems per grid.") = 50_000,
    seed: Seed = 0,
    workers: Workers = 1,
    scheduler: Scheduler = None,
    test_fraction: TestFraction = 0.04,
    as_json: Json = False,
) -> None:
    """The paper's compression study: generate (or resume) the random family on several grids
    and report how many principal components the densities and 1-RDMs need. Grids with fewer
    than 13 points use the 3-point stencil."""
    from densitylab.rdm.studies import compression_study

    def progress(points: int):
        bar, update = systems_progress(f"{points} points")
        bar.start()
        return update

    summary = compression_study(output, grids, systems, seed, test_fraction, workers, progress, scheduler)
    if as_json:
        return print_summary(summary, True)
    rows = [{"points": p, **row} for p, curves in summary["grids"].items() for row in curves]
    print_rows(rows, {"points": "points", **CURVES}, f"PCA compression ({systems} systems per grid)")


@command(app, "train", outputs={"output": "artefact"})
def rdm_train(
    dataset: Dataset,
    output: option(Path, "Folder for the model (an artefact, with its learning curve)."),
    model: option(str, "neural (γ[n]), pca-linear, conv-autoencoder (γ→γ) or denoiser.") = "neural",
    components: option(int, "pca-linear: density principal components used.") = 40,
    source: option(str, "denoiser: approximate γ it corrects: uhf, noninteracting or pca.") = "uhf",
    input_components: option(int, "denoiser: principal components of the input γ.") = 32,
    bottleneck: option(int, "conv-autoencoder / denoiser: code size.") = 62,
    epochs: option(int, "Network models: training epochs.") = 40,
    rank: option(int, "neural / denoiser: rank r of the correlation matrix.") = 12,
    width: option(int, "neural / denoiser: hidden width.") = 512,
    depth: option(int, "neural / denoiser: hidden layers.") = 3,
    learning_rate: option(float, "Initial Adam learning rate.") = 1e-3,
    loss: option(str, "conv-autoencoder / denoiser: loss, mse or mae.") = "mse",
    seed: Seed = 0,
    test_fraction: TestFraction = 0.04,
    plot: Plot = None,
    as_json: Json = False,
) -> None:
    """Fit an rdm model on the training split of DATASET and report held-out metrics.

    neural and pca-linear are functionals γ[n] of the density; conv-autoencoder reconstructs
    exact 1-RDMs through a bottleneck; denoiser maps the --source 1-RDM to the exact one.
    Resumable: the fit is checkpointed to OUTPUT.checkpoint.npz and the same command continues."""
    from densitylab.rdm.workflow import TrainConfig, train

    config = config_from(TrainConfig, locals())
    bar, report = rich_progress("training", epochs, {"loss": ".2e", "mae": ".2e"})
    with bar:
        result = train(config, report, checkpoint=checkpoint_beside(output))
    result.save(output)
    if plot_folder(plot) is not None:
        result.plot(plot)
    print_summary({**result.summary(), "output": str(output)}, as_json, f"{model}: held-out metrics")


@command(app, "evaluate")
def rdm_evaluate(
    dataset: Dataset,
    model: option(str, "'sqrt' (√(n n') baseline), 'pretrained[:NAME]' or a trained model.") = "sqrt",
    test_fraction: option(float, "Held-out fraction; must match training.") = 0.04,
    plot: Plot = None,
    as_json: Json = False,
) -> None:
    """Held-out accuracy of an rdm model: mae, kinetic_rel_error, exchange error,
    occupation error and the fraction of kinetic correlation recovered; the √(n n') baseline
    is reported beside it (and, for a denoiser, its raw input)."""
    from densitylab.rdm.workflow import evaluate

    with err.status("evaluating"):
        evaluation = evaluate(dataset, model, test_fraction)
    if plot_folder(plot) is not None:
        evaluation.plot(plot, evaluation.inputs)
    if as_json:
        return print_summary({**evaluation.summary(), "dataset": str(dataset)}, True)
    rows = [{"metric": key, **values} for key, values in evaluation.table().items()]
    names = [model, *evaluation.references]
    print_rows(rows, {"metric": "metric", **{name: name for name in names}}, f"{model} on held-out systems")


@command(app, "predict", outputs={"output": "file"})
def rdm_predict(
    density: option(Path, "Densities, shape (S, 62) (or (62,)), as .npy."),
    output: option(Path, "1-RDMs, shape (S, 62, 62), as .npy (written as named)."),
    model: option(str, "'pretrained' (or 'pretrained:NAME'), 'sqrt', or a trained model.") = "pretrained",
    as_json: Json = False,
) -> None:
    """Apply a γ[n] functional to densities on its grid (default: the shipped model)."""
    from densitylab.rdm.models import predict_file

    print_summary(predict_file(model, density, output), as_json, "γ[n] predictions")


@command(app, "dimer", outputs={"output": "folder"})
def rdm_dimer(
    output: option(Path, "Folder for the dataset, dimer.json and dimer.png.") = Path("rdm-dimer"),
    systems: option(int, "Two-site systems of the random family.") = 5000,
    seed: Seed = 0,
    steps: option(int, "c-model training steps.") = 6000,
    as_json: Json = False,
) -> None:
    """The Hubbard-dimer study: log-perceptron exponents (non-interacting and interacting) and
    the c-model γ₁₂ = c(n)·√(n₁n₂), on the random family on 2 grid points."""
    from densitylab.rdm.studies import dimer

    with err.status("the dimer study: dataset, log perceptron and c-model"):
        summary = dimer(output, systems, seed, steps)
    print_summary(summary, as_json, "Hubbard-dimer study")


@command(app, "pca", outputs={"output": "folder"})
def rdm_pca(
    dataset: Dataset,
    output: option(Path, "Folder for pca.json and pca.png.") = Path("rdm-pca"),
    test_fraction: TestFraction = 0.04,
    as_json: Json = False,
) -> None:
    """PCA of the densities and 1-RDMs: explained variance, and the components needed for
    machine precision (max held-out error ≤ 1e-12) and for an error of 1e-6."""
    from densitylab.rdm.studies import pca_study

    with err.status("PCA"):
        study = pca_study(dataset, test_fraction)
    study.save(output)
    if as_json:
        return print_summary(study.summary(), True)
    print_rows(study.summary()["curves"], CURVES, f"PCA compression, {study.points} points")
