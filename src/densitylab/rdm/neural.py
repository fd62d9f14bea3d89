"""A neural 1-RDM functional of the density, γ[n], with the physics built in.

Architecture ("correlation functional"). The network maps the density to one unit vector
u(x) ∈ R^r per grid point, and

    γ(x, x') = √n(x) · u(x)·u(x') · √n(x').

C(x, x') = u(x)·u(x') is a correlation matrix (symmetric, PSD, unit diagonal), so by
construction, for every input:

* γ is symmetric and γ(x, x) = n(x) exactly;
* γ is positive semi-definite. Its occupations (eigenvalues of γ·dx) are ≥ 0 and sum to
  Σ n dx = 2, so each lies in [0, 2];
* with all u(x) equal, γ = √(n n'), the exact answer for one doubly occupied orbital. The
  network is initialised next to it and learns the correlation correction;
* any exact two-electron γ = Σ_k o_k φ_k φ_kᵀ is representable with r ≥ its rank
  (u_k(x) = √o_k φ_k(x)/√n(x)), so nothing is lost to the constraints.

Inputs are √n (smoother than n in the tails). Training minimises the mean squared error of γ
(optionally plus a weight on the error of T[γ] = Tr(Kγ) dx; off by default, because K's
1/dx² entries make that term's gradients swamp Adam's normalisation and training stalls at
the √(n n') start). JAX runs in 64-bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from densitylab.errors import require
from densitylab.jaxsetup import jax_modules, load_weights, read_module_config, save_module
from densitylab.training import Resumable, optax_loop


@dataclass(frozen=True)
class NeuralConfig:
    """Hyperparameters (stored with the weights)."""

    points: int = 62
    dx: float = 15.0 / 61
    rank: int = 12
    width: int = 512
    depth: int = 3
    seed: int = 0


def build_model(config: NeuralConfig):
    """An Equinox module γ[n] for ``config``."""
    jax, jnp, eqx = jax_modules()

    class CorrelationFunctional(eqx.Module):
        mlp: eqx.nn.MLP
        points: int = eqx.field(static=True)
        rank: int = eqx.field(static=True)

        def __init__(self, key):
            self.points, self.rank = config.points, config.rank
            self.mlp = eqx.nn.MLP(
                config.points,
                config.points * config.rank,
                config.width,
                config.depth,
                activation=jax.nn.softplus,
                key=key,
            )

        def __call__(self, density):
            return correlation_rdm1(
                density, self.mlp(jnp.sqrt(jnp.maximum(density, 0.0))).reshape(self.points, self.rank)
            )

    # start next to √(n n'): a small last layer puts every u(x) near e₁. Not exactly at it:
    # there C = u·uᵀ has zero gradient (perpendicular changes of u enter C at second order),
    # a saddle that training never leaves.
    return shrink_last_layer(CorrelationFunctional(jax.random.PRNGKey(config.seed)), lambda m: m.mlp)


def correlation_rdm1(density, raw):
    """The correlation head: γ(x, x') = √n(x) û(x)·û(x') √n(x'), with û(x) the unit vector
    along e₁ + 0.1·raw(x). density (N,) in bohr⁻¹, raw (N, r) → γ (N, N), symmetric, PSD,
    with diag γ = n. Shared by the γ[n] functional and the denoising autoencoders."""
    _, jnp, _ = jax_modules()
    vectors = jnp.zeros(raw.shape).at[:, 0].set(1.0) + 0.1 * raw
    vectors = vectors / jnp.linalg.norm(vectors, axis=1, keepdims=True)
    root = jnp.sqrt(jnp.maximum(density, 0.0))
    return root[:, None] * (vectors @ vectors.T) * root[None, :]


def shrink_last_layer(model, mlp_of):
    """``model`` with the last layer of the MLP ``mlp_of(model)`` scaled by 0.05 and a zero
    bias, so that its output starts small (next to the head's e₁ start)."""
    _, jnp, eqx = jax_modules()
    last = mlp_of(model).layers[-1]
    return eqx.tree_at(
        lambda m: (mlp_of(m).layers[-1].weight, mlp_of(m).layers[-1].bias),
        model,
        (0.05 * last.weight, jnp.zeros_like(last.bias)),
    )


@dataclass(frozen=True, eq=False)
class NeuralFunctional:
    """A trained γ[n]; call it on densities of shape (S, N) or (N,)."""

    config: NeuralConfig
    model: object

    @property
    def points(self) -> int:
        return self.config.points

    def __call__(self, density: np.ndarray, batch: int = 1024) -> np.ndarray:
        from densitylab.rdm.functionals import check_densities

        jax, jnp, _ = jax_modules()
        density = check_densities(density, self.config.points, self.config.dx)
        forward = jax.jit(jax.vmap(self.model))
        return np.concatenate(
            [np.asarray(forward(jnp.asarray(density[i : i + batch]))) for i in range(0, len(density), batch)]
        )

    def save(self, path: str | Path, **manifest: object) -> Path:
        """An artefact folder (kind ``rdm-gamma-n``); ``manifest`` keys (a training history,
        held-out metrics) are stored beside the config."""
        return save_module(path, "rdm-gamma-n", dict(self.config.__dict__), self.model, **manifest)

    @classmethod
    def load(cls, path: str | Path) -> NeuralFunctional:
        config = NeuralConfig(**read_module_config(path, ("rdm-gamma-n",), NeuralConfig.__dataclass_fields__))
        return cls(config, load_weights(path, build_model(config)))


def fit(
    model,
    inputs: np.ndarray,
    targets: np.ndarray,
    loss_fn,
    epochs: int,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    seed: int = 0,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    progress=None,
    checkpoint: str | Path | None = None,
    settings: dict | None = None,
):
    """Minibatch Adam with cosine decay (:func:`densitylab.training.optax_loop`); shared by every
    rdm model.

    Args:
        model: an Equinox module mapping one input to one 1-RDM.
        inputs, targets: training arrays with the system index first.
        loss_fn: ``loss_fn(predicted_batch, target_batch)`` → scalar.
        validation: optional held-out (inputs, targets); its MAE is recorded per epoch.
        progress: called as ``progress(epoch, epochs, loss=train_loss, mae=validation_mae)``
            (:mod:`densitylab.progress`).
        checkpoint: a .npz path: the model, Adam's state, the history and the shuffling
            generator are written there after every epoch, and the same call resumes from it to
            the uninterrupted result; a checkpoint of another job (other data, epochs, learning
            rate, seed, starting model or ``settings``, e.g. the loss) is refused.

    Returns:
        the trained model and its history (per-epoch training loss and held-out MAE).
    """
    jax, jnp, eqx = jax_modules()
    import optax

    require(epochs >= 1, "epochs", "a positive integer", epochs)
    require(len(inputs) >= 1, "dataset", "at least one training system", len(inputs))
    batch_size = min(batch_size, len(inputs))  # small datasets: one full batch per epoch
    steps = epochs * max(1, len(inputs) // batch_size)
    optimiser = optax.adam(optax.cosine_decay_schedule(learning_rate, steps, alpha=1e-2))

    def loss(model, batch_inputs, batch_targets):
        return loss_fn(jax.vmap(model)(batch_inputs), batch_targets)

    @eqx.filter_jit
    def batch_error(model, batch_inputs, batch_targets):
        return jnp.sum(jnp.abs(jax.vmap(model)(batch_inputs) - batch_targets))

    def validation_mae(model) -> float | None:
        if validation is None:
            return None
        total = sum(
            float(
                batch_error(
                    model, jnp.asarray(validation[0][i : i + 512]), jnp.asarray(validation[1][i : i + 512])
                )
            )
            for i in range(0, len(validation[0]), 512)
        )
        return total / validation[1].size

    rng = np.random.default_rng(seed)
    history = {"epoch": [], "train_loss": [], "validation_mae": []}

    def batches(epoch: int):
        order = rng.permutation(len(inputs))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            index = order[start : start + batch_size]
            yield jnp.asarray(inputs[index]), jnp.asarray(targets[index])

    def record(epoch, model, losses, _) -> None:
        history["epoch"].append(epoch)
        history["train_loss"].append(float(np.mean(losses)))
        history["validation_mae"].append(validation_mae(model))
        if progress:
            progress(epoch, epochs, loss=history["train_loss"][-1], mae=history["validation_mae"][-1])

    resumable = None
    if checkpoint is not None:
        from densitylab.checkpoint import fingerprint

        job = {
            **(settings or {}),
            "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed,
            "data": fingerprint(inputs, targets),
            "validation": None if validation is None else fingerprint(*validation),
        }  # fmt: skip
        resumable = _resumable(checkpoint, job, history, rng)
    model = optax_loop(loss, model, optimiser, epochs, batches, record, resumable=resumable)
    return model, history


def _resumable(checkpoint, job: dict, history: dict, rng) -> Resumable:
    """:func:`fit`'s checkpoint after every epoch, with its history and shuffling generator."""

    def save() -> dict:
        return {"history": history, "generator": rng.bit_generator.state}

    def restore(state: dict) -> None:
        history.update(state["history"])
        rng.bit_generator.state = state["generator"]

    return Resumable(checkpoint, job, 1, save, restore)


def train_neural(
    density: np.ndarray,
    rdm1: np.ndarray,
    kinetic: np.ndarray,
    config: NeuralConfig,
    epochs: int = 60,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    kinetic_weight: float = 0.0,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    progress=None,
    checkpoint: str | Path | None = None,
) -> tuple[NeuralFunctional, dict]:
    """Train the γ[n] functional on mean squared γ error (+ optional kinetic-energy term).

    Args:
        density, rdm1: training data, (S, N) and (S, N, N).
        kinetic: the grid's kinetic matrix (N, N), for T[γ] = Tr(Kγ) dx.
        validation: optional held-out (density, rdm1) for the learning curve.
        progress: called as ``progress(epoch, epochs, loss=train_loss, mae=validation_mae)``
            (:mod:`densitylab.progress`).
        checkpoint: a .npz path that makes the fit resumable (:func:`fit`).
    """
    _, jnp, _ = jax_modules()
    kinetic_matrix = jnp.asarray(kinetic)

    def loss_fn(predicted, targets):
        difference = predicted - targets
        kinetic_error = jnp.einsum("ij,sji->s", kinetic_matrix, difference) * config.dx
        return jnp.mean(difference**2) + kinetic_weight * jnp.mean(kinetic_error**2)

    model, history = fit(
        build_model(config),
        density,
        rdm1,
        loss_fn,
        epochs,
        batch_size,
        learning_rate,
        config.seed,
        validation,
        progress,
        checkpoint,
        {"kinetic_weight": kinetic_weight},
    )
    return NeuralFunctional(config, model), history
