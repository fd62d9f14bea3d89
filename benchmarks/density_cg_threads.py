"""CG iterations of the density regression with one BLAS thread against the default threads,
on an idle and on a busy machine (issue 16).

The CG solve's products are small (Ψ blocks and the preconditioner's D × D rotations, D ≤ 900)
and run thousands of times. OpenBLAS's threads wait on each other when the cores are taken by
other processes (a reference generation, Dask workers, another fit), which slows exactly these
products by orders of magnitude; ``CGProblem.solve`` therefore limits BLAS to one thread.

Molecules: the first --molecules training molecules of density_qm9_scale.py's shards; η fixed
(--regularisation), --iterations CG iterations timed. ``--busy`` keeps one spinning process per
core during the timings (a stand-in for other work on the machine).

Run:  python benchmarks/density_cg_threads.py [--molecules 30 --iterations 40] [--busy]
Appends to benchmarks/results/density_cg_threads.jsonl.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))


def _spin() -> None:
    while True:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", type=int, default=30)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--sparse", type=int, default=100)
    parser.add_argument("--regularisation", type=float, default=1e-2)
    parser.add_argument("--busy", action="store_true")
    parser.add_argument("--work", default="/work/qm9data")
    args = parser.parse_args()

    from density_qm9_scale import _joined
    from densitylab.density import cg, regression
    from densitylab.density.pipeline import training_problem

    joined, training = _joined(Path(args.work))
    indices = training[: args.molecules]
    built = training_problem(joined, indices, settings=regression.RegressionSettings(args.sparse))
    model, designs, labels, numbers = built.model, built.designs, built.labels, built.numbers
    overlaps = [joined.overlap[i] for i in indices]
    metrics = [cg.pack_metric(overlap, np.float32) for overlap in overlaps]
    layout = regression._weight_layout(model)
    problem = cg.CGProblem(designs, metrics, layout, cg.one_centre_overlaps(overlaps, labels, numbers))
    rhs = np.random.default_rng(0).normal(size=designs[0].shape[1])

    spinners = []
    if args.busy:
        spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(os.cpu_count() or 1)]
        for spinner in spinners:
            spinner.start()
    import threadpoolctl

    records = []
    try:
        for mode in ("one BLAS thread", "default BLAS threads"):
            limits = threadpoolctl.threadpool_limits
            if mode != "one BLAS thread":  # the solve's own limit lifted
                threadpoolctl.threadpool_limits = lambda **_: contextlib.nullcontext()
            started = time.perf_counter()
            _, info = problem.solve(rhs, args.regularisation, 0.0, args.iterations)
            seconds = time.perf_counter() - started
            threadpoolctl.threadpool_limits = limits
            records.append(
                {
                    "mode": mode,
                    "busy": args.busy,
                    "molecules": args.molecules,
                    "iterations": info["iterations"],
                    "seconds_per_iteration": seconds / max(info["iterations"], 1),
                    "blas_threads_default": [
                        pool["num_threads"]
                        for pool in threadpoolctl.threadpool_info()
                        if pool["user_api"] == "blas"
                    ],
                    "date": time.strftime("%Y-%m-%d"),
                }
            )
            print(json.dumps(records[-1]), flush=True)
    finally:
        for spinner in spinners:
            spinner.terminate()
    (HERE / "results").mkdir(exist_ok=True)
    with (HERE / "results" / "density_cg_threads.jsonl").open("a") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
