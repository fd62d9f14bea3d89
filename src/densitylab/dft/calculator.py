"""An ASE calculator on direct-minimisation DFT, so that ASE's optimisers and dynamics run on it.

    from ase.optimize import BFGS
    from densitylab.dft import Calculator

    atoms.calc = Calculator(basis="6-31g", xc="pbe")
    BFGS(atoms).run(fmax=0.01)

Energies in eV and forces in eV/Å, as ASE expects (densitylab itself works in hartree and
bohr). Each new geometry starts from the previous geometry's density matrices, which is what
makes a geometry step cheaper than a first calculation; a change of atoms (not only of their
positions) starts afresh from PySCF's minao guess.
"""

from __future__ import annotations

from ase.calculators.calculator import Calculator as AseCalculator
from ase.calculators.calculator import all_changes
from ase.units import Bohr, Hartree

from densitylab.dft.forces import forces
from densitylab.dft.optimise import OptimiserSettings
from densitylab.dft.run import run_dft
from densitylab.dft.system import DFTSettings
from densitylab.errors import NumericalError


class Calculator(AseCalculator):
    """Energy and forces of :func:`~densitylab.dft.run.run_dft` for an ``ase.Atoms``.

    Args:
        basis, xc, charge, spin: as :func:`~densitylab.dft.run.run_dft` (spin is 2S).
        settings: grid level, Coulomb treatment, auxiliary basis, RKS/UKS (``xc`` overrides
            ``settings.xc``).
        optimiser: the minimiser; its gradient tolerance bounds the forces' error.
        reuse_orbitals: start each geometry from the previous one's density matrices.

    Attributes:
        report: the last :class:`~densitylab.dft.run.DFTReport` (orbitals, energy, history).
        calculations: how many minimisations have run.
    """

    implemented_properties = ("energy", "free_energy", "forces")

    def __init__(
        self,
        basis: str = "6-31g",
        xc: str = "b3lyp",
        charge: int = 0,
        spin: int = 0,
        settings: DFTSettings | None = None,
        optimiser: OptimiserSettings | None = None,
        reuse_orbitals: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.basis, self.xc, self.charge, self.spin = basis, xc, charge, spin
        self.settings = settings or DFTSettings()  # run_dft puts ``xc`` into it
        self.optimiser = optimiser or OptimiserSettings()
        self.reuse_orbitals = reuse_orbitals
        self.report = None
        self.calculations = 0
        self._guess = None

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        """Minimise at a new geometry (or reuse the last result when nothing changed), then add
        the forces if asked for."""
        super().calculate(atoms, properties, system_changes)
        if self.report is None or system_changes:
            if "numbers" in system_changes or "initial_magmoms" in system_changes:
                self._guess = None
            self._minimise()
        if "forces" in properties and "forces" not in self.results:
            gradient = forces(self.report.mol, self.report.settings, self.report.result)
            self.results["forces"] = gradient * (Hartree / Bohr)

    def _minimise(self) -> None:
        report = run_dft(
            self.atoms, basis=self.basis, xc=self.xc, charge=self.charge, spin=self.spin,
            settings=self.settings, optimiser=self.optimiser,
            guess=self._guess if self.reuse_orbitals else None,
        )  # fmt: skip
        self.calculations += 1
        if not report.result.converged:
            raise NumericalError(
                f"the DFT minimisation did not converge in {report.result.iterations} iterations "
                "at this geometry; raise the optimiser's max_iterations"
            )
        self.report = report
        self._guess = report.result.spin_density_matrices()
        energy = report.result.energy * Hartree
        self.results = {"energy": energy, "free_energy": energy}
