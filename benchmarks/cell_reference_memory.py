"""Peak memory of a cell reference's two stages, each in its own process (issue 20).

Run:  python benchmarks/cell_reference_memory.py CELLS.extxyz scf|fit
Builds the first cell of CELLS (default CellSettings: PBE/GTH-DZVP, 300 Ry) and runs either its
SCF or the density fit (with a random symmetric density matrix: the fit's cost and memory do
not depend on its values), printing seconds and the process's peak RSS.
"""

import resource
import sys
import time
import warnings

import numpy as np

from densitylab.density import periodic
from densitylab.density.structures import read_structures

warnings.filterwarnings("ignore")
path, stage = sys.argv[1], sys.argv[2]
atoms = read_structures(path)[0]
settings = periodic.CellSettings()
cell = periodic.build_cell(atoms.numbers, atoms.positions, atoms.cell.array, settings)
auxcell = periodic.auxiliary_cell(cell, settings)


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


print("built", peak_gb(), "GB", flush=True)
started = time.perf_counter()
if stage == "scf":
    periodic.cell_scf(cell, settings)
else:
    nao = cell.nao_nr()
    noise = np.random.default_rng(0).normal(size=(nao, nao)) * 1e-3
    periodic.fit_cell_density(cell, auxcell, noise + noise.T)
print(stage, time.perf_counter() - started, "s", peak_gb(), "GB", flush=True)
