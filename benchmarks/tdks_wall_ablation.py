"""Which part of ``--wall-free`` costs the fit: run ``densitylab tdks functional`` with one part of
it only (BENCHMARKS.md, "Wall-free networks trained").

``--wall-free`` changes three things at once: the convolutions pad with the edge values instead
of zeros, the SCE inputs count electrons from the density's centre instead of the left wall, and
the SCE input is gauged to a density-weighted mean of zero instead of to its value at the left
edge. This script runs the CLI with ``--wall-free`` (so edge padding) and patches the inputs:

* ``padding``: the inputs exactly as with the walls (left-wall count, left-edge gauge); only the
  padding changes.
* ``virtual``: counted as from walls of a virtual box centred on the density's centre ⟨x⟩,
  2R = 120 bohr long (the scattering cases' box): N(x) + floor·(x − ⟨x⟩ + R) with the
  partner's share 1 + floor·R, and the left-edge gauge v_SCE(x₀) = w(x₀ − f(x₀)). Across a gap
  in the density the floor decides where f lands; the walls' count puts the partner of a tail
  point a share floor·L/2 beyond one electron, inside the other lump, where the centred count
  (share exactly one) puts it at the near edge of the gap. This keeps the walls' choice and
  depends on no wall. Left of the density v_SCE(x) = w(x − f(x)) whatever the box.

* ``masked``: as ``padding``, and the supervised loss leaves out every point within the
  network's view (half-width) of a wall, so that the fit is not asked for v_c where the network
  could only tell it from the zero padding.

Usage: python benchmarks/tdks_wall_ablation.py VARIANT densitylab-tdks-functional-arguments...
(the arguments must include --wall-free; the output is an ordinary functional folder whose
manifest holds the pretraining history, but its inputs are the patched ones), and
python benchmarks/tdks_wall_ablation.py VARIANT errors NET... -- SET... to propagate such
networks under the same patch (``benchmarks/tdks_rollout_errors.py``'s output).
"""

from __future__ import annotations

import sys
from pathlib import Path

VIRTUAL_HALF_BOX = 60.0  # bohr


def walls_inputs(original):
    """``window_features`` that computes every input as the walls' networks do, whatever the
    network's ``wall_free``."""

    def window_features(window, inputs, dx, dt, parts=None, wall_free=False):
        return original(window, inputs, dx, dt, parts, False)

    return window_features


def patch(variant: str) -> None:
    from densitylab.jaxsetup import jax_modules
    from densitylab.tdks import features, sce

    original_features = features.window_features
    original_sce = sce.sce_potential

    if variant in ("padding", "masked"):
        features.window_features = walls_inputs(original_features)
        if variant == "masked":
            mask_walls()
    elif variant == "virtual":
        original_count = sce._electron_count

        def electron_count(density, dx, floor=1e-10, centred=False):
            count, half = original_count(density, dx, floor, centred)
            if centred:
                count, half = count + floor * VIRTUAL_HALF_BOX, half + floor * VIRTUAL_HALF_BOX
            return count, half

        def sce_potential(density, x, profile, floor=1e-10, centred=False):
            if not centred:
                return original_sce(density, x, profile, floor, centred)
            _, jnp, _ = jax_modules()
            separations, potential, force = (jnp.asarray(part) for part in profile)
            dx = x[1] - x[0]
            distance = jnp.asarray(x) - sce.comotion_function(density, x, floor, True)
            slope = jnp.interp(distance, separations, force)
            integral = dx * (jnp.cumsum(slope) - 0.5 * slope - 0.5 * slope[0])
            return integral + jnp.interp(distance[0], separations, potential)

        sce._electron_count = electron_count
        sce.sce_potential = sce_potential
    else:
        raise SystemExit(f"variant: expected 'padding', 'masked' or 'virtual', got {variant!r}")


def mask_walls() -> None:
    """Zero the supervised weights within the network's half-width view of either wall."""
    from densitylab.tdks import supervised

    original = supervised.raw_features

    def raw_features(net_config, *args, **kwargs):
        rows, values, weights = original(net_config, *args, **kwargs)
        reach = (net_config.kernel // 2) * sum(
            net_config.dilation**layer for layer in range(net_config.depth)
        )
        for case in weights:
            case[:, :reach] = 0.0
            case[:, -reach:] = 0.0
        return rows, values, weights

    supervised.raw_features = raw_features


def main() -> None:
    variant, arguments = sys.argv[1], sys.argv[2:]
    if arguments[:1] == ["errors"]:
        patch(variant)
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import tdks_rollout_errors

        sys.argv = [sys.argv[0], *arguments[1:]]
        tdks_rollout_errors.main()
        return
    if "--wall-free" not in arguments:
        raise SystemExit("the arguments must include --wall-free (the variants patch a wall-free run)")
    patch(variant)
    from densitylab.cli import app

    app(["tdks", "functional", *arguments])


if __name__ == "__main__":
    main()
