"""One checkpoint format for every long job that can be interrupted and resumed.

A checkpoint is one ``.npz`` file, written atomically: the *settings* that define the job
(JSON, compared on resume), a small JSON *state* (counters, histories) and named arrays. A
resume under other settings is refused, naming every setting that differs, so that a rerun
with another trajectory, learning rate or time step never silently continues the old job.
Settings that are arrays (a trajectory, a target) enter through :func:`fingerprint`.

Used by the exact propagation (:mod:`densitylab.model1d.propagation`), the TDKS Gauss–Newton
fit (:mod:`densitylab.tdks.learn`) and the one training loop (:class:`densitylab.training.Resumable`:
TDKS and rdm network fits); resumable *datasets* keep one part per finished chunk instead
(:class:`densitylab.data.PartsStore`), under the same refusal rule.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from densitylab.data import atomic_output, refuse_mismatch
from densitylab.errors import InvalidParameterError

_SETTINGS, _STATE = "__settings__", "__state__"


def fingerprint(*arrays) -> str:
    """A short hash of the shapes, dtypes and values of ``arrays``: a setting that stands for
    data (two fingerprints agree only for identical arrays)."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(np.asarray(array))
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def config_settings(config, added: Mapping[str, object]) -> dict:
    """``asdict(config)`` (a dataclass) as checkpoint settings, without each field of ``added``
    while it holds the value given there (the behaviour before the field existed): a field added
    to a config enters the settings only when set otherwise, so that jobs begun before it was
    added still resume, and a resume under another value of it is still refused."""
    from dataclasses import asdict

    settings = asdict(config)
    for name, before in added.items():
        if settings.get(name) == before:
            del settings[name]
    return settings


def _canonical(settings: Mapping[str, object]) -> dict:
    return json.loads(json.dumps(dict(settings), default=str, sort_keys=True))


def write_checkpoint(
    path: str | Path,
    settings: Mapping[str, object],
    arrays: Mapping[str, np.ndarray],
    state: Mapping[str, object] | None = None,
) -> Path:
    """Atomically write ``arrays`` with ``settings`` and ``state`` (both JSON-able) to ``path``."""
    path = Path(path)
    with atomic_output(path) as temporary, open(temporary, "wb") as handle:  # any suffix
        np.savez(
            handle,
            **{_SETTINGS: json.dumps(_canonical(settings), sort_keys=True)},
            **{_STATE: json.dumps(dict(state or {}))},
            **{name: np.asarray(value) for name, value in arrays.items()},
        )
    return path


def inspect_checkpoint(path: str | Path) -> tuple[dict, dict[str, np.ndarray], dict]:
    """(settings, arrays, state) of the checkpoint at ``path``, its settings not compared: to
    look into a running or interrupted job (:func:`read_checkpoint` resumes one).

    Raises:
        InvalidParameterError: naming ``checkpoint``, if there is no densitylab checkpoint there.
    """
    try:
        with np.load(path) as stored:
            found = json.loads(str(stored[_SETTINGS]))
            state = json.loads(str(stored[_STATE]))
            arrays = {name: stored[name] for name in stored.files if name not in (_SETTINGS, _STATE)}
    except (OSError, KeyError, ValueError):
        raise InvalidParameterError(
            "checkpoint", "a densitylab checkpoint (delete it to start over)", str(path)
        ) from None
    return found, arrays, state


def read_checkpoint(
    path: str | Path, settings: Mapping[str, object]
) -> tuple[dict[str, np.ndarray], dict] | None:
    """(arrays, state) of the checkpoint at ``path``, or None if there is none.

    Raises:
        InvalidParameterError: naming ``checkpoint``, if the file is not a densitylab
            checkpoint or was written under other settings (every differing one is listed).
    """
    path = Path(path)
    if not path.is_file():
        return None
    found, arrays, state = inspect_checkpoint(path)
    refuse_mismatch(found, _canonical(settings), path, parameter="checkpoint")
    return arrays, state


def tree_arrays(tree) -> dict[str, np.ndarray]:
    """The array leaves of a JAX pytree (an Equinox module, a list of arrays) by position."""
    import jax

    return {
        f"leaf_{index:05d}": np.asarray(leaf) for index, leaf in enumerate(jax.tree_util.tree_leaves(tree))
    }


def tree_from_arrays(arrays: Mapping[str, np.ndarray], like):
    """The pytree ``like`` with its leaves replaced by ``arrays`` (from :func:`tree_arrays`)."""
    from densitylab.jaxsetup import jax_numpy

    jax, jnp = jax_numpy()

    leaves, treedef = jax.tree_util.tree_flatten(like)
    stored = [arrays[f"leaf_{index:05d}"] for index in range(len(leaves))]
    for old, new in zip(leaves, stored, strict=True):
        if np.shape(old) != np.shape(new):
            raise InvalidParameterError(
                "checkpoint", f"parameters of shape {np.shape(old)}", f"shape {np.shape(new)}"
            )
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(value) for value in stored])
