"""How large the exact v_c's steps and spikes are, along the exact trajectories of a set.

For each case with an inversion (``NAME-values/``, model (a)) and each a.u. (``--every K``
KS steps): the range (max − min) of v_c within 6 bohr of the box's centre (the atom of the
laser cases); the density-weighted mean |v_c − ⟨v_c⟩_n| (what a density-weighted loss sees
of its steps: an offset over a fraction of the charge); the charge beyond 6 bohr; and where
the largest deviation from the median lies, with the density there (a spike at a density dip
carries little weight).

Run:  python benchmarks/tdks_exact_steps.py SET CASE [CASE ...] [--every K]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def main() -> None:
    arguments = sys.argv[1:]
    every = 20
    if "--every" in arguments:
        index = arguments.index("--every")
        every = int(arguments[index + 1])
        arguments = arguments[:index] + arguments[index + 2 :]
    folder, cases = Path(arguments[0]), arguments[1:]
    from densitylab.model1d.propagation import load_trajectory
    from densitylab.tdks.evaluate import read_values
    from densitylab.tdks.propagation import problem_from_trajectory

    for case in cases:
        v_c = read_values(folder / f"{case}-values")
        problem, density = problem_from_trajectory(load_trajectory(folder / f"{case}.h5"))
        offset = problem.x - 0.5 * (problem.x[0] + problem.x[-1])
        near = np.abs(offset) <= 6.0
        print(case)
        for step in range(0, len(v_c), every):
            v, n = v_c[step], density[step]
            weighted = np.sum(n * np.abs(v - np.sum(n * v) / np.sum(n))) / np.sum(n)
            deviation = np.where(near, np.abs(v - np.median(v[near])), -1.0)
            worst = int(np.argmax(deviation))
            outside = np.sum(n[~near]) * problem.dx
            print(
                f"  t={step * problem.dt:5.1f}  range near {np.ptp(v[near]):6.2f} Ha"
                f"  n-weighted |v - <v>| {weighted:.3f}  charge beyond 6 bohr {outside:.3f}"
                f"  largest at x={offset[worst]:+.1f} (v={v[worst]:+.2f}, n={n[worst]:.1e})",
                flush=True,
            )


if __name__ == "__main__":
    main()
