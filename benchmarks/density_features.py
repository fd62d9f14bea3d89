"""λ-SOAP for training sets of QM9 molecules (issue 16): the full product then selection (the
route before issue 16, run from a checkout of that commit) against the selected products alone.

Each measurement is a fresh process; time is wall time of the feature step of ``train`` (choose
the columns, compute the kept columns for every training atom), memory the process's peak RSS.
Molecules: the first N of the QM9 draw of ``density_qm9_scale.py`` (five species H, C, N, O, F;
λ ≤ 5 as the even-tempered basis needs; default FeatureSettings: 600 columns per block).

Run:  git worktree add /tmp/densitylab-before fa92867
      python benchmarks/density_features.py --before /tmp/densitylab-before \
          --sizes 60 120 240 --new-sizes 1000
Writes benchmarks/results/density_features.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"

CHILD = """
import json, resource, sys, time, warnings
warnings.filterwarnings("ignore")
from densitylab.density import features as F
from densitylab.density.structures import read_structures
frames = read_structures(sys.argv[1])[: int(sys.argv[2])]
species, settings = [1, 6, 7, 8, 9], F.FeatureSettings()
started = time.perf_counter()
if sys.argv[3] == "before":
    raw = F.lambda_soap(frames, 5, species, settings)
    selected = F.apply_columns(raw, F.select_columns(raw, settings.columns))
else:
    columns = F.choose_columns(frames, 5, species, settings)
    selected = F.selected_lambda_soap(frames, 5, species, settings, columns)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
kept = sum(b.shape[-1] for b in selected.blocks.values())
print(json.dumps({"seconds": seconds, "peak_gb": peak, "columns": kept}))
"""


def measure(route: str, source: Path, structures: Path, count: int) -> dict:
    environment = dict(os.environ, PYTHONPATH=str(source / "src"), OMP_NUM_THREADS="1")
    output = subprocess.run(
        [sys.executable, "-c", CHILD, str(structures), str(count), route],
        env=environment, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if output.returncode != 0:  # the full product of 240 QM9 molecules is killed for memory here
        return {"route": route, "molecules": count, "failed": f"exit {output.returncode}"}
    return {"route": route, "molecules": count, **json.loads(output.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", required=True, help="A checkout of the commit before issue 16.")
    parser.add_argument("--structures", default="/work/qm9data/structures.extxyz")
    parser.add_argument("--sizes", type=int, nargs="*", default=[60, 120, 240])
    parser.add_argument(
        "--new-sizes", type=int, nargs="*", default=[1000], help="Sizes run by the new route only."
    )
    args = parser.parse_args()
    path = RESULTS / "density_features.json"
    rows = json.loads(path.read_text()) if path.exists() else []  # later runs add or replace rows

    def record(row: dict) -> None:
        rows[:] = [r for r in rows if (r["route"], r["molecules"]) != (row["route"], row["molecules"])]
        rows.append(row)
        print(json.dumps(row), flush=True)

    for count in args.sizes:
        for route, source in (("before", Path(args.before)), ("selected", HERE.parent)):
            record(measure(route, source, Path(args.structures), count))
    for count in args.new_sizes:
        record(measure("selected", HERE.parent, Path(args.structures), count))
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps(sorted(rows, key=lambda r: (r["molecules"], r["route"])), indent=1))


if __name__ == "__main__":
    main()
