"""Principal component analysis of densities and 1-RDMs (the compression study of
Wetherell et al. 2020, section 3).

Features: the density n (N values) and the upper triangle of the symmetric 1-RDM, diagonal
included (N(N+1)/2 values). Components are fitted on a training split. Reconstruction errors
are then measured on a held-out split by updating the actual residual one component at a
time, which resolves errors down to machine precision; the shortcut ‖X‖² − Σ‖y_k‖² cannot
resolve them below ~1e-8.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from densitylab.errors import require

MACHINE_PRECISION = 1e-12  # max-abs reconstruction error treated as "machine precision" (data are O(0.1–1))
VARIANCE_MACHINE_PRECISION = 1e-14  # unexplained variance fraction treated as "machine precision"


@dataclass(frozen=True, eq=False)
class PCAModel:
    """Mean (F,) and principal directions (K, F), rows orthonormal, by decreasing variance."""

    mean: np.ndarray
    components: np.ndarray
    variance: np.ndarray

    def encode(self, features: np.ndarray, count: int | None = None) -> np.ndarray:
        return (features - self.mean) @ self.components[:count].T

    def decode(self, coefficients: np.ndarray) -> np.ndarray:
        return self.mean + coefficients @ self.components[: coefficients.shape[-1]]


@dataclass(frozen=True, eq=False)
class CompressionCurve:
    """Held-out reconstruction errors with k = 0..K components (arrays of length K + 1).

    Attributes:
        explained_variance_ratio: (K,) training variance fraction per component.
        max_error, mean_error: max and mean |x − x̂| over the held-out set.
    """

    name: str
    features: int
    explained_variance_ratio: np.ndarray
    max_error: np.ndarray
    mean_error: np.ndarray

    def components_needed(self, tolerance: float, kind: str = "max") -> int | None:
        """Smallest k whose held-out ``kind`` error is ≤ ``tolerance`` (None if never)."""
        errors = self.max_error if kind == "max" else self.mean_error
        below = np.nonzero(errors <= tolerance)[0]
        return int(below[0]) if below.size else None

    @property
    def unexplained_variance(self) -> np.ndarray:
        """Training variance fraction left with k = 0..K components (tail sums, accurate to 1e-16)."""
        tail = np.cumsum(self.explained_variance_ratio[::-1])[::-1]
        return np.append(tail, 0.0)

    def components_for_variance(self, tolerance: float) -> int | None:
        below = np.nonzero(self.unexplained_variance <= tolerance)[0]
        return int(below[0]) if below.size else None

    def summary(self) -> dict:
        """Component counts by two definitions of error (the paper's counts match the variance one)."""
        return {
            "name": self.name,
            "features": self.features,
            "components_variance_machine_precision": self.components_for_variance(VARIANCE_MACHINE_PRECISION),
            "components_variance_1e-6": self.components_for_variance(1e-6),
            "components_machine_precision": self.components_needed(MACHINE_PRECISION),
            "components_error_1e-6": self.components_needed(1e-6),
            "components_mean_error_1e-6": self.components_needed(1e-6, "mean"),
            "floor_max_error": float(self.max_error.min()),
        }


def fit_pca(features: np.ndarray) -> PCAModel:
    """PCA of (S, F) features by eigen-decomposition of the covariance."""
    features = np.asarray(features, dtype=float)
    require(
        features.ndim == 2 and features.shape[0] >= 2,
        "features",
        "an (S, F) array with S ≥ 2",
        features.shape,
    )
    mean = features.mean(axis=0)
    centred = features - mean
    covariance = centred.T @ centred / (features.shape[0] - 1)
    variance, vectors = np.linalg.eigh(covariance)
    order = np.argsort(variance)[::-1]
    return PCAModel(
        mean=mean, components=vectors[:, order].T.copy(), variance=np.maximum(variance[order], 0.0)
    )


def compression_curve(
    name: str, train: np.ndarray, test: np.ndarray, max_components: int | None = None
) -> CompressionCurve:
    """Fit on ``train`` and measure held-out reconstruction errors for every component count."""
    model = fit_pca(train)
    count = (
        model.components.shape[0]
        if max_components is None
        else min(max_components, model.components.shape[0])
    )
    residual = np.asarray(test, dtype=float) - model.mean
    coefficients = residual @ model.components[:count].T
    max_error, mean_error = [np.abs(residual).max()], [np.abs(residual).mean()]
    for k in range(count):
        residual -= np.outer(coefficients[:, k], model.components[k])
        max_error.append(np.abs(residual).max())
        mean_error.append(np.abs(residual).mean())
    total = model.variance.sum()
    return CompressionCurve(
        name=name,
        features=train.shape[1],
        explained_variance_ratio=model.variance[:count] / total if total > 0 else model.variance[:count],
        max_error=np.array(max_error),
        mean_error=np.array(mean_error),
    )


def upper_triangle(rdm1: np.ndarray) -> np.ndarray:
    """(S, N, N) symmetric matrices → (S, N(N+1)/2) upper triangles, diagonal included."""
    rows, cols = np.triu_indices(rdm1.shape[-1])
    return rdm1[:, rows, cols]


def split(
    count: int, test_fraction: float, seed: int = 0, least_training: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train/test indices; at least one held out and ``least_training`` trained on."""
    require(0 < test_fraction < 1, "test_fraction", "a number between 0 and 1", test_fraction)
    order = np.random.default_rng(seed).permutation(count)
    test_count = max(1, round(test_fraction * count))
    require(
        count - test_count >= least_training,
        "test_fraction",
        f"a fraction that leaves at least {least_training} of the {count} systems for training",
        test_fraction,
    )
    return np.sort(order[test_count:]), np.sort(order[:test_count])


def analyse_dataset(density: np.ndarray, rdm1: np.ndarray, test_fraction: float = 0.04, seed: int = 0):
    """Compression curves of the densities and 1-RDMs of one dataset (held-out split)."""
    train, test = split(density.shape[0], test_fraction, seed, least_training=2)  # a PCA needs two
    return [
        compression_curve("density", density[train], density[test]),
        compression_curve("rdm1", upper_triangle(rdm1[train]), upper_triangle(rdm1[test])),
    ]
