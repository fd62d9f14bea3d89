"""The hard-wall split-operator against Crank–Nicolson (the setups of tests/model1d/test_propagation.py)."""

import numpy as np

from densitylab.model1d import Grid, Interaction
from densitylab.model1d.propagation import Scenario, propagate


def scenario(grid, v_ext, orbital, field=None):
    psi = np.outer(orbital, orbital).astype(complex)
    psi /= np.sqrt(np.sum(np.abs(psi) ** 2) * grid.dx**2)
    return Scenario("t", grid, Interaction("soft-coulomb"), psi, v_ext, field, {"scenario": "t"})


def gap(a, b, dx):
    return np.max(np.sum(np.abs(a.density - b.density), axis=1)) * dx


grid = Grid(60, -9.0, 9.0, 3)
wall = scenario(grid, np.zeros(60), np.exp(-0.5 * (grid.x - 4.0) ** 2 + 1.5j * grid.x))
crank = propagate(wall, 0.002, 2000, 200, method="crank-nicolson")
print(
    "packet into the wall: hard-wall",
    gap(propagate(wall, 0.002, 2000, 200), crank, grid.dx),
    "periodic",
    gap(propagate(wall, 0.002, 2000, 200, boundary="periodic"), crank, grid.dx),
)
grid = Grid(48, -9.0, 9.0, 3)
atom = scenario(
    grid, -2.0 / np.sqrt(grid.x**2 + 1.0), np.exp(-0.5 * grid.x**2), lambda t: 0.2 * np.sin(0.7 * t)
)
print(
    "driven atom:",
    gap(
        propagate(atom, 0.002, 1000, 100), propagate(atom, 0.002, 1000, 100, method="crank-nicolson"), grid.dx
    ),
)
