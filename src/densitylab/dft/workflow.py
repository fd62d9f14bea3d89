"""Direct-minimisation DFT as one call: :class:`DFTConfig` (validated when made) and
:func:`run` → :class:`~densitylab.dft.run.DFTReport`, which saves itself as an artefact folder
(manifest, arrays.h5 with the orbitals, density.cube, convergence.png) and loads back with
:func:`~densitylab.dft.run.load_result` or :func:`densitylab.load`.

``densitylab dft`` is this and nothing more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from densitylab.dft.forces import forces as dft_forces
from densitylab.dft.molecule import load_molecule
from densitylab.dft.optimise import OptimiserSettings
from densitylab.dft.run import DFTReport, pyscf_solve, run_dft
from densitylab.dft.system import DEFAULT_AUXBASIS, DFTSettings
from densitylab.errors import require


@dataclass(frozen=True)
class DFTConfig:
    """A molecule and how to compute its Kohn–Sham ground state.

    Attributes:
        molecule: an xyz/extxyz file (ångström); the Python API also takes an ``ase.Atoms`` or
            a PySCF ``Mole`` in :func:`~densitylab.dft.run.run_dft`.
        basis, xc, charge, spin, unrestricted: the calculation (spin is 2S; spin > 0 runs UKS).
        optimiser, max_iterations, gradient_tolerance: "lbfgs" (preconditioned, production) or
            "adam" (D4FT, with ``learning_rate`` and optional grid ``minibatch``); the budget of
            energy/gradient evaluations and the convergence test max|gradient| (Ha).
        coulomb, auxbasis, grid_level: "df" (density fitting in ``auxbasis``) or "exact"
            Coulomb, and PySCF's grid level 0–9.
        xc_grid: "stored", "streamed" or "auto" AO values on the XC grid (:class:`DFTSettings`).
        df_storage: "device" (the DF tensor on JAX's device), "disk" (kept by PySCF, read
            block by block for J and K at every evaluation; the least memory) or "auto" (the
            device while it takes at most half the host's free memory, 90 % of a GPU's).
        shape_buckets: round the compiled shapes up to buckets, so that molecules of similar
            size and other compositions reuse compiled code (:class:`DFTSettings`).
        compare: also run PySCF's SCF with the same settings; its energy, orbitals (and
            forces) are kept beside densitylab's.
        forces: compute −∂E/∂R (Ha/bohr) at the converged orbitals (:mod:`densitylab.dft.forces`);
            their error follows the orbitals' (1e-7 Ha/bohr for water at the default
            ``gradient_tolerance`` 1e-5; tighten it for finer forces).
    """

    molecule: str
    basis: str = "6-31g"
    xc: str = "b3lyp"
    charge: int = 0
    spin: int = 0
    unrestricted: bool = False
    optimiser: str = "lbfgs"
    minibatch: int | None = None
    learning_rate: float = 1e-2
    max_iterations: int = 300
    gradient_tolerance: float = 1e-5
    coulomb: str = "df"
    auxbasis: str = DEFAULT_AUXBASIS
    grid_level: int = 3
    xc_grid: str = "auto"
    df_storage: str = "auto"
    shape_buckets: bool = False
    compare: bool = False
    forces: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "molecule", str(self.molecule))
        require(Path(self.molecule).is_file(), "molecule", "an existing xyz/extxyz file", self.molecule)
        self.settings()
        self.optimiser_settings()
        # the file, its elements, the basis, charge and spin, refused now (before a progress bar)
        load_molecule(self.molecule, basis=self.basis, charge=self.charge, spin=self.spin)

    def settings(self) -> DFTSettings:
        return DFTSettings(
            xc=self.xc, grid_level=self.grid_level, coulomb=self.coulomb, auxbasis=self.auxbasis,
            unrestricted=self.unrestricted, xc_grid=self.xc_grid, df_storage=self.df_storage,
            shape_buckets=self.shape_buckets,
        )  # fmt: skip

    def optimiser_settings(self) -> OptimiserSettings:
        return OptimiserSettings(
            method=self.optimiser, max_iterations=self.max_iterations,
            gradient_tolerance=self.gradient_tolerance, learning_rate=self.learning_rate,
            minibatch=self.minibatch,
        )  # fmt: skip


def run(
    config: DFTConfig, progress: Callable[..., None] | None = None, checkpoint: str | Path | None = None
) -> DFTReport:
    """Minimise; with ``config.compare`` also run PySCF's SCF with the same settings (the
    report's ``reference``). ``progress`` follows :mod:`densitylab.progress` (iterations, with
    ``energy``, ``gradient`` and ``step``). ``checkpoint``: a .npz path that makes the
    minimisation resumable (:func:`~densitylab.dft.run.run_dft`)."""
    report = run_dft(
        config.molecule, basis=config.basis, xc=config.xc, charge=config.charge, spin=config.spin,
        settings=config.settings(), optimiser=config.optimiser_settings(), progress=progress,
        checkpoint=checkpoint,
    )  # fmt: skip
    forces = None
    if config.forces:
        forces = dft_forces(report.mol, report.settings, report.result)
    reference, arrays = _pyscf_comparison(report, config.forces) if config.compare else (None, None)
    return replace(report, config=asdict(config), reference=reference, forces=forces, reference_arrays=arrays)


def _pyscf_comparison(report: DFTReport, with_forces: bool) -> tuple[dict, dict]:
    """PySCF's SCF with the report's settings: its summary (energy, converged, seconds, cycles,
    forces) and arrays (orbitals, energies, occupations, forces) to save beside densitylab's."""
    import numpy as np

    from densitylab.dft.forces import gradient_of

    mf, seconds, cycles = pyscf_solve(report.mol, report.settings)
    reference = {
        "energy": float(mf.e_tot),
        "converged": bool(mf.converged),
        "seconds": seconds,
        "cycles": cycles,
    }
    arrays = {f"pyscf_{name}": np.asarray(getattr(mf, name)) for name in ("mo_coeff", "mo_energy", "mo_occ")}
    if with_forces:
        arrays["pyscf_forces"] = -gradient_of(mf)
        reference["forces"] = arrays["pyscf_forces"].tolist()
    return reference, arrays


@dataclass(frozen=True)
class OrbitalsConfig:
    """A molecule and how to go beyond its fixed basis (:mod:`densitylab.dft.orbitals`).

    Attributes:
        molecule, basis, xc, charge: the calculation (closed shell; LDA or GGA; ``basis`` is
            the starting basis).
        orbitals: "optimised-basis", "flow", "optimised-basis,flow" or "fixed" (the fixed basis
            on the same grid).
        tie: basis parameters per "element" or per "atom".
        extra_shell: one-primitive shells "ELEMENT:L:EXPONENT" added and optimised.
        minibatch: grid points per Adam step (two halves), whose step decays from
            ``learning_rate`` to a hundredth of it; None for the deterministic full grid.
        learning_rate, max_iterations, gradient_tolerance, grid_level, auxbasis, seed: as in
            :class:`~densitylab.dft.orbitals.OrbitalsSettings`; the defaults of the shared ones
            are :class:`DFTConfig`'s, so that ``dft --orbitals`` and this config agree.
    """

    molecule: str
    basis: str = "6-31g"
    xc: str = "lda,vwn"
    charge: int = 0
    orbitals: str = "optimised-basis"
    tie: str = "element"
    extra_shell: tuple[str, ...] = ()
    minibatch: int | None = None
    learning_rate: float = 1e-2
    max_iterations: int = 300
    gradient_tolerance: float = 1e-5
    grid_level: int = 3
    auxbasis: str = DEFAULT_AUXBASIS
    seed: int = 0

    def __post_init__(self) -> None:
        from densitylab.dft.orbitals import check_functional

        object.__setattr__(self, "molecule", str(self.molecule))
        object.__setattr__(self, "extra_shell", tuple(self.extra_shell or ()))
        require(Path(self.molecule).is_file(), "molecule", "an existing xyz/extxyz file", self.molecule)
        check_functional(self.xc)
        self.settings()

    def settings(self):
        from densitylab.dft.orbitals import OrbitalsSettings, parse_routes

        return OrbitalsSettings(
            routes=parse_routes(self.orbitals), tie=self.tie, extra_shells=self.extra_shell,
            mode="full" if self.minibatch is None else "minibatch", minibatch=self.minibatch or 4096,
            learning_rate=self.learning_rate, max_iterations=self.max_iterations,
            final_learning_rate=None if self.minibatch is None else self.learning_rate / 100,
            gradient_tolerance=self.gradient_tolerance, grid_level=self.grid_level, auxbasis=self.auxbasis,
            check_level=min(self.grid_level + 2, 9) if self.grid_level < 9 else None, seed=self.seed,
        )  # fmt: skip


def run_orbitals(
    config: OrbitalsConfig, progress: Callable[..., None] | None = None, checkpoint: str | Path | None = None
):
    """Optimise the orbitals beyond the fixed basis → :class:`~densitylab.dft.orbitals.OrbitalsResult`;
    resumable from ``checkpoint`` (.npz) as :func:`~densitylab.dft.orbitals.optimise_orbitals`."""
    from densitylab.dft.molecule import load_molecule
    from densitylab.dft.orbitals import optimise_orbitals

    mol = load_molecule(config.molecule, basis=config.basis, charge=config.charge, spin=0)
    return optimise_orbitals(mol, config.xc, config.settings(), progress, checkpoint)
