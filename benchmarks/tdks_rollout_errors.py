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


def print_errors(nets: dict, folders: list, steps: int | None = None) -> None:
    """One line per case of each folder: its name and each labelled net's error."""
    from densitylab.model1d.propagation import load_trajectory
    from densitylab.tdks.propagation import density_errors, problem_from_trajectory
    from densitylab.tdks.supervised import rollout_runner

    for folder in folders:
        for path in sorted(Path(folder).glob("*.h5")):
            problem, target = problem_from_trajectory(load_trajectory(path))
            errors = {}
            for label, net in nets.items():
                densities = rollout_runner(problem, net.config.memory)(net)
                errors[label] = float(
                    np.max(
                        density_errors(densities, target, problem.dx)[: None if steps is None else steps + 1]
                    )
                )
            print(path.stem, " ".join(f"{label}={error:.3f}" for label, error in errors.items()), flush=True)


def main() -> None:
    arguments = sys.argv[1:]
    steps = None
    if arguments[0] == "--steps":
        steps, arguments = int(arguments[1]), arguments[2:]
    split = arguments.index("--")
    from densitylab.tdks.models import load_density_net

    nets = {Path(name).name: load_density_net(name) for name in arguments[:split]}
    print_errors(nets, arguments[split + 1 :], steps)


if __name__ == "__main__":
    main()
