"""The periodic references' own accuracy (issue 20): the Γ-point PBE energies of the first
cells of an extxyz, with the reference settings (GTH-DZVP, 300 Ry) and with tighter ones
(a larger basis, a higher cutoff), in fresh processes. Reports per atom the change of each
cell's energy and, what learning sees, the change of its energy relative to the first cell.

Run:  python benchmarks/density_cells_accuracy.py CELLS.extxyz --cells 2 \
          --tighter gth-tzv2p:300 gth-dzvp:500
Writes benchmarks/results/density_cells_accuracy_<atoms>.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
MEV_PER_HARTREE = 27211.386245988

CHILD = """
import json, resource, sys, time, warnings
warnings.filterwarnings("ignore")
from densitylab.density import periodic
from densitylab.density.structures import read_structures
path, index, basis, cutoff = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
atoms = read_structures(path)[index]
settings = periodic.CellSettings(basis=basis, ke_cutoff=cutoff)
started = time.perf_counter()
cell = periodic.build_cell(atoms.numbers, atoms.positions, atoms.cell.array, settings)
energy = float(periodic.cell_scf(cell, settings).e_tot)
print(json.dumps({"energy": energy, "nao": int(cell.nao_nr()), "mesh": [int(m) for m in cell.mesh],
    "seconds": time.perf_counter() - started,
    "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, "atoms": len(atoms)}))
"""


def scf(path: str, index: int, basis: str, cutoff: float) -> dict:
    output = subprocess.run(
        [sys.executable, "-c", CHILD, path, str(index), basis, str(cutoff)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("structures")
    parser.add_argument("--cells", type=int, default=2)
    parser.add_argument("--reference", default="gth-dzvp:300")
    parser.add_argument("--tighter", nargs="+", default=["gth-tzv2p:300", "gth-dzvp:500"])
    args = parser.parse_args()
    settings = [args.reference, *args.tighter]
    runs = {}
    for setting in settings:
        basis, cutoff = setting.split(":")
        runs[setting] = [scf(args.structures, i, basis, float(cutoff)) for i in range(args.cells)]
        print(setting, json.dumps(runs[setting]), flush=True)
    atoms = runs[args.reference][0]["atoms"]
    rows = []
    for setting in args.tighter:
        change = [
            (tight["energy"] - ref["energy"]) * MEV_PER_HARTREE / atoms
            for tight, ref in zip(runs[setting], runs[args.reference], strict=True)
        ]
        rows.append(
            {
                "tighter": setting,
                "energy_change_mev_per_atom": change,
                "relative_change_mev_per_atom": [c - change[0] for c in change[1:]],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    record = {"date": time.strftime("%Y-%m-%d"), "structures": args.structures, "runs": runs, "changes": rows}
    (RESULTS / f"density_cells_accuracy_{atoms}.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
