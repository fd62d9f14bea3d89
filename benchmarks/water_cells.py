"""Rigid-water dynamics for the liquid-water cell generator (issue 20): ASE's FixBondLengths
against densitylab's RigidWaters, same cell, same TIP3P, same Langevin settings and seed.

Both keep O–H, O–H and H–H of every molecule fixed; ASE sweeps the bonds one by one in Python,
RigidWaters solves each molecule's three constraints together (a batched 3 × 3 solve).
Measured: wall time per MD step and the largest bond-length error after the run.

Run:  python benchmarks/water_cells.py [--molecules 8 --steps 200]
Writes benchmarks/results/water_cells.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def run(constraint: str, molecules: int, steps: int) -> dict:
    from ase import units
    from ase.calculators.tip3p import TIP3P
    from ase.constraints import FixBondLengths
    from ase.md.langevin import Langevin

    from densitylab.density.cells import RigidWaters, WaterCellSettings, packed_cell, thermalize

    settings = WaterCellSettings(molecules=molecules)
    rng = np.random.default_rng(0)
    atoms = packed_cell(settings, rng)
    if constraint == "ase":
        pairs = [(3 * m + i, 3 * m + (i + 1) % 3) for m in range(molecules) for i in range(3)]
        atoms.constraints = FixBondLengths(pairs)
    else:
        atoms.constraints = RigidWaters(molecules)
    atoms.calc = TIP3P(rc=min(7.0, settings.length / 2), width=1.0)
    thermalize(atoms, 300.0, rng)
    dynamics = Langevin(atoms, units.fs, temperature_K=300.0, friction=0.01 / units.fs, fixcm=False, rng=rng)
    reference = RigidWaters._bonds(packed_cell(settings, np.random.default_rng(0)).positions)
    started = time.perf_counter()
    dynamics.run(steps)
    seconds = time.perf_counter() - started
    lengths = np.linalg.norm(RigidWaters._bonds(atoms.positions), axis=2)
    error = float(np.max(np.abs(lengths - np.linalg.norm(reference, axis=2))))
    return {
        "constraint": constraint,
        "steps": steps,
        "seconds": seconds,
        "ms_per_step": 1e3 * seconds / steps,
        "bond_length_error_angstrom": error,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--molecules", type=int, default=8)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    rows = [run(name, args.molecules, args.steps) for name in ("ase", "densitylab")]
    record = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.node(),
        "molecules": args.molecules,
        "rows": rows,
        "speedup": rows[0]["seconds"] / rows[1]["seconds"],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "water_cells.json").write_text(json.dumps(record, indent=1))
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
