"""``densitylab.load``: open any artefact, dataset or shipped model by what it is.

Like the CLI, this sits on top of the workflows: it names each workflow's loader here and
imports it only when a file of that kind is opened, so ``import densitylab`` stays light and
the workflows still never import each other.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from densitylab.artefacts import ARTEFACT_KINDS, is_artefact, read_manifest
from densitylab.data import FILE_KINDS, describe_path, file_kind
from densitylab.errors import InvalidParameterError

#: kind → (module, loader); a loader takes the path and returns the object.
LOADERS = {
    "exact1d-result": ("densitylab.model1d.results", "load_result"),
    "rdm-gamma-n": ("densitylab.rdm.neural", "NeuralFunctional.load"),
    "rdm-pca-linear": ("densitylab.rdm.functionals", "LinearPCAFunctional.load"),
    "rdm-conv-autoencoder": ("densitylab.rdm.autoencoders", "load_autoencoder"),
    "rdm-denoiser": ("densitylab.rdm.autoencoders", "load_autoencoder"),
    "tdks-values": ("densitylab.tdks.evaluate", "read_values"),
    "tdks-density-net": ("densitylab.tdks.models", "load_density_net"),
    "tdks-ensemble": ("densitylab.tdks.models", "load_density_net"),
    "tdks-switch": ("densitylab.tdks.switch", "load_switch"),
    "dft-result": ("densitylab.dft.run", "load_result"),
    "dft-orbitals": ("densitylab.dft.orbitals", "load_orbitals"),
    "density-model": ("densitylab.density.pipeline", "load_model"),
    "rdm-dataset": ("densitylab.rdm.dataset", "load_dataset"),
    "exact-trajectory": ("densitylab.model1d.propagation", "load_trajectory"),
    "density-reference": ("densitylab.density.reference", "load_reference"),
}

#: The shipped models: name → (package holding ``pretrained/NAME``, how it is opened by name).
SHIPPED = {
    "gamma-n": ("densitylab.rdm", "densitylab.rdm.models", "pretrained"),
    "gamma-n-pca-denoised": ("densitylab.rdm", "densitylab.rdm.models", "pretrained"),
    "scattering-memory": ("densitylab.tdks", None, None),
    "scattering-dagger": ("densitylab.tdks", None, None),
    "memory-switch": ("densitylab.tdks", None, None),
    "qm9-pbe": ("densitylab.density", "densitylab.density.pipeline", "load_model"),
    "water-pbe": ("densitylab.density", "densitylab.density.pipeline", "load_model"),
}


def _loader(kind: str):
    module_name, attribute = LOADERS[kind]
    target = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


def shipped_path(name: str) -> Path:
    """The folder of a shipped model."""
    package = importlib.import_module(SHIPPED[name][0])
    return Path(package.__file__).parent / "pretrained" / name


def kind_of(path_or_name: str | Path) -> str:
    """The kind of an artefact folder, a densitylab HDF5 file or a shipped model's name."""
    if isinstance(path_or_name, str) and path_or_name in SHIPPED:
        return read_manifest(shipped_path(path_or_name))["kind"]
    path = Path(path_or_name)
    if path.is_dir():
        return read_manifest(path, parameter="path")["kind"]
    if path.is_file():
        found = file_kind(path)
        if found in LOADERS:
            return found
        expected = "a densitylab artefact, dataset or shipped model"
        raise InvalidParameterError("path", f"{expected}; {path} is {describe_path(path)}")
    raise InvalidParameterError(
        "path",
        f"an existing artefact folder, densitylab file, or a shipped model {sorted(SHIPPED)}",
        str(path),
    )


def load(path_or_name: str | Path, kind: str | None = None):
    """Open a densitylab artefact, dataset or shipped model by its kind.

    Args:
        path_or_name: an artefact folder (``manifest.json``, or a pre-manifest model folder), a
            densitylab HDF5 file (rdm dataset, exact trajectory, density reference), or the name
            of a shipped model (``gamma-n``, ``gamma-n-pca-denoised``, ``memory-switch``,
            ``scattering-memory``, ``scattering-dagger``, ``qm9-pbe``, ``water-pbe``).
        kind: if given, anything else is refused, naming both kinds.

    Returns:
        what the workflow's loader returns: a report, a functional or network, a dataset…
        A shipped γ[n] comes back as a functional of the density (call it on densities).

    Raises:
        InvalidParameterError: missing, not densitylab's, or not of ``kind``.
    """
    found = kind_of(path_or_name)
    if kind is not None and found != kind:
        wanted = ARTEFACT_KINDS.get(kind) or FILE_KINDS.get(kind) or kind
        what = ARTEFACT_KINDS.get(found) or FILE_KINDS.get(found) or found
        raise InvalidParameterError("path", f"{wanted}; {path_or_name} is {what}")
    if isinstance(path_or_name, str) and path_or_name in SHIPPED:
        _, module_name, function = SHIPPED[path_or_name]
        if module_name is not None:
            return getattr(importlib.import_module(module_name), function)(path_or_name)
        return _loader(found)(shipped_path(path_or_name))
    if found not in LOADERS:
        raise InvalidParameterError("path", f"a kind densitylab can open {sorted(LOADERS)}", found)
    return _loader(found)(Path(path_or_name))


__all__ = ["LOADERS", "SHIPPED", "is_artefact", "kind_of", "load"]
