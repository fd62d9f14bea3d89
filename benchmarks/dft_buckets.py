"""A screen over chemical space: many compositions in one process, with and without shape
buckets, side by side with PySCF (issue 19, ``DFTSettings.shape_buckets``).

The molecules (``--set``): ASE's G2 set restricted to closed-shell molecules of H, C, N, O and
F with at least three atoms (68, of 53 compositions, from 3 to 14 atoms), or QM9 molecules of
up to nine heavy atoms. Each mode runs them all, in order, in one fresh Python process:

- ``plain`` and ``buckets``: densitylab without and with shape buckets, first with an empty
  compilation cache (cold: a first screen on a machine), then again in a new process with the
  cache the first filled (warm: every later screen);
- ``pyscf``: PySCF's SCF (DIIS, conv_tol 1e-10), same settings.

Settings: PBE, 6-31G, grid level 3, def2-universal-jkfit density fitting (those of
benchmarks/dft_vs_pyscf.py). Reports the screen's wall time (library imports excluded), the
compilations, and the largest energy difference between the
modes and from PySCF.

Run:  python benchmarks/dft_buckets.py [--set g2|qm9] [--limit N] [--xc pbe] [--output dft_buckets]
      python benchmarks/dft_buckets.py --set qm9 --limit 200 --count-only
          (distinct compiled shapes without and with buckets of 1/8, 1/4, 1/2; nothing run)
Writes benchmarks/results/STEM.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"
ELEMENTS = {"H", "C", "N", "O", "F"}


def screen_molecules(which: str, limit: int | None, folder: Path) -> list[str]:
    """xyz files of the screen: G2's closed-shell H/C/N/O/F molecules of at least three atoms,
    in G2's order, or ``limit`` QM9 molecules of up to nine heavy atoms drawn with seed 1
    (qm9pack, ``pip install -e '.[qm9]'``), written into ``folder``."""
    import ase.io

    if which == "qm9":
        from densitylab.density.structures import qm9_structures

        molecules = list(qm9_structures(9, limit or 40, seed=1, up_to=True))
    else:
        from ase.collections import g2

        molecules = [g2[name] for name in g2.names]
        molecules = [
            atoms for atoms in molecules
            if set(atoms.get_chemical_symbols()) <= ELEMENTS and len(atoms) >= 3
            and not atoms.get_initial_magnetic_moments().any()
        ][:limit]  # fmt: skip
    paths = []
    for index, atoms in enumerate(molecules):
        path = folder / f"{index:03d}-{atoms.get_chemical_formula()}.xyz"
        ase.io.write(path, atoms, format="xyz")
        paths.append(str(path))
    return paths


def run_screen(mode: str, names: list[str], xc: str) -> dict:
    """Every molecule of ``names`` in this process (``mode``: plain, buckets or pyscf)."""
    import warnings

    warnings.filterwarnings("ignore")
    from densitylab.dft import evaluator
    from densitylab.dft.molecule import load_molecule
    from densitylab.dft.run import pyscf_reference, run_dft
    from densitylab.dft.system import DFTSettings
    from densitylab.jaxsetup import jax_numpy

    if mode != "pyscf":
        jax_numpy()
    settings = DFTSettings(xc=xc, xc_grid="stored", df_storage="device", shape_buckets=mode == "buckets")
    energies = {}
    started = time.perf_counter()
    for name in names:
        if mode == "pyscf":
            mol = load_molecule(name, basis="6-31g")
            energies[name] = pyscf_reference(mol, settings)[0]
            continue
        energies[name] = run_dft(name, basis="6-31g", xc=xc, settings=settings).result.energy
    seconds = time.perf_counter() - started
    compiled = 0 if mode == "pyscf" else evaluator.compilations()
    return {"mode": mode, "seconds": seconds, "compilations": compiled, "energies": energies}


def count_shapes(names: list[str]) -> dict:
    """Distinct compiled shapes of the screen without running it: (basis, counts, auxiliary
    functions, grid points) exactly, and bucketed at 8, 4 and 2 steps per octave."""
    from pyscf import df, dft

    from densitylab.dft import buckets
    from densitylab.dft.molecule import load_molecule
    from densitylab.dft.system import DEFAULT_AUXBASIS

    sizes = []
    for name in names:
        mol = load_molecule(name, basis="6-31g")
        grids = dft.gen_grid.Grids(mol)
        grids.level = 3
        grids.build(with_non0tab=False)
        naux = df.addons.make_auxmol(mol, DEFAULT_AUXBASIS).nao_nr()
        sizes.append((mol.nao_nr(), tuple(mol.nelec), naux, len(grids.weights)))
    counted = {"exact": len(set(sizes))}
    default = buckets.STEPS_PER_OCTAVE
    try:
        for steps in (8, 4, 2):
            buckets.STEPS_PER_OCTAVE = steps
            padded = [buckets.Padding.of(nao, nao, nelec, naux, points) for nao, nelec, naux, points in sizes]
            shapes = {(p.padded_nao, p.padded_counts, p.padded_naux, p.padded_points) for p in padded}
            counted[f"buckets_1/{steps}"] = len(shapes)
    finally:
        buckets.STEPS_PER_OCTAVE = default
    return counted


def in_process(mode: str, names: list[str], xc: str, cache: str) -> dict:
    environment = {**os.environ, "DENSITYLAB_JAX_CACHE": cache}
    arguments = ["--one", mode, "--xc", xc, "--names", *names]
    completed = subprocess.run(
        [sys.executable, __file__, *arguments], capture_output=True, text=True, check=True, env=environment
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="which", choices=["g2", "qm9"], default="g2")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--xc", default="pbe")
    parser.add_argument("--output", default="dft_buckets")
    parser.add_argument("--count-only", action="store_true", help="Count the distinct shapes, run nothing.")
    parser.add_argument("--one", choices=["plain", "buckets", "pyscf"], help=argparse.SUPPRESS)
    parser.add_argument("--names", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        sys.stdout.write(json.dumps(run_screen(args.one, args.names, args.xc)) + "\n")
        return
    runs = {}
    with tempfile.TemporaryDirectory() as folder:
        names = screen_molecules(args.which, args.limit, Path(folder))
        if args.count_only:
            print(json.dumps({"set": args.which, "molecules": len(names), **count_shapes(names)}))
            return
        for mode in ("plain", "buckets"):
            cache = str(Path(folder) / mode)
            runs[f"{mode}-cold"] = in_process(mode, names, args.xc, cache)
            runs[f"{mode}-warm"] = in_process(mode, names, args.xc, cache)
            print(mode, runs[f"{mode}-cold"]["seconds"], runs[f"{mode}-warm"]["seconds"], flush=True)
        runs["pyscf"] = in_process("pyscf", names, args.xc, str(Path(folder) / "pyscf"))
    reference = runs["pyscf"]["energies"]
    rows = []
    for key, run in runs.items():
        difference = max(abs(run["energies"][n] - reference[n]) for n in names)
        bucketed = max(abs(run["energies"][n] - runs["plain-cold"]["energies"][n]) for n in names)
        rows.append({"run": key, "seconds": run["seconds"], "compilations": run["compilations"],
                     "max_abs_e_minus_pyscf": difference, "max_abs_e_minus_plain": bucketed})  # fmt: skip
    record = {
        "date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
        "cores": os.cpu_count(), "xc": args.xc, "basis": "6-31g", "grid_level": 3, "set": args.which,
        "molecules": [Path(n).stem for n in names],
        "distinct_compositions": len({Path(n).stem.split("-", 1)[1] for n in names}), "rows": rows,
    }  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.output}.json").write_text(json.dumps(record, indent=1) + "\n")
    lines = ["| run | screen time (s) | compilations | max abs E − PySCF (Ha) | max abs E − plain (Ha) |",
             "|---|---|---|---|---|"]  # fmt: skip
    for row in rows:
        errors = f"{row['max_abs_e_minus_pyscf']:.1e} | {row['max_abs_e_minus_plain']:.1e}"
        lines.append(f"| {row['run']} | {row['seconds']:.1f} | {row['compilations']} | {errors} |")
    (RESULTS / f"{args.output}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
