"""Datasets of exact 1-RDMs for the random-potential family of Wetherell et al. (2020).

System i has the potential V = D·x¹⁰ + F Σ_k [a_k cos(kπx/L) + b_k sin(kπx/L)] with a_k, b_k
drawn from ``numpy.random.default_rng([seed, i])``: the same whatever the number of workers or
chunks. For each system the file holds the exact singlet ("ud") ground state and the
non-interacting and unrestricted Hartree–Fock solutions.

Layout of the HDF5 file (S systems, N points, all atomic units)::

    x (N,)                       attrs: every generation parameter, version, seed
    v_ext (S, N)
    density (S, N), rdm1 (S, N, N), energy (S,), kinetic_energy (S,),
    natural_occupations (S, N)                      exact, spin-summed, descending
    noninteracting/{density, orbital, energy, kinetic_energy, natural_occupations}
    uhf/{density, orbital_up, orbital_down, energy, kinetic_energy, natural_occupations}

The mean-field 1-RDMs are stored factored, as their occupied orbitals (γ = 2φφᵀ for the
non-interacting singlet, γ = φ↑φ↑ᵀ + φ↓φ↓ᵀ for UHF), which is the same information in 1/N of
the space; :meth:`Dataset.rdm1` rebuilds any of the three.

Generation is resumable and interrupt-safe: every finished chunk is written atomically to
``OUT.parts/chunk-XXXXXX.npz`` next to the output; a rerun skips finished chunks, refuses a
parts folder made with other parameters, and assembles the single HDF5 file (atomically)
once all chunks exist.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np

from densitylab.data import (
    PartsStore,
    atomic_output,
    refuse_mismatch,
    require_kind,
    stored_parameters,
    write_attributes,
)
from densitylab.errors import DensitylabError, InvalidParameterError, require
from densitylab.limits import require_disk, require_memory
from densitylab.model1d.batch import (
    one_body_eigen,
    rdm1_from_orbitals,
    solve_singlet_batch,
    uhf_two_electron_batch,
)
from densitylab.model1d.grid import Grid
from densitylab.model1d.potentials import fourier_potential, random_fourier_coefficients
from densitylab.model1d.system import parse_interaction
from densitylab.parallel import run_resumable

SUB_BATCH = 128  # systems per vectorised exact solve (cache-friendly on small grids)


@dataclass(frozen=True)
class DatasetSpec:
    """Everything that defines a dataset; stored as attributes of the file.

    Attributes:
        systems: number of systems S.
        seed: base seed; system i uses ``default_rng([seed, i])``.
        points, x_min, x_max, stencil: the grid (both edges included).
        length, confinement, amplitude, harmonics: L, D, F and the number of Fourier terms.
        interaction: interaction spec, e.g. ``softened`` (1/(|x−x'|+1)).
        chunk_size: systems per stored chunk (the unit of work and of resumption).
        tolerance: residual ‖HΨ − EΨ‖ at which an exact solve stops. The default 1e-12 keeps
            density errors near 5e-13, which the PCA compression study needs (at 1e-8 the
            solver's own error appears as a full-rank floor at ~4e-8).
    """

    systems: int = 50_000
    seed: int = 0
    points: int = 62
    x_min: float = -7.5
    x_max: float = 7.5
    stencil: int = 13
    length: float = 15.0
    confinement: float = 1e-11
    amplitude: float = 0.1
    harmonics: int = 3
    interaction: str = "softened"
    chunk_size: int = 1000
    tolerance: float = 1e-12

    def __post_init__(self) -> None:
        require(
            isinstance(self.systems, int) and self.systems >= 1, "systems", "a positive integer", self.systems
        )
        require(isinstance(self.seed, int) and self.seed >= 0, "seed", "a non-negative integer", self.seed)
        require(
            isinstance(self.chunk_size, int) and self.chunk_size >= 1,
            "chunk_size",
            "a positive integer",
            self.chunk_size,
        )
        require(
            isinstance(self.harmonics, int) and self.harmonics >= 1,
            "harmonics",
            "a positive integer",
            self.harmonics,
        )
        require(self.length > 0, "length", "a positive box length L", self.length)
        require(
            self.confinement >= 0,
            "confinement",
            "D ≥ 0 (D·x^10 confines; a negative D pulls the electrons onto the walls)",
            self.confinement,
        )
        require(
            1e-14 <= self.tolerance <= 1e-4,
            "tolerance",
            "a residual tolerance in [1e-14, 1e-4]",
            self.tolerance,
        )
        self.grid()  # validates points, x_min, x_max, stencil
        parse_interaction(self.interaction)

    def grid(self) -> Grid:
        return Grid(points=self.points, x_min=self.x_min, x_max=self.x_max, stencil=self.stencil)

    def chunks(self) -> list[tuple[int, int, int]]:
        """(index, start, stop) of every chunk."""
        return [
            (index, start, min(start + self.chunk_size, self.systems))
            for index, start in enumerate(range(0, self.systems, self.chunk_size))
        ]

    def parameters(self) -> dict:
        return asdict(self)

    def bytes_per_system(self) -> float:
        """Bytes one system takes in the file: its 1-RDM (N²) and about 14 vectors of N."""
        return 8.0 * (self.points**2 + 14 * self.points + 10)

    def check_resources(self, output: Path, workers: int = 1) -> None:
        """Refuse a dataset whose file (and its parts, held until assembly) cannot fit on the
        disk of ``output``, or whose chunks cannot fit in memory, before anything is written."""
        require_disk(
            2.0 * self.systems * self.bytes_per_system(),
            output.parent,
            "systems",
            f"{self.systems} systems on {self.points} points",
            self.systems,
        )
        # a chunk in a worker: the exact two-electron vectors (N² each) and the arrays above
        require_memory(
            8.0 * workers * min(self.chunk_size, self.systems) * (6 * self.points**2 + 30 * self.points),
            "chunk_size",
            f"{workers} worker(s) solving chunks of {min(self.chunk_size, self.systems)} systems",
            self.chunk_size,
        )


def potentials(spec: DatasetSpec, start: int, stop: int) -> np.ndarray:
    """External potentials of systems start..stop−1, shape (stop − start, N), Ha."""
    x = spec.grid().x
    rows = []
    for index in range(start, stop):
        cos_coefficients, sin_coefficients = random_fourier_coefficients(
            np.random.default_rng([spec.seed, index]), spec.length, spec.harmonics
        )
        rows.append(
            fourier_potential(
                x, cos_coefficients, sin_coefficients, spec.length, spec.confinement, spec.amplitude
            )
        )
    return np.array(rows)


def _descending_occupations(rdm1: np.ndarray, dx: float) -> np.ndarray:
    return np.linalg.eigvalsh(rdm1 * dx)[:, ::-1].copy()


def solve_chunk(spec: DatasetSpec, start: int, stop: int) -> dict[str, np.ndarray]:
    """Solve systems start..stop−1 exactly, non-interacting and by UHF. Pure and picklable."""
    grid = spec.grid()
    dx = grid.dx
    interaction = parse_interaction(spec.interaction)
    v_ext = potentials(spec, start, stop)
    count, points = v_ext.shape
    result: dict[str, np.ndarray] = {"v_ext": v_ext}
    energies, vectors = one_body_eigen(grid, v_ext)  # shared by all three methods
    exact_parts = [
        solve_singlet_batch(
            grid,
            v_ext[i : i + SUB_BATCH],
            interaction,
            tol=1e-8,
            one_body=(energies[i : i + SUB_BATCH], vectors[i : i + SUB_BATCH]),
        )
        for i in range(0, count, SUB_BATCH)
    ]
    rdm1 = np.concatenate([part.rdm1 for part in exact_parts])
    result |= {
        "density": np.concatenate([part.density for part in exact_parts]),
        "rdm1": rdm1,
        "energy": np.concatenate([part.energy for part in exact_parts]),
        "kinetic_energy": np.concatenate([part.kinetic_energy for part in exact_parts]),
        "natural_occupations": _descending_occupations(rdm1, dx),
    }
    kinetic = grid.kinetic_dense()
    orbital = vectors[:, :, 0] * np.sign(vectors[:, :, 0].sum(axis=1))[:, None] / np.sqrt(dx)
    occupations = np.zeros((count, points))
    occupations[:, 0] = 2.0
    result |= {
        "noninteracting/orbital": orbital,
        "noninteracting/density": 2.0 * orbital**2,
        "noninteracting/energy": 2.0 * energies[:, 0],
        "noninteracting/kinetic_energy": 2.0 * np.einsum("bi,ij,bj->b", orbital, kinetic, orbital) * dx,
        "noninteracting/natural_occupations": occupations,
    }
    uhf = uhf_two_electron_batch(grid, v_ext, interaction, tol=1e-8, one_body=(energies, vectors))
    overlap = np.abs(np.sum(uhf.orbital_up * uhf.orbital_down, axis=1) * dx)
    occupations = np.zeros((count, points))
    occupations[:, 0], occupations[:, 1] = 1.0 + overlap, 1.0 - overlap
    result |= {
        "uhf/orbital_up": uhf.orbital_up,
        "uhf/orbital_down": uhf.orbital_down,
        "uhf/density": uhf.density,
        "uhf/energy": uhf.energy,
        "uhf/kinetic_energy": uhf.kinetic_energy,
        "uhf/natural_occupations": occupations,
    }
    return result


# ----------------------------------------------------------------------------- storage


def _assemble(spec: DatasetSpec, store: PartsStore, output: Path) -> None:
    chunks = spec.chunks()
    first = store.load(0)
    with atomic_output(output) as temporary, h5py.File(temporary, "w") as handle:
        write_attributes(handle, spec.parameters(), kind="rdm-dataset")
        handle.attrs["electrons"] = "ud"
        handle.create_dataset("x", data=spec.grid().x)
        for name, value in first.items():
            handle.create_dataset(
                name,
                shape=(spec.systems, *value.shape[1:]),
                dtype=value.dtype,
                chunks=(min(spec.chunk_size, spec.systems, 256), *value.shape[1:]),
            )
        for index, start, stop in chunks:
            part = first if index == 0 else store.load(index)
            for name, value in part.items():
                handle[name][start:stop] = value
    store.remove()


def generate_dataset(
    spec: DatasetSpec,
    output: str | Path,
    workers: int = 1,
    scheduler: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Generate (or resume) the dataset ``spec`` into ``output`` (an .h5 file).

    Args:
        spec: the dataset definition.
        output: the HDF5 file to produce.
        workers: local worker processes (Dask) when > 1.
        scheduler: address of an existing dask.distributed scheduler.
        progress: called as ``progress(systems_done_now, systems_total)`` after each chunk.

    Returns:
        a summary: systems, chunks computed now and before, seconds.

    Raises:
        InvalidParameterError: the output (or its parts folder) was made with other parameters.
    """
    output = Path(output)
    require(output.suffix in (".h5", ".hdf5"), "output", "a file name ending in .h5", str(output))
    start_time = time.perf_counter()
    if not output.exists():
        spec.check_resources(output, 1 if scheduler else workers)
    chunks = spec.chunks()
    if output.exists():
        refuse_mismatch(stored_parameters(output), spec.parameters(), output)
        if progress:
            progress(spec.systems, spec.systems)
        return {
            "systems": spec.systems,
            "computed_chunks": 0,
            "resumed_chunks": len(chunks),
            "seconds": 0.0,
            "output": str(output),
        }
    store = PartsStore(output, spec.parameters())
    computed, resumed = run_resumable(
        solve_chunk,
        [(index, (spec, start, stop), stop - start) for index, start, stop in chunks],
        store,
        spec.systems,
        progress,
        workers=workers,
        scheduler=scheduler,
    )
    _assemble(spec, store, output)
    return {
        "systems": spec.systems,
        "computed_chunks": computed,
        "resumed_chunks": resumed,
        "seconds": time.perf_counter() - start_time,
        "output": str(output),
    }


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True, eq=False)
class Dataset:
    """A generated dataset, read fully into memory (use h5py directly for lazy access)."""

    x: np.ndarray
    arrays: dict[str, np.ndarray]
    parameters: dict

    @property
    def dx(self) -> float:
        return float(self.x[1] - self.x[0])

    def __len__(self) -> int:
        return self.arrays["v_ext"].shape[0]

    @property
    def spec(self) -> DatasetSpec:
        """The parameters the dataset was generated with."""
        return DatasetSpec(**self.parameters)

    def kinetic(self) -> np.ndarray:
        """The grid's kinetic matrix (N, N), Ha: the stencil the solver used."""
        return self.spec.grid().kinetic_dense()

    def interaction_matrix(self) -> np.ndarray:
        """w(x_i, x_j) of the dataset's interaction, (N, N), Ha."""
        return parse_interaction(self.spec.interaction).matrix(self.x)

    def rdm1(self, kind: str = "exact") -> np.ndarray:
        """Spin-summed 1-RDMs (S, N, N) of ``kind``: exact, noninteracting or uhf."""
        if kind == "exact":
            return self.arrays["rdm1"]
        if kind == "noninteracting":
            return rdm1_from_orbitals(self.arrays["noninteracting/orbital"], occupation=2.0)
        if kind == "uhf":
            return rdm1_from_orbitals(self.arrays["uhf/orbital_up"], self.arrays["uhf/orbital_down"])
        raise InvalidParameterError("kind", "one of 'exact', 'noninteracting', 'uhf'", kind)


def load_dataset(path: str | Path) -> Dataset:
    """Read a dataset written by :func:`generate_dataset`."""
    path = Path(path)
    require_kind(path, "rdm-dataset", "dataset")
    arrays: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as handle:
            parameters = json.loads(handle.attrs["parameters"])
            x = handle["x"][()]
            handle.visititems(
                lambda name, item: (
                    arrays.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None
                )
            )
    except (OSError, KeyError) as exc:
        raise DensitylabError(f"dataset: {path} is not a densitylab 1-RDM dataset ({exc})") from None
    arrays.pop("x")
    return Dataset(x=x, arrays=arrays, parameters=parameters)
