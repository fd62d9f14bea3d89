"""``densitylab tdks``: exact two-electron dynamics and learned TDKS correlation potentials."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from densitylab.cli.common import command, print_summary, progress_bar, typer_app
from densitylab.errors import InvalidParameterError

app = typer_app("Time-dependent Kohn–Sham: exact two-electron dynamics and learned correlation potentials.")


@command(app, "exact", outputs={"output": "file"})
def tdks_exact(
    output: Annotated[Path, typer.Option(help="Trajectory file to write (.h5).")],
    scenario: Annotated[
        str, typer.Option(help="scattering (e + H) or laser (driven 2-electron atom).")
    ] = "scattering",
    momentum: Annotated[float, typer.Option(help="scattering: wavepacket momentum p (a.u.).")] = -1.0,
    spin: Annotated[str, typer.Option(help="scattering: singlet or triplet spatial state.")] = "singlet",
    amplitude: Annotated[float, typer.Option(help="laser: peak field (Ha/bohr).")] = 0.05,
    frequency: Annotated[float, typer.Option(help="laser: carrier frequency (Ha).")] = 0.5,
    interaction_strength: Annotated[float, typer.Option(help="laser: scale of the e–e repulsion.")] = 1.0,
    time: Annotated[float, typer.Option(help="Propagation time (a.u.).")] = 30.0,
    dt: Annotated[float, typer.Option(help="Exact time step (a.u.).")] = 0.01,
    store_every: Annotated[int, typer.Option(help="Store (and KS step) every this many steps.")] = 5,
    dx: Annotated[float, typer.Option(help="Grid spacing (bohr).")] = 0.1,
    stencil: Annotated[int, typer.Option(help="Kinetic stencil points (3 = the KS stencil).")] = 3,
    method: Annotated[
        str, typer.Option(help="split-operator or crank-nicolson (small grids).")
    ] = "split-operator",
    boundary: Annotated[
        str | None,
        typer.Option(
            help="split-operator: hard-wall (3-point stencil; its default, like the KS propagation) "
            "or periodic (the default for wider stencils)."
        ),
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="Draw the x–t density map to FILE.png.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Propagate two electrons exactly and store n(x, t), j(x, t), norm and energy.

    Resumable: progress is checkpointed next to OUTPUT and picked up by the same command.
    The summary's edge_charge is the largest charge found within 5 bohr of either end of the
    box: where it is not small, the box is too small for the run."""
    import time as clock

    from densitylab.model1d.propagation import (
        edge_charge,
        laser_scenario,
        propagate,
        save_trajectory,
        scattering_scenario,
        step_count,
    )
    from densitylab.plots import plot_xt_maps

    steps = step_count(time, dt)
    if scenario == "scattering":
        built = scattering_scenario(momentum=momentum, spin=spin, dx=dx, stencil=stencil, boundary=boundary)
    elif scenario == "laser":
        built = laser_scenario(
            amplitude=amplitude, frequency=frequency, duration=time, dx=dx, stencil=stencil,
            interaction=interaction_strength, boundary=boundary,
        )  # fmt: skip
    else:
        raise InvalidParameterError("scenario", "'scattering' or 'laser'", scenario)
    progress = progress_bar()
    task = progress.add_task(f"{scenario}: {built.grid.points}² grid", total=steps)
    started = clock.perf_counter()
    with progress:
        trajectory = propagate(
            built, dt, steps, store_every, method,
            progress=lambda done, total: progress.update(task, completed=done),
            checkpoint=Path(str(output) + ".partial.npz"),
        )  # fmt: skip
    seconds = clock.perf_counter() - started
    save_trajectory(trajectory, output)
    summary = {
        "output": str(output),
        "scenario": scenario,
        "points": built.grid.points,
        "steps": steps,
        "stored": len(trajectory.times),
        "seconds": seconds,
        "norm_drift": float(np.max(np.abs(trajectory.norm - 1.0))),
        "energy_drift": float(np.max(np.abs(trajectory.energy - trajectory.energy[0]))),
        "electrons": float(np.sum(trajectory.density[-1]) * (trajectory.x[1] - trajectory.x[0])),
        "boundary": trajectory.parameters["boundary"],
        "edge_charge": edge_charge(trajectory),
    }
    if plot is not None:
        plot_xt_maps(trajectory.x, trajectory.times, {"exact n(x, t)": trajectory.density}, plot)
        summary["plot"] = str(plot)
    print_summary(summary, as_json)


TDKS_MODELS = ("values", "adiabatic", "memory")


@command(app, "learn", outputs={"output": "folder"})
def tdks_learn(
    trajectory: Annotated[list[Path], typer.Option(help="Exact trajectory (repeat for several).")],
    output: Annotated[Path, typer.Option(help="Folder for the learned model.")],
    model: Annotated[str, typer.Option(help="values (a), adiabatic (b) or memory (c).")] = "values",
    iterations: Annotated[
        int | None,
        typer.Option(help="Optimiser iterations (default 300; gauss-newton: 8 per window)."),
    ] = None,
    optimiser: Annotated[
        str, typer.Option(help="lbfgs, adam, or gauss-newton (values: windowed Gauss–Newton).")
    ] = "lbfgs",
    gn_window: Annotated[int, typer.Option(help="gauss-newton: steps per window.")] = 20,
    gn_lookahead: Annotated[
        int, typer.Option(help="gauss-newton: extra steps fitted past each window, then dropped.")
    ] = 10,
    gn_cg_iterations: Annotated[
        int, typer.Option(help="gauss-newton: preconditioned CG iterations per Gauss–Newton step.")
    ] = 100,
    gn_floor: Annotated[
        list[float] | None,
        typer.Option(
            help="gauss-newton: relative floor of the CG preconditioner (regularises); repeat it for a "
            "continuation that splits each window's iterations among the floors in order "
            "(default: 1e-6, then 1e-8)."
        ),
    ] = None,
    learning_rate: Annotated[float, typer.Option(help="adam: learning rate.")] = 1e-3,
    smoothness: Annotated[float, typer.Option(help="values: weight of the smoothness penalty.")] = 0.0,
    memory: Annotated[int, typer.Option(help="memory: densities seen (present + past).")] = 4,
    channels: Annotated[int, typer.Option(help="adiabatic/memory: hidden channels.")] = 16,
    depth: Annotated[int, typer.Option(help="adiabatic/memory: convolution layers.")] = 3,
    kernel: Annotated[int, typer.Option(help="adiabatic/memory: kernel width (odd).")] = 9,
    coarsen: Annotated[int, typer.Option(help="KS grid takes every COARSEN-th exact point.")] = 1,
    seed: Annotated[int, typer.Option(help="Network initialisation seed.")] = 0,
    segment: Annotated[
        int,
        typer.Option(help="adiabatic/memory: train on segments of SEGMENT steps, each from the exact state."),
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Learn v_c so that TDKS reproduces the exact densities (checkpointed adjoint gradients).

    Resumable: parameters are checkpointed in OUTPUT every 10 iterations and the same command
    continues from them."""
    import time as clock

    from densitylab.model1d.propagation import load_trajectory
    from densitylab.plots import plot_density_errors, plot_optimisation, plot_xt_maps
    from densitylab.tdks.evaluate import ANCHORS, VcModel, evaluate, save_net, save_values
    from densitylab.tdks.learn import (
        GN_FLOORS,
        fit_values_gauss_newton,
        gauss_newton_floors,
        shooting_segments,
        train,
    )
    from densitylab.tdks.models import (
        DensityNetConfig,
        build_density_net,
        density_net_model,
        free_values,
        parameter_count,
        smoothness_penalty,
    )
    from densitylab.tdks.propagation import problem_from_trajectory

    if model not in TDKS_MODELS:
        raise InvalidParameterError("model", f"one of {TDKS_MODELS}", model)
    if model == "values" and len(trajectory) != 1:
        raise InvalidParameterError("trajectory", "exactly one trajectory for free values", len(trajectory))
    if segment and model == "values":
        raise InvalidParameterError("segment", "0 with --model values (its step index is global)", segment)
    if iterations is None:
        iterations = 8 if optimiser == "gauss-newton" else 300
    gn_floors = tuple(gn_floor) if gn_floor else GN_FLOORS[:iterations]  # one iteration: the first only
    loaded = [load_trajectory(path) for path in trajectory]
    pairs = [problem_from_trajectory(exact, coarsen) for exact in loaded]
    problems, targets = [p for p, _ in pairs], [t for _, t in pairs]
    first = problems[0]
    if any(abs(p.dx - first.dx) > 1e-12 or abs(p.dt - first.dt) > 1e-12 for p in problems):
        raise InvalidParameterError(
            "trajectory", "trajectories with one grid spacing and KS step", trajectory
        )
    penalty, window = None, 1
    if model == "values":
        params, function = free_values(first.steps, first.points)
        if smoothness > 0:
            penalty = smoothness_penalty(smoothness, first.dx, first.dt)
    else:
        window = 1 if model == "adiabatic" else memory
        config = DensityNetConfig(
            memory=window, channels=channels, depth=depth, kernel=kernel, dx=first.dx, dt=first.dt, seed=seed
        )
        params, function = density_net_model(build_density_net(config))
    if optimiser == "gauss-newton":  # checked before anything is written
        if model != "values" or smoothness > 0:
            raise InvalidParameterError(
                "optimiser", "gauss-newton only for --model values without smoothness", model
            )
        gauss_newton_floors(gn_window, gn_lookahead, iterations, gn_cg_iterations, gn_floors)
    # built (and --segment checked) before anything is written
    segments = (
        [
            shooting_segments(p, t, exact.current[:, ::coarsen], segment, window)
            for p, t, exact in zip(problems, targets, loaded, strict=True)
        ]
        if segment
        else None
    )
    progress = progress_bar("loss {task.fields[loss]} |g| {task.fields[gradient]}")
    task = progress.add_task(f"learning v_c ({model})", total=iterations, loss="—", gradient="—")

    def report(iteration, total, loss, gradient):
        progress.update(task, completed=iteration, loss=f"{loss:.3e}", gradient=f"{gradient:.2e}")

    started = clock.perf_counter()
    output.mkdir(parents=True, exist_ok=True)
    if optimiser == "gauss-newton":
        from densitylab.jaxsetup import jax_modules

        progress.update(task, total=-(-first.steps // gn_window))  # one unit per window
        with progress:
            values, history = fit_values_gauss_newton(
                first, targets[0], gn_window, iterations, gn_cg_iterations, lookahead=gn_lookahead,
                preconditioner_floor=gn_floors,
                progress=lambda i, n, loss, _: progress.update(task, completed=i, loss=f"{loss:.3e}"),
                checkpoint=output / "checkpoint.npz",
            )  # fmt: skip
        params = jax_modules()[1].asarray(values)
        history["gradient_norm"] = [float("nan")] * len(history["loss"])
    else:
        with progress:
            params, history = train(
                problems, targets, params, function, window, iterations, optimiser, learning_rate,
                penalty, report, checkpoint=output / "checkpoint.npz", segments=segments,
                settings={"model": model, "smoothness": smoothness, "coarsen": coarsen},
            )  # fmt: skip
    seconds = clock.perf_counter() - started
    metadata = {
        "model": model,
        "trajectories": [str(path) for path in trajectory],
        "iterations": iterations,
        "optimiser": optimiser,
        **(
            {
                "gn_window": gn_window,
                "gn_lookahead": gn_lookahead,
                "gn_cg_iterations": gn_cg_iterations,
                "gn_floor": list(gn_floors),
            }
            if optimiser == "gauss-newton"
            else {}
        ),
        "smoothness": smoothness,
        "coarsen": coarsen,
        "segment": segment,
        "seconds": seconds,
        "history": history,
    }
    if model == "values":
        save_values(output, params, metadata)
    else:
        save_net(output, params, metadata)
    plot_optimisation(history, output / "optimisation.png", f"learning v_c ({model})")
    learned = VcModel(model, params, function, window)
    summary = {
        "output": str(output),
        "model": model,
        "seconds": seconds,
        "parameters": parameter_count(params),
    }
    for index, (problem, target) in enumerate(zip(problems, targets, strict=True)):
        results = evaluate(problem, target, [learned] + [anchor(problem) for anchor in ANCHORS.values()])
        summary[f"trajectory_{index}"] = {
            "path": str(trajectory[index]),
            "density_error_max": float(results[model]["errors"].max()),
        }
        for name in ANCHORS:
            summary[f"trajectory_{index}"][f"density_error_{name.replace('-', '_')}"] = float(
                results[name]["errors"].max()
            )
        times = np.arange(problem.steps + 1) * problem.dt
        plot_density_errors(
            times, {k: v["errors"] for k, v in results.items()}, output / f"errors_{index}.png"
        )
        plot_xt_maps(
            problem.x, times,
            {"exact n": target, "KS n": results[model]["densities"], "v_c": results[model]["v_c"]},
            output / f"maps_{index}.png",
        )  # fmt: skip
    print_summary(summary, as_json)


@command(app, "evaluate")
def tdks_evaluate(
    trajectory: Annotated[Path, typer.Option(help="Exact trajectory (densitylab tdks exact).")],
    model: Annotated[
        str,
        typer.Option(
            help="A shipped model name, a 'tdks learn' folder, or an anchor (exchange-only, alda, sce)."
        ),
    ],
    coarsen: Annotated[int, typer.Option(help="KS grid takes every COARSEN-th exact point.")] = 1,
    plot: Annotated[Path | None, typer.Option(help="Folder for the error and x–t figures.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics as JSON.")] = False,
) -> None:
    """Density error of a v_c model on an exact trajectory, beside the anchors v_c = 0
    (exact exchange only), adiabatic LDA correlation and adiabatic strictly correlated
    electrons (SCE)."""
    from densitylab.model1d.propagation import load_trajectory
    from densitylab.plots import plot_density_errors, plot_xt_maps
    from densitylab.tdks.evaluate import ANCHORS, evaluate, load_model
    from densitylab.tdks.propagation import problem_from_trajectory

    problem, target = problem_from_trajectory(load_trajectory(trajectory), coarsen)
    candidate = load_model(model, problem)
    models = [candidate] + [anchor(problem) for name, anchor in ANCHORS.items() if name != model]
    results = evaluate(problem, target, models)
    errors = results[candidate.label]["errors"]
    summary = {
        "model": model,
        "trajectory": str(trajectory),
        "density_error_max": float(errors.max()),
        "density_error_mean": float(errors.mean()),
        **{
            f"density_error_{name.replace('-', '_')}": float(results[name]["errors"].max())
            for name in ANCHORS
        },
    }
    if plot is not None:
        plot.mkdir(parents=True, exist_ok=True)
        times = np.arange(problem.steps + 1) * problem.dt
        plot_density_errors(times, {k: v["errors"] for k, v in results.items()}, plot / "errors.png")
        result = results[candidate.label]
        maps = {"exact n": target, "KS n": result["densities"], "v_c": result["v_c"]}
        plot_xt_maps(problem.x, times, maps, plot / "maps.png")
    print_summary(summary, as_json)
