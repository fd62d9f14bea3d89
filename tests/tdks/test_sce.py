"""The strictly-correlated-electrons (SCE) anchor: co-motion function, potential and energy."""

import jax  # noqa: F401  (a hard dependency: missing, it fails the suite)
import numpy as np
import pytest

from densitylab.errors import InvalidParameterError
from densitylab.jaxsetup import jax_modules
from densitylab.model1d import Interaction
from densitylab.tdks.models import sce_correlation
from densitylab.tdks.sce import comotion_function, interaction_profile, sce_energy, sce_potential

_, jnp, _ = jax_modules()  # 64-bit before any array is made


def _grid(points, half_width=20.0):
    return np.linspace(-half_width, half_width, points, endpoint=False)


def _gaussian(x, centre, width):
    """One electron: a normalised Gaussian (N,)."""
    density = np.exp(-((x - centre) ** 2) / (2 * width**2))
    return density / (density.sum() * (x[1] - x[0]))


def test_comotion_function_of_a_uniform_density_shifts_by_half_the_box():
    x = _grid(400)
    length = len(x) * (x[1] - x[0])
    density = np.full_like(x, 2.0 / length)
    partner = np.asarray(comotion_function(jnp.asarray(density), x))
    left = np.arange(len(x)) < len(x) // 2
    expected = np.where(left, x + 0.5 * length, x - 0.5 * length)
    np.testing.assert_allclose(partner, expected, atol=1e-6)


def test_separated_electrons_feel_only_each_other():
    """A narrow electron B far from a broad electron A: on A, v_SCE (= v_H/2 + v_c, the whole
    Hartree-exchange-correlation potential of the anchor) exerts the force of B alone, w * n_B,
    with no self-interaction; the mean-field v_H/2 of exact exchange does not.

    In SCE the partner of a point z widths from A's centre sits z widths from B's centre, so
    the two forces differ at first order in B's width: by about (w''/w')·σ_B·z = (2/14)·0.1·2
    ≈ 3% on A's core (|z| ≤ 2)."""
    x = _grid(1600)
    dx = x[1] - x[0]
    electron_a, electron_b = _gaussian(x, -8.0, 1.0), _gaussian(x, 6.0, 0.1)
    density = electron_a + electron_b
    w = Interaction("soft-coulomb").matrix(x)
    on_a = np.abs(x + 8.0) <= 2.0
    force_of_b = np.gradient(w @ electron_b * dx, dx)[on_a]

    v_sce = np.asarray(sce_potential(jnp.asarray(density), x, interaction_profile(w, x)))
    sce_error = np.abs(np.gradient(v_sce, dx)[on_a] - force_of_b).max() / np.abs(force_of_b).max()
    assert sce_error < 0.04
    mean_field = 0.5 * np.gradient(w @ density * dx, dx)[on_a]
    assert np.abs(mean_field - force_of_b).max() / np.abs(force_of_b).max() > 1.0

    # the anchor's v_c adds v_SCE on top of exact exchange (v_Hx = v_H/2)
    _, model = sce_correlation(w, x)
    v_c = np.asarray(model(None, jnp.asarray(density)[None], 0))
    np.testing.assert_allclose(v_c + 0.5 * w @ density * dx, v_sce, atol=1e-12)


def test_sce_potential_is_the_functional_derivative_of_the_sce_energy():
    """d/dε W_SCE[n + ε δn] (central differences of the energy) against ∫ v_SCE δn dx, on two
    grids: the potential is first order in dx at the median, where the co-motion function
    jumps, so the error must also halve with the spacing."""
    errors = []
    for points in (800, 1600):
        x = _grid(points)
        dx = x[1] - x[0]
        density = _gaussian(x, -3.0, 2.0) + _gaussian(x, 4.0, 1.5)
        change = _gaussian(x, -1.0, 1.0) - _gaussian(x, 2.0, 1.3)  # keeps ∫n = 2
        profile = interaction_profile(Interaction("soft-coulomb").matrix(x), x)
        step = 1e-3
        energies = [float(sce_energy(jnp.asarray(density + s * change), x, profile)) for s in (step, -step)]
        finite_difference = (energies[0] - energies[1]) / (2 * step)
        derivative = np.sum(np.asarray(sce_potential(jnp.asarray(density), x, profile)) * change) * dx
        errors.append(abs(derivative - finite_difference) / abs(finite_difference))
    assert errors[1] < 1e-2
    assert errors[1] < 0.6 * errors[0]


def test_sce_needs_a_translation_invariant_interaction():
    x = _grid(40)
    distorted = Interaction("soft-coulomb").matrix(x) * (1.0 + 0.1 * x[:, None] ** 2 / 400)
    with pytest.raises(InvalidParameterError, match="interaction"):
        sce_correlation(distorted, x)
