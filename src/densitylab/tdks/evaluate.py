"""Loading, saving and evaluating v_c models on exact trajectories."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from densitylab.artefacts import ARRAYS, artefact_folder, is_artefact, read_manifest, write_manifest
from densitylab.data import read_h5, write_h5
from densitylab.errors import InvalidParameterError, require
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
from densitylab.tdks.switch import load_switch

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


def trained_folder(name: str, parameter: str, kinds: tuple[str, ...], folders: str) -> Path:
    """The folder of the trained functional ``name`` (a shipped name or a folder of one of
    ``kinds``), refusing anything else naming ``parameter``; ``folders`` says which folders
    (e.g. "a 'tdks functional' folder") for the message."""
    shipped, path = shipped_or_path(name)
    require(is_artefact(path), parameter, f"a shipped functional {shipped}, or {folders}", name)
    read_manifest(path, kinds, parameter=parameter)
    return path


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
    'tdks functional', 'tdks ensemble' or 'tdks switch'."""
    if name in ANCHORS:
        return ANCHORS[name](problem)
    shipped, path = shipped_or_path(name)
    if not is_artefact(path):
        raise InvalidParameterError(
            "model",
            f"one of {sorted(ANCHORS)}, a shipped model {shipped}, or a folder of 'tdks learn', 'tdks "
            "functional', 'tdks ensemble' or 'tdks switch'",
            name,
        )
    kind = read_manifest(path, ("tdks-values", "tdks-density-net", "tdks-ensemble", "tdks-switch"))["kind"]
    if kind == "tdks-switch":
        return _switched_model(path, problem)
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


def _switched_model(path: Path, problem: KSProblem) -> VcModel:
    """The expert a ``tdks-switch`` folder chooses for ``problem``, labelled ``NAME [expert]``;
    a grid other than the network's is refused whatever the expert (the choice was measured on
    it). ALDA's v_c is scaled by λ² like the network's (SCE scales with the interaction itself)."""
    switch = load_switch(path)
    require_grid(switch.network.config, problem, "model", str(path))  # its table was measured there too
    expert, _ = switch.choose(problem.orbital0, problem.x)
    label = f"{path.name} [{expert}]"
    if expert == "network":
        return _network_model(switch.network, problem, label, str(path))
    anchor = ANCHORS[expert](problem)
    factor = interaction_scale(switch.network.config, problem.interaction, problem.x) ** 2
    return replace(anchor, label=label, model=_times(anchor.model, factor if expert == "alda" else 1.0))


def make_switch(
    network: str, dataset: str | Path, output: str | Path, neighbours: int | None = None, progress=None
) -> dict:
    """Fit and save a switched functional (:mod:`densitylab.tdks.switch`): the trained
    functional ``network`` (a shipped name, or a ``tdks functional``/``tdks ensemble`` folder,
    copied into ``output/network``) and the anchors, each propagated on every case of the
    trajectory set ``dataset`` (``tdks dataset``; keep held-out cases out of it), with the
    ``neighbours`` rule (None: the number whose leave-one-out choices on the set err least,
    :func:`densitylab.tdks.switch.cross_validated_neighbours`). ``progress(done, total,
    case=...)`` after each case. Returns a summary with the neighbours (and each number's mean
    leave-one-out error over exchange-only's) and, per case, its inward speed, the errors and
    the expert the other cases choose for it.

    Raises:
        InvalidParameterError: naming ``network`` (not a trained network or committee, or one
            of another grid), ``dataset`` (no set, or a case missing) or ``neighbours``, before
            any propagation; nothing is written then.
    """
    from densitylab.artefacts import check_replaceable
    from densitylab.model1d.propagation import load_trajectory
    from densitylab.tdks.propagation import problem_from_trajectory
    from densitylab.tdks.switch import (
        EXPERTS,
        SwitchCase,
        check_neighbours,
        cross_validated_neighbours,
        inward_speed,
        leave_one_out,
        save_switch,
    )

    if neighbours is not None:
        check_neighbours(neighbours)
    check_replaceable(output)
    kinds = ("tdks-density-net", "tdks-ensemble")
    path = trained_folder(network, "network", kinds, "a 'tdks functional' or 'tdks ensemble' folder")
    folder = Path(dataset)  # set.json read here: tdks.dataset imports the workflow, which imports this
    expected = "a folder made by 'densitylab tdks dataset' (with set.json)"
    require((folder / "set.json").is_file(), "dataset", expected, str(dataset))
    names = sorted(json.loads((folder / "set.json").read_text())["summaries"])
    missing = [name for name in names if not (folder / f"{name}.h5").is_file()]
    require(names and not missing, "dataset", "a set with every case's trajectory", missing or "no cases")
    net = load_density_net(path)

    def case_problem(name: str):
        return problem_from_trajectory(load_trajectory(folder / f"{name}.h5"))

    for name in names:  # every case's grid and interaction first, one case in memory at a time
        problem, _ = case_problem(name)
        require_grid(net.config, problem, "network", network)
        interaction_scale(net.config, problem.interaction, problem.x)
    cases = []
    for done, name in enumerate(names, start=1):
        problem, target = case_problem(name)
        experts = [_network_model(net, problem, "network", network)]
        results = evaluate(problem, target, experts + [ANCHORS[e](problem) for e in EXPERTS[1:]])
        errors = {expert: float(results[expert]["errors"].max()) for expert in EXPERTS}
        errors = {expert: error if np.isfinite(error) else math.inf for expert, error in errors.items()}
        cases.append(SwitchCase(name, inward_speed(problem.orbital0, problem.x), errors))
        if progress is not None:
            progress(done, len(names), case=name)
    best, scores = cross_validated_neighbours(tuple(cases))
    neighbours = best if neighbours is None else neighbours
    save_switch(output, path, cases, neighbours, network_from=network, dataset=str(dataset))
    others = leave_one_out(tuple(cases), neighbours)
    return {
        "output": str(output),
        "network": network,
        "neighbours": neighbours,
        "leave_one_out_ratio": scores,
        "cases": {
            case.name: {
                "speed": case.speed,
                "left_out": other,
                "left_out_error": None if other is None else case.errors[other],
                **case.errors,
            }
            for case, other in zip(cases, others, strict=True)
        },
    }


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
        paths.append(trained_folder(name, "members", ("tdks-density-net",), "a 'tdks functional' folder"))
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
