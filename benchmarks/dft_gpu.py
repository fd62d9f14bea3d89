"""Direct-minimisation DFT on whatever JAX's default device is (a GPU where there is one).

Each case runs in a fresh Python process under a time limit, so that one case that fails or
runs long leaves the others their time, and each process's peak memory is its own. A record
(one JSON line, appended to ``--results``) holds the device, the JAX version, the set-up time
(PySCF's integrals and grid on the host, the DF solve and the AO values on the device), the
minimisation time and evaluations, the energy, and peak device and host memory. Where
``benchmarks/results/dft_vs_pyscf.json`` has PySCF's energy for the same case (6-31G, grid
level 3, def2-universal-jkfit DF, same functional), the record gives the difference.

Run:  python benchmarks/dft_gpu.py [--cases h2o:lda,vwn c60:lda,vwn ...] [--limit SECONDS]
      [--results benchmarks/results/dft_gpu.jsonl] [--xc-grid ...] [--df-storage device|disk]
On a machine without a GPU it runs on the CPU (the C80/C100 scaling rows of BENCHMARKS.md).
Cases name a file of benchmarks/molecules and a functional: MOLECULE:XC[:SPIN].
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
MOLECULES = HERE / "molecules"
RESULTS = HERE / "results"
# the closed cages (c80-cage, c100-cage, c180-cage: D4FT's fullerene.py); c100 is the open cage
# cut from C180 that earlier runs used. C180's DF tensor (141.8 GB) exceeds an H200 (and its
# 64 GiB disk), so it is not a default.
DEFAULT_CASES = ["h2o:lda,vwn", "benzene:b3lyp", "n-decane:b3lyp", "c60:lda,vwn", "c100-cage:lda,vwn"]


def pyscf_energy(molecule: str, xc: str, spin: int) -> float | None:
    """PySCF's converged energy for the case from dft_vs_pyscf.json (same settings), if any."""
    path = RESULTS / "dft_vs_pyscf.json"
    if not path.exists():
        return None
    for record in json.loads(path.read_text())["records"]:
        if record["code"] == "pyscf" and (record["molecule"], record["xc"], record["spin"]) == (
            molecule,
            xc,
            spin,
        ):
            return record["energy"]
    return None


def run_case(
    molecule: str,
    xc: str,
    spin: int,
    max_iterations: int,
    log: Path | None = None,
    storage: tuple = ("auto", "device"),
) -> dict:
    """One calculation in this process; its record. ``log``: a JSON line per evaluation
    (seconds since the start, energy, gradient), so that a case cut off by its time limit
    still shows how far it got. ``storage``: (xc_grid, df_storage) of :class:`DFTSettings`."""
    import warnings

    warnings.filterwarnings("ignore")
    from densitylab.dft.optimise import OptimiserSettings
    from densitylab.dft.run import run_dft
    from densitylab.dft.system import DFTSettings
    from densitylab.jaxsetup import jax_modules

    jax, _, _ = jax_modules()
    device = jax.devices()[0]
    started = time.perf_counter()

    def progress(iteration, total, **fields):
        if log is not None:
            entry = {
                "case": f"{molecule}:{xc}",
                "iteration": iteration,
                "seconds": time.perf_counter() - started,
            }
            with log.open("a") as handle:
                handle.write(json.dumps({**entry, **fields}) + "\n")

    report = run_dft(
        MOLECULES / f"{molecule}.xyz",
        xc=xc,
        spin=spin,
        settings=DFTSettings(xc=xc, xc_grid=storage[0], df_storage=storage[1]),
        optimiser=OptimiserSettings(max_iterations=max_iterations),
        progress=progress,
    )
    seconds = time.perf_counter() - started
    summary = report.summary()
    stats = device.memory_stats() or {}
    record = {
        "molecule": molecule,
        "xc": xc,
        "spin": spin,
        "device": f"{device.platform}: {device.device_kind}",
        "jax": jax.__version__,
        "seconds": seconds,
        "setup_seconds": summary["setup_seconds"],
        "minimise_seconds": seconds - summary["setup_seconds"],
        "evaluations": summary["iterations"],
        "fock_builds": summary["fock_builds"],
        "energy": summary["energy"],
        "converged": summary["converged"],
        "gradient_max": summary["gradient_max"],
        "homo_lumo_gap": summary["homo_lumo_gap"],
        "nao": summary["nao"],
        "grid_points": summary["grid_points"],
        "xc_grid": summary["xc_grid"],
        "df_storage": summary["df_storage"],
        "peak_device_gb": stats.get("peak_bytes_in_use", 0) / 1e9 if device.platform != "cpu" else None,
        "peak_host_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
    }
    reference = pyscf_energy(molecule, xc, spin)
    if reference is not None:
        record.update(pyscf_energy=reference, energy_minus_pyscf=summary["energy"] - reference)
    return record


def parse_case(text: str) -> tuple[str, str, int]:
    parts = text.split(":")
    if len(parts) not in (2, 3) or not (MOLECULES / f"{parts[0]}.xyz").exists():
        raise SystemExit(f"--cases: expected MOLECULE:XC[:SPIN] with MOLECULE in {MOLECULES}, got {text!r}")
    return parts[0], parts[1], int(parts[2]) if len(parts) == 3 else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES)
    parser.add_argument("--limit", type=float, default=600.0, help="seconds for each case")
    parser.add_argument("--deadline", type=float, default=None, help="seconds for all cases together")
    parser.add_argument("--max-iterations", type=int, default=200)
    parser.add_argument("--results", type=Path, default=RESULTS / "dft_gpu.jsonl")
    parser.add_argument("--xc-grid", default="auto", choices=["auto", "stored", "streamed"])
    parser.add_argument("--df-storage", default="device", choices=["device", "disk"])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        molecule, xc, spin = parse_case(args.one)
        log = args.results.with_suffix(".progress.jsonl")
        record = run_case(molecule, xc, spin, args.max_iterations, log, (args.xc_grid, args.df_storage))
        sys.stdout.write(json.dumps(record) + "\n")
        return
    cases = [parse_case(case) for case in args.cases]
    begun = time.perf_counter()
    for molecule, xc, spin in cases:
        limit = args.limit
        if args.deadline is not None:
            limit = min(limit, args.deadline - (time.perf_counter() - begun))
        if limit < 10:
            record = {"molecule": molecule, "xc": xc, "spin": spin, "skipped": "no time left"}
        else:
            command = [sys.executable, __file__, "--one", f"{molecule}:{xc}:{spin}"]
            command += ["--max-iterations", str(args.max_iterations), "--results", str(args.results)]
            command += ["--xc-grid", args.xc_grid, "--df-storage", args.df_storage]
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=limit)
                lines = done.stdout.strip().splitlines()
                if done.returncode == 0 and lines:
                    record = json.loads(lines[-1])
                else:
                    record = {"molecule": molecule, "xc": xc, "error": done.stderr[-2000:]}
            except subprocess.TimeoutExpired:
                record = {"molecule": molecule, "xc": xc, "spin": spin, "timed_out_after_s": limit}
        record["machine"] = platform.node()
        record["date"] = time.strftime("%Y-%m-%d")
        args.results.parent.mkdir(parents=True, exist_ok=True)
        with args.results.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
