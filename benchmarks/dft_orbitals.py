"""Beyond the fixed basis (issue 17): how much of the gap between 6-31G and cc-pVTZ each route
closes for water, where the rest of the gap is, transfer of the optimised basis, the
variational check and the cost.

Every energy in the gap comes from the same grid code (:mod:`densitylab.dft.gridks`, PySCF grid
level 3, Hartree fitted in cc-pVQZ-JKFIT): the fixed bases at PySCF's SCF orbitals (their grid
energy is stationary there to second order), the routes after their optimisation. PySCF's own
energies are recorded beside, as the check of the fixed-basis grid energies; the optimised
basis is also handed back to PySCF (its analytic SCF energy in that basis, an independent check
of the grid energy, and the transfer to NH3 and CH3OH, where N and C keep 6-31G).

Each case runs in its own process (its own peak memory) and writes
benchmarks/results/dft_orbitals/<xc>_<case>.json; a rerun skips the cases that have a file
(delete one to redo it). ``--report`` prints the tables and draws the figure from the files.

Run:  python benchmarks/dft_orbitals.py [--xc lda,vwn pbe] [--cases ...] [--report]
A case ROUTE@N runs a route with N steps instead of its default (e.g. --cases basis@1500).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "dft_orbitals"
MOLECULES = HERE / "molecules"
FIXED = ["6-31g", "6-31g*", "6-31g**", "cc-pvdz", "cc-pvtz", "cc-pvqz"]
ROUTES = {
    "basis": {"routes": ("optimised-basis",), "max_iterations": 400},
    "basis+polarisation": {
        "routes": ("optimised-basis",),
        "max_iterations": 400,
        "extra_shells": ("O:d:0.8", "H:p:1.1"),
    },  # 6-31G**'s starting exponents
    "flow": {"routes": ("flow",), "max_iterations": 300},
    "basis+flow": {"routes": ("optimised-basis", "flow"), "max_iterations": 400},
    "basis+flow-minibatch": {
        "routes": ("optimised-basis", "flow"),
        "max_iterations": 1000,
        "mode": "minibatch",
        "minibatch": 8192,
        "learning_rate": 1e-3,
        "final_learning_rate": 1e-5,
    },
}
GRID = {"grid_level": 3, "auxbasis": "cc-pvqz-jkfit", "check_level": 5}


def _mol(name: str, basis):
    from densitylab.dft.molecule import load_molecule

    return load_molecule(str(MOLECULES / f"{name}.xyz"), basis=basis)


def _pyscf_energy(mol, xc: str) -> float:
    from pyscf import dft

    mf = dft.RKS(mol)
    mf.xc, mf.grids.level, mf.conv_tol = xc, GRID["grid_level"], 1e-10  # exact J: the analytic reference
    return float(mf.kernel())


def run_case(xc: str, case: str) -> dict:
    """One case in this process."""
    from densitylab.dft.orbitals import OrbitalsSettings, optimise_orbitals

    started = time.perf_counter()
    if case.startswith("fixed:"):
        basis = case.split(":", 1)[1]
        mol = _mol("h2o", basis)
        settings = OrbitalsSettings(routes=(), max_iterations=1, **GRID)
        result = optimise_orbitals(mol, xc, settings)
        return {
            "case": case,
            "xc": xc,
            "basis": basis,
            "nao": mol.nao,
            "grid_energy": result.start_energy,
            "check_energy": result.check_energy,
            "pyscf_energy": _pyscf_energy(mol, xc),
            "seconds": time.perf_counter() - started,
            "peak_rss_gb": result.peak_rss_gb,
        }
    if case == "fixed-dft":
        from densitylab.dft.run import run_dft
        from densitylab.dft.system import DFTSettings

        report = run_dft(str(MOLECULES / "h2o.xyz"), basis="6-31g", xc=xc, settings=DFTSettings(xc=xc))
        import resource

        return {
            "case": case,
            "xc": xc,
            "energy": report.result.energy,
            "seconds": time.perf_counter() - started,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        }
    route, _, steps = case.partition("@")  # "basis@1500": the route with another step budget
    options = dict(ROUTES[route]) | ({"max_iterations": int(steps)} if steps else {})
    settings = OrbitalsSettings(**options, **GRID)
    result = optimise_orbitals(_mol("h2o", "6-31g"), xc, settings)
    record = {"case": case, "xc": xc, **result.summary(), "history": result.history, "basis": result.basis}
    record["pyscf_energy_in_optimised_basis"] = (
        _pyscf_energy(_mol("h2o", result.basis), xc) if "optimised-basis" in settings.routes else None
    )
    if case == "basis":
        record["transfer"] = _transfer(xc, result.basis)
    return record


def _transfer(xc: str, basis: dict) -> dict:
    """PySCF energies of NH3 and CH3OH with H and O from the optimised water basis (N and C
    from 6-31G), against 6-31G and 6-31G*."""
    out = {}
    for name in ("nh3", "ch3oh"):
        row = {}
        for label, choice in (
            ("6-31g", "6-31g"),
            ("6-31g*", "6-31g*"),
            ("optimised", {"N": "6-31g", "C": "6-31g", **basis}),
        ):
            row[label] = _pyscf_energy(_mol(name, choice), xc)
        out[name] = row
    return out


def _spawn(xc: str, case: str, path: Path) -> None:
    command = [sys.executable, __file__, "--one", xc, case, str(path)]
    print(f"[{time.strftime('%H:%M:%S')}] {xc} {case}", flush=True)
    subprocess.run(command, check=False)


def report(xcs: list[str]) -> None:
    """Tables (markdown) and the figure from the stored records."""
    from densitylab.plots import plot_energy_steps

    for xc in xcs:
        records = {
            p.stem.split("_", 1)[1]: json.loads(p.read_text()) for p in RESULTS.glob(f"{_tag(xc)}_*.json")
        }
        fixed = {r["basis"]: r for r in records.values() if r["case"].startswith("fixed:")}
        if "6-31g" not in fixed or "cc-pvtz" not in fixed:
            continue
        low, high = fixed["6-31g"]["grid_energy"], fixed["cc-pvtz"]["grid_energy"]
        print(f"\n### {xc}: gap 6-31G → cc-pVTZ = {1e3 * (low - high):.2f} mHa (grid code)\n")
        print(
            "| basis | nao | grid energy (Ha) | finer grid (level 5) | PySCF (Ha) | grid − PySCF (mHa) "
            "| gap closed |"
        )
        print("|---|---|---|---|---|---|---|")
        for name in FIXED:
            if name in fixed:
                r = fixed[name]
                print(
                    f"| {name} | {r['nao']} | {r['grid_energy']:.6f} | {r['check_energy']:.6f} "
                    f"| {r['pyscf_energy']:.6f} "
                    f"| {1e3 * (r['grid_energy'] - r['pyscf_energy']):+.3f} "
                    f"| {(low - r['grid_energy']) / (low - high):.1%} |"
                )
        print(
            "\n| route | steps | energy (Ha) | finer grid | PySCF, optimised basis (no flow) | gap closed "
            "| s | peak RSS GB | minibatch σ (Ha) |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        curves = {}
        for case in sorted((c for c in records if c.partition("@")[0] in ROUTES), key=_order):
            if case not in records:
                continue
            r = records[case]
            pyscf, spread = r.get("pyscf_energy_in_optimised_basis"), r["minibatch_std"]
            print(
                f"| {case} | {r['steps']} | {r['energy']:.6f} | {r['check_energy']:.6f} | "
                f"{'—' if pyscf is None else f'{pyscf:.6f}'} | {(low - r['energy']) / (low - high):.1%} | "
                f"{r['seconds']:.0f} | {r['peak_rss_gb']:.2f} | "
                f"{'—' if spread is None else f'{spread:.2f}'} |"
            )
            if r["minibatch_std"] is None:  # minibatch histories are noisy estimates
                curves[case] = [h["energy"] for h in r["history"]] + [r["energy"]]
        if "fixed-dft" in records:
            r = records["fixed-dft"]
            print(
                "\nfixed-basis direct minimisation (densitylab dft, 6-31G): "
                f"{r['seconds']:.1f} s, {r['peak_rss_gb']:.2f} GB"
            )
        if "cc-pvqz" in fixed:
            floor = fixed["cc-pvqz"]["grid_energy"]
            worst = min((r["energy"] - floor, c) for c, r in records.items() if c.partition("@")[0] in ROUTES)
            print(
                f"\nvariational check: lowest route energy − cc-pVQZ = {1e3 * worst[0]:+.3f} mHa ({worst[1]})"
            )
        if "basis" in records and records["basis"].get("transfer"):
            print(
                "\n| molecule | 6-31G | 6-31G* | water-optimised H, O (Ha) | lowering vs 6-31G (mHa) "
                "| of the 6-31G → 6-31G* step |"
            )
            print("|---|---|---|---|---|---|")
            for name, row in records["basis"]["transfer"].items():
                step = row["6-31g"] - row["6-31g*"]
                print(
                    f"| {name} | {row['6-31g']:.6f} | {row['6-31g*']:.6f} | {row['optimised']:.6f} | "
                    f"{1e3 * (row['6-31g'] - row['optimised']):.2f} "
                    f"| {(row['6-31g'] - row['optimised']) / step:.0%} |"
                )
        levels = {
            name: fixed[name]["grid_energy"]
            for name in ("6-31g", "6-31g*", "cc-pvdz", "cc-pvtz")
            if name in fixed
        }
        path = plot_energy_steps(curves, RESULTS / f"{_tag(xc)}.png", levels)
        print(f"\nfigure: {path}")


def _order(case: str) -> tuple:
    route, _, steps = case.partition("@")
    return list(ROUTES).index(route), int(steps or 0)


def _tag(xc: str) -> str:
    return xc.replace(",", "-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xc", nargs="+", default=["lda,vwn", "pbe"])
    parser.add_argument("--cases", nargs="+", default=[f"fixed:{b}" for b in FIXED] + ["fixed-dft", *ROUTES])
    parser.add_argument("--report", action="store_true", help="only print the tables and draw the figure")
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        xc, case, path = args.one
        record = run_case(xc, case)
        Path(path).write_text(json.dumps(record, indent=1))
        return
    if not args.report:
        RESULTS.mkdir(parents=True, exist_ok=True)
        for xc in args.xc:
            for case in args.cases:
                path = RESULTS / f"{_tag(xc)}_{case.replace(':', '-').replace('*', 's')}.json"
                if not path.exists():
                    _spawn(xc, case, path)
    report(args.xc)


if __name__ == "__main__":
    main()
