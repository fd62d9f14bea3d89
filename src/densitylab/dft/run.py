"""The direct-minimisation workflow end to end: molecule in, converged energy, orbitals, a cube
file of the density and a convergence plot out; and PySCF's SCF with identical settings, for
comparison.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from densitylab.artefacts import ARRAYS, artefact_folder, read_manifest, write_manifest
from densitylab.data import read_h5, write_h5
from densitylab.dft.cube import density_matrix_density, write_cube
from densitylab.dft.molecule import load_molecule
from densitylab.dft.optimise import DFTResult, OptimiserSettings, minimise
from densitylab.dft.system import DFTSettings, build_system
from densitylab.errors import require


@dataclass(frozen=True)
class DFTReport:
    """A finished calculation with everything needed to reproduce it.

    Attributes:
        mol: the PySCF ``Mole`` (basis, charge, spin and geometry in bohr).
        settings, optimiser: how it was computed.
        result: the :class:`~densitylab.dft.optimise.DFTResult`.
        setup_seconds: integrals, grid and density-fitting tensors.
        ngrid: XC grid points.
        xc_grid: "stored" or "streamed", how the XC term met the grid (:class:`DFTSettings`).
        config: the :class:`~densitylab.dft.workflow.DFTConfig` it was run from, if any.
        reference: PySCF's SCF with the same settings (energy, converged, seconds, cycles, and
            its analytic forces when forces were asked for), if run.
        forces: −∂E/∂R (natm, 3), Ha/bohr (:mod:`densitylab.dft.forces`), if computed.
        reference_arrays: PySCF's orbitals (``pyscf_mo_coeff``, ``pyscf_mo_energy``,
            ``pyscf_mo_occ``) and forces (``pyscf_forces``), saved beside densitylab's.
        padding: the compiled problem's buckets (:class:`~densitylab.dft.buckets.Padding`),
            when ``settings.shape_buckets`` applied.
    """

    mol: object
    settings: DFTSettings
    optimiser: OptimiserSettings
    result: DFTResult
    setup_seconds: float
    ngrid: int
    xc_grid: str = "stored"
    config: dict | None = None
    reference: dict | None = None
    forces: np.ndarray | None = None
    reference_arrays: dict | None = None
    padding: object | None = None

    @property
    def seconds(self) -> float:
        """Wall time, set-up included."""
        return self.setup_seconds + self.result.seconds

    def summary(self) -> dict:
        """JSON-ready: energy (Ha), convergence, timing, components, and every setting that
        reproduces the number in PySCF (basis, xc, coulomb, grid_level, charge, spin)."""
        mol, result = self.mol, self.result
        return {
            "energy": result.energy,
            "converged": result.converged,
            "iterations": result.iterations,
            "fock_builds": result.fock_builds,
            "seconds": self.seconds,
            "setup_seconds": self.setup_seconds,
            "components": result.components,
            "gradient_max": result.history[-1]["gradient"] if result.history else None,
            "basis": mol.basis if isinstance(mol.basis, str) else str(mol.basis),
            "xc": self.settings.xc,
            "coulomb": self.settings.coulomb_label(),
            "grid_level": self.settings.grid_level,
            "grid_points": self.ngrid,
            "xc_grid": self.xc_grid,
            "df_storage": self.settings.df_storage,
            "charge": mol.charge,
            "spin": mol.spin,
            "wavefunction": "UKS" if result.unrestricted else "RKS",
            "optimiser": self.optimiser.method,
            "minibatch": self.optimiser.minibatch,
            "nao": mol.nao_nr(),
            "compiled_nao": mol.nao_nr() if self.padding is None else self.padding.padded_nao,
            "homo_lumo_gap": homo_lumo_gap(result),
            "s_squared": s_squared(result, mol.intor_symmetric("int1e_ovlp")),
            **({"forces": self.forces.tolist()} if self.forces is not None else {}),
            **(self._comparison() if self.reference else {}),
        }

    def _comparison(self) -> dict:
        """PySCF's result and densitylab's differences from it."""
        fields = {
            "pyscf": self.reference,
            "energy_minus_pyscf": self.result.energy - self.reference["energy"],
        }
        if self.forces is not None and "forces" in self.reference:
            difference = self.forces - np.asarray(self.reference["forces"])
            fields["forces_minus_pyscf_max"] = float(np.max(np.abs(difference)))
        return fields

    def plot(self, path: str | Path) -> Path:
        """convergence.png: energy and gradient at every accepted step (PySCF's energy as the
        floor when compared)."""
        from densitylab.plots import plot_dft_convergence

        reference = self.reference["energy"] if self.reference else None
        return plot_dft_convergence(self.result.history, path, reference, self.result.iterations)

    def save(self, path: str | Path, plot: bool = True) -> Path:
        """An artefact folder (kind ``dft-result``): the manifest holds the config, summary,
        settings, geometry (bohr) and the full convergence history; ``arrays.h5`` the canonical
        orbitals ``mo_coeff`` (nspin, nao, nmo), ``mo_energy``, ``mo_occ``, the AO ``overlap``,
        the ``forces`` (natm, 3; Ha/bohr) if computed and PySCF's ``pyscf_*`` arrays if
        compared; ``density.cube`` the density (bohr⁻³); ``convergence.png`` with ``plot``."""
        result = self.result
        occupations = np.zeros_like(result.mo_energy)
        for spin in range(occupations.shape[0]):
            if result.unrestricted:
                occupations[spin, : result.nelec[spin]] = 1.0
            else:
                occupations[spin, : result.nelec[0]] = 2.0
        arrays = {
            "mo_coeff": result.mo_coeff,
            "mo_energy": result.mo_energy,
            "mo_occ": occupations,
            "overlap": self.mol.intor_symmetric("int1e_ovlp"),
            **({"forces": self.forces} if self.forces is not None else {}),
            **(self.reference_arrays or {}),
        }
        config = self.config or {"xc": self.settings.xc, "basis": str(self.mol.basis)}
        with artefact_folder(path) as folder:
            write_h5(folder / ARRAYS, arrays, {"basis": str(self.mol.basis), "xc": self.settings.xc})
            write_density_cube(self.mol, result.density_matrix(), folder / "density.cube")
            if plot:
                self.plot(folder / "convergence.png")
            write_manifest(
                folder, "dft-result", config, summary=self.summary(), settings=asdict(self.settings),
                optimiser=asdict(self.optimiser), history=result.history,
                geometry_bohr=[[symbol, *map(float, xyz)] for symbol, xyz in self.mol._atom],
            )  # fmt: skip
        return Path(path)


@dataclass(frozen=True)
class SavedDFT:
    """A saved DFT result: its manifest (config, summary, settings, history, geometry) and
    arrays (mo_coeff, mo_energy, mo_occ, overlap)."""

    path: Path
    manifest: dict
    arrays: dict

    @property
    def energy(self) -> float:
        return float(self.manifest["summary"]["energy"])

    @property
    def forces(self) -> np.ndarray | None:
        """−∂E/∂R (natm, 3), Ha/bohr, if the run computed them."""
        return self.arrays.get("forces")

    def density_matrix(self) -> np.ndarray:
        """Total density matrix (nao, nao) from the saved orbitals and occupations."""
        coefficients, occupations = self.arrays["mo_coeff"], self.arrays["mo_occ"]
        return sum((c * n) @ c.T for c, n in zip(coefficients, occupations, strict=True))


def load_result(path: str | Path) -> SavedDFT:
    """A result written by :meth:`DFTReport.save` (``densitylab dft --output``)."""
    manifest = read_manifest(path, ("dft-result",), "path")
    arrays, _ = read_h5(Path(path) / ARRAYS)
    return SavedDFT(Path(path), manifest, arrays)


def homo_lumo_gap(result: DFTResult) -> float | None:
    """LUMO − HOMO (hartree) over both spins, or None without virtual orbitals."""
    homo, lumo = -np.inf, np.inf
    for spin in range(result.mo_energy.shape[0]):
        count = result.nelec[spin] if result.unrestricted else result.nelec[0]
        energies = result.mo_energy[spin]
        if count > 0:
            homo = max(homo, float(energies[count - 1]))
        if count < energies.size:
            lumo = min(lumo, float(energies[count]))
    return float(lumo - homo) if np.isfinite(lumo) and np.isfinite(homo) else None


def s_squared(result: DFTResult, overlap: np.ndarray) -> float:
    """⟨S²⟩ of the Kohn–Sham determinant: S_z(S_z + 1) + N_β − Σ_ij |⟨α_i|S|β_j⟩|²."""
    n_alpha, n_beta = result.nelec
    s_z = 0.5 * (n_alpha - n_beta)
    if not result.unrestricted:
        return s_z * (s_z + 1.0)
    alpha = result.mo_coeff[0][:, :n_alpha]
    beta = result.mo_coeff[1][:, :n_beta]
    overlap_ab = alpha.T @ overlap @ beta
    return float(s_z * (s_z + 1.0) + n_beta - np.sum(overlap_ab**2))


def write_density_cube(mol, density_matrix: np.ndarray, path: str | Path, points: int = 60) -> Path:
    """The electron density (bohr⁻³) of an AO density matrix as a Gaussian cube file."""
    return write_cube(
        mol, path, density_matrix_density(mol, density_matrix), points, "densitylab DFT density"
    )


def run_dft(
    molecule,
    basis: str = "6-31g",
    xc: str = "b3lyp",
    charge: int = 0,
    spin: int = 0,
    settings: DFTSettings | None = None,
    optimiser: OptimiserSettings | None = None,
    progress: Callable[..., None] | None = None,
    guess: tuple[np.ndarray, np.ndarray] | None = None,
    checkpoint: str | Path | None = None,
) -> DFTReport:
    """Direct-minimisation KS-DFT.

    Args:
        molecule: xyz path, ``ase.Atoms`` or PySCF ``Mole``.
        basis, charge, spin: see :func:`~densitylab.dft.molecule.load_molecule`.
        xc: functional; overrides ``settings.xc``.
        settings: grid level, Coulomb treatment, auxiliary basis, RKS/UKS.
        optimiser: which minimiser and its tolerances.
        progress: the protocol of :mod:`densitylab.progress`, one call per iteration with
            ``energy``, ``gradient`` and ``step``.
        guess: spin density matrices (D_α, D_β) (nao, nao) to start from, e.g. the previous
            geometry's (:meth:`~densitylab.dft.optimise.DFTResult.spin_density_matrices`).
        checkpoint: a .npz path. The current density matrices are written there (atomically)
            at most every :data:`CHECKPOINT_SECONDS` of minimisation; a later call with the
            same molecule, basis and settings starts from them (an interrupted run continues
            from where it was; the optimiser's history restarts), and one with others is
            refused before any work, naming what differs. The optimiser's settings may change
            (raise ``max_iterations`` and rerun).
    """
    from densitylab.jaxsetup import jax_numpy

    jax_numpy()  # import JAX before the clock starts, as PySCF is imported before its own
    started = time.perf_counter()
    mol = load_molecule(molecule, basis=basis, charge=charge, spin=spin)
    settings = DFTSettings(**{**asdict(settings or DFTSettings()), "xc": xc})
    optimiser = optimiser or OptimiserSettings()
    if optimiser.minibatch is not None:  # minibatches sample stored AO values: say so before any work
        require(
            settings.xc_grid != "streamed", "xc_grid", "'stored' or 'auto' with grid minibatches", "streamed"
        )
        require(
            settings.df_storage != "disk", "df_storage", "'auto' or 'device' with grid minibatches", "disk"
        )
        settings = DFTSettings(**{**asdict(settings), "xc_grid": "stored", "df_storage": "device"})
    snapshot = None
    if checkpoint is not None:
        saved, snapshot = _checkpointing(Path(checkpoint), mol, settings)
        guess = saved if guess is None else guess
    system = build_system(mol, settings)
    setup = time.perf_counter() - started
    result = minimise(system, mol, optimiser, progress=progress, guess=guess, snapshot=snapshot)
    return DFTReport(
        mol, system.settings, optimiser, result, setup, system.ngrid, system.xc_grid, padding=system.padding
    )


def pyscf_solve(
    mol, settings: DFTSettings, newton: bool = False, conv_tol: float = 1e-10, max_cycle: int = 100
):
    """PySCF's SCF with the same basis, functional, grid and Coulomb treatment, run.

    Returns (the converged PySCF object, seconds, SCF cycles). ``newton`` switches to PySCF's
    second-order solver (``.newton()``) for cases where DIIS fails.
    """
    from densitylab.dft.forces import pyscf_scf

    started = time.perf_counter()
    mf = pyscf_scf(mol, settings)
    mf.conv_tol = conv_tol
    mf.max_cycle = max_cycle
    if newton:
        mf = mf.newton()
    cycles = {"count": 0}

    def count(envs):
        cycles["count"] += 1

    mf.callback = count
    mf.kernel()
    return mf, time.perf_counter() - started, cycles["count"]


def pyscf_reference(
    mol, settings: DFTSettings, newton: bool = False, conv_tol: float = 1e-10, max_cycle: int = 100
):
    """(energy, converged, seconds, cycles) of :func:`pyscf_solve`."""
    mf, seconds, cycles = pyscf_solve(mol, settings, newton, conv_tol, max_cycle)
    return float(mf.e_tot), bool(mf.converged), seconds, cycles


CHECKPOINT_SECONDS = 30.0  # least time between two checkpoints of a minimisation


def _checkpointing(path: Path, mol, settings: DFTSettings):
    """(saved density matrices (D_α, D_β) or None, a ``snapshot`` for :func:`minimise` that
    writes them to ``path`` at most every :data:`CHECKPOINT_SECONDS`). The checkpoint's
    settings are the geometry, basis, charge, spin and :class:`DFTSettings`; a checkpoint of
    other ones is refused (:func:`densitylab.checkpoint.read_checkpoint`)."""
    from densitylab.checkpoint import fingerprint, read_checkpoint, write_checkpoint

    require(path.parent.is_dir(), "checkpoint", "a path in an existing folder", str(path))
    # shape buckets change no number: a bucketed run resumes an unbucketed one's checkpoint
    numbers = {name: value for name, value in asdict(settings).items() if name != "shape_buckets"}
    job = {
        "geometry": fingerprint(mol.atom_coords(), mol.atom_charges()),
        "basis": str(mol.basis), "charge": mol.charge, "spin": mol.spin, **numbers,
    }  # fmt: skip
    found = read_checkpoint(path, job)
    saved = None if found is None else (found[0]["density_alpha"], found[0]["density_beta"])
    last = {"written": time.perf_counter()}

    def snapshot(density_matrices: Callable[[], tuple[np.ndarray, np.ndarray]]) -> None:
        if time.perf_counter() - last["written"] < CHECKPOINT_SECONDS:
            return
        d_alpha, d_beta = density_matrices()
        write_checkpoint(path, job, {"density_alpha": d_alpha, "density_beta": d_beta})
        last["written"] = time.perf_counter()

    return saved, snapshot
