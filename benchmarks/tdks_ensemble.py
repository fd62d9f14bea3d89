"""Committees of saved functionals: the error of their mean v_c, and where they disagree.

An ensemble's v_c is the mean of its members' v_c on the same window
(:func:`densitylab.tdks.models.build_ensemble`, what ``densitylab tdks ensemble`` saves). Two
questions, each measured on every case of trajectory sets:

* ``errors``: max ∫|n_KS − n_exact| dx of the ensemble's own propagation (as
  ``benchmarks/tdks_rollout_errors.py`` for one functional);
* ``disagreement``: along the first member's own propagation, every 50th step, the
  density-weighted RMS of v_A − v_B over x (each difference's weighted mean removed: a
  constant is a gauge) between the first two members, beside the first member's error over
  exchange-only's at that step. A committee's disagreement is the usual out-of-distribution
  signal of deep ensembles; this tells whether it rises where the functional fails.

Run:  python benchmarks/tdks_ensemble.py errors|disagreement NET NET [NET ...] -- SET [SET ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def print_disagreement(first, second, folders: list, every: int = 50) -> None:
    """One line per case: at every ``every``-th step, t:rms(v_A − v_B)/(error_A/error_exchange)."""
    from densitylab.jaxsetup import jax_modules
    from densitylab.model1d.propagation import load_trajectory
    from densitylab.tdks.evaluate import exchange_only, run
    from densitylab.tdks.propagation import density_errors, problem_from_trajectory
    from densitylab.tdks.supervised import rollout_runner, windows

    jax, jnp, _ = jax_modules()
    apply_first, apply_second = jax.jit(jax.vmap(first)), jax.jit(jax.vmap(second))
    for folder in folders:
        for path in sorted(Path(folder).glob("*.h5")):
            problem, target = problem_from_trajectory(load_trajectory(path))
            own = rollout_runner(problem, first.config.memory)(first)
            ratio = density_errors(own, target, problem.dx) / np.maximum(
                density_errors(run(problem, exchange_only(problem))[0], target, problem.dx), 1e-9
            )
            steps = np.arange(0, problem.steps, every)
            inputs = jnp.asarray(windows(own, first.config.memory, steps))
            difference = np.asarray(apply_first(inputs)) - np.asarray(apply_second(inputs))
            weights = own[steps] / own[steps].sum(axis=1, keepdims=True)
            mean = (difference * weights).sum(axis=1, keepdims=True)
            rms = np.sqrt(((difference - mean) ** 2 * weights).sum(axis=1))
            times = steps * problem.dt
            cells = (f"{t:.0f}:{r:.3f}/{ratio[s]:.2f}" for t, r, s in zip(times, rms, steps, strict=True))
            print(path.stem, " ".join(cells), flush=True)


def main() -> None:
    mode, *arguments = sys.argv[1:]
    split = arguments.index("--")
    from densitylab.tdks.evaluate import shipped_or_path
    from densitylab.tdks.models import build_ensemble, load_density_net

    nets = [load_density_net(shipped_or_path(name)[1]) for name in arguments[:split]]
    folders = arguments[split + 1 :]
    if mode == "errors":
        sys.path.insert(0, str(Path(__file__).parent))
        from tdks_rollout_errors import print_errors

        print_errors({"ensemble": build_ensemble(nets)}, folders)
    elif mode == "disagreement":
        print_disagreement(nets[0], nets[1], folders)
    else:
        raise SystemExit(f"mode: expected 'errors' or 'disagreement', got {mode!r}")


if __name__ == "__main__":
    main()
