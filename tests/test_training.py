"""The one training loop's best-point option: a run whose loss rises keeps its lowest point,
across an interrupted and resumed run too."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from densitylab.training import Resumable, optax_loop


def _quadratic(params):
    return jnp.sum(params**2)


def test_keep_best_returns_the_lowest_point_of_a_diverging_run():
    """Gradient descent on x² with step 1.5 maps x to −2x: the loss grows 4× per step, so the
    lowest point is the start; without the option the run ends at (−2)⁵ times it."""
    start = jnp.array([0.5, -1.0])
    last = optax_loop(_quadratic, start, optax.sgd(1.5), 5)
    np.testing.assert_allclose(np.asarray(last), (-2.0) ** 5 * np.asarray(start))
    best = optax_loop(_quadratic, start, optax.sgd(1.5), 5, keep_best=True)
    np.testing.assert_array_equal(np.asarray(best), np.asarray(start))


def test_keep_best_picks_the_turning_point_and_keeps_a_converging_run():
    """SGD on x² with step s maps x to (1 − 2s)x: three steps of 0.25 halve x, then steps of
    1.5 double it and flip its sign, so the best point is 1/8, where the steps turn. A run that
    keeps falling ends on its last point, which only the extra evaluation sees."""
    rates = [0.25, 0.25, 0.25, 1.5, 1.5]  # x ↦ 0.5x three times, then x ↦ −2x
    schedule = optax.sgd(lambda count: jnp.asarray(rates)[count])
    start = jnp.array([1.0])
    best = optax_loop(_quadratic, start, schedule, 5, keep_best=True)
    np.testing.assert_allclose(np.asarray(best), [0.125])
    falling = optax_loop(_quadratic, start, optax.sgd(0.25), 4, keep_best=True)
    np.testing.assert_allclose(np.asarray(falling), [0.5**4])


def test_keep_best_survives_an_interruption_and_is_part_of_the_job(tmp_path):
    """Interrupted after the best point has passed and resumed from a checkpoint written after
    it, the run still returns that point; a checkpoint written without the option is refused."""
    rates = [0.25, 0.25, 0.25, 1.5, 1.5, 1.5]
    schedule = optax.sgd(lambda count: jnp.asarray(rates)[count])
    start = jnp.array([1.0])
    path = tmp_path / "loop.npz"

    def stop_at(epoch):
        def on_epoch(e, params, losses, norms):
            if e == epoch:
                raise KeyboardInterrupt

        return on_epoch

    with pytest.raises(KeyboardInterrupt):
        optax_loop(_quadratic, start, schedule, 6, on_epoch=stop_at(6), resumable=Resumable(path, {}, 5),
                   keep_best=True)  # fmt: skip
    assert path.exists()  # written at epoch 5, after the best point (the start of epoch 4)
    resumed = optax_loop(_quadratic, start, schedule, 6, resumable=Resumable(path, {}, 5), keep_best=True)
    np.testing.assert_allclose(np.asarray(resumed), [0.125])
    assert not path.exists()
    with pytest.raises(KeyboardInterrupt):
        optax_loop(_quadratic, start, schedule, 6, on_epoch=stop_at(6), resumable=Resumable(path, {}, 5))
    from densitylab.errors import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="keep_best"):
        optax_loop(_quadratic, start, schedule, 6, resumable=Resumable(path, {}, 5), keep_best=True)
