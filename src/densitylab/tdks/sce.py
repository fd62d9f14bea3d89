"""Two strictly correlated electrons in 1D: the co-motion function, the SCE potential and
energy, and the interaction profile they are built on (used by the SCE anchor of
:mod:`densitylab.tdks.models` and by the inputs of :mod:`densitylab.tdks.features`)."""

from __future__ import annotations

import numpy as np

from densitylab.errors import InvalidParameterError
from densitylab.jaxsetup import jax_modules


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


def comotion_function(density, x, floor: float = 1e-10, centred: bool = False):
    """The co-motion function f of two strictly correlated electrons (Seidl, PRA 60, 4387 (1999)).

    With N(x) the number of electrons left of x, the second electron sits at f(x), where
    N(f(x)) = N(x) ± 1: each electron's position fixes the other's.

    Args:
        density: n (N,), 1/bohr, integrating to 2 on the uniform grid x (N,), bohr.
        floor, centred: the count's floor and where it is measured from
            (:func:`_electron_count`).

    Returns:
        f (N,), bohr, piecewise linear in the cell-centred electron count.
    """
    _, jnp, _ = jax_modules()
    count, half = _electron_count(density, x[1] - x[0], floor, centred)
    return jnp.interp(jnp.where(count < half, count + half, count - half), count, jnp.asarray(x))


def _electron_count(density, dx, floor: float = 1e-10, centred: bool = False):
    """The cell-centred number of electrons left of each point, (N,), and the partner's share.

    A ``floor`` added to n keeps the count strictly increasing (finite gradients where n = 0);
    the derivatives of f grow as 1/floor across a gap in the density. The floor adds
    floor·(x − x₀) to the count. By default x₀ is the left wall and the share is half the
    floored total, so f depends on where the walls are by floor × the box's length (a shift
    of f across a gap of the density, where n is below the floor). With ``centred`` x₀ is
    the density's centre ⟨x⟩ and the share is half the density's charge: the count is
    N(x) + floor·(x − ⟨x⟩), the same on any box that holds the density.
    """
    _, jnp, _ = jax_modules()
    positive = jnp.maximum(density, 0.0)
    filled = positive + floor
    count = dx * (jnp.cumsum(filled) - 0.5 * filled)
    if not centred:
        return count, 0.5 * (count[-1] + 0.5 * dx * filled[-1])
    charge = jnp.sum(positive)
    centre = jnp.sum(positive * jnp.arange(density.shape[0])) / charge  # in grid points
    return count - floor * dx * (centre + 0.5), 0.5 * dx * charge


def sce_potential(density, x, profile, floor: float = 1e-10, centred: bool = False):
    """The strictly-correlated-electrons potential of two electrons, (N,), Ha.

    ∂ₓv_SCE(x) = w'(x − f(x)), the force of the partner at the co-motion position f(x)
    (Seidl, Gori-Giorgi and Savin, PRA 75, 042511 (2007)), integrated from the left edge x₀
    with the trapezoidal rule, and gauged by v_SCE(x₀) = w(x₀ − f(x₀)) so that it vanishes far
    from the density as in an unbounded system (with ``centred``, by ∫n (v_SCE − w(x − f(x)))
    dx = 0, the same on any box that holds the density). v_SCE is the functional derivative of
    W_SCE[n] = ½∫n(x) w(x − f(x)) dx.

    Args:
        density: n (N,), integrating to 2; x: the uniform grid (N,), bohr;
        profile: (separations, w, w') from :func:`interaction_profile`.
        floor, centred: the electron count's (:func:`_electron_count`).
    """
    _, jnp, _ = jax_modules()
    separations, potential, force = (jnp.asarray(part) for part in profile)
    dx = x[1] - x[0]
    distance = jnp.asarray(x) - comotion_function(density, x, floor, centred)
    slope = jnp.interp(distance, separations, force)
    integral = dx * (jnp.cumsum(slope) - 0.5 * slope - 0.5 * slope[0])
    if not centred:
        return integral + jnp.interp(distance[0], separations, potential)
    # the same intent, gauged where the density is: ∫n (v_SCE − w(x − f(x))) dx = 0
    weights = jnp.maximum(density, 0.0)
    partner_potential = jnp.interp(distance, separations, potential)
    return integral - jnp.sum(weights * (integral - partner_potential)) / jnp.sum(weights)


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
