"""One training loop: optax over the inexact arrays of any JAX pytree (an Equinox network, an
array of free values), used by every fit in densitylab that trains with optax: the rdm
networks (minibatch Adam), the Hubbard-dimer c-model (full-batch Adam) and the TDKS v_c
models (full-batch L-BFGS or Adam, checkpointed). The direct-minimisation DFT is not here: it
moves on a Grassmann chart that it re-centres, with its own preconditioned L-BFGS
(benchmarks/dft_lbfgs.py measures why).

A loop is a number of *epochs*; an epoch is one step on the full batch, or one step per
minibatch that ``batches(epoch)`` yields. After each epoch ``on_epoch`` sees the model, the
epoch's losses and gradient norms; it records history, reports progress, writes checkpoints,
and returns True to stop early.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from densitylab.errors import NumericalError, require
from densitylab.jaxsetup import jax_modules


def optax_loop(
    loss: Callable,
    params,
    optimiser,
    epochs: int,
    batches: Callable[[int], Iterable[tuple]] | None = None,
    on_epoch: Callable[[int, object, list[float], list[float]], bool | None] | None = None,
    first_epoch: int = 1,
    linesearch: bool = False,
):
    """Minimise ``loss(params, *batch)`` over the inexact arrays of ``params`` with ``optimiser``.

    Args:
        loss: scalar loss of the model and one batch (no batch arguments when ``batches`` is None).
        params: a pytree (Equinox module, array); its non-array parts stay fixed.
        optimiser: an optax ``GradientTransformation``.
        epochs: the last epoch to run (epochs ``first_epoch`` … ``epochs`` run: a resumed loop
            starts later).
        batches: ``batches(epoch)`` → the epoch's batches (tuples of arrays), or None for one
            full-batch step per epoch.
        on_epoch: ``on_epoch(epoch, params, losses, gradient_norms)``; True stops the loop.
        linesearch: the optimiser takes the loss and its value in ``update`` (optax's L-BFGS
            with its zoom line search); full batch only.

    Returns:
        the trained ``params`` (same structure).
    """
    jax, _, eqx = jax_modules()
    import optax

    require(not (linesearch and batches is not None), "batches", "None with a line-search optimiser", batches)
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
    for epoch in range(first_epoch, epochs + 1):
        losses, norms = [], []
        for batch in batches(epoch) if batches is not None else [()]:
            arrays, state, value, norm = step(arrays, state, *batch)
            losses.append(float(value))
            norms.append(float(norm))
            if not (math.isfinite(losses[-1]) and math.isfinite(norms[-1])):
                raise NumericalError(
                    f"training produced a non-finite loss or gradient in epoch {epoch}; "
                    "lower the learning rate or check the data"
                )
        if on_epoch is not None and on_epoch(epoch, eqx.combine(arrays, static), losses, norms):
            break
    return eqx.combine(arrays, static)
