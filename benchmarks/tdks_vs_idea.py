"""Side-by-side benchmark: exact propagation and TDKS inversion, densitylab against iDEA.

One laser-driven two-electron soft-Coulomb atom on a grid small enough for iDEA's
full-space propagation: v = −2/√(x² + 1), w = 1/√((x−x')² + 1), 3-point stencil (both
codes), E(t) = F sin²(πt/T) sin(ωt) entering as E(t)·x, Crank–Nicolson steps of dt.

1. Exact propagation: iDEA.methods.interacting.propagate (sparse expm_multiply per step,
   given the mid-step field) against
   densitylab.model1d.propagation.propagate (split-operator, and Crank–Nicolson on the same
   hard-wall Hamiltonian as iDEA). Reported: seconds and max_t ∫|Δn| dx between the codes.
2. KS potential: iDEA.reverse_engineering.reverse_propagation (step-by-step root finding
   with a non-interacting fictitious system) against model (a) of densitylab.tdks (free v_c
   values), fitted two ways: by L-BFGS on the whole horizon through checkpointed adjoint
   gradients, and by the windowed Gauss–Newton fit with its defaults (the method the CLI
   recommends); all target the same exact density. Reported: seconds and
   max_t ∫|n_KS − n_exact| dx. The anchors v_c = 0 (exact exchange) and adiabatic LDA
   correlation are run on the same problem.

Run:  python benchmarks/tdks_vs_idea.py [--points 61] [--time 10]
Writes benchmarks/results/tdks_vs_idea.{json,md}.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=61)
    parser.add_argument("--box", type=float, default=10.0)
    parser.add_argument("--time", type=float, default=10.0)
    parser.add_argument("--dt", type=float, default=0.05)
    parser.add_argument("--amplitude", type=float, default=0.1)
    parser.add_argument("--frequency", type=float, default=0.5)
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args()

    import iDEA
    import jax.numpy as jnp

    from densitylab.model1d import Grid, Interaction
    from densitylab.model1d.exact import solve_exact
    from densitylab.model1d.propagation import Scenario, propagate
    from densitylab.model1d.system import System
    from densitylab.tdks.evaluate import alda, evaluate, exchange_only
    from densitylab.tdks.learn import fit_values_gauss_newton, train
    from densitylab.tdks.models import free_values
    from densitylab.tdks.propagation import KSProblem, density_errors, orbital_from_density

    x = np.linspace(-args.box, args.box, args.points)
    dx = x[1] - x[0]
    v_ext = -2.0 / np.sqrt(x**2 + 1.0)
    interaction = Interaction("soft-coulomb")
    w = interaction.matrix(x)
    steps = round(args.time / args.dt)
    times = np.arange(steps + 1) * args.dt

    def field(t):
        return args.amplitude * np.sin(np.pi * t / args.time) ** 2 * np.sin(args.frequency * t)

    results: dict = {"parameters": vars(args), "machine": platform.processor() or platform.machine()}

    # --- iDEA: exact ground state and propagation --------------------------------------------
    quiet = contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO())
    with quiet[0], quiet[1]:
        system = iDEA.system.System(x, v_ext, w, "ud", stencil=3)
        start = time.perf_counter()
        ground = iDEA.methods.interacting.solve(system, k=0)
        # iDEA steps j−1 → j with exp(−i dt H(v_ptrb[j])): give it the mid-step field, so that
        # both codes are second order in dt (with v_ptrb[j] = field(t_j) it is first order)
        v_ptrb = np.array([field(t - 0.5 * args.dt) * x for t in times])
        evolution = iDEA.methods.interacting.propagate(system, ground, v_ptrb, times)
        idea_seconds = time.perf_counter() - start
        idea_density = iDEA.observables.density(system, evolution=evolution)
    results["idea_exact_seconds"] = idea_seconds

    # --- densitylab: exact ground state and propagation ---------------------------------------
    grid = Grid(args.points, -args.box, args.box, 3)
    ours = {}
    for method, sub in (("split-operator", 10), ("crank-nicolson", 1)):
        start = time.perf_counter()
        state = solve_exact(System(grid, v_ext, "ud", interaction)).ground
        psi = state.coefficients.astype(complex) / dx
        psi = 0.5 * (psi + psi.T)
        scenario = Scenario(
            "laser", grid, interaction, psi, v_ext, field, {"interaction": interaction.to_spec()}
        )
        trajectory = propagate(scenario, args.dt / sub, steps * sub, sub, method=method)
        ours[method] = trajectory
        results[f"densitylab_exact_seconds_{method}"] = time.perf_counter() - start
        results[f"exact_density_difference_{method}"] = float(
            density_errors(trajectory.density, idea_density, dx).max()
        )
    target = ours["crank-nicolson"].density

    # --- iDEA: reverse propagation (step-by-step TDKS inversion) -----------------------------
    with quiet[0], quiet[1]:
        fictitious = iDEA.system.System(x, v_ext, np.zeros_like(w), "ud", stencil=3)
        start = time.perf_counter()
        fictitious = iDEA.reverse_engineering.reverse(
            fictitious, idea_density[0], iDEA.methods.non_interacting, restricted=True, silent=True
        )
        ks_ground = iDEA.methods.non_interacting.solve(fictitious, restricted=True, silent=True)
        ks_evolution, _ = iDEA.reverse_engineering.reverse_propagation(
            fictitious, ks_ground, idea_density, iDEA.methods.non_interacting, v_ptrb, times, restricted=True
        )
        results["idea_reverse_seconds"] = time.perf_counter() - start
        ks_density = iDEA.observables.density(fictitious, evolution=ks_evolution)
    results["idea_reverse_density_error_max"] = float(density_errors(ks_density, idea_density, dx).max())

    # --- densitylab: model (a), free v_c values by adjoint gradients --------------------------
    midpoints = (np.arange(steps) + 0.5) * args.dt
    problem = KSProblem(
        x,
        v_ext[None, :] + np.array([field(t) for t in midpoints])[:, None] * x[None, :],
        w,
        orbital_from_density(target[0], ours["crank-nicolson"].current[0], dx),
        args.dt,
    )
    params, model = free_values(steps, args.points)
    start = time.perf_counter()
    learned, history = train([problem], [target], params, model, iterations=args.iterations)
    jnp.asarray(learned).block_until_ready()
    results["densitylab_values_seconds"] = time.perf_counter() - start
    results["densitylab_values_iterations"] = len(history["loss"])
    start = time.perf_counter()
    gauss_newton, _ = fit_values_gauss_newton(problem, target)
    results["densitylab_gauss_newton_seconds"] = time.perf_counter() - start
    from densitylab.tdks.evaluate import VcModel

    errors = evaluate(
        problem,
        target,
        [
            VcModel("values", learned, model),
            VcModel("gauss-newton", np.asarray(gauss_newton), model),
            exchange_only(problem),
            alda(problem),
        ],
    )
    for name, result in errors.items():
        results[f"density_error_max_{name}"] = float(result["errors"].max())

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tdks_vs_idea.json").write_text(json.dumps(results, indent=1))
    lines = [
        f"# TDKS against iDEA ({args.points} points, {steps} steps of {args.dt}, 2 electrons)",
        "",
        "| task | iDEA | densitylab |",
        "|---|---|---|",
        f"| exact propagation (s) | {results['idea_exact_seconds']:.2f} | "
        f"{results['densitylab_exact_seconds_split-operator']:.2f} (split-operator, dt/10), "
        f"{results['densitylab_exact_seconds_crank-nicolson']:.2f} (CN) |",
        "| max over t of ∫ ∣Δn∣ dx between the codes | — | "
        f"{results['exact_density_difference_split-operator']:.1e} (SO), "
        f"{results['exact_density_difference_crank-nicolson']:.1e} (CN) |",
        f"| KS potential: seconds | {results['idea_reverse_seconds']:.1f} (reverse_propagation) | "
        f"{results['densitylab_values_seconds']:.1f} "
        f"(model a, {results['densitylab_values_iterations']} L-BFGS), "
        f"{results['densitylab_gauss_newton_seconds']:.1f} (model a, Gauss–Newton) |",
        f"| KS potential: max over t of ∫ ∣n_KS − n∣ dx | {results['idea_reverse_density_error_max']:.1e} | "
        f"{results['density_error_max_values']:.1e} (L-BFGS), "
        f"{results['density_error_max_gauss-newton']:.1e} (Gauss–Newton) |",
        f"| anchors: v_c = 0 / adiabatic LDA | — | {results['density_error_max_exchange-only']:.1e} / "
        f"{results['density_error_max_alda']:.1e} |",
    ]
    (RESULTS / "tdks_vs_idea.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
