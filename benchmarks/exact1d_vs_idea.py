"""Side-by-side benchmark: densitylab.model1d against iDEA (PyPI ``idea-latest``).

Every case runs in a fresh process (spawned), so that the peak resident memory of one solve
can be read from ``ru_maxrss``; the baseline after imports is subtracted and also reported.
Both codes get the same grid (iDEA's convention), the same 13-point stencil and the same
softened interaction 1/(|x−x'|+1).

Run:  make bench     (installs the ``bench`` extra, then runs this file)
      python benchmarks/exact1d_vs_idea.py [--quick]

Writes benchmarks/results/exact1d_vs_idea.{json,md}.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import resource
import sys
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def _potential(x: np.ndarray, kind: str) -> np.ndarray:
    if kind == "harmonic":
        return 0.5 * 0.25**2 * x**2
    if kind == "atom":
        return -3.0 / (np.abs(x) + 1.0)
    raise ValueError(kind)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_case(code: str, method: str, points: int, box: float, electrons: str, potential: str) -> dict:
    """Solve one case in this (fresh) process; returns energy, seconds and memory."""
    x = np.linspace(-box, box, points)
    v_ext = _potential(x, potential)
    if code == "idea":
        import iDEA

        baseline = _rss_mb()
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            system = iDEA.system.System(
                x, v_ext, iDEA.interactions.softened_interaction(x), electrons, stencil=13
            )
            if method == "exact":
                energy = float(iDEA.methods.interacting.solve(system, k=0).energy)
            elif method == "uhf":
                state = iDEA.methods.hartree_fock.solve(system, restricted=False, silent=True)
                energy = float(iDEA.methods.hartree_fock.total_energy(system, state))
            elif method == "lda":
                state = iDEA.methods.lda.solve(system, silent=True)
                energy = float(iDEA.methods.lda.total_energy(system, state))
    else:
        from densitylab.model1d import Grid, Interaction, System, solve_exact
        from densitylab.model1d.meanfield import solve_mean_field

        baseline = _rss_mb()
        start = time.perf_counter()
        system = System(Grid(points, -box, box, 13), v_ext, electrons, Interaction("softened"))
        if method == "exact":
            energy = solve_exact(system).ground.energy
        elif method == "uhf":
            energy = solve_mean_field(system, "hartree-fock", restricted=False, break_symmetry=False).energy
        elif method == "lda":  # iDEA's convention (polarised fit on the total density) for comparison
            energy = solve_mean_field(
                system, "lda", restricted=False, spin_scaling=False, break_symmetry=False
            ).energy
    seconds = time.perf_counter() - start
    peak = _rss_mb()
    return {"energy": energy, "seconds": seconds, "peak_mb": peak, "extra_mb": peak - baseline}


def _child(connection, arguments) -> None:
    connection.send(run_case(*arguments))
    connection.close()


def in_fresh_process(*arguments, timeout: float = 300.0) -> dict:
    """Run one case in a spawned process; a case that outlives ``timeout`` is killed and reported."""
    context = get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, arguments))
    start = time.perf_counter()
    process.start()
    if receiver.poll(timeout):
        result = receiver.recv()
        process.join()
        return result
    process.kill()
    process.join()
    return {
        "energy": float("nan"),
        "seconds": time.perf_counter() - start,
        "peak_mb": float("nan"),
        "extra_mb": float("nan"),
        "timed_out": True,
    }


def bandwidth_report() -> dict:
    """Time one H application and compare its minimum memory traffic with a STREAM-like copy."""
    from densitylab.model1d import Grid, Interaction, System
    from densitylab.model1d.exact import ExactHamiltonian

    size = 50_000_000
    a, b = np.ones(size), np.ones(size)
    np.add(a, b, out=a)
    start = time.perf_counter()
    for _ in range(5):
        np.add(a, b, out=a)
    stream = 3 * 8 * size * 5 / (time.perf_counter() - start) / 1e9
    del a, b
    report = {"stream_add_gb_per_s": stream, "cases": []}
    for points, electrons in ((300, "ud"), (100, "uud"), (40, "uudd")):
        x = np.linspace(-10, 10, points)
        system = System(Grid(points, -10, 10, 13), _potential(x, "harmonic"), electrons, Interaction())
        hamiltonian = ExactHamiltonian(system)
        parity = 1 if hamiltonian.has_spin_flip_symmetry else None
        vector = np.random.default_rng(0).standard_normal(hamiltonian.sector_dimension(parity))
        hamiltonian.apply_packed(vector, parity)
        repeats = 20
        start = time.perf_counter()
        for _ in range(repeats):
            hamiltonian.apply_packed(vector, parity)
        seconds = (time.perf_counter() - start) / repeats
        entries = vector.size
        kinetic_bytes = 12 * (hamiltonian.major.kinetic.nnz + hamiltonian.minor.kinetic.nnz)
        minimum_bytes = 3 * 8 * entries + kinetic_bytes  # read Ψ and V, write HΨ (sector size), read K once
        report["cases"].append(
            {
                "electrons": electrons,
                "points": points,
                "amplitudes": entries,
                "seconds_per_application": seconds,
                "effective_gb_per_s": minimum_bytes / seconds / 1e9,
                "fraction_of_stream": minimum_bytes / seconds / 1e9 / stream,
            }
        )
    return report


def scaling_report() -> list[dict]:
    from densitylab.model1d import Grid, Interaction, System, solve_exact

    rows = []
    for electrons, grids in (
        ("ud", (100, 200, 300, 400, 600)),
        ("uud", (40, 60, 80, 100)),
        ("uudd", (20, 30, 40)),
    ):
        for points in grids:
            x = np.linspace(-10, 10, points)
            system = System(Grid(points, -10, 10, 13), _potential(x, "harmonic"), electrons, Interaction())
            start = time.perf_counter()
            solution = solve_exact(system)
            rows.append(
                {
                    "electrons": electrons,
                    "points": points,
                    "seconds": time.perf_counter() - start,
                    "dimension": next(iter(solution.solver.values()))["dimension"],
                    "solver": next(iter(solution.solver.values()))["method"],
                }
            )
    return rows


CASES = [
    # (method, points, box, electrons, potential, run iDEA?)
    ("exact", 100, 10.0, "ud", "harmonic", True),
    ("exact", 200, 10.0, "ud", "harmonic", True),
    ("exact", 300, 10.0, "ud", "harmonic", True),
    ("exact", 40, 10.0, "uud", "harmonic", True),
    ("exact", 60, 10.0, "uu", "atom", True),
    ("exact", 100, 10.0, "uud", "harmonic", False),
    ("exact", 40, 10.0, "uudd", "harmonic", False),
    ("exact", 40, 10.0, "uuud", "harmonic", False),
    ("uhf", 300, 10.0, "ud", "atom", True),
    ("uhf", 300, 10.0, "uud", "atom", True),
    ("lda", 100, 10.0, "ud", "atom", True),
    ("lda", 300, 10.0, "uu", "atom", True),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the slowest iDEA case")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds before an iDEA case is killed")
    arguments = parser.parse_args()
    rows = []
    for method, points, box, electrons, potential, with_idea in CASES:
        if arguments.quick and method == "exact" and points == 300 and electrons == "ud":
            with_idea = False
        runs = [in_fresh_process("densitylab", method, points, box, electrons, potential) for _ in range(3)]
        ours = dict(runs[0])
        ours["seconds"] = float(np.median([run["seconds"] for run in runs]))  # median of 3 fresh processes
        ours["extra_mb"] = max(run["extra_mb"] for run in runs)
        theirs = (
            in_fresh_process("idea", method, points, box, electrons, potential, timeout=arguments.timeout)
            if with_idea
            else None
        )
        row = {
            "method": method,
            "points": points,
            "electrons": electrons,
            "potential": potential,
            "densitylab": ours,
            "idea": theirs,
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "numpy": np.__version__,
        },
        "command": "python benchmarks/exact1d_vs_idea.py" + (" --quick" if arguments.quick else ""),
        "cases": rows,
        "bandwidth": bandwidth_report(),
        "scaling": scaling_report(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "exact1d_vs_idea.json").write_text(json.dumps(report, indent=1))
    header = [
        "method",
        "electrons",
        "points",
        "iDEA s",
        "densitylab s",
        "speed-up",
        "iDEA MB",
        "densitylab MB",
        "ΔE (Ha)",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        ours, theirs = row["densitylab"], row["idea"]
        cells = [row["method"], row["electrons"], str(row["points"])]
        if theirs is None:
            cells += ["—", f"{ours['seconds']:.3f}", "—", "—", f"{ours['extra_mb']:.0f}", "—"]
        elif theirs.get("timed_out"):
            cells += [
                f"> {theirs['seconds']:.0f} (no convergence, killed)",
                f"{ours['seconds']:.3f}",
                "—",
                "—",
            ]
            cells += [f"{ours['extra_mb']:.0f}", "—"]
        else:
            cells += [
                f"{theirs['seconds']:.2f}",
                f"{ours['seconds']:.3f}",
                f"{theirs['seconds'] / ours['seconds']:.0f}×",
            ]
            cells += [
                f"{theirs['extra_mb']:.0f}",
                f"{ours['extra_mb']:.0f}",
                f"{abs(theirs['energy'] - ours['energy']):.1e}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    (RESULTS / "exact1d_vs_idea.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(json.dumps(report["bandwidth"], indent=1))
    print(json.dumps(report["scaling"], indent=1))


if __name__ == "__main__":
    main()
