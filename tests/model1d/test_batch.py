import numpy as np
import pytest

from densitylab.errors import InvalidParameterError
from densitylab.model1d import Grid, Interaction, System, solve_exact
from densitylab.model1d.batch import solve_singlet_batch, uhf_two_electron_batch
from densitylab.model1d.meanfield import solve_mean_field
from densitylab.model1d.potentials import random_fourier

GRID = Grid(points=40, x_min=-7.5, x_max=7.5)
POTENTIALS = np.array([random_fourier(GRID.x, seed=seed) for seed in range(12)])


def test_batched_singlets_equal_the_general_exact_solver():
    batch = solve_singlet_batch(GRID, POTENTIALS, Interaction())
    for index in (0, 5, 11):
        reference = solve_exact(System(GRID, POTENTIALS[index], "ud")).ground
        assert batch.energy[index] == pytest.approx(reference.energy, abs=1e-12)
        assert batch.kinetic_energy[index] == pytest.approx(reference.kinetic_energy, abs=1e-9)
        assert batch.interaction_energy[index] == pytest.approx(reference.interaction_energy, abs=1e-9)
        np.testing.assert_allclose(batch.rdm1[index], reference.rdm1, atol=1e-8)
    np.testing.assert_allclose(np.trace(batch.rdm1, axis1=1, axis2=2) * GRID.dx, 2.0, atol=1e-12)
    np.testing.assert_allclose(batch.wavefunction, batch.wavefunction.transpose(0, 2, 1), atol=1e-15)


def test_batched_uhf_equals_general_unrestricted_hartree_fock():
    batch = uhf_two_electron_batch(GRID, POTENTIALS, Interaction())
    for index in range(0, 12, 3):
        reference = solve_mean_field(System(GRID, POTENTIALS[index], "ud"), "hartree-fock", restricted=False)
        assert batch.energy[index] == pytest.approx(reference.energy, abs=1e-9)
        assert batch.kinetic_energy[index] == pytest.approx(reference.kinetic_energy, abs=1e-7)
        np.testing.assert_allclose(batch.density[index], reference.density, atol=1e-7)


def test_batched_uhf_finds_symmetry_broken_solution_below_restricted():
    potential = 2.0 * ((2 * GRID.x / 7.0) ** 2 - 1.0) ** 2  # deep double well
    batch = uhf_two_electron_batch(GRID, potential[None], Interaction())
    restricted = solve_mean_field(System(GRID, potential, "ud"), "hartree-fock", restricted=True).energy
    overlap = np.sum(batch.orbital_up[0] * batch.orbital_down[0]) * GRID.dx
    assert batch.energy[0] < restricted - 1e-4
    assert abs(overlap) < 0.99


def test_batch_rejects_potentials_of_the_wrong_shape():
    with pytest.raises(InvalidParameterError, match="v_ext"):
        solve_singlet_batch(GRID, POTENTIALS[:, :-1], Interaction())


def test_batched_uhf_converges_on_coarse_grids_where_diis_oscillates():
    # 6 points 3 bohr apart: DIIS oscillates for some of these; the monotone descent must finish
    grid = Grid(points=6, x_min=-7.5, x_max=7.5, stencil=3)
    potentials = np.array([random_fourier(grid.x, seed=seed) for seed in range(2000)])
    batch = uhf_two_electron_batch(grid, potentials, Interaction(), tol=1e-8)
    assert np.all(batch.residual < 1e-8)
    restricted = np.array(
        [
            solve_mean_field(System(grid, v, "ud"), "hartree-fock", restricted=True).energy
            for v in potentials[:50]
        ]
    )
    assert np.all(batch.energy[:50] <= restricted + 1e-10)
