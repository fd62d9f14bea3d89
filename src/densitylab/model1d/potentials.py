"""External potentials: arrays, safe math expressions in x, and named built-ins.

Expressions are parsed with :mod:`ast` and evaluated by walking a whitelisted tree: only
numbers, the variable ``x``, the constants ``pi`` and ``e``, arithmetic operators and a fixed
set of NumPy functions are allowed. Nothing is ever passed to ``eval``.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from pathlib import Path

import numpy as np

from densitylab.errors import InvalidParameterError, require

_FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "exp": np.exp,
    "log": np.log,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "tanh": np.tanh,
    "arctan": np.arctan,
    "erf": None,  # filled lazily from scipy.special
    "sign": np.sign,
    "heaviside": lambda values: np.heaviside(values, 0.5),
    "minimum": np.minimum,
    "maximum": np.maximum,
}
_CONSTANTS = {"pi": np.pi, "e": np.e}
_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.Mod: operator.mod,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def _evaluate(node: ast.AST, x: np.ndarray, source: str) -> np.ndarray | float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, x, source)
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return np.float64(node.value)  # NumPy scalars: 1/0 and 10**10**10 give inf, refused below
    if isinstance(node, ast.Name):
        if node.id == "x":
            return x
        if node.id in _CONSTANTS:
            return np.float64(_CONSTANTS[node.id])
        raise InvalidParameterError(
            "potential",
            f"an expression in x using only {sorted(_FUNCTIONS)} and constants {sorted(_CONSTANTS)}; "
            f"the name {node.id!r} is not allowed",
            source,
        )
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_evaluate(node.left, x, source), _evaluate(node.right, x, source))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand, x, source))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
    ):
        function = _FUNCTIONS[node.func.id]
        if function is None:
            from scipy.special import erf

            function = erf
        return function(*(_evaluate(arg, x, source) for arg in node.args))
    if isinstance(node, ast.Call):
        called = node.func.id if isinstance(node.func, ast.Name) else type(node.func).__name__
        raise InvalidParameterError(
            "potential", f"only the functions {sorted(_FUNCTIONS)}; {called!r} is not allowed", source
        )
    raise InvalidParameterError(
        "potential",
        "an arithmetic expression in x (numbers, x, + - * / ** %, and whitelisted functions); "
        f"{type(node).__name__} is not allowed",
        source,
    )


def evaluate_expression(expression: str, x: np.ndarray) -> np.ndarray:
    """Evaluate a math expression in ``x`` safely. Returns an array of shape ``x.shape`` (Ha)."""
    require(isinstance(expression, str) and expression.strip() != "", "potential", "a non-empty expression")
    require(len(expression) <= 2000, "potential", "an expression of at most 2000 characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise InvalidParameterError("potential", f"a valid math expression ({exc.msg})", expression) from None
    with np.errstate(all="ignore"):
        try:
            values = _evaluate(tree, np.asarray(x, dtype=float), expression)
        except (TypeError, ValueError, OverflowError, ZeroDivisionError) as exc:  # wrong arity, …
            raise InvalidParameterError(
                "potential", f"a valid math expression in x ({exc})", expression
            ) from None
    return np.broadcast_to(np.asarray(values, dtype=float), np.shape(x)).copy()


# --------------------------------------------------------------------------- built-ins


def harmonic(x: np.ndarray, omega: float = 0.25, center: float = 0.0) -> np.ndarray:
    """½ ω² (x − x0)², Ha. ω = 0.25 matches iDEA's ``systems.qho``."""
    return 0.5 * omega**2 * (x - center) ** 2


def softened_atom(
    x: np.ndarray, charge: float = 1.0, softening: float = 1.0, center: float = 0.0
) -> np.ndarray:
    """−Z / (|x − x0| + a), the softened nucleus matching the default interaction, Ha."""
    return -charge / (np.abs(x - center) + softening)


def soft_coulomb_atom(
    x: np.ndarray, charge: float = 1.0, softening: float = 1.0, center: float = 0.0
) -> np.ndarray:
    """−Z / √((x − x0)² + a), the soft-Coulomb nucleus, Ha."""
    return -charge / np.sqrt((x - center) ** 2 + softening)


def double_well(x: np.ndarray, barrier: float = 0.5, separation: float = 5.0) -> np.ndarray:
    """Quartic double well h·((2x/d)² − 1)², minima at ±d/2, barrier height h at x = 0, Ha."""
    return barrier * ((2.0 * x / separation) ** 2 - 1.0) ** 2


def random_fourier_coefficients(
    rng: np.random.Generator, length: float = 15.0, harmonics: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Draw the a_k, b_k of the 1-RDM paper's family, uniform in (−2L/3, 2L/3)."""
    bound = 2.0 * length / 3.0
    cos_coefficients = rng.uniform(-bound, bound, size=harmonics)
    sin_coefficients = rng.uniform(-bound, bound, size=harmonics)
    return cos_coefficients, sin_coefficients


def random_fourier(
    x: np.ndarray,
    seed: int = 0,
    length: float = 15.0,
    confinement: float = 1e-11,
    amplitude: float = 0.1,
    harmonics: int = 3,
) -> np.ndarray:
    """V = D·x^10 + F·Σ_k [a_k cos(kπx/L) + b_k sin(kπx/L)] (Wetherell et al. 2020), Ha.

    a_k, b_k are uniform in (−2L/3, 2L/3), drawn from ``numpy.random.default_rng(seed)``.
    """
    cos_coefficients, sin_coefficients = random_fourier_coefficients(
        np.random.default_rng(seed), length, harmonics
    )
    return fourier_potential(x, cos_coefficients, sin_coefficients, length, confinement, amplitude)


def fourier_potential(
    x: np.ndarray,
    cos_coefficients: np.ndarray,
    sin_coefficients: np.ndarray,
    length: float = 15.0,
    confinement: float = 1e-11,
    amplitude: float = 0.1,
) -> np.ndarray:
    """D·x^10 + F·Σ_k [a_k cos(kπx/L) + b_k sin(kπx/L)] for given coefficients, Ha."""
    k = np.arange(1, len(cos_coefficients) + 1)[:, None]
    phase = k * np.pi * np.asarray(x)[None, :] / length
    series = np.asarray(cos_coefficients)[:, None] * np.cos(phase) + np.asarray(sin_coefficients)[
        :, None
    ] * np.sin(phase)
    return confinement * np.asarray(x) ** 10 + amplitude * series.sum(axis=0)


BUILTINS: dict[str, Callable[..., np.ndarray]] = {
    "harmonic": harmonic,
    "atom": softened_atom,
    "soft-coulomb-atom": soft_coulomb_atom,
    "double-well": double_well,
    "random": random_fourier,
}


def _parse_builtin(spec: str) -> tuple[str, dict[str, float]] | None:
    name, _, arguments = spec.partition(":")
    name = name.strip()
    if name not in BUILTINS:
        return None
    keywords: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in arguments.split(","))):
        key, sep, value = item.partition("=")
        require(sep == "=", "potential", f"'{name}:key=value,...' arguments", spec)
        try:
            keywords[key.strip()] = float(value)
        except ValueError:
            raise InvalidParameterError("potential", f"a number for {key.strip()!r}", value) from None
    for key in ("seed", "harmonics"):  # integers, not numbers to be truncated
        if name == "random" and key in keywords:
            value = keywords[key]
            least = 0 if key == "seed" else 1
            require(
                value.is_integer() and value >= least, "potential", f"an integer ≥ {least} for {key!r}", value
            )
            keywords[key] = int(value)
    return name, keywords


def resolve_potential(potential: str | np.ndarray | Path, x: np.ndarray) -> np.ndarray:
    """Turn a user's potential into an array on the grid ``x`` (Ha).

    Accepts an array of shape (N,), a path to a ``.npy`` file, a built-in
    ``name[:key=value,...]`` (see ``BUILTINS``) or a math expression in ``x``.

    Raises:
        InvalidParameterError: wrong shape, non-finite values, unknown names.
    """
    x = np.asarray(x, dtype=float)
    if isinstance(potential, Path) or (isinstance(potential, str) and potential.strip().endswith(".npy")):
        path = Path(potential)
        require(path.is_file(), "potential", "an existing .npy file", str(path))
        potential = np.load(path)
    if isinstance(potential, str):
        parsed = _parse_builtin(potential)
        if parsed is not None:
            name, keywords = parsed
            try:
                values = BUILTINS[name](x, **keywords)
            except TypeError:
                import inspect

                allowed = [p for p in inspect.signature(BUILTINS[name]).parameters if p != "x"]
                raise InvalidParameterError(
                    "potential", f"arguments of {name!r} among {allowed}", sorted(keywords)
                ) from None
        else:
            values = evaluate_expression(potential, x)
    else:
        values = np.asarray(potential, dtype=float)
    require(
        values.shape == x.shape,
        "potential",
        f"an array of shape {x.shape} (one value per grid point)",
        values.shape,
    )
    require(
        bool(np.all(np.isfinite(values))), "potential", "finite values at every grid point (no NaN or inf)"
    )
    return values
