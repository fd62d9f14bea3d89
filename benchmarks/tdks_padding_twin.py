"""How much a trained functional's propagation leans on its zero padding at the walls.

Its ``padding`` twin (the same weights, the convolutions padded with the edge values instead of
zeros, every input as trained) and its ``wall_free`` twin (edge padding and the centred count of
the SCE inputs) are propagated beside it on each case of trajectory sets.

Run:  python benchmarks/tdks_padding_twin.py NET -- SET [SET ...]
Prints one line per case: max ∫|n_KS − n_exact| dx of the net and its twins.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tdks_rollout_errors import print_errors
from tdks_wall_ablation import walls_inputs


def main() -> None:
    from densitylab.tdks import features
    from densitylab.tdks.evaluate import shipped_or_path
    from densitylab.tdks.models import load_density_net, with_config

    name, folders = sys.argv[1], sys.argv[sys.argv.index("--") + 1 :]
    net = load_density_net(shipped_or_path(name)[1])
    original_features = features.window_features

    def twin():  # the network binds window_features when it is built
        return with_config(net, wall_free=True)

    features.window_features = walls_inputs(original_features)
    padding_twin = twin()
    features.window_features = original_features
    nets = {"as trained": net, "padding twin": padding_twin, "wall_free twin": twin()}
    print_errors(nets, folders)


if __name__ == "__main__":
    main()
