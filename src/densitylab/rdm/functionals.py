"""1-RDM functionals of the density alone, γ[n], for two-electron singlets on a fixed grid.

* :func:`sqrt_functional`: γ(x, x') = √(n(x) n(x')). Exact for one doubly occupied orbital
  (the non-interacting singlet); symmetric, γ(x, x) = n(x), positive semi-definite with the
  single occupation 2. The baseline every learned functional must beat.
* :class:`LinearPCAFunctional`: ridge regression from the density's principal-component
  coefficients to the 1-RDM's upper triangle (Wetherell et al. 2020), followed by the exact
  projection γ(x, x) = n(x). Symmetric by construction; not guaranteed positive semi-definite.

All densities are (S, N) in bohr⁻¹ integrating to 2; 1-RDMs are (S, N, N), spin-summed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from densitylab.errors import require
from densitylab.rdm.pca import fit_pca, upper_triangle


def check_densities(density: np.ndarray, points: int, dx: float, electrons: float = 2.0) -> np.ndarray:
    """Validate densities for a functional trained on ``points`` grid points.

    Raises:
        InvalidParameterError: wrong length, negative or non-finite values, wrong electron count.
    """
    density = np.asarray(density, dtype=float)
    if density.ndim == 1:
        density = density[None]
    require(
        density.ndim == 2 and density.shape[1] == points,
        "density",
        f"densities of shape (S, {points}) on the model's grid",
        density.shape,
    )
    require(bool(np.all(np.isfinite(density))), "density", "finite values")
    require(bool(np.all(density >= -1e-10)), "density", "non-negative values", float(density.min()))
    counts = density.sum(axis=1) * dx
    require(
        bool(np.all(np.abs(counts - electrons) < 1e-4)),
        "density",
        f"densities integrating to {electrons:g} electrons (Σ n dx)",
        np.round(counts[:3], 6).tolist(),
    )
    return density


def sqrt_functional(density: np.ndarray) -> np.ndarray:
    """γ(x, x') = √(n(x) n(x')), shape (S, N, N)."""
    root = np.sqrt(np.maximum(density, 0.0))
    return root[:, :, None] * root[:, None, :]


def _symmetric_from_upper(upper: np.ndarray, points: int) -> np.ndarray:
    rows, cols = np.triu_indices(points)
    matrices = np.zeros((upper.shape[0], points, points))
    matrices[:, rows, cols] = upper
    matrices[:, cols, rows] = upper
    return matrices


_PCA_ARRAYS = ("density_mean", "density_components", "weights", "intercept")


@dataclass(frozen=True, eq=False)
class LinearPCAFunctional:
    """γ[n] = mean + W · PCA_k(n), then γ(x, x) := n(x).

    Attributes:
        density_mean (N,), density_components (k, N): the density PCA.
        weights (k, F), intercept (F,): the linear map to the 1-RDM upper triangle.
        dx: grid spacing of the training data.
    """

    density_mean: np.ndarray
    density_components: np.ndarray
    weights: np.ndarray
    intercept: np.ndarray
    dx: float

    @property
    def points(self) -> int:
        return self.density_mean.shape[0]

    @classmethod
    def fit(
        cls, density: np.ndarray, rdm1: np.ndarray, dx: float, components: int = 40, ridge: float = 1e-10
    ):
        """Least squares (with a small ridge) on training densities (S, N) and 1-RDMs (S, N, N)."""
        require(components >= 1, "components", "a positive integer", components)
        pca = fit_pca(density)
        components = min(components, pca.components.shape[0])
        features = pca.encode(density, components)
        targets = upper_triangle(rdm1)
        target_mean = targets.mean(axis=0)
        gram = features.T @ features + ridge * len(features) * np.eye(components)
        weights = np.linalg.solve(gram, features.T @ (targets - target_mean))
        return cls(pca.mean, pca.components[:components], weights, target_mean, dx)

    def __call__(self, density: np.ndarray) -> np.ndarray:
        density = check_densities(density, self.points, self.dx)
        upper = self.intercept + ((density - self.density_mean) @ self.density_components.T) @ self.weights
        gamma = _symmetric_from_upper(upper, self.points)
        index = np.arange(self.points)
        gamma[:, index, index] = density
        return gamma

    def save(self, path: str | Path, **manifest: object) -> Path:
        """An artefact folder (kind ``rdm-pca-linear``): the arrays in ``arrays.h5``."""
        from densitylab.artefacts import ARRAYS, artefact_folder, write_manifest
        from densitylab.data import write_h5

        config = {"points": self.points, "dx": self.dx, "components": len(self.density_components)}
        with artefact_folder(path) as folder:
            write_h5(folder / ARRAYS, {name: getattr(self, name) for name in _PCA_ARRAYS}, config)
            write_manifest(folder, "rdm-pca-linear", config, **manifest)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> LinearPCAFunctional:
        """From an artefact folder, or a pre-manifest ``.npz`` file."""
        path = Path(path)
        if path.is_file():
            with np.load(path) as stored:
                require(str(stored["kind"]) == "pca-linear", "model", "a pca-linear model file", str(path))
                return cls(*(stored[name] for name in _PCA_ARRAYS), float(stored["dx"]))
        from densitylab.artefacts import ARRAYS, read_manifest
        from densitylab.data import read_h5

        manifest = read_manifest(path, ("rdm-pca-linear",))
        arrays, _ = read_h5(path / ARRAYS)
        return cls(*(arrays[name] for name in _PCA_ARRAYS), float(manifest["config"]["dx"]))
