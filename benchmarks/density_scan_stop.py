"""The η scan's stopping rule on QM9 molecules (issue 16): CG scan solves that stop once the
held-out % RMSE has settled (densitylab.density.regression._HeldOutSettled) against solves run
to the residual tolerance, on the same training molecules: the η chosen, every held-out % RMSE,
and the CG iterations of the scan.

Molecules: the first --molecules training molecules of density_qm9_scale.py's shards
(even-tempered basis, single-precision metrics, --sparse environments per species), as its
curve trains them.

Run:  python benchmarks/density_scan_stop.py [--molecules 100 --sparse 100 --work /work/qm9data]
          [--modes settled_rule residual_only]
Appends one record per mode to benchmarks/results/density_scan_stop.jsonl.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", type=int, default=100)
    parser.add_argument("--sparse", type=int, default=100)
    parser.add_argument("--work", default="/work/qm9data")
    parser.add_argument("--modes", nargs="+", default=["settled_rule", "residual_only"])
    args = parser.parse_args()

    from density_qm9_scale import _joined
    from densitylab.density import regression
    from densitylab.density.pipeline import train

    joined, training = _joined(Path(args.work))
    settings = regression.RegressionSettings(args.sparse, solver="cg", metric_precision="single")
    rules = {"settled_rule": regression.SCAN_SETTLED, "residual_only": 0.0}
    (HERE / "results").mkdir(exist_ok=True)
    for mode in args.modes:
        regression.SCAN_SETTLED = rules[mode]
        started = time.perf_counter()
        _, info = train(joined, training[: args.molecules], settings=settings)
        record = {
            "mode": mode,
            "molecules": args.molecules,
            "sparse": args.sparse,
            "regularisation": info["regularisation"],
            "scan": info["regularisation_scan"],
            "scan_iterations": sum(entry["iterations"] for entry in info["regularisation_scan"]),
            "final_iterations": info["iterations"],
            "seconds": time.perf_counter() - started,
            "date": time.strftime("%Y-%m-%d"),
        }
        print(json.dumps(record), flush=True)
        with (HERE / "results" / "density_scan_stop.jsonl").open("a") as handle:
            handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
