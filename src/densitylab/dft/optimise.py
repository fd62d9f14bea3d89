"""Minimising the Kohn–Sham energy over orbitals C = X·Q(W).

Two optimisers:

- ``lbfgs`` (production). The orbitals live on the Grassmann manifold (E depends only on the
  occupied span). Around a reference orthonormal basis U = [U_occ, U_vir] (in the orthogonal
  AO basis) the chart W(κ) = U_occ + U_vir κ, C = X·Q(W), covers that manifold smoothly; on κ
  (n_vir × n_occ per spin) E is an ordinary function of a vector, minimised by L-BFGS whose
  initial inverse Hessian is the orbital-energy preconditioner 1/(f·(ε_a − ε_i + shift)) with f =
  4 (RKS) or 2 (UKS) — the diagonal of the exact Hessian in the pseudo-canonical basis. A
  backtracking Armijo line search accepts each step; the chart is re-centred (U ← current
  orbitals, pseudo-canonicalised in the current Fock matrix) when κ grows large or a line search
  fails. Converged when max|∂E/∂κ| ≤ ``gradient_tolerance``. Near a minimum, where the energy's
  changes fall below its rounding and no line search succeeds, diagonal-Newton steps finish
  the job on the gradient alone (:func:`_newton_steps`).
- ``adam``: the D4FT setting, Adam on W directly, optionally with grid minibatches.

Energies in hartree; orbital gradients in hartree per unit rotation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from densitylab.dft.evaluator import Evaluator, chart_parameters
from densitylab.dft.system import KSSystem
from densitylab.errors import NumericalError, require, require_finite

OPTIMISERS = ("lbfgs", "adam")


@dataclass(frozen=True)
class OptimiserSettings:
    """How to minimise.

    Attributes:
        method: ``lbfgs`` (preconditioned, production) or ``adam`` (D4FT).
        max_iterations: energy/gradient evaluations allowed (line-search trials included).
        gradient_tolerance: convergence when max|orbital gradient| falls below it (hartree).
        memory: L-BFGS history length.
        shift: preconditioner shift added to ε_a − ε_i (hartree).
        max_rotation: re-centre the chart when max|κ| exceeds this.
        learning_rate: Adam's step size (D4FT used 1e-2).
        final_learning_rate: if set, the step size decays exponentially to this value at
            ``max_iterations`` (stochastic minibatch runs need it to settle); None keeps it constant.
        minibatch: grid points per step for the XC term (Adam only); None for the full grid.
        energy_tolerance: Adam stops when the full-grid energy changes less than this over
            ``patience`` steps.
        seed: minibatch sampling seed.
    """

    method: str = "lbfgs"
    max_iterations: int = 300
    gradient_tolerance: float = 1e-5
    memory: int = 12
    shift: float = 0.1
    max_rotation: float = 0.5
    learning_rate: float = 1e-2
    final_learning_rate: float | None = None
    minibatch: int | None = None
    energy_tolerance: float = 1e-7
    patience: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        require(self.method in OPTIMISERS, "optimiser", f"one of {', '.join(OPTIMISERS)}", self.method)
        require_finite(
            gradient_tolerance=self.gradient_tolerance, learning_rate=self.learning_rate, shift=self.shift,
            max_rotation=self.max_rotation, energy_tolerance=self.energy_tolerance,
        )  # fmt: skip
        require(self.max_iterations >= 1, "max_iterations", "a positive integer", self.max_iterations)
        require(
            self.gradient_tolerance > 0, "gradient_tolerance", "a positive number", self.gradient_tolerance
        )
        require(self.learning_rate > 0, "learning_rate", "a positive step size", self.learning_rate)
        if self.minibatch is not None:
            require(self.method == "adam", "minibatch", "the adam optimiser (stochastic steps)", self.method)

    def check_grid(self, ngrid: int) -> None:
        """Refuse a minibatch larger than the grid of ``ngrid`` points."""
        if self.minibatch is not None:
            require(
                isinstance(self.minibatch, int) and 1 <= self.minibatch <= ngrid,
                "minibatch",
                f"an integer from 1 to the grid size {ngrid}",
                self.minibatch,
            )


@dataclass(frozen=True)
class DFTResult:
    """A converged (or stopped) minimisation.

    Attributes:
        energy: total energy (hartree) on the full grid.
        components: the terms of :data:`densitylab.dft.energy.COMPONENTS` (hartree).
        converged: whether the gradient test passed.
        iterations: energy/gradient evaluations used.
        fock_builds: Fock-matrix evaluations besides them (the guess, chart re-centring and the
            final canonical orbitals; each costs about one energy/gradient evaluation).
        seconds: wall time of the minimisation, set-up included.
        mo_coeff: canonical orbitals per spin, (nspin, nao, nmo): eigenvectors of the final Fock
            matrix, occupied first.
        mo_energy: their orbital energies (nspin, nmo) (hartree).
        nelec: (N_alpha, N_beta).
        history: one dict per iteration: energy, gradient (max|g|), step, seconds.
    """

    energy: float
    components: dict
    converged: bool
    iterations: int
    fock_builds: int
    seconds: float
    mo_coeff: np.ndarray
    mo_energy: np.ndarray
    nelec: tuple[int, int]
    unrestricted: bool
    history: list = field(default_factory=list)

    def spin_density_matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """(D_α, D_β), each (nao, nao), in the AO basis."""
        matrices = []
        for spin, count in enumerate(self.nelec):
            occupied = self.mo_coeff[spin if self.unrestricted else 0][:, :count]
            matrices.append(occupied @ occupied.T)
        return matrices[0], matrices[1]

    def density_matrix(self) -> np.ndarray:
        """Total density matrix D (nao, nao) in the AO basis."""
        d_alpha, d_beta = self.spin_density_matrices()
        return d_alpha + d_beta


def _orthonormal_fock(system: KSSystem, fock: np.ndarray) -> np.ndarray:
    """Xᵀ F X (nmo, nmo)."""
    return system.orthogonaliser.T @ fock @ system.orthogonaliser


def initial_guess(
    system: KSSystem, mol, evaluator: Evaluator, guess: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Orthonormal-basis orbitals (nmo, nmo) per spin and their orbital energies: eigenvectors of
    the Fock matrix of ``guess`` (spin density matrices (D_α, D_β) in the AO basis, e.g. the
    previous geometry's), or of PySCF's superposition-of-atomic-densities (``minao``) guess, as
    PySCF's SCF starts."""
    from pyscf.scf import hf

    if guess is None:
        half = 0.5 * hf.init_guess_by_minao(mol)
        guess = (half, half)
    nao = system.nao
    require(
        len(guess) == 2 and all(np.shape(d) == (nao, nao) for d in guess),
        "guess",
        f"two spin density matrices of shape ({nao}, {nao})",
        [np.shape(d) for d in guess],
    )
    _, focks, _ = evaluator.fock_of_density(*guess)
    bases, energies = [], []
    for spin in evaluator.spins:
        values, vectors = np.linalg.eigh(_orthonormal_fock(system, focks[spin]))
        bases.append(vectors)
        energies.append(values)
    return bases, energies


def _pseudo_canonical(system: KSSystem, basis: np.ndarray, count: int, fock: np.ndarray):
    """Rotate occupied and virtual blocks of ``basis`` to diagonalise the Fock matrix in each;
    returns the new basis and the diagonal (ε_occ then ε_vir)."""
    fock_orthonormal = _orthonormal_fock(system, fock)
    blocks, energies = [], []
    for columns in (basis[:, :count], basis[:, count:]):
        values, vectors = np.linalg.eigh(columns.T @ fock_orthonormal @ columns)
        blocks.append(columns @ vectors)
        energies.append(values)
    return np.hstack(blocks), np.concatenate(energies)


def _complete(occupied: np.ndarray) -> np.ndarray:
    """An orthonormal basis (nmo, nmo) whose first columns span ``occupied`` (nmo, n)."""
    full, _ = np.linalg.qr(np.hstack([occupied, np.eye(occupied.shape[0])]))
    return np.hstack([occupied, full[:, occupied.shape[1] : occupied.shape[0]]])


def _canonical_result(system, evaluator, bases, history, converged, started, iterations) -> DFTResult:
    """Diagonalise the final Fock matrices and assemble the :class:`DFTResult`."""
    occupied = [system.orthogonaliser @ b[:, :n] for b, n in zip(bases, evaluator.counts, strict=True)]
    energy, focks, terms = evaluator.fock_matrices(occupied)
    coefficients, energies = [], []
    for spin, count in zip(evaluator.spins, evaluator.counts, strict=True):
        # bases are complete orthonormal with the occupied span first (both optimisers return
        # them so); the block eigenvalues are the canonical orbital energies
        basis, orbital_energies = _pseudo_canonical(system, bases[spin], count, focks[spin])
        coefficients.append(system.orthogonaliser @ basis)
        energies.append(orbital_energies)
    return DFTResult(
        energy=energy,
        components=terms,
        converged=converged,
        iterations=iterations,
        fock_builds=evaluator.fock_builds,
        seconds=time.perf_counter() - started,
        mo_coeff=np.stack(coefficients),
        mo_energy=np.stack(energies),
        nelec=system.nelec,
        unrestricted=system.unrestricted,
        history=history,
    )


def minimise(
    system: KSSystem,
    mol,
    settings: OptimiserSettings = OptimiserSettings(),
    progress: Callable[..., None] | None = None,
    guess: tuple[np.ndarray, np.ndarray] | None = None,
    snapshot: Callable[[Callable[[], tuple[np.ndarray, np.ndarray]]], None] | None = None,
) -> DFTResult:
    """Minimise the energy of ``system`` (built from ``mol``) with ``settings``.

    ``progress`` is called after every iteration as ``progress(iteration, max_iterations,
    energy=…, gradient=…, step=…)`` (:mod:`densitylab.progress`). ``guess``: spin density
    matrices to start from (:func:`initial_guess`). ``snapshot``: called after every iteration
    with a function that returns the current spin density matrices (D_α, D_β) (AO basis), so
    that a checkpoint can be written as often as the caller likes (computing them costs a QR).
    """
    settings.check_grid(system.ngrid)
    started = time.perf_counter()
    evaluator = Evaluator(system)
    if settings.method == "lbfgs":
        evaluator.compile_chart_in_background()
    bases, energies = initial_guess(system, mol, evaluator, guess)
    run = _minimise_lbfgs if settings.method == "lbfgs" else _minimise_adam
    report = None
    if progress is not None:

        def report(entry: dict) -> None:
            fields = {key: entry[key] for key in ("energy", "gradient", "step")}
            progress(entry["iteration"], settings.max_iterations, **fields)

    bases, history, converged, iterations = run(
        system, evaluator, bases, energies, settings, report, started, snapshot
    )
    return _canonical_result(system, evaluator, bases, history, converged, started, iterations)


def _record(history, progress, started, energy, gradient, step) -> None:
    entry = {
        "iteration": len(history) + 1,
        "energy": float(energy),
        "gradient": float(gradient),
        "step": float(step),
        "seconds": time.perf_counter() - started,
    }
    history.append(entry)
    if not (np.isfinite(entry["energy"]) and np.isfinite(entry["gradient"])):
        raise NumericalError(
            f"the minimisation produced a non-finite energy or gradient at iteration {entry['iteration']}; "
            "lower the learning rate (adam) or check the molecule"
        )
    if progress is not None:
        progress(entry)


def _recentre(system, evaluator, bases, kappa, shift: float):
    """New chart at the orbitals of ``kappa``: completed orthonormal bases, pseudo-canonical in the
    current Fock matrix, and the preconditioner diagonal for each spin."""
    occupied_sets = [np.linalg.qr(w)[0] for w in chart_parameters(bases, evaluator.counts, kappa)]
    _, focks, _ = evaluator.fock_matrices([system.orthogonaliser @ q for q in occupied_sets])
    new_bases, diagonal = [], []
    for spin, occupied, count in zip(evaluator.spins, occupied_sets, evaluator.counts, strict=True):
        basis, energies = _pseudo_canonical(system, _complete(occupied), count, focks[spin])
        new_bases.append(basis)
        diagonal.append(_preconditioner(system, energies, count, shift))
    return new_bases, np.concatenate(diagonal)


def _preconditioner(system: KSSystem, energies: np.ndarray, count: int, shift: float) -> np.ndarray:
    """Diagonal Hessian model f·(max(ε_a − ε_i, 0) + shift) over (virtual, occupied) pairs, flattened
    like κ; f = 4 for RKS (two electrons per orbital, C shared), 2 per spin for UKS."""
    factor = 2.0 if system.unrestricted else 4.0
    gaps = energies[count:, None] - energies[None, :count]
    return factor * (np.maximum(gaps, 0.0) + shift).ravel()


def _density_matrices(system: KSSystem, parameters) -> tuple[np.ndarray, np.ndarray]:
    """(D_α, D_β) (AO basis) of the orthonormalised columns of W per spin (one W for RKS)."""
    matrices = []
    for w in parameters:
        orbitals = system.orthogonaliser @ np.linalg.qr(np.asarray(w))[0]
        matrices.append(orbitals @ orbitals.T)
    return matrices[0], matrices[-1]


def _minimise_lbfgs(system, evaluator, bases, energies, settings, progress, started, snapshot=None):
    """SciPy's L-BFGS-B on each chart, preconditioned by the change of variables κ = D^{-1/2}u
    (D the orbital-energy Hessian model), stopped from its callback when max|∂E/∂κ| reaches the
    tolerance or max|κ| the re-centring threshold; a chart that stops short (a failed line
    search, a large rotation) is re-centred at the current orbitals and the history restarts.

    SciPy's rather than a hand-written L-BFGS: with the same preconditioner it needs as many
    evaluations (benchmarks/dft_lbfgs.py: 9/8/9/34 against 9/7/8/38 for water, methane,
    benzene and C20)."""
    size = sum((b.shape[1] - n) * n for b, n in zip(bases, evaluator.counts, strict=True))
    # the guess orbitals are canonical for the guess Fock matrix: its eigenvalues precondition
    # the first chart (no extra Fock build)
    hessian_diagonal = np.concatenate(
        [
            _preconditioner(system, e, n, settings.shift)
            for e, n in zip(energies, evaluator.counts, strict=True)
        ]
    )
    history: list = []
    counter = {"evaluations": 0}
    converged, kappa = False, np.zeros(size)
    while counter["evaluations"] < settings.max_iterations and not converged:
        kappa, converged = _lbfgs_chart(
            evaluator, bases, hessian_diagonal, settings, counter, history, progress, started, snapshot
        )
        if not converged and _stalled(kappa):  # the energy is flat to rounding here
            kappa, converged = _newton_steps(evaluator, bases, hessian_diagonal, settings, counter, history,
                                             progress, started)  # fmt: skip
            if not converged and _stalled(kappa):
                break  # no step lowers the gradient either: as converged as rounding allows
        if not converged and counter["evaluations"] < settings.max_iterations:
            bases, hessian_diagonal = _recentre(system, evaluator, bases, kappa, settings.shift)
            kappa = np.zeros(size)
    occupied = _chart_occupied(bases, evaluator.counts, kappa)
    return occupied, history, converged, counter["evaluations"]


STALLED_ROTATION = 1e-9
"""A chart whose L-BFGS ends within this max|κ| of its centre has stalled: its line search
found no lower energy. That happens near a minimum where the energy's changes, of order
|∂E/∂κ|², fall below its rounding (|E|·1e-16, ~1e-14 Ha): about |∂E/∂κ| ≲ 3e-7 (NH3 B3LYP
stalled at 2.9e-7 with one BLAS thread and converged with two)."""


def _stalled(kappa: np.ndarray) -> bool:
    """Whether a chart ended within :data:`STALLED_ROTATION` of its centre."""
    return float(np.max(np.abs(kappa), initial=0.0)) < STALLED_ROTATION


FLAT_ENERGY = 1e-12
"""Relative rise of the energy a gradient step may make (:func:`_newton_steps`): rounding's
size, so that no step goes uphill in earnest (the NH3 step rose 1.4e-15 relative)."""


def _newton_steps(evaluator, bases, hessian_diagonal, settings, counter, history, progress, started):
    """Diagonal-Newton steps κ ← κ − (∂E/∂κ)/D, taken while they lower max|∂E/∂κ|, for a chart
    whose L-BFGS stalled (:data:`STALLED_ROTATION`): below the energy's rounding only the
    gradient still points the way, and D is the Hessian's diagonal (an SCF step's model). A step
    that raises the energy beyond rounding (:data:`FLAT_ENERGY`) is not taken.
    Returns (κ reached, converged); κ = 0 when no step lowered the gradient."""
    kappa = np.zeros(hessian_diagonal.size)
    start, gradient = evaluator.chart(kappa, bases)
    counter["evaluations"] += 1
    largest = float(np.max(np.abs(gradient)))
    ceiling = float(start) + FLAT_ENERGY * max(1.0, abs(float(start)))  # flat to rounding, not uphill
    while counter["evaluations"] < settings.max_iterations:
        trial = kappa - np.asarray(gradient) / hessian_diagonal
        energy, trial_gradient = evaluator.chart(trial, bases)
        counter["evaluations"] += 1
        if not (float(np.max(np.abs(trial_gradient))) < largest and float(energy) <= ceiling):
            break
        step = float(np.max(np.abs(trial - kappa)))
        kappa, gradient, largest = trial, trial_gradient, float(np.max(np.abs(trial_gradient)))
        _record(history, progress, started, energy, largest, step)
        if largest <= settings.gradient_tolerance:
            return kappa, True
    return kappa, False


def _lbfgs_chart(evaluator, bases, hessian_diagonal, settings, counter, history, progress, started, snapshot):
    """Minimise on one chart from κ = 0; returns (κ reached, converged)."""
    import scipy.optimize

    scale = 1.0 / np.sqrt(hessian_diagonal)
    evaluated: dict[bytes, tuple[float, np.ndarray]] = {}

    def energy_and_gradient(u):
        key = u.tobytes()
        if key not in evaluated:  # SciPy's first call is the start, evaluated already
            value, gradient = evaluator.chart(u * scale, bases)
            counter["evaluations"] += 1
            evaluated.clear()  # the accepted point is the last one evaluated before the callback
            evaluated[key] = (float(value), np.asarray(gradient))
        value, gradient = evaluated[key]
        return value, gradient * scale

    state = {"u": np.zeros(hessian_diagonal.size), "converged": False}

    def accepted(u) -> bool:
        """Record the point; True when the chart should stop here."""
        if u.tobytes() not in evaluated:  # L-BFGS-B reports its last evaluated point; be safe
            energy_and_gradient(u)
        energy, gradient = evaluated[u.tobytes()]
        step = float(np.max(np.abs((u - state["u"]) * scale)))
        state["u"] = u.copy()
        _record(history, progress, started, energy, np.max(np.abs(gradient)), step)
        if snapshot is not None:
            point = chart_parameters(bases, evaluator.counts, u * scale)
            snapshot(lambda: _density_matrices(evaluator.system, point))
        state["converged"] = bool(np.max(np.abs(gradient)) <= settings.gradient_tolerance)
        return state["converged"] or float(np.max(np.abs(u * scale))) > settings.max_rotation

    def callback(intermediate_result) -> None:
        if accepted(np.asarray(intermediate_result.x)) or counter["evaluations"] >= settings.max_iterations:
            raise StopIteration

    start = np.zeros(hessian_diagonal.size)
    energy_and_gradient(start)
    if not accepted(start) and counter["evaluations"] < settings.max_iterations:
        budget = settings.max_iterations - counter["evaluations"]
        scipy.optimize.minimize(
            energy_and_gradient, start, jac=True, method="L-BFGS-B", callback=callback,
            options={"maxcor": settings.memory, "maxfun": budget, "maxiter": budget, "gtol": 0, "ftol": 0},
        )  # fmt: skip
    return state["u"] * scale, state["converged"]


def _chart_occupied(bases, counts, kappa) -> list[np.ndarray]:
    """Orthonormal-basis orbitals (nmo, nmo) per spin whose first columns are Q(W(κ))."""
    return [_complete(np.linalg.qr(w)[0]) for w in chart_parameters(bases, counts, kappa)]


def _minimise_adam(system, evaluator, bases, energies, settings, progress, started, snapshot=None):
    import optax

    jnp = evaluator.jnp
    parameters = [jnp.asarray(b[:, :n]) for b, n in zip(bases, evaluator.counts, strict=True)]
    schedule = settings.learning_rate
    if settings.final_learning_rate is not None:
        schedule = optax.exponential_decay(
            settings.learning_rate,
            transition_steps=settings.max_iterations,
            decay_rate=settings.final_learning_rate / settings.learning_rate,
        )
    optimiser = optax.adam(schedule)
    state = optimiser.init(parameters)
    rng = np.random.default_rng(settings.seed)
    history: list = []
    converged = False
    recent: list = []
    for _ in range(settings.max_iterations):
        ops = evaluator.ops
        if settings.minibatch is not None:
            indices = np.sort(rng.choice(system.ngrid, size=settings.minibatch, replace=False))
            ops = evaluator.minibatch_operands(indices)
        energy, gradient = evaluator.parameter_value_and_grad(parameters, ops)
        riemannian = max(
            _riemannian_norm(np.asarray(w), np.asarray(g)) for w, g in zip(parameters, gradient, strict=True)
        )
        updates, state = optimiser.update(gradient, state, parameters)
        parameters = optax.apply_updates(parameters, updates)
        step = max(float(jnp.max(jnp.abs(u))) for u in updates)
        _record(history, progress, started, energy, riemannian, step)
        if snapshot is not None:
            snapshot(lambda point=list(parameters): _density_matrices(system, point))
        recent.append(float(energy))
        if settings.minibatch is None and riemannian <= settings.gradient_tolerance:
            converged = True
            break
        if len(recent) > settings.patience:
            recent.pop(0)
            if settings.minibatch is None and max(recent) - min(recent) < settings.energy_tolerance:
                converged = riemannian <= settings.gradient_tolerance
                break
    occupied = [_complete(np.linalg.qr(np.asarray(w))[0]) for w in parameters]
    return occupied, history, converged, len(history)


def _riemannian_norm(parameters: np.ndarray, gradient: np.ndarray) -> float:
    """max|(1 − QQᵀ) ∂E/∂Q| at W, the Grassmann gradient in the orthonormal basis."""
    q, r = np.linalg.qr(parameters)
    gradient_q = gradient @ np.linalg.inv(r).T  # ∂E/∂Q from ∂E/∂W for the span-only energy
    return float(np.max(np.abs(gradient_q - q @ (q.T @ gradient_q))))
