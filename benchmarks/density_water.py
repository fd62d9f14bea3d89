"""Density learning on water monomers (the SALTED water benchmark of issue 6).

150 water monomers from the built-in normal-mode sampler (seed 0, 300 K), PBE/def2-SVP
references fitted into AUXBASIS (default def2-universal-jkfit) in the overlap metric; train
on the first 120, test on the last 30. Records the reference time, the time of everything after
the DFT (features, sparse GPR with the CG solver, prediction of the test set and its % RMSE),
% RMSE (SALTED's normalisation), grid NMAE beside the fitting floor, one-step energy errors,
and the direct solver's % RMSE for comparison.

Run:  python benchmarks/density_water.py [--auxbasis etb] [--workers 2]
Writes benchmarks/results/density_water_<auxbasis>.json.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--auxbasis", default="def2-universal-jkfit")
    parser.add_argument("--structures", type=int, default=150)
    parser.add_argument("--train", type=int, default=120)
    parser.add_argument("--sparse", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", default="/tmp/density_water")
    parser.add_argument("--solvers", nargs="+", default=["cg", "direct"], choices=["cg", "direct"])
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    from densitylab.density import regression
    from densitylab.density.pipeline import evaluate, predict, train
    from densitylab.density.reference import ReferenceSettings, generate_reference, load_reference
    from densitylab.density.regression import RegressionSettings
    from densitylab.density.structures import water_monomers

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    frames = water_monomers(args.structures, seed=0)
    started = time.perf_counter()
    output = work / f"water-{args.auxbasis}.h5"
    generate_reference(
        frames, output, ReferenceSettings(auxbasis=args.auxbasis), workers=args.workers, seed=0
    )
    reference_seconds = time.perf_counter() - started
    reference = load_reference(output)
    training = list(range(args.train))
    test = list(range(args.train, args.structures))

    record = {
        "auxbasis": args.auxbasis,
        "structures": args.structures,
        "train": args.train,
        "sparse": args.sparse,
    }
    record["reference_seconds"] = reference_seconds
    previous = RESULTS / f"density_water_{args.auxbasis}.json"
    if previous.exists():  # keep the other solver's earlier record when only one is rerun
        record.update({k: v for k, v in json.loads(previous.read_text()).items() if k in ("cg", "direct")})
    for solver in args.solvers:
        started = time.perf_counter()
        trained, info = train(reference, training, settings=RegressionSettings(args.sparse, solver=solver))
        predicted, _ = predict(trained, [reference.atoms(i) for i in test])
        baselines = [
            regression.baseline_vector(trained.model, reference.labels[i], reference.numbers[i]) for i in test
        ]
        rmse = regression.rmse_percent(
            predicted,
            [reference.coefficients[i] for i in test],
            [reference.overlap[i] for i in test],
            baselines,
        )
        record[solver] = {
            "pipeline_seconds": time.perf_counter() - started,
            "rmse_percent": rmse,
            "solver": {k: v for k, v in info.items() if k != "seconds"},
            "solve_seconds": info["seconds"],
        }
        print(json.dumps({solver: record[solver]}), flush=True)
    started = time.perf_counter()
    record["evaluation"], _ = evaluate(trained, reference, test, energies=True)
    record["evaluation_seconds"] = time.perf_counter() - started
    print(json.dumps(record["evaluation"]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"density_water_{args.auxbasis}.json").write_text(json.dumps(record, indent=1))
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
