"""The fitting floor of the QM9 test shard (issue 16): grid NMAE and one-step energy error of
the reference fit itself (a perfect prediction) against the SCF, per molecule.

Run:  python benchmarks/density_qm9_floor.py [--count 20] > benchmarks/results/density_qm9_floor.jsonl
(reads WORK/test.h5, written by density_qm9_scale.py references)
"""

from __future__ import annotations

import argparse
import json
import time
import warnings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", default="/work/qm9data")
    parser.add_argument("--count", type=int, default=20)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import numpy as np

    from densitylab.density.energies import grid_nmae_percents, one_step_energy
    from densitylab.density.reference import auxiliary_molecule, build_molecule, load_reference

    reference = load_reference(f"{args.work}/test.h5")
    settings = reference.settings
    rows = []
    for index in range(args.count):
        started = time.perf_counter()
        mol = build_molecule(reference.numbers[index], reference.positions[index], settings.basis)
        auxmol = auxiliary_molecule(mol, settings)
        coefficients = reference.coefficients[index]
        nmae = grid_nmae_percents(
            mol, auxmol, [coefficients], reference.density_matrices[index], settings.grid_level
        )[0]
        energy = one_step_energy(mol, auxmol, coefficients, settings.xc, settings.grid_level)["energy"]
        rows.append(
            {
                "index": index,
                "atoms": mol.natm,
                "grid_nmae_floor_percent": nmae,
                "energy_floor_kcal_per_mol": (energy - reference.energy[index]) * 627.509474,
                "seconds": time.perf_counter() - started,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    errors = np.abs([row["energy_floor_kcal_per_mol"] for row in rows])
    summary = {
        "molecules": len(rows),
        "grid_nmae_floor_percent_mean": float(np.mean([row["grid_nmae_floor_percent"] for row in rows])),
        "energy_floor_mae_kcal_per_mol": float(np.mean(errors)),
        "energy_floor_max_kcal_per_mol": float(np.max(errors)),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
