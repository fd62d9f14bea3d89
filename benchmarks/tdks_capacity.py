"""In-sample capacity of a v_c network (issue 18): how much of the exact v_c (model (a)) of one
trajectory can it fit with the exact densities as input (teacher forcing)?

Fits the supervised stage of ``densitylab tdks functional`` (no propagation) on a set with an
inverted v_c, and prints its gauge-free, density-weighted loss per epoch beside the loss of
v_c = 0 (exchange-only) and of the SCE input (``--base sce`` before training). A network that
cannot fit the exact v_c of the trajectory it is trained on cannot learn it through the
propagation either.

With ``--test SET`` the trained network's loss is also measured on another set's inverted v_c
(out of sample: does what it holds generalise?); ``--cases`` picks the training cases.

``--model F`` measures a saved functional F instead (its own inputs and shape; no training).

Run:  python benchmarks/tdks_capacity.py --set /work/tdksdata/heldinv --epochs 60 --dilation 4
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", required=True, help="a set whose cases have their inverted v_c")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--dilation", type=int, default=1)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--cases", nargs="*", default=None, help="training cases (default: all)")
    parser.add_argument("--test", default=None, help="a second set to measure the loss on")
    parser.add_argument("--model", default=None, help="measure this saved functional instead of training one")
    args = parser.parse_args()

    import numpy as np

    from densitylab.jaxsetup import jax_modules
    from densitylab.tdks.functional import FunctionalConfig, load_cases, start_from, train_functional
    from densitylab.tdks.models import build_density_net, load_density_net
    from densitylab.tdks.supervised import raw_features, supervised_loss

    _, jnp, _ = jax_modules()
    shape = dict(dilation=args.dilation, channels=args.channels, depth=args.depth)
    config = FunctionalConfig(
        args.set, cases=args.cases, pretrain_epochs=max(args.epochs, 1), horizons=(), **shape
    )
    started = time.perf_counter()
    if args.model:  # its own inputs and shape; only the pairs come from the config
        net = load_density_net(args.model)
        config = replace(config, inputs=net.config.inputs, memory=net.config.memory)
        shape = {name: getattr(net.config, name) for name in shape}
        losses = [float("nan")]
    else:
        result = train_functional(config)
        net, losses = result.net, result.history["pretrain"]["loss"]
    seconds = time.perf_counter() - started

    # v_c = 0, SCE and the network on the same pairs (the same stride and floor) of each set; the
    # inputs of a set are built once. As built, the output layer and linear term are zero (v_c = 0);
    # without the gate the SCE start is SCE itself.
    net_config = net.config
    scales = np.asarray(net_config.scales)[None, :, None]
    bare = build_density_net(replace(net_config, gate_center=None, gate_whitening=None, gate_threshold=None))
    models = {"exchange_only": bare, "sce": start_from(bare, "sce"), "network": net}

    def losses_on(chosen) -> dict:
        cases = load_cases(chosen)
        features, values, weights = raw_features(net_config, cases, config.stride, config.floor)
        pairs = [
            (jnp.asarray(f / scales), jnp.asarray(v), jnp.asarray(w))
            for f, v, w in zip(features, values, weights, strict=True)
        ]
        by_case = {name: [float(supervised_loss(model, *p)) for p in pairs] for name, model in models.items()}
        means = {name: float(np.mean(found)) for name, found in by_case.items()}
        names = [case.name for case in cases]
        return means | {
            f"{name}_by_case": dict(zip(names, found, strict=True)) for name, found in by_case.items()
        }

    report = {**shape, "epochs": 0 if args.model else args.epochs, **losses_on(config)}
    report.update(network_first_epoch=losses[0], network_last_epoch=losses[-1], seconds=seconds)
    if args.test:
        test = replace(config, dataset=args.test, cases=None)
        report.update({f"test_{name}": value for name, value in losses_on(test).items()})
    print(json.dumps(report))


if __name__ == "__main__":
    main()
