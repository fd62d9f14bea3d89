"""A functional's own propagation, one line per a.u.: where and how it leaves the exact dynamics.

For each time: max ∫|n_KS − n_exact| dx so far is not shown, but the error at that time of
the functional and of exchange-only; the charge beyond |x| = OUTSIDE bohr from the box's
centre (exact, the functional's, exchange-only's); the range (max − min) of its v_c on its own
window within |x| ≤ OUTSIDE and where its density exceeds 1e-4 beyond; and the smallest value
of its out-of-distribution gate over the window's points (1: every input inside the training
distribution).

Run:  python benchmarks/tdks_own_propagation.py NET TRAJECTORY.h5 [OUTSIDE (default 6)]
"""

from __future__ import annotations

import sys

import numpy as np


def main() -> None:
    from densitylab.jaxsetup import jax_modules
    from densitylab.model1d.propagation import load_trajectory
    from densitylab.tdks.evaluate import exchange_only, run, shipped_or_path
    from densitylab.tdks.features import gate
    from densitylab.tdks.models import load_density_net
    from densitylab.tdks.propagation import density_errors, problem_from_trajectory
    from densitylab.tdks.supervised import rollout_runner, windows

    _, jnp, _ = jax_modules()
    net = load_density_net(shipped_or_path(sys.argv[1])[1])
    outside = float(sys.argv[3]) if len(sys.argv) > 3 else 6.0
    problem, target = problem_from_trajectory(load_trajectory(sys.argv[2]))
    dx, config = problem.dx, net.config
    plain = run(problem, exchange_only(problem))[0]
    own = rollout_runner(problem, config.memory)(net)
    errors = density_errors(own, target, dx)
    anchor = density_errors(plain, target, dx)
    x = dx * (np.arange(target.shape[1]) - (target.shape[1] - 1) / 2)
    far = np.abs(x) > outside
    per_unit = round(1.0 / problem.dt)
    for step in range(0, problem.steps + 1, per_unit):
        window = jnp.asarray(windows(own, config.memory, np.array([min(step, problem.steps - 1)]))[0])
        v_c = np.asarray(net(window))
        spread = far & (own[step] > 1e-4)
        beyond = np.ptp(v_c[spread]) if spread.any() else 0.0
        opened = 1.0
        if config.gate_threshold is not None:
            opened = float(
                np.min(
                    gate(
                        net.features(window), config.gate_center, config.gate_whitening, config.gate_threshold
                    )
                )
            )
        print(
            f"t={step * problem.dt:5.1f}  error {errors[step]:.3f} (exchange-only {anchor[step]:.3f})  "
            f"charge |x|>{outside:g}: exact {target[step][far].sum() * dx:.3f}, "
            f"functional {own[step][far].sum() * dx:.3f}, exchange-only {plain[step][far].sum() * dx:.3f}  "
            f"v_c range near {np.ptp(v_c[~far]):.2f}, far {beyond:.2f}  "
            f"gate min {opened:.3f}"
        )


if __name__ == "__main__":
    main()
