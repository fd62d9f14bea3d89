"""Autoencoders for 1-RDMs: a convolutional autoencoder and denoising autoencoders.

Both map a 1-RDM γ (N, N) in bohr⁻¹ on the dataset's grid to a 1-RDM, and are trained by
the shared :func:`densitylab.rdm.neural.fit` loop (JAX, 64-bit).

**Convolutional autoencoder** (``ConvAutoencoder``): γ → z (``bottleneck`` numbers) → γ.
The image is zero-padded to 2^L·4 pixels and passed through L convolutions with 2×2 kernels
and stride 2 (channels ``channels``), a dense layer to the bottleneck, and the mirror image
with transposed convolutions. Kernel = stride makes each convolution a reshape and one matrix
product; a measured reason: XLA's CPU convolution kernels ran at ~2.4 GFLOP/s on this
machine, about 20× below its matrix products, which made 3×3 convolutions too slow to train
(docs/rdm.md). The output is symmetrised, (G + Gᵀ)/2.

**Denoising autoencoder** (``Denoiser``): approximate γ_in (from UHF, the non-interacting
solution or the linear PCA functional) → exact γ. The encoder sees √n_in (n_in = diag γ_in)
and the leading principal components of γ_in (axes fitted on the training inputs); through
a ``bottleneck`` code the decoder returns a density correction δ(x) and vectors u(x) ∈ R^r:

    n = N_e · n_in e^δ / ∫ n_in e^δ,      γ(x, x') = √n(x) · û(x)·û(x') · √n(x'),

with û = u/|u|: the correlation-matrix head of the γ[n] functional (rdm/neural.py). So γ is
symmetric and PSD with occupations in [0, 2], diag γ = n, and the input's electron number
N_e is kept. A first attempt that added a free symmetric correction to γ_in^½ went from UHF's
MAE 1.68e-3 only to 1.63e-3, with a 96% kinetic-energy error: unconstrained corrections are
rough, and T weighs roughness by 1/dx². The correlation head is as smooth as u is.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from densitylab.artefacts import read_manifest
from densitylab.errors import require
from densitylab.jaxsetup import jax_modules, load_weights, read_module_config, save_module
from densitylab.rdm.neural import correlation_rdm1, fit, shrink_last_layer

DENOISER_INPUTS = ("uhf", "noninteracting", "pca")


@dataclass(frozen=True)
class ConvAutoencoderConfig:
    """Hyperparameters of the convolutional autoencoder (stored with the weights)."""

    points: int = 62
    dx: float = 15.0 / 61
    bottleneck: int = 62
    channels: tuple[int, ...] = (8, 16, 32, 64)
    seed: int = 0

    def __post_init__(self):
        require(self.bottleneck >= 1, "bottleneck", "a positive integer", self.bottleneck)
        require(
            len(self.channels) >= 1 and all(c >= 1 for c in self.channels),
            "channels",
            "one or more positive channel counts",
            self.channels,
        )

    @property
    def padded(self) -> int:
        """Image side after zero padding: a multiple of 2^levels with ≥ 2 pixels at the bottom."""
        unit = 2 ** len(self.channels)
        return max(2 * unit, -(-self.points // unit) * unit)


@dataclass(frozen=True)
class DenoiserConfig:
    """Hyperparameters of a denoising autoencoder (stored with the weights).

    Attributes:
        source: the approximate 1-RDM it corrects: uhf, noninteracting or pca.
        components: principal components of the input 1-RDM fed to the encoder beside √n_in.
        bottleneck: code size between encoder and decoder.
        rank: rank r of the output correlation matrix (as in the γ[n] functional).
    """

    points: int = 62
    dx: float = 15.0 / 61
    source: str = "uhf"
    components: int = 32
    bottleneck: int = 62
    rank: int = 12
    width: int = 512
    depth: int = 2
    seed: int = 0

    def __post_init__(self):
        require(self.source in DENOISER_INPUTS, "source", f"one of {DENOISER_INPUTS}", self.source)
        require(self.bottleneck >= 1, "bottleneck", "a positive integer", self.bottleneck)
        require(self.rank >= 1, "rank", "a positive integer", self.rank)
        require(self.components >= 0, "components", "a non-negative integer", self.components)


def _patch_layers(channels_in: int, channels: tuple[int, ...], key, transpose: bool):
    """Weights of 2×2/stride-2 (transposed) convolutions, Glorot-scaled."""
    jax, jnp, _ = jax_modules()
    weights = []
    sizes = (channels_in, *channels)
    for c_in, c_out in itertools.pairwise(sizes):
        key, sub = jax.random.split(key)
        shape = (c_in, 4 * c_out) if transpose else (4 * c_in, c_out)
        scale = np.sqrt(2.0 / (shape[0] + shape[1]))
        weights.append((scale * jax.random.normal(sub, shape), jnp.zeros(shape[1])))
    return weights


def build_conv_autoencoder(config: ConvAutoencoderConfig):
    """An Equinox module γ (N, N) → γ (N, N) with a ``config.bottleneck`` code."""
    jax, jnp, eqx = jax_modules()
    levels, side = len(config.channels), config.padded
    bottom = side // 2**levels
    flat = bottom * bottom * config.channels[-1]

    class ConvAutoencoder(eqx.Module):
        down: list
        up: list
        to_code: eqx.nn.Linear
        from_code: eqx.nn.Linear
        config: ConvAutoencoderConfig = eqx.field(static=True)

        def __init__(self, key):
            keys = jax.random.split(key, 4)
            self.config = config
            self.down = _patch_layers(1, config.channels, keys[0], transpose=False)
            reversed_channels = (*config.channels[::-1][1:], 1)
            self.up = _patch_layers(config.channels[-1], reversed_channels, keys[1], transpose=True)
            self.to_code = eqx.nn.Linear(flat, config.bottleneck, key=keys[2])
            self.from_code = eqx.nn.Linear(config.bottleneck, flat, key=keys[3])

        def encode(self, rdm1):
            pad = side - config.points
            image = jnp.pad(rdm1, ((0, pad), (0, pad)))[:, :, None]
            for weight, bias in self.down:
                h, w, c = image.shape
                patches = image.reshape(h // 2, 2, w // 2, 2, c).transpose(0, 2, 1, 3, 4)
                image = jax.nn.gelu(patches.reshape(h // 2, w // 2, 4 * c) @ weight + bias)
            return self.to_code(image.reshape(-1))

        def decode(self, code):
            image = jax.nn.gelu(self.from_code(code)).reshape(bottom, bottom, config.channels[-1])
            for level, (weight, bias) in enumerate(self.up):
                h, w, _ = image.shape
                image = (image @ weight + bias).reshape(h, w, 2, 2, -1).transpose(0, 2, 1, 3, 4)
                image = image.reshape(2 * h, 2 * w, -1)
                if level < len(self.up) - 1:
                    image = jax.nn.gelu(image)
            gamma = image[: config.points, : config.points, 0]
            return 0.5 * (gamma + gamma.T)

        def __call__(self, rdm1):
            return self.decode(self.encode(rdm1))

    return ConvAutoencoder(jax.random.PRNGKey(config.seed))


def build_denoiser(config: DenoiserConfig, basis: np.ndarray | None = None, mean: np.ndarray | None = None):
    """An Equinox module γ_in (N, N) → γ (N, N); see the module docstring.

    basis (components, N(N+1)/2) and mean (N(N+1)/2,): the input's principal axes (upper
    triangle), fitted on training inputs; zeros when not given (e.g. before loading weights).
    """
    jax, jnp, eqx = jax_modules()
    points, rank, components = config.points, config.rank, config.components
    upper = np.triu_indices(points)
    basis = np.zeros((components, len(upper[0]))) if basis is None else np.asarray(basis)
    mean = np.zeros(len(upper[0])) if mean is None else np.asarray(mean)

    class Denoiser(eqx.Module):
        encoder: eqx.nn.MLP
        decoder: eqx.nn.MLP
        basis: jax.Array
        mean: jax.Array
        config: DenoiserConfig = eqx.field(static=True)

        def __init__(self, key):
            keys = jax.random.split(key)
            self.config = config
            self.basis, self.mean = jnp.asarray(basis), jnp.asarray(mean)
            self.encoder = eqx.nn.MLP(
                points + components,
                config.bottleneck,
                config.width,
                config.depth,
                activation=jax.nn.softplus,
                key=keys[0],
            )
            self.decoder = eqx.nn.MLP(
                config.bottleneck,
                points * (1 + rank),
                config.width,
                config.depth,
                activation=jax.nn.softplus,
                key=keys[1],
            )

        def __call__(self, rdm1_in):
            density_in = jnp.maximum(jnp.diag(rdm1_in), 0.0)
            basis, mean = jax.lax.stop_gradient(self.basis), jax.lax.stop_gradient(self.mean)
            projection = basis @ (rdm1_in[upper] - mean)
            raw = self.decoder(self.encoder(jnp.concatenate([jnp.sqrt(density_in), projection])))
            density = density_in * jnp.exp(raw[:points])
            density = density * jnp.sum(density_in) / jnp.sum(density)
            return correlation_rdm1(density, raw[points:].reshape(points, rank))

    return shrink_last_layer(Denoiser(jax.random.PRNGKey(config.seed)), lambda m: m.decoder)


def input_basis(rdm1_in: np.ndarray, components: int) -> tuple[np.ndarray, np.ndarray]:
    """Principal axes (components, N(N+1)/2) and mean of the upper triangles of inputs
    (S, N, N), from at most ~20,000 of them."""
    points = rdm1_in.shape[1]
    rows, columns = np.triu_indices(points)
    upper = rdm1_in[:, rows, columns]
    mean = upper.mean(axis=0)
    sample = upper[:: max(1, len(upper) // 20000)] - mean
    _, _, axes = np.linalg.svd(sample, full_matrices=False)
    return axes[:components], mean


def _check_rdm1(rdm1: np.ndarray, points: int) -> np.ndarray:
    rdm1 = np.asarray(rdm1, dtype=float)
    if rdm1.ndim == 2:
        rdm1 = rdm1[None]
    require(
        rdm1.ndim == 3 and rdm1.shape[1:] == (points, points),
        "rdm1",
        f"1-RDMs of shape (S, {points}, {points}) or ({points}, {points})",
        rdm1.shape,
    )
    require(bool(np.all(np.isfinite(rdm1))), "rdm1", "finite values", "non-finite entries")
    return rdm1


def _batched(module, values: np.ndarray, method=None, batch: int = 1024) -> np.ndarray:
    jax, jnp, _ = jax_modules()
    forward = jax.jit(jax.vmap(method or module))
    return np.concatenate(
        [np.asarray(forward(jnp.asarray(values[i : i + batch]))) for i in range(0, len(values), batch)]
    )


def _save(path: str | Path, kind: str, config, model, extra_files=None, **manifest) -> Path:
    return save_module(path, f"rdm-{kind}", asdict(config), model, extra_files, **manifest)


@dataclass(frozen=True, eq=False)
class ConvAutoencoder:
    """A trained convolutional autoencoder; call it on 1-RDMs (S, N, N) to reconstruct them."""

    config: ConvAutoencoderConfig
    model: object
    source = "exact"

    def encode(self, rdm1: np.ndarray) -> np.ndarray:
        """Bottleneck codes (S, bottleneck)."""
        return _batched(self.model, _check_rdm1(rdm1, self.config.points), self.model.encode)

    def decode(self, code: np.ndarray) -> np.ndarray:
        """1-RDMs (S, N, N) from codes (S, bottleneck)."""
        code = np.atleast_2d(np.asarray(code, dtype=float))
        require(code.shape[1] == self.config.bottleneck, "code", f"(S, {self.config.bottleneck})", code.shape)
        return _batched(self.model, code, self.model.decode)

    def __call__(self, rdm1: np.ndarray) -> np.ndarray:
        return _batched(self.model, _check_rdm1(rdm1, self.config.points))

    def save(self, path: str | Path, **manifest: object) -> Path:
        """An artefact folder (kind ``rdm-conv-autoencoder``)."""
        return _save(path, "conv-autoencoder", self.config, self.model, **manifest)


@dataclass(frozen=True, eq=False)
class Denoiser:
    """A trained denoising autoencoder: approximate 1-RDMs (S, N, N) → exact ones.

    ``pca`` holds the linear PCA functional whose output is the input when
    ``config.source == "pca"`` (then :meth:`inputs_from` needs only densities).
    """

    config: DenoiserConfig
    model: object
    pca: object = None

    @property
    def source(self) -> str:
        return self.config.source

    def __call__(self, rdm1_in: np.ndarray) -> np.ndarray:
        return _batched(self.model, _check_rdm1(rdm1_in, self.config.points))

    def save(self, path: str | Path, **manifest: object) -> Path:
        """An artefact folder (kind ``rdm-denoiser``); a ``pca`` source keeps its linear
        functional in the folder as ``pca-linear/``, an artefact of its own."""
        pca = self.pca

        def with_pca(folder: Path) -> None:
            if pca is not None:
                pca.save(folder / "pca-linear")

        return _save(path, "denoiser", self.config, self.model, with_pca, **manifest)


@dataclass(frozen=True, eq=False)
class DenoisedFunctional:
    """A pure functional of the density: the linear PCA functional γ_lin[n] followed by a
    'pca' denoiser, with the diagonal set back to n. Call it on densities (S, N) or (N,);
    returns 1-RDMs (S, N, N)."""

    denoiser: Denoiser

    def __post_init__(self):
        require(
            self.denoiser.source == "pca" and self.denoiser.pca is not None,
            "model",
            "a denoiser trained with --source pca (it carries its linear functional)",
            self.denoiser.source,
        )

    @property
    def points(self) -> int:
        return self.denoiser.config.points

    def __call__(self, density: np.ndarray) -> np.ndarray:
        """γ[n] with γ(x, x) = n(x) exactly: the denoiser's output γ̃ is rescaled as
        D γ̃ D with D = diag(√(n/γ̃(x, x))), which keeps it symmetric and PSD."""
        from densitylab.rdm.functionals import check_densities

        density = check_densities(density, self.points, self.denoiser.config.dx)
        gamma = self.denoiser(self.denoiser.pca(density))
        diagonal = np.einsum("sii->si", gamma)
        scale = np.sqrt(np.where(diagonal > 0, density / np.where(diagonal > 0, diagonal, 1.0), 0.0))
        return scale[:, :, None] * gamma * scale[:, None, :]


def denoiser_inputs(dataset, source: str, index: np.ndarray, pca=None) -> np.ndarray:
    """Approximate 1-RDMs (len(index), N, N) of ``source`` for systems ``index`` of a dataset."""
    require(source in DENOISER_INPUTS, "source", f"one of {DENOISER_INPUTS}", source)
    if source == "pca":
        require(pca is not None, "pca", "a fitted linear PCA functional for source 'pca'", None)
        return pca(dataset.arrays["density"][index])
    return dataset.rdm1(source)[index]


def load_autoencoder(path: str | Path):
    """A saved ConvAutoencoder or Denoiser folder → the trained object."""
    from densitylab.rdm.functionals import LinearPCAFunctional

    path = Path(path)
    kind = read_manifest(path, ("rdm-conv-autoencoder", "rdm-denoiser"))["kind"]
    if kind == "rdm-conv-autoencoder":
        stored = read_module_config(path, (kind,), ConvAutoencoderConfig.__dataclass_fields__)
        config = ConvAutoencoderConfig(**{**stored, "channels": tuple(stored["channels"])})
        model = load_weights(path, build_conv_autoencoder(config))
        return ConvAutoencoder(config, model)
    config = DenoiserConfig(**read_module_config(path, (kind,), DenoiserConfig.__dataclass_fields__))
    model = load_weights(path, build_denoiser(config))
    pca = None
    if config.source == "pca":  # pre-manifest folders hold it as pca-linear.npz
        legacy = path / "pca-linear.npz"
        pca = LinearPCAFunctional.load(legacy if legacy.is_file() else path / "pca-linear")
    return Denoiser(config, model, pca)


LOSSES = ("mse", "mae")


def _loss(name: str):
    """Mean squared or mean absolute error of γ; 'mae' is the reported metric itself, and
    'mse' lets a few badly approximated systems (e.g. double wells the input puts in the
    wrong well) dominate training."""
    _, jnp, _ = jax_modules()
    require(name in LOSSES, "loss", f"one of {LOSSES}", name)
    if name == "mse":
        return lambda predicted, targets: jnp.mean((predicted - targets) ** 2)
    return lambda predicted, targets: jnp.mean(jnp.abs(predicted - targets))


def train_conv_autoencoder(
    rdm1: np.ndarray,
    config: ConvAutoencoderConfig,
    epochs: int = 30,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    validation: np.ndarray | None = None,
    progress=None,
    loss: str = "mse",
    checkpoint: str | Path | None = None,
) -> tuple[ConvAutoencoder, dict]:
    """Train on exact 1-RDMs (S, N, N) by reconstruction error (``loss``: mse or mae).

    validation: optional held-out 1-RDMs for the learning curve (MAE per epoch).
    checkpoint: a .npz path that makes the fit resumable (:func:`densitylab.rdm.neural.fit`).
    """
    rdm1 = _check_rdm1(rdm1, config.points)
    held_out = None if validation is None else (validation, validation)
    model, history = fit(
        build_conv_autoencoder(config),
        rdm1,
        rdm1,
        _loss(loss),
        epochs,
        batch_size,
        learning_rate,
        config.seed,
        held_out,
        progress,
        checkpoint,
        {"loss": loss},
    )
    return ConvAutoencoder(config, model), history


def train_denoiser(
    rdm1_in: np.ndarray,
    rdm1: np.ndarray,
    config: DenoiserConfig,
    epochs: int = 30,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    pca=None,
    progress=None,
    loss: str = "mse",
    checkpoint: str | Path | None = None,
) -> tuple[Denoiser, dict]:
    """Train approximate → exact 1-RDMs (both (S, N, N)) by the error of γ (``loss``: mse or mae).

    validation: optional held-out (approximate, exact) 1-RDMs for the learning curve.
    pca: the linear PCA functional that made the inputs, stored with a 'pca' denoiser.
    checkpoint: a .npz path that makes the fit resumable (:func:`densitylab.rdm.neural.fit`).
    """
    inputs = _check_rdm1(rdm1_in, config.points)
    basis, mean = input_basis(inputs, config.components)
    model, history = fit(
        build_denoiser(config, basis, mean),
        inputs,
        _check_rdm1(rdm1, config.points),
        _loss(loss),
        epochs,
        batch_size,
        learning_rate,
        config.seed,
        validation,
        progress,
        checkpoint,
        {"loss": loss},
    )
    return Denoiser(config, model, pca), history
