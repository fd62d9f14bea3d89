"""Direct-minimisation DFT (densitylab.dft) side by side with PySCF's SCF, same settings.

Every case runs twice, each in a fresh Python process (so peak memory is the code's own):
densitylab (preconditioned L-BFGS, default settings) and PySCF (DIIS, conv_tol 1e-10; where
DIIS does not converge in its default 50 cycles, then ``.newton()``). Same basis (6-31G), grid
level 3, functional and Coulomb treatment (density fitting, def2-universal-jkfit) in both.
Geometries: benchmarks/molecules/*.xyz (the D4FT geometries where D4FT has them).

Run:  python benchmarks/dft_vs_pyscf.py [--group accuracy timing c20 c60] [--xc-grid auto|stored|streamed]
      [--df-storage device|disk|auto]
Writes benchmarks/results/dft_vs_pyscf.{json,md} (groups are merged into existing results).
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

GROUPS = {
    "accuracy": [
        (molecule, xc, 0)
        for molecule in ("h2o", "ch4", "ethanol", "benzene")
        for xc in ("lda,vwn", "pbe", "b3lyp")
    ]
    + [("o2", xc, 2) for xc in ("lda,vwn", "pbe", "b3lyp")],
    "timing": [("benzene", "b3lyp", 0), ("n-decane", "b3lyp", 0)],
    "c20": [("c20", "lda,vwn", 0)],
    "c60": [("c60", "lda,vwn", 0)],
    "c80": [("c80", "lda,vwn", 0)],
    "c100": [("c100", "lda,vwn", 0)],
    # closed fullerene cages (D4FT's fullerene.py); c80/c100 above are open cages cut from C180
    "c80-cage": [("c80-cage", "lda,vwn", 0)],
    "c100-cage": [("c100-cage", "lda,vwn", 0)],
}


def run_one(
    code: str, molecule: str, xc: str, spin: int, xc_grid: str = "auto", df_storage: str = "device"
) -> dict:
    """One calculation in this process; returns its record (energy, time, peak RSS)."""
    import warnings

    warnings.filterwarnings("ignore")
    from densitylab.dft.molecule import load_molecule
    from densitylab.dft.run import pyscf_reference, run_dft
    from densitylab.dft.system import DFTSettings
    from densitylab.jaxsetup import jax_numpy

    if code == "densitylab":  # JAX imported before the clock, as PySCF is (by DFTSettings' check of xc)
        jax_numpy()
    path = MOLECULES / f"{molecule}.xyz"
    settings = DFTSettings(xc=xc, xc_grid=xc_grid, df_storage=df_storage)
    record = {"molecule": molecule, "xc": xc, "spin": spin, "code": code}
    # resident memory with the libraries imported, before the calculation (the floor of RSS)
    record["import_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    started = time.perf_counter()
    if code == "densitylab":
        report = run_dft(path, xc=xc, spin=spin, settings=settings)
        summary = report.summary()
        record.update(
            energy=summary["energy"],
            converged=summary["converged"],
            iterations=summary["iterations"],
            fock_builds=summary.get("fock_builds"),
            setup_seconds=summary["setup_seconds"],
            nao=summary["nao"],
            grid_points=summary["grid_points"],
            gradient_max=summary["gradient_max"],
            xc_grid=summary["xc_grid"],
            df_storage=summary["df_storage"],
        )
    else:
        mol = load_molecule(path, spin=spin)
        energy, converged, seconds, cycles = pyscf_reference(mol, settings)
        record.update(diis_energy=energy, diis_converged=converged, diis_seconds=seconds, diis_cycles=cycles)
        if not converged:
            energy, converged, newton_seconds, newton_cycles = pyscf_reference(mol, settings, newton=True)
            record.update(newton_seconds=newton_seconds, newton_cycles=newton_cycles)
        record.update(energy=energy, converged=converged, nao=mol.nao_nr())
    record["seconds"] = time.perf_counter() - started
    record["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return record


def table(records: list[dict]) -> str:
    pairs: dict = {}
    for record in records:
        key = (record["molecule"], record["xc"], record["spin"])
        pairs.setdefault(key, {})[record["code"]] = record
    lines = [
        "| molecule | xc | spin | nao | densitylab E (Ha) | E − PySCF (Ha) | E+∇E evals (+ Fock) | time (s) "
        "| PySCF time (s) "
        "| time ratio | peak RSS ours / PySCF (GB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (molecule, xc, spin), pair in pairs.items():
        ours, theirs = pair.get("densitylab"), pair.get("pyscf")
        if ours is None:
            continue
        difference = f"{ours['energy'] - theirs['energy']:+.1e}" if theirs else "—"
        if theirs is None:
            pyscf_time = "—"
        elif theirs.get("diis_converged", True):
            pyscf_time = f"{theirs['diis_seconds']:.1f} (DIIS, {theirs['diis_cycles']} cycles)"
        else:
            pyscf_time = (
                f"DIIS fails ({theirs['diis_cycles']} cycles, {theirs['diis_seconds']:.0f} s); "
                f"newton {theirs['newton_seconds']:.1f}"
            )
        reference_time = None
        if theirs is not None:
            reference_time = theirs["diis_seconds"] if theirs["diis_converged"] else theirs["newton_seconds"]
        ratio = f"{ours['seconds'] / reference_time:.2f}" if reference_time else "—"
        fock = f" + {ours['fock_builds']}" if ours.get("fock_builds") else ""
        their_memory = f"{theirs['peak_rss_gb']:.2f}" if theirs else "—"
        memory = f"{ours['peak_rss_gb']:.2f} / {their_memory}"
        lines.append(
            f"| {molecule} | {xc.replace(',', ', ')} | {spin} | {ours['nao']} | {ours['energy']:.8f} "
            f"| {difference} "
            f"| {ours['iterations']}{fock} | {ours['seconds']:.1f} | {pyscf_time} | {ratio} | {memory} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--group", nargs="+", default=["accuracy", "timing", "c20"], choices=list(GROUPS))
    parser.add_argument("--codes", nargs="+", default=["densitylab", "pyscf"])
    parser.add_argument("--xc-grid", default="auto", choices=["auto", "stored", "streamed"])
    parser.add_argument("--df-storage", default="device", choices=["device", "disk", "auto"])
    parser.add_argument("--one", nargs=4, metavar=("CODE", "MOLECULE", "XC", "SPIN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        code, molecule, xc, spin = args.one
        record = run_one(code, molecule, xc, int(spin), args.xc_grid, args.df_storage)
        sys.stdout.write(json.dumps(record) + "\n")
        return

    RESULTS.mkdir(exist_ok=True)
    output = RESULTS / "dft_vs_pyscf.json"
    records = json.loads(output.read_text())["records"] if output.exists() else []
    for group in args.group:
        for molecule, xc, spin in GROUPS[group]:
            for code in args.codes:
                completed = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--one",
                        code,
                        molecule,
                        xc,
                        str(spin),
                        "--xc-grid",
                        args.xc_grid,
                        "--df-storage",
                        args.df_storage,
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                record = json.loads(completed.stdout.strip().splitlines()[-1])
                key = (molecule, xc, spin, code)
                records = [r for r in records if (r["molecule"], r["xc"], r["spin"], r["code"]) != key]
                records.append(record)
                print(json.dumps(record), flush=True)
                output.write_text(
                    json.dumps(
                        {"machine": platform.processor() or platform.machine(), "records": records}, indent=1
                    )
                )
    markdown = table(records)
    (RESULTS / "dft_vs_pyscf.md").write_text(markdown + "\n")
    print(markdown)


if __name__ == "__main__":
    main()
