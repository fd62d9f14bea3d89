"""One entry point for every ground-state method, and its JSON/HDF5/PNG outputs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from densitylab.artefacts import ARRAYS, artefact_folder, read_manifest, write_manifest
from densitylab.data import read_h5, write_h5
from densitylab.errors import require
from densitylab.model1d.exact import solve_exact
from densitylab.model1d.meanfield import METHODS as MEAN_FIELD_METHODS
from densitylab.model1d.meanfield import solve_mean_field
from densitylab.model1d.system import System

METHODS = ("exact", *MEAN_FIELD_METHODS)
COMPONENTS = (
    "kinetic_energy",
    "external_energy",
    "interaction_energy",
    "hartree_energy",
    "exchange_energy",
    "correlation_energy",
)


@dataclass(frozen=True, eq=False)
class GroundStateReport:
    """Method-independent view of a solution (atomic units).

    Attributes:
        energies: the requested states' energies, shape (states,), Ha.
        components: energy parts of the lowest state (Ha).
        density_up, density_down: shape (N,); rdm1_up, rdm1_down: shape (N, N).
        natural_occupations: eigenvalues of the spin-summed γ·dx, descending.
    """

    method: str
    system: System
    energies: np.ndarray
    components: dict[str, float]
    density_up: np.ndarray
    density_down: np.ndarray
    rdm1_up: np.ndarray
    rdm1_down: np.ndarray
    natural_occupations: np.ndarray
    seconds: float
    details: dict
    config: dict | None = None

    @property
    def density(self) -> np.ndarray:
        return self.density_up + self.density_down

    @property
    def rdm1(self) -> np.ndarray:
        return self.rdm1_up + self.rdm1_down

    def summary(self) -> dict:
        """JSON-ready summary: energy, density_integral, natural_occupations, seconds, …"""
        dx = self.system.grid.dx
        return {
            "method": self.method,
            "energy": float(self.energies[0]),
            "energies": [float(e) for e in self.energies],
            **{key: float(value) for key, value in self.components.items()},
            "density_integral": float(np.sum(self.density) * dx),
            "natural_occupations": [float(v) for v in self.natural_occupations],
            "seconds": float(self.seconds),
            "parameters": self.system.parameters(),
            "solver": self.details,
        }

    def save(self, path: str | Path, plot: bool = False) -> Path:
        """An artefact folder (kind ``exact1d-result``): grid, potential, densities, 1-RDMs and
        energies in ``arrays.h5`` (the system's parameters as attributes), the summary and the
        config (the run's, or else the system's parameters and the method) in the manifest, and
        ``state.png`` with ``plot``."""
        arrays = {
            "x": self.system.grid.x,
            "v_ext": self.system.v_ext,
            "energies": self.energies,
            "density": self.density,
            "density_up": self.density_up,
            "density_down": self.density_down,
            "rdm1": self.rdm1,
            "rdm1_up": self.rdm1_up,
            "rdm1_down": self.rdm1_down,
            "natural_occupations": self.natural_occupations,
        }
        attributes = {**self.system.parameters(), "method": self.method, **self.components}
        config = self.config or {
            **self.system.parameters(),
            "method": self.method,
            "states": len(self.energies),
        }
        with artefact_folder(path) as folder:
            write_h5(folder / ARRAYS, arrays, attributes, kind="exact1d-result")
            if plot:
                self.plot(folder / "state.png")
            write_manifest(folder, "exact1d-result", config, summary=self.summary())
        return Path(path)

    def plot(self, path: str | Path) -> Path:
        """Density, 1-RDM and natural occupations side by side, to the PNG ``path``."""
        system = self.system
        title = (
            f"{self.method}: {system.electrons}, {system.grid.points} points, E = {self.energies[0]:.8f} Ha"
        )
        from densitylab.plots import plot_state

        return plot_state(self.system.grid.x, self.density, self.rdm1, self.natural_occupations, title, path)


def solve_ground_state(
    system: System, method: str = "exact", states: int = 1, **options
) -> GroundStateReport:
    """Solve ``system`` with ``method`` (one of ``METHODS``) and return a uniform report."""
    require(method in METHODS, "method", f"one of {METHODS}", method)
    start = time.perf_counter()
    if method == "exact":
        solution = solve_exact(system, states=states, **options)
        ground = solution.ground
        return GroundStateReport(
            method=method,
            system=system,
            energies=solution.energies,
            components={
                "kinetic_energy": ground.kinetic_energy,
                "external_energy": ground.external_energy,
                "interaction_energy": ground.interaction_energy,
            },
            density_up=ground.density_up,
            density_down=ground.density_down,
            rdm1_up=ground.rdm1_up,
            rdm1_down=ground.rdm1_down,
            natural_occupations=ground.natural_occupations,
            seconds=time.perf_counter() - start,
            details=solution.solver,
        )
    require(
        states == 1, "states", f"1 for the mean-field method {method!r} (excited states need 'exact')", states
    )
    result = solve_mean_field(system, method=method, **options)
    return GroundStateReport(
        method=method,
        system=system,
        energies=np.array([result.energy]),
        components={
            "kinetic_energy": result.kinetic_energy,
            "external_energy": result.external_energy,
            "hartree_energy": result.hartree_energy,
            "exchange_energy": result.exchange_energy,
            "correlation_energy": result.correlation_energy,
        },
        density_up=result.density_up,
        density_down=result.density_down,
        rdm1_up=result.rdm1_up,
        rdm1_down=result.rdm1_down,
        natural_occupations=result.natural_occupations,
        seconds=time.perf_counter() - start,
        details={
            "restricted": result.restricted,
            "iterations": result.iterations,
            "residual": result.residual,
        },
    )


def load_result(path: str | Path) -> GroundStateReport:
    """A result written by :meth:`GroundStateReport.save` (``densitylab exact1d --output``)."""
    from densitylab.model1d.grid import Grid
    from densitylab.model1d.system import parse_interaction

    manifest = read_manifest(path, ("exact1d-result",), "path")
    arrays, _ = read_h5(Path(path) / ARRAYS)
    summary = manifest["summary"]
    parameters = summary["parameters"]
    grid = Grid(parameters["points"], parameters["x_min"], parameters["x_max"], parameters["stencil"])
    system = System(
        grid, arrays["v_ext"], parameters["electrons"], parse_interaction(parameters["interaction"])
    )
    components = {key: summary[key] for key in COMPONENTS if key in summary}
    return GroundStateReport(
        method=summary["method"],
        system=system,
        energies=arrays["energies"],
        components=components,
        density_up=arrays["density_up"],
        density_down=arrays["density_down"],
        rdm1_up=arrays["rdm1_up"],
        rdm1_down=arrays["rdm1_down"],
        natural_occupations=arrays["natural_occupations"],
        seconds=summary["seconds"],
        details=summary["solver"],
        config=manifest["config"],
    )
