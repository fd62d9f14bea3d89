"""Model systems: a grid, an external potential, an interaction and a spin configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from densitylab.errors import InvalidParameterError, require
from densitylab.model1d.grid import Grid
from densitylab.model1d.interactions import Interaction
from densitylab.model1d.potentials import resolve_potential

MAX_ELECTRONS = 6


def parse_electrons(electrons: str) -> tuple[int, int]:
    """Count up and down electrons in a spin string such as ``"uud"``.

    Raises:
        InvalidParameterError: empty string, characters other than u/d, or too many electrons.
    """
    require(
        isinstance(electrons, str) and len(electrons) > 0 and set(electrons) <= {"u", "d"},
        "electrons",
        "a spin string of 'u' and 'd' characters, e.g. 'ud' or 'uud'",
        electrons,
    )
    require(len(electrons) <= MAX_ELECTRONS, "electrons", f"at most {MAX_ELECTRONS} electrons", electrons)
    return electrons.count("u"), electrons.count("d")


@dataclass(frozen=True, eq=False)
class System:
    """A 1D model system.

    Attributes:
        grid: the real-space grid.
        v_ext: external potential on the grid, shape (N,), Ha.
        electrons: spin string, e.g. ``"ud"``; only the counts of u and d matter.
        interaction: the electron-electron interaction.
    """

    grid: Grid
    v_ext: np.ndarray
    electrons: str
    interaction: Interaction = field(default_factory=Interaction)

    def __post_init__(self) -> None:
        parse_electrons(self.electrons)
        v_ext = np.asarray(self.v_ext, dtype=float)
        require(v_ext.shape == (self.grid.points,), "v_ext", f"shape ({self.grid.points},)", v_ext.shape)
        require(bool(np.all(np.isfinite(v_ext))), "v_ext", "finite values (no NaN or inf)")
        object.__setattr__(self, "v_ext", v_ext)

    @property
    def n_up(self) -> int:
        return self.electrons.count("u")

    @property
    def n_down(self) -> int:
        return self.electrons.count("d")

    @property
    def count(self) -> int:
        return len(self.electrons)

    @cached_property
    def w(self) -> np.ndarray:
        """Interaction matrix w(x_i, x_j), shape (N, N), Ha."""
        return self.interaction.matrix(self.grid.x)

    def parameters(self) -> dict[str, object]:
        """Everything needed to rebuild the system (v_ext stored separately as an array)."""
        return {
            "points": self.grid.points,
            "x_min": self.grid.x_min,
            "x_max": self.grid.x_max,
            "stencil": self.grid.stencil,
            "electrons": self.electrons,
            "interaction": self.interaction.to_spec(),
        }


def parse_interaction(spec: str | Interaction) -> Interaction:
    """Parse ``softened``, ``soft-coulomb:softening=1``, ``none``, … into an :class:`Interaction`."""
    if isinstance(spec, Interaction):
        return spec
    name, _, arguments = str(spec).partition(":")
    keywords: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in arguments.split(","))):
        key, sep, value = item.partition("=")
        require(
            sep == "=" and key.strip() in ("strength", "softening"),
            "interaction",
            "'kind[:strength=s,softening=a]'",
            spec,
        )
        try:
            keywords[key.strip()] = float(value)
        except ValueError:
            raise InvalidParameterError("interaction", f"a number for {key.strip()}", value) from None
    return Interaction(kind=name.strip(), **keywords)


def make_system(
    points: int,
    x_min: float,
    x_max: float,
    electrons: str,
    potential: str | np.ndarray | Path,
    interaction: str | Interaction = "softened",
    stencil: int = 13,
) -> System:
    """Build a :class:`System` from user-level parameters (the CLI's options)."""
    grid = Grid(points=points, x_min=x_min, x_max=x_max, stencil=stencil)
    return System(
        grid=grid,
        v_ext=resolve_potential(potential, grid.x),
        electrons=electrons,
        interaction=parse_interaction(interaction),
    )
