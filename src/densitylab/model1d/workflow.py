"""The exact1d workflow as one call: :class:`Exact1DConfig` (validated when made) and
:func:`run`, which returns a :class:`~densitylab.model1d.results.GroundStateReport` that
saves itself as an artefact (``report.save(path)``) and loads back with
:func:`~densitylab.model1d.results.load_result` or :func:`densitylab.load`.

``densitylab exact1d`` is this and nothing more: the same config from its options, the same
``run`` and ``save``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from densitylab.errors import require, require_finite
from densitylab.model1d.results import METHODS, GroundStateReport, solve_ground_state
from densitylab.model1d.system import System, make_system


@dataclass(frozen=True)
class Exact1DConfig:
    """A 1D model system and the method that solves it (atomic units).

    Attributes:
        points, x_min, x_max, stencil: the grid (both edges on it, bohr) and the kinetic stencil.
        electrons: spin string, e.g. "ud", "uud".
        potential: a built-in ``name[:key=value,…]``, a math expression in x, or a .npy path.
        interaction: ``softened``, ``soft-coulomb`` or ``none``, with ``:strength=…,softening=…``.
        method: one of ``METHODS`` (exact, or a mean-field method).
        states: the lowest states to find (exact only).
        restricted: mean-field only; None is restricted for closed shells.
    """

    points: int = 100
    x_min: float = -10.0
    x_max: float = 10.0
    electrons: str = "ud"
    potential: str = "harmonic"
    interaction: str = "softened"
    stencil: int = 13
    method: str = "exact"
    states: int = 1
    restricted: bool | None = None

    def __post_init__(self) -> None:
        require_finite(x_min=self.x_min, x_max=self.x_max)
        require(self.method in METHODS, "method", f"one of {METHODS}", self.method)
        require(
            isinstance(self.states, int) and not isinstance(self.states, bool) and self.states >= 1,
            "states",
            "a positive integer",
            self.states,
        )
        require(
            self.states == 1 or self.method == "exact",
            "states",
            f"1 for the mean-field method {self.method!r} (excited states need 'exact')",
            self.states,
        )
        require(
            self.restricted is None or self.method != "exact",
            "restricted",
            "None for the exact method (restricted/unrestricted is a mean-field choice)",
            self.restricted,
        )
        self.system()  # grid, electrons, potential and interaction, each checked by name

    def system(self) -> System:
        return make_system(
            self.points,
            self.x_min,
            self.x_max,
            self.electrons,
            self.potential,
            self.interaction,
            self.stencil,
        )


def run(config: Exact1DConfig, progress: Callable[..., None] | None = None) -> GroundStateReport:
    """Solve ``config``'s system with its method; the report carries the config.

    ``progress`` (the protocol of :mod:`densitylab.progress`) hears 0 of 1 before the solve
    and 1 of 1 after it: one solve has no finer steps to report.
    """
    if progress:
        progress(0, 1)
    options = {} if config.restricted is None else {"restricted": config.restricted}
    report = solve_ground_state(config.system(), config.method, states=config.states, **options)
    if progress:
        progress(1, 1)
    return replace(report, config=asdict(config))
