"""Learning v_c by minimising the TDKS density loss over one or more exact trajectories.

The loss is Σ_trajectories Σ_t Σ_x (n_KS − n_exact)² dx (+ an optional penalty); its
gradient comes from checkpointed reverse mode through the propagation
(:func:`densitylab.tdks.propagation.propagate`). The optimiser is L-BFGS with a zoom line
search (optax) by default, or Adam.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from densitylab.errors import require
from densitylab.jaxsetup import jax_modules
from densitylab.tdks.propagation import KSProblem, propagate_loss

OPTIMISERS = ("lbfgs", "adam")


def total_loss(
    problems: Sequence[KSProblem], targets: Sequence[np.ndarray], model, memory: int, penalty=None
):
    """``params -> loss`` summed over trajectories (JAX-traceable)."""
    _, jnp, _ = jax_modules()
    targets = [jnp.asarray(target) for target in targets]

    def loss(params):
        value = 0.0
        for problem, target in zip(problems, targets, strict=True):
            value = value + propagate_loss(problem, model, params, target, memory)
        return value + (penalty(params) if penalty is not None else 0.0)

    return loss


def train(
    problems: Sequence[KSProblem],
    targets: Sequence[np.ndarray],
    params,
    model: Callable,
    memory: int = 1,
    iterations: int = 100,
    optimiser: str = "lbfgs",
    learning_rate: float = 1e-3,
    penalty=None,
    progress: Callable[[int, int, float, float], None] | None = None,
    tolerance: float = 0.0,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 10,
):
    """Minimise the density loss over ``params`` (an array or an Equinox module).

    With ``checkpoint`` (a file path), the parameters and history are written there
    atomically every ``checkpoint_every`` iterations, and a call with the same arguments
    resumes from them (the L-BFGS curvature memory restarts); the file is removed at the end.

    Args:
        problems, targets: KS problems and the exact densities (T + 1, N) on their grids.
        memory: densities the model sees (see :mod:`densitylab.tdks.propagation`).
        progress: called as ``progress(iteration, iterations, loss, gradient_norm)``.
        tolerance: stop when the gradient norm falls below it.

    Returns:
        the trained params and a history dict (loss and gradient norm per iteration).
    """
    jax, _jnp, eqx = jax_modules()
    import optax

    require(optimiser in OPTIMISERS, "optimiser", f"one of {OPTIMISERS}", optimiser)
    require(iterations >= 1, "iterations", "a positive integer", iterations)
    require(
        len(problems) == len(targets) and len(problems) >= 1,
        "targets",
        "one target per problem",
        len(targets),
    )
    arrays, static = eqx.partition(params, eqx.is_inexact_array)
    loss_of_params = total_loss(problems, targets, model, memory, penalty)

    def loss(arrays):
        return loss_of_params(eqx.combine(arrays, static))

    loss = jax.jit(loss)
    if optimiser == "lbfgs":
        solver = optax.lbfgs()
        value_and_grad = optax.value_and_grad_from_state(loss)
    else:
        solver = optax.adam(learning_rate)
        value_and_grad = jax.jit(jax.value_and_grad(loss))
    state = solver.init(arrays)

    @jax.jit
    def step(arrays, state):
        if optimiser == "lbfgs":
            value, grad = value_and_grad(arrays, state=state)
            updates, state = solver.update(grad, state, arrays, value=value, grad=grad, value_fn=loss)
        else:
            value, grad = value_and_grad(arrays)
            updates, state = solver.update(grad, state, arrays)
        return optax.apply_updates(arrays, updates), state, value, optax.tree.norm(grad)

    history = {"iteration": [], "loss": [], "gradient_norm": []}
    if checkpoint is not None and Path(checkpoint).is_file():
        arrays, history = _read_checkpoint(checkpoint, arrays)
        state = solver.init(arrays)
    for iteration in range(len(history["iteration"]) + 1, iterations + 1):
        arrays, state, value, gradient_norm = step(arrays, state)
        history["iteration"].append(iteration)
        history["loss"].append(float(value))
        history["gradient_norm"].append(float(gradient_norm))
        if progress:
            progress(iteration, iterations, float(value), float(gradient_norm))
        if checkpoint is not None and iteration % checkpoint_every == 0 and iteration < iterations:
            _write_checkpoint(checkpoint, arrays, history)
        if float(gradient_norm) < tolerance:
            break
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)
    return eqx.combine(arrays, static), history


def _write_checkpoint(path, arrays, history) -> None:
    _, _, eqx = jax_modules()
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        header = json.dumps(history).encode()
        handle.write(len(header).to_bytes(8, "little") + header)
        eqx.tree_serialise_leaves(handle, arrays)
    os.replace(temporary, path)


def _read_checkpoint(path, like):
    _, _, eqx = jax_modules()
    with open(path, "rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        history = json.loads(handle.read(size).decode())
        arrays = eqx.tree_deserialise_leaves(handle, like)
    return arrays, history
