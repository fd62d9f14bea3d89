"""HDF5 files: one file per result or dataset, with parameters, version and seed as attributes.

Writes are atomic: data go to ``FILE.tmp`` first and are renamed over ``FILE`` only when
complete, so an interrupted write never leaves a half-written file behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np

from densitylab import __version__
from densitylab.errors import InvalidParameterError


def _attribute(value: object) -> object:
    if isinstance(value, str | int | float | bool | np.integer | np.floating):
        return value
    if value is None:
        return "None"
    return json.dumps(value, default=str)


def write_attributes(handle: h5py.File, attributes: Mapping[str, object]) -> None:
    """Store ``densitylab_version``, ``parameters`` (JSON of ``attributes``) and each attribute."""
    handle.attrs["densitylab_version"] = __version__
    handle.attrs["parameters"] = json.dumps(dict(attributes), default=str, sort_keys=True)
    for key, value in attributes.items():
        handle.attrs[key] = _attribute(value)


def write_h5(path: str | Path, arrays: Mapping[str, np.ndarray], attributes: Mapping[str, object]) -> Path:
    """Atomically write ``arrays`` (names may contain '/' for groups) and ``attributes``.

    The attributes ``densitylab_version`` and ``parameters`` (JSON of ``attributes``) are added.
    """
    path = Path(path)
    if path.suffix not in (".h5", ".hdf5"):
        raise InvalidParameterError("output", "a file name ending in .h5 or .hdf5", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with h5py.File(temporary, "w") as handle:
        write_attributes(handle, attributes)
        for name, array in arrays.items():
            handle.create_dataset(name, data=np.asarray(array))
    os.replace(temporary, path)
    return path


def read_h5(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """Read every dataset (by full name) and the attributes of a file written by :func:`write_h5`."""
    path = Path(path)
    if not path.is_file():
        raise InvalidParameterError("path", "an existing HDF5 file", str(path))
    arrays: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(
            lambda name, item: arrays.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None
        )
        attributes = {key: handle.attrs[key] for key in handle.attrs}
    return arrays, attributes
