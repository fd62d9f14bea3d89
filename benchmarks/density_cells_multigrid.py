"""PySCF's two multigrids for the reference SCF of the first cell of an extxyz (issue 20): energy,
time and peak RSS with MultiGridNumInt (1) or MultiGridNumInt2 (2), each in its own process.

Run:  python benchmarks/density_cells_multigrid.py CELLS.extxyz 1|2
(BENCHMARKS.md: cells8.extxyz with 1 and 2, cells32.extxyz with 2)
"""

import resource
import sys
import time
import warnings

from pyscf.pbc import dft
from pyscf.pbc.dft import multigrid

from densitylab.density import periodic
from densitylab.density.structures import read_structures

warnings.filterwarnings("ignore")


def main() -> None:
    path, version = sys.argv[1], sys.argv[2]
    atoms = read_structures(path)[0]
    settings = periodic.CellSettings()
    cell = periodic.build_cell(atoms.numbers, atoms.positions, atoms.cell.array, settings)
    started = time.perf_counter()
    mf = dft.RKS(cell, xc=settings.xc)
    mf._numint = multigrid.MultiGridNumInt(cell) if version == "1" else multigrid.MultiGridNumInt2(cell)
    mf.conv_tol = settings.conv_tol
    mf.kernel()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(version, repr(mf.e_tot), mf.converged, f"{time.perf_counter() - started:.1f} s", f"{peak:.3f} GB")


if __name__ == "__main__":
    main()
