"""A v_c functional against the anchors on every case of a trajectory set (issue 18).

For each case of ``--set`` (a folder of ``densitylab tdks dataset``) and each ``--model`` (a
shipped name or a folder), the functional and the anchors exchange-only, ALDA and SCE are
propagated from the exact initial state; the table gives max over t of ∫|n_KS − n_exact| dx,
each case marked training or held-out (``--held-out``, default the public held-out cases),
and the ratio of the best anchor's error to the functional's.

Figures (``--figures``): the density error against time on every held-out case, and on the
first held-out scattering case with an inverted v_c (a collision), the functional's v_c(x, t)
beside the exact one (model (a)), both gauged to zero density-weighted mean at each time.

Run:  python benchmarks/tdks_functional.py --set SET --model scattering-memory [--output STEM]
Writes benchmarks/results/STEM.{json,md} (STEM: tdks_functional) and the figures in
benchmarks/results/STEM/.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def gauged(v_c: np.ndarray, density: np.ndarray) -> np.ndarray:
    """v_c − ⟨v_c⟩_n at each time (a constant in x moves no density)."""
    mean = np.sum(v_c * density, axis=1) / np.sum(density, axis=1)
    return v_c - mean[:, None]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", type=Path, required=True)
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--held-out", nargs="*", default=None, help="case names (default: the public ones)")
    parser.add_argument("--figures", type=Path, default=None, help="default: benchmarks/results/STEM")
    parser.add_argument("--output", default="tdks_functional", help="results file stem in benchmarks/results")
    args = parser.parse_args()
    # a comparison under another stem must not overwrite the shipped model's figures
    args.figures = args.figures or RESULTS / args.output

    from densitylab.model1d.propagation import load_trajectory
    from densitylab.plots import plot_density_errors, plot_xt_maps
    from densitylab.tdks.dataset import case_name, held_out_cases
    from densitylab.tdks.evaluate import ANCHORS, evaluate, load_model, read_values
    from densitylab.tdks.propagation import problem_from_trajectory

    held_out = set(args.held_out if args.held_out is not None else [case_name(c) for c in held_out_cases()])
    names = sorted(path.stem for path in args.set.glob("*.h5"))
    rows, figures_done = [], False
    args.figures.mkdir(parents=True, exist_ok=True)
    for name in names:
        problem, target = problem_from_trajectory(load_trajectory(args.set / f"{name}.h5"))
        models = [load_model(model, problem) for model in args.model]
        started = time.perf_counter()
        results = evaluate(problem, target, models + [anchor(problem) for anchor in ANCHORS.values()])
        seconds = time.perf_counter() - started
        anchors = {label: float(results[label]["errors"].max()) for label in ANCHORS}
        for model in models:
            error = float(results[model.label]["errors"].max())
            row = {"case": name, "held_out": name in held_out, "model": model.label, "error": error}
            row.update(anchors, best_anchor_over_model=min(anchors.values()) / error, seconds=seconds)
            rows.append(row)
        if name in held_out:
            times = np.arange(problem.steps + 1) * problem.dt
            errors = {label: value["errors"] for label, value in results.items()}
            plot_density_errors(times, errors, args.figures / f"errors-{name}.png")
            values = args.set / f"{name}-values"
            if not figures_done and name.startswith("scatter") and (values / "manifest.json").is_file():
                exact = gauged(read_values(values), target[:-1])
                maps = {"v_c exact (model a)": exact}  # names starting with v: potentials
                for model in models:
                    own = results[model.label]
                    maps[f"v_c {model.label}"] = gauged(own["v_c"], own["densities"][:-1])
                plot_xt_maps(problem.x, times[:-1], maps, args.figures / f"vc-{name}.png")
                figures_done = True
        print(json.dumps(rows[-1]), flush=True)
    header = "| case | set | model | functional | exchange-only | ALDA | SCE | best anchor / functional |"
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        kind = "held out" if row["held_out"] else "training"
        lines.append(
            f"| {row['case']} | {kind} | {row['model']} | {row['error']:.3f} | {row['exchange-only']:.3f} | "
            f"{row['alda']:.3f} | {row['sce']:.3f} | {row['best_anchor_over_model']:.2f} |"
        )
    RESULTS.mkdir(exist_ok=True)
    meta = {"parameters": {k: str(v) for k, v in vars(args).items()}, "machine": platform.processor()}
    (RESULTS / f"{args.output}.json").write_text(json.dumps({**meta, "rows": rows}, indent=1))
    (RESULTS / f"{args.output}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
