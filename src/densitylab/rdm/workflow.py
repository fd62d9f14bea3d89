"""1-RDM learning as calls: :class:`TrainConfig` and :func:`train` (→ :class:`TrainResult`, which
saves the model as an artefact with its history, held-out metrics and learning curve), and
:func:`evaluate` (→ :class:`Evaluation`, metrics beside the √(n n') baseline, and figures).

``densitylab rdm train`` and ``densitylab rdm evaluate`` are these and nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from densitylab.errors import require, require_finite

MODELS = ("neural", "pca-linear", "conv-autoencoder", "denoiser")
METRICS = (
    "mae",
    "kinetic_rel_error",
    "exchange_rel_error",
    "occupation_mae",
    "kinetic_correlation_recovered",
    "variance_captured",
)


@dataclass(frozen=True)
class TrainConfig:
    """Which rdm model to fit on the training split of ``dataset``, and how.

    Attributes:
        dataset: an rdm dataset file (``densitylab rdm generate``).
        model: "neural" (γ[n]), "pca-linear" (γ[n]), "conv-autoencoder" (γ → γ) or
            "denoiser" (the ``source`` 1-RDM → the exact one).
        components: density principal components of pca-linear (and of a "pca" source).
        source, input_components: denoiser: the approximate γ (uhf, noninteracting or pca) and
            the principal components of it fed to the encoder.
        bottleneck, rank, width, depth: the networks' code size, the rank of the correlation
            matrix, hidden width and layers.
        epochs, learning_rate, loss, seed: training; loss is mse or mae (autoencoders).
        test_fraction: held out, never trained on (the last systems of the dataset).
    """

    dataset: str
    model: str = "neural"
    components: int = 40
    source: str = "uhf"
    input_components: int = 32
    bottleneck: int = 62
    epochs: int = 40
    rank: int = 12
    width: int = 512
    depth: int = 3
    learning_rate: float = 1e-3
    loss: str = "mse"
    seed: int = 0
    test_fraction: float = 0.04

    def __post_init__(self) -> None:
        object.__setattr__(self, "dataset", str(self.dataset))
        require(self.model in MODELS, "model", f"one of {MODELS}", self.model)
        require_finite(learning_rate=self.learning_rate, test_fraction=self.test_fraction)
        require(0 < self.test_fraction < 1, "test_fraction", "a fraction in (0, 1)", self.test_fraction)
        require(self.epochs >= 1, "epochs", "a positive integer", self.epochs)
        require(self.learning_rate > 0, "learning_rate", "a positive step size", self.learning_rate)
        require(self.loss in ("mse", "mae"), "loss", "mse or mae", self.loss)
        for name in ("components", "input_components", "bottleneck", "rank", "width", "depth"):
            value = getattr(self, name)
            require(isinstance(value, int) and value >= 1, name, "a positive integer", value)


@dataclass(eq=False)
class TrainResult:
    """A fitted rdm model with its training history and held-out metrics."""

    config: TrainConfig
    functional: object
    history: dict | None
    held_out: dict
    dataset_parameters: dict

    def summary(self) -> dict:
        return {"model": self.config.model, "held_out": self.held_out}

    def save(self, path: str | Path, plot: bool = True) -> Path:
        """The model as an artefact folder; its manifest also holds the training config, the
        dataset's parameters, the history and the held-out metrics; learning_curve.png beside."""
        manifest = {
            "training": asdict(self.config),
            "dataset_parameters": self.dataset_parameters,
            "held_out": self.held_out,
        }
        if self.history is not None:
            manifest["history"] = self.history
        path = self.functional.save(path, **manifest)
        if plot and self.history is not None:
            self.plot(path)
        return Path(path)

    def plot(self, folder: str | Path) -> list[Path]:
        """learning_curve.png: training loss and held-out error against epoch (networks)."""
        from densitylab.plots import plot_learning_curve

        if self.history is None:
            return []
        return [plot_learning_curve(self.history, Path(folder) / "learning_curve.png")]


def _fit(config: TrainConfig, data, train_index, test_index, progress, checkpoint):
    """The fitted functional and its history (None for the closed-form pca-linear)."""
    from densitylab.rdm.functionals import LinearPCAFunctional

    density, rdm1, points = data.arrays["density"], data.rdm1(), data.parameters["points"]
    if config.model == "pca-linear":
        fitted = LinearPCAFunctional.fit(density[train_index], rdm1[train_index], data.dx, config.components)
        return fitted, None
    common = {
        "epochs": config.epochs, "learning_rate": config.learning_rate, "progress": progress,
        "checkpoint": checkpoint,
    }  # fmt: skip
    shape = {"rank": config.rank, "width": config.width, "depth": config.depth, "seed": config.seed}
    if config.model == "neural":
        from densitylab.rdm.neural import NeuralConfig, train_neural

        network = NeuralConfig(points=points, dx=data.dx, **shape)
        validation = (density[test_index], rdm1[test_index])
        return train_neural(
            density[train_index], rdm1[train_index], data.kinetic(), network, validation=validation, **common
        )
    if config.model == "conv-autoencoder":
        from densitylab.rdm.autoencoders import ConvAutoencoderConfig, train_conv_autoencoder

        network = ConvAutoencoderConfig(
            points=points, dx=data.dx, bottleneck=config.bottleneck, seed=config.seed
        )
        return train_conv_autoencoder(
            rdm1[train_index], network, validation=rdm1[test_index], loss=config.loss, **common
        )
    from densitylab.rdm.autoencoders import DenoiserConfig, denoiser_inputs, train_denoiser

    network = DenoiserConfig(
        points=points, dx=data.dx, source=config.source, components=config.input_components,
        bottleneck=config.bottleneck, **shape,
    )  # fmt: skip
    pca = None
    if config.source == "pca":
        pca = LinearPCAFunctional.fit(density[train_index], rdm1[train_index], data.dx, config.components)
    return train_denoiser(
        denoiser_inputs(data, config.source, train_index, pca), rdm1[train_index], network,
        validation=(denoiser_inputs(data, config.source, test_index, pca), rdm1[test_index]),
        pca=pca, loss=config.loss, **common,
    )  # fmt: skip


def train(
    config: TrainConfig,
    progress: Callable[..., None] | None = None,
    checkpoint: str | Path | None = None,
) -> TrainResult:
    """Fit ``config.model`` on the training split and measure it on the held-out split.

    ``progress`` follows :mod:`densitylab.progress` (epochs, with ``loss`` and ``mae``). With
    ``checkpoint`` (a .npz path) a network's fit is written there after every epoch and the
    same call resumes from it, ending on the uninterrupted result; a checkpoint of another
    job is refused. pca-linear is closed-form and needs none.
    """
    from densitylab.rdm.dataset import load_dataset
    from densitylab.rdm.metrics import evaluate_rdm
    from densitylab.rdm.models import model_inputs
    from densitylab.rdm.pca import split

    data = load_dataset(config.dataset)
    train_index, test_index = split(len(data), config.test_fraction)
    if config.model == "denoiser":  # the input γ has no more principal axes than this
        points = data.parameters["points"]
        axes = min(len(train_index), points * (points + 1) // 2)
        require(
            config.input_components <= axes,
            "input_components",
            f"at most {axes}, the principal axes of the training inputs (min(training systems, N(N+1)/2))",
            config.input_components,
        )
    functional, history = _fit(config, data, train_index, test_index, progress, checkpoint)
    predicted = functional(model_inputs(functional, data, test_index))
    density, rdm1 = data.arrays["density"], data.rdm1()
    metrics = evaluate_rdm(
        predicted, rdm1[test_index], density[test_index], data.kinetic(), data.interaction_matrix(), data.dx
    )
    return TrainResult(config, functional, history, metrics, data.parameters)


@dataclass(eq=False)
class Evaluation:
    """Held-out metrics of a model beside the √(n n') baseline (and a denoiser's raw input)."""

    model: str
    metrics: dict
    references: dict
    x: np.ndarray
    exact: np.ndarray
    predicted: np.ndarray
    inputs: dict

    def summary(self) -> dict:
        return {"model": self.model, **self.metrics, **self.references}

    def table(self) -> dict:
        """metric → {model: value, reference: value, …}, for a side-by-side table."""
        columns = {self.model: self.metrics, **self.references}
        return {key: {name: values[key] for name, values in columns.items()} for key in METRICS}

    def plot(self, folder: str | Path, functionals: dict | None = None) -> list[Path]:
        """rdm_median.png and rdm_worst.png: the held-out system of median and of largest error,
        exact beside this model and every functional in ``functionals`` (name → γ of that
        system), on one colour scale."""
        from densitylab.plots import plot_rdm_comparison

        folder = Path(folder)
        errors = np.mean(np.abs(self.predicted - self.exact), axis=(1, 2))
        written = []
        for label, index in (
            ("median", int(np.argsort(errors)[len(errors) // 2])),
            ("worst", int(np.argmax(errors))),
        ):
            others = {name: gamma[index] for name, gamma in (functionals or {}).items()}
            title = f"{self.model}: {label} held-out system (index {index})"
            written.append(
                plot_rdm_comparison(
                    self.x,
                    self.exact[index],
                    self.predicted[index],
                    title,
                    folder / f"rdm_{label}.png",
                    others,
                )
            )
        return written


def evaluate(dataset: str | Path, model: str = "sqrt", test_fraction: float = 0.04) -> Evaluation:
    """Held-out accuracy of an rdm ``model`` ('sqrt', 'pretrained[:NAME]' or a trained model):
    mae, kinetic_rel_error, exchange error, occupation error, the fraction of kinetic
    correlation recovered; the √(n n') baseline beside it (and, for a denoiser, its raw input)."""
    from densitylab.rdm.dataset import load_dataset
    from densitylab.rdm.functionals import sqrt_functional
    from densitylab.rdm.metrics import evaluate_rdm
    from densitylab.rdm.models import load_model, model_inputs
    from densitylab.rdm.pca import split

    require_finite(test_fraction=test_fraction)
    require(0 < test_fraction < 1, "test_fraction", "a fraction in (0, 1)", test_fraction)
    data = load_dataset(dataset)
    functional = load_model(model, data.parameters["points"], data.dx)
    _, test = split(len(data), test_fraction, least_training=0)  # the held-out part only
    density, exact = data.arrays["density"][test], data.rdm1()[test]
    kinetic, w = data.kinetic(), data.interaction_matrix()
    inputs = model_inputs(functional, data, test)
    predicted = functional(inputs)
    metrics = evaluate_rdm(predicted, exact, density, kinetic, w, data.dx)
    baseline = sqrt_functional(density)
    references = {"baseline_sqrt": evaluate_rdm(baseline, exact, density, kinetic, w, data.dx)}
    shown = {"√(n n′)": baseline}
    source = getattr(functional, "source", None)
    if source not in (None, "exact"):  # a denoiser: its raw input, beside it
        references[f"input_{source}"] = evaluate_rdm(inputs, exact, density, kinetic, w, data.dx)
        shown[source] = inputs
    return Evaluation(model, metrics, references, data.x, exact, predicted, shown)
