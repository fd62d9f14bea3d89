"""A v_c functional with memory trained to generalise (``densitylab tdks functional``).

The functional is a :class:`~densitylab.tdks.models.DensityNetConfig` network on the inputs of
:mod:`densitylab.tdks.features` (density, current, rates, velocity, the SCE correlation
potential and the co-motion partner), scaled by their density-weighted RMS on the training
set, with a linear term beside the convolutions and, optionally, a gate that hands back to
exact exchange (v_c → 0) where the inputs leave the training distribution.

Training has three stages, each optional, all on a set made by
:func:`densitylab.tdks.dataset.generate_set`:

1. **Supervised** on the exact v_c of each trajectory (model (a)), with the KS densities
   replaced by the exact ones (teacher forcing). The loss is gauge-free and weighted by the
   density: Σ_x n (δ − ⟨δ⟩_n)² / Σ_x n per step, δ = v_c − v_c^(a), since a constant in x
   moves no density and v_c^(a) is undetermined where n vanishes (a small ``floor`` added to
   the weights holds v_c near it there too). Minibatch Adam (:mod:`densitylab.tdks.supervised`).

   1b. **Supervised on its own propagations** (DAgger; ``dagger_rounds``): the functional's
   own KS densities of each training case, labelled with the exact v_c of the same step, join
   the pairs, round after round (:func:`~densitylab.tdks.supervised.rollout_supervision`).
   This is what made a functional generalise (docs/tdks.md).
2. **Through the propagation** (:func:`densitylab.tdks.learn.train`), on the density loss of
   the functional's own KS dynamics over horizons that grow (``horizons``, in KS steps), so
   that it learns to keep its own trajectory near the exact one. A horizon up to
   ``truncate`` steps is trained with exact gradients (L-BFGS by default); a longer one by
   truncated backpropagation with clipped Adam: the functional propagates over the whole
   horizon, but gradients are cut every ``truncate`` steps, since through a whole collision
   they grow without bound (1e21 at 200 steps). Each case's loss is divided by its
   exchange-only loss over the whole trajectory (``relative``), so that the laser cases,
   whose density errors are ten times smaller, count as much as the collisions, and a loss
   below 1 per case means better than exchange-only.

Each stage is resumable: the job's checkpoint holds the last finished stage, and the running
stage keeps its own checkpoint; a resume under other settings is refused.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from densitylab.errors import require
from densitylab.jaxsetup import jax_modules
from densitylab.tdks.supervised import (
    calibrated,
    pretrain,
    raw_features,
    require_rollout_memory,
    rollout_supervision,
)

# The defaults are the measured choices of docs/tdks.md: past densities as they are (time
# derivatives as inputs made the gradients through the propagation explode, 1e9 after one
# L-BFGS step), the SCE potential, no supervised stage (it made propagation worse), L-BFGS.
DEFAULT_INPUTS = ("density", "history", "sce")
DEFAULT_HORIZONS = (60, 600)


@dataclass(frozen=True)
class FunctionalConfig:
    """What to train on and how.

    Attributes:
        dataset: a folder of :func:`~densitylab.tdks.dataset.generate_set` (with ``set.json``
            and the inverted v_c of each case).
        cases: names of the cases to train on (None: every case of the set, or the preset's).
        preset: "training" or "held-out": train on that documented part of the set (its
            cases by :func:`densitylab.tdks.dataset.select_cases`), plus ``cases``.
        inputs, memory, channels, depth, kernel, dilation, seed: the network
            (:class:`~densitylab.tdks.models.DensityNetConfig`).
        gate: add the out-of-distribution gate (threshold: the 99.9 % density-weighted
            quantile of the training inputs' Mahalanobis distance).
        gate_scope: "point" or "window" (:class:`~densitylab.tdks.models.DensityNetConfig`);
            None: "point", or with ``init`` the starting functional's. With ``init`` and no
            stage (``pretrain_epochs`` and ``dagger_rounds`` 0, no ``horizons``) the result is
            the starting functional with this gate.
        gate_fallback: "exchange" or "sce", what the gate hands back to
            (:class:`~densitylab.tdks.models.DensityNetConfig`); None: "exchange", or with
            ``init`` the starting functional's.
        integrate: the network gives the force −∂ₓv_c, integrated from the left edge.
        wall_free: a network that does not see the box's walls
            (:class:`~densitylab.tdks.models.DensityNetConfig`).
        stride: supervised pairs every ``stride`` KS steps.
        pretrain_epochs, batch_size, learning_rate: stage 1 (Adam).
        horizons: stage 2's horizons in KS steps, in order (empty: no stage 2); each is cut
            to a trajectory's length.
        rollout_iterations: iterations per horizon up to ``truncate``.
        rollout_optimiser, rollout_learning_rate, clip: the optimiser of those horizons:
            "adam" (with the gradient clipped to the global norm ``clip``: gradients through a
            long propagation of a pretrained functional reach 1e20 and more) or "lbfgs".
        truncate: horizons longer than this many steps are trained by truncated
            backpropagation (gradients cut every ``truncate`` steps) with Adam at
            ``rollout_learning_rate`` clipped to ``clip``, for ``truncated_iterations``
            iterations (None: every horizon with exact gradients).
        relative: weight each case by 1 / its exchange-only loss over its whole trajectory.
        measure: stage 2's loss: "density", Σ (n_KS − n_exact)²; "charge", Σ (Q_KS −
            Q_exact)² with Q(x) the charge left of x; or "current", Σ (j_KS − j_exact)² with
            the currents from continuity (:func:`~densitylab.tdks.propagation.density_loss`).
        floor: bohr⁻¹ added to the density weights of stage 1, so that v_c is also held
            near the exact one where there is little density (it is free there otherwise,
            and a large v_c there makes the propagation stiff).
        base: where training starts: "exchange" (v_c = 0, exact exchange) or "sce" (the
            linear term starts as the ``sce`` input itself, v_c = v_SCE − ½v_H: a learned
            correction on top of SCE, near-exact before a collision; needs the ``sce`` input).
            The gate still hands back to exact exchange (v_c = 0).
        keep_best: each horizon of stage 2 keeps the parameters with the lowest training loss
            it saw, not the last ones (a truncated-gradient run whose loss rises late keeps its
            best point); stage 1b keeps its functional of the lowest score.
        dagger_rounds, dagger_epochs, dagger_learning_rate: stage 1b
            (:func:`~densitylab.tdks.supervised.rollout_supervision`): rounds of supervision on
            the functional's own propagations (0: none), Adam epochs per round and its peak
            learning rate.
        dagger_average: with K ≥ 2, the mean of the weights of the last K rounds' functionals
            (Izmailov et al., UAI 2018: the rounds move by ±0.2 in a case's error) is scored too,
            and is the result unless ``keep_best`` keeps a round of a lower score (0: none).
        init: start from this functional (a ``tdks functional`` folder or a shipped name), its
            weights, input scales and gate, not a new network; its shape (inputs, memory, channels,
            depth, kernel, dilation, integrate, wall_free) must be the config's, and ``base``
            "exchange".
    """

    dataset: str
    cases: tuple[str, ...] | None = None
    preset: str | None = None
    inputs: tuple[str, ...] = DEFAULT_INPUTS
    memory: int = 4
    channels: int = 16
    depth: int = 3
    kernel: int = 9
    dilation: int = 1
    seed: int = 0
    gate: bool = True
    gate_scope: str | None = None
    gate_fallback: str | None = None
    integrate: bool = False
    wall_free: bool = False
    stride: int = 2
    pretrain_epochs: int = 0
    batch_size: int = 32
    learning_rate: float = 3e-3
    horizons: tuple[int, ...] = DEFAULT_HORIZONS
    rollout_iterations: int = 6
    rollout_optimiser: str = "lbfgs"
    rollout_learning_rate: float = 1e-3
    clip: float = 1.0
    floor: float = 1e-3
    truncate: int | None = 60
    truncated_iterations: int = 40
    relative: bool = True
    measure: str = "density"
    base: str = "exchange"
    keep_best: bool = False
    init: str | None = None
    dagger_rounds: int = 0
    dagger_epochs: int = 4
    dagger_learning_rate: float = 1e-3
    dagger_average: int = 0

    def __post_init__(self) -> None:
        from densitylab.tdks.features import check_inputs
        from densitylab.tdks.propagation import check_measure

        object.__setattr__(self, "dataset", str(self.dataset))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "horizons", tuple(int(h) for h in self.horizons))
        if self.cases is not None:
            object.__setattr__(self, "cases", tuple(self.cases))
        require(
            (Path(self.dataset) / "set.json").is_file(),
            "dataset",
            "a folder made by 'densitylab tdks dataset' (with set.json)",
            self.dataset,
        )
        check_inputs(self.inputs, self.memory)
        check_measure(self.measure)
        require(self.base in ("exchange", "sce"), "base", "exchange or sce", self.base)
        require(self.base != "sce" or "sce" in self.inputs, "base", "exchange without input sce", self.base)
        for name in ("stride", "batch_size", "channels", "depth", "memory", "dilation", "dagger_epochs"):
            value = getattr(self, name)
            require(isinstance(value, int) and value >= 1, name, "a positive integer", value)
        require(
            self.truncate is None or (isinstance(self.truncate, int) and self.truncate >= 1),
            "truncate",
            "a positive number of steps, or None",
            self.truncate,
        )
        for name in ("pretrain_epochs", "rollout_iterations", "truncated_iterations", "dagger_rounds"):
            value, least = getattr(self, name), int(bool(self.horizons) and "iterations" in name)
            require(isinstance(value, int) and value >= least, name, f"an integer ≥ {least}", value)
        require(
            isinstance(self.dagger_average, int) and (self.dagger_average == 0 or 2 <= self.dagger_average),
            "dagger_average",
            "0, or a number of rounds from 2",
            self.dagger_average,
        )
        require(
            self.dagger_average <= self.dagger_rounds,
            "dagger_average",
            f"at most dagger_rounds ({self.dagger_rounds}) rounds",
            self.dagger_average,
        )
        require(self.kernel >= 1 and self.kernel % 2 == 1, "kernel", "an odd positive integer", self.kernel)
        require(all(h >= 1 for h in self.horizons), "horizons", "positive step counts", self.horizons)
        require(
            self.rollout_optimiser in ("adam", "lbfgs"),
            "rollout_optimiser",
            "adam or lbfgs",
            self.rollout_optimiser,
        )
        for name in ("learning_rate", "rollout_learning_rate", "clip", "floor", "dagger_learning_rate"):
            value = getattr(self, name)
            require(np.isfinite(value) and value > 0, name, "a positive number", value)
        require(self.preset in (None, "training", "held-out"), "preset", "training or held-out", self.preset)
        require(
            self.gate_scope in (None, "point", "window"),
            "gate_scope",
            "point, window or None",
            self.gate_scope,
        )
        require(
            self.gate or self.init is not None or self.gate_scope in (None, "point"),
            "gate_scope",
            "point (or None) without the gate",
            self.gate_scope,
        )
        fallbacks = (None, "exchange", "sce")
        require(self.gate_fallback in fallbacks, "gate_fallback", "exchange, sce or None", self.gate_fallback)
        require(
            self.gate or self.init is not None or self.gate_fallback in (None, "exchange"),
            "gate_fallback",
            "exchange (or None) without the gate",
            self.gate_fallback,
        )
        require(
            self.gate_fallback != "sce" or "sce" in self.inputs,
            "gate_fallback",
            "exchange (or None) without the sce input",
            self.gate_fallback,
        )
        require(
            self.gate_scope != "window" or "density" in self.inputs,
            "gate_scope",
            "point (or None) without the density input",
            self.gate_scope,
        )
        if self.init is not None:
            object.__setattr__(self, "init", str(self.init))
            require(self.base == "exchange", "base", "exchange (the default) with init", self.base)
            initial_net(self)
        available = set(_set_cases(self.dataset))
        for name in self.case_names():
            require(name in available, "cases", f"names from the set: {sorted(available)}", name)

    def settings(self) -> dict:
        """Checkpoint settings (:func:`~densitylab.checkpoint.config_settings`; gate options when set)."""
        from densitylab.checkpoint import config_settings

        return config_settings(self, {"gate_scope": None, "gate_fallback": None})

    def gating(self) -> dict:
        """The gate options that are set, as :class:`~densitylab.tdks.models.DensityNetConfig` fields."""
        options = {"gate_scope": self.gate_scope, "gate_fallback": self.gate_fallback}
        return {name: value for name, value in options.items() if value is not None}

    def case_names(self) -> tuple[str, ...]:
        if self.preset is not None:
            from densitylab.tdks.dataset import case_name, select_cases

            chosen = tuple(case_name(case) for case in select_cases(self.preset))
            return chosen + tuple(name for name in self.cases or () if name not in chosen)
        return self.cases if self.cases is not None else _set_cases(self.dataset)


def initial_net(config: FunctionalConfig):
    """The network of ``config.init``, refused (naming ``init``) unless it is a functional of
    the config's shape."""
    from densitylab.artefacts import is_artefact, read_manifest
    from densitylab.tdks.evaluate import shipped_or_path
    from densitylab.tdks.models import load_density_net, with_config

    shipped, path = shipped_or_path(config.init)
    expected = f"a 'tdks functional' folder or a shipped functional {shipped}"
    kind = read_manifest(path)["kind"] if is_artefact(path) else None
    require(kind == "tdks-density-net", "init", expected, config.init)
    net = load_density_net(path)
    shape = ("inputs", "memory", "channels", "depth", "kernel", "dilation", "integrate", "wall_free")
    differ = {n: getattr(net.config, n) for n in shape if getattr(net.config, n) != getattr(config, n)}
    require(not differ, "init", "a functional of the config's shape (set these to its values)", differ)
    changes = {name: value for name, value in config.gating().items() if value != getattr(net.config, name)}
    return with_config(net, **changes) if changes else net


def _set_cases(dataset: str) -> tuple[str, ...]:
    """The case names a set's ``set.json`` lists."""
    return tuple(json.loads((Path(dataset) / "set.json").read_text())["summaries"])


@dataclass(frozen=True, eq=False)
class Case:
    """One training trajectory: its KS problem, exact densities (T + 1, N) and exact v_c (T, N);
    ``values`` is None where no supervised stage needs it."""

    name: str
    problem: object
    target: np.ndarray
    values: np.ndarray | None


def load_cases(config: FunctionalConfig) -> list[Case]:
    """The cases of the set. With a supervised stage (``pretrain_epochs`` or ``dagger_rounds``
    > 0) each needs its inverted v_c (a missing one is refused before any training); one that
    does not reproduce its trajectory (:func:`~densitylab.tdks.dataset.reproduces`) is left out
    of those stages with a warning (``values`` None) and still trained on through the
    propagation; without one the trajectories suffice (``densitylab tdks dataset
    --no-invert``: half the generation time)."""
    from densitylab.artefacts import read_manifest
    from densitylab.model1d.propagation import load_trajectory
    from densitylab.tdks.dataset import REPRODUCTION_TOLERANCE, reproduces
    from densitylab.tdks.evaluate import read_values
    from densitylab.tdks.propagation import problem_from_trajectory

    cases, unsupervised = [], []
    folder = Path(config.dataset)
    supervised = config.pretrain_epochs > 0 or config.dagger_rounds > 0
    for name in config.case_names():
        values_folder = folder / f"{name}-values"
        require(
            not supervised or (values_folder / "manifest.json").is_file(),
            "dataset",
            f"the inverted v_c of {name} for a supervised stage (run 'densitylab tdks dataset' with "
            "inversion)",
            str(values_folder),
        )
        problem, target = problem_from_trajectory(load_trajectory(folder / f"{name}.h5"))
        values = None
        if supervised and reproduces(
            read_manifest(values_folder, ("tdks-values",))["summary"]["trajectory_0"]
        ):
            values = read_values(values_folder)
            require(values.shape == (problem.steps, problem.points), "dataset", "matching v_c", values.shape)
        elif supervised:
            unsupervised.append(name)
        cases.append(Case(name, problem, target, values))
    if unsupervised:
        require(
            len(unsupervised) < len(cases),
            "dataset",
            "an inverted v_c that reproduces its trajectory (max ∫|Δn| dx within "
            f"{REPRODUCTION_TOLERANCE:.0%} of exchange-only's) for at least one case; rerun "
            "'densitylab tdks dataset', which tries longer fits",
            "none",
        )
        warnings.warn(
            f"the inverted v_c of {', '.join(unsupervised)} does not reproduce its trajectory: the "
            "supervised stages leave it out, the propagation trains on it",
            stacklevel=2,
        )
    dx = {round(case.problem.dx, 12) for case in cases}
    dt = {round(case.problem.dt, 12) for case in cases}
    require(len(dx) == 1 and len(dt) == 1, "dataset", "cases with one grid spacing and KS step", (dx, dt))
    shortest = min(case.problem.steps for case in cases)
    require(  # a longer window only repeats n(0), and its arrays grow with it
        config.memory <= shortest + 1,
        "memory",
        f"at most {shortest + 1} (the shortest case's steps + 1)",
        config.memory,
    )
    return cases


def start_from(net, base: str):
    """``net`` with its linear term set so that it starts at ``base``: "exchange" (as built,
    v_c = 0) or "sce" (the weight of the ``sce`` input is its scale, so v_c = v_SCE − ½v_H,
    with the features' counting floor; the first output only, the local part)."""
    _, _, eqx = jax_modules()
    from densitylab.tdks.features import feature_count

    if base == "exchange":
        return net
    names = net.config.feature_names()
    row = feature_count(names[: names.index("sce")], net.config.memory)
    linear = net.linear.at[0, row].set(net.config.scales[row] if net.config.scales else 1.0)
    return eqx.tree_at(lambda module: module.linear, net, linear)


@dataclass(eq=False)
class FunctionalResult:
    """The trained network, its histories per stage, and the time each stage took."""

    config: FunctionalConfig
    net: object
    history: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        """A ``tdks-density-net`` artefact folder (load it by path in ``tdks evaluate``)."""
        from densitylab.tdks.models import save_density_net

        extra = {"training": asdict(self.config), "history": self.history, "seconds": self.seconds}
        return save_density_net(path, self.net, extra | {"best": self.best()})

    def summary(self) -> dict:
        """What the CLI prints beside the saved folder: each stage's seconds, :meth:`best`,
        stage 1b's score of each functional and the one kept, and the gate."""
        dagger = self.history.get("dagger") or {}
        keys = ("score", "kept", "averaged")
        rounds = {"dagger": {k: dagger[k] for k in keys if k in dagger}} if dagger else {}
        net = self.net.config
        gate = {"threshold": net.gate_threshold, "scope": net.gate_scope, "fallback": net.gate_fallback}
        return {"seconds": self.seconds, "best": self.best(), **rounds, "gate": gate}

    def best(self) -> dict:
        """Per stage 2 horizon: the iteration (from 1) of its lowest training loss, that loss and
        the last one (what ``keep_best`` returns, or passed by)."""
        return best_points(self.history)


def best_points(history: dict) -> dict:
    """{stage: {"iteration", "loss", "last"}} from the loss histories of stage 2 (:func:`fine_tune`)."""
    points = {}
    for stage, record in history.items():
        losses = record.get("loss") if stage.startswith("horizon-") else None
        if losses:
            index = int(np.argmin(losses))
            points[stage] = {"iteration": index + 1, "loss": float(losses[index]), "last": float(losses[-1])}
    return points


def never_improved(history: dict) -> list[str]:
    """The stage 2 horizons of more than one iteration whose lowest loss is their first: with
    ``keep_best`` such a stage returns its starting point, and the run diverged (one seed in three
    of the SCE-based runs did; docs/tdks.md): train another seed."""
    return [
        stage
        for stage, point in best_points(history).items()
        if point["iteration"] == 1 and len(history[stage]["loss"]) > 1
    ]


def truncated(case: Case, horizon: int):
    """The case's KS problem and target cut to its first ``horizon`` steps."""
    from densitylab.tdks.propagation import KSProblem

    steps = min(horizon, case.problem.steps)
    problem = case.problem
    cut = KSProblem(problem.x, problem.v_ext[:steps], problem.interaction, problem.orbital0, problem.dt)
    return cut, case.target[: steps + 1]


def exchange_only_losses(cases: list[Case], measure: str = "density") -> list[float]:
    """Each case's loss Σ_t Σ_x (n_KS − n_exact)² dx (or the ``measure`` of
    :func:`~densitylab.tdks.propagation.density_loss`) over its whole trajectory with the
    exchange-only anchor (v_c = 0)."""
    jax, _, _ = jax_modules()
    from densitylab.tdks.evaluate import exchange_only
    from densitylab.tdks.propagation import propagate_loss

    losses = []
    for case in cases:
        anchor = exchange_only(case.problem)
        loss = jax.jit(
            lambda params, c=case, a=anchor: propagate_loss(
                c.problem, a.model, params, c.target, measure=measure
            )
        )
        losses.append(float(loss(anchor.params)))
    return losses


def fine_tune(
    net,
    cases: list[Case],
    config: FunctionalConfig,
    horizon: int,
    progress=None,
    checkpoint=None,
    weights: list[float] | None = None,
):
    """Stage 2 at one horizon (through the propagation; truncated past ``config.truncate``
    steps); ``weights`` one per case. Returns (net, history)."""
    from densitylab.tdks.learn import train
    from densitylab.tdks.models import density_net_model

    problems, targets = zip(*(truncated(case, horizon) for case in cases), strict=True)
    _, model = density_net_model(net)
    settings = {"stage": f"horizon-{horizon}", "config": config.settings()}
    cut = config.truncate is not None and max(p.steps for p in problems) > config.truncate
    optimiser = "adam" if cut else config.rollout_optimiser
    return train(
        list(problems),
        list(targets),
        net,
        model,
        config.memory,
        config.truncated_iterations if cut else config.rollout_iterations,
        optimiser,
        config.rollout_learning_rate,
        progress=progress,
        checkpoint=checkpoint,
        checkpoint_every=1,  # an iteration propagates every case: minutes each
        settings=settings,
        clip=config.clip if optimiser == "adam" else None,
        weights=weights,
        truncate=config.truncate if cut else None,
        measure=config.measure,
        keep_best=config.keep_best,
    )


def train_functional(
    config: FunctionalConfig,
    progress: Callable[..., None] | None = None,
    checkpoint: str | Path | None = None,
) -> FunctionalResult:
    """Both stages; resumable with ``checkpoint`` (a .npz path; the running stage uses
    ``<checkpoint>.stage.npz``). ``progress(done, total, loss=…, stage=…)`` per epoch/iteration."""
    from densitylab.checkpoint import read_checkpoint, tree_arrays, tree_from_arrays, write_checkpoint
    from densitylab.tdks.models import DensityNetConfig, build_density_net

    cases = load_cases(config)
    problem = cases[0].problem
    shape = {
        name: getattr(config, name)
        for name in ("memory", "channels", "depth", "kernel", "dilation", "seed", "wall_free")
    }
    net_config = DensityNetConfig(
        **shape, dx=problem.dx, dt=problem.dt, inputs=config.inputs, integrate=config.integrate
    )
    if config.dagger_rounds:  # before any stage: an impossible stage 1b is refused at once
        require_rollout_memory(net_config, cases, config)
    if config.init is None:
        features, _, weights = raw_features(net_config, cases, max(config.stride, 4))
        net_config = replace(calibrated(net_config, features, weights, config.gate), **config.gating())
        net = start_from(build_density_net(net_config), config.base)
        del features
    else:
        from densitylab.tdks.evaluate import require_grid

        net = initial_net(config)
        require_grid(net.config, problem, "init", config.init)
    relative = None
    if config.relative and config.horizons:  # only the propagation stages weight cases
        relative = [1.0 / loss for loss in exchange_only_losses(cases, config.measure)]
    stages = ["pretrain", "dagger"] + [f"horizon-{h}" for h in config.horizons]
    settings = {"config": config.settings(), "net": net.config.settings()}
    if config.init is not None:  # a resume after the starting functional changed is refused
        from densitylab.checkpoint import fingerprint

        settings["init_weights"] = fingerprint(*tree_arrays(net).values())
    result = FunctionalResult(config, net)
    finished = -1
    if checkpoint is not None:
        stored = read_checkpoint(checkpoint, settings)
        if stored is not None:
            arrays, state = stored
            net = tree_from_arrays(arrays, net)
            finished, result.history, result.seconds = state["finished"], state["history"], state["seconds"]
    stage_checkpoint = None if checkpoint is None else f"{checkpoint}.stage.npz"
    for index, stage in enumerate(stages):
        if index <= finished:
            continue

        def report(done, total, stage=stage, **values):
            if progress:
                progress(done, total, stage=stage, **values)

        started = time.perf_counter()
        if stage == "pretrain":
            if config.pretrain_epochs:
                net, history = pretrain(net, cases, config, report, stage_checkpoint)
            else:
                history = {}
        elif stage == "dagger":
            history = {}
            if config.dagger_rounds:
                net, history = rollout_supervision(net, cases, config, report, stage_checkpoint)
        else:
            horizon = config.horizons[index - 2]
            net, history = fine_tune(net, cases, config, horizon, report, stage_checkpoint, relative)
            if never_improved({stage: history}):
                warnings.warn(
                    f"{stage}: the training loss never fell below its first value "
                    f"({history['loss'][0]:.4g}); the run diverged, so train another seed",
                    stacklevel=2,
                )
        result.history[stage] = history
        result.seconds[stage] = time.perf_counter() - started
        if checkpoint is not None:
            state = {"finished": index, "history": result.history, "seconds": result.seconds}
            write_checkpoint(checkpoint, settings, tree_arrays(net), state)
    result.net = net
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)
    return result
