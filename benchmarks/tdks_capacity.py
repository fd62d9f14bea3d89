"""In-sample capacity of a v_c network (issue 18): how much of the exact v_c (model (a)) of one
trajectory can it fit with the exact densities as input (teacher forcing)?

Fits the supervised stage of ``densitylab tdks functional`` (no propagation) on a set with an
inverted v_c, and prints its gauge-free, density-weighted loss per epoch beside the loss of
v_c = 0 (exchange-only) and of the SCE input (``--base sce`` before training). A network that
cannot fit the exact v_c of the trajectory it is trained on cannot learn it through the
propagation either.

Run:  python benchmarks/tdks_capacity.py --set /work/tdksdata/heldinv --epochs 60 --dilation 4
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", required=True, help="a set whose cases have their inverted v_c")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--dilation", type=int, default=1)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--depth", type=int, default=3)
    args = parser.parse_args()

    import numpy as np

    from densitylab.jaxsetup import jax_modules
    from densitylab.tdks.functional import (
        FunctionalConfig,
        calibrated,
        load_cases,
        raw_features,
        start_from,
        supervised_loss,
        train_functional,
    )
    from densitylab.tdks.models import build_density_net

    _, jnp, _ = jax_modules()
    shape = dict(dilation=args.dilation, channels=args.channels, depth=args.depth)
    config = FunctionalConfig(args.set, pretrain_epochs=args.epochs, horizons=(), **shape)
    started = time.perf_counter()
    result = train_functional(config)
    seconds = time.perf_counter() - started

    # the anchors' loss on the same pairs (every case, the same stride and floor)
    cases = load_cases(config)
    net_config = result.net.config
    features, values, weights = raw_features(net_config, cases, config.stride, config.floor)
    bare = build_density_net(calibrated(net_config, features, weights, False))
    scales = np.asarray(bare.config.scales)[None, :, None]

    def mean_loss(net):
        return float(
            np.mean(
                [
                    supervised_loss(net, jnp.asarray(f / scales), jnp.asarray(v), jnp.asarray(w))
                    for f, v, w in zip(features, values, weights, strict=True)
                ]
            )
        )

    losses = result.history["pretrain"]["loss"]
    print(
        json.dumps(
            {
                **shape,
                "epochs": args.epochs,
                "exchange_only": mean_loss(bare),
                "sce": mean_loss(start_from(bare, "sce")),
                "network_first_epoch": losses[0],
                "network_last_epoch": losses[-1],
                "seconds": seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
