"""``densitylab tdks``: exact two-electron dynamics and learned TDKS correlation potentials.
Each command builds the library's config from its options (same names), calls
:mod:`densitylab.tdks.workflow` and prints."""

from __future__ import annotations

from pathlib import Path

from densitylab.cli.common import (
    Json,
    Plot,
    checkpoint_beside,
    command,
    config_from,
    option,
    plot_folder,
    print_summary,
    rich_progress,
    typer_app,
)

app = typer_app("Time-dependent Kohn–Sham: exact two-electron dynamics and learned correlation potentials.")


Scenario = option(str, "scattering (e + H) or laser (driven 2-electron atom).")
Momentum = option(float, "scattering: wavepacket momentum p (a.u.).")
Spin = option(str, "scattering: singlet or triplet spatial state.")
Amplitude = option(float, "laser: peak field (Ha/bohr).")
Frequency = option(float, "laser: carrier frequency (Ha).")
Strength = option(float, "laser: scale of the e–e repulsion.")
Time = option(float, "Propagation time (a.u.).")
Dt = option(float, "Exact time step (a.u.).")
StoreEvery = option(int, "Store (and KS step) every this many steps.")
Dx = option(float, "Grid spacing (bohr).")
Stencil = option(int, "Kinetic stencil points (3 = the KS stencil).")
Method = option(str, "split-operator or crank-nicolson (small grids).")
Padding = option(float, "Bohr added at both ends of the box (scattering [-80, 40], laser [-30, 30]).")
Boundary = option(
    str | None,
    "split-operator: hard-wall (3-point stencil; its default, like the KS propagation) or periodic "
    "(the default for wider stencils).",
)


@command(app, "exact", outputs={"output": "file"})
def tdks_exact(
    output: option(Path, "Trajectory file to write (.h5)."),
    scenario: Scenario = "scattering",
    momentum: Momentum = -1.0,
    spin: Spin = "singlet",
    amplitude: Amplitude = 0.05,
    frequency: Frequency = 0.5,
    interaction_strength: Strength = 1.0,
    time: Time = 30.0,
    dt: Dt = 0.01,
    store_every: StoreEvery = 5,
    dx: Dx = 0.1,
    stencil: Stencil = 3,
    method: Method = "split-operator",
    boundary: Boundary = None,
    padding: Padding = 0.0,
    plot: Plot = None,
    as_json: Json = False,
) -> None:
    """Propagate two electrons exactly and store n(x, t), j(x, t), norm and energy; resumable
    (checkpointed next to OUTPUT). edge_charge: the largest charge within 5 bohr of either
    end of the box; where it is not small, the box is too small for the run."""
    import time as clock

    from densitylab.model1d.propagation import save_trajectory
    from densitylab.plots import plot_xt_maps
    from densitylab.tdks.workflow import ExactConfig, exact, trajectory_summary

    config = config_from(ExactConfig, locals())
    bar, report = rich_progress(f"{scenario}: exact propagation", config.steps())
    started = clock.perf_counter()
    with bar:
        trajectory = exact(config, report, checkpoint=Path(str(output) + ".partial.npz"))
    seconds = clock.perf_counter() - started
    save_trajectory(trajectory, output)
    summary = {"output": str(output), **trajectory_summary(trajectory), "seconds": seconds}
    if plot_folder(plot) is not None:
        maps = {"exact n(x, t)": trajectory.density}
        summary["plot"] = str(plot_xt_maps(trajectory.x, trajectory.times, maps, plot / "density.png"))
    print_summary(summary, as_json, "exact propagation")


@command(app, "dataset", outputs={"output": "folder"})
def tdks_dataset(
    output: option(Path, "Folder of the set (created; an existing one is completed)."),
    preset: option(str, "training, held-out, all or none: the documented cases.") = "training",
    momentum: option(list[float] | None, "Add a singlet scattering case at this momentum (repeat).") = None,
    laser: option(list[str] | None, "Add a laser case 'F:ω', e.g. 0.05:0.5 (repeat).") = None,
    time: Time = 30.0,
    padding: Padding = 0.0,
    invert: option(bool, "Also fit each case's exact v_c (model (a)).") = True,
    gn_iterations: option(int, "Gauss–Newton iterations per window of the inversion.") = 4,
    gn_floor: option(float, "The inversion's preconditioner floor.") = 1e-6,
    workers: option(int, "Local worker processes (cases run in parallel).") = 1,
    scheduler: option(str | None, "Address of a dask scheduler (its workers must see OUTPUT).") = None,
    as_json: Json = False,
) -> None:
    """Exact trajectories and their exact v_c for training a functional; resumable (rerun the
    command: finished cases are kept, interrupted ones continue from their checkpoints)."""
    from densitylab.tdks.dataset import TrajectorySetConfig, generate_set, select_cases

    cases = select_cases(preset, momentum or (), laser or (), time, padding)
    config = TrajectorySetConfig(cases, invert, gn_iterations, gn_floor)
    bar, report = rich_progress("exact trajectories and v_c", len(cases))
    with bar:
        summaries = generate_set(config, output, workers, scheduler, report)
    print_summary({"output": str(output), "cases": summaries}, as_json, "trajectory set")


def _functional_config(options: dict):
    """The FunctionalConfig of ``tdks functional``'s options (some are spelled otherwise there)."""
    from densitylab.errors import require
    from densitylab.tdks import functional

    given = options["horizon"] or functional.DEFAULT_HORIZONS
    require(0 not in given or len(given) == 1, "horizon", "0 alone (no fine-tuning), or step counts", given)
    horizons = tuple(h for h in given if h != 0)
    chosen = dict(cases=tuple(options["case"]) if options["case"] else None, horizons=horizons)
    chosen.update(
        inputs=tuple(options["inputs"] or functional.DEFAULT_INPUTS), dataset=str(options["dataset"])
    )
    return config_from(functional.FunctionalConfig, options, truncate=options["truncate"] or None, **chosen)


@command(app, "functional", outputs={"output": "artefact"})
def tdks_functional(
    dataset: option(Path, "A set made by 'densitylab tdks dataset'."),
    output: option(Path, "Folder for the trained functional (an artefact)."),
    case: option(list[str] | None, "Train on this case of the set only (repeat; default: all).") = None,
    preset: option(str | None, "Train on the set's documented 'training' (or 'held-out') cases.") = None,
    inputs: option(list[str] | None, "density history current rates velocity sce partner charge") = None,
    memory: option(int, "Densities seen (present + past).") = 4,
    channels: option(int, "Hidden channels.") = 16,
    depth: option(int, "Convolution layers.") = 3,
    kernel: option(int, "Kernel width (odd).") = 9,
    dilation: option(int, "Layer l spaces its taps DILATION**l points apart (a wider view).") = 1,
    seed: option(int, "Initialisation and shuffling seed.") = 0,
    gate: option(bool, "Fall back to exact exchange outside the training inputs.") = True,
    gate_scope: option(
        str | None, "point, or window: all of v_c falls back (default: point, or INIT's)."
    ) = None,
    gate_fallback: option(
        str | None, "The gate hands back to exchange or sce (default: exchange, or INIT's)."
    ) = None,
    integrate: option(bool, "Add a force output, integrated across the box, to the local v_c.") = False,
    wall_free: option(bool, "A network blind to the box's walls (edge padding, centred SCE count).") = False,
    stride: option(int, "Supervised pairs every STRIDE KS steps.") = 2,
    pretrain_epochs: option(int, "Supervised epochs on the exact v_c (Adam; 0: none).") = 0,
    batch_size: option(int, "Supervised minibatch (steps).") = 32,
    learning_rate: option(float, "Supervised peak learning rate (cosine decay).") = 3e-3,
    dagger_rounds: option(int, "Rounds of supervision on its own propagations (DAgger; 0: none).") = 0,
    dagger_epochs: option(int, "Supervised epochs per DAgger round.") = 4,
    dagger_learning_rate: option(float, "DAgger rounds' peak learning rate (cosine decay).") = 1e-3,
    dagger_average: option(int, "Also score the mean weights of the last K rounds (0: none).") = 0,
    horizon: option(list[int] | None, "Fine-tuning horizons in KS steps, in order (repeat; 0: none).") = None,
    rollout_iterations: option(int, "Iterations per horizon up to TRUNCATE steps.") = 6,
    rollout_optimiser: option(str, "Those horizons' optimiser: lbfgs, or adam (clipped to CLIP).") = "lbfgs",
    rollout_learning_rate: option(float, "adam: learning rate through the propagation.") = 1e-3,
    clip: option(float, "adam: global gradient-norm clip through the propagation.") = 1.0,
    truncate: option(int, "Longer horizons: adam, gradients cut every TRUNCATE steps (0: never).") = 60,
    truncated_iterations: option(int, "Iterations per truncated horizon.") = 40,
    relative: option(bool, "Weight each case by 1 / its exchange-only loss.") = True,
    measure: option(str, "Propagation loss: density, charge (left of each x) or current.") = "density",
    base: option(str, "Start from exchange (v_c = 0) or sce (a correction on top of SCE).") = "exchange",
    keep_best: option(bool, "Keep each horizon's (DAgger's) best loss (score), not the last.") = False,
    init: option(str | None, "Start from this functional (folder or shipped name) of the same shape.") = None,
    as_json: Json = False,
) -> None:
    """Train a v_c functional with memory through the KS propagation; resumable (OUTPUT.checkpoint.npz)."""
    from densitylab.tdks import functional

    config = _functional_config(locals())
    bar, report = rich_progress("training the functional", None, {"stage": "s", "loss": ".3e"})
    with bar:
        result = functional.train_functional(config, report, checkpoint=checkpoint_beside(output))
    print_summary({"output": str(result.save(output)), **result.summary()}, as_json, "trained functional")


GnFloor = option(
    list[float] | None,
    "gauss-newton: relative floor of the CG preconditioner (regularises); repeat it for a continuation "
    "that splits each window's iterations among the floors in order (default: 1e-6, then 1e-8).",
)


@command(app, "learn", outputs={"output": "artefact"})
def tdks_learn(
    trajectory: option(list[Path], "Exact trajectory (repeat for several)."),
    output: option(Path, "Folder for the learned model (an artefact; figures inside)."),
    model: option(str, "values (a), adiabatic (b) or memory (c).") = "values",
    iterations: option(int | None, "Optimiser iterations (default 300; gauss-newton: 8 per window).") = None,
    optimiser: option(str, "lbfgs, adam, or gauss-newton (values: windowed Gauss–Newton).") = "lbfgs",
    gn_window: option(int, "gauss-newton: steps per window.") = 20,
    gn_lookahead: option(int, "gauss-newton: extra steps fitted past each window, then dropped.") = 10,
    gn_cg_iterations: option(int, "gauss-newton: preconditioned CG iterations per step.") = 100,
    gn_floor: GnFloor = None,
    learning_rate: option(float, "adam: learning rate.") = 1e-3,
    smoothness: option(float, "values: weight of the smoothness penalty.") = 0.0,
    memory: option(int, "memory: densities seen (present + past).") = 4,
    channels: option(int, "adiabatic/memory: hidden channels.") = 16,
    depth: option(int, "adiabatic/memory: convolution layers.") = 3,
    kernel: option(int, "adiabatic/memory: kernel width (odd).") = 9,
    coarsen: option(int, "KS grid takes every COARSEN-th exact point.") = 1,
    seed: option(int, "Network initialisation seed.") = 0,
    segment: option(int, "adiabatic/memory: train on segments of SEGMENT steps from the exact state.") = 0,
    plot: Plot = None,
    as_json: Json = False,
) -> None:
    """Learn v_c so that TDKS reproduces the exact densities (checkpointed adjoint gradients).

    Resumable: the fit is checkpointed to OUTPUT.checkpoint.npz and the same command continues."""
    from densitylab.tdks.workflow import LearnConfig, learn

    config = config_from(LearnConfig, locals(), trajectories=tuple(trajectory))
    bar, report = rich_progress(f"learning v_c ({model})", None, {"loss": ".3e", "gradient": ".2e"})
    with bar:
        result = learn(config, report, checkpoint=checkpoint_beside(output))
    result.save(output)
    if plot_folder(plot) is not None:
        result.plot(plot)
    print_summary({"output": str(output), **result.summary}, as_json, f"learned v_c ({model})")


@command(app, "ensemble", outputs={"output": "artefact"})
def tdks_ensemble(
    member: option(list[str], "A trained functional: a shipped name or a folder (repeat: two or more)."),
    output: option(Path, "Folder for the ensemble (an artefact; evaluate it as any functional)."),
    as_json: Json = False,
) -> None:
    """A committee of trained functionals as one: v_c is the mean of the members' v_c, each
    with its own inputs and gate (a deep ensemble: members trained with other seeds or data)."""
    from densitylab.tdks.evaluate import make_ensemble

    print_summary(make_ensemble(member, output), as_json, "ensemble of functionals")


@command(app, "switch", outputs={"output": "artefact"})
def tdks_switch(
    network: option(str, "The trained functional: a shipped name, or a functional/ensemble folder."),
    dataset: option(Path, "Training trajectory set (densitylab tdks dataset) to fit the choice on."),
    output: option(Path, "Folder for the switch (an artefact; evaluate it as any functional)."),
    neighbours: option(
        int | None, "Training cases nearest in initial inward speed that choose (default: by leave-one-out)."
    ) = None,
    as_json: Json = False,
) -> None:
    """A functional of the density and the initial state: per trajectory, the trained functional
    or an anchor (SCE, ALDA, exchange only), whichever did best, relative to exchange only, on
    the training cases whose initial states are nearest."""
    from densitylab.tdks.evaluate import make_switch

    bar, report = rich_progress("propagating the experts on the set", None, {"case": ""})
    with bar:
        summary = make_switch(network, dataset, output, neighbours, progress=report)
    print_summary(summary, as_json, "switched functional")


@command(app, "evaluate")
def tdks_evaluate(
    trajectory: option(Path, "Exact trajectory (densitylab tdks exact)."),
    model: option(
        str, "A shipped model, a folder of tdks learn/functional/ensemble, or exchange-only, alda, sce."
    ),
    coarsen: option(int, "KS grid takes every COARSEN-th exact point.") = 1,
    plot: Plot = None,
    as_json: Json = False,
) -> None:
    """Density error of a v_c model on an exact trajectory, beside the anchors v_c = 0
    (exact exchange only), adiabatic LDA correlation and adiabatic strictly correlated
    electrons (SCE)."""
    from densitylab.tdks.workflow import evaluate_model

    evaluation = evaluate_model(trajectory, model, coarsen)
    if plot_folder(plot) is not None:
        evaluation.plot(plot)
    print_summary(evaluation.summary, as_json, f"{model} on {trajectory.name}")
