"""DFT with a cold and a warm compilation cache, side by side with PySCF (issue 19).

Each case runs three times, each in a fresh Python process: densitylab with an empty JAX
compilation cache (the first run on a machine), densitylab again with the cache the first run
filled (every later run of the same shapes), and PySCF (DIIS, conv_tol 1e-10). Same settings as
benchmarks/dft_vs_pyscf.py (6-31G, grid level 3, density-fitted J/K), whose ``--one`` mode
runs each calculation and measures its wall time (library imports excluded) and peak RSS.

Run:  python benchmarks/dft_cache.py [--group accuracy timing] [--xc-grid auto|stored|streamed]
          [--no-pyscf] [--output STEM] [--repeats N]

With ``--repeats N`` the warm and the PySCF run are each repeated N times (interleaved per
case) and the median time is reported: the small rows vary by ±30 % from run to run.
Writes benchmarks/results/STEM.{json,md} (STEM: dft_cache).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))
from dft_vs_pyscf import GROUPS  # noqa: E402


def one(code: str, molecule: str, xc: str, spin: int, cache: str, xc_grid: str = "auto") -> dict:
    environment = {**os.environ, "DENSITYLAB_JAX_CACHE": cache}
    arguments = ["--one", code, molecule, xc, str(spin), "--xc-grid", xc_grid]
    completed = subprocess.run(
        [sys.executable, str(HERE / "dft_vs_pyscf.py"), *arguments],
        capture_output=True, text=True, check=True, env=environment,
    )  # fmt: skip
    return json.loads(completed.stdout.strip().splitlines()[-1])


def median_run(runs: list[dict]) -> dict:
    """The run of median time (the lower middle one for an even count)."""
    return sorted(runs, key=lambda run: run["seconds"])[(len(runs) - 1) // 2]


def table(rows: list[dict]) -> str:
    lines = [
        "| molecule | xc | nao | E − PySCF (Ha) | cold cache (s) | warm cache (s) | PySCF (s) "
        "| time ratio to PySCF, cold / warm | peak RSS warm / PySCF (GB) "
        "| peak RSS above the imports, warm / PySCF (GB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cold, warm, pyscf = row["cold"], row["warm"], row["pyscf"]
        memory = f"{warm['peak_rss_gb']:.2f} / {pyscf['peak_rss_gb']:.2f}"
        if "import_rss_gb" in warm and "import_rss_gb" in pyscf:
            own = [record["peak_rss_gb"] - record["import_rss_gb"] for record in (warm, pyscf)]
            memory += f" | {own[0]:.2f} / {own[1]:.2f}"
        else:
            memory += " | —"
        lines.append(
            f"| {row['molecule']} | {row['xc'].replace(',', ', ')} | {warm['nao']} "
            f"| {warm['energy'] - pyscf['energy']:+.1e} | {cold['seconds']:.2f} | {warm['seconds']:.2f} "
            f"| {pyscf['seconds']:.2f} | {cold['seconds'] / pyscf['seconds']:.2f} / "
            f"{warm['seconds'] / pyscf['seconds']:.2f} | {memory} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--group", nargs="+", default=["accuracy", "timing"], choices=list(GROUPS))
    parser.add_argument("--xc-grid", default="auto", choices=["auto", "stored", "streamed"])
    parser.add_argument("--no-pyscf", action="store_true", help="densitylab only")
    parser.add_argument("--output", default="dft_cache", help="results file stem in benchmarks/results")
    parser.add_argument(
        "--repeats", type=int, default=1, help="warm and PySCF runs per case; the median time is kept"
    )
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats: expected a positive integer, got {args.repeats}")
    rows = []
    for group in args.group:
        for molecule, xc, spin in GROUPS[group]:
            with tempfile.TemporaryDirectory() as folder:
                cache = str(Path(folder) / "jax")  # the stored executables go beside it, in folder
                row = {"molecule": molecule, "xc": xc, "spin": spin}
                row["cold"] = one("densitylab", molecule, xc, spin, cache, args.xc_grid)
                warm, pyscf = [], []
                for _ in range(args.repeats):  # interleaved, so both meet the same machine
                    warm.append(one("densitylab", molecule, xc, spin, cache, args.xc_grid))
                    if not args.no_pyscf:
                        pyscf.append(one("pyscf", molecule, xc, spin, "off"))
            row["warm"], row["warm_seconds"] = median_run(warm), [run["seconds"] for run in warm]
            if pyscf:
                row["pyscf"], row["pyscf_seconds"] = median_run(pyscf), [run["seconds"] for run in pyscf]
            rows.append(row)
            print(json.dumps(row), flush=True)
    RESULTS.mkdir(exist_ok=True)
    machine = platform.processor() or platform.machine()
    (RESULTS / f"{args.output}.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
    if args.no_pyscf:
        return
    markdown = table(rows)
    (RESULTS / f"{args.output}.md").write_text(markdown + "\n")
    print(markdown)


if __name__ == "__main__":
    main()
