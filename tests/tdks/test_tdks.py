import json

import equinox
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from densitylab.errors import InvalidParameterError
from densitylab.model1d import Grid, Interaction
from densitylab.model1d.propagation import Scenario, laser_scenario
from densitylab.model1d.propagation import propagate as exact_propagate
from densitylab.tdks.learn import train
from densitylab.tdks.models import (
    DensityNetConfig,
    build_density_net,
    density_net_model,
    free_values,
)
from densitylab.tdks.propagation import (
    KSProblem,
    density_errors,
    loss_and_gradient,
    orbital_from_density,
    problem_from_trajectory,
    propagate,
)

X = np.linspace(-10.0, 10.0, 80)
DX = X[1] - X[0]


def _problem(steps=64, dt=0.05, x=X):
    v_ext = np.tile(-1.0 / np.sqrt(x**2 + 1.0), (steps, 1))
    w = 1.0 / np.sqrt((x[:, None] - x[None, :]) ** 2 + 1.0)
    orbital = np.exp(-(x**2) / 4 + 0.5j * x)
    orbital /= np.sqrt(np.sum(np.abs(orbital) ** 2) * (x[1] - x[0]))
    return KSProblem(x, v_ext, w, orbital, dt)


def _wiggle(params, window, k):
    return 0.3 * jnp.sin(X) * jnp.cos(0.2 * k)


def test_norm_is_conserved_with_any_potential():
    densities, _ = propagate(_problem(), _wiggle, None)
    np.testing.assert_allclose(np.sum(densities, axis=1) * DX, 2.0, atol=1e-12)


def test_gradient_matches_finite_differences():
    problem = _problem()
    target = np.asarray(propagate(problem, _wiggle, None)[0])
    params, model = free_values(problem.steps, problem.points)
    rng = np.random.default_rng(0)
    params = params + 0.01 * rng.normal(size=params.shape)
    loss_grad = loss_and_gradient(problem, model, target)
    _, gradient = loss_grad(params)
    direction = rng.normal(size=params.shape)
    eps = 1e-5
    finite = (loss_grad(params + eps * direction)[0] - loss_grad(params - eps * direction)[0]) / (2 * eps)
    analytic = float(jnp.sum(gradient * direction))
    assert abs(finite - analytic) < 1e-6 * abs(analytic)


def test_checkpoint_block_size_does_not_change_the_result():
    problem = _problem(steps=60)
    whole, _ = propagate(problem, _wiggle, None, block=60)
    blocked, _ = propagate(problem, _wiggle, None, block=7)  # adjusted to a divisor (6)
    np.testing.assert_allclose(blocked, whole, atol=1e-14)


def test_orbital_from_density_reproduces_density_and_current():
    phase = 0.7 * X + 0.05 * X**2
    density = 2.0 * np.exp(-(X**2) / 3) / np.sqrt(3 * np.pi)
    current = density * (0.7 + 0.1 * X)  # n θ'
    orbital = orbital_from_density(density, current, DX)
    np.testing.assert_allclose(2 * np.abs(orbital) ** 2, density / (np.sum(density) * DX / 2), rtol=1e-12)
    reference = np.sqrt(density / 2) * np.exp(1j * phase)
    overlap = np.abs(np.sum(np.conj(reference) * orbital) * DX) / np.sqrt(np.sum(np.abs(reference) ** 2) * DX)
    assert overlap > 1 - 1e-5  # the phase is integrated with the trapezoid rule


def _noninteracting_trajectory(ks_dt=0.0125, time=2.0):
    """Two non-interacting electrons sharing one orbital, driven by a field: exactly a KS system."""
    grid = Grid(60, -12.0, 12.0 - 24.0 / 60, 3)
    v_ext = -2.0 / np.sqrt(grid.x**2 + 1.0)
    orbital = np.exp(-0.5 * grid.x**2)
    psi = np.outer(orbital, orbital).astype(complex)
    psi /= np.sqrt(np.sum(np.abs(psi) ** 2) * grid.dx**2)
    parameters = {"scenario": "test", "interaction": "none"}
    scenario = Scenario("test", grid, Interaction("none"), psi, v_ext, lambda t: 0.3 * np.sin(t), parameters)
    store = 5
    return exact_propagate(scenario, ks_dt / store, round(time / ks_dt) * store, store)


def test_exchange_only_is_exact_without_interaction_and_learned_vc_stays_near_zero():
    problem, target = problem_from_trajectory(_noninteracting_trajectory())
    params, model = free_values(problem.steps, problem.points)
    densities, _ = propagate(problem, model, params)
    assert density_errors(densities, target, problem.dx).max() < 2e-4  # O(dt²) of the KS step
    learned, _history = train([problem], [target], params, model, iterations=60)
    densities, _ = propagate(problem, model, learned)
    assert density_errors(densities, target, problem.dx).max() < 2e-5
    # v_c is fixed only up to a constant per time and where there is density: compare there
    occupied = target[0] > 1e-2
    values = np.asarray(learned)[:, occupied]
    assert np.abs(values - values.mean(axis=1, keepdims=True)).max() < 1e-3  # Ha; measured 1.4e-4


def test_memory_model_is_causal():
    """v_c at step k never depends on what happens after k."""
    problem = _problem(steps=40)
    net = build_density_net(DensityNetConfig(memory=3, channels=4, depth=2, kernel=5, dx=DX, dt=0.05, seed=1))
    net = jax.tree_util.tree_map(lambda leaf: leaf + 0.1 if equinox.is_inexact_array(leaf) else leaf, net)
    params, model = density_net_model(net)
    _, v_c = propagate(problem, model, params, memory=3)
    kicked = np.array(problem.v_ext)
    kicked[25:] += 0.5 * np.tanh(X)
    _, v_c_kicked = propagate(
        KSProblem(X, kicked, problem.interaction, problem.orbital0, problem.dt), model, params, memory=3
    )
    np.testing.assert_array_equal(np.asarray(v_c)[:26], np.asarray(v_c_kicked)[:26])
    assert np.abs(np.asarray(v_c)[27:] - np.asarray(v_c_kicked)[27:]).max() > 1e-6
    assert v_c.shape == (40, len(X))


def test_untrained_network_starts_from_exchange_only():
    problem = _problem(steps=20)
    net = build_density_net(DensityNetConfig(memory=2, channels=4, depth=2, kernel=5, dx=DX, dt=0.05))
    params, model = density_net_model(net)
    _, v_c = propagate(problem, model, params, memory=2)
    assert np.abs(np.asarray(v_c)).max() == 0.0


def test_lda_correlation_potential_is_the_derivative_of_the_energy_density():
    from densitylab.tdks.models import lda_correlation_energy, lda_correlation_potential

    density = np.geomspace(1e-3, 5.0, 40)
    step = 1e-6 * density
    energy = lambda n: n * np.asarray(lda_correlation_energy(n))  # noqa: E731
    finite = (energy(density + step) - energy(density - step)) / (2 * step)
    np.testing.assert_allclose(np.asarray(lda_correlation_potential(density)), finite, rtol=1e-6, atol=1e-10)
    # ε_c < 0, and it vanishes in the high-density limit of a bounded interaction
    assert np.all(np.asarray(lda_correlation_energy(density)) < 0)
    assert abs(float(lda_correlation_energy(1e4))) < 1e-6


def test_bad_configurations_are_refused():
    with pytest.raises(InvalidParameterError, match="kernel"):
        DensityNetConfig(kernel=4)
    with pytest.raises(InvalidParameterError, match="v_ext"):
        KSProblem(X, np.zeros((3, 5)), np.zeros((80, 80)), np.ones(80, complex), 0.1)
    from densitylab.tdks.workflow import LearnConfig

    # a zero step left v_c = 0 and a negative penalty rewarded roughness; both ran to the end
    for field, value in (("learning_rate", 0.0), ("smoothness", -1.0)):
        with pytest.raises(InvalidParameterError, match=f"^{field}"):
            LearnConfig(("trajectory.h5",), **{field: value})


def _exact_laser_command(runner, trajectory, *options):
    """`densitylab tdks exact` for 1 a.u. of a small laser-driven atom (21 stored samples)."""
    from densitylab.cli import app

    return runner.invoke(
        app,
        ["tdks", "exact", "--scenario", "laser", "--time", "1.0", "--dt", "0.01", "--store-every", "5",
         "--dx", "0.5", "--amplitude", "0.1", "--output", str(trajectory), *options],
    )  # fmt: skip


def test_exact_learn_and_evaluate_commands(tmp_path):
    from typer.testing import CliRunner

    from densitylab.cli import app

    runner = CliRunner()
    trajectory = tmp_path / "laser.h5"
    result = _exact_laser_command(runner, trajectory, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["norm_drift"] < 1e-10 and summary["stored"] == 21
    result = runner.invoke(
        app,
        ["tdks", "learn", "--trajectory", str(trajectory), "--model", "values", "--iterations", "30",
         "--output", str(tmp_path / "values"), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    learned = json.loads(result.stdout)["trajectory_0"]
    assert learned["density_error_max"] < 0.2 * learned["density_error_exchange_only"]
    result = runner.invoke(
        app,
        ["tdks", "evaluate", "--trajectory", str(trajectory), "--model", str(tmp_path / "values"), "--json",
         "--plot", str(tmp_path / "figures")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["density_error_max"] == pytest.approx(learned["density_error_max"], rel=1e-9)
    assert {"density_error_exchange_only", "density_error_alda", "density_error_sce"} <= metrics.keys()
    assert (tmp_path / "figures" / "errors.png").is_file()
    bad = runner.invoke(app, ["tdks", "evaluate", "--trajectory", str(trajectory), "--model", "nonsense"])
    assert bad.exit_code == 2 and "model" in bad.output


def test_fft_hartree_matches_the_matrix_product():
    from densitylab.tdks.propagation import hartree_operator

    density = np.exp(-((X - 1.0) ** 2)) + 0.3 * np.exp(-((X + 4.0) ** 2) / 2)
    w = 1.0 / np.sqrt((X[:, None] - X[None, :]) ** 2 + 1.0)
    np.testing.assert_allclose(np.asarray(hartree_operator(w, DX)(density)), w @ density * DX, rtol=1e-12)
    nonuniform = w * (1.0 + 0.1 * X[:, None] ** 2)  # not Toeplitz: the matrix path
    np.testing.assert_allclose(
        np.asarray(hartree_operator(nonuniform, DX)(density)), nonuniform @ density * DX, rtol=1e-12
    )


def test_interrupted_training_resumes_from_its_checkpoint(tmp_path):
    problem = _problem(steps=20)
    target = np.asarray(propagate(problem, _wiggle, None)[0])
    params, model = free_values(problem.steps, problem.points)
    checkpoint = tmp_path / "checkpoint.eqx"
    seen = []

    def interrupt(iteration, total, loss, gradient):  # the protocol's fields, by name
        seen.append(loss)
        if iteration == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train([problem], [target], params, model, iterations=12, progress=interrupt, checkpoint=checkpoint,
              checkpoint_every=5)  # fmt: skip
    assert checkpoint.is_file()
    _, history = train([problem], [target], params, model, iterations=12, checkpoint=checkpoint)
    assert history["iteration"] == list(range(1, 13)) and not checkpoint.exists()
    assert history["loss"][:5] == seen[:5]  # iterations 1-5 come from the checkpoint
    assert history["loss"][-1] < seen[4]


def test_accumulated_loss_equals_the_loss_of_the_stored_densities():
    from densitylab.tdks.propagation import density_loss, propagate_loss

    problem = _problem(steps=24)
    target = np.asarray(propagate(problem, _wiggle, None)[0]) * 1.01
    params, model = free_values(problem.steps, problem.points)
    stored = density_loss(propagate(problem, model, params)[0], target, DX)
    accumulated = float(propagate_loss(problem, model, params, target, block=5))
    assert accumulated == pytest.approx(float(stored), rel=1e-12)


def test_accumulated_charge_loss_equals_the_charge_loss_of_the_stored_densities():
    from densitylab.tdks.propagation import density_loss, propagate_loss

    problem = _problem(steps=24)
    target = np.asarray(propagate(problem, _wiggle, None)[0]) * 1.01
    params, model = free_values(problem.steps, problem.points)
    densities = np.asarray(propagate(problem, model, params)[0])
    charge = np.cumsum(densities - target, axis=1) * DX  # Q_KS − Q_exact, by hand
    by_hand = np.sum(charge[1:] ** 2) * DX
    stored = float(density_loss(densities, target, DX, measure="charge"))
    accumulated = float(propagate_loss(problem, model, params, target, block=5, measure="charge"))
    assert stored == pytest.approx(by_hand, rel=1e-12)
    assert accumulated == pytest.approx(by_hand, rel=1e-12)


def test_accumulated_current_loss_equals_the_current_loss_of_the_stored_densities():
    from densitylab.tdks.propagation import density_loss, propagate_loss

    problem = _problem(steps=24)
    target = np.asarray(propagate(problem, _wiggle, None)[0]) * 1.01
    params, model = free_values(problem.steps, problem.points)
    densities = np.asarray(propagate(problem, model, params)[0])
    # continuity by hand: j = −∫^x ∂ₜn, each step's backward difference
    current = lambda n: -np.cumsum(np.diff(n, axis=0), axis=1) * DX / problem.dt  # noqa: E731
    by_hand = np.sum((current(densities) - current(target)) ** 2) * DX
    stored = float(density_loss(densities, target, DX, measure="current", dt=problem.dt))
    accumulated = float(propagate_loss(problem, model, params, target, block=5, measure="current"))
    assert stored == pytest.approx(by_hand, rel=1e-12)
    assert accumulated == pytest.approx(by_hand, rel=1e-10)


@pytest.mark.parametrize("velocity", [0.5, 1.0, 2.0])
def test_current_loss_of_a_moving_packet_against_a_standing_one_is_v_squared_n_squared(velocity):
    """A Gaussian packet translated rigidly at ``velocity`` v carries j = v n; against the same
    packet standing still the current loss of one step is v²∫n² dx = v²/(2σ√π) for a unit
    Gaussian of width σ (here 0.5), whatever the position."""
    from densitylab.tdks.propagation import density_loss

    x = np.arange(-20.0, 20.0, 0.01)
    dt = 1e-3
    packet = lambda centre: np.exp(-((x - centre) ** 2) / 0.5) / np.sqrt(0.5 * np.pi)  # noqa: E731
    moving = np.stack([packet(0.0), packet(velocity * dt)])
    standing = np.stack([packet(0.0), packet(0.0)])
    loss = float(density_loss(moving, standing, 0.01, measure="current", dt=dt))
    squared = 1.0 / (2 * 0.5 * np.sqrt(np.pi))  # ∫n² dx of a unit Gaussian, σ = 0.5
    assert loss == pytest.approx(velocity**2 * squared, rel=2e-3)  # dt = 1e-3: O(v dt) error
    with pytest.raises(InvalidParameterError, match=r"^dt"):
        density_loss(moving, standing, 0.01, measure="current")


@pytest.mark.parametrize("separation", [4.0, 8.0, 16.0])
def test_charge_loss_grows_with_the_distance_of_a_misplaced_packet(separation):
    """One electron in a Gaussian packet (σ = 0.1) at 0 against the same packet at
    ``separation`` s ≫ σ: ΔQ = Φ(x/σ) − Φ((x − s)/σ), so Σ ΔQ² dx = s − 2σ/√π (analytically:
    the charge in the wrong place times how far it is), where the density loss is 2∫n² dx
    whatever the separation once the packets no longer overlap."""
    from densitylab.tdks.propagation import density_loss

    x = np.arange(-20.0, 40.0, 0.01)
    packet = lambda centre: np.exp(-((x - centre) ** 2) / 0.02) / np.sqrt(0.02 * np.pi)  # noqa: E731
    ours = np.stack([packet(0.0), packet(separation)])
    exact = np.stack([packet(0.0), packet(0.0)])
    charge = float(density_loss(ours, exact, 0.01, measure="charge"))
    density = float(density_loss(ours, exact, 0.01))
    assert charge == pytest.approx(separation - 2 * 0.1 / np.sqrt(np.pi), rel=1e-4)  # dx = 0.01
    assert density == pytest.approx(2 / np.sqrt(2 * np.pi * 0.02), rel=1e-3)  # 2∫n² dx


def test_unknown_loss_measure_is_refused():
    from densitylab.tdks.propagation import density_loss

    with pytest.raises(InvalidParameterError, match=r"^measure"):
        density_loss(np.zeros((2, 3)), np.zeros((2, 3)), 0.1, measure="wasserstein")


@pytest.mark.parametrize("name", ["scattering-memory", "scattering-dagger"])
def test_shipped_memory_functional_loads_runs_and_refuses_other_grids(tmp_path, name):
    from densitylab.tdks.evaluate import load_model, run

    scenario = laser_scenario(amplitude=0.1, duration=0.5, dx=0.1, x_min=-8.0, x_max=8.0, stencil=3)
    trajectory = exact_propagate(scenario, 0.01, 50, store_every=5)
    problem, _ = problem_from_trajectory(trajectory)
    shipped = load_model(name, problem)
    assert shipped.memory == 4
    densities, v_c = run(problem, shipped)
    assert v_c.shape == (10, problem.points) and np.all(np.isfinite(v_c)) and np.abs(v_c).max() > 0
    np.testing.assert_allclose(np.sum(densities, axis=1) * problem.dx, 2.0, atol=1e-10)
    coarse, _ = problem_from_trajectory(trajectory, coarsen=2)
    with pytest.raises(InvalidParameterError, match="dx"):
        load_model(name, coarse)


def test_the_shipped_switch_hands_a_driven_ground_state_to_alda_and_refuses_other_grids():
    """``memory-switch`` on a laser-driven atom (a start at rest, like its training lasers):
    ALDA's propagation, labelled so; a grid other than its network's is refused though ALDA
    would run there (its choice was measured on the training grid)."""
    from densitylab.tdks.evaluate import ANCHORS, load_model, run

    scenario = laser_scenario(amplitude=0.1, duration=0.5, dx=0.1, x_min=-8.0, x_max=8.0, stencil=3)
    trajectory = exact_propagate(scenario, 0.01, 50, store_every=5)
    problem, _ = problem_from_trajectory(trajectory)
    shipped = load_model("memory-switch", problem)
    assert shipped.label == "memory-switch [alda]"
    np.testing.assert_array_equal(run(problem, shipped)[0], run(problem, ANCHORS["alda"](problem))[0])
    coarse, _ = problem_from_trajectory(trajectory, coarsen=2)
    with pytest.raises(InvalidParameterError, match="dx"):
        load_model("memory-switch", coarse)


def test_gauss_newton_windows_fit_a_known_potential_closely():
    from densitylab.tdks.learn import fit_values_gauss_newton

    problem = _problem(steps=40)
    target = np.asarray(propagate(problem, _wiggle, None)[0])
    _, model = free_values(problem.steps, problem.points)
    unfitted = propagate(problem, model, jnp.zeros((40, problem.points)))[0]
    start = density_errors(np.asarray(unfitted), target, DX)
    worst = {}
    for floor in (None, 1e-6, (1e-6, 1e-8)):
        values, history = fit_values_gauss_newton(
            problem, target, 10, 6, 60, lookahead=0, preconditioner_floor=floor
        )  # 10-step windows, 6 Gauss–Newton × 60 CG iterations
        assert history["step"] == [10, 20, 30, 40]
        errors = density_errors(np.asarray(propagate(problem, model, jnp.asarray(values))[0]), target, DX)
        worst[floor] = errors.max() / start.max()
    assert worst[None] < 0.02  # measured 0.011: plain CG stops far from the Gauss–Newton step
    assert worst[1e-6] < 1e-3  # measured 9.3e-5 with the preconditioner, same budget
    assert worst[(1e-6, 1e-8)] < 1e-3  # the default continuation


def test_gauss_newton_floor_continuation_splits_the_iterations_in_order():
    from densitylab.tdks.learn import fit_values_gauss_newton

    problem = _problem(steps=10)
    target = np.asarray(propagate(problem, _wiggle, None)[0])
    options = {"window": 5, "iterations": 4, "cg_iterations": 20, "lookahead": 0}
    single, _ = fit_values_gauss_newton(problem, target, preconditioner_floor=1e-6, **options)
    repeated, _ = fit_values_gauss_newton(problem, target, preconditioner_floor=[1e-6] * 4, **options)
    np.testing.assert_array_equal(repeated, single)  # equal floors: the same fit, stage by stage
    switched, _ = fit_values_gauss_newton(problem, target, preconditioner_floor=(1e-6, 1e-3), **options)
    assert not np.array_equal(switched, single)  # the last two iterations used the other floor
    for bad in ((), (1e-6,) * 5, (1e-6, -1.0), ("1e-6",)):
        with pytest.raises(InvalidParameterError, match="preconditioner_floor"):
            fit_values_gauss_newton(problem, target, preconditioner_floor=bad, **options)


def test_gauss_newton_preconditioner_inverts_the_weighted_laplacian_squared():
    from densitylab.tdks.learn import gauss_newton_preconditioner

    rng = np.random.default_rng(3)
    steps, points, dx, floor = 3, 12, 0.2, 1e-4
    densities = rng.uniform(0.05, 1.0, (steps, points))
    residual = rng.normal(size=(steps, points))
    inverse = gauss_newton_preconditioner(jnp.asarray(densities), dx, floor)
    applied = np.asarray(inverse(jnp.asarray(residual)))
    # dense (∂ₓ n ∂ₓ) from the face fluxes n_{i+1/2}(v_{i+1} − v_i)/dx², hard walls
    difference = np.diff(np.eye(points), axis=0) / dx  # (N − 1, N): (v_{i+1} − v_i)/dx
    later = [sum(m**2 for m in range(1, steps - k + 1)) for k in range(steps)]  # c_k
    epsilon2 = floor * later[0] * (densities.max() / dx**2) ** 2
    for k in range(steps):
        faces = 0.5 * (densities[k, 1:] + densities[k, :-1])
        laplacian = -difference.T @ (faces[:, None] * difference)
        matrix = later[k] * laplacian @ laplacian + epsilon2 * np.eye(points)
        np.testing.assert_allclose(applied[k], np.linalg.solve(matrix, residual[k]), rtol=1e-9, atol=1e-12)


def test_learn_values_by_gauss_newton_from_the_command_line(tmp_path):
    from typer.testing import CliRunner

    from densitylab.cli import app

    runner = CliRunner()
    trajectory = tmp_path / "laser.h5"
    result = _exact_laser_command(runner, trajectory)
    assert result.exit_code == 0, result.output

    def learn(*options):
        return runner.invoke(app, ["tdks", "learn", "--trajectory", str(trajectory), *options])

    result = learn(
        "--model", "values", "--optimiser", "gauss-newton", "--gn-window", "10", "--iterations", "4",
        "--gn-floor", "1e-5", "--gn-floor", "1e-8", "--output", str(tmp_path / "gn"), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    learned = json.loads(result.stdout)["trajectory_0"]
    assert learned["density_error_max"] < 0.05 * learned["density_error_exchange_only"]
    assert json.loads((tmp_path / "gn" / "manifest.json").read_text())["gn_floor"] == [1e-5, 1e-8]
    one = learn(
        "--model", "values", "--optimiser", "gauss-newton", "--gn-window", "10", "--iterations", "1",
        "--output", str(tmp_path / "gn1"),
    )  # fmt: skip
    assert one.exit_code == 0, one.output  # one iteration takes the first default floor only
    assert json.loads((tmp_path / "gn1" / "manifest.json").read_text())["gn_floor"] == [1e-6]
    bad = learn("--model", "memory", "--optimiser", "gauss-newton", "--output", str(tmp_path / "bad"))
    assert bad.exit_code == 2 and "optimiser" in bad.output
    bad = learn("--optimiser", "gauss-newton", "--gn-floor", "-1", "--output", str(tmp_path / "bad"))
    assert bad.exit_code == 2 and "preconditioner_floor" in bad.output
    assert not (tmp_path / "bad").exists()  # refused before the output folder is made
    bad = learn("--model", "values", "--segment", "5", "--output", str(tmp_path / "bad"))
    assert bad.exit_code == 2 and "segment" in bad.output
    result = learn(
        "--model", "memory", "--memory", "3", "--channels", "4", "--depth", "2", "--kernel", "5",
        "--segment", "5", "--iterations", "3", "--output", str(tmp_path / "shot"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    stored = json.loads((tmp_path / "shot" / "manifest.json").read_text())
    assert stored["segment"] == 5 and stored["history"]["loss"][-1] < stored["history"]["loss"][0]


@pytest.mark.parametrize("lookahead", [0, 5])
def test_interrupted_gauss_newton_fit_resumes_to_the_same_values(tmp_path, lookahead):
    from densitylab.tdks.learn import fit_values_gauss_newton

    problem = _problem(steps=30)
    target = np.asarray(propagate(problem, _wiggle, None)[0])
    options = {"window": 10, "iterations": 2, "cg_iterations": 20, "lookahead": lookahead}
    reference, _ = fit_values_gauss_newton(problem, target, **options)
    checkpoint = tmp_path / "gn.npz"

    def interrupt(index, total, loss):
        if index == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_values_gauss_newton(problem, target, progress=interrupt, checkpoint=checkpoint, **options)
    assert checkpoint.is_file()
    with pytest.raises(InvalidParameterError, match="checkpoint"):  # made with another floor
        fit_values_gauss_newton(problem, target, checkpoint=checkpoint, preconditioner_floor=None, **options)
    resumed, history = fit_values_gauss_newton(problem, target, checkpoint=checkpoint, **options)
    np.testing.assert_array_equal(resumed, reference)
    assert history["step"] == [10, 20, 30] and not checkpoint.exists()


def test_shooting_segments_restart_from_the_exact_state():
    from densitylab.tdks.learn import segments_loss, shooting_segments

    x = np.linspace(-10.0, 10.0, 201)  # dx = 0.1, the scattering grid's spacing
    dx = x[1] - x[0]
    problem = _problem(steps=40, x=x)

    def static_bump(params, window, k):
        return 0.3 * jnp.sin(x)

    def nothing(params, window, k):
        return jnp.zeros(x.size)

    target = np.asarray(propagate(problem, static_bump, None)[0])
    current = np.full_like(target, np.nan)  # only the segment starts are read
    for start in (0, 10, 20, 30):
        head = KSProblem(x, problem.v_ext[: max(start, 1)], problem.interaction, problem.orbital0, problem.dt)
        orbital = problem.orbital0 if start == 0 else propagate(head, static_bump, None, final_state=True)[2]
        orbital = np.asarray(orbital)
        derivative = (np.roll(orbital, -1) - np.roll(orbital, 1)) / (2 * dx)
        current[start] = 2.0 * np.imag(np.conj(orbital) * derivative)
    segments = shooting_segments(problem, target, current, 10, memory=3)
    assert segments.target.shape == (4, 11, x.size) and segments.history.shape == (4, 2, x.size)
    np.testing.assert_array_equal(segments.target[2], target[20:31])
    np.testing.assert_array_equal(segments.history[1], target[8:10])
    true_loss = float(segments_loss(problem, segments, static_bump, 3)(None))
    zero_loss = float(segments_loss(problem, segments, nothing, 3)(None))
    # with the potential that made the target, each segment misses only what rebuilding the
    # orbital from (n, j) misses
    assert true_loss < 2e-3 * zero_loss  # measured 2.7e-4
    with pytest.raises(InvalidParameterError, match="segment"):
        shooting_segments(problem, target, current, 41)


def _two_step_memory(params, window, k):  # depends on the present and a past density
    return params[0] * window[-1] + params[1] * window[0] ** 2


def test_truncated_gradient_is_the_sum_of_window_gradients_from_the_models_own_states():
    """Truncated backpropagation, checked by a second construction: each window propagated
    on its own from the orbital and density history the model itself reached, held fixed."""
    from densitylab.tdks.propagation import propagate_loss

    problem, memory, length = _problem(steps=30), 3, 10
    target = np.asarray(propagate(problem, _wiggle, None)[0])
    params = jnp.asarray([0.2, -0.1])

    def gradient(problem, target, truncate=None, history=None):
        def loss(p):
            return propagate_loss(
                problem, _two_step_memory, p, target, memory, history=history, truncate=truncate
            )

        return jax.value_and_grad(loss)(params)

    full_value, full = gradient(problem, target)
    value, cut = gradient(problem, target, truncate=length)
    assert float(value) == pytest.approx(float(full_value), rel=1e-12)  # the loss is the same
    densities = np.asarray(propagate(problem, _two_step_memory, params, memory)[0])
    windows = np.zeros(2)
    for start in range(0, problem.steps, length):
        x, w, dt = problem.x, problem.interaction, problem.dt
        orbital = problem.orbital0
        if start:
            before = KSProblem(x, problem.v_ext[:start], w, problem.orbital0, dt)
            orbital = np.asarray(propagate(before, _two_step_memory, params, memory, final_state=True)[2])
        local = KSProblem(x, problem.v_ext[start : start + length], w, orbital, dt)
        history = densities[np.maximum(np.arange(start - memory + 1, start), 0)]
        windows += np.asarray(gradient(local, target[start : start + length + 1], history=history)[1])
    np.testing.assert_allclose(np.asarray(cut), windows, rtol=1e-9)
    assert np.linalg.norm(np.asarray(cut) - np.asarray(full)) > 1e-3 * np.linalg.norm(np.asarray(full))
    whole = gradient(problem, target, truncate=30)[1]
    np.testing.assert_allclose(np.asarray(whole), np.asarray(full), rtol=1e-10)  # one window: exact


def test_weighted_and_truncated_training_is_checked():
    problem = _problem(steps=12)
    target = np.asarray(propagate(problem, _wiggle, None)[0])
    params = jnp.asarray([0.0, 0.0])
    with pytest.raises(InvalidParameterError, match=r"^truncate"):
        train([problem], [target], params, _two_step_memory, 3, 2, "lbfgs", truncate=4)
    with pytest.raises(InvalidParameterError, match=r"^weights"):
        train([problem], [target], params, _two_step_memory, 3, 2, "adam", weights=[-1.0])
    with pytest.raises(InvalidParameterError, match=r"^weights"):
        train([problem], [target], params, _two_step_memory, 3, 2, "adam", weights=[1.0, 1.0])
    from densitylab.tdks.learn import total_loss

    one = float(total_loss([problem], [target], _two_step_memory, 3)(jnp.asarray([0.3, 0.1])))
    two = total_loss([problem, problem], [target, target], _two_step_memory, 3, weights=[2.0, 0.5])
    assert float(two(jnp.asarray([0.3, 0.1]))) == pytest.approx(2.5 * one, rel=1e-12)


def test_a_triplet_trajectory_is_refused_as_a_ks_problem():
    """One doubly occupied orbital with v_x = −v_H/2 is the singlet's KS system; a triplet's
    two electrons occupy different orbitals, so its trajectory is refused, not mis-modelled."""
    from densitylab.model1d.propagation import scattering_scenario

    for spin in ("singlet", "triplet"):
        scenario = scattering_scenario(momentum=-1.0, spin=spin, dx=0.5, x_min=-25.0, x_max=20.0, stencil=3)
        trajectory = exact_propagate(scenario, 0.01, 4, store_every=2)
        if spin == "singlet":
            assert problem_from_trajectory(trajectory)[0].steps == 2
        else:
            with pytest.raises(InvalidParameterError, match=r"^trajectory.*singlet"):
                problem_from_trajectory(trajectory)
