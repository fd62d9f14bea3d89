"""How much a trained functional's propagation leans on its zero padding at the walls.

Its ``padding`` twin (the same weights, the convolutions padded with the edge values instead of
zeros, every input as trained) and its ``wall_free`` twin (edge padding and the centred count of
the SCE inputs) are propagated beside it on each case of trajectory sets.

Run:  python benchmarks/tdks_padding_twin.py NET -- SET [SET ...]
Prints one line per case: max ∫|n_KS − n_exact| dx of the net and its twins.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np


def main() -> None:
    import equinox as eqx

    from densitylab.model1d.propagation import load_trajectory
    from densitylab.tdks import features
    from densitylab.tdks.evaluate import shipped_or_path
    from densitylab.tdks.models import build_density_net, load_density_net
    from densitylab.tdks.propagation import density_errors, problem_from_trajectory
    from densitylab.tdks.supervised import rollout_runner

    name, folders = sys.argv[1], sys.argv[sys.argv.index("--") + 1 :]
    net = load_density_net(shipped_or_path(name)[1])
    original_features = features.window_features

    def walls_inputs(window, inputs, dx, dt, parts=None, wall_free=False):
        return original_features(window, inputs, dx, dt, parts, False)

    def twin():  # the network binds window_features when it is built
        free = build_density_net(replace(net.config, wall_free=True))
        return eqx.tree_at(lambda m: (m.layers, m.linear), free, (net.layers, net.linear))

    features.window_features = walls_inputs
    padding_twin = twin()
    features.window_features = original_features
    wall_free_twin = twin()

    for folder in folders:
        for path in sorted(Path(folder).glob("*.h5")):
            problem, target = problem_from_trajectory(load_trajectory(path))
            errors = {"as trained": rollout_runner(problem, net.config.memory)(net)}
            errors["padding twin"] = rollout_runner(problem, net.config.memory)(padding_twin)
            errors["wall_free twin"] = rollout_runner(problem, net.config.memory)(wall_free_twin)
            line = " ".join(
                f"{label}={np.max(density_errors(d, target, problem.dx)):.3f}" for label, d in errors.items()
            )
            print(path.stem, line, flush=True)


if __name__ == "__main__":
    main()
