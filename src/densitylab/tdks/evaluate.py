"""Loading, saving and evaluating v_c models on exact trajectories."""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from densitylab.artefacts import ARRAYS, artefact_folder, is_artefact, read_manifest, write_manifest
from densitylab.data import read_h5, write_h5
from densitylab.errors import InvalidParameterError, require, require_finite
from densitylab.tdks.models import (
    alda_correlation,
    build_ensemble,
    density_net_model,
    free_values,
    interaction_scale,
    load_density_net,
    save_density_net,
    save_ensemble,
    sce_correlation,
)
from densitylab.tdks.propagation import KSProblem, density_errors, propagate

PRETRAINED = Path(__file__).parent / "pretrained"


@dataclass(frozen=True, eq=False)
class VcModel:
    """A v_c model ready to propagate: params, the model function and its memory."""

    label: str
    params: object
    model: object
    memory: int = 1


def exchange_only(problem: KSProblem) -> VcModel:
    """v_c = 0: exact exchange only (v_Hx = v_H/2)."""
    params, model = free_values(problem.steps, problem.points)
    return VcModel("exchange-only", params, model, 1)


def alda(problem: KSProblem) -> VcModel:
    """Adiabatic LDA correlation (soft-Coulomb gas) on top of exact exchange."""
    params, model = alda_correlation()
    return VcModel("alda", params, model, 1)


def sce(problem: KSProblem) -> VcModel:
    """Adiabatic strictly correlated electrons: v_Hxc = v_SCE[n(t)] (v_c = v_SCE − ½v_H)."""
    params, model = sce_correlation(problem.interaction, problem.x)
    return VcModel("sce", params, model, 1)


ANCHORS = {"exchange-only": exchange_only, "alda": alda, "sce": sce}


def save_values(path: str | Path, v_c: np.ndarray, metadata: dict, extra_files=None) -> Path:
    """Learned free values v_c (T, N) (Ha) as an artefact folder (kind ``tdks-values``):
    ``arrays.h5`` holds v_c, the manifest how it was learned (``metadata``)."""
    v_c = np.asarray(v_c)
    config = {"steps": v_c.shape[0], "points": v_c.shape[1]}
    with artefact_folder(path) as folder:
        write_h5(folder / ARRAYS, {"v_c": v_c}, config)
        if extra_files is not None:
            extra_files(folder)
        write_manifest(folder, "tdks-values", config, **metadata)
    return Path(path)


def save_net(path: str | Path, net, metadata: dict, extra_files=None) -> Path:
    return save_density_net(path, net, metadata, extra_files)


def read_values(path: str | Path) -> np.ndarray:
    """The v_c (T, N) of a ``tdks-values`` folder (or a pre-manifest one with ``v_c.npy``)."""
    path = Path(path)
    read_manifest(path, ("tdks-values",))
    if (path / "v_c.npy").is_file():
        return np.load(path / "v_c.npy")
    return read_h5(path / ARRAYS)[0]["v_c"]


def shipped_or_path(name: str) -> tuple[list[str], Path]:
    """(the shipped model names, the folder of shipped model ``name`` or else ``name`` as a path)."""
    shipped = sorted(p.name for p in PRETRAINED.iterdir() if p.is_dir()) if PRETRAINED.is_dir() else []
    return shipped, PRETRAINED / name if name in shipped else Path(name)


def require_grid(net_config, problem: KSProblem, parameter: str, got: str) -> None:
    """Refuse (naming ``parameter``) a network trained on another grid spacing or KS step."""
    require(
        abs(net_config.dx - problem.dx) < 1e-9 and abs(net_config.dt - problem.dt) < 1e-9,
        parameter,
        f"a network trained with dx={problem.dx:g}, dt={problem.dt:g} (this one: dx={net_config.dx:g}, "
        f"dt={net_config.dt:g})",
        got,
    )


def load_model(name: str, problem: KSProblem) -> VcModel:
    """An anchor, a shipped model name, or a folder written by 'densitylab tdks learn',
    'tdks functional' or 'tdks ensemble'."""
    if name in ANCHORS:
        return ANCHORS[name](problem)
    shipped, path = shipped_or_path(name)
    if not is_artefact(path):
        raise InvalidParameterError(
            "model",
            f"one of {sorted(ANCHORS)}, a shipped model {shipped}, or a folder of 'tdks learn', 'tdks "
            "functional' or 'tdks ensemble'",
            name,
        )
    kind = read_manifest(path, ("tdks-values", "tdks-density-net", "tdks-ensemble", "tdks-switch"))["kind"]
    if kind == "tdks-switch":
        switch = load_switch(path)
        if switch.at_rest_for(problem):
            anchor = ANCHORS[switch.at_rest](problem)
            factor = interaction_scale(switch.moving.config, problem.interaction, problem.x) ** 2
            label = f"{path.name} [{anchor.label}: at rest]"
            return replace(anchor, label=label, model=_times(anchor.model, factor))
        return _network_model(switch.moving, problem, path.name, str(path))
    if kind == "tdks-values":
        v_c = read_values(path)
        require(
            v_c.shape == (problem.steps, problem.points),
            "model",
            f"free values of shape ({problem.steps}, {problem.points}) for this trajectory",
            v_c.shape,
        )
        _, model = free_values(problem.steps, problem.points)
        return VcModel(path.name, v_c, model, 1)
    return _network_model(load_density_net(path), problem, path.name, str(path))


def _network_model(net, problem: KSProblem, label: str, got: str) -> VcModel:
    require_grid(net.config, problem, "model", got)
    scale = interaction_scale(net.config, problem.interaction, problem.x)
    params, model = density_net_model(net, scale)
    return VcModel(label, params, model, net.config.memory)


def _times(model, factor: float):
    """The propagation model ``model`` with its v_c multiplied by ``factor``."""
    if factor == 1.0:
        return model
    return lambda params, window, k: factor * model(params, window, k)


#: The anchors a switch can hand a start at rest to (SCE is worse than exchange-only on the
#: held-out laser, and scales with the interaction by itself).
AT_REST_ANCHORS = ("alda", "exchange-only")

#: The mean speed (a.u.) of the initial KS state below which a switch takes a start as at rest:
#: a ground state's is 0 to rounding; a packet of momentum p carries about |p|/2 (one of two
#: electrons moves), 0.5 at the slowest training collision.
AT_REST_SPEED = 1e-2


def initial_speed(problem: KSProblem) -> float:
    """The initial KS state's mean speed ∫|j| dx / ∫n dx (a.u.), with n = 2|φ|² and
    j = 2 Im(φ* ∂ₓφ) of the doubly occupied orbital φ (central differences): 0 for a real
    orbital (a ground state), k for √(n/2) e^{ikx}."""
    orbital = np.asarray(problem.orbital0)
    current = 2.0 * np.imag(np.conj(orbital) * np.gradient(orbital, problem.dx))
    return float(np.sum(np.abs(current)) / np.sum(2.0 * np.abs(orbital) ** 2))


@dataclass(frozen=True, eq=False)
class Switch:
    """A v_c functional of the density and of the initial state (kind ``tdks-switch``): the
    network or committee ``moving`` where the initial KS state moves (collisions, packets), the
    anchor ``at_rest`` (one of :data:`AT_REST_ANCHORS`) where it starts at rest, i.e. with a
    mean speed (:func:`initial_speed`) below ``speed`` a.u. (a ground state driven by a field).
    Both parts take v_c times λ² for an interaction λ times the network's (0 without one)."""

    moving: object
    at_rest: str
    speed: float

    def at_rest_for(self, problem: KSProblem) -> bool:
        return initial_speed(problem) < self.speed


def make_switch(moving: str, output: str | Path, at_rest: str = "alda", speed: float = AT_REST_SPEED) -> dict:
    """Save a :class:`Switch` at ``output``: the functional ``moving`` (a shipped name, or a
    ``tdks functional``/``tdks ensemble`` folder, copied into ``output/moving`` with its
    manifest) for moving starts, the anchor ``at_rest`` for starts at rest; returns its summary.

    Raises:
        InvalidParameterError: naming ``at_rest`` (not an anchor), ``speed`` (not a finite
            positive speed) or ``moving`` (not a trained network or committee), before
            anything is written.
    """
    require(at_rest in AT_REST_ANCHORS, "at_rest", f"one of {AT_REST_ANCHORS}", at_rest)
    require_finite(speed=speed)
    require(speed > 0, "speed", "a positive mean speed (a.u.)", speed)
    shipped, path = shipped_or_path(moving)
    expected = f"a shipped functional {shipped}, or a 'tdks functional' or 'tdks ensemble' folder"
    require(is_artefact(path), "moving", expected, moving)
    read_manifest(path, ("tdks-density-net", "tdks-ensemble"), parameter="moving")
    with artefact_folder(output) as folder:
        shutil.copytree(path, folder / "moving")
        write_manifest(folder, "tdks-switch", {"at_rest": at_rest, "speed": speed}, moving_from=moving)
    return {"output": str(output), "moving": moving, "at_rest": at_rest, "speed": speed}


def load_switch(path: str | Path) -> Switch:
    """A ``tdks-switch`` folder (:func:`make_switch`) as its :class:`Switch`."""
    config = read_manifest(path, ("tdks-switch",))["config"]
    speed = float(config["speed"])
    require(math.isfinite(speed) and speed > 0, "model", "a switch with a positive speed", speed)
    at_rest = config["at_rest"]
    require(at_rest in AT_REST_ANCHORS, "model", f"a switch to one of {AT_REST_ANCHORS}", at_rest)
    return Switch(load_density_net(Path(path) / "moving"), at_rest, speed)


def make_ensemble(members: list[str], output: str | Path) -> dict:
    """Save the committee of trained functionals ``members`` (shipped names or
    ``tdks functional`` folders; :func:`densitylab.tdks.models.build_ensemble`) as one
    functional at ``output`` (kind ``tdks-ensemble``: load and evaluate it as any other);
    returns its summary.

    Raises:
        InvalidParameterError: naming ``members``: fewer than two, one that is not a trained
            network, or members that do not share memory, grid, step and interaction; all
            before anything is written.
    """
    paths = []
    for name in members:
        shipped, path = shipped_or_path(name)
        expected = f"a shipped functional {shipped} or a 'tdks functional' folder"
        require(is_artefact(path), "members", expected, name)
        read_manifest(path, ("tdks-density-net",), parameter="members")
        paths.append(path)
    ensemble = build_ensemble([load_density_net(path) for path in paths])
    save_ensemble(output, ensemble, {"members_from": list(members)})
    return {"output": str(output), "members": list(members), "memory": ensemble.config.memory}


def runner(problem: KSProblem, model: Callable, memory: int) -> Callable:
    """params → (KS densities (T + 1, N), v_c (T, N)) of ``model`` on ``problem``, NumPy,
    compiled once for every params of one structure (e.g. the networks of one shape)."""
    import equinox as eqx

    compiled = eqx.filter_jit(lambda params: propagate(problem, model, params, memory))

    def propagated(params):
        densities, v_c = compiled(params)
        return np.asarray(densities), np.asarray(v_c)

    return propagated


def run(problem: KSProblem, vc_model: VcModel) -> tuple[np.ndarray, np.ndarray]:
    """KS densities (T + 1, N) and v_c (T, N) of a model on a problem."""
    return runner(problem, vc_model.model, vc_model.memory)(vc_model.params)


def evaluate(problem: KSProblem, target: np.ndarray, models: list[VcModel]) -> dict:
    """∫|Δn| dx against time for each model; returns {label: {errors, densities, v_c}}."""
    results = {}
    for vc_model in models:
        densities, v_c = run(problem, vc_model)
        results[vc_model.label] = {
            "errors": density_errors(densities, target, problem.dx),
            "densities": densities,
            "v_c": v_c,
        }
    return results
