"""Inputs of the learned v_c functionals, computed from the window of KS densities.

A window (memory, N) holds n at steps k − memory + 1 … k on a uniform grid of spacing dx
(bohr), step dt (a.u.). The inputs, each a row (or rows) of a (C, N) array:

* ``density``: n(x, t), 1/bohr.
* ``current``: j(x) = −∫_{−∞}^x ∂n/∂t dx' by continuity, with ∂n/∂t the last backward
  difference (needs memory ≥ 2).
* ``history``: the past densities n(t − m dt), m = 1 … memory − 1, as they are.
* ``rates``: (n(t) − n(t − m dt))/(m dt) for m = 1 … memory − 1 (the density's history as
  time derivatives).
* ``velocity``: u = j n/(n² + ε²), ε = 1e-3 bohr⁻¹: the KS orbital's phase gradient j/n
  where the density is not negligible (for one doubly occupied orbital u = ∂ₓθ, so u with
  n carries the orbital up to a global phase: the paper's "orbital at the current and
  previous steps").
* ``sce``: v_SCE[n] − ½v_H[n], the strictly-correlated-electrons correlation potential (Ha).
* ``partner``: n and u at the co-motion position f(x) of the SCE construction (two rows):
  where the other electron is when one is at x.
* ``charge``: Q(x) = ∫_{−∞}^x n dx', the number of electrons left of x, at every step of the
  window (memory rows, present first). Non-local: between two separated electrons Q ≈ 1 over
  the whole gap, which is where the exact v_c of separating electrons has its steps (an
  integer count on either side). A local network of Q can make a plateau as wide as the gap,
  which one of n alone cannot.

``sce`` and ``partner`` count electrons with a floor of 1e-4 bohr⁻¹ added to n (the SCE
anchor uses 1e-10): across a gap in the density f(x) jumps, and its derivative with respect to
n grows as 1/floor; a gradient through the propagation needs it bounded. Counted from the left
wall (the original networks), the floor makes both depend on the box's length; ``wall_free``
networks count it from the density's centre.

All are translation-covariant (x enters only through differences), so a model built on them
works on any box with the same dx.
"""

from __future__ import annotations

import numpy as np

from densitylab.errors import require
from densitylab.jaxsetup import jax_modules

FEATURES = ("density", "history", "current", "rates", "velocity", "sce", "partner", "charge")
VELOCITY_FLOOR = 1e-3
COUNT_FLOOR = 1e-4


def feature_count(inputs: tuple[str, ...], memory: int) -> int:
    """Rows of the (C, N) feature array."""
    sizes = {"density": 1, "history": memory - 1, "current": 1, "rates": memory - 1, "velocity": 1}
    sizes.update(sce=1, partner=2, charge=memory)
    return sum(sizes[name] for name in inputs)


def check_inputs(inputs: tuple[str, ...], memory: int) -> None:
    """Refuse unknown, repeated or history-dependent inputs without history."""
    for name in inputs:
        require(name in FEATURES, "inputs", f"names from {FEATURES}", name)
    require(len(set(inputs)) == len(inputs) and inputs, "inputs", "distinct names, at least one", inputs)
    needs_history = {"history", "current", "rates", "velocity", "partner"} & set(inputs)
    require(
        memory >= 2 or not needs_history,
        "memory",
        f"at least 2 for the inputs {sorted(needs_history)}",
        memory,
    )


def sce_parts(points: int, dx: float, interaction: str) -> tuple:
    """(profile, interaction matrix), NumPy, for :func:`window_features` on ``points`` points of
    spacing dx (built once per grid, outside any JAX trace)."""
    from densitylab.model1d.system import parse_interaction
    from densitylab.tdks.sce import interaction_profile

    x = dx * np.arange(points)
    matrix = parse_interaction(interaction).matrix(x)
    return interaction_profile(matrix, x), matrix


def window_features(
    window, inputs: tuple[str, ...], dx: float, dt: float, parts=None, wall_free: bool = False
):
    """The (C, N) inputs of ``window`` (memory, N), in the order of ``inputs``.

    ``parts`` is :func:`sce_parts` for the window's length (needed for ``sce`` and ``partner``).
    ``wall_free``: ``sce`` and ``partner`` count electrons from the density's centre, not from
    the left wall (:func:`densitylab.tdks.sce._electron_count`), so that they do not depend on
    where the walls are while the density is far from them.
    """
    _, jnp, _ = jax_modules()
    from densitylab.tdks.propagation import hartree_operator
    from densitylab.tdks.sce import comotion_function, sce_potential

    memory, points = window.shape
    density = window[-1]
    rows = []
    rate = (density - window[-2]) / dt if memory > 1 else None
    current = -jnp.cumsum(rate) * dx if memory > 1 else None
    velocity = current * density / (density**2 + VELOCITY_FLOOR**2) if memory > 1 else None
    x = dx * jnp.arange(points)
    for name in inputs:
        if name == "density":
            rows.append(density[None])
        elif name == "history":
            rows.append(window[-2::-1])
        elif name == "current":
            rows.append(current[None])
        elif name == "rates":
            lags = jnp.arange(1, memory)
            rows.append((density[None] - window[-1 - lags]) / (lags[:, None] * dt))
        elif name == "velocity":
            rows.append(velocity[None])
        elif name == "charge":
            rows.append(jnp.cumsum(window[::-1], axis=1) * dx)
        elif name == "sce":
            profile, matrix = parts
            hartree = hartree_operator(matrix, dx)
            rows.append(
                (sce_potential(density, x, profile, COUNT_FLOOR, wall_free) - 0.5 * hartree(density))[None]
            )
        else:  # partner
            partner = comotion_function(density, x, COUNT_FLOOR, wall_free)
            rows.append(jnp.stack([jnp.interp(partner, x, density), jnp.interp(partner, x, velocity)]))
    return jnp.concatenate(rows, axis=0)


def gate_statistics(features: np.ndarray, weights: np.ndarray, quantile: float = 0.999) -> dict:
    """Where the training inputs lie, for the out-of-distribution gate.

    Args:
        features: scaled inputs of training points, (P, C); weights: (P,), e.g. the density.
        quantile: the weighted quantile of the Mahalanobis distance taken as the threshold.

    Returns:
        ``gate_center`` (C,), ``gate_whitening`` (C, C) (the inverse Cholesky factor of the
        weighted covariance, regularised by 1e-6 of its trace) and ``gate_threshold``.
    """
    weights = np.asarray(weights, dtype=float) / np.sum(weights)
    center = weights @ features
    centred = features - center
    covariance = (centred * weights[:, None]).T @ centred
    covariance += (1e-6 * np.trace(covariance) / len(center) + 1e-300) * np.eye(len(center))
    whitening = np.linalg.inv(np.linalg.cholesky(covariance))
    distance = np.linalg.norm(centred @ whitening.T, axis=1)
    order = np.argsort(distance)
    position = min(int(np.searchsorted(np.cumsum(weights[order]), quantile)), len(order) - 1)
    threshold = distance[order][position]
    return {
        "gate_center": tuple(float(v) for v in center),
        "gate_whitening": tuple(tuple(float(v) for v in row) for row in whitening),
        "gate_threshold": float(threshold),
    }


def gate(features, center, whitening, threshold: float):
    """1 where the scaled inputs (C, N) lie within ``threshold`` of the training inputs
    (Mahalanobis distance), falling as exp(−((d − threshold)/(threshold/4))²) beyond: outside
    its training distribution the functional hands back to exact exchange (v_c → 0)."""
    _, jnp, _ = jax_modules()
    whitened = jnp.asarray(whitening) @ (features - jnp.asarray(center)[:, None])
    distance = jnp.sqrt(jnp.sum(whitened**2, axis=0) + 1e-30)
    excess = jnp.maximum(distance - threshold, 0.0) / (0.25 * threshold)
    return jnp.exp(-(excess**2))


def window_gate(features, density, center, whitening, threshold: float, occupied: float = 1e-3):
    """The whole window's gate (N,): at every point the smallest value of the pointwise
    :func:`gate` over the points where ``density`` (N,) exceeds ``occupied`` (bohr⁻¹). A
    functional whose own state has left its training inputs anywhere hands back to exact
    exchange everywhere; the pointwise gate switches v_c off only there, and the hole it leaves
    is a step in v_c the KS dynamics sees."""
    _, jnp, _ = jax_modules()
    pointwise = gate(features, center, whitening, threshold)
    return jnp.full_like(pointwise, jnp.min(jnp.where(density > occupied, pointwise, 1.0)))
