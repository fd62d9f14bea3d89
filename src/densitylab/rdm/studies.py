"""The rdm paper's studies as calls: PCA of one dataset (:func:`pca_study`), the compression
study across grids (:func:`compression_study`) and the Hubbard-dimer study (:func:`dimer`).
Each writes its numbers (JSON) and its figure into a folder; datasets they generate there are
resumable. ``densitylab rdm pca``, ``rdm compression`` and ``rdm dimer`` call these.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from densitylab.data import atomic_write_bytes
from densitylab.errors import require, require_finite


def _write_json(path: Path, payload: dict) -> Path:
    atomic_write_bytes(path, json.dumps(payload, indent=1).encode())
    return path


@dataclass(eq=False)
class PCAStudy:
    """Explained variance and reconstruction errors of the densities and 1-RDMs of a dataset."""

    dataset: str
    systems: int
    points: int
    test_fraction: float
    curves: list

    def summary(self) -> dict:
        return {
            "dataset": self.dataset,
            "systems": self.systems,
            "points": self.points,
            "curves": [curve.summary() for curve in self.curves],
        }

    def save(self, folder: str | Path) -> list[Path]:
        """pca.json (the summary, every curve in full) and pca.png."""
        from densitylab.plots import plot_compression

        folder = Path(folder)
        folder.mkdir(exist_ok=True)
        payload = {
            **self.summary(),
            "test_fraction": self.test_fraction,
            "max_error": {curve.name: curve.max_error.tolist() for curve in self.curves},
            "explained_variance_ratio": {c.name: c.explained_variance_ratio.tolist() for c in self.curves},
        }
        title = f"PCA of {self.systems} systems on {self.points} points"
        return [
            _write_json(folder / "pca.json", payload),
            plot_compression(self.curves, folder / "pca.png", title),
        ]


def pca_study(dataset: str | Path, test_fraction: float = 0.04) -> PCAStudy:
    """PCA of the exact densities and 1-RDMs of ``dataset``: the components needed for machine
    precision (max held-out error ≤ 1e-12) and for an error of 1e-6."""
    from densitylab.rdm.dataset import load_dataset
    from densitylab.rdm.pca import analyse_dataset

    require_finite(test_fraction=test_fraction)
    require(0 < test_fraction < 1, "test_fraction", "a fraction in (0, 1)", test_fraction)
    data = load_dataset(dataset)
    curves = analyse_dataset(data.arrays["density"], data.rdm1("exact"), test_fraction)
    return PCAStudy(str(dataset), len(data), data.parameters["points"], test_fraction, curves)


def parse_grids(grids: str | list[int]) -> list[int]:
    """'2,3,4,6,62' (or a list) → grid sizes; a clear error naming ``grids``."""
    if not isinstance(grids, str):
        return [int(points) for points in grids]
    try:
        sizes = [int(item) for item in grids.split(",") if item.strip()]
    except ValueError:
        sizes = []
    require(len(sizes) > 0 and min(sizes) >= 2, "grids", "comma-separated sizes ≥ 2, e.g. 2,3,4,6,62", grids)
    return sizes


def compression_study(
    folder: str | Path,
    grids: str | list[int] = "2,3,4,6,62",
    systems: int = 50_000,
    seed: int = 0,
    test_fraction: float = 0.04,
    workers: int = 1,
    progress: Callable[[int], Callable[..., None] | None] | None = None,
    scheduler: str | None = None,
) -> dict:
    """The paper's compression study: generate (or resume) the random family on each grid in
    ``folder`` (family-N.h5; fewer than 13 points use the 3-point stencil), then PCA; writes
    compression.json and compression.png. ``progress(points)`` gives each grid's callback;
    ``workers`` local processes, or a running Dask ``scheduler``'s address, share the work."""
    from densitylab.plots import plot_compression
    from densitylab.rdm.dataset import DatasetSpec, generate_dataset

    folder, sizes = Path(folder), parse_grids(grids)
    specs = [DatasetSpec(systems=systems, seed=seed, points=p, stencil=3 if p < 13 else 13) for p in sizes]
    folder.mkdir(exist_ok=True)
    rows, all_curves = {}, []
    for points, spec in zip(sizes, specs, strict=True):
        path = folder / f"family-{points}.h5"
        callback = progress(points) if progress else None
        generate_dataset(spec, path, workers=workers, scheduler=scheduler, progress=callback)
        curves = pca_study(path, test_fraction).curves
        all_curves += [replace(curve, name=f"{curve.name}, {points} points") for curve in curves]
        rows[str(points)] = [curve.summary() for curve in curves]
    summary = {"systems": systems, "seed": seed, "grids": rows}
    _write_json(folder / "compression.json", summary)
    plot_compression(all_curves, folder / "compression.png", f"PCA compression, {systems} systems per grid")
    return summary


def dimer(folder: str | Path, systems: int = 5000, seed: int = 0, steps: int = 6000) -> dict:
    """The Hubbard-dimer study: log-perceptron exponents (non-interacting and interacting) and
    the c-model γ₁₂ = c(n)·√(n₁n₂), on the random family on 2 grid points; writes dimer.h5
    (resumable), dimer.json and dimer.png into ``folder``."""
    from densitylab.plots import plot_dimer
    from densitylab.rdm.dataset import DatasetSpec, generate_dataset, load_dataset
    from densitylab.rdm.dimer import dimer_study

    folder = Path(folder)
    spec = DatasetSpec(systems=systems, seed=seed, points=2, stencil=3, chunk_size=min(systems, 5000))
    folder.mkdir(exist_ok=True)
    generate_dataset(spec, folder / "dimer.h5")
    data = load_dataset(folder / "dimer.h5")
    summary, curves = dimer_study(
        data.arrays["density"], data.rdm1(), data.arrays["noninteracting/density"],
        data.rdm1("noninteracting"), steps=steps,
    )  # fmt: skip
    _write_json(folder / "dimer.json", summary)
    plot_dimer(curves, folder / "dimer.png")
    return summary
