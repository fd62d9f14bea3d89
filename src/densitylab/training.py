"""One training loop: optax over the inexact arrays of any JAX pytree (an Equinox network, an
array of free values), used by every fit in densitylab that trains with optax: the rdm
networks (minibatch Adam), the Hubbard-dimer c-model (full-batch Adam) and the TDKS v_c
models (full-batch L-BFGS or Adam, checkpointed). The direct-minimisation DFT is not here: it
moves on a Grassmann chart that it re-centres, with its own preconditioned L-BFGS
(benchmarks/dft_lbfgs.py measures why).

A loop is a number of *epochs*; an epoch is one step on the full batch, or one step per
minibatch that ``batches(epoch)`` yields. After each epoch ``on_epoch`` sees the model, the
epoch's losses and gradient norms; it records history, reports progress and returns True to
stop early.

A loop given a :class:`Resumable` checkpoints itself (:mod:`densitylab.checkpoint`): the model,
the optimiser's whole state (Adam's moments, L-BFGS's curvature pairs, a schedule's count) and
the caller's own JSON state (history, a random generator), so that a rerun of an interrupted
job continues exactly where it stopped and ends on the uninterrupted run's result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from densitylab.errors import NumericalError, require
from densitylab.jaxsetup import jax_modules


@dataclass(frozen=True)
class Resumable:
    """Where and how often :func:`optax_loop` checkpoints a job, and what defines the job.

    Attributes:
        path: the checkpoint file (.npz); removed when the loop ends.
        settings: everything that defines the job (JSON-able; arrays through
            :func:`densitylab.checkpoint.fingerprint`): a checkpoint written under other settings
            is refused, naming what differs. The loop adds the starting parameters' fingerprint.
        every: epochs between checkpoints.
        save: the caller's JSON state to store with each checkpoint (history, generator state).
        restore: given that state back when a checkpoint is resumed, before the first epoch.
    """

    path: str | Path
    settings: Mapping[str, object]
    every: int = 10
    save: Callable[[], dict] = dict
    restore: Callable[[dict], None] = field(default=lambda state: None)

    def __post_init__(self) -> None:
        require(
            isinstance(self.every, int) and self.every >= 1,
            "checkpoint_every",
            "a positive integer",
            self.every,
        )


def optax_loop(
    loss: Callable,
    params,
    optimiser,
    epochs: int,
    batches: Callable[[int], Iterable[tuple]] | None = None,
    on_epoch: Callable[[int, object, list[float], list[float]], bool | None] | None = None,
    linesearch: bool = False,
    resumable: Resumable | None = None,
    keep_best: bool = False,
):
    """Minimise ``loss(params, *batch)`` over the inexact arrays of ``params`` with ``optimiser``.

    Args:
        loss: scalar loss of the model and one batch (no batch arguments when ``batches`` is None).
        params: a pytree (Equinox module, array); its non-array parts stay fixed.
        optimiser: an optax ``GradientTransformation``.
        epochs: the last epoch to run (epochs 1 … ``epochs``; a resumed loop starts later).
        batches: ``batches(epoch)`` → the epoch's batches (tuples of arrays), or None for one
            full-batch step per epoch.
        on_epoch: ``on_epoch(epoch, params, losses, gradient_norms)``; True stops the loop.
        linesearch: the optimiser takes the loss and its value in ``update`` (optax's L-BFGS
            with its zoom line search); full batch only.
        resumable: checkpoint the loop there and resume from it (:class:`Resumable`), from the
            epoch after the stored one.
        keep_best: full batch only: return the parameters with the lowest loss seen (each
            epoch's loss is that of the parameters it starts from; the last epoch's result is
            evaluated once more), not the last ones: a run whose loss rises late (Adam through
            a chaotic propagation) keeps its best point. The best point is checkpointed too.

    Returns:
        the trained ``params`` (same structure).
    """
    jax, _, eqx = jax_modules()
    import optax

    require(not (linesearch and batches is not None), "batches", "None with a line-search optimiser", batches)
    require(not (keep_best and batches is not None), "batches", "None when keeping the best point", batches)
    arrays, static = eqx.partition(params, eqx.is_inexact_array)

    def objective(arrays, *batch):
        return loss(eqx.combine(arrays, static), *batch)

    if linesearch:
        objective_jit = jax.jit(objective)
        value_and_grad = optax.value_and_grad_from_state(objective_jit)

        @jax.jit
        def step(arrays, state):
            value, grad = value_and_grad(arrays, state=state)
            updates, state = optimiser.update(
                grad, state, arrays, value=value, grad=grad, value_fn=objective_jit
            )
            return optax.apply_updates(arrays, updates), state, value, optax.tree.norm(grad)

    else:

        @jax.jit
        def step(arrays, state, *batch):
            value, grad = jax.value_and_grad(objective)(arrays, *batch)
            updates, state = optimiser.update(grad, state, arrays)
            return optax.apply_updates(arrays, updates), state, value, optax.tree.norm(grad)

    state = optimiser.init(arrays)
    first_epoch = 1
    best = {"loss": math.inf, "arrays": arrays} if keep_best else None
    if resumable is not None:
        job = _job(resumable, arrays, keep_best)
        arrays, state, first_epoch = _resume(resumable, job, arrays, state, best)
    for epoch in range(first_epoch, epochs + 1):
        losses, norms = [], []
        for batch in batches(epoch) if batches is not None else [()]:
            start = arrays
            arrays, state, value, norm = step(arrays, state, *batch)
            if best is not None and float(value) < best["loss"]:
                best.update(loss=float(value), arrays=start)
            losses.append(float(value))
            norms.append(float(norm))
            if not (math.isfinite(losses[-1]) and math.isfinite(norms[-1])):
                raise NumericalError(
                    f"training produced a non-finite loss or gradient in epoch {epoch}; "
                    "lower the learning rate or check the data"
                )
        if on_epoch is not None and on_epoch(epoch, eqx.combine(arrays, static), losses, norms):
            break
        if resumable is not None and epoch % resumable.every == 0 and epoch < epochs:
            _write(resumable, job, arrays, state, epoch, best)
    if best is not None and float(jax.jit(objective)(arrays)) >= best["loss"]:
        arrays = best["arrays"]
    if resumable is not None:
        Path(resumable.path).unlink(missing_ok=True)
    return eqx.combine(arrays, static)


def _job(resumable: Resumable, arrays, keep_best: bool = False) -> dict:
    from densitylab.checkpoint import fingerprint, tree_arrays

    start = fingerprint(*tree_arrays(arrays).values())
    job = {**resumable.settings, "start": start, "checkpoint_format": "optax_loop-2"}
    return job | {"keep_best": True} if keep_best else job


def _write(resumable: Resumable, job: dict, arrays, state, epoch: int, best: dict | None = None) -> None:
    from densitylab.checkpoint import tree_arrays, write_checkpoint

    stored = {f"params_{k}": v for k, v in tree_arrays(arrays).items()}
    stored |= {f"state_{k}": v for k, v in tree_arrays(state).items()}
    saved = {"epoch": epoch, "caller": resumable.save()}
    if best is not None:
        stored |= {f"best_{k}": v for k, v in tree_arrays(best["arrays"]).items()}
        saved["best_loss"] = best["loss"]
    write_checkpoint(resumable.path, job, stored, saved)


def _resume(resumable: Resumable, job: dict, arrays, state, best: dict | None = None):
    """(arrays, optimiser state, first epoch) from the checkpoint, or as given if there is none;
    ``best`` (the best point so far) is updated in place."""
    from densitylab.checkpoint import read_checkpoint, tree_from_arrays

    stored = read_checkpoint(resumable.path, job)
    if stored is None:
        return arrays, state, 1
    found, saved = stored

    def part(prefix: str) -> dict:
        return {k[len(prefix) :]: v for k, v in found.items() if k.startswith(prefix)}

    if best is not None:
        best.update(loss=float(saved["best_loss"]), arrays=tree_from_arrays(part("best_"), arrays))
    arrays = tree_from_arrays(part("params_"), arrays)
    state = tree_from_arrays(part("state_"), state)
    resumable.restore(saved["caller"])
    return arrays, state, int(saved["epoch"]) + 1
