import numpy as np
import pytest

from densitylab.errors import InvalidParameterError
from densitylab.model1d import make_system, resolve_potential
from densitylab.model1d.potentials import random_fourier

X = np.linspace(-5, 5, 21)


def test_expression_matches_numpy():
    values = resolve_potential("0.5*0.25**2*x**2 - exp(-(x-1)**2)", X)
    np.testing.assert_allclose(values, 0.5 * 0.25**2 * X**2 - np.exp(-((X - 1) ** 2)))


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('true')",
        "x.__class__",
        "open('f')",
        "y*2",
        "[x]",
        "lambda: 1",
        "x if x else 1",
        "nan*x",
    ],
)
def test_forbidden_expressions_are_rejected_naming_the_parameter(expression):
    with pytest.raises(InvalidParameterError) as info:
        resolve_potential(expression, X)
    assert str(info.value).startswith("potential")


def test_nan_and_wrong_shape_arrays_are_rejected():
    with pytest.raises(InvalidParameterError, match="finite"):
        resolve_potential(np.full(21, np.nan), X)
    with pytest.raises(InvalidParameterError, match="shape"):
        resolve_potential(np.zeros(5), X)
    with pytest.raises(InvalidParameterError, match="finite"):
        resolve_potential("log(x)", X)


def test_builtins_and_their_arguments():
    np.testing.assert_allclose(resolve_potential("harmonic:omega=2", X), 2.0 * X**2)
    np.testing.assert_allclose(resolve_potential("atom:charge=2", X), -2 / (np.abs(X) + 1))
    well = resolve_potential("double-well:barrier=1,separation=4", X)
    assert well[np.argmin(np.abs(X - 2))] == pytest.approx(0, abs=1e-12)
    assert well[np.argmin(np.abs(X))] == pytest.approx(1)
    with pytest.raises(InvalidParameterError, match="potential"):
        resolve_potential("harmonic:frequency=2", X)


def test_random_family_is_seeded_and_bounded():
    first = resolve_potential("random:seed=7", X)
    np.testing.assert_array_equal(first, random_fourier(X, seed=7))
    assert not np.allclose(first, resolve_potential("random:seed=8", X))
    # |F Σ (a cos + b sin)| ≤ F·6·(2L/3) = 6
    assert np.max(np.abs(first - 1e-11 * X**10)) <= 6.0


@pytest.mark.parametrize(
    "kwargs, parameter",
    [
        ({"electrons": "uxd"}, "electrons"),
        ({"electrons": ""}, "electrons"),
        ({"interaction": "yukawa"}, "interaction"),
    ],
)
def test_bad_system_inputs_name_the_parameter(kwargs, parameter):
    arguments = {"points": 20, "x_min": -5, "x_max": 5, "electrons": "ud", "potential": "harmonic"} | kwargs
    with pytest.raises(InvalidParameterError) as info:
        make_system(**arguments)
    assert str(info.value).startswith(parameter)
