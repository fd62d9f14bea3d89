"""Models of the correlation potential v_c for TDKS.

Every model is a pair (params, ``model(params, window, k) -> v_c (N,)``), where ``window``
(memory, N) holds the KS densities of steps k − memory + 1 … k, the present last; see
:mod:`densitylab.tdks.propagation`.

* (a) :func:`free_values`: v_c(x, t_k) = params[k], one free value per grid point and step,
  with an optional smoothness penalty (:func:`smoothness_penalty`).
* (b) :class:`DensityNet` with memory = 1: an adiabatic functional of n(t).
* (c) :class:`DensityNet` with memory > 1: a functional of n(t), the rates
  (n(t) − n(t − m dt))/(m dt), m = 1 … memory − 1, and the current they imply by continuity,
  j(x) = −∫_{−∞}^x ∂n/∂t dx' (so the velocity field, the key non-adiabatic variable in 1D,
  is available to a local network).
* The adiabatic-LDA anchor :func:`alda_correlation`: v_c^LDA(n(x, t)) of the soft-Coulomb
  gas (Helbig et al. 2011) on top of exact exchange.
* The strictly-correlated-electrons anchor :func:`sce_correlation`: v_Hxc = v_SCE[n(t)], the
  strong-interaction limit, which removes the self-interaction of separated electrons.

The networks are 1D convolutions over x (translation-equivariant and local, with a
receptive field of ``depth·(kernel − 1) + 1`` points), softplus activations, and a zero-
initialised output layer so that training starts from v_c = 0 (exact exchange only).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from densitylab.errors import InvalidParameterError, require
from densitylab.jaxsetup import jax_modules, load_weights, read_module_config, save_module
from densitylab.tdks.sce import interaction_profile, sce_potential


def free_values(steps: int, points: int):
    """(a): zero initial params (steps, points) and the model v_c = params[k]."""
    _, jnp, _ = jax_modules()

    def model(params, window, k):
        return params[k]

    return jnp.zeros((steps, points)), model


def smoothness_penalty(weight: float, dx: float, dt: float):
    """weight · Σ (|∂ₓv_c|² + |∂ₜv_c|²) dx dt for free values, by forward differences."""
    _, jnp, _ = jax_modules()

    def penalty(params):
        space = jnp.sum(jnp.diff(params, axis=1) ** 2) / dx
        time = jnp.sum(jnp.diff(params, axis=0) ** 2) * dx / dt
        return weight * (space * dt + time)

    return penalty


# Helbig et al., PRA 83, 032503 (2011): correlation energy per electron of the unpolarised
# 1D gas with the soft-Coulomb interaction 1/√(x² + 1), fitted to QMC in the form of
# Casula, Sorella and Senatore (PRB 74, 245427 (2006)); the fit is in Rydberg.
SOFT_COULOMB_LDA_C = {
    "A": 18.40, "B": 0.0, "C": 7.501, "D": 0.10185, "E": 0.012827,
    "n1": 2.0, "n2": 3.0, "alpha": 1.511, "beta": 0.258, "m": 4.424,
}  # fmt: skip


def lda_correlation_energy(density):
    """ε_c(n) per electron (Ha) of the unpolarised soft-Coulomb gas; rs = 1/(2n)."""
    _, jnp, _ = jax_modules()
    p = SOFT_COULOMB_LDA_C
    rs = 1.0 / (2.0 * jnp.maximum(density, 1e-14))
    numerator = -(rs + p["E"] * rs**2) * jnp.log1p(p["alpha"] * rs + p["beta"] * rs ** p["m"])
    denominator = p["A"] + p["B"] * rs + p["C"] * rs ** p["n1"] + p["D"] * rs ** p["n2"]
    return 0.5 * numerator / denominator


def lda_correlation_potential(density):
    """v_c(n) = d(n ε_c)/dn (Ha), elementwise, by automatic differentiation."""
    jax, jnp, _ = jax_modules()
    energy_density = jax.vmap(jax.grad(lambda n: n * lda_correlation_energy(n)))
    return energy_density(jnp.ravel(density)).reshape(jnp.shape(density))


def alda_correlation():
    """The adiabatic LDA anchor: exact exchange plus v_c^LDA(n(x, t)); no parameters."""

    def model(params, window, k):
        return lda_correlation_potential(window[-1])

    return None, model


def sce_correlation(interaction: np.ndarray, x: np.ndarray):
    """An anchor with strong correlation built in: v_Hxc = v_SCE[n(t)], i.e. on top of exact
    exchange v_c = v_SCE − ½v_H (adiabatic KS-SCE; Malet and Gori-Giorgi, PRL 109, 246402 (2012)).

    Two electrons far apart then each feel only the other, with no self-interaction (the
    mean-field ½v_H gives each half of its own); no parameters.
    """
    from densitylab.tdks.propagation import hartree_operator

    profile = interaction_profile(interaction, x)
    hartree = hartree_operator(interaction, float(x[1] - x[0]))

    def model(params, window, k):
        return sce_potential(window[-1], x, profile) - 0.5 * hartree(window[-1])

    return None, model


@dataclass(frozen=True)
class DensityNetConfig:
    """Hyperparameters of a convolutional v_c functional (stored with the weights).

    Attributes:
        memory: densities seen (1 = adiabatic, model b; > 1 = with memory, model c).
        channels: hidden channels; depth: convolution layers; kernel: odd kernel width.
        dx, dt: the grid spacing and step the model was trained with (bohr, a.u.).
        inputs: names from :data:`densitylab.tdks.features.FEATURES`; None: the original
            inputs, n (memory 1) or n, j and the rates (memory > 1), with no scaling, no
            linear term and no gate.
        interaction: the e–e interaction of the ``sce`` and ``partner`` inputs.
        scales: each input row is divided by its scale (None: 1).
        gate_center, gate_whitening, gate_threshold: the out-of-distribution gate
            (:func:`densitylab.tdks.features.gate`); None: no gate.
        gate_scope: "point", each point's v_c gated by its own inputs, or "window", all of v_c
            by the least value over the occupied points (:func:`densitylab.tdks.features.window_gate`,
            which reads the ``density`` input).
        gate_fallback: what the gate hands back to where it closes: "exchange", v_c = 0 (exact
            exchange), or "sce", the ``sce`` input (adiabatic SCE correlation, v_SCE − ½v_H):
            v_c = g·v_net + (1 − g)·v_SCE.
        integrate: the network gives a local part of v_c and a force F, and v_c adds
            −∫_{x₀}^x F dx': a local force makes the steps of the exact v_c between separated
            electrons, which a local v_c cannot (new-style networks only).
        dilation: layer l (from 0) spaces its kernel's taps ``dilation**l`` points apart, so
            the receptive field is (kernel − 1)·(1 + dilation + … + dilation^(depth−1)) + 1
            points at the same cost: with 1 (the default) 25 points (2.5 bohr) for kernel 9
            and depth 3, with 4 169 points, wide enough to see an atom and a packet leaving it.
        wall_free: v_c does not depend on where the box's walls are while the density is far
            from them: the ``sce`` and ``partner`` inputs count electrons from the density's
            centre, and each convolution pads by its edge values, not by zeros (a zero beside a
            hidden layer's softplus(bias) is a step the next layer sees; the original networks,
            False, see the walls within their receptive field).
    """

    memory: int = 4
    channels: int = 16
    depth: int = 3
    kernel: int = 9
    dx: float = 0.1
    dt: float = 0.05
    seed: int = 0
    inputs: tuple[str, ...] | None = None
    interaction: str = "soft-coulomb:strength=1,softening=1"
    scales: tuple[float, ...] | None = None
    gate_center: tuple[float, ...] | None = None
    gate_whitening: tuple[tuple[float, ...], ...] | None = None
    gate_threshold: float | None = None
    integrate: bool = False
    dilation: int = 1
    wall_free: bool = False
    gate_scope: str = "point"
    gate_fallback: str = "exchange"

    def __post_init__(self):
        from densitylab.tdks.features import check_inputs, feature_count

        require(self.memory >= 1, "memory", "a positive integer", self.memory)
        require(self.depth >= 1, "depth", "a positive integer", self.depth)
        require(self.kernel >= 1 and self.kernel % 2 == 1, "kernel", "an odd positive integer", self.kernel)
        require(self.channels >= 1, "channels", "a positive integer", self.channels)
        require(
            isinstance(self.dilation, int) and self.dilation >= 1,
            "dilation",
            "a positive integer",
            self.dilation,
        )
        for name in ("inputs", "scales", "gate_center"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.gate_whitening is not None:
            object.__setattr__(self, "gate_whitening", tuple(tuple(row) for row in self.gate_whitening))
        if self.inputs is not None:
            check_inputs(self.inputs, self.memory)
        require(
            not self.integrate or self.inputs is not None, "integrate", "False without inputs", self.integrate
        )
        count = feature_count(self.feature_names(), self.memory)
        if self.scales is not None:
            require(len(self.scales) == count, "scales", f"{count} positive numbers", len(self.scales))
            require(
                all(s > 0 and np.isfinite(s) for s in self.scales), "scales", "positive numbers", self.scales
            )
        gate = (self.gate_center, self.gate_whitening, self.gate_threshold)
        require(
            all(part is None for part in gate) or all(part is not None for part in gate),
            "gate_threshold",
            "all of gate_center, gate_whitening and gate_threshold, or none",
            self.gate_threshold,
        )
        require(self.gate_scope in ("point", "window"), "gate_scope", "point or window", self.gate_scope)
        require(
            self.gate_fallback in ("exchange", "sce"), "gate_fallback", "exchange or sce", self.gate_fallback
        )
        if self.gate_fallback == "sce":
            require(self.gate_threshold is not None, "gate_fallback", "exchange without a gate", "sce")
            require("sce" in self.feature_names(), "gate_fallback", "exchange without the sce input", "sce")
        if self.gate_scope == "window":
            require(
                self.gate_threshold is not None,
                "gate_scope",
                "point for a functional without a gate",
                "window",
            )
            require(
                "density" in self.feature_names(), "gate_scope", "point without the density input", "window"
            )

    def settings(self) -> dict:
        """The config as checkpoint settings (:func:`densitylab.checkpoint.config_settings`;
        the gate's scope and fallback, added later, only when not the original ones)."""
        from densitylab.checkpoint import config_settings

        return config_settings(self, {"gate_scope": "point", "gate_fallback": "exchange"})

    def feature_names(self) -> tuple[str, ...]:
        if self.inputs is not None:
            return self.inputs
        return ("density",) if self.memory == 1 else ("density", "current", "rates")


def build_density_net(config: DensityNetConfig):
    """An Equinox module window (memory, N) → v_c (N,).

    The convolutions are written as a stack of shifted copies times one matrix ("im2col"):
    on CPU this ran several times faster than XLA's convolution kernels for these narrow
    layers (see docs/tdks.md), and it is the same operation.
    """
    jax, jnp, eqx = jax_modules()
    half = config.kernel // 2
    padding = "edge" if config.wall_free else "constant"

    def convolve(weight, bias, features, spacing=1):
        """'SAME' 1D convolution of features (C_in, N) with weight (kernel·C_in, C_out), the
        taps ``spacing`` points apart."""
        points = features.shape[1]
        padded = jnp.pad(features, ((0, 0), (half * spacing, half * spacing)), mode=padding)
        patches = jnp.concatenate(
            [padded[:, spacing * shift : spacing * shift + points] for shift in range(config.kernel)], axis=0
        )
        return (patches.T @ weight + bias).T

    from densitylab.tdks.features import feature_count, gate, sce_parts, window_features, window_gate

    names = config.feature_names()
    count = feature_count(names, config.memory)
    scales = np.ones(count) if config.scales is None else np.asarray(config.scales)
    if config.gate_scope == "window":  # the row of the density input, and its scale
        density_row = feature_count(names[: names.index("density")], config.memory)
    if config.gate_fallback == "sce":
        sce_row = feature_count(names[: names.index("sce")], config.memory)
    needs_parts = bool({"sce", "partner"} & set(names))
    parts_cache: dict = {}

    def parts(points: int):  # built once per grid size, at trace time
        if points not in parts_cache:
            parts_cache[points] = sce_parts(points, config.dx, config.interaction)
        return parts_cache[points]

    class DensityNet(eqx.Module):
        layers: list
        linear: object
        config: DensityNetConfig = eqx.field(static=True)

        def __init__(self, key):
            self.config = config
            keys = jax.random.split(key, config.depth)
            sizes = [count] + [config.channels] * config.depth
            self.layers = []
            for c_in, c_out, k in zip(sizes[:-1], sizes[1:], keys, strict=True):
                scale = 1.0 / np.sqrt(config.kernel * c_in)
                self.layers.append(
                    (scale * jax.random.normal(k, (config.kernel * c_in, c_out)), jnp.zeros(c_out))
                )
            # output layer starts at zero: training starts from v_c = 0 (exact exchange)
            outputs = 2 if config.integrate else 1
            self.layers.append((jnp.zeros((config.channels, outputs)), jnp.zeros(outputs)))
            # the new-style functionals add a linear term in the (scaled) inputs, from zero
            self.linear = None if config.inputs is None else jnp.zeros((outputs, count))

        def features(self, window):
            """The scaled inputs (C, N) of a window (memory, N)."""
            points = window.shape[1]
            rows = window_features(
                window, names, config.dx, config.dt, parts(points) if needs_parts else None, config.wall_free
            )
            return rows / jnp.asarray(scales)[:, None]

        def __call__(self, window):
            return self.from_features(self.features(window))

        def from_features(self, inputs):
            """v_c (N,) from the scaled inputs (C, N) of :meth:`features`."""
            hidden = inputs
            for layer, (weight, bias) in enumerate(self.layers[:-1]):
                hidden = jax.nn.softplus(convolve(weight, bias, hidden, config.dilation**layer))
            weight, bias = self.layers[-1]
            output = (hidden.T @ weight + bias).T  # (outputs, N)
            if self.linear is not None:
                output = output + self.linear @ inputs
            if config.gate_threshold is not None:
                statistics = (config.gate_center, config.gate_whitening, config.gate_threshold)
                if config.gate_scope == "window":
                    opened = window_gate(inputs, inputs[density_row] * scales[density_row], *statistics)
                else:
                    opened = gate(inputs, *statistics)
                output = output * opened
                if config.gate_fallback == "sce":  # the local part falls back to adiabatic SCE
                    output = output.at[0].add((1.0 - opened) * inputs[sce_row] * scales[sce_row])
            if config.integrate:  # a local part and a force, integrated from the left edge
                return output[0] - jnp.cumsum(output[1]) * config.dx
            return output[0]

    return DensityNet(jax.random.PRNGKey(config.seed))


def density_net_model(net, interaction_scale: float = 1.0):
    """The propagation-model form of a DensityNet: params is the network itself.

    ``interaction_scale`` λ (new-style networks only, see :func:`interaction_scale`) multiplies
    v_c by λ²: the exact v_c vanishes without interaction and starts at second order in it, so
    a functional trained at λ = 1 returns exactly zero for non-interacting electrons and
    interpolates quadratically in between (a heuristic away from λ = 0 and 1).
    """
    factor = float(interaction_scale) ** 2

    def model(params, window, k):
        return params(window) if factor == 1.0 else factor * params(window)

    return net, model


def interaction_scale(config: DensityNetConfig, interaction: np.ndarray, x: np.ndarray) -> float:
    """λ such that a problem's interaction matrix (N, N) is λ times the one the network was
    trained with (``config.interaction`` on the same grid x); 1 for the original networks.

    Raises:
        InvalidParameterError: naming ``model``, if the interaction is not a multiple of it.
    """
    from densitylab.model1d.system import parse_interaction

    if config.inputs is None:
        return 1.0
    trained = parse_interaction(config.interaction).matrix(np.asarray(x))
    scale = float(np.sum(trained * interaction) / np.sum(trained * trained))
    if not np.allclose(interaction, scale * trained, rtol=1e-8, atol=1e-12 * np.abs(trained).max()):
        raise InvalidParameterError(
            "model",
            f"a problem whose interaction is a multiple of {config.interaction}",
            "another interaction",
        )
    return scale


def save_density_net(path: str | Path, net, extra: dict | None = None, extra_files=None) -> Path:
    """An artefact folder (kind ``tdks-density-net``): the network's config, ``extra`` (how it
    was trained) in the manifest, and ``weights.eqx``."""
    return save_module(path, "tdks-density-net", asdict(net.config), net, extra_files, **(extra or {}))


def with_config(net, **changes):
    """The same weights under a config with ``changes`` (e.g. another gate scope or threshold,
    or ``wall_free``): a twin of a trained network, built by :func:`build_density_net`."""
    _, _, eqx = jax_modules()
    twin = build_density_net(replace(net.config, **changes))
    if net.linear is None:  # an original network: no linear term
        return eqx.tree_at(lambda m: m.layers, twin, net.layers)
    return eqx.tree_at(lambda m: (m.layers, m.linear), twin, (net.layers, net.linear))


def build_ensemble(members: list):
    """An Equinox module window (memory, N) → the mean of its members' v_c (N,): a committee
    of independently trained functionals (a deep ensemble), each with its own inputs, scales
    and gate. Its ``config`` is the first member's, whose memory, grid, step, interaction and
    style (new or original, which decides the λ² interaction scaling) every member shares.

    Raises:
        InvalidParameterError: naming ``members``: fewer than two, or members that differ in
            what the propagation and the interaction scaling read from ``config``.
    """
    _, _, eqx = jax_modules()
    require(len(members) >= 2, "members", "at least two functionals", len(members))
    require(
        all(hasattr(member, "layers") for member in members),
        "members",
        "networks (an ensemble's members are not ensembles)",
        "an ensemble",
    )
    first = members[0].config

    def shared(config):
        return (config.memory, round(config.dx, 12), round(config.dt, 12), config.interaction,
                config.inputs is None)  # fmt: skip

    for index, member in enumerate(members[1:], start=1):
        require(
            shared(member.config) == shared(first),
            "members",
            "functionals of one memory, grid spacing, KS step, interaction and style "
            f"(memory, dx, dt, interaction, original) = {shared(first)}",
            f"member {index} with {shared(member.config)}",
        )

    class DensityNetEnsemble(eqx.Module):
        members: tuple
        config: DensityNetConfig = eqx.field(static=True)

        def __call__(self, window):
            return sum(member(window) for member in self.members) / len(self.members)

    return DensityNetEnsemble(tuple(members), first)


def save_ensemble(path: str | Path, ensemble, extra: dict | None = None) -> Path:
    """An artefact folder (kind ``tdks-ensemble``): each member a ``tdks-density-net`` folder
    ``member-K`` inside it, and ``extra`` (e.g. where the members came from) in the manifest.
    The folder appears whole or not at all."""
    from densitylab.artefacts import artefact_folder, write_manifest

    with artefact_folder(path) as folder:
        for index, member in enumerate(ensemble.members):
            save_density_net(folder / f"member-{index}", member)
        config = {"members": len(ensemble.members), "memory": ensemble.config.memory}
        write_manifest(folder, "tdks-ensemble", config, **(extra or {}))
    return Path(path)


def load_density_net(path: str | Path):
    """A ``tdks-density-net`` folder as its network, or a ``tdks-ensemble`` folder as its
    committee (:func:`build_ensemble`)."""
    from densitylab.artefacts import read_manifest

    manifest = read_manifest(path, ("tdks-density-net", "tdks-ensemble"))
    if manifest["kind"] == "tdks-ensemble":
        count = int(manifest["config"]["members"])
        return build_ensemble([load_density_net(Path(path) / f"member-{k}") for k in range(count)])
    fields = DensityNetConfig.__dataclass_fields__
    config = DensityNetConfig(**read_module_config(path, ("tdks-density-net",), fields))
    return load_weights(path, build_density_net(config))


def parameter_count(params) -> int:
    jax, _, eqx = jax_modules()
    return int(
        sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(eqx.filter(params, eqx.is_inexact_array)))
    )
