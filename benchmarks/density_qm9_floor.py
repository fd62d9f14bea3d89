"""The fitting floor of the QM9 test shard (issue 16): grid NMAE and one-step energy error of
the reference fit itself (a perfect prediction) against the SCF, per molecule.

Run:  python benchmarks/density_qm9_floor.py > benchmarks/results/density_qm9_floor.jsonl
(reads /work/qm9data/test.h5 from density_qm9_scale.py references; first 20 molecules)
"""

import json
import time
import warnings

warnings.filterwarnings("ignore")
import numpy as np

from densitylab.density.energies import grid_nmae_percents, one_step_energy
from densitylab.density.reference import auxiliary_molecule, build_molecule, load_reference

ref = load_reference("/work/qm9data/test.h5")
rows = []
for i in range(20):
    t = time.perf_counter()
    mol = build_molecule(ref.numbers[i], ref.positions[i], ref.settings.basis)
    aux = auxiliary_molecule(mol, ref.settings)
    nmae = grid_nmae_percents(
        mol, aux, [ref.coefficients[i]], ref.density_matrices[i], ref.settings.grid_level
    )[0]
    e = one_step_energy(mol, aux, ref.coefficients[i], ref.settings.xc, ref.settings.grid_level)["energy"]
    rows.append(
        {
            "index": i,
            "atoms": mol.natm,
            "grid_nmae_floor_percent": nmae,
            "energy_floor_kcal_per_mol": (e - ref.energy[i]) * 627.509474,
            "seconds": time.perf_counter() - t,
        }
    )
    print(json.dumps(rows[-1]), flush=True)
print(
    json.dumps(
        {
            "molecules": len(rows),
            "grid_nmae_floor_percent_mean": float(np.mean([r["grid_nmae_floor_percent"] for r in rows])),
            "energy_floor_mae_kcal_per_mol": float(
                np.mean([abs(r["energy_floor_kcal_per_mol"]) for r in rows])
            ),
            "energy_floor_max_kcal_per_mol": float(
                np.max([abs(r["energy_floor_kcal_per_mol"]) for r in rows])
            ),
        }
    )
)
