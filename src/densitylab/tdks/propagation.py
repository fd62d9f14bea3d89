"""Time-dependent Kohn–Sham propagation of a two-electron singlet, in JAX (64-bit).

One doubly occupied orbital φ(x, t), density n = 2|φ|², on a uniform grid with hard walls
and the 3-point kinetic stencil (so H is tridiagonal), both taken from the problem's
:class:`densitylab.model1d.Grid` (:attr:`KSProblem.grid`), which owns them. The KS potential is

    v_KS = v_ext(x, t) + ½ v_H[n] + v_c,     v_H[n](x) = Σ_x' w(x − x') n(x') dx,

because for two electrons in a singlet the exact exchange potential is −v_H/2.

Each step is Crank–Nicolson, (1 + i dt H/2) φ' = (1 − i dt H/2) φ, solved with
``jax.lax.linalg.tridiagonal_solve``. H depends on n, so a step is a predictor–corrector
pair: H from n(t) predicts φ', and H from the mean of n(t) and the predicted n(t + dt)
gives φ(t + dt). Each solve is a Cayley transform of a Hermitian matrix, so the norm is
conserved to rounding whatever v_c is.

v_c at step k is ``model(params, window, k)``, where ``window`` (memory, N) holds the KS
densities of steps k − memory + 1 … k (the oldest rows repeat n(0) at the start), so a
model can use only the present and the past: causality is built into the propagation.

Gradients with respect to ``params`` go through :func:`loss_and_gradient`: reverse-mode
through a two-level scan whose inner blocks of ~√T steps are rematerialised
(``jax.checkpoint``), so memory grows as √T and one gradient costs about one extra forward
propagation on top of the backward pass. Only VJPs are used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from densitylab.errors import require
from densitylab.jaxsetup import jax_modules
from densitylab.model1d.grid import Grid


@dataclass(frozen=True, eq=False)
class KSProblem:
    """Everything TDKS needs besides v_c.

    Attributes:
        x: grid (N,), bohr; uniform spacing dx.
        v_ext: external potential per step, (T, N), Ha, evaluated at mid-step t_k + dt/2
            (a static potential is repeated).
        interaction: w(x_i − x_j) on the grid, (N, N), Ha.
        orbital0: initial orbital (N,), complex, Σ|φ|² dx = 1.
        dt: time step (a.u.); T = v_ext.shape[0] steps.
    """

    x: np.ndarray
    v_ext: np.ndarray
    interaction: np.ndarray
    orbital0: np.ndarray
    dt: float

    def __post_init__(self):
        points = len(self.x)
        require(
            self.v_ext.ndim == 2 and self.v_ext.shape[1] == points,
            "v_ext",
            f"shape (T, {points})",
            self.v_ext.shape,
        )
        require(
            self.interaction.shape == (points, points),
            "interaction",
            f"shape ({points}, {points})",
            self.interaction.shape,
        )
        require(self.orbital0.shape == (points,), "orbital0", f"shape ({points},)", self.orbital0.shape)
        require(self.dt > 0, "dt", "a positive time step (a.u.)", self.dt)

    @property
    def dx(self) -> float:
        return float(self.x[1] - self.x[0])

    @property
    def grid(self) -> Grid:
        """The KS grid: these points, the 3-point stencil and hard walls (the box of
        :func:`densitylab.model1d.propagation.box_grid` for the exact runs)."""
        return Grid(self.points, float(self.x[0]), float(self.x[-1]), stencil=3, boundary="hard-wall")

    @property
    def steps(self) -> int:
        return int(self.v_ext.shape[0])

    @property
    def points(self) -> int:
        return len(self.x)


def orbital_from_density(
    density: np.ndarray, current: np.ndarray, dx: float, floor: float = 1e-12
) -> np.ndarray:
    """φ = √(n/2) e^{iθ} with θ' = j/n: the doubly occupied orbital with density n and current
    j (both (N,)). Where n < floor the phase gradient is set to zero (j/n is noise there)."""
    density = np.maximum(np.asarray(density, dtype=float), 0.0)
    velocity = np.where(density > floor, np.asarray(current) / np.maximum(density, floor), 0.0)
    phase = np.concatenate([[0.0], np.cumsum(0.5 * (velocity[1:] + velocity[:-1])) * dx])
    orbital = np.sqrt(density / 2.0) * np.exp(1j * phase)
    return orbital / np.sqrt(np.sum(np.abs(orbital) ** 2) * dx)


def _cn_step(orbital, potential, kinetic_weights, dt):
    """One Crank–Nicolson step with H = T + diag(potential), T the tridiagonal hard-wall
    kinetic operator of weights (w₋₁, w₀, w₊₁) (:attr:`Grid.kinetic_weights`, Ha)."""
    jax, jnp, _ = jax_modules()
    points = orbital.shape[0]
    off = kinetic_weights[0]
    diagonal = kinetic_weights[1] + potential
    upper = jnp.full(points, off).at[-1].set(0.0)
    lower = jnp.full(points, off).at[0].set(0.0)
    shifted_up = jnp.concatenate([orbital[1:], jnp.zeros(1, orbital.dtype)])
    shifted_down = jnp.concatenate([jnp.zeros(1, orbital.dtype), orbital[:-1]])
    h_orbital = diagonal * orbital + off * (shifted_up + shifted_down)
    rhs = orbital - 0.5j * dt * h_orbital
    factor = 0.5j * dt
    solution = jax.lax.linalg.tridiagonal_solve(
        (factor * lower).astype(complex),
        (1.0 + factor * diagonal).astype(complex),
        (factor * upper).astype(complex),
        rhs[:, None],
    )
    return solution[:, 0]


def toeplitz_kernel(interaction: np.ndarray) -> np.ndarray | None:
    """w(x_i − x_j) as a kernel of length 2N − 1 (offsets −(N−1)…N−1) if the matrix depends
    only on i − j (a translation-invariant interaction on a uniform grid), else None."""
    points = interaction.shape[0]
    kernel = np.concatenate([interaction[::-1, 0], interaction[0, 1:]])
    rows = np.arange(points)[:, None] - np.arange(points)[None, :] + points - 1
    return kernel if np.allclose(kernel[rows], interaction, rtol=1e-13, atol=1e-14) else None


def hartree_operator(interaction: np.ndarray, dx: float):
    """v_H[n] = Σ_x' w(x, x') n(x') dx as a function: an FFT convolution when w is Toeplitz
    (O(N log N) instead of O(N²) per call), else a matrix product."""
    _, jnp, _ = jax_modules()
    points = interaction.shape[0]
    kernel = toeplitz_kernel(np.asarray(interaction))
    if kernel is None:
        matrix = jnp.asarray(interaction) * dx
        return lambda density: matrix @ density
    size = 1 << int(np.ceil(np.log2(3 * points - 2)))
    spectrum = jnp.asarray(np.fft.rfft(kernel, size) * dx)

    def hartree(density):
        full = jnp.fft.irfft(jnp.fft.rfft(density, size) * spectrum, size)
        return full[points - 1 : 2 * points - 1]

    return hartree


def _block_sizes(steps: int, block: int | None) -> tuple[int, int]:
    block = block or max(1, round(math.sqrt(steps)))
    while steps % block:
        block -= 1
    return steps // block, block


def propagate(
    problem: KSProblem,
    model: Callable,
    params,
    memory: int = 1,
    block: int | None = None,
    final_state: bool = False,
    rematerialise: bool = True,
):
    """Propagate the KS orbital for ``problem.steps`` steps (JAX-traceable in ``params``).

    Args:
        model: ``model(params, window, k) -> v_c (N,)``; window is (memory, N).
        memory: number of densities (present and past) the model sees.
        block: steps per rematerialised block (default ≈ √T, adjusted to divide T).
        final_state: also return the orbital (N,) after the last step.
        rematerialise: recompute each block in reverse mode (memory ∝ √T). False keeps every
            step's residuals instead: for short horizons, where ``jax.linearize`` would
            otherwise redo the forward pass at each JVP (the Gauss–Newton windows).

    Returns:
        densities (T + 1, N) at t = 0, dt, …, T·dt, and v_c (T, N) at each step
        (and the final orbital).
    """
    jax, jnp, _ = jax_modules()
    step, carry, inputs = _scan_parts(problem, model, params, memory, block)

    def run_block(carry, inputs):
        return jax.lax.scan(step, carry, inputs)

    if rematerialise:
        run_block = jax.checkpoint(run_block)
    (orbital, _), (densities, v_c) = jax.lax.scan(run_block, carry, inputs)
    density0 = carry[1][-1]
    densities = jnp.concatenate([density0[None], densities.reshape(problem.steps, problem.points)])
    v_c = v_c.reshape(problem.steps, problem.points)
    return (densities, v_c, orbital) if final_state else (densities, v_c)


def _scan_parts(
    problem: KSProblem, model: Callable, params, memory: int, block: int | None, extra=None, history=None
):
    """The step function, initial carry and blocked scan inputs shared by the propagators;
    ``history`` (memory − 1, N), oldest first, fills the window before t = 0 (default n(0))."""
    _, jnp, _ = jax_modules()
    dx, dt = problem.dx, problem.dt
    hartree = hartree_operator(problem.interaction, dx)
    kinetic = tuple(float(w) for w in problem.grid.kinetic_weights)
    orbital0 = jnp.asarray(problem.orbital0, dtype=complex)
    density0 = 2.0 * jnp.abs(orbital0) ** 2
    window0 = jnp.tile(density0, (memory, 1))
    if history is not None and memory > 1:
        window0 = jnp.concatenate([jnp.asarray(history)[-(memory - 1) :], density0[None]])
    blocks, per_block = _block_sizes(problem.steps, block)
    v_ext = jnp.asarray(problem.v_ext).reshape(blocks, per_block, problem.points)
    indices = jnp.arange(problem.steps).reshape(blocks, per_block)

    def step(carry, inputs):
        orbital, window = carry
        v_ext_k, k = inputs[0], inputs[1]
        density = window[-1]
        v_c = model(params, window, k)
        static = v_ext_k + v_c
        predicted = _cn_step(orbital, static + 0.5 * hartree(density), kinetic, dt)
        middle = 0.5 * (density + 2.0 * jnp.abs(predicted) ** 2)
        orbital = _cn_step(orbital, static + 0.5 * hartree(middle), kinetic, dt)
        new_density = 2.0 * jnp.abs(orbital) ** 2
        window = jnp.concatenate([window[1:], new_density[None]], axis=0)
        return (orbital, window), (new_density, v_c)

    inputs = (v_ext, indices) if extra is None else (v_ext, indices, extra.reshape(blocks, per_block, -1))
    return step, (orbital0, window0), inputs


def propagate_loss(
    problem: KSProblem,
    model: Callable,
    params,
    target,
    memory: int = 1,
    block: int | None = None,
    history=None,
    truncate: int | None = None,
    measure: str = "density",
):
    """Σ_{t ≥ 1} Σ_x (n_KS − n_exact)² dx, accumulated inside the scan: nothing per step is
    kept, so reverse mode stores only the √T block carries and one block's residuals.
    ``history`` (≥ memory − 1, N): the densities the model sees before t = 0, oldest first.
    ``measure``: see :func:`density_loss` ("charge" compares the charge left of each point,
    "current" the current implied by continuity over each step).

    ``truncate`` (steps): truncated backpropagation through time. The loss is the same, but
    its gradient stops at the start of every window of ``truncate`` steps (the largest
    divisor of T not above it): the orbital and the density history a window starts from
    are the model's own (the propagation is not restarted), yet they count as constants.
    Each window's gradient then grows only over its own steps, where the full gradient
    through a long propagation of a functional grows without bound (1e21 at 200 steps,
    docs/tdks.md), and the model still learns on the states its own dynamics reaches."""
    jax, jnp, _ = jax_modules()
    require(
        truncate is None or (isinstance(truncate, int) and truncate >= 1),
        "truncate",
        "a positive number of steps",
        truncate,
    )
    check_measure(measure)
    target = jnp.asarray(target)
    step, carry, inputs = _scan_parts(
        problem, model, params, memory, truncate or block, extra=target[1:], history=history
    )
    dx, dt = problem.dx, problem.dt

    def stepper(state, inputs):
        carry, loss, previous = state  # previous: n_KS − n_exact one step before
        carry, (density, _) = step(carry, inputs)
        difference = density - inputs[2]
        return (carry, loss + _measured(difference, dx, measure, previous, dt), difference), None

    @jax.checkpoint
    def run_block(state, inputs):
        if truncate is not None:
            state = (jax.lax.stop_gradient(state[0]), state[1], jax.lax.stop_gradient(state[2]))
        return jax.lax.scan(stepper, state, inputs)[0], None

    start = (carry, jnp.zeros(()), carry[1][-1] - target[0])
    (_, loss, _), _ = jax.lax.scan(run_block, start, inputs)
    return loss


MEASURES = ("density", "charge", "current")


def check_measure(measure: str) -> None:
    require(measure in MEASURES, "measure", f"one of {MEASURES}", measure)


def _measured(difference, dx: float, measure: str, previous=None, dt: float | None = None):
    """Σ_x d² dx of the last axis: d the density difference; with ``measure`` "charge" the
    difference of the charge left of each point, Q(x) = Σ_{x' ≤ x} n(x') dx; with "current"
    the difference of the currents over the last step by continuity, j = −(Q(t) − Q(t − dt))/dt
    (``previous``: the density difference one step before)."""
    _, jnp, _ = jax_modules()
    if measure == "charge":
        difference = jnp.cumsum(difference, axis=-1) * dx
    elif measure == "current":
        difference = -jnp.cumsum(difference - previous, axis=-1) * dx / dt
    return jnp.sum(difference**2, axis=-1) * dx


def density_loss(densities, target, dx: float, weights=None, measure: str = "density", dt=None):
    """Σ_t Σ_x w_t (n_KS − n_exact)² dx over steps 1…T (both (T + 1, N)).

    ``measure`` "charge": Σ_t Σ_x w_t (Q_KS − Q_exact)² dx with Q(x) the charge left of x
    (electrons). Two packets that no longer overlap have a density loss that does not depend
    on how far apart they are, and no gradient that would move one onto the other; the
    charge loss grows with the charge in the wrong place times how far it is from where it
    should be (it is the squared L² distance of the cumulative distributions, a relative of
    the 1D Wasserstein distance), so a wrong split of a packet into reflected and transmitted
    parts is penalised in proportion to how far the parts have gone.

    ``measure`` "current" (needs the step ``dt``): Σ_t Σ_x w_t (j_KS − j_exact)² dx with each
    current from continuity over the step before t (bohr⁻¹ a.u.⁻¹ squared, times bohr). A
    packet that leaves too fast shows here at once, while its density error builds up only
    as it goes: the current is the rate of the density error to come, which a gradient cut
    every few steps (``truncate``) can still see."""
    check_measure(measure)
    require(measure != "current" or (dt is not None and dt > 0), "dt", "the step (a.u.) for the current", dt)
    _, jnp, _ = jax_modules()
    difference = densities - target
    squared = _measured(difference[1:], dx, measure, difference[:-1], dt)
    return jnp.sum(squared if weights is None else weights * squared)


def loss_and_gradient(
    problem: KSProblem, model, target: np.ndarray, memory: int = 1, penalty=None, block=None
):
    """A jitted ``params -> (loss, gradient)`` for the density loss (+ ``penalty(params)``)."""
    import equinox as eqx

    _, jnp, _ = jax_modules()
    target = jnp.asarray(target)

    def loss(params):
        value = propagate_loss(problem, model, params, target, memory, block)
        return value + (penalty(params) if penalty is not None else 0.0)

    return eqx.filter_jit(eqx.filter_value_and_grad(loss))


def problem_from_trajectory(trajectory, coarsen: int = 1) -> tuple[KSProblem, np.ndarray]:
    """The TDKS problem matching an exact trajectory, and its target densities (T + 1, N').

    The KS step is the trajectory's storage interval; the KS grid takes every ``coarsen``-th
    exact grid point (same box); v_ext(t) = v_ext + E(t_mid)·x at each step's midpoint; the
    initial orbital is √(n/2)e^{iθ} with θ' = j/n from the exact initial density and current.
    Only spin singlets: the KS system here is one doubly occupied orbital with v_x = −v_H/2,
    which a triplet (two different orbitals) is not.
    """
    from densitylab.model1d.system import parse_interaction

    spin = trajectory.parameters.get("spin", "singlet")
    require(
        spin == "singlet", "trajectory", "a spin-singlet trajectory (one doubly occupied KS orbital)", spin
    )
    require(isinstance(coarsen, int) and coarsen >= 1, "coarsen", "a positive integer", coarsen)
    points = len(trajectory.x[::coarsen])
    require(
        points >= 8, "coarsen", f"a factor that leaves at least 8 of the {len(trajectory.x)} points", coarsen
    )
    parameters = trajectory.parameters
    x = trajectory.x[::coarsen]
    dx = float(x[1] - x[0])
    target = trajectory.density[:, ::coarsen]
    v_ext = trajectory.v_ext[::coarsen][None, :] + trajectory.field_midpoints[:, None] * x[None, :]
    interaction = parse_interaction(parameters["interaction"]).matrix(x)
    orbital0 = orbital_from_density(target[0], trajectory.current[0, ::coarsen], dx)
    dt = float(parameters["dt"]) * int(parameters["store_every"])
    return KSProblem(x, v_ext, interaction, orbital0, dt), target


def density_errors(densities: np.ndarray, target: np.ndarray, dx: float) -> np.ndarray:
    """∫|n_KS − n_exact| dx at every stored time, (T + 1,)."""
    return np.sum(np.abs(np.asarray(densities) - np.asarray(target)), axis=1) * dx
