"""What single-precision metrics cost in CG (issue 16): how rounding S to float32 moves the
even-tempered metric of QM9 molecules, and the time of one packed S·v in double and in single
(stored float32, applied in double): on one metric at a time (in cache) and as CG applies them,
one after another over every molecule (one sweep per CG iteration, from memory).

Run:  python benchmarks/density_metric_precision.py [--work /work/qm9data] [--molecules 20]
Needs WORK/structures.extxyz (benchmarks/density_qm9_scale.py references writes it).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/work/qm9data")
    parser.add_argument("--molecules", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()

    from densitylab.density.cg import metric_times, pack_metric
    from densitylab.density.reference import ReferenceSettings, auxiliary_overlap
    from densitylab.density.structures import read_structures

    settings = ReferenceSettings(auxbasis="etb", grid_level=2, chunk_size=5)
    frames = read_structures(Path(args.work) / "structures.extxyz")[: args.molecules]
    rng = np.random.default_rng(0)
    packed = {"double": [], "single": []}
    for frame in frames:
        overlap = auxiliary_overlap(frame.numbers, frame.positions, settings)
        rounded = overlap.astype(np.float32).astype(np.float64)
        exact, perturbed = np.linalg.eigvalsh(overlap), np.linalg.eigvalsh(rounded)
        vector = rng.standard_normal(len(overlap))
        times = {}
        for name, dtype in (("double", np.float64), ("single", np.float32)):
            packed[name].append(pack_metric(overlap, dtype))
            metric_times(packed[name][-1], vector)
            started = time.perf_counter()
            for _ in range(args.repeats):
                metric_times(packed[name][-1], vector)
            times[name] = (time.perf_counter() - started) / args.repeats * 1e3
        print(
            f"{frame.get_chemical_formula():12s} naux {len(overlap)}"
            f"  eigenvalues {exact[0]:.3e} … {exact[-1]:.2f}"
            f"  rounded: smallest {perturbed[0]:.3e}, ‖S32 − S‖₂ {np.linalg.norm(rounded - overlap, 2):.3e}"
            f"  S·v {times['double']:.2f} ms double, {times['single']:.2f} ms single"
        )
    for name, metrics in packed.items():
        vectors = [rng.standard_normal(int((np.sqrt(8 * len(p) + 1) - 1) / 2)) for p in metrics]
        sweeps = []
        for _ in range(5):
            started = time.perf_counter()
            for metric, vector in zip(metrics, vectors, strict=True):
                metric_times(metric, vector)
            sweeps.append((time.perf_counter() - started) / len(metrics) * 1e3)
        held = sum(p.nbytes for p in metrics) / 1e6
        print(
            f"sweep over {len(metrics)} metrics ({held:.0f} MB), {name}: "
            f"{min(sweeps):.2f}–{max(sweeps):.2f} ms per metric"
        )


if __name__ == "__main__":
    main()
