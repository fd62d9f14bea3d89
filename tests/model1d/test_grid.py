from fractions import Fraction

import numpy as np
import pytest

from densitylab.errors import InvalidParameterError
from densitylab.model1d import Grid, second_derivative_weights
from densitylab.model1d.exact import solve_exact
from densitylab.model1d.system import System


def test_thirteen_point_weights_match_published_coefficients():
    published = [
        Fraction(-1, 16632),
        Fraction(2, 1925),
        Fraction(-1, 112),
        Fraction(10, 189),
        Fraction(-15, 56),
        Fraction(12, 7),
        Fraction(-5369, 1800),
    ]
    weights = second_derivative_weights(13)
    assert list(weights[:7]) == published
    assert list(weights[6:]) == published[::-1]


@pytest.mark.parametrize("stencil", [3, 5, 7, 9, 11, 13])
def test_stencil_is_exact_on_polynomials_up_to_its_order(stencil):
    grid = Grid(points=41, x_min=-1.0, x_max=1.0, stencil=stencil)
    half = stencil // 2
    interior = slice(half, -half)
    for degree in range(stencil):
        values = grid.x**degree
        exact = degree * (degree - 1) * grid.x ** max(degree - 2, 0) if degree >= 2 else 0 * grid.x
        np.testing.assert_allclose(
            grid.second_derivative(values)[interior], exact[interior], atol=1e-7 * max(1, degree**2)
        )


def _oscillator_levels(points: int, stencil: int, omega: float = 1.0, box: float = 9.0, levels: int = 3):
    grid = Grid(points=points, x_min=-box, x_max=box, stencil=stencil)
    hamiltonian = grid.kinetic_dense() + np.diag(0.5 * omega**2 * grid.x**2)
    return np.linalg.eigvalsh(hamiltonian)[:levels], grid.dx


@pytest.mark.parametrize("stencil, order", [(3, 2), (5, 4), (7, 6)])
def test_harmonic_oscillator_converges_at_stencil_order(stencil, order):
    analytic = np.arange(3) + 0.5
    coarse, dx_coarse = _oscillator_levels(61, stencil)
    fine, dx_fine = _oscillator_levels(121, stencil)
    error_coarse = np.max(np.abs(coarse - analytic))
    error_fine = np.max(np.abs(fine - analytic))
    observed = np.log(error_coarse / error_fine) / np.log(dx_coarse / dx_fine)
    assert observed == pytest.approx(order, abs=0.35)


def test_thirteen_point_oscillator_reaches_analytic_levels():
    levels, _ = _oscillator_levels(301, 13, omega=0.25, box=20.0, levels=5)
    np.testing.assert_allclose(levels, 0.25 * (np.arange(5) + 0.5), atol=1e-9)


def test_non_interacting_two_electrons_in_oscillator_are_analytic():
    grid = Grid(points=201, x_min=-10, x_max=10)
    system = System(grid=grid, v_ext=0.5 * grid.x**2, electrons="uu", interaction=_none())
    assert solve_exact(system).ground.energy == pytest.approx(0.5 + 1.5, abs=1e-8)


def _none():
    from densitylab.model1d import Interaction

    return Interaction(kind="none")


@pytest.mark.parametrize(
    "kwargs, parameter",
    [
        ({"points": 5, "x_min": -1, "x_max": 1}, "points"),
        ({"points": 20, "x_min": -1, "x_max": 1, "stencil": 4}, "stencil"),
        ({"points": 20, "x_min": 1, "x_max": -1}, "x_max"),
        ({"points": 20.5, "x_min": -1, "x_max": 1}, "points"),
    ],
)
def test_bad_grids_name_the_parameter(kwargs, parameter):
    with pytest.raises(InvalidParameterError) as info:
        Grid(**kwargs)
    assert str(info.value).startswith(parameter)


@pytest.mark.parametrize("stencil", [3, 5, 13])
def test_periodic_operator_has_the_analytic_plane_wave_spectrum(stencil):
    """On a ring, e^{ikx} diagonalise any stencil: eigenvalues Σ_m w_m cos(k m dx)."""
    grid = Grid(24, -3.0, 3.0 - 6.0 / 24, stencil, boundary="periodic")
    dense = grid.kinetic_sparse().toarray()
    np.testing.assert_allclose(dense, dense.T, atol=0)
    np.testing.assert_allclose(dense.sum(axis=1), 0.0, atol=1e-9)  # a constant has no kinetic energy
    k = 2 * np.pi * np.fft.fftfreq(grid.points, grid.dx)
    pairs = zip(grid.kinetic_offsets, grid.kinetic_weights, strict=True)
    analytic = sum(w * np.cos(k * m * grid.dx) for m, w in pairs)
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(dense)), np.sort(analytic), atol=1e-9)
    np.testing.assert_allclose(np.sort(grid.kinetic_eigenvalues()), np.sort(analytic), atol=1e-9)


def test_hard_wall_three_point_operator_has_the_sine_spectrum():
    """Particle in a box on a lattice: (1 − cos(πk/(N+1)))/dx², k = 1…N."""
    grid = Grid(30, -2.0, 2.0, 3)
    k = np.arange(1, 31)
    analytic = (1 - np.cos(np.pi * k / 31)) / grid.dx**2
    np.testing.assert_allclose(np.linalg.eigvalsh(grid.kinetic_dense()), np.sort(analytic), rtol=1e-12)
    np.testing.assert_allclose(grid.kinetic_eigenvalues(), analytic, rtol=1e-12)
    with pytest.raises(InvalidParameterError, match="boundary"):
        Grid(30, -2.0, 2.0, 5).kinetic_eigenvalues()  # no sine transform for wide hard-wall stencils


def test_boundary_is_validated_and_the_solvers_refuse_a_ring():
    from densitylab.model1d import System, solve_exact
    from densitylab.model1d.meanfield import solve_mean_field

    with pytest.raises(InvalidParameterError, match="boundary"):
        Grid(10, 0.0, 1.0, 3, boundary="absorbing")
    ring = Grid(20, -5.0, 5.0, 3, boundary="periodic")
    system = System(ring, np.zeros(20), "ud")
    with pytest.raises(InvalidParameterError, match="boundary"):
        solve_exact(system)
    with pytest.raises(InvalidParameterError, match="boundary"):
        solve_mean_field(system, "hartree-fock")


def test_the_ks_problem_takes_its_stencil_from_the_grid():
    from densitylab.tdks.propagation import KSProblem

    x = np.linspace(-4.0, 4.0, 17)
    problem = KSProblem(x, np.zeros((3, 17)), np.zeros((17, 17)), np.ones(17, complex) / np.sqrt(8.5), 0.1)
    assert problem.grid.boundary == "hard-wall" and problem.grid.stencil == 3
    np.testing.assert_allclose(
        problem.grid.kinetic_weights, [-0.5 / 0.25, 1.0 / 0.25, -0.5 / 0.25], rtol=1e-14
    )
