"""HDF5 files: one file per result or dataset, with parameters, version and seed as attributes.

Writes are atomic: data go to a temporary file beside ``FILE`` first and are renamed over
``FILE`` only when complete, so an interrupted write never leaves a half-written file behind
(:func:`atomic_output`, which every densitylab writer uses).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from densitylab import __version__
from densitylab.errors import InvalidParameterError


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (``NAME.tmp.SUFFIX``: writers that go by the suffix,
    such as ``np.savez``, keep working); it replaces ``path`` when the block ends normally and
    is removed if the block raises."""
    path = Path(path)
    temporary = path.with_name(f"{path.stem}.tmp{path.suffix}")
    try:
        yield temporary
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)


def _writable_folder(folder: Path) -> bool:
    """Whether a file can be created in ``folder``: tried by creating (and removing) one, since
    permission bits say nothing for root or for pseudo file systems such as /proc."""
    import tempfile

    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".densitylab-probe-"):
            return True
    except OSError:
        return False


def check_output(path: str | Path, parameter: str = "output", kind: str = "any") -> Path:
    """Refuse an output that cannot be written, before any work is done; nothing is created.

    Args:
        path: the file or folder a command will write.
        parameter: the name shown in the error.
        kind: "file", "folder" or "any" (either).

    Raises:
        InvalidParameterError: the parent folder is missing (folders are never created
            silently), is not a folder or is not writable, or ``path`` exists as the wrong kind.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.exists():
        if kind == "file" and path.is_dir():
            raise InvalidParameterError(parameter, "a file name, not an existing folder", str(path))
        if kind == "folder" and not path.is_dir():
            raise InvalidParameterError(parameter, "a folder, not an existing file", str(path))
        if path.is_dir() and not _writable_folder(path):
            raise InvalidParameterError(parameter, "a writable folder", str(path))
    if not parent.is_dir():
        raise InvalidParameterError(
            parameter, "a path inside an existing folder (none is created)", str(path)
        )
    if not _writable_folder(parent):
        raise InvalidParameterError(parameter, "a path inside a writable folder", str(path))
    return path


def _attribute(value: object) -> object:
    if isinstance(value, str | int | float | bool | np.integer | np.floating):
        return value
    if value is None:
        return "None"
    return json.dumps(value, default=str)


#: The kinds of HDF5 file densitylab writes (the ``kind`` attribute), as a user knows them.
FILE_KINDS = {
    "exact1d-result": "an exact1d result (densitylab exact1d --output)",
    "rdm-dataset": "an rdm dataset (densitylab rdm generate)",
    "exact-trajectory": "an exact trajectory (densitylab tdks exact)",
    "density-reference": "a density reference (densitylab density reference)",
    "density-prediction": "density predictions (densitylab density predict)",
}


def file_kind(path: str | Path) -> str | None:
    """The kind of a densitylab HDF5 file (a key of ``FILE_KINDS``); for files written before
    the kind was stored, inferred from their contents. "not-hdf5" for other files, None for
    HDF5 files densitylab did not write."""
    import h5py  # lazily: commands that write no HDF5 do not pay for it

    try:
        with h5py.File(path, "r") as handle:
            kind = handle.attrs.get("kind")
            if kind is not None:
                return str(kind)
            if "natural_occupations" in handle and "rdm1" in handle:
                return "exact1d-result"
            if "exact" in handle and "x" in handle:
                return "rdm-dataset"
            if "coefficients" in handle and "energy" in handle:
                return "density-reference"
            if "electron_count" in handle:
                return "density-prediction"
            return None
    except OSError:
        return "not-hdf5"


def require_kind(path: str | Path, kind: str, parameter: str) -> Path:
    """Refuse ``path`` unless it is an existing densitylab file of ``kind``, saying what it is.

    Raises:
        InvalidParameterError: e.g. "dataset: expected an rdm dataset (…); ud.h5 is an exact1d
            result (…)".
    """
    path = Path(path)
    if not path.exists():
        raise InvalidParameterError(parameter, f"an existing file: {FILE_KINDS[kind]}", str(path))
    if path.is_dir() or file_kind(path) != kind:
        raise InvalidParameterError(parameter, f"{FILE_KINDS[kind]}; {path} is {describe_path(path)}")
    return path


def describe_path(path: str | Path) -> str:
    """What an existing path is, as errors name it: a densitylab file or artefact by its kind
    ("an exact1d result (…)"), "not an HDF5 file", "an HDF5 file that densitylab did not write",
    or "a folder"."""
    path = Path(path)
    if path.is_dir():  # an artefact folder (docs/api.md) is named by its manifest
        from densitylab.artefacts import ARTEFACT_KINDS, is_artefact, read_manifest

        return (
            ARTEFACT_KINDS.get(read_manifest(path)["kind"], "an artefact")
            if is_artefact(path)
            else "a folder"
        )
    found = file_kind(path)
    if found == "not-hdf5":
        return "not an HDF5 file"
    if found is None:
        return "an HDF5 file that densitylab did not write"
    return FILE_KINDS.get(found, f"a densitylab file of kind {found!r}")


def write_attributes(handle, attributes: Mapping[str, object], kind: str | None = None) -> None:
    """Store ``densitylab_version``, ``kind`` (a key of ``FILE_KINDS``), ``parameters`` (JSON of
    ``attributes``) and each attribute."""
    handle.attrs["densitylab_version"] = __version__
    if kind is not None:
        handle.attrs["kind"] = kind
    handle.attrs["parameters"] = json.dumps(dict(attributes), default=str, sort_keys=True)
    for key, value in attributes.items():
        handle.attrs[key] = _attribute(value)


def write_h5(
    path: str | Path,
    arrays: Mapping[str, np.ndarray],
    attributes: Mapping[str, object],
    kind: str | None = None,
) -> Path:
    """Atomically write ``arrays`` (names may contain '/' for groups) and ``attributes``.

    The attributes ``densitylab_version`` and ``parameters`` (JSON of ``attributes``) are added.
    """
    import h5py  # lazily: commands that write no HDF5 do not pay for it

    path = Path(path)
    if path.suffix not in (".h5", ".hdf5"):
        raise InvalidParameterError("output", "a file name ending in .h5 or .hdf5", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as temporary, h5py.File(temporary, "w") as handle:
        write_attributes(handle, attributes, kind)
        for name, array in arrays.items():
            handle.create_dataset(name, data=np.asarray(array))
    return path


def read_h5(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """Read every dataset (by full name) and the attributes of a file written by :func:`write_h5`."""
    import h5py  # lazily: commands that write no HDF5 do not pay for it

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


def stored_parameters(path: str | Path) -> dict:
    """The ``parameters`` attribute (JSON) of a file written by :func:`write_attributes`."""
    import h5py  # lazily: commands that write no HDF5 do not pay for it

    with h5py.File(path, "r") as handle:
        return json.loads(handle.attrs["parameters"])


def refuse_mismatch(
    found: Mapping[str, object], wanted: Mapping[str, object], where: Path, parameter: str = "output"
) -> None:
    """Raise, naming every differing parameter, unless ``found`` equals ``wanted``.

    ``parameter`` "output": a finished or partial output made with other parameters;
    "checkpoint": a checkpoint written under other settings (delete it to start over)."""
    differing = sorted(key for key in set(found) | set(wanted) if found.get(key) != wanted.get(key))
    if differing:
        details = ", ".join(f"{key}: {found.get(key)!r} there, {wanted.get(key)!r} now" for key in differing)
        remedy = "a new file name" if parameter == "output" else f"the same settings or deleting {where}"
        raise InvalidParameterError(
            parameter, f"{remedy}, or the settings {where} was made with ({details})", str(where)
        )


class PartsStore:
    """Resumable work towards OUTPUT: a folder ``OUTPUT.parts`` of atomically written ``.npz``
    parts (one per finished task) and a manifest of the parameters they were made with.

    Opening a store whose manifest holds other parameters is refused, so a resumed run never
    mixes results of two different jobs. Each part is written to a temporary name and renamed,
    so an interrupt never leaves a half-written part.
    """

    def __init__(self, output: str | Path, parameters: Mapping[str, object]):
        output = Path(output)
        self.folder = output.with_name(output.name + ".parts")
        manifest = self.folder / "manifest.json"
        self.created = not self.folder.exists()
        wanted = json.loads(json.dumps(dict(parameters), default=str, sort_keys=True))
        if self.folder.exists():
            if not manifest.exists():
                raise InvalidParameterError(
                    "output", f"{self.folder} to be a densitylab parts folder (no manifest.json)"
                )
            refuse_mismatch(json.loads(manifest.read_text()), wanted, self.folder)
        else:
            self.folder.mkdir(parents=True)
            atomic_write_bytes(manifest, json.dumps(wanted, sort_keys=True).encode())

    def path(self, index: int) -> Path:
        return self.folder / f"chunk-{index:06d}.npz"

    def done(self) -> set[int]:
        """Indices of the parts already written."""
        return {
            int(path.stem.split("-")[1]) for path in self.folder.glob("chunk-*.npz") if "tmp" not in path.name
        }

    def save(self, index: int, arrays: Mapping[str, np.ndarray]) -> None:
        with atomic_output(self.path(index)) as temporary:
            np.savez(temporary, **{name.replace("/", "__"): value for name, value in arrays.items()})

    def load(self, index: int) -> dict[str, np.ndarray]:
        with np.load(self.path(index)) as part:
            return {name.replace("__", "/"): part[name] for name in part.files}

    def remove(self) -> None:
        import shutil

        shutil.rmtree(self.folder)


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` through a temporary file, fsync'd, then renamed."""
    with atomic_output(path) as temporary, open(temporary, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
