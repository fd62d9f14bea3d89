import numpy as np
import pytest

from densitylab.errors import InvalidParameterError
from densitylab.model1d import Grid, Interaction
from densitylab.model1d.propagation import (
    Scenario,
    edge_charge,
    laser_scenario,
    load_trajectory,
    propagate,
    save_trajectory,
    scattering_scenario,
)


def _product_scenario(grid, v_ext, orbital, field=None, interaction="none"):
    psi = np.outer(orbital, orbital).astype(complex)
    psi /= np.sqrt(np.sum(np.abs(psi) ** 2) * grid.dx**2)
    return Scenario("test", grid, Interaction(interaction), psi, v_ext, field, {"scenario": "test"})


def test_scattering_conserves_norm_and_energy():
    scenario = scattering_scenario(momentum=-1.5, dx=0.4, x_min=-40.0, x_max=30.0, stencil=7)
    trajectory = propagate(scenario, 0.02, 500, store_every=50)
    assert np.max(np.abs(trajectory.norm - 1.0)) < 1e-10
    # Strang splitting conserves a shadow Hamiltonian: the energy error is O(dt²)
    drift = np.max(np.abs(trajectory.energy - trajectory.energy[0]))
    finer = propagate(scenario, 0.01, 1000, store_every=100)
    finer_drift = np.max(np.abs(finer.energy - finer.energy[0]))
    assert drift < 2e-6 and 3.5 < drift / finer_drift < 4.5
    # the packet has moved by about p·t to the left and reached the atom
    dx = trajectory.x[1] - trajectory.x[0]
    right = trajectory.x > 0
    assert np.sum(trajectory.density[0, right]) * dx == pytest.approx(1.0, abs=1e-3)
    assert np.sum(trajectory.density[-1, right]) * dx < 0.1


def test_coherent_state_follows_the_classical_orbit():
    """Two non-interacting electrons in a displaced oscillator ground state: ⟨x⟩ = x₀ cos ωt."""
    grid = Grid(160, -12.0, 12.0, 13, boundary="periodic")
    omega, x0 = 0.5, 2.0
    orbital = np.exp(-0.5 * omega * (grid.x - x0) ** 2)
    trajectory = propagate(_product_scenario(grid, 0.5 * omega**2 * grid.x**2, orbital), 0.005, 2000, 100)
    mean_x = 0.5 * np.sum(trajectory.density * grid.x, axis=1) * grid.dx
    np.testing.assert_allclose(mean_x, x0 * np.cos(omega * trajectory.times), atol=2e-5)


def test_split_operator_and_crank_nicolson_agree_for_a_driven_atom():
    grid = Grid(48, -9.0, 9.0, 3)
    v_ext = -2.0 / np.sqrt(grid.x**2 + 1.0)
    orbital = np.exp(-0.5 * grid.x**2)
    scenario = _product_scenario(grid, v_ext, orbital, lambda t: 0.2 * np.sin(0.7 * t), "soft-coulomb")
    split = propagate(scenario, 0.002, 1000, 100)
    crank = propagate(scenario, 0.002, 1000, 100, method="crank-nicolson")
    assert np.max(np.abs(crank.norm - 1.0)) < 1e-10
    # the same hard-wall operator (the default for a 3-point stencil): only the O(dt²) errors differ
    assert np.max(np.sum(np.abs(split.density - crank.density), axis=1) * grid.dx) < 2e-5


def test_crank_nicolson_conserves_energy_exactly_without_field():
    grid = Grid(40, -8.0, 8.0, 5)
    orbital = np.exp(-0.5 * (grid.x - 1.0) ** 2) * (1 + 0.3 * grid.x)
    scenario = _product_scenario(grid, -2.0 / np.sqrt(grid.x**2 + 1.0), orbital, None, "soft-coulomb")
    trajectory = propagate(scenario, 0.05, 100, 10, method="crank-nicolson")
    assert np.max(np.abs(trajectory.energy - trajectory.energy[0])) < 1e-11


def test_current_obeys_the_continuity_equation():
    scenario = scattering_scenario(momentum=-1.0, dx=0.25, x_min=-25.0, x_max=25.0, stencil=13)
    trajectory = propagate(scenario, 0.001, 20, store_every=1)
    dt, dx = 0.001, scenario.grid.dx
    rate = (trajectory.density[2:] - trajectory.density[:-2]) / (2 * dt)
    k = 2 * np.pi * np.fft.fftfreq(len(trajectory.x), dx)
    divergence = np.real(np.fft.ifft(1j * k * np.fft.fft(trajectory.current[1:-1], axis=1), axis=1))
    assert np.max(np.abs(rate + divergence)) < 1e-4 * np.max(np.abs(rate))


def test_triplet_density_differs_from_singlet_by_exchange_hole():
    singlet = scattering_scenario(momentum=-1.0, dx=0.5, x_min=-30.0, x_max=20.0, spin="singlet")
    triplet = scattering_scenario(momentum=-1.0, dx=0.5, x_min=-30.0, x_max=20.0, spin="triplet")
    np.testing.assert_allclose(triplet.psi0, -triplet.psi0.T, atol=1e-15)
    np.testing.assert_allclose(singlet.psi0, singlet.psi0.T, atol=1e-15)
    assert np.max(np.abs(np.diag(triplet.psi0))) < 1e-14  # Pauli: ψ(x, x) = 0


def test_laser_ground_state_is_stationary_without_field():
    """The exact ground state stays put, up to the splitting's O(dt²) error."""
    scenario = laser_scenario(amplitude=0.0, duration=1.0, dx=0.4, x_min=-12.0, x_max=12.0, stencil=13)

    def change(dt):
        trajectory = propagate(scenario, dt, round(1.0 / dt), store_every=round(0.5 / dt))
        return np.max(np.sum(np.abs(trajectory.density - trajectory.density[0]), axis=1)) * scenario.grid.dx

    coarse, fine = change(0.01), change(0.005)
    assert coarse < 5e-5 and 3.5 < coarse / fine < 4.5


def test_interrupted_run_resumes_to_the_same_trajectory(tmp_path):
    scenario = scattering_scenario(momentum=-1.0, dx=0.5, x_min=-30.0, x_max=20.0)
    reference = propagate(scenario, 0.01, 100, store_every=5)
    checkpoint = tmp_path / "run.partial.npz"

    def interrupt(step, total):
        if step == 63:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        propagate(scenario, 0.01, 100, 5, progress=interrupt, checkpoint=checkpoint, checkpoint_every=4)
    assert checkpoint.is_file()
    resumed = propagate(scenario, 0.01, 100, 5, checkpoint=checkpoint, checkpoint_every=4)
    np.testing.assert_allclose(resumed.density, reference.density, atol=1e-13)
    assert not checkpoint.exists()
    with pytest.raises(InvalidParameterError, match="checkpoint"):
        with pytest.raises(KeyboardInterrupt):
            propagate(scenario, 0.01, 100, 5, progress=interrupt, checkpoint=checkpoint, checkpoint_every=4)
        propagate(scenario, 0.02, 50, 5, checkpoint=checkpoint)


def test_trajectory_round_trip(tmp_path):
    scenario = laser_scenario(amplitude=0.05, duration=1.0, dx=0.5, x_min=-10.0, x_max=10.0)
    trajectory = propagate(scenario, 0.01, 100, store_every=10)
    assert len(trajectory.field_midpoints) == 10
    loaded = load_trajectory(save_trajectory(trajectory, tmp_path / "t.h5"))
    np.testing.assert_array_equal(loaded.density, trajectory.density)
    np.testing.assert_array_equal(loaded.field_midpoints, trajectory.field_midpoints)
    assert loaded.parameters == trajectory.parameters


def test_bad_inputs_are_refused():
    scenario = scattering_scenario(momentum=-1.0, dx=0.5, x_min=-30.0, x_max=20.0)
    with pytest.raises(InvalidParameterError, match="store_every"):
        propagate(scenario, 0.01, 10, store_every=3)
    with pytest.raises(InvalidParameterError, match="method"):
        propagate(scenario, 0.01, 10, method="euler")
    with pytest.raises(InvalidParameterError, match="dt"):
        propagate(scenario, -0.1, 10)
    with pytest.raises(InvalidParameterError, match="spin"):
        scattering_scenario(spin="quartet")


def test_hard_wall_split_operator_reflects_at_the_walls_like_crank_nicolson():
    """A packet sent into the wall: the sine-transform split-operator and Crank–Nicolson (both
    with the hard-wall 3-point operator) agree to their O(dt²) error; the periodic box lets
    the packet through to the other side instead."""
    grid = Grid(60, -9.0, 9.0, 3)
    orbital = np.exp(-0.5 * (grid.x - 4.0) ** 2 + 1.5j * grid.x)
    scenario = _product_scenario(grid, np.zeros(grid.points), orbital, None, "soft-coulomb")
    crank = propagate(scenario, 0.002, 2000, 200, method="crank-nicolson")
    wall = propagate(scenario, 0.002, 2000, 200)
    periodic = propagate(scenario, 0.002, 2000, 200, boundary="periodic")
    assert wall.parameters["boundary"] == "hard-wall"

    def difference(trajectory):
        return np.max(np.sum(np.abs(trajectory.density - crank.density), axis=1)) * grid.dx

    assert difference(wall) < 1e-3
    assert difference(periodic) > 0.5
    assert edge_charge(crank, width=2.0) > 0.5  # the packet did reach the wall
    np.testing.assert_allclose(wall.energy, wall.energy[0], atol=1e-6)
    with pytest.raises(InvalidParameterError, match="boundary"):
        propagate(scenario, 0.01, 10, method="crank-nicolson", boundary="periodic")
    with pytest.raises(InvalidParameterError, match="boundary"):
        wide = _product_scenario(Grid(60, -9.0, 9.0, 5), np.zeros(60), orbital)
        propagate(wide, 0.01, 10, boundary="hard-wall")


def test_scenarios_place_the_grid_for_their_boundary():
    """Hard walls sit at the ends of the box (points x_min + dx … x_max − dx); a periodic box
    keeps x_min and leaves out x_max; propagate follows the scenario's boundary."""
    walls = scattering_scenario(dx=0.5, x_min=-30.0, x_max=20.0, stencil=3)
    ring = scattering_scenario(dx=0.5, x_min=-30.0, x_max=20.0, stencil=3, boundary="periodic")
    assert walls.grid.points == 99 and walls.grid.x[0] == pytest.approx(-29.5)
    assert walls.grid.x[-1] == pytest.approx(19.5)
    assert ring.grid.points == 100 and ring.grid.x[0] == pytest.approx(-30.0)
    assert propagate(ring, 0.01, 2).parameters["boundary"] == "periodic"
    assert propagate(walls, 0.01, 2).parameters["boundary"] == "hard-wall"
    with pytest.raises(InvalidParameterError, match="boundary"):
        laser_scenario(duration=1.0, dx=0.5, x_min=-10.0, x_max=10.0, stencil=5, boundary="hard-wall")
