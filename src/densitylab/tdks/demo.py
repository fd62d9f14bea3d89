"""Demo section for TDKS: a laser-driven two-electron atom, exact and Kohn–Sham."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from densitylab.model1d.propagation import laser_scenario, propagate, save_trajectory
from densitylab.plots import plot_density_errors, plot_xt_maps
from densitylab.tdks.evaluate import VcModel, alda, evaluate, exchange_only
from densitylab.tdks.learn import fit_values_gauss_newton, train
from densitylab.tdks.models import free_values
from densitylab.tdks.propagation import problem_from_trajectory

COLUMNS = ("v_c", "max over t of ∫ ∣n_KS − n_exact∣ dx", "mean over t")


def run(output: Path) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """Propagate a soft-Coulomb helium-like atom in a 6 a.u. laser pulse exactly (60 points),
    then run TDKS with v_c = 0, adiabatic LDA correlation, and v_c values learned by adjoint
    gradients (100 L-BFGS iterations) and by preconditioned windowed Gauss–Newton; write
    figures and return the table."""
    output.mkdir(parents=True, exist_ok=True)
    scenario = laser_scenario(amplitude=0.15, frequency=0.6, duration=6.0, dx=0.4, x_min=-12.0, x_max=12.0)
    trajectory = propagate(scenario, 0.01, 600, store_every=5)
    save_trajectory(trajectory, output / "tdks_laser.h5")
    problem, target = problem_from_trajectory(trajectory)
    params, model = free_values(problem.steps, problem.points)
    learned, _ = train([problem], [target], params, model, iterations=100)
    windowed, _ = fit_values_gauss_newton(problem, target, window=20, iterations=8, lookahead=10)
    candidates = [
        exchange_only(problem),
        alda(problem),
        VcModel("learned values (L-BFGS)", learned, model),
        VcModel("learned values (Gauss–Newton)", windowed, model),
    ]
    results = evaluate(problem, target, candidates)
    times = np.arange(problem.steps + 1) * problem.dt
    plot_density_errors(
        times, {name: result["errors"] for name, result in results.items()}, output / "tdks_errors.png"
    )
    learned_result = results["learned values (Gauss–Newton)"]
    plot_xt_maps(
        problem.x,
        times,
        {"exact n": target, "KS n (learned v_c)": learned_result["densities"], "v_c": learned_result["v_c"]},
        output / "tdks_maps.png",
    )
    rows = [
        (name, f"{result['errors'].max():.2e}", f"{result['errors'].mean():.2e}")
        for name, result in results.items()
    ]
    return COLUMNS, rows
