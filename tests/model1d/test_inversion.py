import numpy as np
import pytest

from densitylab.errors import InvalidParameterError
from densitylab.model1d import make_system, solve_exact
from densitylab.model1d.inversion import invert_density, invert_system_density


@pytest.mark.parametrize(
    "spins, potential", [("ud", "double-well:barrier=1,separation=6"), ("uud", "atom:charge=3")]
)
def test_inversion_reproduces_exact_density(spins, potential):
    system = make_system(90, -10, 10, spins, potential)
    density = solve_exact(system).ground.density
    result = invert_system_density(system, density)
    assert np.sum(np.abs(result.density - density)) * system.grid.dx <= 1e-6
    # gauge: v_KS matches v_ext at the box edges (on average)
    assert 0.5 * ((result.v_ks - system.v_ext)[0] + (result.v_ks - system.v_ext)[-1]) == pytest.approx(
        0, abs=1e-12
    )


def test_inversion_recovers_a_known_potential_where_the_density_lives():
    system = make_system(80, -8, 8, "uu", "0.5*0.3**2*x**2 - 1.5*exp(-(x-1)**2)")
    grid = system.grid
    _, vectors = np.linalg.eigh(grid.kinetic_dense() + np.diag(system.v_ext))
    density = np.sum(vectors[:, :2] ** 2, axis=1) / grid.dx
    start = 0.5 * 0.3**2 * grid.x**2  # the well is missing from the start
    result = invert_density(grid, density, "uu", start, v_edge=system.v_ext)
    region = density > 1e-3
    difference = (result.v_ks - system.v_ext)[region]
    assert np.ptp(difference) < 1e-5


def test_inversion_rejects_densities_with_wrong_electron_count():
    system = make_system(40, -5, 5, "ud", "harmonic")
    density = solve_exact(system).ground.density
    with pytest.raises(InvalidParameterError, match="density"):
        invert_system_density(system, 1.5 * density)
    with pytest.raises(InvalidParameterError, match="density"):
        invert_system_density(system, density[:-1])
