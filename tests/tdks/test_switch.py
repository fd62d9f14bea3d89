"""A functional switched among a trained network and the anchors by the initial state
(``tdks switch``, :mod:`densitylab.tdks.switch`)."""

import json

import equinox
import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import densitylab
from densitylab.errors import InvalidParameterError
from densitylab.tdks.dataset import TrajectorySetConfig, generate_set
from densitylab.tdks.evaluate import ANCHORS, load_model, make_switch, run
from densitylab.tdks.models import DensityNetConfig, build_density_net, save_density_net
from densitylab.tdks.propagation import KSProblem
from densitylab.tdks.switch import (
    EXPERTS,
    Switch,
    SwitchCase,
    choose,
    cross_validated_neighbours,
    inward_speed,
    leave_one_out,
    save_switch,
)
from densitylab.tdks.workflow import ExactConfig, evaluate_model

X = np.linspace(-12.0, 12.0, 121)
DX = X[1] - X[0]


def _packets(momentum: float) -> np.ndarray:
    """A real Gaussian at −5 and one at +5 with momentum ``momentum``, half an electron pair each."""
    orbital = np.exp(-((X + 5.0) ** 2)) + np.exp(-((X - 5.0) ** 2) + 1j * momentum * X)
    return orbital / np.sqrt(np.sum(np.abs(orbital) ** 2) * DX)


@settings(max_examples=25, deadline=None)
@given(st.floats(-2.5, 2.5))
def test_the_inward_speed_is_the_moving_packets_momentum_times_its_share(momentum):
    """The packet at +5 carries half the density; moving left (towards the centre) it counts
    +|k|/2, moving right −|k|/2: central differences give sin(|k|dx)/dx times 1 + O(dx²) from
    the amplitude's curvature. Reflection and translation leave the number as it is."""
    orbital = _packets(momentum)
    expected = -np.sign(momentum) * 0.5 * np.sin(abs(momentum) * DX) / DX
    np.testing.assert_allclose(inward_speed(orbital, X), expected, rtol=2e-2, atol=1e-12)
    np.testing.assert_allclose(
        inward_speed(orbital[::-1], X), inward_speed(orbital, X), rtol=1e-9, atol=1e-14
    )
    np.testing.assert_allclose(
        inward_speed(orbital, X + 3.7), inward_speed(orbital, X), rtol=1e-9, atol=1e-14
    )
    assert inward_speed(np.abs(orbital), X) == 0.0  # a real orbital: a ground state


def _case(name, speed, network, sce=1.2, alda=1.1):
    """A synthetic training case: errors relative to exchange-only's 1."""
    return SwitchCase(name, speed, {"network": network, "sce": sce, "alda": alda, "exchange-only": 1.0})


def test_the_expert_is_the_least_worst_ratio_over_the_nearest_cases():
    lasers = [_case(f"laser{k}", 0.0, network, alda=0.5) for k, network in enumerate((0.3, 0.4, 3.0))]
    collisions = [_case("slow", 0.7, 0.4), _case("mid", 0.8, 0.5, sce=0.9), _case("fast", 0.9, 1.3, sce=0.95)]
    leaving = [_case("away", -0.6, 0.3, sce=0.02)]
    cases = tuple(lasers + collisions + leaving)
    # a start at rest: all three lasers tie, and ALDA's worst (0.5) beats the network's (3.0),
    # though the network is best on two of them
    assert choose(cases, 0.0, 2) == ("alda", ("laser0", "laser1", "laser2"))
    assert choose(cases, 0.75, 2) == ("network", ("slow", "mid"))
    assert choose(cases, 0.86, 2) == ("sce", ("mid", "fast"))  # the network is 1.3 on "fast"
    assert choose(cases, 0.86, 1)[0] == "sce"
    assert choose(cases, 0.76, 1) == ("network", ("mid",))
    assert choose(cases, -0.5, 1) == ("sce", ("away",))
    # the second nearest of −0.9 are the lasers, where SCE is above exchange-only
    assert choose(cases, -0.9, 2) == ("exchange-only", ("laser0", "laser1", "laser2", "away"))
    # exchange-only wins where every other expert is above it on one of the nearest cases
    bad = (_case("a", 1.0, 1.2, sce=1.1, alda=0.5), _case("b", 1.1, 0.9, sce=1.05, alda=1.3))
    assert choose(bad, 1.05, 2)[0] == "exchange-only"
    # a diverged expert (error inf) is never chosen; a case exchange-only reproduces exactly
    # leaves only the experts that do too
    diverged = (_case("d", 0.5, np.inf, sce=0.9), _case("e", 0.6, 0.5, sce=0.95))
    assert choose(diverged, 0.55, 2)[0] == "sce"
    exact = (SwitchCase("x", 0.0, {"network": 0.0, "sce": 0.1, "alda": 0.0, "exchange-only": 0.0}),)
    assert choose(exact, 0.0, 1)[0] == "network"


def test_cross_validation_picks_the_neighbours_whose_left_out_choices_err_least():
    """Two leaving packets beside three lasers: with one neighbour each packet, left out,
    takes SCE from the other (0.05 of exchange-only's error); with two the lasers join in,
    where SCE is poor, and exchange-only is chosen. One neighbour wins."""
    lasers = tuple(
        _case(f"laser{k}", 0.0, network, sce=2.0, alda=0.5) for k, network in enumerate((0.4, 3.0, 0.6))
    )
    leaving = (_case("slow", -0.4, 0.3, sce=0.05, alda=1.2), _case("fast", -0.7, 0.3, sce=0.05, alda=1.2))
    cases = lasers + leaving
    assert leave_one_out(cases, 1)[3:] == ["sce", "sce"]
    assert leave_one_out(cases, 2)[3:] == ["exchange-only", "exchange-only"]
    best, scores = cross_validated_neighbours(cases)
    assert best == 1 and scores[1] < scores[2] and set(scores) == {1, 2, 3, 4}
    assert scores[1] == pytest.approx((3 * 0.5 + 2 * 0.05) / 5)  # ALDA on each laser, SCE on each packet
    # equal scores go to the larger number (the more cautious rule); one case has none to leave out
    same = (_case("a", 0.0, 0.5), _case("b", 0.1, 0.5), _case("c", 0.2, 0.5))
    assert cross_validated_neighbours(same)[0] == 2
    assert leave_one_out(same[:1], 1) == [None] and cross_validated_neighbours(same[:1])[0] == 1


def _network(dx: float, inputs=("density", "history", "sce")):
    config = DensityNetConfig(memory=3, channels=4, depth=2, kernel=5, dx=dx, dt=0.05, inputs=inputs)
    net = build_density_net(config)
    return jax.tree_util.tree_map(lambda leaf: leaf + 0.05 if equinox.is_inexact_array(leaf) else leaf, net)


def _problem(orbital: np.ndarray, strength: float = 1.0) -> KSProblem:
    """Two electrons in a soft-Coulomb well in a field rising over 12 steps of 0.05 a.u."""
    ramp = 0.05 * np.linspace(0.0, 1.0, 12)
    v_ext = -2.0 / np.sqrt(X**2 + 1.0) + ramp[:, None] * X[None, :]
    return KSProblem(X, v_ext, strength / np.sqrt((X[:, None] - X[None, :]) ** 2 + 1.0), orbital, 0.05)


def test_each_expert_propagates_as_itself_and_none_correlates_non_interacting_electrons(tmp_path):
    """A switch whose table sends starts at rest to ALDA, moving ones to the network (and, by
    another table, to SCE): the chosen expert's propagation, labelled; v_c = 0 without
    interaction on every branch; ALDA's v_c scales as λ² like the network's."""
    save_density_net(tmp_path / "net", _network(DX))
    table = [_case("laser", 0.0, 2.0, alda=0.5), _case("packet", 0.5, 0.3)]
    save_switch(tmp_path / "switch", tmp_path / "net", table, 1)
    at_rest, moving = _problem(np.abs(_packets(0.0)).astype(complex)), _problem(_packets(-1.0))
    switched = load_model(str(tmp_path / "switch"), at_rest)
    assert switched.label == "switch [alda]"
    np.testing.assert_array_equal(run(at_rest, switched)[0], run(at_rest, ANCHORS["alda"](at_rest))[0])
    switched = load_model(str(tmp_path / "switch"), moving)
    assert switched.label == "switch [network]"
    np.testing.assert_array_equal(
        run(moving, switched)[0], run(moving, load_model(str(tmp_path / "net"), moving))[0]
    )
    for orbital in (np.abs(_packets(0.0)).astype(complex), _packets(-1.0)):
        free = _problem(orbital, strength=0.0)
        assert np.all(run(free, load_model(str(tmp_path / "switch"), free))[1] == 0.0)
    half = _problem(np.abs(_packets(0.0)).astype(complex), strength=0.5)
    densities, v_c = run(half, load_model(str(tmp_path / "switch"), half))
    from densitylab.tdks.models import lda_correlation_potential

    np.testing.assert_allclose(v_c[4], 0.25 * np.asarray(lda_correlation_potential(densities[4])), rtol=1e-10)
    save_switch(tmp_path / "to-sce", tmp_path / "net", [_case("packet", 0.5, 2.0, sce=0.5)], 1)
    switched = load_model(str(tmp_path / "to-sce"), moving)
    assert switched.label == "to-sce [sce]"
    np.testing.assert_array_equal(run(moving, switched)[1], run(moving, ANCHORS["sce"](moving))[1])
    opened = densitylab.load(str(tmp_path / "switch"))
    assert isinstance(opened, Switch) and opened.choose(moving.orbital0, X)[0] == "network"
    with pytest.raises(InvalidParameterError, match=r"^orbital0"):
        opened.choose(np.zeros(len(X), complex), X)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    """A laser-driven ground state and a collision, 0.5 a.u. each on a 0.5-bohr grid."""
    folder = tmp_path_factory.mktemp("switch") / "set"
    cases = (
        ExactConfig(scenario="laser", amplitude=0.2, frequency=0.5, time=0.5, dx=0.5),
        ExactConfig(scenario="scattering", momentum=-1.5, time=0.5, dx=0.5),
    )
    generate_set(TrajectorySetConfig(cases, invert=False), folder)
    save_density_net(folder.parent / "net", _network(0.5))
    return folder


def test_a_fitted_switch_is_never_above_exchange_only_on_the_cases_it_was_fitted_on(small_set, tmp_path):
    """With one neighbour each training case chooses its own best expert: propagated through
    ``tdks evaluate``'s path, the switch's error is the least of the four, at most
    exchange-only's; the summary's left-out choice is the other case's."""
    network = str(small_set.parent / "net")
    summary = make_switch(network, small_set, tmp_path / "switch", neighbours=1)
    assert set(summary["cases"]) == {"laser-F0.200-w0.50", "scatter-p-1.50"}
    laser, collision = summary["cases"]["laser-F0.200-w0.50"], summary["cases"]["scatter-p-1.50"]
    assert abs(laser["speed"]) < 1e-12  # a ground state
    assert collision["speed"] == pytest.approx(0.5 * np.sin(1.5 * 0.5) / 0.5, rel=3e-2)  # |p|/2 on this grid
    for name, case in summary["cases"].items():
        evaluated = evaluate_model(small_set / f"{name}.h5", str(tmp_path / "switch")).summary
        best = min(EXPERTS, key=lambda expert: case[expert])
        assert evaluated["propagated"] == f"switch [{best}]"
        assert evaluated["density_error_max"] == pytest.approx(case[best], rel=1e-12)
        assert evaluated["density_error_max"] <= evaluated["density_error_exchange_only"]
        other = collision if case is laser else laser  # left out, its one neighbour is the other case
        ratios = {expert: other[expert] / other["exchange-only"] for expert in EXPERTS}
        assert case["left_out"] == min(EXPERTS, key=lambda expert: (ratios[expert], EXPERTS.index(expert)))


def test_a_switch_fitted_on_one_case_chooses_its_best_expert_everywhere(small_set, tmp_path):
    one = tmp_path / "one"
    one.mkdir()
    (one / "laser-F0.200-w0.50.h5").symlink_to(small_set / "laser-F0.200-w0.50.h5")
    summary = json.loads((small_set / "set.json").read_text())
    summary["summaries"] = {"laser-F0.200-w0.50": summary["summaries"]["laser-F0.200-w0.50"]}
    (one / "set.json").write_text(json.dumps(summary))
    fitted = make_switch(str(small_set.parent / "net"), one, tmp_path / "switch")
    case = fitted["cases"]["laser-F0.200-w0.50"]
    assert case["left_out"] is None and case["left_out_error"] is None  # nothing left to choose
    best = min(EXPERTS, key=lambda expert: (case[expert] / case["exchange-only"], EXPERTS.index(expert)))
    switch = densitylab.load(str(tmp_path / "switch"))
    assert switch.choose(_packets(-1.0), X)[0] == switch.choose(_packets(0.0), X)[0] == best


def test_a_switch_of_what_it_cannot_fit_is_refused_before_any_propagation(small_set, tmp_path):
    network = str(small_set.parent / "net")
    save_density_net(tmp_path / "fine", _network(0.1))
    make_switch(network, small_set, tmp_path / "switch", neighbours=2)
    for options, match in (
        (dict(network=str(tmp_path / "missing")), r"^network: expected a shipped functional"),
        (dict(network=str(tmp_path / "switch")), r"^network: expected a learned v_c functional"),
        (dict(network=str(tmp_path / "fine")), r"^network: expected a network trained with dx=0.5"),
        (dict(dataset=tmp_path), r"^dataset: expected a folder made by"),
        (dict(neighbours=0), r"^neighbours: expected a positive integer"),
        (dict(neighbours=True), r"^neighbours"),
    ):
        arguments = {"network": network, "dataset": small_set, **options}
        with pytest.raises(InvalidParameterError, match=match):
            make_switch(output=tmp_path / "out", **arguments)
        assert not (tmp_path / "out").exists()


def test_the_command_fits_the_same_switch_and_evaluate_reports_the_expert(small_set, tmp_path):
    from typer.testing import CliRunner

    from densitylab.cli import app

    runner = CliRunner()
    network = str(small_set.parent / "net")
    command = [
        "tdks",
        "switch",
        "--network",
        network,
        "--dataset",
        str(small_set),
        "--output",
        str(tmp_path / "cli"),
    ]
    result = runner.invoke(app, [*command, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    library = make_switch(network, small_set, tmp_path / "library")  # the CLI's default neighbours
    assert summary["neighbours"] == library["neighbours"] == 1  # two cases: one neighbour left out
    for name, case in library["cases"].items():
        for expert in EXPERTS:
            assert summary["cases"][name][expert] == pytest.approx(case[expert], rel=1e-12)
    trajectory = small_set / "laser-F0.200-w0.50.h5"
    result = runner.invoke(
        app, ["tdks", "evaluate", "--trajectory", str(trajectory), "--model", str(tmp_path / "cli"), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["propagated"].startswith("cli [")
    refused = runner.invoke(app, [*command[:3], "sce", *command[4:-1], str(tmp_path / "no")])
    assert refused.exit_code == 2 and "network" in refused.output and not (tmp_path / "no").exists()
