"""Throughput of 1-RDM dataset generation against iDEA on the same random family.

densitylab generates the full dataset (exact singlet, non-interacting and UHF for every system)
with ``densitylab rdm generate``; iDEA solves a sample of the same systems (the exact
interacting ground state only, the dominant cost) one by one, and its time is extrapolated.

Run:  python benchmarks/rdm_dataset.py [--systems 50000] [--idea-sample 20]
Writes benchmarks/results/rdm_dataset.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def idea_seconds_per_system(sample: int) -> tuple[float, float]:
    """Median seconds per exact solve in iDEA, and max |ΔE| against densitylab, on ``sample`` systems."""
    import iDEA

    from densitylab.model1d import Grid, System, solve_exact
    from densitylab.rdm.dataset import DatasetSpec, potentials

    spec = DatasetSpec()
    grid = Grid(spec.points, spec.x_min, spec.x_max, spec.stencil)
    interaction = iDEA.interactions.softened_interaction(grid.x)
    times, differences = [], []
    for v_ext in potentials(spec, 0, sample):
        system = iDEA.system.System(grid.x, v_ext, interaction, "ud", stencil=13)
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            energy = iDEA.methods.interacting.solve(system, k=0).energy
        times.append(time.perf_counter() - start)
        differences.append(abs(energy - solve_exact(System(grid, v_ext, "ud")).ground.energy))
    return float(np.median(times)), float(max(differences))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", type=int, default=50_000)
    parser.add_argument("--idea-sample", type=int, default=20)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "family.h5"
        command = [
            sys.executable,
            "-m",
            "densitylab.cli",
            "rdm",
            "generate",
            "--output",
            str(output),
            "--systems",
            str(arguments.systems),
            "--workers",
            "2",
            "--json",
        ]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - start
        summary = json.loads(result.stdout)
        size = output.stat().st_size
    idea_seconds, energy_difference = idea_seconds_per_system(arguments.idea_sample)
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
        },
        "command": " ".join(["densitylab", *command[3:]]).replace(str(output), "family.h5"),
        "systems": arguments.systems,
        "densitylab_wall_seconds": wall,
        "densitylab_generate_seconds": summary["seconds"],
        "systems_per_second": arguments.systems / wall,
        "file_bytes": size,
        "idea_sample": arguments.idea_sample,
        "idea_seconds_per_exact_solve": idea_seconds,
        "idea_extrapolated_cpu_hours": idea_seconds * arguments.systems / 3600,
        "max_energy_difference_vs_idea": energy_difference,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "rdm_dataset.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
