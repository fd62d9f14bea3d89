"""A volume-preserving normalising flow on ℝ³ for flow orbitals ψ_i(r) = Σ_μ C_μi φ_μ(f(r)).

f is a composition of additive coupling layers, each acting in its own fixed rotated frame:
y = R(r − c); y_a ← y_a + s·t(y_b/s, y_c/s) for one axis a (cycling x, y, z); r' = Rᵀy + c.
The rotation is orthogonal and the coupling's Jacobian is unit triangular, so |det ∂f/∂r| = 1
exactly: overlaps ∫φ_μ(f(r))φ_ν(f(r)) dr equal the analytic ones, and orbitals orthonormal in
the basis stay orthonormal. t is a small tanh MLP whose last layer starts at zero, so a new
flow is the identity. Lengths in bohr; ``centre`` is the molecule's centre, ``scale`` the
length over which t varies (its input is divided by it, its output multiplied by it).
"""

from __future__ import annotations

import numpy as np

from densitylab.errors import require
from densitylab.jaxsetup import jax_modules

_jax, _jnp, _eqx = jax_modules()


def _rotation(index: int) -> np.ndarray:
    """A fixed proper rotation per layer (reproducible, not trained)."""
    from scipy.spatial.transform import Rotation

    return Rotation.random(random_state=1000 + index).as_matrix()


class Coupling(_eqx.Module):
    """One additive coupling layer in a rotated frame (identity when ``mlp``'s output is 0)."""

    mlp: _eqx.nn.MLP
    rotation: tuple = _eqx.field(static=True)
    axis: int = _eqx.field(static=True)
    centre: tuple = _eqx.field(static=True)
    scale: float = _eqx.field(static=True)
    pins: tuple = _eqx.field(static=True, default=())
    pin_width: float = _eqx.field(static=True, default=0.5)

    def __call__(self, points):
        jnp = _jnp
        rotation = jnp.asarray(np.array(self.rotation))
        frame = (points - jnp.asarray(self.centre)) @ rotation.T
        others = [axis for axis in range(3) if axis != self.axis]
        shift = _jax.vmap(self.mlp)(frame[:, others] / self.scale)[:, 0] * self.scale
        if self.pins:
            # zero, with zero slope, on the line through each pinned nucleus along the moved
            # axis: nuclei stay put and the flow's Jacobian there is the identity (core
            # orbitals are not distorted to first order); a function of the other two
            # coordinates only, so the layer stays unit triangular
            pins = (jnp.asarray(np.array(self.pins)) - jnp.asarray(self.centre)) @ rotation.T
            distance2 = jnp.sum((frame[:, None, others] - pins[None, :, others]) ** 2, axis=-1)
            shift = shift * jnp.prod(1.0 - jnp.exp(-distance2 / self.pin_width**2), axis=1)
        frame = frame.at[:, self.axis].add(shift)
        return frame @ rotation + jnp.asarray(self.centre)


class VolumePreservingFlow(_eqx.Module):
    """f: ℝ³ → ℝ³, (npoints, 3) → (npoints, 3), volume preserving, the identity when made."""

    layers: tuple

    def __call__(self, points):
        for layer in self.layers:
            points = layer(points)
        return points


def make_flow(
    centre,
    layers: int = 6,
    width: int = 16,
    depth: int = 2,
    scale: float = 2.0,
    seed: int = 0,
    pins=None,
    pin_width: float = 0.5,
):
    """A new flow (the identity) of ``layers`` couplings with ``width``×``depth`` tanh MLPs;
    ``pins`` (natom, 3) bohr: nuclei the flow leaves fixed, with an identity Jacobian, within
    about ``pin_width`` bohr (None: no pins)."""
    require(isinstance(layers, int) and layers >= 1, "flow_layers", "a positive integer", layers)
    require(isinstance(width, int) and width >= 1, "flow_width", "a positive integer", width)
    require(scale > 0 and np.isfinite(scale), "flow_scale", "a positive length (bohr)", scale)
    keys = _jax.random.split(_jax.random.PRNGKey(seed), layers)
    centre = tuple(float(x) for x in np.asarray(centre, dtype=float))
    built = []
    for index in range(layers):
        mlp = _eqx.nn.MLP(2, 1, width, depth, activation=_jnp.tanh, key=keys[index], dtype=_jnp.float64)
        last = mlp.layers[-1]
        mlp = _eqx.tree_at(
            lambda m: (m.layers[-1].weight, m.layers[-1].bias),
            mlp,
            (_jnp.zeros_like(last.weight), _jnp.zeros_like(last.bias)),
        )
        rotation = tuple(tuple(float(v) for v in row) for row in _rotation(index))
        pinned = (
            ()
            if pins is None
            else tuple(tuple(float(v) for v in row) for row in np.asarray(pins, dtype=float))
        )
        built.append(
            Coupling(
                mlp=mlp,
                rotation=rotation,
                axis=index % 3,
                centre=centre,
                scale=float(scale),
                pins=pinned,
                pin_width=float(pin_width),
            )
        )
    return VolumePreservingFlow(layers=tuple(built))


def jacobian_determinants(flow: VolumePreservingFlow, points):
    """det ∂f/∂r at each of ``points`` (npoints, 3) (all 1 up to rounding)."""
    jacobian = _jax.vmap(_jax.jacfwd(lambda p: flow(p[None, :])[0]))(points)
    return _jnp.linalg.det(jacobian)
