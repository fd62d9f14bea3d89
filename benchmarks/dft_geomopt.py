"""A geometry optimisation through ASE on densitylab's DFT against the same optimisation driven by
PySCF's own energy and analytic gradient (issue 19).

BFGS (fmax 1e-3 eV/Å) from a distorted water, LDA (Slater + VWN), 6-31G, grid level 2, both
with the grid response in the forces. Prints the largest coordinate difference (Å), the energy
difference (eV), the bond lengths and angle, the number of densitylab calculations and the time
of each optimisation.

Run:  python benchmarks/dft_geomopt.py
"""

from __future__ import annotations

import json
import time
import warnings

import ase
import numpy as np
from ase.calculators.calculator import Calculator as AseCalculator
from ase.calculators.calculator import all_changes
from ase.optimize import BFGS
from ase.units import Bohr, Hartree

from densitylab.dft import Calculator, DFTSettings
from densitylab.dft.forces import gradient_of, pyscf_scf
from densitylab.dft.molecule import load_molecule

warnings.filterwarnings("ignore")
START = [[0.0, 0.0, 0.15], [0.0, 0.72, -0.45], [0.0, -0.80, -0.50]]
SETTINGS = DFTSettings(xc="lda,vwn", grid_level=2)


class PySCF(AseCalculator):
    """PySCF's RKS (conv_tol 1e-11) and its analytic forces, grid response included."""

    implemented_properties = ("energy", "forces")

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        mf = pyscf_scf(load_molecule(self.atoms, basis="6-31g"), SETTINGS)
        mf.conv_tol = 1e-11
        mf.kernel()
        self.results = {"energy": mf.e_tot * Hartree, "forces": -gradient_of(mf) * Hartree / Bohr}


def internal(positions: np.ndarray) -> list[float]:
    first, second = positions[1] - positions[0], positions[2] - positions[0]
    cosine = first @ second / np.linalg.norm(first) / np.linalg.norm(second)
    return [float(np.linalg.norm(first)), float(np.linalg.norm(second)), float(np.degrees(np.arccos(cosine)))]


def main() -> None:
    results = {}
    for name, calculator in (
        ("pyscf", PySCF()),
        ("densitylab", Calculator("6-31g", "lda,vwn", settings=SETTINGS)),
    ):
        atoms = ase.Atoms("OH2", positions=START)
        atoms.calc = calculator
        started = time.perf_counter()
        optimiser = BFGS(atoms, logfile=None)
        optimiser.run(fmax=1e-3, steps=100)
        results[name] = {
            "seconds": time.perf_counter() - started,
            "steps": optimiser.nsteps,
            "energy_ev": float(atoms.get_potential_energy()),
            "positions": atoms.positions.tolist(),
            "bonds_angle": internal(atoms.positions),
        }
    results["densitylab"]["calculations"] = calculator.calculations
    ours, theirs = (np.array(results[k]["positions"]) for k in ("densitylab", "pyscf"))
    results["max_position_difference_angstrom"] = float(np.max(np.abs(ours - theirs)))
    results["energy_difference_ev"] = results["densitylab"]["energy_ev"] - results["pyscf"]["energy_ev"]
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
