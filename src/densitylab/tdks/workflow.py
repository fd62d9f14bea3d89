"""Learning v_c as one call: :class:`LearnConfig` (validated when made), :func:`learn`, and a
:class:`LearnResult` that saves itself as an artefact folder with its figures.

``densitylab tdks learn`` is this and nothing more. A Python user reproduces a CLI run with

    result = learn(LearnConfig(trajectories=("p-1.0.h5",), model="values", optimiser="gauss-newton"))
    result.save("model-a")

The result is evaluated on every training trajectory beside the anchors (exchange-only, ALDA,
SCE): ``result.summary`` holds the largest density errors ∫|n_KS − n_exact| dx over time.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from densitylab.errors import InvalidParameterError, require, require_finite

MODELS = ("values", "adiabatic", "memory")
OPTIMISERS = ("lbfgs", "adam", "gauss-newton")


@dataclass(frozen=True)
class LearnConfig:
    """What to learn, from which exact trajectories, and how.

    Attributes:
        trajectories: exact trajectory files (``densitylab tdks exact``); one for ``values``.
        model: "values" (free v_c(x, t), model (a)), "adiabatic" (b) or "memory" (c).
        iterations: optimiser iterations; None: 300, or 8 per window for gauss-newton.
        optimiser: "lbfgs", "adam", or "gauss-newton" (windowed, values only).
        gn_window, gn_lookahead, gn_cg_iterations, gn_floor: the Gauss–Newton fit's steps per
            window, extra steps fitted past each window, CG iterations per step and the
            preconditioner floors, split in order over each window's iterations (None: the
            default continuation (1e-6, 1e-8); one iteration uses the first floor only).
        learning_rate: adam's step size. smoothness: values only, weight of the penalty.
        memory, channels, depth, kernel, seed: the network of adiabatic (memory 1) / memory.
        coarsen: the KS grid takes every coarsen-th exact point.
        segment: adiabatic/memory: train on segments of this many steps (0: the full horizon).
    """

    trajectories: tuple[str, ...]
    model: str = "values"
    iterations: int | None = None
    optimiser: str = "lbfgs"
    gn_window: int = 20
    gn_lookahead: int = 10
    gn_cg_iterations: int = 100
    gn_floor: tuple[float, ...] | None = None
    learning_rate: float = 1e-3
    smoothness: float = 0.0
    memory: int = 4
    channels: int = 16
    depth: int = 3
    kernel: int = 9
    coarsen: int = 1
    seed: int = 0
    segment: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "trajectories", tuple(str(path) for path in self.trajectories))
        if self.gn_floor is not None:
            object.__setattr__(self, "gn_floor", tuple(self.gn_floor))
        require(len(self.trajectories) >= 1, "trajectory", "at least one exact trajectory", self.trajectories)
        require(self.model in MODELS, "model", f"one of {MODELS}", self.model)
        require(self.optimiser in OPTIMISERS, "optimiser", f"one of {OPTIMISERS}", self.optimiser)
        require_finite(
            learning_rate=self.learning_rate, smoothness=self.smoothness, gn_floor=self.gn_floor or ()
        )
        require(self.learning_rate > 0, "learning_rate", "a positive step size", self.learning_rate)
        require(self.smoothness >= 0, "smoothness", "a penalty weight ≥ 0", self.smoothness)
        require(
            self.model != "values" or len(self.trajectories) == 1,
            "trajectory",
            "exactly one trajectory for free values",
            len(self.trajectories),
        )
        require(
            not self.segment or self.model != "values",
            "segment",
            "0 with --model values (its step index is global)",
            self.segment,
        )
        require(
            self.iterations is None or self.iterations >= 1,
            "iterations",
            "a positive integer",
            self.iterations,
        )
        require(self.coarsen >= 1, "coarsen", "a positive integer", self.coarsen)
        if self.optimiser == "gauss-newton":
            from densitylab.tdks.learn import gauss_newton_floors

            require(
                self.model == "values" and self.smoothness == 0,
                "optimiser",
                "gauss-newton only for --model values without smoothness",
                self.model,
            )
            gauss_newton_floors(
                self.gn_window, self.gn_lookahead, self.steps(), self.gn_cg_iterations, self.floors()
            )

    def steps(self) -> int:
        """The iterations to run: the given ones, else 300 (8 per window for gauss-newton)."""
        if self.iterations is not None:
            return self.iterations
        return 8 if self.optimiser == "gauss-newton" else 300

    def floors(self) -> tuple:
        """The Gauss–Newton preconditioner floors (one iteration: the first default only)."""
        from densitylab.tdks.learn import GN_FLOORS

        return self.gn_floor if self.gn_floor else GN_FLOORS[: self.steps()]

    def window(self) -> int:
        """Densities the model sees: 1 for values and adiabatic, ``memory`` for memory."""
        return self.memory if self.model == "memory" else 1


@dataclass(eq=False)
class LearnResult:
    """A learned v_c: its parameters and model function, the training history, and its
    evaluation on each training trajectory beside the anchors."""

    config: LearnConfig
    params: object
    function: Callable
    history: dict
    seconds: float
    summary: dict
    problems: list
    targets: list
    evaluations: list = field(default_factory=list)

    def metadata(self) -> dict:
        """What the manifest records besides the model's own config: the run's settings as
        the CLI spells them, its history and its time."""
        config = self.config
        gauss_newton = {
            "gn_window": config.gn_window,
            "gn_lookahead": config.gn_lookahead,
            "gn_cg_iterations": config.gn_cg_iterations,
            "gn_floor": list(config.floors()),
        }
        return {
            "model": config.model,
            "trajectories": list(config.trajectories),
            "iterations": config.steps(),
            "optimiser": config.optimiser,
            **(gauss_newton if config.optimiser == "gauss-newton" else {}),
            "smoothness": config.smoothness,
            "coarsen": config.coarsen,
            "segment": config.segment,
            "seconds": self.seconds,
            "history": self.history,
            "training": asdict(config),
            "summary": self.summary,
        }

    def save(self, path: str | Path, plot: bool = True) -> Path:
        """An artefact folder: the model (``tdks-values`` or ``tdks-density-net``) and, with
        ``plot``, optimisation.png and per trajectory errors_i.png and maps_i.png."""
        from densitylab.tdks.evaluate import save_net, save_values

        def figures(folder: Path) -> None:
            if plot:
                self.plot(folder)

        if self.config.model == "values":
            return save_values(path, self.params, self.metadata(), figures)
        return save_net(path, self.params, self.metadata(), figures)

    def plot(self, folder: str | Path) -> list[Path]:
        """The optimisation history, and per trajectory the density error against time beside
        the anchors and the x–t maps (exact n, KS n, their difference, v_c)."""
        from densitylab.plots import plot_optimisation

        folder = Path(folder)
        title = f"learning v_c ({self.config.model})"
        written = [plot_optimisation(self.history, folder / "optimisation.png", title)]
        for index, (problem, target, results) in enumerate(
            zip(self.problems, self.targets, self.evaluations, strict=True)
        ):
            names = (folder / f"errors_{index}.png", folder / f"maps_{index}.png")
            written += _plot_results(problem, target, results, self.config.model, *names)
        return written


def _plot_results(problem, target, results: dict, label: str, errors_path: Path, maps_path: Path):
    """∫|Δn| dx against time for every model in ``results`` (the anchors included), and the x–t
    maps of the exact density, model ``label``'s KS density and its v_c."""
    from densitylab.plots import plot_density_errors, plot_xt_maps

    times = np.arange(problem.steps + 1) * problem.dt
    errors = {name: value["errors"] for name, value in results.items()}
    learned = results[label]
    maps = {"exact n": target, "KS n": learned["densities"], "v_c": learned["v_c"]}
    return [
        plot_density_errors(times, errors, errors_path),
        plot_xt_maps(problem.x, times, maps, maps_path),
    ]


def _problems(config: LearnConfig):
    from densitylab.model1d.propagation import load_trajectory
    from densitylab.tdks.propagation import problem_from_trajectory

    loaded = [load_trajectory(path) for path in config.trajectories]
    pairs = [problem_from_trajectory(exact, config.coarsen) for exact in loaded]
    problems, targets = [p for p, _ in pairs], [t for _, t in pairs]
    first = problems[0]
    if any(abs(p.dx - first.dx) > 1e-12 or abs(p.dt - first.dt) > 1e-12 for p in problems):
        raise InvalidParameterError(
            "trajectory", "trajectories with one grid spacing and KS step", list(config.trajectories)
        )
    return loaded, problems, targets


def _initial_model(config: LearnConfig, first):
    from densitylab.tdks.models import (
        DensityNetConfig,
        build_density_net,
        density_net_model,
        free_values,
        smoothness_penalty,
    )

    if config.model == "values":
        params, function = free_values(first.steps, first.points)
        penalty = smoothness_penalty(config.smoothness, first.dx, first.dt) if config.smoothness > 0 else None
        return params, function, penalty
    net = DensityNetConfig(
        memory=config.window(), channels=config.channels, depth=config.depth, kernel=config.kernel,
        dx=first.dx, dt=first.dt, seed=config.seed,
    )  # fmt: skip
    params, function = density_net_model(build_density_net(net))
    return params, function, None


def learn(
    config: LearnConfig,
    progress: Callable[..., None] | None = None,
    checkpoint: str | Path | None = None,
) -> LearnResult:
    """Learn v_c so that TDKS reproduces the exact densities of ``config.trajectories``.

    ``progress`` follows :mod:`densitylab.progress` (iterations, or windows for gauss-newton,
    with ``loss`` and ``gradient``). With ``checkpoint`` (a .npz path) the fit is resumable:
    rerun the same call after an interrupt; a checkpoint of another job is refused.
    """
    from densitylab.tdks.evaluate import ANCHORS, VcModel, evaluate
    from densitylab.tdks.learn import fit_values_gauss_newton, shooting_segments, train
    from densitylab.tdks.models import parameter_count

    loaded, problems, targets = _problems(config)
    first = problems[0]
    params, function, penalty = _initial_model(config, first)
    window = config.window()
    segments = None
    if config.segment:  # built (and checked) before anything runs
        segments = [
            shooting_segments(p, t, exact.current[:, :: config.coarsen], config.segment, window)
            for p, t, exact in zip(problems, targets, loaded, strict=True)
        ]
    started = time.perf_counter()
    if config.optimiser == "gauss-newton":
        from densitylab.jaxsetup import jax_modules

        values, history = fit_values_gauss_newton(
            first, targets[0], config.gn_window, config.steps(), config.gn_cg_iterations,
            lookahead=config.gn_lookahead, preconditioner_floor=config.floors(), progress=progress,
            checkpoint=checkpoint,
        )  # fmt: skip
        params = jax_modules()[1].asarray(values)
        history["gradient_norm"] = [float("nan")] * len(history["loss"])
    else:
        params, history = train(
            problems, targets, params, function, window, config.steps(), config.optimiser,
            config.learning_rate, penalty, progress, checkpoint=checkpoint, segments=segments,
            settings={"model": config.model, "smoothness": config.smoothness, "coarsen": config.coarsen},
        )  # fmt: skip
    seconds = time.perf_counter() - started
    learned = VcModel(config.model, params, function, window)
    summary: dict = {"model": config.model, "seconds": seconds, "parameters": parameter_count(params)}
    evaluations = []
    for index, (problem, target) in enumerate(zip(problems, targets, strict=True)):
        results = evaluate(problem, target, [learned] + [anchor(problem) for anchor in ANCHORS.values()])
        evaluations.append(results)
        entry = {
            "path": config.trajectories[index],
            "density_error_max": float(results[config.model]["errors"].max()),
        }
        for name in ANCHORS:
            entry[f"density_error_{name.replace('-', '_')}"] = float(results[name]["errors"].max())
        summary[f"trajectory_{index}"] = entry
    return LearnResult(config, params, function, history, seconds, summary, problems, targets, evaluations)


SCENARIOS = ("scattering", "laser")


@dataclass(frozen=True)
class ExactConfig:
    """An exact two-electron propagation (``densitylab tdks exact``), atomic units.

    Attributes:
        scenario: "scattering" (e + H, a packet of ``momentum`` in state ``spin``) or "laser"
            (a two-electron atom driven by ``amplitude``·sin²·sin(``frequency``·t), with the
            e–e repulsion scaled by ``interaction_strength``).
        time, dt, store_every: propagation time, exact step, and steps per stored sample.
        dx, stencil, method, boundary: grid spacing, kinetic stencil, "split-operator" or
            "crank-nicolson", and "hard-wall"/"periodic" (None: the stencil's default).
        padding: bohr added at both ends of the scenario's box ([−80, 40] for scattering,
            [−30, 30] for the laser) for dynamics that reach its walls (``edge_charge``). The
            cost grows as the square of the points.
    """

    scenario: str = "scattering"
    momentum: float = -1.0
    spin: str = "singlet"
    amplitude: float = 0.05
    frequency: float = 0.5
    interaction_strength: float = 1.0
    time: float = 30.0
    dt: float = 0.01
    store_every: int = 5
    dx: float = 0.1
    stencil: int = 3
    method: str = "split-operator"
    boundary: str | None = None
    padding: float = 0.0

    def __post_init__(self) -> None:
        from densitylab.model1d.propagation import PROPAGATORS, box_grid, check_momentum, step_count

        require(self.scenario in SCENARIOS, "scenario", "'scattering' or 'laser'", self.scenario)
        require_finite(
            momentum=self.momentum, amplitude=self.amplitude, frequency=self.frequency,
            interaction_strength=self.interaction_strength, dx=self.dx, padding=self.padding,
        )  # fmt: skip
        require(
            self.padding >= 0, "padding", "a length ≥ 0 added at both ends of the box (bohr)", self.padding
        )
        require(self.method in PROPAGATORS, "method", f"one of {PROPAGATORS}", self.method)
        require(self.dx > 0, "dx", "a positive grid spacing (bohr)", self.dx)
        if self.scenario == "scattering":  # here too, so that a set stops before its folder is made
            check_momentum(self.momentum, self.dx)
        box = self.box()  # and the box's size (a large padding or a fine dx), for the same reason
        sized_by = ("padding", self.padding) if self.padding else ("dx", self.dx)
        box_grid(box["x_min"], box["x_max"], self.dx, self.stencil, self.boundary, *sized_by)
        steps = step_count(self.time, self.dt)
        require(
            isinstance(self.store_every, int) and self.store_every >= 1 and steps % self.store_every == 0,
            "store_every",
            f"a divisor of the {steps} steps",
            self.store_every,
        )

    def steps(self) -> int:
        from densitylab.model1d.propagation import step_count

        return step_count(self.time, self.dt)

    def box(self) -> dict[str, float]:
        """``{"x_min", "x_max"}`` (bohr): the scenario's box widened by ``padding`` at both ends."""
        import inspect

        from densitylab.model1d.propagation import laser_scenario, scattering_scenario

        builder = scattering_scenario if self.scenario == "scattering" else laser_scenario
        defaults = inspect.signature(builder).parameters
        return {
            "x_min": defaults["x_min"].default - self.padding,
            "x_max": defaults["x_max"].default + self.padding,
        }

    def build(self):
        """The :class:`~densitylab.model1d.propagation.Scenario` (grid, initial state, field)."""
        from densitylab.model1d.propagation import laser_scenario, scattering_scenario

        box = self.box()
        if self.scenario == "scattering":
            return scattering_scenario(
                momentum=self.momentum, spin=self.spin, dx=self.dx, stencil=self.stencil,
                boundary=self.boundary, **box,
            )  # fmt: skip
        return laser_scenario(
            amplitude=self.amplitude, frequency=self.frequency, duration=self.time, dx=self.dx,
            stencil=self.stencil, interaction=self.interaction_strength, boundary=self.boundary, **box,
        )  # fmt: skip


def exact(
    config: ExactConfig,
    progress: Callable[..., None] | None = None,
    checkpoint: str | Path | None = None,
):
    """Propagate ``config`` exactly; returns the :class:`~densitylab.model1d.propagation.Trajectory`
    (save it with :func:`~densitylab.model1d.propagation.save_trajectory`). Resumable with a
    ``checkpoint`` path; ``progress`` counts steps. Warns when charge reached the box's walls
    (:func:`warn_edge_charge`)."""
    from densitylab.model1d.propagation import edge_charge

    trajectory = propagate_case(config, progress, checkpoint)
    warn_edge_charge({config.scenario: edge_charge(trajectory)})
    return trajectory


def propagate_case(config: ExactConfig, progress=None, checkpoint=None):
    """:func:`exact` without its warning (a set warns once for all its cases)."""
    from densitylab.model1d.propagation import propagate

    return propagate(
        config.build(), config.dt, config.steps(), config.store_every, config.method,
        progress=progress, checkpoint=checkpoint,
    )  # fmt: skip


EDGE_CHARGE_LIMIT = 0.01
"""Electrons within 5 bohr of a wall above which a run is warned about (the training set's
strongest laser, F = 0.15, puts 4.6e-4 there)."""


def warn_edge_charge(charges: dict[str, float]) -> None:
    """Warn, naming them, about the runs of ``{name: edge_charge}`` over :data:`EDGE_CHARGE_LIMIT`:
    the walls reflect that charge, so the run is not the open-space dynamics it stands for."""
    from densitylab.model1d.propagation import EDGE_WIDTH

    crowded = {name: charge for name, charge in charges.items() if charge > EDGE_CHARGE_LIMIT}
    if crowded:
        listed = ", ".join(f"{name} ({charge:.3g})" for name, charge in crowded.items())
        warnings.warn(
            f"charge reached the box's walls (electrons within {EDGE_WIDTH:g} bohr of one): {listed}; "
            "the walls reflect it: widen the box (padding) or weaken the drive",
            stacklevel=2,
        )


def trajectory_summary(trajectory) -> dict:
    """Norm and energy drift, electron count, boundary and ``edge_charge`` (the largest charge
    within 5 bohr of either end: where it is not small, the box is too small for the run)."""
    from densitylab.model1d.propagation import edge_charge

    return {
        "scenario": trajectory.parameters["scenario"],
        "points": len(trajectory.x),
        "steps": trajectory.parameters["steps"],
        "stored": len(trajectory.times),
        "norm_drift": float(np.max(np.abs(trajectory.norm - 1.0))),
        "energy_drift": float(np.max(np.abs(trajectory.energy - trajectory.energy[0]))),
        "electrons": float(np.sum(trajectory.density[-1]) * (trajectory.x[1] - trajectory.x[0])),
        "boundary": trajectory.parameters["boundary"],
        "edge_charge": edge_charge(trajectory),
    }


@dataclass(eq=False)
class Evaluation:
    """A v_c model propagated on one exact trajectory beside the anchors."""

    model: str
    trajectory: str
    problem: object
    target: np.ndarray
    label: str
    results: dict
    summary: dict

    def plot(self, folder: str | Path) -> list[Path]:
        """errors.png (∫|Δn| dx against time, with the anchors) and maps.png (x–t maps)."""
        folder = Path(folder)
        folder.mkdir(exist_ok=True)
        names = (folder / "errors.png", folder / "maps.png")
        return _plot_results(self.problem, self.target, self.results, self.label, *names)


def evaluate_model(trajectory: str | Path, model: str, coarsen: int = 1) -> Evaluation:
    """Density error of ``model`` (a shipped name, a ``tdks learn`` folder or an anchor) on an
    exact trajectory, beside exchange-only, ALDA and SCE."""
    from densitylab.model1d.propagation import load_trajectory
    from densitylab.tdks.evaluate import ANCHORS, evaluate, load_model
    from densitylab.tdks.propagation import problem_from_trajectory

    problem, target = problem_from_trajectory(load_trajectory(trajectory), coarsen)
    candidate = load_model(model, problem)
    models = [candidate] + [anchor(problem) for name, anchor in ANCHORS.items() if name != model]
    results = evaluate(problem, target, models)
    errors = results[candidate.label]["errors"]
    summary = {
        "model": model,
        "propagated": candidate.label,
        "trajectory": str(trajectory),
        "density_error_max": float(errors.max()),
        "density_error_mean": float(errors.mean()),
        **{
            f"density_error_{name.replace('-', '_')}": float(results[name]["errors"].max())
            for name in ANCHORS
        },
    }
    return Evaluation(model, str(trajectory), problem, target, candidate.label, results, summary)
