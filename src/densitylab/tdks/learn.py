"""Learning v_c by minimising the TDKS density loss over one or more exact trajectories.

The loss is Σ_trajectories Σ_t Σ_x (n_KS − n_exact)² dx (+ an optional penalty); its
gradient comes from checkpointed reverse mode through the propagation
(:func:`densitylab.tdks.propagation.propagate`). The optimiser is L-BFGS with a zoom line
search (optax) by default, or Adam.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from densitylab.checkpoint import (
    fingerprint,
    read_checkpoint,
    write_checkpoint,
)
from densitylab.errors import require
from densitylab.jaxsetup import jax_modules
from densitylab.tdks.propagation import KSProblem, orbital_from_density, propagate, propagate_loss
from densitylab.training import Resumable, optax_loop

OPTIMISERS = ("lbfgs", "adam")
GN_HALVINGS = 8  # step halvings tried before a Gauss–Newton fit gives up on a window
GN_FLOORS = (1e-6, 1e-8)  # default preconditioner floors: a continuation, in order


@dataclass(frozen=True, eq=False)
class Segments:
    """A trajectory cut into S segments of L steps for multiple shooting.

    Attributes:
        v_ext: (S, L, N) external potential per step (Ha).
        orbital0: (S, N) the KS orbital at each segment's start, √(n/2)e^{iθ} with θ' = j/n
            from the exact density and current: the one doubly occupied orbital with the
            exact state's n and j (unique up to a global phase).
        history: (S, H, N) exact densities of the H = max(memory − 1, 1) steps before each
            start, oldest first (n(0) repeated before t = 0).
        target: (S, L + 1, N) exact densities over each segment.
    """

    v_ext: object
    orbital0: object
    history: object
    target: object


def shooting_segments(
    problem: KSProblem, target: np.ndarray, current: np.ndarray, length: int, memory: int = 1
) -> Segments:
    """Cut a trajectory (exact densities and currents (T + 1, N)) into ⌊T/length⌋ segments.

    Training on segments (multiple shooting) restarts every ``length`` steps from the exact
    KS state, so an early error no longer spoils every later step of the loss, the way the
    Gauss–Newton windows do for free values; the functional still sees its full memory.
    The step index k restarts at 0 in each segment, so this is for functionals of the density,
    not for free values. Measured on e–H scattering (docs/tdks.md), it lowers the segment loss
    but yields functionals that are unstable over the full horizon.
    """
    require(
        isinstance(length, int) and 1 <= length <= problem.steps,
        "segment",
        f"an integer from 1 to the {problem.steps} steps",
        length,
    )
    target, current = np.asarray(target), np.asarray(current)
    starts = np.arange(0, problem.steps - length + 1, length)
    lags = np.arange(-max(memory - 1, 1), 0)
    return Segments(
        v_ext=np.stack([problem.v_ext[s : s + length] for s in starts]),
        orbital0=np.stack([orbital_from_density(target[s], current[s], problem.dx) for s in starts]),
        history=np.stack([target[np.maximum(s + lags, 0)] for s in starts]),
        target=np.stack([target[s : s + length + 1] for s in starts]),
    )


def segments_loss(problem: KSProblem, segments: Segments, model, memory: int):
    """``params -> Σ_segments Σ_t Σ_x (n_KS − n_exact)² dx`` with each segment propagated
    from its own exact start (vmapped over segments; JAX-traceable)."""
    jax, jnp, _ = jax_modules()
    arrays = [jnp.asarray(a) for a in (segments.v_ext, segments.orbital0, segments.history, segments.target)]

    def loss(params):
        def one(v_ext, orbital0, history, target):
            local = _Problem(problem.x, v_ext, problem.interaction, orbital0, problem.dt)
            return propagate_loss(local, model, params, target, memory, history=history)

        return jnp.sum(jax.vmap(one)(*arrays))

    return loss


def total_loss(
    problems: Sequence[KSProblem],
    targets: Sequence[np.ndarray],
    model,
    memory: int,
    penalty=None,
    segments: Sequence[Segments] | None = None,
    weights: Sequence[float] | None = None,
    truncate: int | None = None,
    measure: str = "density",
):
    """``params -> loss`` summed over trajectories (JAX-traceable); with ``segments`` (one
    :class:`Segments` per problem) the trajectories are propagated segment by segment.
    ``weights``: one factor per trajectory; ``truncate``, ``measure``: see
    :func:`~densitylab.tdks.propagation.propagate_loss` (not with segments)."""
    _, jnp, _ = jax_modules()
    targets = [jnp.asarray(target) for target in targets]
    weights = [1.0] * len(problems) if weights is None else [float(w) for w in weights]
    if segments is None:
        pairs = zip(problems, targets, strict=True)
        parts = [
            partial(propagate_loss, p, model, target=t, memory=memory, truncate=truncate, measure=measure)
            for p, t in pairs
        ]
    else:
        require(measure == "density", "measure", "density with segments", measure)
        parts = [segments_loss(p, s, model, memory) for p, s in zip(problems, segments, strict=True)]

    def loss(params):
        value = sum(w * part(params) for w, part in zip(weights, parts, strict=True))
        return value + (penalty(params) if penalty is not None else 0.0)

    return loss


def train(
    problems: Sequence[KSProblem],
    targets: Sequence[np.ndarray],
    params,
    model: Callable,
    memory: int = 1,
    iterations: int = 100,
    optimiser: str = "lbfgs",
    learning_rate: float = 1e-3,
    penalty=None,
    progress: Callable[[int, int, float, float], None] | None = None,
    tolerance: float = 0.0,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 10,
    segments: Sequence[Segments] | None = None,
    settings: Mapping[str, object] | None = None,
    clip: float | None = None,
    weights: Sequence[float] | None = None,
    truncate: int | None = None,
    measure: str = "density",
    keep_best: bool = False,
):
    """Minimise the density loss over ``params`` (an array or an Equinox module).

    The loop is :func:`densitylab.training.optax_loop` (one full-batch step per iteration).
    With ``checkpoint`` (a file path), the parameters and history are written there
    atomically every ``checkpoint_every`` iterations with the optimiser's whole state (the
    L-BFGS curvature pairs, Adam's moments), and a call with the same arguments resumes from
    them to the uninterrupted result; the file is removed at the end.
    A checkpoint written for other problems, targets, starting parameters, optimiser,
    learning rate, memory, segments or ``settings`` (anything else the caller wants checked,
    such as a penalty's weight) is refused (:mod:`densitylab.checkpoint`); only
    ``iterations`` may change, to continue a run.

    Args:
        problems, targets: KS problems and the exact densities (T + 1, N) on their grids.
        memory: densities the model sees (see :mod:`densitylab.tdks.propagation`).
        progress: called as ``progress(iteration, iterations, loss=…, gradient=…)`` (the
            gradient norm; :mod:`densitylab.progress`).
        tolerance: stop when the gradient norm falls below it.
        segments: one :class:`Segments` per problem to train by multiple shooting
            (:func:`shooting_segments`) instead of over the full horizon.
        clip: adam only: clip the gradient to this global norm first (gradients through
            long propagations of a functional can explode).
        weights: a positive factor per trajectory in the loss (default 1 each).
        truncate: adam only: truncated backpropagation, the gradient cut every ``truncate``
            steps (:func:`~densitylab.tdks.propagation.propagate_loss`). It is not the
            gradient of the loss, so L-BFGS's line search cannot use it.
        measure: "density", "charge" (the charge left of each point) or "current" (the
            current from continuity over each step; :func:`~densitylab.tdks.propagation.density_loss`).
        keep_best: return the parameters with the lowest loss seen, not the last ones
            (:func:`densitylab.training.optax_loop`).

    Returns:
        the trained params and a history dict (loss and gradient norm per iteration).
    """
    import optax

    require(optimiser in OPTIMISERS, "optimiser", f"one of {OPTIMISERS}", optimiser)
    require(iterations >= 1, "iterations", "a positive integer", iterations)
    require(
        len(problems) == len(targets) and len(problems) >= 1,
        "targets",
        "one target per problem",
        len(targets),
    )
    require(
        weights is None or (len(weights) == len(problems) and all(np.isfinite(w) and w > 0 for w in weights)),
        "weights",
        "one positive number per problem",
        weights,
    )
    require(
        truncate is None or (optimiser == "adam" and segments is None),
        "truncate",
        "a window with adam over whole trajectories (not lbfgs or segments)",
        truncate,
    )
    loss_of_params = total_loss(
        problems, targets, model, memory, penalty, segments, weights, truncate, measure
    )
    require(
        clip is None or (optimiser == "adam" and clip > 0), "clip", "a positive norm, with adam only", clip
    )
    solver = optax.lbfgs() if optimiser == "lbfgs" else optax.adam(learning_rate)
    if clip is not None:
        solver = optax.chain(optax.clip_by_global_norm(clip), solver)
    history = {"iteration": [], "loss": [], "gradient_norm": []}
    job = {
        **(settings or {}),
        "optimiser": optimiser,
        "learning_rate": learning_rate if optimiser == "adam" else None,
        "clip": clip,
        "memory": memory,
        "problems": [_problem_fingerprint(problem) for problem in problems],
        "targets": [fingerprint(target) for target in targets],
        "segments": None if segments is None else [fingerprint(s.target, s.orbital0) for s in segments],
        "weights": None if weights is None else [float(w) for w in weights],
        "truncate": truncate,
        "measure": measure,
    }

    def record(iteration, params, losses, norms) -> bool:
        value, gradient_norm = losses[0], norms[0]
        history["iteration"].append(iteration)
        history["loss"].append(value)
        history["gradient_norm"].append(gradient_norm)
        if progress:
            progress(iteration, iterations, loss=value, gradient=gradient_norm)
        return gradient_norm < tolerance

    def restore_history(state: dict) -> None:
        history.update(state["history"])

    resumable = None
    if checkpoint is not None:
        resumable = Resumable(
            checkpoint, job, checkpoint_every, save=lambda: {"history": history}, restore=restore_history
        )

    params = optax_loop(
        loss_of_params, params, solver, iterations, None, record,
        linesearch=optimiser == "lbfgs", resumable=resumable, keep_best=keep_best,
    )  # fmt: skip
    return params, history


def _problem_fingerprint(problem: KSProblem) -> str:
    """What defines a KS problem, as one fingerprint (grid, potentials, interaction, orbital, dt)."""
    return fingerprint(
        problem.x, problem.v_ext, problem.interaction, problem.orbital0, np.float64(problem.dt)
    )


def fit_values_gauss_newton(
    problem: KSProblem,
    target: np.ndarray,
    window: int = 20,
    iterations: int = 8,
    cg_iterations: int = 100,
    damping: float = 1e-10,
    progress: Callable[[int, int, float, float], None] | None = None,
    checkpoint: str | Path | None = None,
    lookahead: int = 10,
    preconditioner_floor: float | Sequence[float] | None = GN_FLOORS,
):
    """Model (a), free v_c values, by Gauss–Newton on consecutive windows of steps.

    With ``checkpoint`` (a .npz path) the values, the KS orbital and the history are written
    there atomically after every window, and a call with the same window resumes after the
    last finished one; the file is removed at the end.

    v_c at step k acts only on later densities, so the trajectory is fitted window by window:
    the values of steps [s, s + window) minimise Σ (n_KS − n_exact)² dx over that window,
    starting from the KS orbital reached at step s. Each Gauss–Newton step solves
    (JᵀJ + damping) δ = −Jᵀr by conjugate gradients with J applied as a JVP and Jᵀ as its
    transpose (``jax.linearize``): matrix-free, no Jacobian is formed. This handles the
    ill-conditioning of the density-to-potential map (a potential moves the density through
    ∇·(n∇v), at second order in time) far better than first-order methods over the whole
    trajectory; it is the matrix-free counterpart of step-by-step Newton inversion. A step
    that does not lower the loss is halved until it does (damped Gauss–Newton).

    With ``lookahead`` L > 0 each fit covers ``window`` + L steps and only the first ``window``
    are kept (a receding horizon): the last values of a window move only the last densities, so
    they are poorly determined by the window alone, and the next window would start from the
    orbital they leave behind.

    CG is preconditioned by :func:`gauss_newton_preconditioner` (``preconditioner_floor``
    is its relative floor ε; None turns it off): JᵀJ inherits the spectrum of (∂ₓn∂ₓ)², whose
    condition number grows as 1/dx⁴, and without it 100 CG iterations leave most of the
    Gauss–Newton step undone. The floor also regularises the truncated CG: directions the
    densities barely constrain, such as the offset of one density lump against another, are
    amplified by up to 1/ε². A sequence of floors is a continuation: the iterations of every
    window are split evenly among them, in order. The default (1e-6, 1e-8) first moves each
    window's values into the right basin with the safe floor, then fits closely with the small
    one. A single floor of 1e-8 fits as closely where it stays stable, but on the p = −1.8
    scattering trajectory it steered a window from a poor start into potentials of hundreds of
    Ha and diverged; a single 1e-6 is stable but fits only to about 2e-3 (docs/tdks.md).

    Returns:
        v_c (T, N) and a history with the windowed loss after each window.
    """
    jax, jnp, _ = jax_modules()
    floors = gauss_newton_floors(window, lookahead, iterations, cg_iterations, preconditioner_floor)

    def model(params, densities, k):
        return params[k]

    def residual(values, orbital0, v_ext, local_target):
        local = _Problem(problem.x, v_ext, problem.interaction, orbital0, problem.dt)
        densities, _, orbital = propagate(local, model, values, final_state=True, rematerialise=False)
        return (densities[1:] - local_target[1:]).ravel() * np.sqrt(problem.dx), orbital

    @partial(jax.jit, static_argnames="preconditioned")
    def direction(values, orbital0, v_ext, local_target, floor, preconditioned):
        """The Gauss–Newton step δ and the loss Σ r² at ``values``. ``floor`` is traced, so that a
        continuation over floors compiles once per window shape (each floor compiled anew: 5 s)."""
        r, jvp = jax.linearize(lambda v: residual(v, orbital0, v_ext, local_target)[0], values)
        vjp = jax.linear_transpose(jvp, values)
        inverse = None
        if preconditioned:
            inverse = gauss_newton_preconditioner(local_target[:-1], problem.dx, floor)
        delta, _ = jax.scipy.sparse.linalg.cg(
            lambda d: vjp(jvp(d))[0] + damping * d, -vjp(r)[0], maxiter=cg_iterations, M=inverse
        )
        return delta, jnp.sum(r**2)

    @jax.jit
    def evaluate(values, orbital0, v_ext, local_target):
        r, orbital = residual(values, orbital0, v_ext, local_target)
        return jnp.sum(r**2), orbital

    def fit(values, orbital0, v_ext, local_target):
        """Damped Gauss–Newton: each step is halved until the loss falls (at most
        ``GN_HALVINGS`` times; if it never does, the fit stops where it is)."""
        for iteration in range(iterations):
            floor = floors[iteration * len(floors) // iterations]
            delta, loss = direction(values, orbital0, v_ext, local_target, floor or 0.0, floor is not None)
            for halving in range(GN_HALVINGS + 1):
                trial = values + delta / 2**halving
                if evaluate(trial, orbital0, v_ext, local_target)[0] < loss:
                    values = trial
                    break
            else:
                return values
        return values

    values = np.zeros((problem.steps, problem.points))
    orbital = jnp.asarray(problem.orbital0, dtype=complex)
    history: dict[str, list] = {"iteration": [], "loss": [], "step": []}
    starts = list(range(0, problem.steps, window))
    done = 0
    job = {
        "fit": "gauss-newton",
        "window": window,
        "lookahead": lookahead,
        "iterations": iterations,
        "cg_iterations": cg_iterations,
        "preconditioner_floor": _floor_codes(floors).tolist(),
        "problem": _problem_fingerprint(problem),
        "target": fingerprint(target),
    }
    stored = read_checkpoint(checkpoint, job) if checkpoint is not None else None
    if stored is not None:
        arrays, state = stored
        values, orbital = arrays["values"].copy(), jnp.asarray(arrays["orbital"])
        guess = jnp.asarray(arrays["guess"])
        history = state["history"]
        done = len(history["iteration"])
    # v_c is continuous in time: each fit starts from the values the previous one left
    span = window + lookahead
    if not done:
        guess = jnp.zeros((span, problem.points))
    for index, start in enumerate(starts[done:], start=done):
        stop = min(start + window, problem.steps)
        horizon = min(start + span, problem.steps)
        v_ext = jnp.asarray(problem.v_ext[start:horizon])
        local = fit(guess[: horizon - start], orbital, v_ext, jnp.asarray(target[start : horizon + 1]))
        kept = local[: stop - start]
        loss, orbital = evaluate(
            kept, orbital, jnp.asarray(problem.v_ext[start:stop]), jnp.asarray(target[start : stop + 1])
        )
        values[start:stop] = np.asarray(kept)
        # the next fit starts from this one's lookahead values, then the last value held
        guess = jnp.concatenate([local[stop - start :], jnp.tile(local[-1], (span, 1))])[:span]
        history["iteration"].append(index + 1)
        history["loss"].append(float(loss))
        history["step"].append(stop)
        if checkpoint is not None and stop < problem.steps:
            arrays = {"values": values, "orbital": np.asarray(orbital), "guess": np.asarray(guess)}
            write_checkpoint(checkpoint, job, arrays, {"history": history})
        if progress:
            progress(index + 1, len(starts), loss=float(loss))
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)
    return values, history


def gauss_newton_preconditioner(densities, dx: float, floor: float):
    """The inverse of a block-diagonal model of JᵀJ for a window of free v_c values.

    A potential δv applied during step k turns the orbital's phase by −δv·dt, and the
    continuity equation turns that into δn(t_{k+m}) ≈ m·dt²·L_k δv with L_k = ∂ₓ n_k ∂ₓ (the
    density-weighted Laplacian; hard walls, so L_k·1 = 0). Keeping the same-step blocks of
    JᵀJ gives c_k·L_k² with c_k = Σ_{m=1}^{K−k} m² (K steps in the window); the constant
    dt⁴ drops out of CG. The returned function applies (c_k L_k² + ε²)⁻¹ to every step at
    once, with ε = √floor · c_0^{1/2} · max n / dx², through the factorisation
    L² + ε² = (L − iε)(L + iε): two tridiagonal solves per step, O(K·N).

    Args:
        densities: (K, N) densities at the start of each step (the exact ones, which the fit
            approaches), 1/bohr.
        dx: grid spacing (bohr); floor: relative floor (> 0) for the null directions
            (constant shifts, empty regions).

    Returns:
        a function (K, N) → (K, N).
    """
    jax, jnp, _ = jax_modules()
    count = densities.shape[0]
    weights = jnp.cumsum(jnp.arange(1.0, count + 1.0) ** 2)[::-1]  # c_k for k = 0 … K − 1
    scale = jnp.sqrt(weights)[:, None]
    face = scale * 0.5 * (densities[:, 1:] + densities[:, :-1]) / dx**2  # n at x_{i+1/2}
    zero = jnp.zeros((count, 1))
    diagonal = -(jnp.concatenate([zero, face], axis=1) + jnp.concatenate([face, zero], axis=1))
    upper = jnp.concatenate([face, zero], axis=1).astype(complex)
    lower = jnp.concatenate([zero, face], axis=1).astype(complex)
    shift = 1j * jnp.sqrt(floor * weights[0]) * jnp.max(densities) / dx**2

    def solve(lower, diagonal, upper, rhs):
        first = jax.lax.linalg.tridiagonal_solve(lower, diagonal - shift, upper, rhs[:, None])
        return jnp.real(jax.lax.linalg.tridiagonal_solve(lower, diagonal + shift, upper, first)[:, 0])

    def apply(residual):
        return jax.vmap(solve)(lower, diagonal.astype(complex), upper, residual.astype(complex))

    return apply


def gauss_newton_floors(
    window: int, lookahead: int, iterations: int, cg_iterations: int, preconditioner_floor
) -> tuple:
    """Check the options of :func:`fit_values_gauss_newton` (so a caller can do it before
    writing anything) and return the preconditioner floors as a tuple, one per stage."""
    require(isinstance(window, int) and window >= 1, "window", "a positive integer", window)
    require(isinstance(lookahead, int) and lookahead >= 0, "lookahead", "an integer ≥ 0", lookahead)
    require(iterations >= 1, "iterations", "a positive integer", iterations)
    require(cg_iterations >= 1, "cg_iterations", "a positive integer", cg_iterations)
    floors = _floor_schedule(preconditioner_floor)
    require(
        0 < len(floors) <= iterations
        and all(floor is None or (isinstance(floor, int | float) and floor > 0) for floor in floors),
        "preconditioner_floor",
        f"a positive number, None, or a sequence of at most {iterations} (the iterations) positive numbers",
        preconditioner_floor,
    )
    return floors


def _floor_schedule(floor) -> tuple:
    """``preconditioner_floor`` as a tuple of floors, one per stage of the iterations."""
    return tuple(floor) if isinstance(floor, Sequence) and not isinstance(floor, str) else (floor,)


def _floor_codes(floors: tuple) -> np.ndarray:
    """The preconditioner floors as stored in a checkpoint: −1 for none (plain CG)."""
    return np.array([-1.0 if floor is None else float(floor) for floor in floors])


def _Problem(x, v_ext, interaction, orbital0, dt) -> KSProblem:
    """A KSProblem whose arrays may be JAX tracers (skips the eager shape checks)."""
    problem = object.__new__(KSProblem)
    for name, value in (
        ("x", x),
        ("v_ext", v_ext),
        ("interaction", interaction),
        ("orbital0", orbital0),
        ("dt", dt),
    ):
        object.__setattr__(problem, name, value)
    return problem
