"""Whole-process time of the smallest exact1d run, beside iDEA's whole process.

Two electrons (singlet) on 300 points of [−10, 10] in the harmonic well ½(0.25)²x² with the
softened interaction and the 13-point stencil, solved as a user would from a shell: the
densitylab command (``densitylab exact1d … --json``) and a Python one-liner that imports iDEA
and solves the same system. Each is a fresh process, so imports, start-up and the solve are all
counted; the median of several runs is reported. ``densitylab --help`` and a bare
``python -c pass`` are timed too, as the floor.

Run:  python benchmarks/exact1d_process.py [--repeats 5] [--idea-repeats 3]
      (iDEA comes with the bench extra: pip install -e '.[bench]')
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
IDEA = (
    "import numpy as np, iDEA; x = np.linspace(-10, 10, 300); "
    "s = iDEA.system.System(x, 0.5 * 0.25**2 * x**2, iDEA.interactions.softened_interaction(x), 'ud', "
    "stencil=13); print(iDEA.methods.interacting.solve(s, k=0).energy)"
)


def wall(command: list[str], repeats: int) -> tuple[float, str]:
    """Median wall time (s) of ``command`` as a fresh process, and its last output line."""
    times, output = [], ""
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - start)
        output = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    return statistics.median(times), output


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--idea-repeats", type=int, default=3)
    options = parser.parse_args()
    densitylab = shutil.which("densitylab") or str(Path(sys.executable).with_name("densitylab"))
    system = ["--points", "300", "--x-min", "-10", "--x-max", "10", "--electrons", "ud", "--stencil", "13"]
    command = [densitylab, "exact1d", *system, "--potential", "harmonic", "--json"]
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "python_pass_seconds": wall([sys.executable, "-c", "pass"], options.repeats)[0],
        "densitylab_help_seconds": wall([densitylab, "--help"], options.repeats)[0],
    }
    seconds, output = wall(command, options.repeats)
    summary = json.loads(output)
    results |= {"densitylab_process_seconds": seconds, "densitylab_solve_seconds": summary["seconds"],
                "densitylab_energy": summary["energy"]}  # fmt: skip
    try:
        seconds, output = wall([sys.executable, "-c", IDEA], options.idea_repeats)
        results |= {"idea_process_seconds": seconds, "idea_energy": float(output)}
        results["speed-up"] = results["idea_process_seconds"] / results["densitylab_process_seconds"]
    except (subprocess.CalledProcessError, ValueError) as error:
        results["idea_error"] = f"iDEA not run ({type(error).__name__}); install the bench extra"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "exact1d_process.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
