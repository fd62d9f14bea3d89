"""Density learning as calls, each with a config validated when made:

* :func:`reference` (:class:`ReferenceConfig`): PySCF references and density fits for given
  structures, sampled water monomers or QM9 molecules; resumable, Dask-parallel.
* :func:`train` (:class:`TrainConfig`) → :class:`TrainResult`, which saves the model as an
  artefact (``densitylab.load`` opens it).
* :func:`evaluate` → :class:`Evaluation` (% RMSE, grid NMAE and its fitting floor, one-step
  energies) with its figures; :func:`predict` → :class:`Prediction` (coefficients and cubes).

``densitylab density reference/train/evaluate/predict`` are these and nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from densitylab.errors import require, require_finite


@dataclass(frozen=True)
class ReferenceConfig:
    """Where the structures come from and how their references are computed.

    Attributes:
        structures: an extxyz file (Å); or instead ``water`` monomers by normal-mode sampling
            at ``temperature`` (K), or ``qm9`` molecules with ``heavy_atoms`` heavy atoms; one
            of the three. ``seed`` draws the sample.
        xc, basis, auxbasis, metric: the Kohn–Sham reference, the fitting basis ("etb" for an
            even-tempered one) and the fitting metric (overlap or coulomb). ``basis`` None:
            def2-svp for molecules, gth-dzvp for cells.
        pseudo, ke_cutoff: for cells (structures with a lattice, which switch to the periodic
            path: Γ-point, GTH pseudopotentials, an even-tempered lattice-summed fitting basis
            in the overlap metric): the pseudopotential and the grid cutoff (Ry).
        etb_beta: the ratio of an even-tempered fitting basis (None: each settings' default,
            1.6 for molecules, 1.3 for cells).
        chunk_size: structures per task and per resumable part (None: 10 molecules, 1 cell).
    """

    structures: str | None = None
    water: int | None = None
    qm9: int | None = None
    heavy_atoms: int = 4
    seed: int = 0
    temperature: float = 300.0
    xc: str = "pbe"
    basis: str | None = None
    auxbasis: str = "def2-universal-jkfit"
    metric: str = "overlap"
    chunk_size: int | None = None
    pseudo: str = "gth-pbe"
    ke_cutoff: float = 300.0
    etb_beta: float | None = None

    def __post_init__(self) -> None:
        sources = sum(option is not None for option in (self.structures, self.water, self.qm9))
        require(sources == 1, "structures", "exactly one of --structures, --water or --qm9")
        require_finite(temperature=self.temperature)
        require(self.temperature >= 0, "temperature", "a temperature ≥ 0 K", self.temperature)
        for name in ("water", "qm9"):
            count = getattr(self, name)
            require(count is None or count >= 1, name, "a positive number of structures", count)
        chunk = self.chunk_size
        require(chunk is None or chunk >= 1, "chunk_size", "a positive integer (None: the default)", chunk)
        self.settings()
        self.settings(periodic=True)

    def settings(self, periodic: bool = False):
        """The molecular :class:`ReferenceSettings`, or for cells the :class:`CellSettings`."""
        from densitylab.density.periodic import CellSettings
        from densitylab.density.reference import ReferenceSettings

        beta = {} if self.etb_beta is None else {"etb_beta": self.etb_beta}
        if periodic:
            return CellSettings(
                xc=self.xc,
                basis=self.basis or "gth-dzvp",
                pseudo=self.pseudo,
                ke_cutoff=self.ke_cutoff,
                chunk_size=self.chunk_size or 1,
                **beta,
            )
        return ReferenceSettings(
            xc=self.xc,
            basis=self.basis or "def2-svp",
            auxbasis=self.auxbasis,
            metric=self.metric,
            chunk_size=self.chunk_size or 10,
            **beta,
        )

    def frames(self) -> list:
        """The structures (``ase.Atoms``): read, sampled or drawn."""
        from densitylab.density.structures import qm9_structures, read_structures, water_monomers

        if self.water is not None:
            return water_monomers(self.water, seed=self.seed, temperature=self.temperature)
        if self.qm9 is not None:
            return qm9_structures(self.heavy_atoms, self.qm9, seed=self.seed)
        return read_structures(self.structures)


def reference(
    config: ReferenceConfig,
    output: str | Path,
    workers: int = 1,
    scheduler: str | None = None,
    progress: Callable[..., None] | None = None,
) -> dict:
    """Compute (or resume) the references into ``output`` (.h5). Sampled structures are also
    written beside it as OUTPUT.xyz, only once every check has passed. Structures with a
    lattice (the first decides) take the periodic path."""
    from densitylab.density.reference import check_output, generate_reference

    check_output(output)  # before the structures are sampled or drawn
    frames = config.frames()
    sampled = config.structures is None  # sampled structures are kept beside their references
    copy = Path(output).with_suffix(".xyz") if sampled else None
    seed = config.seed if sampled else None
    settings = config.settings(periodic=bool(np.all(frames[0].pbc)))
    return generate_reference(frames, output, settings, workers, scheduler, progress, seed, copy)


@dataclass(frozen=True)
class TrainConfig:
    """A symmetry-adapted sparse GPR fit on the first ``train`` structures of ``reference``.

    Attributes:
        reference: a reference file (``densitylab density reference``).
        train: structures to train on (None: all).
        sparse, zeta: sparse environments per species and the kernel exponent ζ.
        regularisation: the ridge η in the metric, or "auto" (chosen on 20 % of the training
            molecules).
        solver: "auto" (direct up to 20,000 weights), "cg" (matrix-free) or "direct".
        columns, cutoff: λ-SOAP feature columns kept per block (FPS) and the cutoff (Å).
        single_precision: save the sparse features and projectors as float32 (half the size;
            the shipped models are saved so).
        metric_precision: "double" or "single": how CG holds the training metrics (single:
            half their memory, for the largest training sets).
    """

    reference: str
    train: int | None = None
    sparse: int = 100
    zeta: int = 2
    regularisation: float | str = "auto"
    solver: str = "auto"
    columns: int = 600
    cutoff: float = 4.0
    single_precision: bool = False
    metric_precision: str = "double"

    def __post_init__(self) -> None:
        object.__setattr__(self, "reference", str(self.reference))
        regularisation = self.regularisation
        if isinstance(regularisation, str) and regularisation != "auto":
            try:
                object.__setattr__(self, "regularisation", float(regularisation))
            except ValueError:
                pass  # refused below, by name
        self.features()
        self.regression()
        require(self.train is None or self.train >= 1, "train", "a positive number of structures", self.train)

    def features(self):
        from densitylab.density.features import FeatureSettings

        return FeatureSettings(cutoff=self.cutoff, columns=self.columns)

    def regression(self):
        from densitylab.density.regression import RegressionSettings

        return RegressionSettings(
            sparse_environments=self.sparse,
            zeta=self.zeta,
            regularisation=self.regularisation,
            solver=self.solver,
            metric_precision=self.metric_precision,
        )


@dataclass(eq=False)
class TrainResult:
    """A fitted density model, its training config and timings."""

    config: TrainConfig
    trained: object
    info: dict

    def summary(self) -> dict:
        return {**self.info, "train": len(self.trained.training)}

    def save(self, path: str | Path) -> Path:
        """The model as an artefact folder (kind ``density-model``)."""
        from densitylab.density.pipeline import save_model

        return save_model(
            self.trained,
            path,
            single_precision=self.config.single_precision,
            training=asdict(self.config),
            summary=self.summary(),
        )


def train(config: TrainConfig, checkpoint: str | Path | None = None) -> TrainResult:
    """Fit the model of ``config``; ``checkpoint``: a .npz path that makes a CG fit resumable
    (every finished solve, and the one in progress every two minutes; the CLI keeps it at
    OUTPUT.checkpoint.npz)."""
    from densitylab.density.pipeline import train as fit
    from densitylab.density.reference import load_reference

    data = load_reference(config.reference)
    count = len(data) if config.train is None else config.train
    require(1 <= count <= len(data), "train", f"1 to {len(data)} structures", config.train)
    trained, info = fit(data, list(range(count)), config.features(), config.regression(), checkpoint)
    return TrainResult(config, trained, info)


def index_range(text: str | None, size: int, parameter: str = "indices") -> list[int]:
    """'a:b' (a Python slice of structure indices) or None for all; never empty."""
    if text is None:
        return list(range(size))
    try:
        bounds = [int(p) if p else None for p in text.split(":")]
    except ValueError:
        bounds = []
    require(len(bounds) == 2, parameter, "a range START:STOP of structure indices", text)
    chosen = list(range(size))[slice(*bounds)]
    require(len(chosen) > 0, parameter, "a non-empty range of structures", text)
    return chosen


@dataclass(eq=False)
class Evaluation:
    """Errors of a model on reference structures, with what the figures need."""

    summary: dict
    predicted: list
    data: object
    chosen: list

    def plot(self, folder: str | Path) -> dict[str, str]:
        """parity.png (predicted against reference coefficients, by species and λ, with the
        RMSE) and density_slices.png (predicted, reference and difference densities through
        the first structure)."""
        from densitylab.density.energies import density_slices
        from densitylab.density.reference import auxiliary_molecule, build_molecule
        from densitylab.plots import plot_density_slices, plot_parity

        folder, data, first = Path(folder), self.data, self.chosen[0]
        folder.mkdir(exist_ok=True)
        reference = np.concatenate([data.coefficients[i] for i in self.chosen])
        labels = np.concatenate([data.labels[i] for i in self.chosen])
        species = np.concatenate([data.numbers[i][data.labels[i][:, 0]] for i in self.chosen])
        parity = plot_parity(
            reference, np.concatenate(self.predicted), folder / "parity.png", species, labels[:, 1]
        )
        mol = build_molecule(data.numbers[first], data.positions[first], data.settings.basis)
        extent, slices, atoms = density_slices(
            mol, auxiliary_molecule(mol, data.settings), self.predicted[0], data.coefficients[first],
            data.density_matrices[first],
        )  # fmt: skip
        slices_path = plot_density_slices(extent, slices, atoms, folder / "density_slices.png")
        return {"plot": str(parity), "slices": str(slices_path)}


def evaluate(
    model: str | Path,
    reference_path: str | Path,
    indices: str | None = None,
    energies: bool = True,
    workers: int = 1,
    scheduler: str | None = None,
) -> Evaluation:
    """% RMSE, grid NMAE (and its fitting floor) and one-step energy errors of ``model`` on the
    structures ``indices`` ('START:STOP', default all) of a reference file; the per-structure
    grid work on ``workers`` local processes or a Dask ``scheduler``."""
    from densitylab.density.pipeline import evaluate as measure
    from densitylab.density.pipeline import load_model
    from densitylab.density.reference import load_reference

    trained = load_model(model)
    data = load_reference(reference_path)
    chosen = index_range(indices, len(data))
    summary, predicted = measure(
        trained, data, chosen, energies=energies, workers=workers, scheduler=scheduler
    )
    return Evaluation(
        {"model": str(model), "reference": str(reference_path), **summary}, predicted, data, chosen
    )


@dataclass(eq=False)
class Prediction:
    """Predicted coefficients and labels of new structures."""

    model: str
    structures: str
    trained: object
    frames: list
    coefficients: list
    labels: list
    electron_counts: list = field(default_factory=list)

    def summary(self) -> dict:
        """The structures and each one's electron count Σ_P c_P ∫φ_P (nothing written)."""
        from densitylab.density.pipeline import electron_count

        self.electron_counts = [
            electron_count(self.trained, frame, c)
            for frame, c in zip(self.frames, self.coefficients, strict=True)
        ]
        return {"structures": len(self.frames), "electron_counts": self.electron_counts}

    def save(self, folder: str | Path, cube_points: int = 60) -> dict:
        """coefficients.h5 (coefficients, labels and electron counts per structure) and one
        density-NNNN.cube per structure, in ``folder``; returns the summary."""
        from densitylab.data import write_h5
        from densitylab.density.pipeline import write_density_cube
        from densitylab.dft.cube import check_cube_points

        folder = Path(folder)
        check_cube_points(cube_points, len(self.frames), folder)  # before the folder is made
        folder.mkdir(exist_ok=True)
        arrays, counts = {}, []
        for index, (frame, c, label) in enumerate(
            zip(self.frames, self.coefficients, self.labels, strict=True)
        ):
            count, _ = write_density_cube(
                self.trained, frame, c, folder / f"density-{index:04d}.cube", cube_points
            )
            counts.append(count)
            arrays[f"coefficients/{index:06d}"] = c
            arrays[f"labels/{index:06d}"] = label
        arrays["electron_count"] = np.array(counts)
        attributes = {"model": self.model, "structures": self.structures}
        write_h5(folder / "coefficients.h5", arrays, attributes, kind="density-prediction")
        self.electron_counts = counts
        return {"structures": len(self.frames), "electron_counts": counts, "output": str(folder)}


def predict(model: str | Path, structures: str | Path) -> Prediction:
    """Coefficients (and labels) of the structures of an extxyz file under ``model``."""
    from densitylab.density.pipeline import load_model
    from densitylab.density.pipeline import predict as apply
    from densitylab.density.structures import read_structures

    trained = load_model(model)
    frames = read_structures(structures)
    coefficients, labels = apply(trained, frames)
    return Prediction(str(model), str(structures), trained, frames, coefficients, labels)
