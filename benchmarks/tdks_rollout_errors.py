"""Max ∫|n_KS − n_exact| dx of saved functionals on every case of trajectory sets, fast.

The functionals only, no anchors (``benchmarks/tdks_functional.py`` adds those and the
figures): each is propagated once per case with :func:`densitylab.tdks.supervised.rollout_runner`,
the propagation stage 1b scores its rounds with.

Run:  python benchmarks/tdks_rollout_errors.py [--steps K] NET [NET ...] -- SET [SET ...]
Prints one line per case: its name and each functional's error (with ``--steps K``, the max
over the first K KS steps only, t ≤ K·dt).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def main() -> None:
    arguments = sys.argv[1:]
    steps = None
    if arguments[0] == "--steps":
        steps, arguments = int(arguments[1]), arguments[2:]
    split = arguments.index("--")
    from densitylab.model1d.propagation import load_trajectory
    from densitylab.tdks.models import load_density_net
    from densitylab.tdks.propagation import density_errors, problem_from_trajectory
    from densitylab.tdks.supervised import rollout_runner

    nets = {name: load_density_net(name) for name in arguments[:split]}
    for folder in arguments[split + 1 :]:
        for path in sorted(Path(folder).glob("*.h5")):
            problem, target = problem_from_trajectory(load_trajectory(path))
            errors = {}
            for name, net in nets.items():
                densities = rollout_runner(problem, net.config.memory)(net)
                errors[Path(name).name] = float(
                    np.max(
                        density_errors(densities, target, problem.dx)[: None if steps is None else steps + 1]
                    )
                )
            print(path.stem, " ".join(f"{name}={error:.3f}" for name, error in errors.items()), flush=True)


if __name__ == "__main__":
    main()
