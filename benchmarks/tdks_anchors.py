"""The TDKS anchors side by side, resolved in time: ∫|n_KS − n_exact| dx at chosen times.

For each exact trajectory (``densitylab tdks exact``) the anchors v_c = 0 (exact exchange),
adiabatic LDA and adiabatic SCE (and any ``--model``: a shipped name or a 'tdks learn'
folder) are propagated from the exact initial state; the table gives the density error at
each of ``--times`` and its maximum over the whole trajectory.

Run:  python benchmarks/tdks_anchors.py scatter-1.0.h5 scatter-1.5.h5 --times 3 6 9 12
Writes benchmarks/results/tdks_anchors.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("trajectories", nargs="+", type=Path)
    parser.add_argument("--times", nargs="+", type=float, default=[3.0, 6.0, 9.0, 12.0])
    parser.add_argument("--model", action="append", default=[], help="also a shipped model or folder")
    args = parser.parse_args()

    from densitylab.model1d.propagation import load_trajectory
    from densitylab.tdks.evaluate import ANCHORS, evaluate, load_model
    from densitylab.tdks.propagation import problem_from_trajectory

    results: dict = {"parameters": {**vars(args), "trajectories": [str(t) for t in args.trajectories]}}
    results["machine"] = platform.processor() or platform.machine()
    header = "| trajectory | v_c | " + " | ".join(f"t = {t:g}" for t in args.times) + " | max |"
    lines = [header, "|" + "---|" * (len(args.times) + 3)]
    for path in args.trajectories:
        problem, target = problem_from_trajectory(load_trajectory(path))
        models = [anchor(problem) for anchor in ANCHORS.values()]
        models += [load_model(name, problem) for name in args.model]
        steps = [min(round(t / problem.dt), problem.steps) for t in args.times]
        for label, result in evaluate(problem, target, models).items():
            errors = result["errors"]
            row = {f"{t:g}": float(errors[k]) for t, k in zip(args.times, steps, strict=True)}
            row["max"] = float(errors.max())
            row["argmax_time"] = float(np.argmax(errors) * problem.dt)
            results[f"{path.stem}/{label}"] = row
            cells = " | ".join(f"{row[f'{t:g}']:.3f}" for t in args.times)
            lines.append(f"| {path.stem} | {label} | {cells} | {row['max']:.3f} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tdks_anchors.json").write_text(json.dumps(results, indent=1))
    (RESULTS / "tdks_anchors.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
