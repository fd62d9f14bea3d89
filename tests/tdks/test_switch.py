"""A functional switched by the initial state (``tdks switch``): a trained network for starts
that move, an anchor for starts at rest."""

import json

import equinox
import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import densitylab
from densitylab.errors import InvalidParameterError
from densitylab.tdks.evaluate import (
    AT_REST_SPEED,
    Switch,
    alda,
    initial_speed,
    load_model,
    make_switch,
    run,
)
from densitylab.tdks.models import DensityNetConfig, build_density_net, save_density_net
from densitylab.tdks.propagation import KSProblem

X = np.linspace(-12.0, 12.0, 121)
DX = X[1] - X[0]


def _soft(strength=1.0):
    return strength / np.sqrt((X[:, None] - X[None, :]) ** 2 + 1.0)


def _orbital(momentum: float) -> np.ndarray:
    orbital = np.exp(-(X**2) / 4 + 1j * momentum * X)
    return orbital / np.sqrt(np.sum(np.abs(orbital) ** 2) * DX)


def _problem(momentum: float, strength: float = 1.0, field: float = 0.05) -> KSProblem:
    """Two electrons in a soft-Coulomb well, in a field that rises over 12 steps of 0.05 a.u."""
    ramp = field * np.linspace(0.0, 1.0, 12)
    v_ext = -2.0 / np.sqrt(X**2 + 1.0) + ramp[:, None] * X[None, :]
    return KSProblem(X, v_ext, _soft(strength), _orbital(momentum), 0.05)


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    """A small memory network of the new style (v_c scales as λ²) with every weight non-zero."""
    config = DensityNetConfig(
        memory=3, channels=4, depth=2, kernel=5, dx=DX, dt=0.05, inputs=("density", "history", "sce")
    )
    net = build_density_net(config)
    net = jax.tree_util.tree_map(lambda leaf: leaf + 0.05 if equinox.is_inexact_array(leaf) else leaf, net)
    folder = tmp_path_factory.mktemp("switch") / "net"
    save_density_net(folder, net)
    return folder


@settings(max_examples=20, deadline=None)
@given(st.floats(-2.5, 2.5))
def test_the_initial_speed_is_a_plane_waves_momentum(momentum):
    """∫|j|/∫n of √n e^{ikx} is |k|: central differences give sin(|k|dx)/dx, times 1 + O(dx²)
    from the amplitude's curvature (0.5 % for this Gaussian on this grid); a real orbital (a
    ground state) has none."""
    problem = _problem(momentum)
    np.testing.assert_allclose(initial_speed(problem), np.sin(abs(momentum) * DX) / DX, rtol=1e-2, atol=1e-12)
    assert initial_speed(_problem(0.0)) == 0.0


def test_a_switch_propagates_its_anchor_from_rest_and_its_network_when_moving(network, tmp_path):
    folder = tmp_path / "switch"
    summary = make_switch(str(network), folder)
    assert summary["at_rest"] == "alda" and summary["speed"] == AT_REST_SPEED
    at_rest, moving = _problem(0.0), _problem(0.5)
    # at rest (a real orbital in a rising field): the ALDA anchor's propagation
    switched = load_model(str(folder), at_rest)
    assert switched.label == "switch [alda: at rest]"
    np.testing.assert_array_equal(run(at_rest, switched)[0], run(at_rest, alda(at_rest))[0])
    # moving: the network's, which differs from ALDA's
    switched = load_model(str(folder), moving)
    assert switched.label == "switch"
    densities, v_c = run(moving, switched)
    np.testing.assert_array_equal(densities, run(moving, load_model(str(network), moving))[0])
    assert np.abs(v_c - run(moving, alda(moving))[1]).max() > 1e-3
    # the switch opens as its parts, and the network inside it is the one it was made from
    opened = densitylab.load(str(folder))
    assert isinstance(opened, Switch) and opened.at_rest_for(at_rest) and not opened.at_rest_for(moving)
    window = np.abs(np.stack([_orbital(0.5)] * 3)) ** 2 * 2.0
    np.testing.assert_array_equal(opened.moving(window), densitylab.load(str(network))(window))


def test_a_switch_gives_no_correlation_to_non_interacting_electrons_on_either_branch(network, tmp_path):
    """v_c vanishes without interaction (both parts scale as λ²), and at λ = 1/2 the at-rest
    part is a quarter of ALDA's on the same densities."""
    make_switch(str(network), tmp_path / "switch")
    for momentum in (0.0, 0.5):
        free = _problem(momentum, strength=0.0)
        assert np.all(run(free, load_model(str(tmp_path / "switch"), free))[1] == 0.0)
    half = _problem(0.0, strength=0.5)
    densities, v_c = run(half, load_model(str(tmp_path / "switch"), half))
    from densitylab.tdks.models import lda_correlation_potential

    # v_c of step k acts on the density at its start (memory 1: the window is n_k)
    np.testing.assert_allclose(v_c[4], 0.25 * np.asarray(lda_correlation_potential(densities[4])), rtol=1e-10)


def test_a_switch_to_exchange_only_returns_no_correlation_at_rest(network, tmp_path):
    make_switch(str(network), tmp_path / "switch", at_rest="exchange-only", speed=0.2)
    slow = _problem(0.1)  # below this switch's speed: at rest
    assert initial_speed(slow) < 0.2
    switched = load_model(str(tmp_path / "switch"), slow)
    assert switched.label == "switch [exchange-only: at rest]"
    assert np.all(run(slow, switched)[1] == 0.0)


def test_a_switch_of_what_it_cannot_switch_is_refused_before_anything_is_written(network, tmp_path):
    make_switch(str(network), tmp_path / "switch")
    for options, match in (
        (dict(moving=str(tmp_path / "missing")), r"^moving: expected a shipped functional"),
        (dict(moving=str(tmp_path / "switch")), r"^moving: expected a learned v_c functional"),
        (dict(at_rest="sce"), r"^at_rest: expected one of \('alda', 'exchange-only'\)"),
        (dict(speed=0.0), r"^speed: expected a positive"),
        (dict(speed=float("nan")), r"^speed"),
    ):
        arguments = {"moving": str(network), **options}
        with pytest.raises(InvalidParameterError, match=match):
            make_switch(output=tmp_path / "out", **arguments)
        assert not (tmp_path / "out").exists()


def test_the_command_makes_the_same_switch_and_evaluate_reports_the_branch(network, tmp_path):
    """``tdks switch`` with its defaults makes the library's default switch; ``tdks evaluate``
    of it on a laser-driven ground state propagates ALDA and says so."""
    from typer.testing import CliRunner

    from densitylab.cli import app

    runner = CliRunner()
    command = ["tdks", "switch", "--moving", str(network), "--output", str(tmp_path / "cli"), "--json"]
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    opened = densitylab.load(str(tmp_path / "cli"))
    assert (opened.at_rest, opened.speed) == ("alda", AT_REST_SPEED)  # the CLI's defaults are the library's
    refused = runner.invoke(app, ["tdks", "switch", "--moving", "sce", "--output", str(tmp_path / "no")])
    assert refused.exit_code == 2 and "moving" in refused.output and not (tmp_path / "no").exists()
    trajectory = tmp_path / "laser.h5"
    exact = ["tdks", "exact", "--scenario", "laser", "--time", "0.5", "--dt", "0.01", "--store-every", "5",
             "--dx", "0.5", "--amplitude", "0.1", "--output", str(trajectory)]  # fmt: skip
    assert runner.invoke(app, exact).exit_code == 0
    result = runner.invoke(
        app, ["tdks", "evaluate", "--trajectory", str(trajectory), "--model", str(tmp_path / "cli"), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["propagated"] == "cli [alda: at rest]"
    assert summary["density_error_max"] == summary["density_error_alda"]
    assert summary["density_error_max"] != summary["density_error_exchange_only"]
