"""The generalising memory functional (issue 18): its inputs, gate, interaction scaling,
training stages and the trajectory sets it trains on."""

import json
from dataclasses import replace

import equinox
import jax
import numpy as np
import pytest

from densitylab.errors import InvalidParameterError
from densitylab.tdks.dataset import TrajectorySetConfig, case_name, generate_set, select_cases
from densitylab.tdks.evaluate import load_model, make_ensemble, run
from densitylab.tdks.features import (
    FEATURES,
    feature_count,
    gate,
    gate_statistics,
    window_features,
    window_gate,
)
from densitylab.tdks.functional import FunctionalConfig, FunctionalResult, train_functional
from densitylab.tdks.models import (
    DensityNetConfig,
    build_density_net,
    density_net_model,
    interaction_scale,
    load_density_net,
    save_density_net,
    with_config,
)
from densitylab.tdks.propagation import KSProblem, propagate
from densitylab.tdks.supervised import windows
from densitylab.tdks.workflow import ExactConfig

X = np.linspace(-12.0, 12.0, 121)
DX = X[1] - X[0]
SOFT = "soft-coulomb:strength=1,softening=1"


def _soft(x, strength=1.0):
    return strength / np.sqrt((x[:, None] - x[None, :]) ** 2 + 1.0)


def _two_packets(shift=0.0, centre=5.0):
    """Two Gaussians of one electron each at ∓centre; the left one moved by ``shift``."""
    left = np.exp(-((X + centre - shift) ** 2)) / np.sqrt(np.pi)
    right = np.exp(-((X - centre) ** 2)) / np.sqrt(np.pi)
    return left + right


def _net(inputs=FEATURES, memory=3, **extra):
    net = build_density_net(
        DensityNetConfig(memory=memory, channels=4, depth=2, kernel=5, dx=DX, dt=0.05, inputs=inputs, **extra)
    )
    # a network with every weight non-zero, so each input reaches the output
    return jax.tree_util.tree_map(lambda leaf: leaf + 0.05 if equinox.is_inexact_array(leaf) else leaf, net)


def test_current_and_partner_follow_their_definitions():
    dt = 0.05
    window = np.stack([_two_packets(0.0), _two_packets(0.02)])  # left packet moves right
    rows = np.asarray(window_features(window, ("rates", "current", "velocity", "partner"), DX, dt, None))
    rate, current, velocity, partner_density = rows[0], rows[1], rows[2], rows[3]
    # continuity, ∂j/∂x = −∂n/∂t (backward differences), and no current leaves the box
    np.testing.assert_allclose(np.diff(current) / DX, -rate[1:], atol=1e-12)
    assert abs(current[-1]) < 1e-10
    # the left packet moves at 0.02/dt = 0.4 bohr/a.u., the right one stands still
    assert abs(velocity[np.argmin(np.abs(X + 5.0))] - 0.4) < 0.04
    assert abs(velocity[np.argmin(np.abs(X - 5.0))]) < 0.02
    # one electron at either centre puts the other at the other centre (co-motion)
    peak = 1.0 / np.sqrt(np.pi)
    assert abs(partner_density[np.argmin(np.abs(X + 5.01))] - peak) < 0.02 * peak


def test_charge_counts_the_electrons_left_of_each_point_at_every_step():
    window = np.stack([_two_packets(0.0), _two_packets(0.5), _two_packets(1.0)])
    rows = np.asarray(window_features(window, ("charge",), DX, 0.05, None))
    assert rows.shape == (3, len(X))
    for row, density in zip(rows, window[::-1], strict=True):  # present first
        # the trapezoid-free running sum: its last value is the charge, 2
        np.testing.assert_allclose(np.diff(row) / DX, density[1:], atol=1e-12)
        assert row[-1] == pytest.approx(2.0, abs=1e-6)
    # one electron in each packet (at −5 + shift and +5): Q = 1 across the gap between them
    gap = np.abs(X - 1.0) < 1.0
    np.testing.assert_allclose(rows[0][gap], 1.0, atol=1e-3)
    # the left packet (σ = 1/√2) moved right by 1 bohr between the oldest and the present
    # step: at its old centre −5 the count fell from ½ to the Gaussian tail. The running sum
    # counts the point itself, so it is the integral up to −5 + dx/2, to O(dx²)
    from scipy.stats import norm

    old_centre = np.argmin(np.abs(X + 5.0))
    for row, centre in ((rows[2], -5.0), (rows[0], -4.0)):
        expected = norm.cdf((-5.0 + DX / 2 - centre) * np.sqrt(2.0))  # ½ + 0.056, 0.102
        assert row[old_centre] == pytest.approx(expected, abs=2e-3)


def test_sce_input_equals_the_sce_anchor():
    from densitylab.tdks.features import sce_parts
    from densitylab.tdks.models import sce_correlation

    density = _two_packets()[None]
    row = np.asarray(window_features(density, ("sce",), DX, 0.05, sce_parts(len(X), DX, SOFT)))[0]
    _, anchor = sce_correlation(_soft(X), X)
    # built from the interaction's name on a grid from 0, it is the anchor's potential on X
    # with the inputs' floor on the electron count ...
    from densitylab.tdks.features import COUNT_FLOOR
    from densitylab.tdks.propagation import hartree_operator
    from densitylab.tdks.sce import interaction_profile, sce_potential

    profile = interaction_profile(_soft(X), X)
    same = sce_potential(density[0], X, profile, COUNT_FLOOR) - 0.5 * hartree_operator(_soft(X), DX)(
        density[0]
    )
    np.testing.assert_allclose(row, np.asarray(same), atol=1e-12)
    # ... which moves it from the anchor's by 5 % of its depth at most (4.4 % here)
    reference = np.asarray(anchor(None, density, 0))
    assert np.abs(row - reference).max() < 0.05 * np.abs(reference).max()


def test_a_functional_based_on_sce_starts_at_the_sce_potential():
    """Catches a base written to the wrong input row or unscaled: with scaled inputs (scales
    3, 0.5, 7) and any hidden weights, the SCE-based functional starts at v_SCE − ½v_H
    evaluated directly from its definition, and the exchange base at v_c = 0."""
    from densitylab.tdks.features import COUNT_FLOOR
    from densitylab.tdks.functional import start_from
    from densitylab.tdks.propagation import hartree_operator
    from densitylab.tdks.sce import interaction_profile, sce_potential

    config = DensityNetConfig(
        memory=2, channels=4, depth=2, kernel=5, dx=DX, dt=0.05, inputs=("density", "history", "sce"),
        scales=(3.0, 0.5, 7.0), integrate=True,
    )  # fmt: skip
    net = build_density_net(config)
    window = np.stack([_two_packets(0.02), _two_packets(0.0)])
    density = window[-1]
    expected = sce_potential(density, X, interaction_profile(_soft(X), X), COUNT_FLOOR)
    expected = np.asarray(expected - 0.5 * hartree_operator(_soft(X), DX)(density))
    np.testing.assert_allclose(np.asarray(start_from(net, "sce")(window)), expected, atol=1e-12)
    assert np.abs(np.asarray(start_from(net, "exchange")(window))).max() == 0.0
    assert np.abs(expected).max() > 0.1


def test_gradient_through_the_new_inputs_matches_finite_differences():
    net = _net()
    rng = np.random.default_rng(1)
    # overlapping packets: across a gap the electron count is flat, and the point where the
    # co-motion function switches branch (the SCE potential jumps there by O(dx)) moves
    # with any change of n; the derivative is the one of the smooth pieces
    base = np.stack([_two_packets(0.37, 1.5), _two_packets(0.38, 1.5), _two_packets(0.40, 1.5)])
    direction = rng.normal(size=base.shape) * base  # relative changes keep n ≥ 0
    function = lambda w: net(w)  # noqa: E731
    _, tangent = jax.jvp(function, (base,), (direction,))
    step = 1e-6
    finite = (
        np.asarray(function(base + step * direction)) - np.asarray(function(base - step * direction))
    ) / (2 * step)
    np.testing.assert_allclose(np.asarray(tangent), finite, rtol=1e-5, atol=1e-7 * np.abs(finite).max())


def test_new_functional_is_causal():
    steps = 30
    v_ext = np.tile(-2.0 / np.sqrt(X**2 + 1.0), (steps, 1))
    orbital = np.exp(-(X**2) / 4 + 0.3j * X).astype(complex)
    orbital /= np.sqrt(np.sum(np.abs(orbital) ** 2) * DX)
    problem = KSProblem(X, v_ext, _soft(X), orbital, 0.05)
    params, model = density_net_model(_net())
    _, v_c = propagate(problem, model, params, memory=3)
    kicked = v_ext.copy()
    kicked[15:] += 0.5 * np.tanh(X)
    _, v_c_kicked = propagate(KSProblem(X, kicked, _soft(X), orbital, 0.05), model, params, memory=3)
    np.testing.assert_array_equal(np.asarray(v_c)[:16], np.asarray(v_c_kicked)[:16])
    assert np.abs(np.asarray(v_c)[17:] - np.asarray(v_c_kicked)[17:]).max() > 1e-6


def test_interaction_scale_gives_zero_without_interaction_and_refuses_others():
    net = _net()
    config = net.config
    assert interaction_scale(config, _soft(X), X) == pytest.approx(1.0)
    assert interaction_scale(config, 0.5 * _soft(X), X) == pytest.approx(0.5)
    assert interaction_scale(config, np.zeros((len(X), len(X))), X) == 0.0
    with pytest.raises(InvalidParameterError, match="model"):
        interaction_scale(config, 1.0 / np.sqrt((X[:, None] - X[None, :]) ** 2 + 4.0), X)
    window = np.stack([_two_packets(0.0), _two_packets(0.01), _two_packets(0.03)])
    full = np.asarray(density_net_model(net, 1.0)[1](net, window, 0))
    assert np.abs(full).max() > 1e-3
    np.testing.assert_allclose(np.asarray(density_net_model(net, 0.5)[1](net, window, 0)), 0.25 * full)
    assert np.all(np.asarray(density_net_model(net, 0.0)[1](net, window, 0)) == 0.0)
    # the original networks are not rescaled
    legacy = DensityNetConfig(memory=2, channels=4, depth=2, kernel=5, dx=DX, dt=0.05)
    assert interaction_scale(legacy, np.zeros((len(X), len(X))), X) == 1.0


def test_gate_keeps_the_training_inputs_and_falls_back_outside():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(4000, 3)) @ np.array([[1.0, 0.3, 0.0], [0.0, 0.5, 0.1], [0.0, 0.0, 2.0]])
    weights = rng.uniform(0.1, 1.0, 4000)
    stats = gate_statistics(points, weights, quantile=0.999)
    values = np.asarray(
        gate(points.T, stats["gate_center"], stats["gate_whitening"], stats["gate_threshold"])
    )
    inside = values == 1.0
    assert np.sum(weights[inside]) / np.sum(weights) >= 0.998
    far = np.asarray(
        gate(50.0 * points[:5].T, stats["gate_center"], stats["gate_whitening"], stats["gate_threshold"])
    )
    assert np.all(far < 1e-8)
    # a gated network hands back to exact exchange (v_c = 0) for inputs far outside
    plain = _net()
    count = feature_count(plain.config.feature_names(), plain.config.memory)
    gated = _net(gate_center=(0.0,) * count, gate_whitening=np.eye(count).tolist(), gate_threshold=1e-3)
    window = np.stack([_two_packets(0.0), _two_packets(0.01), _two_packets(0.03)])
    assert np.abs(np.asarray(plain(window))).max() > 1e-3
    assert np.abs(np.asarray(gated(window))).max() < 1e-12


def test_a_closed_gate_hands_back_to_its_fallback_whatever_the_weights():
    """Inputs far outside the gate's statistics: with fallback "sce" v_c is v_SCE − ½v_H from
    its definition (the scaled ``sce`` row unscaled, for either scope), with "exchange" zero."""
    from densitylab.tdks.features import COUNT_FLOOR
    from densitylab.tdks.propagation import hartree_operator
    from densitylab.tdks.sce import interaction_profile, sce_potential

    inputs, scales = ("density", "history", "sce"), (3.0, 0.5, 7.0)
    shut = dict(gate_center=(50.0, 50.0, 50.0), gate_whitening=np.eye(3).tolist(), gate_threshold=1.0)
    window = np.stack([_two_packets(0.02), _two_packets(0.0)])
    density = window[-1]
    expected = sce_potential(density, X, interaction_profile(_soft(X), X), COUNT_FLOOR)
    expected = np.asarray(expected - 0.5 * hartree_operator(_soft(X), DX)(density))
    assert np.abs(expected).max() > 0.1
    for scope in ("point", "window"):
        for integrate in (False, True):
            common = dict(scales=scales, gate_scope=scope, integrate=integrate, **shut)
            to_sce = _net(inputs, 2, gate_fallback="sce", **common)
            np.testing.assert_allclose(np.asarray(to_sce(window)), expected, atol=1e-12)
            assert np.abs(np.asarray(_net(inputs, 2, **common)(window))).max() < 1e-12
            open_twin = with_config(to_sce, gate_threshold=1e3)  # open: the network's own v_c
            assert np.abs(np.asarray(open_twin(window)) - expected).max() > 1e-3


def test_window_gate_hands_all_of_v_c_back_when_an_occupied_point_leaves():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(3, 50))  # (C, N), every point inside a threshold of 10
    center, whitening, threshold = (0.0, 0.0, 0.0), np.eye(3).tolist(), 10.0
    density = np.full(50, 0.1)
    density[:5] = 1e-5  # unoccupied points do not count
    np.testing.assert_array_equal(np.asarray(window_gate(points, density, center, whitening, threshold)), 1.0)
    outside = points.copy()
    outside[:, 2] = 30.0  # far outside at an unoccupied point: the window stays open
    outside[:, 30] = [0.0, 0.0, 12.0]  # just outside at an occupied one
    pointwise = np.asarray(gate(outside, center, whitening, threshold))
    whole = np.asarray(window_gate(outside, density, center, whitening, threshold))
    assert pointwise[2] < 1e-8 and 0.0 < pointwise[30] < 1.0 and pointwise[10] == 1.0
    np.testing.assert_allclose(whole, pointwise[30])  # the least occupied value, everywhere
    # a network with it: the window's inputs inside, v_c is the ungated one; one occupied
    # point driven outside scales all of v_c by that point's gate, where the pointwise gate
    # changes v_c at that point only
    memory, inputs = 2, ("density", "history", "sce")
    window = np.stack([_two_packets(0.0), _two_packets(0.01)])
    plain = _net(inputs, memory)
    features = np.asarray(plain.features(window))
    stats = gate_statistics(features.T, window[-1], quantile=1.0)  # threshold: the window's farthest
    nets = {scope: with_config(plain, gate_scope=scope, **stats) for scope in ("point", "window")}
    for net in nets.values():
        np.testing.assert_allclose(np.asarray(net(window)), np.asarray(plain(window)), atol=1e-14)
    moved = features.copy()
    occupied = np.argmin(np.abs(X - 5.0))  # the right packet's centre
    outward = np.zeros(len(features))
    outward[0] = 1.25 * stats["gate_threshold"]  # 1.25 thresholds out in whitened inputs
    moved[:, occupied] = stats["gate_center"] + np.linalg.solve(stats["gate_whitening"], outward)
    by_point, by_window = (np.asarray(nets[s].from_features(moved)) for s in ("point", "window"))
    ungated = np.asarray(plain.from_features(moved))
    stats_args = (stats["gate_center"], stats["gate_whitening"], stats["gate_threshold"])
    factor = float(gate(moved[:, occupied : occupied + 1], *stats_args)[0])
    assert 0.0 < factor < 0.5  # exp(−1)
    np.testing.assert_allclose(by_window, factor * ungated, rtol=1e-12, atol=1e-15)
    away = np.abs(X - 5.0) > 1.0
    np.testing.assert_allclose(by_point[away], ungated[away], atol=1e-14)


def test_gate_options_without_what_they_need_are_refused_before_any_work():
    """A window gate needs a gate and the density input, the SCE fallback a gate and the sce
    input; unknown values are refused; each naming its parameter."""
    inputs = ("density", "history", "sce")
    gated = dict(gate_center=(0.0,) * 3, gate_whitening=np.eye(3).tolist(), gate_threshold=1.0)
    for options, match in (
        (dict(gate_scope="window"), r"^gate_scope: expected point for a functional without"),
        (dict(gate_scope="window", inputs=("history", "sce"), **gated),
         r"^gate_scope: expected point without the density"),
        (dict(gate_scope="all", **gated), r"^gate_scope: expected point or window"),
        (dict(gate_fallback="sce"), r"^gate_fallback: expected exchange without a gate"),
        (dict(gate_fallback="sce", inputs=("density", "history"), **gated),
         r"^gate_fallback: expected exchange without the sce"),
        (dict(gate_fallback="lda", **gated), r"^gate_fallback: expected exchange or sce"),
    ):  # fmt: skip
        with pytest.raises(InvalidParameterError, match=match):
            DensityNetConfig(memory=2, **{"inputs": inputs, **options})


def test_a_twin_keeps_the_weights_of_new_and_original_networks():
    window = np.stack([_two_packets(0.0), _two_packets(0.01)])
    for net in (_net(("density", "history", "sce"), 2), _net(None, 2)):  # None: an original network
        twin = with_config(net, seed=net.config.seed + 1)  # another initialisation, same weights
        assert twin.config.seed == net.config.seed + 1
        np.testing.assert_array_equal(np.asarray(twin(window)), np.asarray(net(window)))
        assert np.abs(np.asarray(build_density_net(twin.config)(window)) - np.asarray(net(window))).max() > 0


def test_an_ensemble_is_its_members_mean_and_saves_loads_and_propagates_as_one(tmp_path):
    first = _net(("density", "history", "sce"), 3)
    second = _net(("density", "history", "current"), 3, seed=1)
    for name, net in (("first", first), ("second", second)):
        save_density_net(tmp_path / name, net)
    folder = tmp_path / "ensemble"
    make_ensemble([str(tmp_path / "first"), str(tmp_path / "second")], folder)
    ensemble = load_density_net(folder)
    window = np.stack([_two_packets(0.0), _two_packets(0.01), _two_packets(0.03)])
    v_first, v_second = np.asarray(first(window)), np.asarray(second(window))
    assert np.abs(v_first - v_second).max() > 1e-3
    mean = 0.5 * (v_first + v_second)
    np.testing.assert_allclose(np.asarray(ensemble(window)), mean, rtol=1e-12, atol=1e-14)
    # propagated by name like any functional: v_c = 0 without interaction, the mean with it
    v_ext = np.tile(-2.0 / np.sqrt(X**2 + 1.0), (12, 1))
    orbital = np.exp(-(X**2) / 4 + 0.3j * X).astype(complex)
    orbital /= np.sqrt(np.sum(np.abs(orbital) ** 2) * DX)
    free = KSProblem(X, v_ext, 0.0 * _soft(X), orbital, 0.05)
    assert np.all(run(free, load_model(str(folder), free))[1] == 0.0)
    problem = KSProblem(X, v_ext, _soft(X), orbital, 0.05)
    densities, v_c = run(problem, load_model(str(folder), problem))
    steps = windows(densities, 3, np.arange(12))
    np.testing.assert_allclose(
        v_c[5], 0.5 * (np.asarray(first(steps[5])) + np.asarray(second(steps[5]))), rtol=1e-10, atol=1e-12
    )
    # the command builds the same functional
    from typer.testing import CliRunner

    from densitylab.cli import app

    command = ["tdks", "ensemble", "--member", str(tmp_path / "first"), "--member", str(tmp_path / "second")]
    result = CliRunner().invoke(app, [*command, "--output", str(tmp_path / "cli"), "--json"])
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.asarray(load_density_net(tmp_path / "cli")(window)), ensemble(window))


def test_an_ensemble_of_what_cannot_be_averaged_is_refused_before_anything_is_written(tmp_path):
    save_density_net(tmp_path / "a", _net(("density", "history", "sce"), 3))
    save_density_net(tmp_path / "b", _net(("density", "history", "sce"), 2))
    make_ensemble([str(tmp_path / "a"), str(tmp_path / "a")], tmp_path / "pair")
    for members in (
        [str(tmp_path / "a")],  # one member
        [str(tmp_path / "a"), str(tmp_path / "b")],  # another memory
        [str(tmp_path / "a"), str(tmp_path / "pair")],  # an ensemble as a member
        [str(tmp_path / "a"), str(tmp_path / "missing")],
    ):
        with pytest.raises(InvalidParameterError, match=r"^members"):
            make_ensemble(members, tmp_path / "out")
        assert not (tmp_path / "out").exists()


def test_windows_repeat_the_first_density_like_the_propagation():
    target = np.arange(5)[:, None] * np.ones((5, 3))
    built = windows(target, 3, np.array([0, 1, 4]))
    np.testing.assert_array_equal(built[:, :, 0], [[0, 0, 0], [0, 0, 1], [2, 3, 4]])


def _tiny_cases():
    return (
        ExactConfig(scenario="laser", amplitude=0.1, frequency=0.5, time=0.5, dx=0.5),
        ExactConfig(scenario="laser", amplitude=0.3, frequency=0.7, time=0.5, dx=0.5),
    )


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("set")
    generate_set(TrajectorySetConfig(_tiny_cases(), gn_iterations=1), folder)
    return folder


def test_trajectory_set_is_kept_on_rerun_and_refuses_a_clash(tiny_set):
    files = sorted(p.name for p in tiny_set.iterdir())
    assert {"laser-F0.100-w0.50.h5", "laser-F0.100-w0.50-values", "set.json"} <= set(files)
    stamps = {p.name: p.stat().st_mtime_ns for p in tiny_set.glob("*.h5")}
    summaries = generate_set(TrajectorySetConfig(_tiny_cases(), gn_iterations=1), tiny_set)
    assert {p.name: p.stat().st_mtime_ns for p in tiny_set.glob("*.h5")} == stamps  # nothing redone
    # the inversion reproduces each trajectory far better than any anchor
    for summary in summaries.values():
        assert summary["density_error_max"] < 0.1 * summary["density_error_exchange_only"]
    # same name, other settings: refused before any work, nothing new on disk
    clash = (ExactConfig(scenario="laser", amplitude=0.1, frequency=0.5, time=0.5, dx=0.25),)
    with pytest.raises(InvalidParameterError, match="cases"):
        generate_set(TrajectorySetConfig(clash, gn_iterations=1), tiny_set)
    assert sorted(p.name for p in tiny_set.iterdir()) == files
    # an output that is a file, or inside a missing folder, is refused before any work
    for output in (tiny_set / "set.json", tiny_set / "missing" / "set"):
        with pytest.raises(InvalidParameterError, match=r"^output"):
            generate_set(TrajectorySetConfig(_tiny_cases(), gn_iterations=1), output)
    assert sorted(p.name for p in tiny_set.iterdir()) == files


def test_a_momentum_the_grid_cannot_carry_is_refused_before_the_folder_is_made(tmp_path):
    with pytest.raises(InvalidParameterError, match=r"^momentum: .*π/dx = 31.42"):
        ExactConfig(momentum=-40.0)
    assert ExactConfig(scenario="laser", momentum=-40.0).momentum == -40.0  # a laser has no packet
    with pytest.raises(InvalidParameterError, match=r"^dx"):
        ExactConfig(dx=0.0)
    with pytest.raises(InvalidParameterError, match="momentum"):
        generate_set(TrajectorySetConfig(select_cases("none", [-40.0])), tmp_path / "set")
    assert not (tmp_path / "set").exists()


def test_a_box_too_large_for_memory_is_refused_naming_the_option_that_made_it(tmp_path, monkeypatch):
    """A padding (or a fine dx) whose two-electron box cannot fit is refused by the config,
    naming that option, before a set makes its folder: 1 GiB allows boxes of ~2,300 points,
    the default scattering box (1,199 points) fits and 200 bohr of padding (5,199) does not."""
    from densitylab import limits

    monkeypatch.setattr(limits, "available_memory", lambda: 2.0**30)
    ExactConfig()  # fits
    with pytest.raises(InvalidParameterError, match=r"^padding: .*5199 points on \[-280, 240\].*got 200"):
        ExactConfig(padding=200.0)
    with pytest.raises(InvalidParameterError, match=r"^dx: .*points"):
        ExactConfig(dx=0.02)
    with pytest.raises(InvalidParameterError, match=r"^padding"):
        generate_set(TrajectorySetConfig(select_cases("held-out", padding=200.0)), tmp_path / "set")
    assert not (tmp_path / "set").exists()


def test_padding_widens_the_box_and_leaves_the_dynamics_inside_it(tiny_set):
    """A driven atom far from its walls moves the same in a box 5 bohr wider at each end; the
    set refuses the padded case where the narrow one is stored (another box), before any work."""
    from densitylab.tdks.workflow import exact

    case = _tiny_cases()[1]
    padded = replace(case, padding=5.0)
    narrow, wide = exact(case), exact(padded)
    assert wide.x[0] == pytest.approx(narrow.x[0] - 5.0) and wide.x[-1] == pytest.approx(narrow.x[-1] + 5.0)
    inside = slice(10, 10 + len(narrow.x))  # 5 bohr at dx = 0.5
    assert np.max(np.abs(narrow.density[-1] - narrow.density[0])) > 1e-4  # the field moved it
    np.testing.assert_allclose(wide.density[:, inside], narrow.density, rtol=0, atol=1e-9)
    assert np.allclose(wide.density[:, :10], 0.0, atol=1e-12)
    files = sorted(p.name for p in tiny_set.iterdir())
    with pytest.raises(InvalidParameterError, match="cases"):
        generate_set(TrajectorySetConfig((padded,), invert=False), tiny_set)
    assert sorted(p.name for p in tiny_set.iterdir()) == files
    with pytest.raises(InvalidParameterError, match=r"^padding"):
        replace(case, padding=-1.0)
    assert {c.padding for c in select_cases("held-out", padding=2.5)} == {2.5}


def test_charge_at_the_walls_is_warned_about_naming_the_cases(tiny_set, tmp_path, monkeypatch):
    """The set and a single exact run warn with each crowded case's edge charge; a set whose
    charge stays inside (the tiny lasers: far below the limit) does not."""
    import shutil
    import warnings as warning_filters

    from densitylab.model1d import propagation
    from densitylab.tdks import workflow

    folder = tmp_path / "set"
    shutil.copytree(tiny_set, folder)
    with warning_filters.catch_warnings():
        warning_filters.simplefilter("error")  # no warning at all for a set inside its box
        summaries = generate_set(TrajectorySetConfig(_tiny_cases(), gn_iterations=1), folder)
    assert all(summary["edge_charge"] < workflow.EDGE_CHARGE_LIMIT for summary in summaries.values())
    monkeypatch.setattr(propagation, "edge_charge", lambda trajectory, width=5.0: 0.25)
    with pytest.warns(UserWarning, match=r"walls.*laser-F0.100-w0.50 \(0.25\), laser-F0.300-w0.70 \(0.25\)"):
        generate_set(TrajectorySetConfig(_tiny_cases(), gn_iterations=1), folder)
    with pytest.warns(UserWarning, match=r"walls.*laser \(0.25\)"):
        workflow.exact(_tiny_cases()[0])


def test_a_run_adding_cases_completes_the_set(tiny_set, tmp_path):
    import shutil

    folder = tmp_path / "set"
    shutil.copytree(tiny_set, folder)
    before = json.loads((folder / "set.json").read_text())
    added = ExactConfig(scenario="laser", amplitude=0.2, frequency=0.6, time=0.5, dx=0.5)
    summaries = generate_set(TrajectorySetConfig((added,), invert=False), folder)
    assert list(summaries) == ["laser-F0.200-w0.60"]  # this run's cases
    index = json.loads((folder / "set.json").read_text())
    assert list(index["summaries"]) == [*before["summaries"], "laser-F0.200-w0.60"]
    assert index["cases"][: len(before["cases"])] == before["cases"]
    assert {name: index["summaries"][name] for name in before["summaries"]} == before["summaries"]
    # a rerun of an earlier case replaces its entry, in the earlier cases' order
    generate_set(TrajectorySetConfig(_tiny_cases()[:1], gn_iterations=1), folder)
    index = json.loads((folder / "set.json").read_text())
    assert sorted(index["summaries"]) == sorted([*before["summaries"], "laser-F0.200-w0.60"])
    assert len(index["cases"]) == len(index["summaries"])


def test_an_inversion_that_does_not_reproduce_is_retried_then_refused_for_training(tmp_path, monkeypatch):
    """A fit that misses the tolerance is refitted with the longer attempts, the best is kept,
    a rerun tries nothing again, and a supervised functional refuses the case by name."""
    from densitylab.tdks import dataset, workflow

    fitted = []
    real_learn = workflow.learn

    def recording_learn(config, **options):
        result = real_learn(config, **options)
        fitted.append(
            (config.iterations, config.gn_window, result.summary["trajectory_0"]["density_error_max"])
        )
        return result

    monkeypatch.setattr(workflow, "learn", recording_learn)
    monkeypatch.setattr(dataset, "REPRODUCTION_TOLERANCE", 0.0)  # no fit can reach it
    config = TrajectorySetConfig(_tiny_cases()[:1], gn_iterations=1)
    with pytest.warns(UserWarning, match="laser-F0.100-w0.50"):
        (summary,) = generate_set(config, tmp_path).values()
    assert (
        [(i, w) for i, w, _ in fitted] == list(dataset.inversion_attempts(1)) == [(1, 20), (2, 20), (2, 10)]
    )
    assert summary["reproduced"] is False
    assert summary["density_error_max"] == min(error for _, _, error in fitted)  # the best is kept
    assert not list(tmp_path.glob("*.checkpoint.npz"))
    with pytest.warns(UserWarning):
        generate_set(config, tmp_path)
    assert len(fitted) == 3  # every attempt was made: nothing is tried again
    record = json.loads((tmp_path / "laser-F0.100-w0.50-values.attempts.json").read_text())["tried"]
    assert [entry["density_error_max"] for entry in record] == [error for _, _, error in fitted]
    with pytest.raises(InvalidParameterError, match=r"^dataset: .*for at least one case"):
        train_functional(FunctionalConfig(str(tmp_path), pretrain_epochs=1, horizons=()))
    monkeypatch.setattr(dataset, "REPRODUCTION_TOLERANCE", 0.05)
    (summary,) = generate_set(config, tmp_path).values()
    assert summary["reproduced"] is True and len(fitted) == 3


def test_the_supervised_stage_leaves_out_a_case_whose_inversion_does_not_reproduce(tiny_set, monkeypatch):
    from densitylab.tdks import dataset

    monkeypatch.setattr(dataset, "reproduces", lambda errors: "F0.100" not in errors["path"])
    with pytest.warns(UserWarning, match="laser-F0.100-w0.50 does not reproduce"):
        result = train_functional(_config(tiny_set, horizons=()))
    assert result.history["pretrain"]["cases"] == ["laser-F0.300-w0.70"]


def test_case_names_and_selection():
    assert case_name(ExactConfig(momentum=-1.5)) == "scatter-p-1.50"
    assert case_name(ExactConfig(momentum=1.3, spin="triplet")) == "scatter-p+1.30-triplet"
    held_out = {case_name(c) for c in select_cases("held-out")}
    assert held_out == {"scatter-p-1.50", "scatter-p+1.30", "laser-F0.050-w0.50"}
    assert not held_out & {case_name(c) for c in select_cases("training")}
    assert [case_name(c) for c in select_cases("none", [-1.3], ["0.04:0.6"], time=5.0)] == [
        "scatter-p-1.30",
        "laser-F0.040-w0.60",
    ]
    with pytest.raises(InvalidParameterError, match="laser"):
        select_cases("none", lasers=["0.04"])
    with pytest.raises(InvalidParameterError, match="cases"):
        TrajectorySetConfig((ExactConfig(momentum=-1.0), ExactConfig(momentum=-1.0)))


def _config(folder, **changes):
    settings = dict(
        channels=3,
        depth=1,
        kernel=3,
        memory=2,
        pretrain_epochs=3,
        horizons=(4, 10),  # the second truncated (adam, gradients cut every 4 steps)
        truncate=4,
        truncated_iterations=2,
        rollout_iterations=2,
        rollout_optimiser="adam",
        inputs=("density", "history", "velocity", "sce", "partner"),
    )
    return FunctionalConfig(str(folder), **{**settings, **changes})


@pytest.fixture(scope="module")
def trained(tiny_set):
    return train_functional(_config(tiny_set))


def test_training_starts_from_a_saved_functional_of_its_shape(tiny_set, trained, tmp_path):
    start = trained.save(tmp_path / "start")
    again = train_functional(_config(tiny_set, init=str(start), pretrain_epochs=0, horizons=()))
    assert again.net.config == trained.net.config  # its scales and gate too
    for a, b in zip(
        jax.tree_util.tree_leaves(trained.net), jax.tree_util.tree_leaves(again.net), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    # no stage with another gate scope: the same weights and gate, gated over the whole window
    regate = dict(init=str(start), pretrain_epochs=0, horizons=(), gate_scope="window", gate_fallback="sce")
    scoped = train_functional(_config(tiny_set, **regate))
    assert scoped.net.config == replace(trained.net.config, gate_scope="window", gate_fallback="sce")
    threshold = trained.net.config.gate_threshold
    assert scoped.summary()["gate"] == {"threshold": threshold, "scope": "window", "fallback": "sce"}
    for a, b in zip(
        jax.tree_util.tree_leaves(trained.net), jax.tree_util.tree_leaves(scoped.net), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    kept = scoped.save(tmp_path / "scoped")  # and an init keeps its scope unless told
    assert train_functional(_config(tiny_set, init=str(kept), pretrain_epochs=0, horizons=())).net.config == (
        scoped.net.config
    )
    for bad, match in (
        (dict(gate_scope="all"), r"^gate_scope: expected point, window or None"),
        (dict(gate_scope="window", gate=False), r"^gate_scope: expected point \(or None\) without the gate"),
        (dict(gate_scope="window", inputs=("history", "sce")), r"^gate_scope: .*without the density input"),
        (dict(gate_fallback="lda"), r"^gate_fallback: expected exchange, sce or None"),
        (
            dict(gate_fallback="sce", gate=False),
            r"^gate_fallback: expected exchange \(or None\) without the gate",
        ),
        (
            dict(gate_fallback="sce", inputs=("density", "history")),
            r"^gate_fallback: .*without the sce input",
        ),
    ):
        with pytest.raises(InvalidParameterError, match=match):
            _config(tiny_set, **bad)
    # refused before any work, naming the parameter
    with pytest.raises(InvalidParameterError, match=r"^init: .*shape.*'channels': 3"):
        _config(tiny_set, init=str(start), channels=4)
    with pytest.raises(InvalidParameterError, match=r"^base: expected exchange"):
        _config(tiny_set, init=str(start), base="sce")
    other_grid = build_density_net(replace(trained.net.config, dx=trained.net.config.dx / 2))
    FunctionalResult(trained.config, other_grid).save(tmp_path / "other-grid")
    with pytest.raises(InvalidParameterError, match=r"^init: expected a network trained with dx="):
        train_functional(_config(tiny_set, init=str(tmp_path / "other-grid"), horizons=()))
    for other in (tiny_set / "laser-F0.100-w0.50-values", tmp_path / "missing"):
        with pytest.raises(InvalidParameterError, match=r"^init: expected a 'tdks functional' folder"):
            _config(tiny_set, init=str(other))

    class Stop(Exception):
        pass

    def interrupt(done, total, stage, **values):
        if stage == "horizon-4":
            raise Stop

    config, checkpoint = _config(tiny_set, init=str(start), horizons=(4,)), tmp_path / "job.npz"
    with pytest.raises(Stop):
        train_functional(config, interrupt, checkpoint)
    # the starting functional changed: a resume is refused
    changed = equinox.tree_at(lambda net: net.linear, trained.net, trained.net.linear + 1.0)
    FunctionalResult(trained.config, changed).save(start)
    with pytest.raises(InvalidParameterError, match=r"^checkpoint"):
        train_functional(config, checkpoint=checkpoint)


def test_functional_trains_resumes_and_refuses_other_settings(tiny_set, trained, tmp_path):
    whole = trained
    losses = whole.history["pretrain"]["loss"]
    assert losses[-1] < losses[0]  # the supervised stage learns

    class Stop(Exception):
        pass

    def interrupt(done, total, stage, **values):
        if stage == "horizon-4":
            raise Stop

    checkpoint = tmp_path / "job.npz"
    with pytest.raises(Stop):
        train_functional(_config(tiny_set), interrupt, checkpoint)
    # the supervised stage and the (empty) stage 1b
    assert json.loads(np.load(checkpoint)["__state__"].item())["finished"] == 1
    with pytest.raises(InvalidParameterError, match="checkpoint"):
        train_functional(_config(tiny_set, seed=3), checkpoint=checkpoint)

    def interrupt_fine_tuning(done, total, stage, **values):
        if stage == "horizon-10" and done == 2:
            raise Stop

    with pytest.raises(Stop):  # within a fine-tuning stage: each iteration is kept (minutes each)
        train_functional(_config(tiny_set), interrupt_fine_tuning, checkpoint)
    assert json.loads(np.load(f"{checkpoint}.stage.npz")["__state__"].item())["epoch"] == 1
    resumed = train_functional(_config(tiny_set), checkpoint=checkpoint)
    for a, b in zip(
        jax.tree_util.tree_leaves(whole.net), jax.tree_util.tree_leaves(resumed.net), strict=True
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)
    assert not checkpoint.exists()
    # saved and loaded by path, it runs on a trajectory with the anchors' interface
    from densitylab.model1d.propagation import load_trajectory
    from densitylab.tdks.propagation import problem_from_trajectory

    whole.save(tmp_path / "functional")
    problem, _ = problem_from_trajectory(load_trajectory(tiny_set / "laser-F0.100-w0.50.h5"))
    densities, _ = run(problem, load_model(str(tmp_path / "functional"), problem))
    np.testing.assert_allclose(densities.sum(axis=1) * problem.dx, 2.0, atol=1e-10)


def test_functional_config_refuses_bad_input(tiny_set, tmp_path):
    with pytest.raises(InvalidParameterError, match="dataset"):
        FunctionalConfig(str(tmp_path))
    with pytest.raises(InvalidParameterError, match="cases"):
        _config(tiny_set, cases=("scatter-p-9.00",))
    with pytest.raises(InvalidParameterError, match="cases"):  # the tiny set has none of them
        _config(tiny_set, preset="training")
    with pytest.raises(InvalidParameterError, match="preset"):
        _config(tiny_set, preset="everything")
    with pytest.raises(InvalidParameterError, match="inputs"):
        _config(tiny_set, inputs=("density", "spin"))
    with pytest.raises(InvalidParameterError, match="memory"):
        _config(tiny_set, memory=1)
    with pytest.raises(InvalidParameterError, match="learning_rate"):
        _config(tiny_set, learning_rate=float("nan"))
    with pytest.raises(InvalidParameterError, match="memory"):  # longer than the trajectories
        train_functional(_config(tiny_set, memory=10**8))
    with pytest.raises(InvalidParameterError, match="clip"):
        _config(tiny_set, clip=0.0)
    with pytest.raises(InvalidParameterError, match="rollout_optimiser"):
        _config(tiny_set, rollout_optimiser="sgd")
    with pytest.raises(InvalidParameterError, match="truncate"):
        _config(tiny_set, truncate=0)
    # zero iterations at a horizon failed after the pretraining, naming no option of the command
    for name in ("rollout_iterations", "truncated_iterations"):
        with pytest.raises(InvalidParameterError, match=f"^{name}: expected an integer ≥ 1"):
            _config(tiny_set, **{name: 0})
        assert getattr(_config(tiny_set, horizons=(), **{name: 0}), name) == 0  # unused without horizons
    with pytest.raises(InvalidParameterError, match="measure"):
        _config(tiny_set, measure="wasserstein")
    with pytest.raises(InvalidParameterError, match="base"):
        _config(tiny_set, base="lda")
    with pytest.raises(InvalidParameterError, match="base"):
        _config(tiny_set, base="sce", inputs=("density", "history"))
    for name, value in (("dagger_rounds", -1), ("dagger_epochs", 0), ("dagger_learning_rate", float("nan"))):
        with pytest.raises(InvalidParameterError, match=f"^{name}"):
            _config(tiny_set, **{name: value})

    def no_work(*args, **values):
        raise AssertionError("a stage ran before the refusal")

    with pytest.raises(InvalidParameterError, match=r"^dagger_rounds: .*GiB"):  # before any stage
        train_functional(_config(tiny_set, dagger_rounds=10**12), no_work)


def test_a_set_without_inversions_trains_without_the_supervised_stage(tiny_set, tmp_path):
    """Catches the rollout stages reading the inverted v_c (they must not: a set made with
    ``--no-invert`` is enough for them) or a supervised stage running without it: the
    trajectories alone give the same functional as the whole set, and asking for the supervised
    stage there is refused before any training, naming the dataset."""
    import shutil

    bare = tmp_path / "bare"
    bare.mkdir()
    for path in [*tiny_set.glob("*.h5"), tiny_set / "set.json"]:
        shutil.copy(path, bare / path.name)
    changes = dict(pretrain_epochs=0, horizons=(4,), rollout_iterations=2, gate=False)
    from_bare = train_functional(_config(bare, **changes))
    from_whole = train_functional(_config(tiny_set, **changes))
    losses = from_bare.history["horizon-4"]["loss"]
    assert min(losses[1:]) < losses[0]  # it trained
    leaves = [
        jax.tree_util.tree_leaves(equinox.filter(result.net, equinox.is_array))
        for result in (from_bare, from_whole)
    ]
    for ours, theirs in zip(*leaves, strict=True):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    with pytest.raises(InvalidParameterError, match=r"^dataset"):
        train_functional(_config(bare))


@pytest.mark.parametrize("measure", ["density", "charge", "current"])
def test_relative_loss_counts_each_case_in_units_of_exchange_only(tiny_set, measure):
    """The untrained network is exchange-only (its v_c is 0), so its relative loss over whole
    trajectories is 1 per case, in either measure; training by truncated backpropagation
    lowers it."""
    from densitylab.tdks.functional import exchange_only_losses, load_cases
    from densitylab.tdks.propagation import density_loss

    config = _config(
        tiny_set, pretrain_epochs=0, horizons=(10,), truncated_iterations=3, gate=False, measure=measure
    )
    cases = load_cases(config)
    for case, loss in zip(cases, exchange_only_losses(cases, measure), strict=True):
        densities, _ = propagate(
            case.problem, lambda params, window, k: jax.numpy.zeros(window.shape[1]), None
        )
        expected = float(
            density_loss(densities, case.target, case.problem.dx, measure=measure, dt=case.problem.dt)
        )
        assert loss == pytest.approx(expected, rel=1e-10)
    losses = train_functional(config).history["horizon-10"]["loss"]
    assert losses[0] == pytest.approx(len(cases), rel=1e-10)
    assert min(losses[1:]) < losses[0]


def test_dataset_and_functional_commands_equal_the_library(tiny_set, trained, tmp_path):
    from typer.testing import CliRunner

    from densitylab.cli import app
    from densitylab.tdks.models import load_density_net

    runner = CliRunner()
    result = runner.invoke(
        app,
        ["tdks", "dataset", "--output", str(tiny_set), "--preset", "none", "--laser", "0.1:0.5", "--laser",
         "0.3:0.7", "--time", "0.5", "--gn-iterations", "1", "--json"],
    )  # fmt: skip
    # the CLI's laser cases use the default grid: same names as the tiny set's, other settings
    assert result.exit_code == 2 and "cases" in result.output
    shape = ["--channels", "3", "--depth", "1", "--kernel", "3", "--memory", "2"]
    shape += ["--inputs", "density", "--inputs", "history", "--inputs", "velocity", "--inputs", "sce"]
    shape += ["--inputs", "partner"]
    options = [*shape, "--pretrain-epochs", "3"]
    options += ["--horizon", "4", "--horizon", "10", "--truncate", "4", "--truncated-iterations", "2"]
    options += ["--rollout-iterations", "2", "--rollout-optimiser", "adam"]
    output = tmp_path / "functional"
    result = runner.invoke(
        app, ["tdks", "functional", "--dataset", str(tiny_set), "--output", str(output), *options]
    )
    assert result.exit_code == 0, result.output
    library = trained.net  # the same settings through the library
    for a, b in zip(
        jax.tree_util.tree_leaves(library), jax.tree_util.tree_leaves(load_density_net(output)), strict=True
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-14)
    # re-gating through the CLI gives the library's config
    regated = tmp_path / "regated"
    result = runner.invoke(
        app,
        ["tdks", "functional", "--dataset", str(tiny_set), "--output", str(regated), *shape, "--init",
         str(output), "--pretrain-epochs", "0", "--horizon", "0", "--gate-scope", "window", "--gate-fallback",
         "sce"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    expected = replace(load_density_net(output).config, gate_scope="window", gate_fallback="sce")
    assert load_density_net(regated).config == expected


def test_integrated_force_output_makes_a_ramp_from_a_constant_force():
    net = build_density_net(
        DensityNetConfig(
            memory=2,
            channels=3,
            depth=1,
            kernel=3,
            dx=DX,
            dt=0.05,
            inputs=("density", "history"),
            integrate=True,
        )
    )
    weight, _ = net.layers[-1]
    net = equinox.tree_at(lambda n: n.layers[-1], net, (weight, np.array([0.0, 0.3])))  # local 0, force 0.3
    window = np.stack([_two_packets(0.0), _two_packets(0.01)])
    v_c = np.asarray(net(window))
    np.testing.assert_allclose(v_c, -0.3 * DX * np.arange(1, len(X) + 1), atol=1e-12)  # −∫F dx


@pytest.mark.parametrize("dilation", [1, 3])
def test_dilated_layers_see_exactly_their_receptive_field(dilation):
    """Catches taps spaced wrongly or padding that shifts the view: with kernel 5 and depth 2,
    v_c at a point depends on the density within 2·(1 + dilation) points of it, on both sides
    up to that edge, and on nothing beyond (the Jacobian's row, by forward differentiation)."""
    net = _net(inputs=("density", "history"), memory=2, dilation=dilation)
    rng = np.random.default_rng(1)
    window = rng.uniform(0.1, 1.0, size=(2, len(X)))
    centre = len(X) // 2

    row = np.asarray(jax.grad(lambda d: net(jax.numpy.stack([window[0], d]))[centre])(window[-1]))
    reach = 2 * (1 + dilation)
    offsets = np.flatnonzero(np.abs(row) > 1e-12) - centre
    assert offsets.min() == -reach and offsets.max() == reach
    assert np.all(row[: centre - reach] == 0) and np.all(row[centre + reach + 1 :] == 0)


def test_best_points_and_a_diverged_stage_are_reported():
    """The lowest loss of each stage-2 horizon, at its iteration from 1, beside the last; a
    horizon whose first loss is its lowest (the SCE-based seed-2 run: 8.34, then 10.1 to 14.1)
    is flagged, one that fell is not, and the supervised stage and a one-iteration horizon are
    never flagged."""
    from densitylab.tdks.functional import FunctionalResult, best_points, never_improved

    history = {
        "pretrain": {"epoch": [1, 2], "loss": [0.1, 0.2]},
        "horizon-60": {"iteration": [1, 2, 3], "loss": [1.7, 0.14, 0.13]},
        "horizon-600": {"iteration": [1, 2, 3, 4], "loss": [8.34, 10.13, 10.64, 9.9]},
    }
    points = best_points(history)
    assert points == {
        "horizon-60": {"iteration": 3, "loss": 0.13, "last": 0.13},
        "horizon-600": {"iteration": 1, "loss": 8.34, "last": 9.9},
    }
    assert never_improved(history) == ["horizon-600"]
    assert never_improved({"horizon-600": {"loss": [8.34]}}) == []
    assert FunctionalResult(None, None, history).best() == points


def test_supervised_pairs_come_from_the_given_densities(tiny_set):
    """Stage 1b's pairs: the inputs and weights from the functional's own densities, the v_c
    from the case at the same steps (from ``offset``, every ``stride``-th)."""
    from densitylab.tdks.functional import load_cases
    from densitylab.tdks.supervised import raw_features

    config = _config(tiny_set)
    cases = load_cases(config)
    own = [np.roll(case.target, 1, axis=1) for case in cases]  # densities that are not exact
    net_config = DensityNetConfig(
        memory=2, dx=cases[0].problem.dx, dt=cases[0].problem.dt, inputs=config.inputs
    )
    features, values, weights = raw_features(net_config, cases, 2, 1e-3, densities=own, offset=1)
    as_exact = [replace(case, target=densities) for case, densities in zip(cases, own, strict=True)]
    expected, _, _ = raw_features(net_config, as_exact, 2, 1e-3, offset=1)
    for case, densities, f, g, v, w in zip(cases, own, features, expected, values, weights, strict=True):
        np.testing.assert_array_equal(f, g)
        np.testing.assert_array_equal(v, case.values[1::2])
        np.testing.assert_array_equal(w, densities[1 : case.problem.steps : 2] + 1e-3)


def test_rollout_supervision_pulls_a_drifting_functional_back(tiny_set):
    """DAgger from a functional made to drift (its linear term perturbed): trained on the pairs
    of its own propagations, labelled with the exact v_c, its propagations come closer to the
    exact densities (the score, max ∫|Δn| over exchange-only's, falls), measured by propagating
    the functional, which the stage never differentiates."""
    from densitylab.tdks.functional import load_cases
    from densitylab.tdks.supervised import rollout_supervision

    config = _config(
        tiny_set, gate=False, horizons=(), dagger_rounds=3, dagger_epochs=6, dagger_learning_rate=1e-2
    )
    start = train_functional(replace(config, dagger_rounds=0)).net
    key = jax.random.PRNGKey(1)
    drifting = equinox.tree_at(
        lambda net: net.linear, start, start.linear + 0.5 * jax.random.normal(key, start.linear.shape)
    )
    _, history = rollout_supervision(drifting, load_cases(config), config)
    assert len(history["score"]) == 4 and len(history["loss"]) == 3
    assert history["score"][-1] < 0.5 * history["score"][0]
    assert history["kept"] == 3  # the last without keep_best
    assert all(np.isfinite(round_losses).all() for round_losses in history["loss"])


def test_rollout_supervision_resumes_and_refuses_other_settings(tiny_set, tmp_path, monkeypatch):
    """Interrupted within its first round, stage 1b resumes to the uninterrupted result; other
    settings are refused; with keep_best it keeps the functional of the lowest score; a
    propagation that is not finite adds no pairs and scores inf."""
    from densitylab.tdks import supervised

    config = _config(tiny_set, horizons=(), dagger_rounds=2, dagger_epochs=3, keep_best=True)
    whole = train_functional(config)
    dagger = whole.history["dagger"]
    assert dagger["kept"] == int(np.argmin(dagger["score"]))
    assert whole.summary()["dagger"] == {"score": dagger["score"], "kept": dagger["kept"]}

    class Stop(Exception):
        pass

    def interrupt(done, total, stage, **values):
        if stage == "dagger" and done == 2:  # in round 1's second epoch, its first one stored
            raise Stop

    checkpoint = tmp_path / "job.npz"
    with pytest.raises(Stop):
        train_functional(config, interrupt, checkpoint)
    assert (tmp_path / "job.npz.stage.npz.round.npz").exists()  # the running round's checkpoint
    with pytest.raises(InvalidParameterError, match="checkpoint"):
        train_functional(replace(config, dagger_epochs=4), checkpoint=checkpoint)
    resumed = train_functional(config, checkpoint=checkpoint)
    assert resumed.history["dagger"] == dagger
    for a, b in zip(
        jax.tree_util.tree_leaves(whole.net), jax.tree_util.tree_leaves(resumed.net), strict=True
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)
    assert not any(tmp_path.iterdir())

    runner, made = supervised.rollout_runner, []

    def failing(problem, memory):  # the first case's propagation is not finite
        made.append(problem)
        run = runner(problem, memory)
        return (lambda net: np.full_like(run(net), np.nan)) if len(made) == 1 else run

    monkeypatch.setattr(supervised, "rollout_runner", failing)
    history = train_functional(replace(config, dagger_rounds=1)).history["dagger"]
    assert history["errors"][0][history["cases"][0]] is None and history["score"][0] is None
    assert history["errors"][0][history["cases"][1]] > 0.0
    assert np.isfinite(history["loss"][0]).all()  # trained on the other case
    assert history["kept"] == 0  # no score is finite: keep_best keeps the start


def test_the_sce_potential_counted_from_the_centre_is_the_same_potential():
    """Counting electrons from the density's centre (the ``wall_free`` inputs) changes v_SCE by a
    constant only, which moves no density: against the count from the left wall, at the anchor's
    negligible floor, on two overlapping electrons (no gap below the floor, where f and so v_SCE
    are set by the floor; no grid point on f's jump, which either count may put on either side)."""
    from densitylab.tdks.sce import interaction_profile, sce_potential

    density = _two_packets(0.13, centre=2.5)
    profile = interaction_profile(_soft(X), X)
    wall = np.asarray(sce_potential(density, X, profile))
    difference = np.asarray(sce_potential(density, X, profile, centred=True)) - wall
    assert np.ptp(difference) < 1e-7 * np.abs(wall).max()
    assert abs(difference.mean()) > 1e-3 * np.abs(wall).max()  # another gauge


def _on_a_wider_box(window, left: int, right: int):
    """The same densities (memory, N) with ``left`` and ``right`` empty points added."""
    return np.pad(window, ((0, 0), (left, right)))


@pytest.mark.parametrize("wall_free", [False, True])
def test_a_wall_free_functional_does_not_see_where_the_walls_are(wall_free):
    """v_c[n] of a density far from the walls must not depend on where the walls are. The same
    two-electron window on its box and on a box 40 points wider on the left and 25 on the
    right: a ``wall_free`` network (every input, every weight non-zero) gives the same v_c to
    1e-10 everywhere beyond its receptive field from the smaller box's walls; the original
    networks differ there, through zero padding and the floor of the electron count measured
    from the wall."""
    net = _net(memory=3, wall_free=wall_free)
    window = np.stack([_two_packets(shift) for shift in (0.0, 0.02, 0.05)])
    narrow = np.asarray(net(jax.numpy.asarray(window)))
    wide = np.asarray(net(jax.numpy.asarray(_on_a_wider_box(window, 40, 25))))[40 : 40 + len(X)]
    reach = 2 * (5 // 2)  # depth 2, kernel 5
    inside = slice(reach, len(X) - reach)
    difference = np.abs(wide - narrow)[inside].max()
    if wall_free:
        assert difference < 1e-10 * np.abs(narrow).max()
    else:
        assert difference > 1e-4 * np.abs(narrow).max()


def test_mean_weights_averages_the_weights_and_keeps_the_rest():
    """The mean of two functionals that differ only in their linear term is the functional of
    the mean linear term: v_c, linear in that term, is the mean of their v_c (an independent
    check of the combination); scales and gate are the first's; the mean of one is itself."""
    from densitylab.tdks.supervised import mean_weights

    first = _net(inputs=("density", "history"), memory=2)
    second = equinox.tree_at(lambda net: net.linear, first, first.linear * -3.0 + 0.7)
    window = jax.numpy.asarray(np.stack([_two_packets(), _two_packets(0.1)]))
    mean = mean_weights([first, second])
    np.testing.assert_allclose(
        np.asarray(mean(window)), 0.5 * (np.asarray(first(window)) + np.asarray(second(window))), atol=1e-12
    )
    assert mean.config == first.config
    for a, b in zip(
        jax.tree_util.tree_leaves(mean_weights([first])), jax.tree_util.tree_leaves(first), strict=True
    ):
        np.testing.assert_array_equal(a, b)


def test_the_weight_average_is_of_the_last_rounds_only(tiny_set, monkeypatch):
    """With 3 rounds and ``dagger_average`` 2 the result is the mean of rounds 2 and 3, not of
    every round or of the start: each round here scales the weights by a known factor (a
    stand-in for the fit), so the mean is a known multiple of the start's weights."""
    from densitylab.tdks import supervised

    factors = {1: 1.1, 2: 1.2, 3: 1.3}

    def scaled(net, pairs, epochs, learning_rate, batch_size, seed, on_epoch, resumable=None):
        params, static = equinox.partition(net, equinox.is_inexact_array)
        factor = factors[seed[1]]
        return equinox.combine(jax.tree_util.tree_map(lambda leaf: factor * leaf, params), static)

    start = train_functional(_config(tiny_set, pretrain_epochs=0, horizons=())).net
    monkeypatch.setattr(supervised, "fit_pairs", scaled)
    config = _config(tiny_set, pretrain_epochs=0, horizons=(), dagger_rounds=3, dagger_average=2)
    result = train_functional(config)
    expected = 0.5 * (1.1 * 1.2 + 1.1 * 1.2 * 1.3)
    assert result.history["dagger"]["kept"] == 4
    pairs = zip(
        jax.tree_util.tree_leaves(equinox.filter(result.net, equinox.is_inexact_array)),
        jax.tree_util.tree_leaves(equinox.filter(start, equinox.is_inexact_array)),
        strict=True,
    )
    for averaged, first in pairs:
        np.testing.assert_allclose(np.asarray(averaged), expected * np.asarray(first), rtol=1e-12)


def test_rollout_supervision_scores_and_returns_the_mean_of_its_last_rounds(tiny_set):
    """With ``dagger_average`` the mean weights of the last rounds are scored after them and
    returned (without keep_best); the recorded errors are those of propagating the returned
    functional afresh, and a count beyond the rounds is refused before any work."""
    from densitylab.tdks.evaluate import VcModel
    from densitylab.tdks.functional import load_cases
    from densitylab.tdks.propagation import density_errors

    config = _config(tiny_set, horizons=(), dagger_rounds=2, dagger_epochs=2, dagger_average=2)
    result = train_functional(config)
    history = result.history["dagger"]
    assert len(history["score"]) == 4 and history["kept"] == 3 and history["averaged"] == 2
    assert result.summary()["dagger"]["averaged"] == 2
    for case in load_cases(config):
        params, model = density_net_model(result.net)
        densities, _ = run(case.problem, VcModel("mean", params, model, result.net.config.memory))
        error = np.max(density_errors(densities, case.target, case.problem.dx))
        assert error == pytest.approx(history["errors"][-1][case.name], rel=1e-9)
    for value in (1, 3, -1):
        with pytest.raises(InvalidParameterError, match=r"^dagger_average"):
            _config(tiny_set, dagger_rounds=2, dagger_average=value)
