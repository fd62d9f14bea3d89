"""Where a TDKS collision's density error is: the charge transmitted past the atom, left on it
and reflected, and the centre and width of the transmitted part, at six times, for the exact
trajectory, the anchors and the given models (BENCHMARKS.md, "The charge loss").

Run:  python benchmarks/tdks_scattering_parts.py --trajectory SET/scatter-p-1.50.h5
      [--model scattering-memory --atom -10 --margin 5]

The packet comes in from the right (p < 0); the atom sits at ``--atom`` (bohr). Regions:
transmitted x < atom − margin, atom within ± margin, reflected x > atom + margin.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

FRACTIONS = (0.25, 0.4, 0.55, 0.7, 0.85, 1.0)


def parts(density: np.ndarray, x: np.ndarray, dx: float, atom: float, margin: float) -> dict:
    """Charges of the three regions, and the transmitted part's centre and width (bohr), for
    one density (N,)."""
    masks = {
        "transmitted": x < atom - margin,
        "atom": np.abs(x - atom) <= margin,
        "reflected": x > atom + margin,
    }
    out = {name: float(np.sum(density[mask]) * dx) for name, mask in masks.items()}
    mask = masks["transmitted"]
    charge = max(out["transmitted"], 1e-12)
    centre = float(np.sum(density[mask] * x[mask]) * dx / charge)
    out["centre"] = centre
    out["width"] = float(np.sqrt(np.sum(density[mask] * (x[mask] - centre) ** 2) * dx / charge))
    return out


def main() -> None:
    from densitylab.model1d.propagation import load_trajectory
    from densitylab.tdks.evaluate import ANCHORS, load_model
    from densitylab.tdks.propagation import problem_from_trajectory, propagate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trajectory", required=True)
    parser.add_argument("--model", action="append", default=None)
    parser.add_argument("--atom", type=float, default=-10.0)
    parser.add_argument("--margin", type=float, default=5.0)
    args = parser.parse_args()
    problem, target = problem_from_trajectory(load_trajectory(args.trajectory))
    x, dx = np.asarray(problem.x), problem.dx
    steps = [round((target.shape[0] - 1) * f) for f in FRACTIONS]
    models = [anchor(problem) for anchor in ANCHORS.values()]
    models += [load_model(name, problem) for name in args.model or ["scattering-memory"]]
    runs = {"exact": target}
    for model in models:
        runs[model.label] = np.asarray(propagate(problem, model.model, model.params, memory=model.memory)[0])
    for label, density in runs.items():
        error = np.sum(np.abs(density - target), axis=1) * dx
        row = {
            "model": label,
            "times": [k * problem.dt for k in steps],
            "density_error": [float(error[k]) for k in steps],
            "density_error_max": float(error.max()),
            "time_of_max": float(np.argmax(error) * problem.dt),
            "parts": [parts(density[k], x, dx, args.atom, args.margin) for k in steps],
        }
        print(json.dumps(row))


if __name__ == "__main__":
    main()
