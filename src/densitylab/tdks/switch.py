"""A v_c functional of the density and of the initial state: a trained network and the anchors
as experts, one of them chosen per trajectory from how each did on the training cases whose
initial states are nearest (``densitylab tdks switch``).

The exact v_c depends on the initial state as well as on the density's history (Maitra, Burke
and Woodward, PRL 89, 023002 (2002)). The selector reads one number of the initial KS state,
its inward speed (:func:`inward_speed`): about +|p|/2 for a packet of momentum p that meets
the rest of the density, −|p|/2 for one that leaves it, 0 for a ground state. For a new
trajectory it takes the ``neighbours`` training cases nearest in that number (with every case
tied with the last) and propagates the expert whose worst error over them, relative to
exchange-only's, is least: on the cases it was fitted on, never above exchange-only, which is
one of the experts. The number of neighbours is chosen by leave-one-out on the training cases
(:func:`cross_validated_neighbours`) unless given. A hand-written nearest-neighbour rule: no
library picks among propagation models by a table of measured errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from densitylab.errors import require

#: The experts in the order ties are broken: the network, then the anchors.
EXPERTS = ("network", "sce", "alda", "exchange-only")

#: Initial states closer than this (a.u. of speed) count as one in the neighbour ranking.
TIE = 1e-6


def inward_speed(orbital: np.ndarray, x: np.ndarray) -> float:
    """∫ j(x) sign(⟨x⟩ − x) dx / ∫ n dx (a.u.) of the doubly occupied orbital φ (N,) on the
    uniform grid x (N,): the current towards the density's centre per electron, with n = 2|φ|²
    and j = 2 Im(φ* ∂ₓφ) (central differences). 0 for a real orbital (a ground state); for a
    packet √n e^{ikx} on one side of the centre, ±|k| times its share of the electrons, + when
    it moves towards the centre. Invariant under translation and reflection."""
    orbital, x = np.asarray(orbital), np.asarray(x)
    density = 2.0 * np.abs(orbital) ** 2
    total = float(np.sum(density))
    if not (math.isfinite(total) and total > 0):
        return math.nan  # no density: no speed
    current = 2.0 * np.imag(np.conj(orbital) * np.gradient(orbital, x[1] - x[0]))
    centre = np.sum(x * density) / total
    return float(np.sum(current * np.sign(centre - x)) / total)


@dataclass(frozen=True)
class SwitchCase:
    """A training case of a switch: its name, the inward speed of its initial state (a.u.)
    and each expert's max ∫|n_KS − n_exact| dx on it."""

    name: str
    speed: float
    errors: dict

    def ratio(self, expert: str) -> float:
        """The expert's error over exchange-only's (a diverged propagation's error is inf)."""
        error, reference = self.errors[expert], self.errors["exchange-only"]
        if reference > 0:
            return error / reference
        return 1.0 if error <= 0 else math.inf


def choose(cases: tuple[SwitchCase, ...], speed: float, neighbours: int) -> tuple[str, tuple[str, ...]]:
    """(the expert for an initial state of inward speed ``speed``, the cases that chose it):
    the ``neighbours`` nearest cases and every case tied with the last (within :data:`TIE`);
    the expert of least max error/exchange-only error over them, ties in :data:`EXPERTS` order."""
    distances = np.array([abs(case.speed - speed) for case in cases])
    cutoff = np.sort(distances)[min(neighbours, len(cases)) - 1] + TIE
    near = tuple(case for case, distance in zip(cases, distances, strict=True) if distance <= cutoff)
    scores = {expert: max(case.ratio(expert) for case in near) for expert in EXPERTS}
    best = min(EXPERTS, key=lambda expert: (scores[expert], EXPERTS.index(expert)))
    return best, tuple(case.name for case in near)


def leave_one_out(cases: tuple[SwitchCase, ...], neighbours: int) -> list[str | None]:
    """Each case's expert as chosen by the others (None where there are no others)."""
    if len(cases) < 2:
        return [None] * len(cases)
    return [choose(tuple(c for c in cases if c is not case), case.speed, neighbours)[0] for case in cases]


#: The largest number of neighbours cross-validation tries.
MOST_NEIGHBOURS = 5


def cross_validated_neighbours(cases: tuple[SwitchCase, ...]) -> tuple[int, dict[int, float]]:
    """(the number of neighbours whose leave-one-out choices have the least mean error relative
    to exchange-only's, ties to the larger; {neighbours: that mean}) over 1 … min(5, cases − 1)."""
    scores = {}
    for neighbours in range(1, max(1, min(MOST_NEIGHBOURS, len(cases) - 1)) + 1):
        chosen = leave_one_out(cases, neighbours)
        ratios = [
            case.ratio(expert) for case, expert in zip(cases, chosen, strict=True) if expert is not None
        ]
        scores[neighbours] = float(np.mean(ratios)) if ratios else 1.0
    best = min(scores, key=lambda neighbours: (scores[neighbours], -neighbours))
    return best, scores


@dataclass(frozen=True, eq=False)
class Switch:
    """A switched functional (kind ``tdks-switch``): the network or committee ``network``, the
    training ``cases`` and the number of ``neighbours`` that choose among the experts."""

    network: object
    cases: tuple[SwitchCase, ...]
    neighbours: int

    def choose(self, orbital: np.ndarray, x: np.ndarray) -> tuple[str, tuple[str, ...]]:
        """(expert, the nearest training cases) for the initial orbital (N,) on the grid x."""
        speed = inward_speed(orbital, x)
        require(
            math.isfinite(speed), "orbital0", "a finite, non-zero initial orbital", "a zero or non-finite one"
        )
        return choose(self.cases, speed, self.neighbours)


def check_neighbours(neighbours: object) -> None:
    require(
        isinstance(neighbours, int) and not isinstance(neighbours, bool) and neighbours >= 1,
        "neighbours",
        "a positive integer",
        neighbours,
    )


def save_switch(
    path: str | Path, network_folder: Path, cases: list[SwitchCase], neighbours: int, **extra
) -> Path:
    """An artefact folder (kind ``tdks-switch``): the network's folder copied to ``network``,
    the cases and ``neighbours`` in the manifest. The folder appears whole or not at all."""
    import shutil

    from densitylab.artefacts import artefact_folder, write_manifest

    table = [{"name": case.name, "speed": case.speed, "errors": case.errors} for case in cases]
    with artefact_folder(path) as folder:
        shutil.copytree(network_folder, folder / "network")
        write_manifest(folder, "tdks-switch", {"neighbours": neighbours, "cases": table}, **extra)
    return Path(path)


def load_switch(path: str | Path) -> Switch:
    """A ``tdks-switch`` folder as its :class:`Switch`."""
    from densitylab.artefacts import read_manifest
    from densitylab.tdks.models import load_density_net

    config = read_manifest(path, ("tdks-switch",))["config"]
    cases = tuple(
        SwitchCase(row["name"], float(row["speed"]), dict(row["errors"])) for row in config["cases"]
    )
    require(
        len(cases) >= 1 and all(set(case.errors) == set(EXPERTS) for case in cases),
        "model",
        f"a switch whose cases hold the errors of {EXPERTS}",
        str(path),
    )
    check_neighbours(config["neighbours"])
    return Switch(load_density_net(Path(path) / "network"), cases, int(config["neighbours"]))
