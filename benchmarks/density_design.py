"""Memory and time of the density regression's design matrices Φ on QM9 molecules (issue 16):
the factored Φ (densitylab.density.design, each Ψ row once) against the sparse CSR Φ it
replaced (each Ψ row once per radial channel), and the metric product S·v beside them, which
with Φ and Φᵀ makes one molecule's share of a CG iteration.

Molecules: the first --molecules training molecules of density_qm9_scale.py's shards
(even-tempered basis), features and model as its curve builds them (--sparse per species).

Run:  python benchmarks/density_design.py [--molecules 50 --sparse 100 --work /work/qm9data]
Writes benchmarks/results/density_design.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))


def _timed(function, repeats: int) -> float:
    started = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", type=int, default=50)
    parser.add_argument("--sparse", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--work", default="/work/qm9data")
    args = parser.parse_args()

    from density_qm9_scale import _joined
    from densitylab.density.cg import metric_times, pack_metric
    from densitylab.density.pipeline import training_problem
    from densitylab.density.regression import RegressionSettings

    joined, training = _joined(Path(args.work))
    indices = training[: args.molecules]
    problem = training_problem(joined, indices, settings=RegressionSettings(args.sparse))
    factored, labels = problem.designs, problem.labels
    sparse = [design.tocsr() for design in factored]
    metrics = {
        precision: [pack_metric(joined.overlap[i], dtype) for i in indices]
        for precision, dtype in (("double", np.float64), ("single", np.float32))
    }
    rng = np.random.default_rng(0)
    weights = rng.normal(size=factored[0].shape[1])

    def products(designs):
        def run():
            for design in designs:
                design.T @ (design @ weights)

        return run

    def metric_products(packed):
        vectors = [rng.normal(size=len(labels[k])) for k in range(len(indices))]

        def run():
            for metric, vector in zip(packed, vectors, strict=True):
                metric_times(metric, vector)

        return run

    for a, b in zip(factored, sparse, strict=True):  # the two forms are one matrix
        assert np.allclose(a @ weights, b @ weights, rtol=0, atol=1e-12 * np.abs(b @ weights).max())
    count = len(indices)
    result = {
        "molecules": count,
        "parameters": int(factored[0].shape[1]),
        "mean_rows": float(np.mean([d.shape[0] for d in factored])),
        "factored_mb_per_molecule": float(np.mean([d.nbytes for d in factored]) / 1e6),
        "csr_mb_per_molecule": float(
            np.mean([s.data.nbytes + s.indices.nbytes + s.indptr.nbytes for s in sparse]) / 1e6
        ),
        "factored_ms_per_molecule": 1e3 * _timed(products(factored), args.repeats) / count,
        "csr_ms_per_molecule": 1e3 * _timed(products(sparse), args.repeats) / count,
    }
    for precision, packed in metrics.items():
        seconds = _timed(metric_products(packed), args.repeats)
        result[f"metric_{precision}_ms_per_molecule"] = 1e3 * seconds / count
    result["date"] = time.strftime("%Y-%m-%d")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "density_design.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
