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
training coefficient of each radial channel). η is chosen by held-out validation unless given
(see :class:`RegressionSettings`). Two solvers, which agree (tested):

- ``direct``: the normal equations (Σ ΦᵀSΦ + η) b = Σ ΦᵀS(c − c̄), Cholesky;
- ``cg``: matrix-free conjugate gradients (:mod:`densitylab.density.cg`) preconditioned by the
  exact one-centre (same-atom) block of the normal matrix; A·v is applied molecule
  by molecule through the sparse Φ, so no P × P matrix is ever formed. It stops when the
  relative residual falls below ``cg_tolerance`` (default 1e-10: measured, SALTED's 1e-5 gradient
  tolerance stops well before the minimum; see docs/density.md).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import scipy.linalg
import scipy.sparse

from densitylab.checkpoint import fingerprint
from densitylab.density.cg import CGProblem, FitCheckpoint, metric_times, one_centre_overlaps, pack_metric
from densitylab.density.design import DesignBlock, FactoredDesign, as_sparse
from densitylab.density.features import Features, farthest_point_sampling
from densitylab.errors import require
from densitylab.linalg import cho_factor

SOLVERS = ("auto", "cg", "direct")
METRIC_PRECISIONS = {"double": np.float64, "single": np.float32}
DIRECT_MAX_PARAMETERS = 20_000
DIRECT_MAX_FLOPS = 2e12
REGULARISATION_GRID = (1e-10, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
SCAN_PATIENCE = 2  # the η scan stops after the held-out error rose this many times in a row
SCAN_CG_TOLERANCE = 1e-6  # enough to rank η; the final fit uses cg_tolerance


@dataclass(frozen=True)
class RegressionSettings:
    """Sparse-GPR hyper-parameters.

    Attributes:
        sparse_environments: M, environments per species (fewer if the training set has fewer).
        zeta: kernel exponent ζ ≥ 1.
        regularisation: η (in the metric's units), or ``"auto"`` (default): chosen from
            ``REGULARISATION_GRID`` by the held-out % RMSE of a ``validation_fraction`` of the
            training molecules. The best η differs by 10⁵ between data sets (measured: 1e-8 on
            water monomers, 1e-3 on QM9 molecules; BENCHMARKS.md), so no fixed default serves.
        validation_fraction: share of training molecules held out by ``"auto"``.
        eigen_cutoff: relative eigenvalue cutoff of K_MM.
        solver: ``auto`` (default: ``direct`` when the normal matrix has at most 20,000 rows and
            costs at most 2·10¹² multiply–adds to assemble, ``cg`` otherwise), ``cg`` or ``direct``.
        cg_tolerance, cg_max_iterations: CG stopping rule.
        metric_precision: ``"double"`` (default) or ``"single"``: how CG holds the training
            molecules' metrics. Single takes half the memory (a QM9 molecule's 15 MB → 7.5 MB;
            1,000 molecules' metrics and Φ need 24 GB in double, 16 in single), each metric
            rounded to float32 and applied in double, at a little more time per CG iteration
            (1.1–1.5 against 0.7–1.4 ms per QM9 metric swept from memory; BENCHMARKS.md).
    """

    sparse_environments: int = 100
    zeta: int = 2
    regularisation: float | str = "auto"
    validation_fraction: float = 0.2
    eigen_cutoff: float = 1e-10
    solver: str = "auto"
    cg_tolerance: float = 1e-10
    cg_max_iterations: int = 20_000
    metric_precision: str = "double"

    def __post_init__(self) -> None:
        require(
            self.sparse_environments >= 1,
            "sparse_environments",
            "a positive integer",
            self.sparse_environments,
        )
        require(self.zeta >= 1, "zeta", "an integer ≥ 1", self.zeta)
        numeric = isinstance(self.regularisation, int | float) and not isinstance(self.regularisation, bool)
        require(
            self.regularisation == "auto" or (numeric and self.regularisation > 0),
            "regularisation",
            "a positive number or 'auto'",
            self.regularisation,
        )
        require(
            0 < self.validation_fraction < 1,
            "validation_fraction",
            "a fraction in (0, 1)",
            self.validation_fraction,
        )
        require(self.solver in SOLVERS, "solver", "auto, cg or direct", self.solver)
        require(
            self.metric_precision in METRIC_PRECISIONS,
            "metric_precision",
            "'double' or 'single'",
            self.metric_precision,
        )


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
        regularisation: the η the weights were fitted with.
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
    regularisation: float | None = None


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


def check_species(model: DensityModel, numbers_list: list) -> None:
    """Refuse structures with an element the model was not trained on, naming them."""
    unknown = sorted({int(z) for numbers in numbers_list for z in numbers} - set(model.species))
    require(not unknown, "structures", f"only species the model was trained on {model.species}", unknown)


def design_matrices(model: DensityModel, features: Features, labels_list: list, numbers_list: list) -> list:
    """Per structure, Φ (naux, P) mapping weights to coefficients (featomic order), factored
    (:class:`~densitylab.density.design.FactoredDesign`: each Ψ row once, not once per radial
    channel)."""
    layout = _weight_layout(model)
    total = sum(width for _, width in layout.values())
    row_of = {a: {(int(s), int(i)): r for r, (s, i) in enumerate(features.atoms[a])} for a in features.atoms}
    psi_cache: dict = {}
    for a, l in model.channels:
        if a in features.atoms:  # species of the model absent from these structures have no rows
            psi_cache[(a, l)] = _psi(model, a, l, features, np.arange(len(features.atoms[a])))
    check_species(model, numbers_list)
    matrices = []
    for structure, (labels, numbers) in enumerate(zip(labels_list, numbers_list, strict=True)):
        species = np.asarray(numbers)[labels[:, 0]]
        blocks = []
        for a, l in sorted({(int(a), int(l)) for a, l in zip(species, labels[:, 1], strict=True)}):
            rows = np.flatnonzero((species == a) & (labels[:, 1] == l))
            present = np.unique(labels[rows, 0])  # this structure's atoms of species a, in order
            atoms = [row_of[a][(structure, int(atom))] for atom in present]
            blocks.append(
                _design_block(model, layout, (a, l), labels, rows, psi_cache.get((a, l)), present, atoms)
            )
        matrices.append(FactoredDesign(blocks, (len(labels), total)))
    return matrices


def _design_block(
    model: DensityModel, layout: dict, key: tuple, labels, rows, psi, present, atoms
) -> DesignBlock:
    """The (species, λ) = ``key`` block of one structure's Φ: coefficient ``rows`` of its
    (atom, λ, n, m) ``labels``, whose atoms are ``present`` (sorted, unique), fed by rows
    ``atoms`` of ``psi`` (every atom of the species in the featurised set, 2λ+1, D), one per
    present atom, in order."""
    a, l = key
    channels = model.channels.get(key, 0)
    wanted = f"auxiliary functions the model has ({channels} radial channels of λ = {l} on Z = {a})"
    highest = int(labels[rows, 2].max())
    require(highest < channels, "structures", wanted, highest + 1)
    position = np.searchsorted(present, labels[rows, 0])
    picked = psi[atoms]
    return DesignBlock(
        offset=layout[(a, l, 0)][0],
        channels=channels,
        psi=picked.reshape(-1, picked.shape[-1]),
        rows=rows,
        kernel_rows=position * (2 * l + 1) + labels[rows, 3] + l,
        channel=labels[rows, 2].astype(np.int64),
    )


def baseline_vector(model: DensityModel, labels: np.ndarray, numbers: np.ndarray) -> np.ndarray:
    """c̄ for one structure: the species' mean λ = 0 coefficient per radial channel, 0 for λ > 0."""
    return np.array(
        [model.baseline.get((int(numbers[atom]), int(n)), 0.0) if l == 0 else 0.0 for atom, l, n, _ in labels]
    )


def _baseline(targets: list, labels_list: list, numbers_list: list) -> dict:
    """{(species, n): mean λ = 0 coefficient of radial channel n} over the given molecules."""
    totals: dict = {}
    for labels, numbers, target in zip(labels_list, numbers_list, targets, strict=True):
        for (atom, l, n, _), value in zip(labels, target, strict=True):
            if l == 0:
                key = (int(numbers[atom]), int(n))
                total, count = totals.get(key, (0.0, 0))
                totals[key] = (total + value, count + 1)
    return {key: total / count for key, (total, count) in totals.items()}


def _residuals(baseline: dict, targets: list, labels_list: list, numbers_list: list) -> list:
    """c − c̄ per molecule."""
    holder = DensityModel([], 1, {}, {}, {}, {}, baseline=baseline)
    return [
        target - baseline_vector(holder, labels, numbers)
        for target, labels, numbers in zip(targets, labels_list, numbers_list, strict=True)
    ]


def _rhs(designs: list, overlaps: list, residuals: list, size: int) -> np.ndarray:
    """Σ Φᵀ S r."""
    rhs = np.zeros(size)
    for design, overlap, residual in zip(designs, overlaps, residuals, strict=True):
        rhs += design.T @ metric_times(np.asarray(overlap), residual)
    return rhs


def _normal_system(designs: list, overlaps, residuals, size: int, layout: dict | None = None):
    """(Σ ΦᵀSΦ, Σ ΦᵀSr, Σ rᵀSr) in one pass over the metrics (each S is touched once: they may
    be recomputed on access); the last two are None without ``residuals``.

    Σ ΦᵀSΦ goes molecule by molecule through the structure of Φ: the rows that touch weight
    block (species, λ, n) hold the Ψ of that species' atoms (a dense (atoms·(2λ+1)) × D stack).
    Q = SΦ is formed one block at a time (naux × D products), then each block row of the result
    is that stack's transpose times Q's matching rows: dense BLAS products costing
    naux·nnz(Φ) + nnz(Φ)·P multiply–adds, against naux²·P + naux·P² for forming the whitened
    LᵀΦ (S = LLᵀ) and its Gram matrix, which this replaces (60× fewer on a QM9 molecule in the
    even-tempered basis). ``layout``: {(species, λ, n): (offset, D)}; without it all columns are
    one block."""
    blocks = list(layout.values()) if layout is not None else [(0, size)]
    matrix = np.zeros((size, size))
    rhs, spread = (np.zeros(size), 0.0) if residuals is not None else (None, None)
    for index, (factored, overlap) in enumerate(zip(designs, overlaps, strict=True)):
        design = as_sparse(factored)  # this molecule's sparse Φ, while its block rows are read
        pieces = []
        for offset, width in blocks:
            columns = design[:, offset : offset + width]
            rows = np.unique(columns.nonzero()[0])
            if rows.size:
                pieces.append((offset, width, rows, columns[rows].toarray()))
        product = np.zeros((design.shape[0], size))  # Q = S Φ
        for offset, width, rows, stack in pieces:
            product[:, offset : offset + width] = overlap[:, rows] @ stack
        for offset, width, rows, stack in pieces:  # the upper triangle only: A is symmetric
            matrix[offset : offset + width, offset:] += stack.T @ product[rows, offset:]
        if residuals is not None:
            weighted = overlap @ residuals[index]
            rhs += design.T @ weighted
            spread += float(residuals[index] @ weighted)
    for offset, width in blocks:  # mirror the upper block rows into the lower triangle
        matrix[offset + width :, offset : offset + width] = matrix[
            offset : offset + width, offset + width :
        ].T
    return matrix, rhs, spread


def _assembly_flops(designs: list) -> float:
    """Multiply–adds of Σ ΦᵀSΦ in :func:`_normal_system`: Σ (naux + P) · nnz(Φ)."""
    return float(sum((design.shape[0] + design.shape[1]) * design.nnz for design in designs))


def _validation_split(count: int, fraction: float) -> tuple[list, list]:
    """Every k-th molecule (k = round(1/fraction), at least 2) validates, the rest fit."""
    step = max(2, round(1.0 / fraction))
    validation = list(range(step - 1, count, step)) or [count - 1]
    fitting = [i for i in range(count) if i not in set(validation)]
    return fitting, validation


def _solve_direct(matrix: np.ndarray, rhs: np.ndarray, eta: float, work=None) -> np.ndarray:
    """(A + η) b = rhs by Cholesky; the factor overwrites ``work`` (a P × P buffer reused across
    calls: fresh memory is slow to touch) or a new copy of A."""
    work = np.array(matrix) if work is None else work
    if work is not matrix:
        np.copyto(work, matrix)
    work.flat[:: len(rhs) + 1] += eta
    return scipy.linalg.cho_solve(cho_factor(work, overwrite_a=True), rhs, check_finite=False)


def _metric_error(designs: list, overlaps: list, residuals: list, weights: np.ndarray) -> float:
    """Σ (Φb − r)ᵀ S (Φb − r)."""
    total = 0.0
    for design, overlap, residual in zip(designs, overlaps, residuals, strict=True):
        delta = design @ weights - residual
        total += float(delta @ metric_times(overlap, delta))
    return total


class _Picked:
    """items[rows[k]] for k = 0 … len(rows) − 1, read on access (a list of indices into a
    sequence whose items may be computed when read, such as a reference set's overlaps)."""

    def __init__(self, items, rows: list):
        self.items, self.rows = items, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int):
        return self.items[self.rows[index]]

    def __iter__(self):
        return (self.items[row] for row in self.rows)


def subset(items, rows: list):
    """``items`` at ``rows``: a list for a list, else a view read on access."""
    return [items[i] for i in rows] if isinstance(items, list) else _Picked(items, rows)


def _scan_residuals(targets: list, labels_list: list, numbers_list: list, fitting: list) -> list:
    """c − c̄ per molecule with the baseline c̄ of the ``fitting`` molecules alone."""
    baseline = _baseline(
        subset(targets, fitting), subset(labels_list, fitting), subset(numbers_list, fitting)
    )
    return _residuals(baseline, targets, labels_list, numbers_list)


def _scan_regularisation(solve, held_out_error, spread: float):
    """Validation % RMSE, 100·√(held_out_error(b)/spread), for η of ``REGULARISATION_GRID``,
    largest first, each ``solve(η, start)`` warm-started from the previous solution, until the
    error has risen ``SCAN_PATIENCE`` times in a row. ``solve`` returns (weights, iterations).
    Returns (best η, scan, its weights).

    Each candidate is solved to its residual tolerance. Stopping a solve once its held-out
    error stops moving was tried and rejected (BENCHMARKS.md, "The η scan's stopping rule"):
    η acts on the small-eigenvalue directions CG resolves last, so the error of a warm-started
    solve sits still for dozens of iterations before η has taken effect, and at 800 QM9
    molecules the scan picked η = 1e-6 from solves stopped after 30 iterations."""
    scan, best, weights, rises = [], (np.inf, None, None), None, 0
    for eta in sorted(REGULARISATION_GRID, reverse=True):
        weights, iterations = solve(eta, weights)
        percent = float(100.0 * np.sqrt(max(held_out_error(weights), 0.0) / spread))
        scan.append({"regularisation": eta, "validation_rmse_percent": percent, "iterations": iterations})
        rose = len(scan) > 1 and scan[-2]["validation_rmse_percent"] < percent
        rises = rises + 1 if rose else 0
        if percent < best[0]:
            best = (percent, eta, weights.copy())
        if rises == SCAN_PATIENCE:  # past the minimum: smaller η only costs (CG) iterations
            break
    return best[1], scan, best[2]


def fit(
    model: DensityModel,
    designs: list,
    targets: list,
    overlaps: list,
    labels_list: list,
    numbers_list: list,
    settings: RegressionSettings,
    checkpoint: str | Path | None = None,
) -> dict:
    """Solve for the weights in place; returns timing and solver diagnostics.

    ``checkpoint``: a .npz path that makes a CG fit resumable (:class:`~densitylab.density.cg.FitCheckpoint`:
    every finished solve of the η scan and the final fit, and the solve in progress every two
    minutes); a resume under other settings or other training data is refused.

    With ``regularisation="auto"`` η is chosen first: every k-th training molecule
    (``validation_fraction``) is held out, the weights are fitted on the others for every η of
    ``REGULARISATION_GRID`` (with their own baseline), and the η with the lowest held-out
    % RMSE is used for the final fit on all molecules. The scan is returned in
    ``info["regularisation_scan"]``, the η used in ``info["regularisation"]``.
    """
    started = time.perf_counter()
    size = designs[0].shape[1]
    layout = _weight_layout(model)
    solver = settings.solver
    if solver == "auto":
        small = size <= DIRECT_MAX_PARAMETERS and _assembly_flops(designs) <= DIRECT_MAX_FLOPS
        solver = "direct" if small else "cg"
    model.baseline = _baseline(targets, labels_list, numbers_list)
    residuals = _residuals(model.baseline, targets, labels_list, numbers_list)
    info: dict = {"solver": solver}
    eta, start = settings.regularisation, None
    split = None
    if eta == "auto":
        require(len(designs) >= 2, "regularisation", "a number (auto needs ≥ 2 training molecules)", eta)
        split = _validation_split(len(designs), settings.validation_fraction)
        scan_residuals = _scan_residuals(targets, labels_list, numbers_list, split[0])
        fit_part, held_part = (
            (subset(designs, rows), subset(overlaps, rows), subset(scan_residuals, rows)) for rows in split
        )
    if solver == "direct":
        if split is None:
            matrix, rhs, _ = _normal_system(designs, overlaps, residuals, size, layout)
        else:
            # one pass over each part's metrics; the held-out error of weights b is then the
            # quadratic bᵀA_v b − 2bᵀy_v + c_v, with no further pass over the metrics per η
            fitting, fit_rhs, _ = _normal_system(*fit_part, size, layout)
            held, held_rhs, spread = _normal_system(*held_part, size, layout)
            work = np.empty_like(fitting)
            eta, info["regularisation_scan"], _ = _scan_regularisation(
                lambda value, _: (_solve_direct(fitting, fit_rhs, value, work), 1),
                lambda b: float(b @ held @ b - 2.0 * b @ held_rhs + spread),
                spread,
            )
            matrix = fitting
            matrix += held
            del held, work
            rhs = _rhs(designs, overlaps, residuals, size)
        weights = _solve_direct(matrix, rhs, eta, work=matrix)  # A is not needed afterwards
        info["iterations"] = 1
    else:
        # every metric is read (or recomputed) once and held packed, shared by the η scan's
        # problem and the final one: half the memory of one dense copy of them all
        precision = METRIC_PRECISIONS[settings.metric_precision]
        metrics = [pack_metric(overlap, precision) for overlap in overlaps]
        one_centre = one_centre_overlaps(overlaps, labels_list, numbers_list)
        rhs = _rhs(designs, metrics, residuals, size)
        # the training data enter by the right-hand side, rounded so that its last bits do not count
        job = {"regression": asdict(settings), "parameters": size, "rhs": fingerprint(rhs.astype(np.float32))}
        saved = FitCheckpoint(checkpoint, job)
        if split is not None:
            fit_designs, _, fit_residuals = fit_part
            fit_metrics, held_metrics = (subset(metrics, rows) for rows in split)
            problem = CGProblem(fit_designs, fit_metrics, layout, one_centre)
            fit_rhs = _rhs(fit_designs, fit_metrics, fit_residuals, size)
            held_out = (list(held_part[0]), held_metrics, list(held_part[2]))
            spread = sum(
                float(r @ metric_times(m, r)) for m, r in zip(held_metrics, held_out[2], strict=True)
            )
            loose = (max(settings.cg_tolerance, SCAN_CG_TOLERANCE), settings.cg_max_iterations)

            def scan_solve(value, guess):
                solve = partial(problem.solve, fit_rhs, value, *loose)
                weights, solved = saved.solve(f"scan-{value:.0e}", solve, guess)
                return weights, solved["iterations"]

            eta, info["regularisation_scan"], start = _scan_regularisation(
                scan_solve, lambda b: _metric_error(*held_out, b), spread
            )
            del problem
        problem = CGProblem(designs, metrics, layout, one_centre)
        final = partial(problem.solve, rhs, eta, settings.cg_tolerance, settings.cg_max_iterations)
        weights, cg_info = saved.solve(f"final-{eta:.0e}", final, start)
        info.update({key: value for key, value in cg_info.items() if key != "reference_norm"})
    model.weights = {key: weights[offset : offset + width] for key, (offset, width) in layout.items()}
    model.regularisation = float(eta)
    info.update(regularisation=float(eta), seconds=time.perf_counter() - started, parameters=size)
    return info


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
    error = spread = 0.0
    for p, r, b, s in zip(predicted, reference, baselines, overlaps, strict=True):  # each S read once
        error += (p - r) @ s @ (p - r)
        spread += (r - b) @ s @ (r - b)
    return float(100.0 * np.sqrt(error / spread))
