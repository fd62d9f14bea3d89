"""The pilot of stage 1b (DAgger on the functional's own propagations), kept as it ran.

This prototype came before :func:`densitylab.tdks.supervised.rollout_supervision`, which
implements the same rounds in the library (``tdks functional --dagger-rounds``); it is kept
because BENCHMARKS.md quotes its rounds, and it also propagates held-out cases after every
round, which the library stage does not. It differs from the library stage in the minibatch
shuffling and in how the inputs are scaled (the same values up to rounding).

Each round: propagate the network on the 12 training cases of ``/work/tdksdata/all``, add
(windows of its own densities, the exact v_c of the same step, its own density weights) to the
supervised pairs, and train Adam on all of them. Prints one JSON line per round: max ∫|Δn| of
each training case and of held-out p = −1.5, p = +1.3, laser (0.05, 0.5) and unseen p = −1.3.

Run:  python benchmarks/tdks_dagger_pilot.py INIT OUT ROUNDS EPOCHS LR STRIDE
(INIT a pretrained functional, e.g. the pretraining stage of the wide network of BENCHMARKS.md)
"""

# kept as it ran: imports after the set-up, closures that run within their round
# ruff: noqa: E402, B023
import json
import sys
import time

import numpy as np

from densitylab.jaxsetup import jax_modules

jax, jnp, eqx = jax_modules()
import optax

from densitylab.model1d.propagation import load_trajectory
from densitylab.tdks.functional import FunctionalConfig, load_cases
from densitylab.tdks.models import density_net_model, load_density_net, save_density_net
from densitylab.tdks.propagation import density_errors, problem_from_trajectory, propagate
from densitylab.tdks.supervised import supervised_loss, windows
from densitylab.training import optax_loop

init, out, rounds, epochs, lr, stride = (
    sys.argv[1],
    sys.argv[2],
    int(sys.argv[3]),
    int(sys.argv[4]),
    float(sys.argv[5]),
    int(sys.argv[6]),
)
net = load_density_net(init)
cfg = FunctionalConfig(dataset="/work/tdksdata/all", preset="training", pretrain_epochs=1)
cases = [c for c in load_cases(cfg) if c.values is not None]
held = {}
for name in ["all/scatter-p-1.50", "all/scatter-p+1.30", "all/laser-F0.050-w0.50", "extra/scatter-p-1.30"]:
    held[name] = problem_from_trajectory(load_trajectory(f"/work/tdksdata/{name}.h5"))
memory = net.config.memory
floor = cfg.floor


def rollout(net, problem):
    _, model = density_net_model(net)
    f = eqx.filter_jit(lambda p: propagate(problem, model, p, memory)[0])
    return np.asarray(f(net))


feats = jax.jit(jax.vmap(lambda n, w: n.features(w), in_axes=(None, 0)))


def features_of(net, dens, steps, chunk=64):
    return np.concatenate(
        [
            np.asarray(feats(net, jnp.asarray(windows(dens, memory, steps[i : i + chunk]))))
            for i in range(0, len(steps), chunk)
        ]
    )


# the exact-window data (as in pretraining)
F, V, W = [], [], []
for c in cases:
    steps = np.arange(0, c.problem.steps, stride)
    F.append(features_of(net, c.target, steps))
    V.append(c.values[steps])
    W.append(c.target[steps] + floor)
log = {"rounds": []}


def evaluate(net, tag):
    rec = {"tag": tag, "train": {}, "held": {}}
    for c in cases:
        d = rollout(net, c.problem)
        rec["train"][c.name] = float(np.max(density_errors(d, c.target, c.problem.dx)))
    for name, (p, t) in held.items():
        d = rollout(net, p)
        rec["held"][name] = float(np.max(density_errors(d, t, p.dx)))
    print(json.dumps(rec), flush=True)
    return rec


for r in range(rounds):
    t0 = time.time()
    for c in cases:
        d = rollout(net, c.problem)
        if not np.all(np.isfinite(d)):
            print("non-finite rollout", c.name, flush=True)
            continue
        steps = np.arange(0, c.problem.steps, stride) + (r % stride)
        steps = steps[steps < c.problem.steps]
        F.append(features_of(net, d, steps))
        V.append(c.values[steps])
        W.append(d[steps] + floor)
    slots = [(k, i) for k, f in enumerate(F) for i in range(0, len(f), 32)]

    def batches(epoch, r=r):
        rng = np.random.default_rng([r, epoch])
        orders = [rng.permutation(len(f)) for f in F]
        for s in rng.permutation(len(slots)):
            k, i = slots[s]
            ch = orders[k][i : i + 32]
            yield F[k][ch], V[k][ch], W[k][ch]

    losses = []
    net = optax_loop(
        supervised_loss,
        net,
        optax.adam(optax.cosine_decay_schedule(lr, epochs * len(slots))),
        epochs,
        batches,
        lambda e, p, l, n: losses.append(float(np.mean(l))),
    )
    rec = evaluate(net, f"round {r + 1}")
    rec["losses"] = losses
    rec["seconds"] = time.time() - t0
    log["rounds"].append(rec)
    save_density_net(
        f"{out}-r{r + 1}",
        net,
        {"dad": {"init": init, "round": r + 1, "epochs": epochs, "lr": lr, "stride": stride}},
    )
    json.dump(log, open(f"{out}.json", "w"), indent=1)
