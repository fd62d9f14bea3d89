"""PySCF's SCF on one benchmark molecule with densitylab's settings (6-31G, grid level 3,
def2-universal-jkfit DF), DIIS from PySCF's minimal-basis guess, logging every cycle: for the
large cases where the whole run may not converge in the time there is, so that what it reached
is on record (BENCHMARKS.md, issue 19: the closed fullerene cages).

Run:  python benchmarks/dft_pyscf_cycles.py MOLECULE [--xc lda,vwn] [--max-cycle 40]
Prints one JSON line per cycle (energy, change, orbital-gradient norm, HOMO–LUMO gap, seconds)
and a last line with the result and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

MOLECULES = Path(__file__).parent / "molecules"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("molecule")
    parser.add_argument("--xc", default="lda,vwn")
    parser.add_argument("--max-cycle", type=int, default=40)
    args = parser.parse_args()
    from densitylab.dft.forces import pyscf_scf
    from densitylab.dft.molecule import load_molecule
    from densitylab.dft.system import DFTSettings

    mol = load_molecule(MOLECULES / f"{args.molecule}.xyz")
    mf = pyscf_scf(mol, DFTSettings(xc=args.xc))
    mf.conv_tol, mf.max_cycle = 1e-10, args.max_cycle
    started = time.perf_counter()
    previous = {"energy": None}

    def log(envs) -> None:
        energy = float(envs["e_tot"])
        occupied = envs["mo_occ"] > 0
        energies = envs["mo_energy"]
        record = {
            "cycle": int(envs["cycle"]) + 1,
            "energy": energy,
            "change": None if previous["energy"] is None else energy - previous["energy"],
            "gradient_norm": float(envs["norm_gorb"]),
            "gap": float(np.min(energies[~occupied]) - np.max(energies[occupied])),
            "seconds": time.perf_counter() - started,
        }
        previous["energy"] = energy
        print(json.dumps(record), flush=True)

    mf.callback = log
    mf.kernel()
    summary = {
        "molecule": args.molecule,
        "xc": args.xc,
        "energy": float(mf.e_tot),
        "converged": bool(mf.converged),
    }
    summary["seconds"] = time.perf_counter() - started
    summary["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
