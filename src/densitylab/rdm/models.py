"""Every rdm model by name: the √(n n') baseline, the shipped models and the folders or files
that ``densitylab rdm train`` writes, opened by their kind; and what each model takes as input.

This is the one place that knows all the rdm model kinds, so that :mod:`densitylab.rdm.neural`
and :mod:`densitylab.rdm.autoencoders` need not know each other's (no import cycle).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from densitylab.artefacts import read_manifest
from densitylab.errors import InvalidParameterError, require

PRETRAINED = Path(__file__).parent / "pretrained"
RDM_KINDS = ("rdm-gamma-n", "rdm-pca-linear", "rdm-conv-autoencoder", "rdm-denoiser")


def pretrained(name: str = "gamma-n"):
    """A γ[n] functional shipped with densitylab (62 points on [−7.5, 7.5], 2 electrons).

    ``gamma-n`` (default): the neural correlation functional. ``gamma-n-pca-denoised``: the
    linear PCA functional followed by a denoising autoencoder, also a pure functional of n
    (held-out T error 0.52% against 0.80%). See docs/rdm.md for the commands, dataset seed
    and accuracy of each.
    """
    path = PRETRAINED / name
    available = sorted(p.name for p in PRETRAINED.iterdir() if p.is_dir()) if PRETRAINED.is_dir() else []
    require(path.is_dir(), "name", f"one of the shipped models {available}", name)
    if read_manifest(path)["kind"] == "rdm-denoiser":
        from densitylab.rdm.autoencoders import DenoisedFunctional, load_autoencoder

        return DenoisedFunctional(load_autoencoder(path))
    from densitylab.rdm.neural import NeuralFunctional

    return NeuralFunctional.load(path)


def load_model(model: str, points: int, dx: float):
    """'sqrt', 'pretrained[:NAME]' or a saved model → a callable. Functionals of n take
    densities of shape (S, points) on spacing ``dx`` (bohr); autoencoders and denoisers (which
    have a ``source``) take 1-RDMs of shape (S, points, points)."""
    from densitylab.rdm.functionals import LinearPCAFunctional, check_densities, sqrt_functional

    if model == "sqrt":
        return lambda density: sqrt_functional(check_densities(density, points, dx))
    if model == "pretrained" or model.startswith("pretrained:"):
        return pretrained(model.partition(":")[2] or "gamma-n")
    path = Path(model)
    if path.is_file():  # a pre-manifest pca-linear .npz
        return LinearPCAFunctional.load(path)
    if not path.is_dir():
        raise InvalidParameterError(
            "model", "'sqrt', 'pretrained' or a model made by 'densitylab rdm train'", model
        )
    kind = read_manifest(path, tuple(RDM_KINDS))["kind"]
    if kind == "rdm-pca-linear":
        return LinearPCAFunctional.load(path)
    if kind == "rdm-gamma-n":
        from densitylab.rdm.neural import NeuralFunctional

        return NeuralFunctional.load(path)
    from densitylab.rdm.autoencoders import load_autoencoder

    return load_autoencoder(path)


def model_inputs(functional, data, index: np.ndarray) -> np.ndarray:
    """What an rdm model takes, for systems ``index`` of a dataset: densities for a
    functional of n, exact 1-RDMs for an autoencoder, its approximate 1-RDMs for a denoiser."""
    source = getattr(functional, "source", None)
    if source is None:
        return data.arrays["density"][index]
    if source == "exact":
        return data.rdm1()[index]
    from densitylab.rdm.autoencoders import denoiser_inputs

    return denoiser_inputs(data, source, index, functional.pca)


def predict_file(model: str, density: str | Path, output: str | Path) -> dict:
    """Apply a γ[n] functional (``model`` as in :func:`load_model`; 'sqrt' is taken on the
    default 62-point grid) to the densities (S, N) or (N,) of a .npy file, writing the 1-RDMs
    (S, N, N) atomically to ``output`` as .npy."""
    from densitylab.data import atomic_output

    density = Path(density)
    if not density.is_file():
        raise InvalidParameterError("density", "an existing .npy file of shape (S, 62)", str(density))
    try:
        values = np.load(density, allow_pickle=False)
    except ValueError as exc:
        raise InvalidParameterError("density", f"a plain numeric .npy array ({exc})", str(density)) from None
    # every functional validates its input (shape, sign, electron count) against its own grid
    functional = load_model(model, 62, 15.0 / 61)
    if getattr(functional, "source", None) is not None:
        raise InvalidParameterError(
            "model", "a functional of the density (pretrained, sqrt, neural or pca-linear)", model
        )
    gamma = functional(values)
    with atomic_output(output) as temporary, open(temporary, "wb") as handle:
        np.save(handle, gamma)
    return {"model": model, "systems": len(np.atleast_2d(values)), "output": str(output)}
