"""Symmetry-adapted sparse Gaussian-process regression of density-fitting coefficients
(SALTED-style), trained in the metric of the auxiliary basis.

For species a and angular momentum λ, the equivariant kernel between environments i and j is
the (2λ+1)×(2λ+1) matrix k^λ(i, j) = X^λ_i X^λ_jᵀ · (x⁰_i · x⁰_j)^(ζ−1) (X the normalised
λ-SOAP block, x⁰ the λ = 0 features). M sparse environments per species are chosen by
farthest-point sampling of x⁰. Projection into the RKHS: with K_MM = V Λ Vᵀ (eigenvalues below
``eigen_cutoff``·max dropped), Ψ^λ_i = K^λ_iM V Λ^(−1/2), a (2λ+1)×D_aλ matrix, and for every
radial channel n of (a, λ) the coefficients of atom i are c_{iλn} = Ψ^λ_i b_{aλn}.

The weights minimise, over training molecules, (Φb − (c − c̄))ᵀ S (Φb − (c − c̄)) + η‖b‖²,
with S the auxiliary overlap of each molecule and c̄ the per-species λ = 0 baseline (mean
training coefficient of each radial channel). Two solvers, which agree (tested):

- ``direct``: the normal equations (Σ ΦᵀSΦ + η) b = Σ ΦᵀS(c − c̄), Cholesky;
- ``cg``: matrix-free conjugate gradients with a block-Jacobi preconditioner (the inverse of
  each (species, λ, n) diagonal block); A·v is applied molecule
  by molecule through the sparse Φ, so no P × P matrix is ever formed. It stops when the
  relative residual falls below ``cg_tolerance`` (default 1e-10: measured, SALTED's 1e-5 gradient
  tolerance stops well before the minimum; see docs/density.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
import scipy.sparse

from densitylab.density.features import Features, farthest_point_sampling
from densitylab.errors import InvalidParameterError, require

SOLVERS = ("auto", "cg", "direct")
DIRECT_MAX_PARAMETERS = 20_000


@dataclass(frozen=True)
class RegressionSettings:
    """Sparse-GPR hyper-parameters.

    Attributes:
        sparse_environments: M, environments per species (fewer if the training set has fewer).
        zeta: kernel exponent ζ ≥ 1.
        regularisation: η (in the metric's units).
        eigen_cutoff: relative eigenvalue cutoff of K_MM.
        solver: ``auto`` (default: ``direct`` up to 20,000 weights, ``cg`` beyond), ``cg`` or
            ``direct``.
        cg_tolerance, cg_max_iterations: CG stopping rule.
    """

    sparse_environments: int = 100
    zeta: int = 2
    regularisation: float = 1e-8
    eigen_cutoff: float = 1e-10
    solver: str = "auto"
    cg_tolerance: float = 1e-10
    cg_max_iterations: int = 20_000

    def check(self) -> None:
        require(
            self.sparse_environments >= 1,
            "sparse_environments",
            "a positive integer",
            self.sparse_environments,
        )
        require(self.zeta >= 1, "zeta", "an integer ≥ 1", self.zeta)
        require(self.regularisation > 0, "regularisation", "a positive number", self.regularisation)
        require(self.solver in SOLVERS, "solver", "auto, cg or direct", self.solver)


@dataclass(eq=False)
class DensityModel:
    """A trained model: everything :func:`predict_coefficients` needs besides the features.

    Attributes:
        species: atomic numbers the model knows.
        channels: {(species, λ): radial channels n}.
        sparse_features: {(species, λ): (M, 2λ+1, F)} the sparse environments' features.
        sparse_scalars: {species: (M, F0)} their λ = 0 features (for ζ > 1).
        projectors: {(species, λ): (M(2λ+1), D)} V Λ^(−1/2).
        weights: {(species, λ, n): (D,)}.
        baseline: {(species, n): mean λ = 0 coefficient}.
        columns: {(species, λ): feature columns kept}.
    """

    species: list
    zeta: int
    channels: dict
    sparse_features: dict
    sparse_scalars: dict
    projectors: dict
    weights: dict = field(default_factory=dict)
    baseline: dict = field(default_factory=dict)
    columns: dict = field(default_factory=dict)


def _kernel(
    model: DensityModel, species: int, l: int, features: np.ndarray, scalars: np.ndarray
) -> np.ndarray:
    """k^λ between rows of ``features`` (n, 2λ+1, F) and the sparse set: (n, 2λ+1, M, 2λ+1)."""
    sparse = model.sparse_features[(species, l)]
    kernel = np.einsum("iaf,mbf->iamb", features, sparse)
    if model.zeta > 1:
        scalar = (scalars @ model.sparse_scalars[species].T) ** (model.zeta - 1)  # (n, M)
        kernel = kernel * scalar[:, None, :, None]
    return kernel


def _psi(model: DensityModel, species: int, l: int, features: Features, rows: np.ndarray) -> np.ndarray:
    """Ψ (n, 2λ+1, D) for the given rows of species' atoms."""
    block = features.blocks[(species, l)][rows]
    scalars = features.blocks[(species, 0)][rows][:, 0, :]
    kernel = _kernel(model, species, l, block, scalars)
    n, width = kernel.shape[0], kernel.shape[1]
    return (kernel.reshape(n * width, -1) @ model.projectors[(species, l)]).reshape(n, width, -1)


def build_model(
    features: Features, labels_by_structure: list, numbers_by_structure: list, settings: RegressionSettings
) -> DensityModel:
    """Sparse environments and RKHS projectors from training features."""
    settings.check()
    species = sorted(features.atoms)
    channels: dict = {}
    for labels, numbers in zip(labels_by_structure, numbers_by_structure, strict=True):
        for atom, l, n, _ in labels:
            key = (int(numbers[atom]), int(l))
            channels[key] = max(channels.get(key, 0), int(n) + 1)
    sparse_features, sparse_scalars, projectors = {}, {}, {}
    for a in species:
        scalars = features.blocks[(a, 0)][:, 0, :]
        chosen = farthest_point_sampling(scalars, settings.sparse_environments)
        sparse_scalars[a] = scalars[chosen]
        for (b, l), _ in sorted(channels.items()):
            if b != a:
                continue
            require((a, l) in features.blocks, "features", f"λ = {l} features for species {a}", None)
            sparse_features[(a, l)] = features.blocks[(a, l)][chosen]
    model = DensityModel(species, settings.zeta, channels, sparse_features, sparse_scalars, {})
    for a, l in channels:
        m = sparse_features[(a, l)]
        kernel = _kernel(model, a, l, m, sparse_scalars[a])
        size = kernel.shape[0] * kernel.shape[1]
        matrix = kernel.reshape(size, size)
        values, vectors = np.linalg.eigh(0.5 * (matrix + matrix.T))
        keep = values > settings.eigen_cutoff * values.max()
        projectors[(a, l)] = vectors[:, keep] / np.sqrt(values[keep])
    model.projectors = projectors
    return model


def _weight_layout(model: DensityModel) -> dict:
    """{(species, λ, n): (offset, D)} in the flat weight vector."""
    layout, offset = {}, 0
    for (a, l), count in sorted(model.channels.items()):
        width = model.projectors[(a, l)].shape[1]
        for n in range(count):
            layout[(a, l, n)] = (offset, width)
            offset += width
    return layout


def design_matrices(model: DensityModel, features: Features, labels_list: list, numbers_list: list) -> list:
    """Per structure, the sparse Φ (naux, P) mapping weights to coefficients (featomic order)."""
    layout = _weight_layout(model)
    total = sum(width for _, width in layout.values())
    row_of = {a: {(int(s), int(i)): r for r, (s, i) in enumerate(features.atoms[a])} for a in features.atoms}
    psi_cache: dict = {}
    for a, l in model.channels:
        psi_cache[(a, l)] = _psi(model, a, l, features, np.arange(len(features.atoms[a])))
    matrices = []
    for structure, (labels, numbers) in enumerate(zip(labels_list, numbers_list, strict=True)):
        rows, cols, vals = [], [], []
        for index, (atom, l, n, m) in enumerate(labels):
            a = int(numbers[atom])
            if a not in model.species:
                raise InvalidParameterError(
                    "structures", f"only species the model was trained on {model.species}", a
                )
            offset, width = layout[(a, int(l), int(n))]
            psi = psi_cache[(a, int(l))][row_of[a][(structure, int(atom))], int(m) + int(l)]
            rows.append(np.full(width, index))
            cols.append(np.arange(offset, offset + width))
            vals.append(psi)
        matrices.append(
            scipy.sparse.csr_matrix(
                (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                shape=(len(labels), total),
            )
        )
    return matrices


def baseline_vector(model: DensityModel, labels: np.ndarray, numbers: np.ndarray) -> np.ndarray:
    """c̄ for one structure: the species' mean λ = 0 coefficient per radial channel, 0 for λ > 0."""
    return np.array(
        [model.baseline.get((int(numbers[atom]), int(n)), 0.0) if l == 0 else 0.0 for atom, l, n, _ in labels]
    )


def fit(
    model: DensityModel,
    designs: list,
    targets: list,
    overlaps: list,
    labels_list: list,
    numbers_list: list,
    settings: RegressionSettings,
) -> dict:
    """Solve for the weights in place; returns timing and solver diagnostics."""
    started = time.perf_counter()
    totals: dict = {}
    for labels, numbers, target in zip(labels_list, numbers_list, targets, strict=True):
        for (atom, l, n, _), value in zip(labels, target, strict=True):
            if l == 0:
                key = (int(numbers[atom]), int(n))
                total, count = totals.get(key, (0.0, 0))
                totals[key] = (total + value, count + 1)
    model.baseline = {key: total / count for key, (total, count) in totals.items()}
    residuals = [
        target - baseline_vector(model, labels, numbers)
        for target, labels, numbers in zip(targets, labels_list, numbers_list, strict=True)
    ]
    size = designs[0].shape[1]
    rhs = np.zeros(size)
    for design, overlap, residual in zip(designs, overlaps, residuals, strict=True):
        rhs += design.T @ (overlap @ residual)
    eta = settings.regularisation
    solver = settings.solver
    if solver == "auto":
        solver = "direct" if size <= DIRECT_MAX_PARAMETERS else "cg"
    if solver == "direct":
        matrix = eta * np.eye(size)
        for design, overlap in zip(designs, overlaps, strict=True):
            matrix += design.T @ (overlap @ design.toarray())  # sparse (P, naux) @ dense (naux, P)
        weights = scipy.linalg.cho_solve(scipy.linalg.cho_factor(matrix), rhs)
        info = {"solver": "direct", "iterations": 1}
    else:
        preconditioner = _block_jacobi(designs, overlaps, _weight_layout(model), eta)
        # all molecules at once: one sparse Φ (Σ naux, P) and a block-diagonal sparse S
        stacked = scipy.sparse.vstack(designs).tocsr()
        metric = scipy.sparse.block_diag(overlaps, format="csr")
        stacked_t = stacked.T.tocsr()

        def apply(vector):
            return eta * vector + stacked_t @ (metric @ (stacked @ vector))

        weights, info = conjugate_gradients(
            apply, rhs, preconditioner, settings.cg_tolerance, settings.cg_max_iterations
        )
        info["solver"] = "cg"
    layout = _weight_layout(model)
    model.weights = {key: weights[offset : offset + width] for key, (offset, width) in layout.items()}
    info["seconds"] = time.perf_counter() - started
    info["parameters"] = size
    return info


def _block_jacobi(designs: list, overlaps: list, layout: dict, eta: float):
    """M⁻¹ for CG: the inverse of each (species, λ, n) diagonal block of the normal matrix,
    Σ_mol Φ_bᵀ S Φ_b + η, applied block by block (blocks are at most M(2λ+1) wide)."""
    factors = []
    for offset, width in layout.values():
        block = eta * np.eye(width)
        for design, overlap in zip(designs, overlaps, strict=True):
            columns = design[:, offset : offset + width]
            rows = np.unique(columns.nonzero()[0])
            if rows.size:
                dense = columns[rows].toarray()
                block += dense.T @ overlap[np.ix_(rows, rows)] @ dense
        factors.append((offset, width, scipy.linalg.cho_factor(block)))

    def apply(vector):
        result = np.empty_like(vector)
        for offset, width, factor in factors:
            result[offset : offset + width] = scipy.linalg.cho_solve(factor, vector[offset : offset + width])
        return result

    return apply


def conjugate_gradients(apply, rhs: np.ndarray, preconditioner, tolerance: float, max_iterations: int):
    """Preconditioned CG for A x = b (A symmetric positive definite, given as ``apply``; the
    ``preconditioner`` applies M⁻¹); stops at ‖r‖ ≤ tolerance·‖b‖. Returns x and
    {iterations, relative_residual}."""
    x = np.zeros_like(rhs)
    residual = rhs.copy()
    z = preconditioner(residual)
    direction = z.copy()
    rz = residual @ z
    norm = np.linalg.norm(rhs)
    iteration = 0
    while iteration < max_iterations:
        iteration += 1
        product = apply(direction)
        step = rz / (direction @ product)
        x += step * direction
        residual -= step * product
        if np.linalg.norm(residual) <= tolerance * norm:
            break
        z = preconditioner(residual)
        rz_new = residual @ z
        direction = z + (rz_new / rz) * direction
        rz = rz_new
    return x, {"iterations": iteration, "relative_residual": float(np.linalg.norm(residual) / norm)}


def flat_weights(model: DensityModel) -> np.ndarray:
    layout = _weight_layout(model)
    return np.concatenate([model.weights[key] for key in layout])


def predict_coefficients(model: DensityModel, designs: list, labels_list: list, numbers_list: list) -> list:
    """Predicted coefficients (featomic order) per structure."""
    weights = flat_weights(model)
    return [
        design @ weights + baseline_vector(model, labels, numbers)
        for design, labels, numbers in zip(designs, labels_list, numbers_list, strict=True)
    ]


def rmse_percent(predicted: list, reference: list, overlaps: list, baselines: list) -> float:
    """SALTED's error: 100·√(Σ δcᵀSδc / Σ (c − c̄)ᵀS(c − c̄))."""
    error = sum((p - r) @ s @ (p - r) for p, r, s in zip(predicted, reference, overlaps, strict=True))
    spread = sum((r - b) @ s @ (r - b) for r, b, s in zip(reference, baselines, overlaps, strict=True))
    return float(100.0 * np.sqrt(error / spread))
