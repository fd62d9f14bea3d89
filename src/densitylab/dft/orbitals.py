"""Direct minimisation beyond the fixed basis: the basis optimised jointly with the orbitals,
flow orbitals ψ_i(r) = Σ_μ C_μi φ_μ(f(r)), or both, on the grid of :mod:`densitylab.dft.gridks`.

Routes (``OrbitalsSettings.routes``):

- ``optimised-basis``: log-exponents and contraction coefficients of every shell
  (:mod:`densitylab.dft.gaussians`, tied per element by default), with the analytic overlap of
  the current basis keeping the orbitals orthonormal; ``extra_shells`` adds one-primitive
  shells (e.g. polarisation) optimised the same way.
- ``flow``: a volume-preserving flow (:mod:`densitylab.dft.flow`), the identity at the start.
- none: the fixed basis, on the same grid (the reference the routes are measured against).

The orbitals start from PySCF's converged SCF in the starting basis and move with them. Two
modes: ``full`` (deterministic, optax L-BFGS with a zoom line search on the whole grid; each
accepted step lowers the energy) and ``minibatch`` (Adam on unbiased two-half minibatch
estimates, whose standard deviation at the end is reported). Both run in densitylab's one
training loop (:func:`densitylab.training.optax_loop`). The final energy is evaluated on the
full grid and, with ``check_level``, on a finer grid (the grid error of the result).

Closed-shell molecules, LDA and GGA functionals (exact exchange is not on the grid).
Energies in hartree, lengths in bohr.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from densitylab.dft import gridks
from densitylab.dft.gaussians import (
    TIES,
    GaussianBasis,
    nwchem_text,
    parse_extra_shells,
    prepare,
    pyscf_basis,
)
from densitylab.dft.system import DEFAULT_AUXBASIS
from densitylab.errors import require, require_finite

ROUTES = ("optimised-basis", "flow")
CHECKPOINT_EVERY = 10  # steps between checkpoints
MODES = ("full", "minibatch")


def parse_routes(text: str) -> tuple[str, ...]:
    """'fixed', 'optimised-basis', 'flow' or 'optimised-basis,flow' → the routes."""
    names = tuple(part.strip() for part in str(text).split(",") if part.strip())
    require(names != (), "orbitals", "fixed, optimised-basis, flow or optimised-basis,flow", text)
    if names == ("fixed",):
        return ()
    for name in names:
        require(name in ROUTES, "orbitals", "fixed, optimised-basis, flow or optimised-basis,flow", text)
    return tuple(route for route in ROUTES if route in names)


@dataclass(frozen=True)
class OrbitalsSettings:
    """How to go beyond the fixed basis (validated on construction).

    Attributes:
        routes: a subset of ("optimised-basis", "flow"); () is the fixed basis on the grid.
        tie: basis parameters shared per "element" (transferable) or per "atom".
        extra_shells: "ELEMENT:L:EXPONENT" one-primitive shells added to the start basis.
        mode: "full" (deterministic L-BFGS) or "minibatch" (Adam on unbiased estimates).
        max_iterations: optimiser steps; gradient_tolerance: stop when the gradient's norm
            falls below it (full mode).
        minibatch: grid points per step (two independent halves); learning_rate: Adam's.
        final_learning_rate: Adam's step decays exponentially to it at ``max_iterations`` (a
            stochastic run needs the decay to settle instead of wandering at its noise floor);
            None keeps the step constant.
        flow_layers, flow_width, flow_scale: the flow's couplings, MLP width and length (bohr).
        pin_nuclei: the flow leaves the nuclei and the space right around them unmoved (the
            core orbitals keep their shape; without it the flow spends its steps on them).
        grid_level, auxbasis: PySCF's grid level and the fixed auxiliary basis of the Hartree fit.
        check_level: a finer grid level on which the final orbitals are evaluated again (None
            to skip).
        seed: flow initialisation and minibatch sampling.
    """

    routes: tuple[str, ...] = ("optimised-basis",)
    tie: str = "element"
    extra_shells: tuple[str, ...] = ()
    mode: str = "full"
    max_iterations: int = 200
    gradient_tolerance: float = 1e-6
    minibatch: int = 4096
    learning_rate: float = 2e-3
    final_learning_rate: float | None = None
    flow_layers: int = 6
    flow_width: int = 16
    flow_scale: float = 2.0
    pin_nuclei: bool = True
    grid_level: int = 3
    auxbasis: str = DEFAULT_AUXBASIS
    check_level: int | None = 5
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "routes", tuple(self.routes))
        object.__setattr__(self, "extra_shells", tuple(self.extra_shells))
        for route in self.routes:
            require(route in ROUTES, "orbitals", f"routes among {', '.join(ROUTES)}", self.routes)
        require(self.tie in TIES, "tie", f"one of {', '.join(TIES)}", self.tie)
        require(self.mode in MODES, "mode", f"one of {', '.join(MODES)}", self.mode)
        parse_extra_shells(self.extra_shells)
        require_finite(
            gradient_tolerance=self.gradient_tolerance,
            learning_rate=self.learning_rate,
            flow_scale=self.flow_scale,
        )
        require(
            isinstance(self.max_iterations, int) and self.max_iterations >= 1,
            "max_iterations",
            "a positive integer",
            self.max_iterations,
        )
        require(self.learning_rate > 0, "learning_rate", "a positive step size", self.learning_rate)
        if self.final_learning_rate is not None:
            require(
                np.isfinite(self.final_learning_rate) and 0 < self.final_learning_rate <= self.learning_rate,
                "final_learning_rate",
                "a positive step no larger than learning_rate, or None",
                self.final_learning_rate,
            )
        require(
            isinstance(self.grid_level, int) and 0 <= self.grid_level <= 9,
            "grid_level",
            "an integer 0–9",
            self.grid_level,
        )
        if self.check_level is not None:
            require(
                isinstance(self.check_level, int) and self.grid_level < self.check_level <= 9,
                "check_level",
                f"an integer above grid_level ({self.grid_level}) and at most 9, or None",
                self.check_level,
            )
        if self.mode == "minibatch":
            require(
                isinstance(self.minibatch, int) and self.minibatch >= 2,
                "minibatch",
                "an integer ≥ 2",
                self.minibatch,
            )
        if self.extra_shells:
            require(
                "optimised-basis" in self.routes or not self.routes,
                "extra_shells",
                "the optimised-basis route or the fixed basis",
                self.routes,
            )


def check_functional(xc: str) -> None:
    """Refuse what the grid energy cannot evaluate: hybrids, meta-GGAs, Hartree–Fock."""
    from densitylab.dft.system import parse_xc

    functional = parse_xc(xc)
    require(
        functional.family in ("LDA", "GGA") and functional.exact_exchange == 0,
        "xc",
        "an LDA or GGA functional without exact exchange with --orbitals (everything is on the grid)",
        xc,
    )


def check_minibatch(settings: OrbitalsSettings, problem: gridks.GridProblem) -> None:
    """Each half-batch must hold at least one point per auxiliary function, or the Hartree
    estimate ½ b_Aᵀ J⁻¹ b_B is too noisy to steer anything."""
    if settings.mode == "minibatch":
        least = 2 * problem.naux
        require(
            least <= settings.minibatch <= problem.weights.size,
            "minibatch",
            f"from {least} (two halves of one point per auxiliary function, to estimate the Hartree "
            f"term) to the grid size {problem.weights.size}",
            settings.minibatch,
        )


@dataclass(frozen=True)
class OrbitalsResult:
    """The outcome of :func:`optimise_orbitals`.

    Attributes:
        energy: total energy on the full grid (Ha); components: its terms.
        start_energy: the starting orbitals' energy in the starting basis, same grid.
        check_energy: the final orbitals on the ``check_level`` grid (None if skipped).
        history: per step: energy (the minibatch estimate in minibatch mode), gradient norm,
            seconds.
        basis: the final basis as PySCF's dict (``gto.M(basis=...)``); basis_text in NWChem form.
        minibatch_std: the standard deviation of the minibatch energy estimate at the end.
        settings, xc, basis_name, seconds, peak_rss_gb.
    """

    energy: float
    components: dict
    start_energy: float
    check_energy: float | None
    history: list
    basis: dict
    basis_text: str
    minibatch_std: float | None
    settings: OrbitalsSettings
    xc: str
    basis_name: str
    seconds: float
    peak_rss_gb: float
    parameters: dict = field(default_factory=dict, repr=False)

    def summary(self) -> dict:
        return {
            "energy": self.energy,
            "start_energy": self.start_energy,
            "lowering": self.start_energy - self.energy,
            "check_energy": self.check_energy,
            "steps": len(self.history),
            "seconds": self.seconds,
            "peak_rss_gb": self.peak_rss_gb,
            "minibatch_std": self.minibatch_std,
            "components": self.components,
        }

    def plot(self, path: str | Path, levels: dict | None = None) -> Path:
        """energy.png: the energy at every step, with lines at ``levels`` (name → energy)."""
        from densitylab.plots import plot_energy_steps

        name = "+".join(self.settings.routes) or "fixed basis"
        return plot_energy_steps({name: [h["energy"] for h in self.history]}, path, levels or {})

    def save(self, path: str | Path) -> Path:
        """An artefact folder (kind ``dft-orbitals``): manifest (settings, summary, history, the
        final basis as PySCF's dict under ``optimised_basis``), ``basis.nw`` (NWChem;
        ``gto.M(basis="basis.nw")`` reads it when tied per element; per atom, pass the dict with
        atoms labelled 'O0', 'H1', …), ``arrays.h5`` (κ, the flow's weights flattened) and
        ``energy.png``."""
        from densitylab.artefacts import artefact_folder, write_manifest
        from densitylab.data import write_h5

        with artefact_folder(path) as folder:
            (folder / "basis.nw").write_text(self.basis_text)
            write_h5(
                folder / "arrays.h5", self.parameters or {"energy": np.array([self.energy])}, {"xc": self.xc}
            )
            self.plot(folder / "energy.png")
            write_manifest(
                folder,
                "dft-orbitals",
                asdict(self.settings),
                seed=self.settings.seed,
                summary=self.summary(),
                xc=self.xc,
                basis=self.basis_name,
                optimised_basis=self.basis,
                history=self.history,
            )
        return Path(path)


def _start(mol, xc: str, settings: OrbitalsSettings):
    """The layout, parameters, start molecule (with extra shells) and PySCF's SCF orbitals."""
    from pyscf import dft, gto

    layout, params = prepare(mol, settings.tie, parse_extra_shells(settings.extra_shells))
    require(mol.nao >= mol.nelectron // 2, "basis", f"at least {mol.nelectron // 2} functions", mol.nao)
    atoms = [
        (f"{s}{i}" if settings.tie == "atom" else s, xyz)
        for i, (s, xyz) in enumerate(zip(layout.symbols, layout.centres, strict=True))
    ]
    start = gto.M(
        atom=atoms,
        unit="Bohr",
        basis=pyscf_basis(layout, params),
        charge=mol.charge,
        spin=mol.spin,
        verbose=0,
    )
    basis = GaussianBasis(layout, params)
    overlap = np.asarray(basis.overlap(params))
    require(
        np.allclose(overlap, start.intor("int1e_ovlp"), atol=1e-10),
        "basis",
        "a basis whose shells PySCF keeps in the order given",
        mol.basis,
    )
    mf = dft.RKS(start)
    mf.xc, mf.grids.level, mf.conv_tol = xc, settings.grid_level, 1e-10
    mf.kernel()
    return layout, params, basis, start, mf


def _energy_function(problem, basis: GaussianBasis, frozen_params, reference, jax, jnp):
    """loss(tree, *halves) → (energy, terms) with tree = {kappa, [basis], [flow]}."""
    from densitylab.dft.xc import xc_energy_function

    xc_energy = xc_energy_function(problem.xc, 0)

    def terms(tree, half_a, half_b=None):
        params = tree.get("basis", frozen_params)
        flow = tree.get("flow")
        coefficients = gridks.orbital_coefficients(
            jnp, basis.overlap(params), reference, tree["kappa"], problem.nocc
        )

        def values_at(points):
            return basis.values(params, points if flow is None else flow(points))

        return gridks.energy_terms(jax, jnp, xc_energy, problem, values_at, coefficients, half_a, half_b)

    return terms


def optimise_orbitals(
    mol,
    xc: str,
    settings: OrbitalsSettings | None = None,
    progress: Callable[..., None] | None = None,
    checkpoint: str | Path | None = None,
) -> OrbitalsResult:
    """Minimise the KS energy of ``mol`` (a PySCF ``Mole``, closed shell) over the orbitals and
    the routes of ``settings``. See the module docstring.

    ``checkpoint``: a .npz path; every ``CHECKPOINT_EVERY`` steps the parameters, the optimiser's state, the
    history and the minibatch generator are written there, and a rerun with the same molecule,
    functional and settings (``max_iterations`` may grow) continues from it; a checkpoint of
    another job is refused. Removed when the run ends."""
    from densitylab.jaxsetup import jax_modules

    settings = settings or OrbitalsSettings()
    check_functional(xc)
    require(mol.spin == 0, "spin", "a closed-shell molecule (spin 0) with --orbitals", mol.spin)
    jax, jnp, eqx = jax_modules()
    started = time.perf_counter()
    layout, params, basis, start, mf = _start(mol, xc, settings)
    problem = gridks.grid_problem(start, xc, settings.grid_level, settings.auxbasis)
    check_minibatch(settings, problem)
    lower = np.linalg.cholesky(start.intor("int1e_ovlp"))
    reference = jnp.asarray(_pinned_reference(checkpoint, lower.T @ _signed(mf.mo_coeff)))
    params = tuple((jnp.asarray(e), jnp.asarray(c)) for e, c in params)
    tree = {"kappa": jnp.zeros((start.nao - problem.nocc, problem.nocc))}
    if "optimised-basis" in settings.routes:
        tree["basis"] = params
    if "flow" in settings.routes:
        from densitylab.dft.flow import make_flow

        centre = layout.centres.mean(axis=0)
        tree["flow"] = make_flow(
            centre,
            settings.flow_layers,
            settings.flow_width,
            scale=settings.flow_scale,
            seed=settings.seed,
            pins=layout.centres if settings.pin_nuclei else None,
        )
    terms = _energy_function(problem, basis, params, reference, jax, jnp)
    full = tuple(jnp.asarray(a) for a in gridks.full_grid(problem))
    evaluate = eqx.filter_jit(terms)  # one compiled full-grid evaluation for the start and the end
    start_energy = float(sum(evaluate(tree, full).values()))
    job = _job(mol, xc, settings) if checkpoint is not None else None
    tree, history, spread = _minimise(
        terms, tree, problem, mf, settings, full, progress, started, (checkpoint, job)
    )
    final = {k: float(v) for k, v in evaluate(tree, full).items()}
    check = None
    if settings.check_level is not None:
        fine = gridks.grid_problem(start, xc, settings.check_level, settings.auxbasis)
        fine_terms = _energy_function(fine, basis, params, reference, jax, jnp)
        fine_grid = tuple(jnp.asarray(a) for a in gridks.full_grid(fine))
        check = float(sum(eqx.filter_jit(fine_terms)(tree, fine_grid).values()))
    final_params = tree.get("basis", params)
    if checkpoint is not None:
        _reference_path(checkpoint).unlink(missing_ok=True)
    return OrbitalsResult(
        energy=float(sum(final.values())),
        components=final,
        start_energy=start_energy,
        check_energy=check,
        history=history,
        basis=pyscf_basis(layout, final_params),
        basis_text=nwchem_text(layout, final_params),
        minibatch_std=spread,
        settings=settings,
        xc=xc,
        basis_name=str(mol.basis),
        seconds=time.perf_counter() - started,
        peak_rss_gb=_peak_rss_gb(),
        parameters=_flat_parameters(tree, eqx),
    )


def _reference_path(checkpoint: str | Path) -> Path:
    return Path(checkpoint).with_suffix(".reference.npy")


def _pinned_reference(checkpoint: str | Path | None, reference: np.ndarray) -> np.ndarray:
    """The orbitals κ is measured from: those stored beside an existing checkpoint (a rerun's SCF
    may return another basis of the same spaces, which would make the stored κ mean something
    else), else ``reference``, stored there for a later resume."""
    from densitylab.data import atomic_output

    if checkpoint is None:
        return reference
    stored = _reference_path(checkpoint)
    if Path(checkpoint).is_file() and stored.is_file():
        pinned = np.load(stored)
        require(
            pinned.shape == reference.shape,
            "checkpoint",
            f"orbitals of shape {reference.shape}",
            pinned.shape,
        )
        return pinned
    with atomic_output(stored) as temporary:
        np.save(temporary, reference)
    return reference


def _signed(orbitals: np.ndarray) -> np.ndarray:
    """Each column with its largest component positive: the SCF's eigenvector signs can differ
    from run to run, and κ (hence a checkpoint) is only meaningful against fixed signs."""
    rows = np.argmax(np.abs(orbitals), axis=0)
    return orbitals * np.sign(orbitals[rows, np.arange(orbitals.shape[1])])


def _flat_parameters(tree, eqx) -> dict:
    from jax.flatten_util import ravel_pytree

    out = {"kappa": np.array(tree["kappa"], copy=True)}
    if "flow" in tree:
        out["flow"] = np.asarray(ravel_pytree(eqx.filter(tree["flow"], eqx.is_inexact_array))[0])
    return out


def _peak_rss_gb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def _job(mol, xc: str, settings: OrbitalsSettings) -> dict:
    """What defines a run for its checkpoint (the step budget may change between runs)."""
    from densitylab.checkpoint import fingerprint

    fields = {k: v for k, v in asdict(settings).items() if k != "max_iterations"}
    return {
        "kind": "dft-orbitals",
        "xc": xc,
        "basis": str(mol.basis),
        "charge": mol.charge,
        "geometry": fingerprint(np.asarray(mol.atom_coords())),
        **fields,
    }


def _resumable(resume, history: list, rng):
    """The training loop's :class:`~densitylab.training.Resumable` (None without a checkpoint)."""
    from densitylab.training import Resumable

    path, job = resume
    if path is None:
        return None

    def save() -> dict:
        return {"history": history, "rng": None if rng is None else rng.bit_generator.state}

    def restore(state: dict) -> None:
        history[:] = state["history"]
        if rng is not None:
            rng.bit_generator.state = state["rng"]

    return Resumable(path=path, settings=job, every=CHECKPOINT_EVERY, save=save, restore=restore)


def _minimise(
    terms, tree, problem, mf, settings: OrbitalsSettings, full, progress, started, resume=(None, None)
):
    """Run the one training loop; returns (tree, history, minibatch std or None)."""
    import optax
    from equinox import filter_jit as eqx_jit

    from densitylab.training import optax_loop

    history: list[dict] = []

    def on_epoch(epoch, current, losses, norms) -> bool:
        energy, norm = float(np.mean(losses)), float(np.max(norms))
        history.append({"energy": energy, "gradient": norm, "seconds": time.perf_counter() - started})
        if progress is not None:
            progress(epoch, settings.max_iterations, energy=energy, gradient=norm)
        return settings.mode == "full" and norm < settings.gradient_tolerance

    if settings.mode == "full":

        def loss(current):
            return sum(terms(current, full).values())

        resumable = _resumable(resume, history, None)
        tree = optax_loop(
            loss,
            tree,
            optax.lbfgs(),
            settings.max_iterations,
            on_epoch=on_epoch,
            linesearch=True,
            resumable=resumable,
        )
        return tree, history, None
    rng = np.random.default_rng(settings.seed)
    probabilities = gridks.sampling_probabilities(problem, _start_magnitude(problem, mf))
    half = settings.minibatch // 2

    def batches(epoch):
        return [
            (
                gridks.sample_half(problem, probabilities, half, rng),
                gridks.sample_half(problem, probabilities, half, rng),
            )
        ]

    def loss(current, half_a, half_b):
        return sum(terms(current, half_a, half_b).values())

    tree = optax_loop(
        loss,
        tree,
        optax.adam(_schedule(settings)),
        settings.max_iterations,
        batches=batches,
        on_epoch=on_epoch,
        resumable=_resumable(resume, history, rng),
    )
    estimate = eqx_jit(loss)
    estimates = [float(estimate(tree, *batches(0)[0])) for _ in range(16)]
    return tree, history, float(np.std(estimates, ddof=1))


def _schedule(settings: OrbitalsSettings):
    """Adam's step: constant, or decaying exponentially to ``final_learning_rate``."""
    import optax

    if settings.final_learning_rate is None:
        return settings.learning_rate
    rate = settings.final_learning_rate / settings.learning_rate
    return optax.exponential_decay(settings.learning_rate, settings.max_iterations, rate)


def _start_magnitude(problem, mf) -> np.ndarray:
    """The starting orbitals' energy integrand size on the grid (importance sampling)."""
    from pyscf.dft import numint

    ao = numint.eval_ao(mf.mol, problem.coords, deriv=1)
    rho = numint.eval_rho(mf.mol, ao, mf.make_rdm1(), xctype="MGGA")
    return gridks.integrand_magnitude(problem, tau=rho[-1], density=rho[0])


@dataclass(frozen=True)
class SavedOrbitals:
    """A saved :class:`OrbitalsResult`: manifest (settings, summary, history) and the basis."""

    path: Path
    manifest: dict
    basis_text: str

    @property
    def energy(self) -> float:
        return float(self.manifest["summary"]["energy"])


def load_orbitals(path: str | Path) -> SavedOrbitals:
    """An artefact written by :meth:`OrbitalsResult.save`."""
    from densitylab.artefacts import read_manifest

    manifest = read_manifest(path, ("dft-orbitals",), "path")
    return SavedOrbitals(Path(path), manifest, (Path(path) / "basis.nw").read_text())
