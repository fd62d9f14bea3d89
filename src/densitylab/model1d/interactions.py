"""Electron-electron interactions w(x − x') on a 1D grid (Ha)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from densitylab.errors import require

INTERACTION_KINDS = ("softened", "soft-coulomb", "none")


@dataclass(frozen=True)
class Interaction:
    """A pair interaction that depends on |x − x'| only.

    kinds:
        ``softened``: s / (|x − x'| + a)   (iDEA's default; the 1-RDM paper's 1/(|x−x'|+1))
        ``soft-coulomb``: s / √((x − x')² + a)
        ``none``: no interaction.

    Attributes:
        kind: one of ``INTERACTION_KINDS``.
        strength: s (Ha·bohr).
        softening: a (bohr for ``softened``, bohr² for ``soft-coulomb``).
    """

    kind: str = "softened"
    strength: float = 1.0
    softening: float = 1.0

    def __post_init__(self) -> None:
        require(self.kind in INTERACTION_KINDS, "interaction", f"one of {INTERACTION_KINDS}", self.kind)
        require(np.isfinite(self.strength), "interaction strength", "a finite number", self.strength)
        require(
            self.kind == "none" or (np.isfinite(self.softening) and self.softening > 0),
            "interaction softening",
            "a positive number (it keeps w finite at x = x')",
            self.softening,
        )

    def of_distance(self, distance: np.ndarray) -> np.ndarray:
        """w as a function of |x − x'| (any shape), Ha."""
        distance = np.abs(distance)
        if self.kind == "softened":
            return self.strength / (distance + self.softening)
        if self.kind == "soft-coulomb":
            return self.strength / np.sqrt(distance**2 + self.softening)
        return np.zeros_like(distance, dtype=float)

    def matrix(self, x: np.ndarray) -> np.ndarray:
        """w(x_i, x_j) on the grid, shape (N, N), Ha."""
        return self.of_distance(x[:, None] - x[None, :])

    def to_spec(self) -> str:
        """The CLI spelling, e.g. ``softened:strength=1,softening=1``."""
        if self.kind == "none":
            return "none"
        return f"{self.kind}:strength={_exact(self.strength)},softening={_exact(self.softening)}"


def _exact(value: float) -> str:
    """Short when that is exact (1 for 1.0), else every digit (the spec must rebuild the value)."""
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))
