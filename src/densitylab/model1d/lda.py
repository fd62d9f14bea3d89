"""The 1D local density approximation of Entwistle et al. (PRB 94, 205134 (2016); PRB 97,
125151 (2018)), fitted to the fully spin-polarised homogeneous electron gas with the softened
interaction 1/(|x−x'|+1). These are the coefficients iDEA 1.1 uses.

Spin handling. iDEA evaluates the polarised fit on the total density whatever the spins
(iDEA issue #47). Here exchange obeys the exact spin-scaling relation
E_x[n↑, n↓] = E_x^pol[n↑] + E_x^pol[n↓], so a ``"ud"`` singlet sees the exchange of two
half-density polarised gases, and a ``"uu"`` system sees exactly iDEA's functional. No fit of
the unpolarised gas exists for this interaction, so correlation stays the polarised fit of the
total density; that approximation is documented in docs/model1d.md. ``spin_scaling=False``
reproduces iDEA exactly, for comparison.
"""

from __future__ import annotations

import numpy as np

EXCHANGE = {"a": -1.1511, "b": 3.3440, "c": -9.7079, "d": 19.088, "e": -20.896, "f": 9.4861, "g": 0.73586}
CORRELATION = {
    "a": 0.0009415195,
    "b": 0.2601,
    "c": 0.06404,
    "d": 0.000248,
    "e": 0.00000261,
    "f": 1.254,
    "g": 28.8,
}

_TINY = 1e-30


def exchange_energy_density(density: np.ndarray) -> np.ndarray:
    """ε_x^pol(n) per electron (Ha) of the polarised gas, shape as ``density``."""
    p = EXCHANGE
    n = np.maximum(density, 0.0)
    polynomial = p["a"] + n * (p["b"] + n * (p["c"] + n * (p["d"] + n * (p["e"] + n * p["f"]))))
    return polynomial * n ** p["g"]


def exchange_potential(density: np.ndarray) -> np.ndarray:
    """v_x^pol = d(n ε_x^pol)/dn (Ha)."""
    p = EXCHANGE
    n = np.maximum(density, 0.0)
    g = p["g"]
    coefficients = [(g + 1 + k) * p[name] for k, name in enumerate("abcdef")]
    polynomial = sum(c * n**k for k, c in enumerate(coefficients))
    return polynomial * n**g


def _correlation_parts(density: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    q = CORRELATION
    n = np.maximum(density, _TINY)
    rs = 0.5 / n
    numerator = q["a"] * rs + q["e"] * rs**2
    denominator = 1.0 + q["b"] * rs + q["c"] * rs**2 + q["d"] * rs**3
    log_argument = 1.0 + q["f"] * rs + q["g"] * rs**2
    epsilon = -numerator / denominator * np.log(log_argument) / q["f"]
    d_numerator = q["a"] + 2.0 * q["e"] * rs
    d_denominator = q["b"] + 2.0 * q["c"] * rs + 3.0 * q["d"] * rs**2
    d_log = (q["f"] + 2.0 * q["g"] * rs) / log_argument
    d_epsilon = (
        -(d_numerator * np.log(log_argument) + numerator * d_log) / denominator
        + numerator * np.log(log_argument) * d_denominator / denominator**2
    ) / q["f"]
    return rs, epsilon, d_epsilon


def correlation_energy_density(density: np.ndarray) -> np.ndarray:
    """ε_c(n) per electron (Ha), zero where n = 0."""
    _, epsilon, _ = _correlation_parts(density)
    return np.where(density > _TINY, epsilon, 0.0)


def correlation_potential(density: np.ndarray) -> np.ndarray:
    """v_c = ε_c − r_s dε_c/dr_s (Ha), zero where n = 0."""
    rs, epsilon, d_epsilon = _correlation_parts(density)
    return np.where(density > _TINY, epsilon - rs * d_epsilon, 0.0)


def lda_energy(
    density_up: np.ndarray, density_down: np.ndarray, dx: float, spin_scaling: bool = True
) -> tuple[float, float]:
    """(E_x, E_c) in Ha for spin densities on a grid with spacing ``dx``."""
    density = density_up + density_down
    if spin_scaling:
        exchange = np.sum(
            density_up * exchange_energy_density(density_up)
            + density_down * exchange_energy_density(density_down)
        )
    else:
        exchange = np.sum(density * exchange_energy_density(density))
    correlation = np.sum(density * correlation_energy_density(density))
    return float(exchange * dx), float(correlation * dx)


def lda_potentials(
    density_up: np.ndarray, density_down: np.ndarray, spin_scaling: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(v_xc↑, v_xc↓) in Ha, the functional derivatives of :func:`lda_energy`."""
    density = density_up + density_down
    v_c = correlation_potential(density)
    if spin_scaling:
        return exchange_potential(density_up) + v_c, exchange_potential(density_down) + v_c
    v_xc = exchange_potential(density) + v_c
    return v_xc, v_xc
