"""One checkpoint format: a resume under other settings is refused, naming what differs."""

from dataclasses import dataclass

import numpy as np
import pytest

from densitylab.checkpoint import config_settings, fingerprint, read_checkpoint, write_checkpoint
from densitylab.errors import InvalidParameterError


def test_round_trip_keeps_arrays_and_state_exactly(tmp_path):
    arrays = {"psi": np.exp(1j * np.linspace(0, 1, 7)), "values": np.arange(6.0).reshape(2, 3)}
    write_checkpoint(tmp_path / "c.eqx", {"dt": 0.01}, arrays, {"step": 4, "history": [1.5, 2.5]})
    loaded, state = read_checkpoint(tmp_path / "c.eqx", {"dt": 0.01})
    assert state == {"step": 4, "history": [1.5, 2.5]}
    for name, value in arrays.items():
        np.testing.assert_array_equal(loaded[name], value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.eqx"]  # no temporary left
    assert read_checkpoint(tmp_path / "missing.npz", {}) is None


def test_other_settings_are_refused_naming_each_difference(tmp_path):
    write_checkpoint(tmp_path / "c.npz", {"dt": 0.01, "method": "split-operator"}, {})
    with pytest.raises(InvalidParameterError, match=r"checkpoint: .*dt: 0\.01 there, 0\.02 now") as caught:
        read_checkpoint(tmp_path / "c.npz", {"dt": 0.02, "method": "split-operator"})
    assert "method" not in str(caught.value)


def test_a_field_added_to_a_config_keeps_older_jobs_resumable_and_refuses_other_values(tmp_path):
    @dataclass(frozen=True)
    class Before:
        rate: float = 0.1

    @dataclass(frozen=True)
    class After:
        rate: float = 0.1
        scope: str = "point"

    added = {"scope": "point"}
    write_checkpoint(tmp_path / "c.npz", {"config": config_settings(Before(), {})}, {"w": np.ones(2)})
    assert read_checkpoint(tmp_path / "c.npz", {"config": config_settings(After(), added)}) is not None
    with pytest.raises(InvalidParameterError, match=r"^checkpoint: .*config"):
        read_checkpoint(tmp_path / "c.npz", {"config": config_settings(After(scope="window"), added)})
    with pytest.raises(InvalidParameterError, match=r"^checkpoint: .*config"):
        read_checkpoint(tmp_path / "c.npz", {"config": config_settings(After(rate=0.2), added)})
    assert config_settings(After(scope="window"), added) == {"rate": 0.1, "scope": "window"}


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    (tmp_path / "c.npz").write_bytes(b"not a checkpoint")
    with pytest.raises(InvalidParameterError, match="a densitylab checkpoint"):
        read_checkpoint(tmp_path / "c.npz", {})


def test_fingerprints_tell_arrays_apart_by_value_shape_and_dtype():
    a = np.arange(6.0)
    assert fingerprint(a) == fingerprint(a.copy())
    assert fingerprint(a) != fingerprint(a.reshape(2, 3))
    assert fingerprint(a) != fingerprint(a.astype(np.float32))
    b = a.copy()
    b[3] += 1e-12
    assert fingerprint(a) != fingerprint(b)


def test_tdks_training_refuses_to_resume_for_another_target_or_learning_rate(tmp_path):
    from densitylab.tdks.learn import train
    from densitylab.tdks.models import free_values
    from densitylab.tdks.propagation import propagate
    from tests.tdks.test_tdks import _problem, _wiggle

    problem = _problem(steps=12)
    target = np.asarray(propagate(problem, _wiggle, None)[0])
    params, model = free_values(problem.steps, problem.points)
    checkpoint = tmp_path / "checkpoint.npz"

    def interrupt(iteration, total, loss, gradient):
        if iteration == 3:
            raise KeyboardInterrupt

    options = {"iterations": 6, "optimiser": "adam", "checkpoint": checkpoint, "checkpoint_every": 2}
    with pytest.raises(KeyboardInterrupt):
        train([problem], [target], params, model, progress=interrupt, learning_rate=1e-3, **options)
    with pytest.raises(InvalidParameterError, match=r"learning_rate: 0\.001 there, 0\.01 now"):
        train([problem], [target], params, model, learning_rate=1e-2, **options)
    with pytest.raises(InvalidParameterError, match="targets"):
        train([problem], [target * 1.01], params, model, learning_rate=1e-3, **options)
    _, history = train([problem], [target], params, model, learning_rate=1e-3, **options)
    assert history["iteration"] == list(range(1, 7)) and not checkpoint.exists()


def test_a_resumed_lbfgs_fit_ends_on_the_uninterrupted_result(tmp_path):
    """Catches a resume that restarts the optimiser (L-BFGS's curvature pairs and line-search
    state) or repeats an iteration: interrupted after iteration 3 (checkpoint at 2), rerun to
    6 iterations, the values and history equal the uninterrupted fit's bit for bit."""
    from densitylab.tdks.learn import train
    from densitylab.tdks.models import free_values
    from densitylab.tdks.propagation import propagate
    from tests.tdks.test_tdks import _problem, _wiggle

    problem = _problem(steps=12)
    target = np.asarray(propagate(problem, _wiggle, None)[0])
    params, model = free_values(problem.steps, problem.points)
    whole, whole_history = train([problem], [target], params, model, iterations=6)
    checkpoint = tmp_path / "checkpoint.npz"

    def interrupt(iteration, total, loss, gradient):
        if iteration == 3:
            raise KeyboardInterrupt

    options = {"iterations": 6, "checkpoint": checkpoint, "checkpoint_every": 2}
    with pytest.raises(KeyboardInterrupt):
        train([problem], [target], params, model, progress=interrupt, **options)
    resumed, history = train([problem], [target], params, model, **options)
    assert history == whole_history and not checkpoint.exists()
    np.testing.assert_array_equal(np.asarray(resumed), np.asarray(whole))
