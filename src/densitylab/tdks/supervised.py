"""The supervised stages of ``densitylab tdks functional``: v_c fitted to the exact v_c of
each training trajectory (model (a)), on the exact densities and on the functional's own.

* Stage 1, :func:`pretrain` (teacher forcing): the inputs are built from the exact densities.
* Stage 1b, :func:`rollout_supervision` (DAgger, Ross, Gordon and Bagnell, AISTATS 2011; in
  the "data as demonstrator" form of Venkatraman, Hebert and Bagnell, AAAI 2015): the
  functional is propagated on each training case, and the densities of its *own* KS
  trajectory, labelled with the exact v_c of the same time step, join the supervised pairs;
  the network is trained on the union, and again, round after round. Teacher forcing alone
  shows the functional only exact histories: the first errors of its own propagation take it
  where it has never been trained, and they grow (a network that holds the exact v_c to a
  quarter of SCE's error on exact histories was worse than exchange-only once propagated;
  docs/tdks.md). Trained on its own drifted histories, it learns to give the exact v_c from
  near-exact ones. No gradient goes through the propagation, so none explodes.

The cases are :class:`~densitylab.tdks.functional.Case` (a trajectory, its exact densities and
v_c) and the config a :class:`~densitylab.tdks.functional.FunctionalConfig`; this module
imports neither, so that the functional module can import it.

Both use the gauge-free, density-weighted loss of :func:`supervised_loss` and minibatch Adam
(:func:`densitylab.training.optax_loop`). Written here rather than taken from a library: no
kept package trains a functional of a density history along a KS propagation.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from densitylab.jaxsetup import jax_modules


def windows(densities: np.ndarray, memory: int, steps: np.ndarray) -> np.ndarray:
    """The density windows (len(steps), memory, N) the propagation shows the model at
    ``steps``, built from the densities (T + 1, N) of a trajectory, exact or the model's own
    (the oldest rows repeat n(0) at the start)."""
    lags = np.arange(memory) - (memory - 1)
    return densities[np.clip(steps[:, None] + lags[None, :], 0, None)]


def raw_features(
    net_config,
    cases: list,
    stride: int,
    floor: float = 0.0,
    chunk: int = 64,
    densities: list | None = None,
    offset: int = 0,
):
    """Per case: unscaled inputs (P, C, N), exact v_c (P, N) and weights n + ``floor``
    (P, N) of every ``stride``-th step from ``offset`` (three lists; N may differ between
    cases). The inputs and weights come from ``densities`` (one (T + 1, N) array per case;
    default: the exact ones), the v_c always from the case."""
    jax, jnp, _ = jax_modules()
    from densitylab.tdks.models import build_density_net

    bare = replace(net_config, scales=None, gate_center=None, gate_whitening=None, gate_threshold=None)
    net = build_density_net(bare)
    features = jax.jit(jax.vmap(net.features))
    rows, values, weights = [], [], []
    for index, case in enumerate(cases):
        source = case.target if densities is None else densities[index]
        steps = np.arange(offset, case.problem.steps, stride)
        parts = [
            np.asarray(features(jnp.asarray(windows(source, net_config.memory, steps[i : i + chunk]))))
            for i in range(0, len(steps), chunk)
        ]
        rows.append(np.concatenate(parts))
        values.append(None if case.values is None else case.values[steps])
        weights.append(source[steps] + floor)
    return rows, values, weights


def calibrated(net_config, features: list, weights: list, gate: bool, sample: int = 7):
    """``net_config`` with the inputs' scales (density-weighted RMS over every case) and, with
    ``gate``, the gate statistics of the scaled inputs at every ``sample``-th point."""
    from densitylab.tdks.features import gate_statistics

    total = sum(np.sum(w) for w in weights)
    squares = sum(np.einsum("pcn,pn->c", f**2, w) for f, w in zip(features, weights, strict=True))
    scales = np.maximum(np.sqrt(squares / total), 1e-8)
    config = replace(net_config, scales=tuple(float(s) for s in scales))
    if not gate:
        return config
    points = np.concatenate(
        [
            (f[:, :, ::sample] / scales[None, :, None]).transpose(0, 2, 1).reshape(-1, len(scales))
            for f in features
        ]
    )
    sampled = np.concatenate([w[:, ::sample].reshape(-1) for w in weights])
    return replace(config, **gate_statistics(points, sampled))


def supervised_loss(net, features, values, weights):
    """Mean over steps of Σ_x n (δ − ⟨δ⟩_n)² / Σ_x n with δ = v_c − v_c^(a) (Ha²)."""
    jax, jnp, _ = jax_modules()
    delta = jax.vmap(net.from_features)(features) - values
    norm = jnp.sum(weights, axis=1)
    mean = jnp.sum(weights * delta, axis=1) / norm
    return jnp.mean(jnp.sum(weights * (delta - mean[:, None]) ** 2, axis=1) / norm)


def fit_pairs(
    net, pairs, epochs: int, learning_rate: float, batch_size: int, key, on_epoch=None, resumable=None
):
    """Minibatch Adam (peak ``learning_rate``, cosine decay over ``epochs``) of
    :func:`supervised_loss` on ``pairs`` = (scaled inputs, exact v_c, weights), three lists of
    per-case arrays; each minibatch comes from one case (cases may have different grids),
    shuffled by the integers ``key`` and the epoch. Returns the trained net."""
    import optax

    from densitylab.training import optax_loop

    features, values, weights = pairs
    slots = [(c, i) for c, f in enumerate(features) for i in range(0, len(f), batch_size)]

    def batches(epoch):
        rng = np.random.default_rng([*key, epoch])
        orders = [rng.permutation(len(f)) for f in features]
        for slot in rng.permutation(len(slots)):
            case, start = slots[slot]
            chosen = orders[case][start : start + batch_size]
            yield features[case][chosen], values[case][chosen], weights[case][chosen]

    schedule = optax.cosine_decay_schedule(learning_rate, epochs * len(slots))
    return optax_loop(
        supervised_loss, net, optax.adam(schedule), epochs, batches, on_epoch, resumable=resumable
    )


def scaled_pairs(net, cases: list, stride: int, floor: float, densities=None, offset: int = 0):
    """:func:`raw_features` with the inputs divided by the net's scales (what it is trained on)."""
    features, values, weights = raw_features(
        net.config, cases, stride, floor, densities=densities, offset=offset
    )
    scales = np.asarray(net.config.scales)[None, :, None]
    return [f / scales for f in features], values, weights


def pretrain(net, cases: list, config, progress=None, checkpoint=None):
    """Stage 1 (teacher forcing); returns (net, history)."""
    from densitylab.checkpoint import fingerprint
    from densitylab.training import Resumable

    cases = [case for case in cases if case.values is not None]  # those that reproduce (load_cases)
    pairs = scaled_pairs(net, cases, config.stride, config.floor)
    history = {"epoch": [], "loss": [], "cases": [case.name for case in cases]}

    def on_epoch(epoch, params, losses, norms):
        history["epoch"].append(epoch)
        history["loss"].append(float(np.mean(losses)))
        if progress:
            progress(epoch, config.pretrain_epochs, loss=history["loss"][-1])

    resumable = None
    if checkpoint is not None:
        settings = {
            "stage": "pretrain",
            "config": config.settings(),
            "data": fingerprint(*pairs[1], *pairs[2]),
        }
        resumable = Resumable(
            checkpoint, settings, 5, lambda: {"history": history}, lambda s: history.update(s["history"])
        )
    net = fit_pairs(
        net,
        pairs,
        config.pretrain_epochs,
        config.learning_rate,
        config.batch_size,
        [config.seed],
        on_epoch,
        resumable,
    )
    return net, history


def rollout_runner(problem, memory: int):
    """net → the KS densities (T + 1, N) of the functional's own propagation of ``problem``
    (compiled once, for every net of one shape)."""
    from densitylab.tdks.evaluate import runner
    from densitylab.tdks.models import density_net_model

    _, model = density_net_model(None)  # the model calls its params: the net itself
    propagated = runner(problem, model, memory)
    return lambda net: propagated(net)[0]


def rollout_errors(densities: list, cases: list) -> list[float]:
    """max_t ∫|n − n_exact| dx of each case's densities (inf where they are not finite)."""
    from densitylab.tdks.propagation import density_errors

    return [
        float(np.max(density_errors(d, case.target, case.problem.dx))) if np.all(np.isfinite(d)) else np.inf
        for d, case in zip(densities, cases, strict=True)
    ]


def _number(value: float) -> float | None:
    """``value``, or None (JSON null) where it is not finite."""
    return float(value) if np.isfinite(value) else None


def mean_weights(nets: list):
    """The functional whose weights are the mean of ``nets``' (functionals of one shape, e.g.
    consecutive rounds of one training, which lie in one basin of the loss); the rest
    (config, scales, gate) is the first's."""
    jax, _, eqx = jax_modules()
    arrays = [eqx.filter(net, eqx.is_inexact_array) for net in nets]
    mean = jax.tree_util.tree_map(lambda *leaves: sum(leaves[1:], leaves[0]) / len(leaves), *arrays)
    return eqx.combine(mean, eqx.partition(nets[0], eqx.is_inexact_array)[1])


def _round_prefix(done: int) -> str:
    return f"round{done:03d}/"


def stored_rounds(arrays: dict, rounds: int, like) -> list:
    """The functionals of rounds 1 … ``rounds`` kept in a stage-1b checkpoint's ``arrays``
    (:func:`rollout_supervision`), each with the structure of ``like`` (a net of their shape)."""
    from densitylab.checkpoint import tree_from_arrays

    nets = []
    for done in range(1, rounds + 1):
        prefix = _round_prefix(done)
        nets.append(
            tree_from_arrays({k[len(prefix) :]: a for k, a in arrays.items() if k.startswith(prefix)}, like)
        )
    return nets


def pairs_bytes(net_config, cases: list, stride: int) -> float:
    """Bytes of one set of supervised pairs (inputs, v_c and weights at every ``stride``-th step)."""
    from densitylab.tdks.features import feature_count

    channels = feature_count(net_config.feature_names(), net_config.memory) + 2
    return sum(8.0 * -(-case.problem.steps // stride) * channels * case.problem.points for case in cases)


def require_rollout_memory(net_config, cases: list, config) -> None:
    """Refuse (naming ``dagger_rounds``) a stage 1b whose pairs, the exact ones and one set per
    round for the cases with an exact v_c, would not fit in memory. :func:`train_functional
    <densitylab.tdks.functional.train_functional>` calls it before any stage runs."""
    from densitylab.limits import require_memory

    supervised = [case for case in cases if case.values is not None]
    require_memory(
        (config.dagger_rounds + 1) * pairs_bytes(net_config, supervised, config.stride),
        "dagger_rounds",
        f"the supervised pairs of {config.dagger_rounds} rounds at stride {config.stride}",
        config.dagger_rounds,
    )


def rollout_supervision(net, cases: list, config, progress=None, checkpoint=None):
    """Stage 1b (the module's DAgger): ``config.dagger_rounds`` rounds; returns (net, history).

    Round r propagates the functional of round r − 1 on every case with an exact v_c, adds the
    pairs of its own trajectory (every ``stride``-th step, from step r mod ``stride``, weighted
    by its own density + ``floor``, labelled with the exact v_c of the step; a propagation that
    is not finite adds none) to the exact pairs and those of the earlier rounds, and trains the
    functional on them all for ``dagger_epochs`` epochs (Adam from ``dagger_learning_rate``).
    Each functional's *score* is the mean over the cases of max_t ∫|Δn| dx of its propagation
    divided by exchange-only's (None where a propagation is not finite); with ``keep_best``
    the functional of the lowest score is kept (the start included), otherwise the last.
    With ``checkpoint`` (a .npz path) every finished round is kept there (a resume rebuilds
    the pairs from the stored functionals), and the running round every epoch in
    ``<checkpoint>.round.npz``; a resume under other settings, or from another starting
    functional, is refused. ``progress(done, total, loss=…)`` after every epoch of every round.

    With ``dagger_average`` K ≥ 2 the mean of the last K rounds' weights (:func:`mean_weights`)
    is scored after the last round, and is the result unless ``keep_best`` keeps a lower score.

    history: "cases", "score" and "errors" (per case) of each functional from the start (the
    average last), "loss" (per round, each epoch's mean), "kept" (the kept functional: 0 the
    start, R + 1 the average) and "averaged" (K, with an average).
    """
    from densitylab.checkpoint import fingerprint, read_checkpoint, tree_arrays, write_checkpoint
    from densitylab.tdks.evaluate import exchange_only, run
    from densitylab.training import Resumable

    require_rollout_memory(net.config, cases, config)
    cases = [case for case in cases if case.values is not None]  # those that reproduce (load_cases)
    pairs = [list(part) for part in scaled_pairs(net, cases, config.stride, config.floor)]
    anchors = rollout_errors([run(c.problem, exchange_only(c.problem))[0] for c in cases], cases)
    runners = [rollout_runner(case.problem, net.config.memory) for case in cases]
    settings = {
        "stage": "dagger",
        "config": config.settings(),
        "start": fingerprint(*tree_arrays(net).values()),
    }
    history = {"cases": [case.name for case in cases], "score": [], "errors": [], "loss": []}
    nets = [net]
    stored = None if checkpoint is None else read_checkpoint(checkpoint, settings)
    if stored is not None:
        arrays, state = stored
        history = state["history"]
        nets.extend(stored_rounds(arrays, state["rounds"], net))

    def record(densities):
        """Each case's error and the score of one functional's propagations, into history."""
        errors = rollout_errors(densities, cases)
        history["errors"].append({name: _number(e) for name, e in zip(history["cases"], errors, strict=True)})
        history["score"].append(_number(float(np.mean(np.divide(errors, anchors)))))

    for index in range(config.dagger_rounds + 1):
        densities = [runner(nets[index]) for runner in runners]
        if index == len(history["score"]):  # not measured before a resume
            record(densities)
        if index == config.dagger_rounds:
            break
        finite = [i for i, d in enumerate(densities) if np.all(np.isfinite(d))]
        own = scaled_pairs(
            net,
            [cases[i] for i in finite],
            config.stride,
            config.floor,
            [densities[i] for i in finite],
            index % config.stride,
        )
        for part, more in zip(pairs, own, strict=True):
            part.extend(more)
        if index + 1 < len(nets):  # trained before a resume
            continue
        losses = []

        def on_epoch(epoch, params, batch, norms, losses=losses, start=index * config.dagger_epochs):
            losses.append(float(np.mean(batch)))
            if progress:
                progress(start + epoch, config.dagger_rounds * config.dagger_epochs, loss=losses[-1])

        resumable = None
        if checkpoint is not None:  # the running round, every epoch (the loop removes it at its end)
            resumable = Resumable(
                f"{checkpoint}.round.npz",
                settings | {"round": index + 1},
                1,
                lambda losses=losses: {"loss": losses},
                lambda state, losses=losses: losses.extend(state["loss"]),
            )
        nets.append(
            fit_pairs(
                nets[index],
                pairs,
                config.dagger_epochs,
                config.dagger_learning_rate,
                config.batch_size,
                [config.seed, index + 1],
                on_epoch,
                resumable,
            )
        )
        history["loss"].append(losses)
        if checkpoint is not None:
            arrays = {
                f"{_round_prefix(done)}{name}": array
                for done, trained in enumerate(nets[1:], 1)
                for name, array in tree_arrays(trained).items()
            }
            write_checkpoint(checkpoint, settings, arrays, {"rounds": len(nets) - 1, "history": history})
    if config.dagger_average:
        nets.append(mean_weights(nets[-config.dagger_average :]))
        record([runner(nets[-1]) for runner in runners])
        history["averaged"] = config.dagger_average
    scores = [np.inf if score is None else score for score in history["score"]]
    history["kept"] = int(np.argmin(scores)) if config.keep_best else len(nets) - 1
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)
    return nets[history["kept"]], history
