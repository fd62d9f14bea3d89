"""How the out-of-distribution gate's threshold trades accuracy for safety.

Twins of a trained functional (the same weights and gate centre and whitening, the gate's
threshold d₀ multiplied by each factor) are propagated on each case of trajectory sets; factor
1 is the functional as trained. A lower threshold hands back to exact exchange (v_c = 0)
sooner: safer where the inputs leave the training distribution, at the cost of the correction
where they do not.

With ``--global`` each twin's gate is the whole window's (``gate_scope="window"``,
:func:`densitylab.tdks.features.window_gate`): v_c everywhere is multiplied by the smallest
gate value over the points where the density exceeds 1e-3, so a functional whose own state has
left the training inputs anywhere hands back to exact exchange everywhere instead of leaving
holes in its v_c.

With ``--sce`` the gate hands back to adiabatic SCE, not to exact exchange
(``gate_fallback="sce"``).

Run:  python benchmarks/tdks_gate_threshold.py [--global] [--sce] NET FACTOR [FACTOR ...] -- SET [SET ...]
Prints one line per case: max ∫|n_KS − n_exact| dx of each twin, labelled by its factor.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tdks_rollout_errors import print_errors


def threshold_twin(net, factor: float, scope: str = "point", fallback: str = "exchange"):
    """The net with its gate threshold times ``factor``, the gate ``scope`` and ``fallback``
    (the weights shared)."""
    from densitylab.tdks.models import with_config

    threshold = net.config.gate_threshold * factor
    return with_config(net, gate_threshold=threshold, gate_scope=scope, gate_fallback=fallback)


def main() -> None:
    from densitylab.tdks.evaluate import shipped_or_path
    from densitylab.tdks.models import load_density_net

    arguments = sys.argv[1:]
    flags = {flag: flag in arguments for flag in ("--global", "--sce")}
    arguments = [a for a in arguments if a not in flags]
    scope, fallback = "window" if flags["--global"] else "point", "sce" if flags["--sce"] else "exchange"
    split = arguments.index("--")
    net = load_density_net(shipped_or_path(arguments[0])[1])
    if net.config.gate_threshold is None:
        raise SystemExit(f"NET: {arguments[0]} has no gate")
    factors = [float(f) for f in arguments[1:split]]
    nets = {f"x{factor:g}": threshold_twin(net, factor, scope, fallback) for factor in factors}
    print_errors(nets, arguments[split + 1 :])


if __name__ == "__main__":
    main()
