"""Exceptions shared by every workflow.

Bad input raises :class:`InvalidParameterError`, whose message always names the parameter,
says what was expected and what was given, so that a user never has to read a traceback from
deep inside NumPy or SciPy.
"""

from __future__ import annotations


class DensitylabError(Exception):
    """Base class of densitylab's own errors."""


class InvalidParameterError(DensitylabError, ValueError):
    """A user-supplied parameter is out of range or malformed.

    Args:
        parameter: the name the user knows the parameter by (API argument or CLI option).
        expected: what would have been accepted.
        got: the offending value (shown with ``repr``), optional.
    """

    def __init__(self, parameter: str, expected: str, got: object = ...):
        self.parameter = parameter
        self.expected = expected
        message = f"{parameter}: expected {' '.join(str(expected).split())}"  # one line
        if got is not ...:
            shown = repr(got)
            if len(shown) > 120:
                shown = shown[:117] + "..."
            message += f", got {shown}"
        super().__init__(message)


class NumericalError(DensitylabError, ArithmeticError):
    """A computation produced NaN or ±inf from finite inputs; it is stopped, not carried on."""


class SCFConvergenceError(DensitylabError, RuntimeError):
    """A self-consistent-field loop did not converge.

    Attributes:
        residual: the final commutator/density residual (a.u.).
        iterations: the number of iterations run.
    """

    def __init__(self, method: str, residual: float, iterations: int, tolerance: float):
        self.residual = residual
        self.iterations = iterations
        self.tolerance = tolerance
        super().__init__(
            f"{method} SCF did not converge in {iterations} iterations: residual {residual:.3e} "
            f"> tolerance {tolerance:.1e}. Try more iterations (max_iterations), a smaller "
            f"mixing, or a symmetry-breaking start."
        )


def require(condition: bool, parameter: str, expected: str, got: object = ...) -> None:
    """Raise :class:`InvalidParameterError` unless ``condition`` holds."""
    if not condition:
        raise InvalidParameterError(parameter, expected, got)


def require_finite(**values: object) -> None:
    """Raise :class:`InvalidParameterError` naming the first of ``values`` (name=number, or a
    sequence of numbers) that is not a finite real number."""
    import math

    for name, value in values.items():
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            try:
                finite = math.isfinite(item)
            except TypeError:
                finite = False
            if not finite:
                raise InvalidParameterError(name, "a finite number", item)
