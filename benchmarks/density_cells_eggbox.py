"""The egg-box effect of one 8-water cell (issue 20): the SCF energy change (meV/atom) under three
random shifts (seed 5) at a cutoff, with the multigrid's level count NTASKS (1: one level, a
plain FFT grid), its rel_cutoff and an optional functional.

Run:  python benchmarks/density_cells_eggbox.py CUTOFF NTASKS REL_CUTOFF [XC]
(BENCHMARKS.md: 300 4 20; 300 4 40; 300 1 20; 500 4 20; 300 4 20 lda,vwn)
"""

import sys
import time
import warnings

import numpy as np

from densitylab.density import periodic
from densitylab.density.cells import WaterCellSettings, water_cells

warnings.filterwarnings("ignore")


def main() -> None:
    cutoff, levels, relative = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    xc = sys.argv[4] if len(sys.argv) > 4 else "pbe"
    atoms = water_cells(1, WaterCellSettings(molecules=8), seed=0)[0]
    settings = periodic.CellSettings(ke_cutoff=cutoff, xc=xc)
    plain = periodic.mesh_numint

    def tuned(cell):
        numint = plain(cell)
        numint.ntasks, numint.rel_cutoff = levels, relative
        return numint

    periodic.mesh_numint = tuned
    rng = np.random.default_rng(5)
    energies = []
    for trial in range(4):
        shift = np.zeros(3) if trial == 0 else rng.uniform(-2, 2, 3)
        cell = periodic.build_cell(atoms.numbers, atoms.positions + shift, atoms.cell.array, settings)
        started = time.perf_counter()
        energies.append(periodic.cell_scf(cell, settings).e_tot)
    changes = (np.array(energies[1:]) - energies[0]) * 27211.386245988 / len(atoms)
    seconds = time.perf_counter() - started
    print(cutoff, levels, relative, xc, "meV/atom changes", np.round(changes, 4), f"{seconds:.0f} s per SCF")


if __name__ == "__main__":
    main()
