"""Convergence of the periodic references against the grid cutoff (issue 20): for one liquid
water cell of N molecules (``density cells``, seed 0), the Γ-point PBE/GTH-DZVP energy, its
changes when every atom moves by each of several arbitrary vectors (the egg-box effect of the
uniform grid; one vector alone can land near a node, as (1.3, −0.7, 2.1) Å did at 300 Ry with
0.009 meV/atom where three others give up to 0.52), SCF time and peak memory, at each cutoff.

Each cutoff runs in a fresh process (peak RSS per setting).

Run:  python benchmarks/density_cells_cutoff.py [--molecules 8 --cutoffs 150 200 300 400 500]
Writes benchmarks/results/density_cells_cutoff_<N>.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
SHIFTS = [(1.3, -0.7, 2.1), (0.37, 1.91, -1.23), (-1.62, 0.54, 0.88), (0.91, -1.37, -0.29)]  # Å

CHILD = """
import json, resource, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np
from densitylab.density import periodic
from densitylab.density.cells import WaterCellSettings, water_cells
molecules, cutoff, shifts = int(sys.argv[1]), float(sys.argv[2]), json.loads(sys.argv[3])
cell = water_cells(1, WaterCellSettings(molecules=molecules), seed=0)[0]
settings = periodic.CellSettings(ke_cutoff=cutoff)
energies, seconds = [], []
for moved in ([0.0, 0.0, 0.0], *shifts):
    started = time.perf_counter()
    built = periodic.build_cell(cell.numbers, cell.positions + moved, cell.cell.array, settings)
    energies.append(float(periodic.cell_scf(built, settings).e_tot))
    seconds.append(time.perf_counter() - started)
row = {"molecules": molecules, "ke_cutoff_ry": cutoff, "mesh": [int(m) for m in built.mesh]}
row.update(nao=int(built.nao_nr()), energy=energies[0], shift_changes=[e - energies[0] for e in energies[1:]])
row.update(scf_seconds=seconds, peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6)
print(json.dumps(row))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--molecules", type=int, default=8)
    parser.add_argument("--cutoffs", type=float, nargs="+", default=[150, 200, 300, 400, 500])
    args = parser.parse_args()
    rows = []
    for cutoff in args.cutoffs:
        output = subprocess.run(
            [sys.executable, "-c", CHILD, str(args.molecules), str(cutoff), json.dumps(SHIFTS)],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(output.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    atoms = 3 * args.molecules
    finest = rows[-1]["energy"]
    for row in rows:
        row["error_vs_finest_mev_per_atom"] = (row["energy"] - finest) * 27211.386 / atoms
        row["shift_changes_mev_per_atom"] = [c * 27211.386 / atoms for c in row["shift_changes"]]
    RESULTS.mkdir(exist_ok=True)
    record = {"date": time.strftime("%Y-%m-%d"), "shifts_angstrom": SHIFTS, "rows": rows}
    (RESULTS / f"density_cells_cutoff_{args.molecules}.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
