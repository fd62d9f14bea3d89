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

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from densitylab.errors import InvalidParameterError, require
from densitylab.jaxsetup import jax_modules, load_weights, read_module_config, save_module


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


def interaction_profile(interaction: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A translation-invariant interaction as functions of the separation r = x − x'.

    Args:
        interaction: w(x_i − x_j) on the grid, (N, N), Ha; x: the uniform grid (N,), bohr.

    Returns:
        separations r (2N − 1,) from −(N − 1)dx to (N − 1)dx, w(r) and w'(r) (Ha/bohr, central
        differences, one-sided at the ends) on them.
    """
    from densitylab.tdks.propagation import toeplitz_kernel

    kernel = toeplitz_kernel(np.asarray(interaction))
    if kernel is None:
        raise InvalidParameterError(
            "interaction", "a translation-invariant interaction w(x − x') on a uniform grid", "another matrix"
        )
    dx = float(x[1] - x[0])
    separations = (np.arange(len(kernel)) - (len(x) - 1)) * dx
    return separations, kernel, np.gradient(kernel, dx)


def comotion_function(density, x):
    """The co-motion function f of two strictly correlated electrons (Seidl, PRA 60, 4387 (1999)).

    With N(x) the number of electrons left of x, the second electron sits at f(x), where
    N(f(x)) = N(x) ± 1: each electron's position fixes the other's.

    Args:
        density: n (N,), 1/bohr, integrating to 2 on the uniform grid x (N,), bohr.

    Returns:
        f (N,), bohr, piecewise linear in the cell-centred electron count.
    """
    _, jnp, _ = jax_modules()
    count, half = _electron_count(density, x[1] - x[0])
    return jnp.interp(jnp.where(count < half, count + half, count - half), count, jnp.asarray(x))


def _electron_count(density, dx):
    """The cell-centred number of electrons left of each point, (N,), and half the total.

    A floor of 1e-10 on n keeps the count strictly increasing (finite gradients where n = 0).
    """
    _, jnp, _ = jax_modules()
    filled = jnp.maximum(density, 0.0) + 1e-10
    count = dx * (jnp.cumsum(filled) - 0.5 * filled)
    return count, 0.5 * (count[-1] + 0.5 * dx * filled[-1])


def sce_potential(density, x, profile):
    """The strictly-correlated-electrons potential of two electrons, (N,), Ha.

    ∂ₓv_SCE(x) = w'(x − f(x)), the force of the partner at the co-motion position f(x)
    (Seidl, Gori-Giorgi and Savin, PRA 75, 042511 (2007)), integrated from the left edge x₀
    with the trapezoidal rule, and gauged by v_SCE(x₀) = w(x₀ − f(x₀)) so that it vanishes far
    from the density as in an unbounded system. v_SCE is the functional derivative of
    W_SCE[n] = ½∫n(x) w(x − f(x)) dx.

    Args:
        density: n (N,), integrating to 2; x: the uniform grid (N,), bohr;
        profile: (separations, w, w') from :func:`interaction_profile`.
    """
    _, jnp, _ = jax_modules()
    separations, potential, force = (jnp.asarray(part) for part in profile)
    dx = x[1] - x[0]
    distance = jnp.asarray(x) - comotion_function(density, x)
    slope = jnp.interp(distance, separations, force)
    integral = dx * (jnp.cumsum(slope) - 0.5 * slope - 0.5 * slope[0])
    return integral + jnp.interp(distance[0], separations, potential)


def sce_energy(density, x, profile, samples: int | None = None):
    """W_SCE[n] = ∫₀¹ w(X(s + 1) − X(s)) ds (Ha), the interaction energy of two strictly
    correlated electrons, with X = N⁻¹ the quantile function of the electron count
    (= ½∫n(x) w(x − f(x)) dx), by the midpoint rule on ``samples`` points of s (4N by default).
    """
    _, jnp, _ = jax_modules()
    separations, potential, _ = (jnp.asarray(part) for part in profile)
    count, half = _electron_count(density, x[1] - x[0])
    samples = samples or 4 * len(x)
    quantiles = half * (jnp.arange(samples) + 0.5) / samples
    left = jnp.interp(quantiles, count, jnp.asarray(x))
    right = jnp.interp(quantiles + half, count, jnp.asarray(x))
    return jnp.mean(jnp.interp(right - left, separations, potential)) * half


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
        dx, dt: the grid spacing and step the model was trained with (bohr, a.u.);
            the inputs are n, j and (n(t) − n(t − m dt))/(m dt).
    """

    memory: int = 4
    channels: int = 16
    depth: int = 3
    kernel: int = 9
    dx: float = 0.1
    dt: float = 0.05
    seed: int = 0

    def __post_init__(self):
        require(self.memory >= 1, "memory", "a positive integer", self.memory)
        require(self.depth >= 1, "depth", "a positive integer", self.depth)
        require(self.kernel >= 1 and self.kernel % 2 == 1, "kernel", "an odd positive integer", self.kernel)
        require(self.channels >= 1, "channels", "a positive integer", self.channels)


def build_density_net(config: DensityNetConfig):
    """An Equinox module window (memory, N) → v_c (N,).

    The convolutions are written as a stack of shifted copies times one matrix ("im2col"):
    on CPU this ran several times faster than XLA's convolution kernels for these narrow
    layers (see docs/tdks.md), and it is the same operation.
    """
    jax, jnp, eqx = jax_modules()
    half = config.kernel // 2

    def convolve(weight, bias, features):
        """'SAME' 1D convolution of features (C_in, N) with weight (kernel·C_in, C_out)."""
        points = features.shape[1]
        padded = jnp.pad(features, ((0, 0), (half, half)))
        patches = jnp.concatenate(
            [padded[:, shift : shift + points] for shift in range(config.kernel)], axis=0
        )
        return (patches.T @ weight + bias).T

    class DensityNet(eqx.Module):
        layers: list
        config: DensityNetConfig = eqx.field(static=True)

        def __init__(self, key):
            self.config = config
            keys = jax.random.split(key, config.depth)
            inputs = 1 if config.memory == 1 else config.memory + 1
            sizes = [inputs] + [config.channels] * config.depth
            self.layers = []
            for c_in, c_out, k in zip(sizes[:-1], sizes[1:], keys, strict=True):
                scale = 1.0 / np.sqrt(config.kernel * c_in)
                self.layers.append(
                    (scale * jax.random.normal(k, (config.kernel * c_in, c_out)), jnp.zeros(c_out))
                )
            # output layer starts at zero: training starts from v_c = 0 (exact exchange)
            self.layers.append((jnp.zeros((config.channels, 1)), jnp.zeros(1)))

        def features(self, window):
            present = window[-1]
            if config.memory == 1:
                return present[None]
            lags = jnp.arange(1, config.memory)
            rates = (present[None] - window[-1 - lags]) / (lags[:, None] * config.dt)
            # the current from continuity, j(x) = −∫_{−∞}^x ∂n/∂t dx': nonlocal in the density
            current = -jnp.cumsum(rates[0]) * config.dx
            return jnp.concatenate([present[None], current[None], rates], axis=0)

        def __call__(self, window):
            hidden = self.features(window)
            for weight, bias in self.layers[:-1]:
                hidden = jax.nn.softplus(convolve(weight, bias, hidden))
            weight, bias = self.layers[-1]
            return (hidden.T @ weight + bias)[:, 0]

    return DensityNet(jax.random.PRNGKey(config.seed))


def density_net_model(net):
    """The propagation-model form of a DensityNet: params is the network itself."""

    def model(params, window, k):
        return params(window)

    return net, model


def save_density_net(path: str | Path, net, extra: dict | None = None, extra_files=None) -> Path:
    """An artefact folder (kind ``tdks-density-net``): the network's config, ``extra`` (how it
    was trained) in the manifest, and ``weights.eqx``."""
    return save_module(path, "tdks-density-net", asdict(net.config), net, extra_files, **(extra or {}))


def load_density_net(path: str | Path):
    fields = DensityNetConfig.__dataclass_fields__
    config = DensityNetConfig(**read_module_config(path, ("tdks-density-net",), fields))
    return load_weights(path, build_density_net(config))


def parameter_count(params) -> int:
    jax, _, eqx = jax_modules()
    return int(
        sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(eqx.filter(params, eqx.is_inexact_array)))
    )
