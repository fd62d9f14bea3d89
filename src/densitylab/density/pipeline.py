"""Train, save, load, predict and evaluate: the density-learning workflow on top of
:mod:`reference`, :mod:`features` and :mod:`regression`.

A trained model is an artefact folder (kind ``density-model``): ``manifest.json`` (feature,
regression and reference settings, species, channels, λ_max, the training indices) and
``arrays.h5`` (sparse environments, projectors, weights, selected feature columns). Folders
written before the manifest (``config.json`` and ``arrays.npz``) still load.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.linalg

from densitylab.artefacts import ARRAYS, artefact_folder, read_manifest, write_manifest
from densitylab.data import read_h5, write_h5
from densitylab.density import regression
from densitylab.density.basis import overlap_matrix
from densitylab.density.features import Features, FeatureSettings, choose_columns, selected_lambda_soap
from densitylab.density.reference import (
    ReferenceSet,
    ReferenceSettings,
    auxiliary_integrals,
    auxiliary_molecule,
    build_molecule,
    check_periodicity,
    featomic_order,
    function_labels,
    is_periodic,
)
from densitylab.errors import require
from densitylab.linalg import cho_factor


@dataclass(eq=False)
class TrainedModel:
    """A density model with the settings that produced it."""

    model: regression.DensityModel
    features: FeatureSettings
    regression_settings: regression.RegressionSettings
    reference: ReferenceSettings
    lambda_max: int
    training: list

    def featurise(self, frames: list) -> Features:
        return selected_lambda_soap(
            frames, self.lambda_max, self.model.species, self.features, self.model.columns
        )


@dataclass(frozen=True)
class TrainingProblem:
    """What a fit needs of its training structures: the model with its sparse environments and
    projectors (weights not yet fitted), each structure's Φ and labels, the λ of the features,
    and the seconds the features took."""

    model: regression.DensityModel
    designs: list
    labels: list
    numbers: list
    lambda_max: int
    features_seconds: float


def training_problem(
    reference: ReferenceSet,
    indices: list[int],
    features: FeatureSettings | None = None,
    settings: regression.RegressionSettings | None = None,
) -> TrainingProblem:
    """Features, sparse environments and design matrices of ``reference`` structures
    ``indices`` (:func:`train` fits them; the benchmarks time their products)."""
    features = features or FeatureSettings()
    settings = settings or regression.RegressionSettings()
    require(len(indices) >= 1, "train", "at least one training structure", len(indices))
    require(max(indices) < len(reference), "train", f"at most {len(reference)} structures", max(indices) + 1)
    started = time.perf_counter()
    frames = [reference.atoms(i) for i in indices]
    labels = [reference.labels[i] for i in indices]
    numbers = [reference.numbers[i] for i in indices]
    lambda_max = max(int(label[:, 1].max()) for label in labels)
    species = sorted({int(z) for n in numbers for z in n})
    columns = choose_columns(frames, lambda_max, species, features)
    selected = selected_lambda_soap(frames, lambda_max, species, features, columns)
    featurised = time.perf_counter()
    model = regression.build_model(selected, labels, numbers, settings)
    model.columns = columns
    designs = regression.design_matrices(model, selected, labels, numbers)
    return TrainingProblem(model, designs, labels, numbers, lambda_max, featurised - started)


def train(
    reference: ReferenceSet,
    indices: list[int],
    features: FeatureSettings | None = None,
    settings: regression.RegressionSettings | None = None,
    checkpoint: str | Path | None = None,
) -> tuple[TrainedModel, dict]:
    """Fit a model on ``reference`` structures ``indices``; returns it and timings.
    ``checkpoint``: a .npz path that makes a CG fit resumable (:func:`regression.fit`)."""
    features = features or FeatureSettings()
    settings = settings or regression.RegressionSettings()
    started = time.perf_counter()
    problem = training_problem(reference, indices, features, settings)
    info = regression.fit(
        problem.model,
        problem.designs,
        [reference.coefficients[i] for i in indices],
        regression.subset(reference.overlap, indices),
        problem.labels,
        problem.numbers,
        settings,
        checkpoint,
    )
    info.update(features_seconds=problem.features_seconds, total_seconds=time.perf_counter() - started)
    trained = TrainedModel(
        problem.model, features, settings, reference.settings, problem.lambda_max, list(indices)
    )
    return trained, info


def _auxiliary_basis(settings, frame) -> tuple:
    """(auxiliary molecule or cell, featomic order, electrons N) of one structure; for a cell N
    counts the valence electrons."""
    if is_periodic(settings):
        from densitylab.density.periodic import auxiliary_cell, build_cell

        cell = build_cell(frame.numbers, frame.positions, frame.cell.array, settings)
        auxiliary = auxiliary_cell(cell, settings)
    else:
        cell = build_molecule(np.asarray(frame.numbers), frame.positions, settings.basis)
        auxiliary = auxiliary_molecule(cell, settings)
    return auxiliary, featomic_order(function_labels(auxiliary)), float(cell.nelectron)


CHARGE_RIDGE = 1e-6  # relative shift of the overlap in the charge correction (see predict)


def predict(trained: TrainedModel, frames: list, conserve_charge: bool = True) -> tuple[list, list]:
    """Predicted coefficients (featomic order) and their (atom, l, n, m) labels per structure.

    With ``conserve_charge`` each prediction c is corrected by the smallest change in the
    overlap metric that gives exactly the neutral molecule's electron count N (a cell's valence
    electrons, in the lattice-summed metric):
    c ← c + (N − qᵀc) S⁻¹q / (qᵀS⁻¹q), q_P = ∫φ_P. A model far from its training data can miss
    N by electrons, which the one-step energy punishes by hartrees; the correction costs nothing
    where the prediction is already right (water: |ΔN| < 0.006). S is shifted by
    ``CHARGE_RIDGE`` × its mean diagonal: the lattice-summed overlap of the β = 1.3 cell basis
    has condition number 6e12, and S⁻¹q alone moved coefficients by up to 5.9 (of 7) along
    directions that carry almost no density, so rounding at 1e-14 in S broke the prediction's
    translation invariance at 2e-3; shifted, the coefficients move by at most 0.05, invariance
    holds to 1e-10 and the correction's norm in the metric grows by 0.4 %.
    """
    require(len(frames) > 0, "structures", "at least one structure", 0)
    check_periodicity(frames, is_periodic(trained.reference))
    numbers = [np.asarray(frame.numbers) for frame in frames]
    regression.check_species(trained.model, numbers)
    labels, auxiliaries = [], []
    for frame in frames:
        auxiliary = _auxiliary_basis(trained.reference, frame)
        labels.append(function_labels(auxiliary[0])[auxiliary[1]])
        auxiliaries.append(auxiliary)
    features = trained.featurise(frames)
    designs = regression.design_matrices(trained.model, features, labels, numbers)
    predicted = regression.predict_coefficients(trained.model, designs, labels, numbers)
    if conserve_charge:
        for index, (auxiliary, order, electrons) in enumerate(auxiliaries):
            overlap = overlap_matrix(auxiliary)  # PySCF's order: no reordered copy
            overlap[np.diag_indices_from(overlap)] += CHARGE_RIDGE * np.mean(np.diag(overlap))
            factor = cho_factor(overlap, overwrite_a=True)
            integrals = auxiliary_integrals(auxiliary)
            direction = scipy.linalg.cho_solve(factor, integrals)[order]
            integrals = integrals[order]
            del overlap, factor
            missing = electrons - predicted[index] @ integrals
            predicted[index] = predicted[index] + missing * direction / (integrals @ direction)
    return predicted, labels


def evaluate(
    trained: TrainedModel,
    reference: ReferenceSet,
    indices: list[int],
    energies: bool = True,
    workers: int = 1,
    scheduler: str | None = None,
) -> tuple[dict, list]:
    """Errors on ``reference`` structures ``indices``: % RMSE in the metric (SALTED's
    normalisation), grid NMAE of the prediction and of the reference fit (the floor), electron
    counts, and one-step energies of the prediction and of the reference fit (the energy floor)
    against the reference SCF. The grid and energy work, about 15 s per QM9 molecule in the
    even-tempered basis (one pass over the grid for both densities), runs one task per structure
    through :func:`densitylab.parallel.run_tasks` (``workers`` local processes or a Dask
    ``scheduler``). Returns the summary and the predicted coefficients (for figures, so nothing
    is predicted twice)."""
    return evaluate_models([trained], reference, indices, energies, workers, scheduler)[0]


def evaluate_models(
    models: list,
    reference: ReferenceSet,
    indices: list[int],
    energies: bool = True,
    workers: int = 1,
    scheduler: str | None = None,
) -> list[tuple[dict, list]]:
    """:func:`evaluate` for several models on the same structures (the points of a learning
    curve), in one pass over each structure's grid: the basis values there are most of the
    cost, and each further model adds about a tenth of it. Returns (summary, predicted) per
    model, each summary as :func:`evaluate` gives it alone."""
    from densitylab.parallel import check_workers, run_tasks

    check_workers(workers)  # before the prediction, not after it
    require(len(models) >= 1, "models", "at least one trained model", len(models))
    periodic = reference.lattices is not None
    frames = [reference.atoms(i) for i in indices]
    if periodic:  # before any prediction
        from densitylab.density.periodic import check_evaluation_memory

        for frame in frames:
            check_evaluation_memory(frame, reference.settings, len(models) + 1)
    fitted = [reference.coefficients[i] for i in indices]
    summaries, predictions = [], []
    for trained in models:
        started = time.perf_counter()
        predicted, _ = predict(trained, frames)
        baselines = [
            regression.baseline_vector(trained.model, reference.labels[i], reference.numbers[i])
            for i in indices
        ]
        overlaps = regression.subset(reference.overlap, indices)
        summaries.append(
            {
                "structures": len(indices),
                "rmse_percent": regression.rmse_percent(predicted, fitted, overlaps, baselines),
                "predict_seconds": time.perf_counter() - started,
            }
        )
        predictions.append(predicted)
    tasks = [
        (
            position,
            (
                reference.settings, reference.numbers[index], reference.positions[index],
                [predicted[position] for predicted in predictions], fitted[position],
                reference.density_matrices[index], reference.energy[index],
                reference.energy_components[index], energies,
                reference.lattices[index] if periodic else None,
            ),
        )
        for position, index in enumerate(indices)
    ]  # fmt: skip
    results: dict = {}
    run_tasks(_evaluate_structure, tasks, results.__setitem__, workers=workers, scheduler=scheduler)
    rows = [results[position] for position in range(len(indices))]
    for number, (summary, predicted) in enumerate(zip(summaries, predictions, strict=True)):
        counts = [c @ reference.integrals[i] for c, i in zip(predicted, indices, strict=True)]
        summary.update(
            grid_nmae_percent=float(np.mean([row["nmae"][number] for row in rows])),
            grid_nmae_floor_percent=float(np.mean([row["floor"] for row in rows])),
            electron_count_error_max=float(
                max(abs(c - row["electrons"]) for c, row in zip(counts, rows, strict=True))
            ),
        )
        if energies:
            errors = {
                key: [row["errors"][key][number] for row in rows] for key in ("energy", "hartree", "xc")
            }
            errors["floor"] = [row["errors"]["floor"] for row in rows]
            summary.update(_energy_summary(errors))
    return list(zip(summaries, predictions, strict=True))


def _evaluate_structure(
    settings: ReferenceSettings, numbers, positions, predictions: list, fitted, density_matrix,
    scf: float, components, energies: bool, lattice=None,
) -> dict:  # fmt: skip
    """Grid NMAE of each prediction and of the fit, energy errors (hartree, atoms) and the
    electrons the density holds (a cell's valence electrons) of one structure, in one pass
    over its grid (a cell's uniform grid for cells)."""
    from densitylab.density.energies import grid_nmae_percents, one_step_energies

    if lattice is not None:
        return _evaluate_cell(
            settings, numbers, positions, lattice, predictions, fitted, density_matrix, energies
        )

    mol = build_molecule(numbers, positions, settings.basis)
    auxmol = auxiliary_molecule(mol, settings)
    level = settings.grid_level
    if not energies:
        *nmae, floor = grid_nmae_percents(mol, auxmol, [*predictions, fitted], density_matrix, level)
        return {"nmae": nmae, "floor": floor, "errors": {}, "electrons": mol.nelectron}
    *results, fit = one_step_energies(mol, auxmol, [*predictions, fitted], settings.xc, level, density_matrix)
    _, coulomb, xc, _ = components
    errors = {
        "energy": [(r["energy"] - scf, mol.natm) for r in results],
        "hartree": [(r["hartree"] - coulomb, mol.natm) for r in results],
        "xc": [(r["xc"] - xc, mol.natm) for r in results],
        "floor": (fit["energy"] - scf, mol.natm),
    }
    nmae = [r["grid_nmae_percent"] for r in results]
    return {"nmae": nmae, "floor": fit["grid_nmae_percent"], "errors": errors, "electrons": mol.nelectron}


def _evaluate_cell(settings, numbers, positions, lattice, predictions, fitted, density_matrix, energies):
    """:func:`_evaluate_structure` for a cell, on its mesh in the reference SCF's own
    discretisation (:func:`~densitylab.density.periodic.cell_one_step_energies`): one KS step
    from the SCF density is the SCF energy itself, so the errors are against the reference."""
    from densitylab.density import periodic

    cell = periodic.build_cell(numbers, positions, lattice, settings)
    auxcell = periodic.auxiliary_cell(cell, settings)
    sets = [*predictions, fitted]
    densities = periodic.cell_mesh_densities(cell, auxcell, sets, density_matrix)
    *nmae, floor = periodic.mesh_nmae_percents(cell, densities)
    row = {"nmae": nmae, "floor": floor, "errors": {}, "electrons": cell.nelectron}
    if not energies:
        return row
    scf, *results, fit = periodic.cell_one_step_energies(cell, densities, settings.xc)
    row["errors"] = {
        key: [(r[key] - scf[key], cell.natm) for r in results] for key in ("energy", "hartree", "xc")
    }
    row["errors"]["floor"] = (fit["energy"] - scf["energy"], cell.natm)
    return row


MEV_PER_HARTREE = 27211.386245988
KCAL_PER_MOL_PER_HARTREE = 627.509474


def _energy_summary(errors: dict) -> dict:
    """MAEs from {kind: [(error hartree, atoms)]}: per atom in meV and per molecule in kcal/mol.
    ``energy``: the one-step energy of the prediction against the SCF energy; ``floor``: the same
    for the reference fit (a perfect prediction); ``hartree``, ``xc``: those components of the
    predicted density against the SCF density's."""
    summary = {}
    for kind, pairs in errors.items():
        if not pairs:
            continue
        values = np.array([value for value, _ in pairs])
        per_atom = np.array([value / atoms for value, atoms in pairs]) * MEV_PER_HARTREE
        prefix = "energy" if kind == "energy" else f"energy_{kind}"
        summary[f"{prefix}_mae_kcal_per_mol"] = float(np.mean(np.abs(values)) * KCAL_PER_MOL_PER_HARTREE)
        summary[f"{prefix}_mae_mev_per_atom"] = float(np.mean(np.abs(per_atom)))
        if kind == "energy":
            summary["energy_mean_error_mev_per_atom"] = float(np.mean(per_atom))
    return summary


def _key(parts) -> str:
    return "|".join(str(int(p)) for p in parts)


def save_model(
    trained: TrainedModel, path: str | Path, single_precision: bool = False, **manifest: object
) -> Path:
    """Write the model as an artefact folder (whole or not at all); ``manifest`` keys (timings,
    the training config) are stored beside the model's config. ``single_precision`` stores the
    sparse features and projectors (nearly all of a QM9 model's 61 MB) as float32, halving the
    folder; the weights stay float64 and the loaded model computes in float64 (predictions move
    by ≈ 1e-7 relative, far below the model's error; tested)."""
    model = trained.model
    compact = np.float32 if single_precision else np.float64
    arrays = {}
    for key, value in model.sparse_features.items():
        arrays[f"sparse_features/{_key(key)}"] = np.asarray(value, dtype=compact)
    for key, value in model.sparse_scalars.items():
        arrays[f"sparse_scalars/{key}"] = value
    for key, value in model.projectors.items():
        arrays[f"projectors/{_key(key)}"] = np.asarray(value, dtype=compact)
    for key, value in model.weights.items():
        arrays[f"weights/{_key(key)}"] = value
    for key, value in model.columns.items():
        arrays[f"columns/{_key(key)}"] = value
    config = {
        "species": model.species,
        "zeta": model.zeta,
        "channels": [[a, l, n] for (a, l), n in model.channels.items()],
        "baseline": [[a, n, value] for (a, n), value in model.baseline.items()],
        "regularisation_used": model.regularisation,
        "features": asdict(trained.features),
        "regression": asdict(trained.regression_settings),
        "reference": asdict(trained.reference),
        "periodic": is_periodic(trained.reference),
        "lambda_max": trained.lambda_max,
        "training": trained.training,
    }
    with artefact_folder(path) as folder:
        write_h5(folder / ARRAYS, arrays, {"species": model.species, "zeta": model.zeta})
        write_manifest(folder, "density-model", config, **manifest)
    return Path(path)


PRETRAINED = Path(__file__).parent / "pretrained"


def shipped_models() -> list[str]:
    """Names of the density models shipped with densitylab (``qm9-pbe``, ``water-pbe``: docs/density.md)."""
    return sorted(p.name for p in PRETRAINED.iterdir() if p.is_dir()) if PRETRAINED.is_dir() else []


def _reference_settings(config: dict):
    if config.get("periodic"):
        from densitylab.density.periodic import CellSettings

        return CellSettings(**config["reference"])
    return ReferenceSettings(**config["reference"])


def load_model(path: str | Path) -> TrainedModel:
    """Read a folder written by :func:`save_model`, or a shipped model by name (``qm9-pbe``)."""
    if isinstance(path, str) and not Path(path).exists() and (PRETRAINED / path).is_dir():
        path = PRETRAINED / path
    path = Path(path)
    require(
        path.exists(),
        "model",
        f"a model folder (densitylab density train) or a shipped model {shipped_models()}",
        str(path),
    )
    config = read_manifest(path, ("density-model",))["config"]
    if (path / "arrays.npz").is_file():  # written before the manifest
        with np.load(path / "arrays.npz") as stored:
            flat = {name.replace("__", "/", 1): stored[name] for name in stored.files}
    else:
        flat, _ = read_h5(path / ARRAYS)
    groups: dict = {}
    for name, value in flat.items():
        group, key = name.split("/", 1)
        parts = tuple(int(p) for p in key.split("|"))
        value = value.astype(np.float64) if value.dtype == np.float32 else value
        groups.setdefault(group, {})[parts if len(parts) > 1 else parts[0]] = value
    model = regression.DensityModel(
        species=config["species"],
        zeta=config["zeta"],
        channels={(a, l): n for a, l, n in config["channels"]},
        sparse_features=groups["sparse_features"],
        sparse_scalars=groups["sparse_scalars"],
        projectors=groups["projectors"],
        weights=groups["weights"],
        baseline={(int(a), int(n)): value for a, n, value in config["baseline"]},
        columns=groups["columns"],
        regularisation=config.get("regularisation_used"),
    )
    return TrainedModel(
        model,
        FeatureSettings(**config["features"]),
        regression.RegressionSettings(**config["regression"]),
        _reference_settings(config),
        config["lambda_max"],
        config["training"],
    )


def electron_count(trained: TrainedModel, frame, coefficients: np.ndarray) -> float:
    """Σ_P c_P ∫φ_P of one structure's coefficients (featomic order): its electrons (a cell's
    valence electrons), analytically, without a grid."""
    auxiliary, order, _ = _auxiliary_basis(trained.reference, frame)
    return float(coefficients @ auxiliary_integrals(auxiliary)[order])


def write_density_cube(
    trained: TrainedModel, frame, coefficients: np.ndarray, path: str | Path, points: int = 60
):
    """Write the density Σ_P c_P φ_P of one structure as a Gaussian cube file; returns
    (electron count Σ_P c_P ∫φ_P, path). A molecule's cube is PySCF's box around it; a cell's
    is one whole cell (PySCF's: the lattice vectors split in ``points``, centred on the atoms), with
    the functions summed over lattice images, so the cube tiles space."""
    from densitylab.density.basis import pyscf_coefficients
    from densitylab.dft.cube import write_cube

    auxiliary, _, _ = _auxiliary_basis(trained.reference, frame)
    expansion = pyscf_coefficients(auxiliary, coefficients)
    if is_periodic(trained.reference):
        from pyscf.pbc.dft import numint

        def density_at(coords):
            return numint.eval_ao(auxiliary, coords) @ expansion
    else:

        def density_at(coords):
            return auxiliary.eval_gto("GTOval_sph", coords) @ expansion

    path = write_cube(auxiliary, path, density_at, points, "densitylab predicted density")
    return float(expansion @ auxiliary_integrals(auxiliary)), path  # both in PySCF's order
