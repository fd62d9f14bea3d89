"""One artefact format for every trained model and every result: a folder holding a
``manifest.json`` beside its arrays (``arrays.h5``, HDF5) or weights (``weights.eqx``) and any
figures.

The manifest says what the folder is and how it was made::

    {"kind": "rdm-gamma-n", "densitylab_version": "0.1.0", "created": "2026-11-29T18:02:11Z",
     "config": {...}, "seed": 0, ...}

``kind`` (a key of :data:`ARTEFACT_KINDS`) is what :func:`densitylab.load` dispatches on;
``config`` is everything needed to rebuild the model or rerun the computation; further keys
(a training history, a summary of the result) are the workflow's own.

A folder is written whole or not at all (:func:`artefact_folder`): into a temporary folder
beside it, swapped into place when complete. An existing folder is replaced only if it is
empty or is itself a densitylab artefact, so ``--output .`` never deletes a user's files.

Folders written before the manifest existed (``config.json``, ``written_by``) are still read:
:func:`read_manifest` turns their description into a manifest.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from densitylab import __version__
from densitylab.errors import InvalidParameterError

MANIFEST = "manifest.json"
ARRAYS = "arrays.h5"

#: What each kind of artefact is, as a user knows it.
ARTEFACT_KINDS = {
    "exact1d-result": "an exact1d result (densitylab exact1d --output)",
    "rdm-gamma-n": "a neural γ[n] functional (densitylab rdm train --model neural)",
    "rdm-pca-linear": "a linear PCA functional (densitylab rdm train --model pca-linear)",
    "rdm-conv-autoencoder": "a convolutional autoencoder (densitylab rdm train --model conv-autoencoder)",
    "rdm-denoiser": "a denoising autoencoder (densitylab rdm train --model denoiser)",
    "tdks-values": "learned free values of v_c (densitylab tdks learn --model values)",
    "tdks-density-net": "a learned v_c functional (densitylab tdks learn --model adiabatic/memory)",
    "tdks-ensemble": "a committee of learned v_c functionals (densitylab tdks ensemble)",
    "tdks-switch": "a v_c functional switched among experts by the initial state (densitylab tdks switch)",
    "dft-result": "a direct-minimisation DFT result (densitylab dft --output)",
    "dft-orbitals": "orbitals beyond the fixed basis (densitylab dft --orbitals ... --output)",
    "density-model": "a density-learning model (densitylab density train)",
}

#: The kind written in a pre-manifest ``config.json`` → the artefact kind.
_LEGACY_KINDS = {
    "gamma-n": "rdm-gamma-n",
    "conv-autoencoder": "rdm-conv-autoencoder",
    "denoiser": "rdm-denoiser",
    "values": "tdks-values",
    "density-net": "tdks-density-net",
}


def is_artefact(path: str | Path) -> bool:
    """Whether ``path`` is a folder with a manifest (or a pre-manifest densitylab model)."""
    path = Path(path)
    return path.is_dir() and ((path / MANIFEST).is_file() or (path / "config.json").is_file())


def check_replaceable(path: str | Path, parameter: str = "output") -> Path:
    """Refuse an existing folder that holds anything but a densitylab artefact (before any work)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InvalidParameterError(parameter, "a folder, not an existing file", str(path))
    if path.is_dir() and any(path.iterdir()) and not is_artefact(path):
        raise InvalidParameterError(
            parameter, "a new or empty folder, or a densitylab artefact to replace (it has no manifest.json)",
            str(path),
        )  # fmt: skip
    return path


@contextmanager
def artefact_folder(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; when the block ends normally it
    replaces ``path`` whole (see :func:`check_replaceable`); if the block raises, it is removed
    and ``path`` is left as it was."""
    path = Path(path)
    check_replaceable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    try:
        yield temporary
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    if path.exists():
        os.replace(path, old)
    os.replace(temporary, path)
    shutil.rmtree(old, ignore_errors=True)


def write_manifest(
    folder: str | Path,
    kind: str,
    config: Mapping[str, object],
    seed: int | None = None,
    **extra: object,
) -> dict:
    """Write ``folder/manifest.json`` for an artefact of ``kind``; returns the manifest."""
    if kind not in ARTEFACT_KINDS:
        raise InvalidParameterError("kind", f"one of {sorted(ARTEFACT_KINDS)}", kind)
    manifest = {
        "kind": kind,
        "densitylab_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": dict(config),
        "seed": seed,
        **extra,
    }
    text = json.dumps(manifest, indent=1, default=_json_default)
    (Path(folder) / MANIFEST).write_text(text)
    return json.loads(text)


def _json_default(value: object) -> object:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _legacy_manifest(folder: Path) -> dict | None:
    """A manifest for a folder written before manifests: ``config.json`` with ``kind`` (rdm and
    tdks models; none means a γ[n] network) or ``written_by`` (density models)."""
    config_path = folder / "config.json"
    if not config_path.is_file():
        return None
    config = json.loads(config_path.read_text())
    if config.get("written_by") == "densitylab density train":
        kind = "density-model"
    else:
        kind = _LEGACY_KINDS.get(config.get("kind", "gamma-n"), str(config.get("kind")))
    seed = config.get("seed")
    return {"kind": kind, "densitylab_version": None, "config": config, "seed": seed, "legacy": True}


def read_manifest(path: str | Path, kinds: tuple[str, ...] | None = None, parameter: str = "model") -> dict:
    """The manifest of the artefact at ``path``, refusing anything not of ``kinds``.

    Raises:
        InvalidParameterError: naming ``parameter``: not a folder, no manifest, or the wrong
            kind ("model: expected a neural γ[n] functional (…); runs/x is a DFT result (…)").
    """
    path = Path(path)
    wanted = " or ".join(ARTEFACT_KINDS[kind] for kind in kinds) if kinds else "a densitylab artefact"
    if not path.is_dir():
        raise InvalidParameterError(parameter, f"a folder: {wanted}", str(path))
    manifest_path = path / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else _legacy_manifest(path)
    if manifest is None:
        raise InvalidParameterError(parameter, f"{wanted}; {path} has no {MANIFEST}")
    if kinds and manifest.get("kind") not in kinds:
        found = ARTEFACT_KINDS.get(manifest.get("kind"), f"of kind {manifest.get('kind')!r}")
        raise InvalidParameterError(parameter, f"{wanted}; {path} is {found}")
    return manifest
