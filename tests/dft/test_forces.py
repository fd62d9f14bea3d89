"""Forces of the direct-minimisation DFT (issue 19): against PySCF's analytic gradients at its
own converged orbitals (a second SCF), against finite differences of densitylab's energy, and
the ASE calculator in a geometry optimisation against one driven by PySCF."""

import json
import warnings

import ase
import numpy as np
import pytest
from ase.build import molecule as ase_molecule
from ase.units import Bohr, Hartree
from typer.testing import CliRunner

from densitylab.cli import app
from densitylab.dft import Calculator
from densitylab.dft.forces import forces
from densitylab.dft.molecule import load_molecule
from densitylab.dft.optimise import OptimiserSettings
from densitylab.dft.run import load_result, run_dft
from densitylab.dft.system import DFTSettings
from tests.dft.test_dft import _pyscf_scf

warnings.filterwarnings("ignore", message="Basis may be available")
WATER = ase_molecule("H2O")


def _pyscf_forces(mol, settings):
    """PySCF's own SCF (set up by the tests, not through densitylab) and its analytic −∂E/∂R,
    grid response included."""
    mf = _pyscf_scf(mol, settings)
    gradient = mf.nuc_grad_method()
    gradient.grid_response, gradient.verbose = True, 0
    return mf.e_tot, -gradient.kernel()


@pytest.mark.parametrize(
    ("xc", "coulomb", "spin", "atoms", "xc_grid"),
    [
        ("lda,vwn", "df", 0, WATER, "stored"),  # RKS, LDA, density-fitted J
        ("pbe", "exact", 2, ase_molecule("O2"), "stored"),  # UKS (the triplet), GGA, exact J
        ("b3lyp", "df", 0, ase_molecule("NH3"), "streamed"),  # RKS, hybrid, DF J and K
    ],
)
def test_forces_equal_pyscf_analytic_gradients(xc, coulomb, spin, atoms, xc_grid):
    """Catches forces from the wrong orbitals (uncanonical, a spin channel dropped, occupations
    of the wrong kind), a missing exchange or auxiliary-basis term, or a sign: densitylab's
    forces at its own converged orbitals equal PySCF's at PySCF's to 1e-6 Ha/bohr, and they
    sum to zero (no net force on an isolated molecule, to the grid's precision). The orbital
    gradient is converged to 1e-7, so that the comparison is of forces, not of convergence.
    (OH would be a poor UKS case: its singly occupied π pair is degenerate, and PySCF's own
    SCF lands on orientations 1e-6 Ha apart from run to run.)"""
    settings = DFTSettings(xc=xc, coulomb=coulomb, grid_level=2, xc_grid=xc_grid)
    tight = OptimiserSettings(gradient_tolerance=1e-7)
    report = run_dft(atoms, basis="6-31g", xc=xc, spin=spin, settings=settings, optimiser=tight)
    assert report.result.converged
    ours = forces(report.mol, report.settings, report.result)
    energy, theirs = _pyscf_forces(report.mol, settings)
    assert report.result.energy == pytest.approx(energy, abs=2e-7)
    assert np.max(np.abs(ours - theirs)) < 1e-6
    assert np.max(np.abs(ours)) > 1e-3  # not at a stationary point: the test has something to see
    assert np.max(np.abs(ours.sum(axis=0))) < 1e-4


def test_forces_are_minus_the_finite_difference_gradient_of_the_energy():
    """Catches forces that leave out the grid's response to the moving atoms (a 2e-6 Ha/bohr
    error here) or any term of the energy: central differences (h = 5e-4 Å) of densitylab's own
    converged energy, one hydrogen of water moved along the O–H bond's y and z, equal −F to
    3e-7 Ha/bohr (the orbitals converged to 1e-7, which leaves the energies 1e-13 Ha from their
    minimum; x, out of the plane, is zero by symmetry and left out)."""
    settings = DFTSettings(xc="lda,vwn", grid_level=2)
    tight = OptimiserSettings(gradient_tolerance=1e-7)

    def energy(positions):
        atoms = ase.Atoms("OH2", positions=positions)
        return run_dft(atoms, basis="6-31g", xc="lda,vwn", settings=settings, optimiser=tight).result.energy

    report = run_dft(WATER, basis="6-31g", xc="lda,vwn", settings=settings, optimiser=tight)
    force = forces(report.mol, settings, report.result)[1]
    step = 5e-4
    for axis in (1, 2):
        plus, minus = WATER.positions.copy(), WATER.positions.copy()
        plus[1, axis] += step
        minus[1, axis] -= step
        derivative = (energy(plus) - energy(minus)) / (2 * step / Bohr)
        assert -derivative == pytest.approx(force[axis], abs=3e-7)


def test_ase_optimisation_lands_on_the_geometry_pyscf_optimises_to():
    """Catches forces in the wrong units for ASE (Ha/bohr instead of eV/Å), a stale result
    reused after the atoms moved, or a guess from the last geometry that converges elsewhere:
    BFGS on densitylab's calculator and BFGS on PySCF's own energy and gradient, from the same
    distorted water, end within 1e-3 Å and 1e-5 eV of each other."""
    from ase.calculators.calculator import Calculator as AseCalculator
    from ase.calculators.calculator import all_changes
    from ase.optimize import BFGS

    settings = DFTSettings(xc="lda,vwn", grid_level=1)

    class PySCF(AseCalculator):
        implemented_properties = ("energy", "forces")

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            energy, force = _pyscf_forces(load_molecule(self.atoms, basis="sto-3g"), settings)
            self.results = {"energy": energy * Hartree, "forces": force * Hartree / Bohr}

    start = [[0.0, 0.0, 0.15], [0.0, 0.72, -0.45], [0.0, -0.80, -0.50]]
    optimised = {}
    for name, calculator in (
        ("pyscf", PySCF()),
        ("densitylab", Calculator("sto-3g", "lda,vwn", settings=settings)),
    ):
        atoms = ase.Atoms("OH2", positions=start)
        atoms.calc = calculator
        BFGS(atoms, logfile=None).run(fmax=1e-3, steps=60)
        optimised[name] = (atoms.positions.copy(), atoms.get_potential_energy())
    assert calculator.calculations >= 4  # it moved, and each geometry was recomputed
    assert np.max(np.abs(optimised["densitylab"][0] - optimised["pyscf"][0])) < 1e-3
    assert optimised["densitylab"][1] == pytest.approx(optimised["pyscf"][1], abs=1e-5)
    bond = np.linalg.norm(optimised["densitylab"][0][1] - optimised["densitylab"][0][0])
    assert abs(bond - np.linalg.norm(np.subtract(start[1], start[0]))) > 0.01  # it did move


def test_dft_cli_saves_forces_and_pyscfs_result_beside_them(tmp_path):
    """Catches `--forces` or `--compare` printed but not saved, or saved with another sign:
    `--json` prints forces (Ha/bohr, one row per atom) equal to the saved ones, and the saved
    PySCF forces and orbitals sit beside them, agreeing to 1e-6."""
    path = tmp_path / "water.xyz"
    WATER.write(path)
    result = CliRunner().invoke(
        app,
        ["dft", str(path), "--xc", "lda,vwn", "--grid-level", "2", "--forces", "--compare",
         "--output", str(tmp_path / "out"), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    printed = np.array(summary["forces"])
    assert printed.shape == (3, 3) and summary["forces_minus_pyscf_max"] < 1e-6
    saved = load_result(tmp_path / "out")
    np.testing.assert_array_equal(saved.forces, printed)
    np.testing.assert_allclose(saved.arrays["pyscf_forces"], printed, atol=1e-6)
    assert saved.arrays["pyscf_mo_coeff"].shape == saved.arrays["mo_coeff"].shape[1:]
    # by symmetry the O atom is pushed along z only and the hydrogens mirror each other in y
    assert abs(printed[1, 1] + printed[2, 1]) < 1e-8 and abs(printed[0, 1]) < 1e-8
