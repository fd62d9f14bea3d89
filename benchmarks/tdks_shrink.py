"""A trained functional with its whole v_c scaled, v_c = α·v_net (α = 0: exact exchange only).

Shrinking towards exchange-only is the simplest way to trade a functional's gains for safety;
this measures the trade on every case of trajectory sets (max ∫|n_KS − n_exact| dx).

Run:  python benchmarks/tdks_shrink.py NET ALPHA [ALPHA ...] -- SET [SET ...]
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    arguments = sys.argv[1:]
    split = arguments.index("--")
    sys.path.insert(0, str(Path(__file__).parent))
    from densitylab.jaxsetup import jax_modules
    from densitylab.tdks.evaluate import shipped_or_path
    from densitylab.tdks.models import load_density_net
    from tdks_rollout_errors import print_errors

    _, _, eqx = jax_modules()
    net = load_density_net(shipped_or_path(arguments[0])[1])

    class Scaled(eqx.Module):
        net: object
        alpha: float = eqx.field(static=True)
        config: object = eqx.field(static=True)  # the network's: the propagation reads its memory

        def __call__(self, window):
            return self.alpha * self.net(window)

    scaled = {f"alpha={alpha}": Scaled(net, float(alpha), net.config) for alpha in arguments[1:split]}
    print_errors(scaled, arguments[split + 1 :])


if __name__ == "__main__":
    main()
