"""Learning curve on a QM9 subset (issue 6): % RMSE, grid NMAE and one-step energy MAE against
the number of training molecules.

MOLECULES QM9 molecules with HEAVY heavy atoms and only H, C, N, O (qm9pack geometries, seed 0),
PBE/def2-SVP references fitted into def2-universal-jkfit (overlap metric). The last TEST molecules
are the test set; models are trained on the first N for each N in --train.

Run:  python benchmarks/density_qm9.py [--heavy 4 --molecules 80 --test 20 --train 10 20 40 60]
      python benchmarks/density_qm9.py --replot   (redraw the figure from the saved JSON)
Writes benchmarks/results/density_qm9.{json,md} and density_qm9.png.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"
KCAL_PER_MOL_PER_HARTREE = 627.509474


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--heavy", type=int, default=4)
    parser.add_argument("--molecules", type=int, default=80)
    parser.add_argument("--test", type=int, default=20)
    parser.add_argument("--train", type=int, nargs="+", default=[10, 20, 40, 60])
    parser.add_argument("--sparse", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", default="/tmp/density_qm9")
    parser.add_argument("--replot", action="store_true", help="Redraw the figure from the saved JSON.")
    args = parser.parse_args()
    if args.replot:
        record = json.loads((RESULTS / "density_qm9.json").read_text())
        plot_curve(record["curve"], RESULTS / "density_qm9.png")
        return
    warnings.filterwarnings("ignore")

    from densitylab.density.pipeline import evaluate, train
    from densitylab.density.reference import ReferenceSettings, generate_reference, load_reference
    from densitylab.density.regression import RegressionSettings
    from densitylab.density.structures import qm9_structures

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    pool = qm9_structures(args.heavy, 4 * args.molecules, seed=0)
    frames = [f for f in pool if set(f.get_chemical_symbols()) <= {"H", "C", "N", "O"}][: args.molecules]
    started = time.perf_counter()
    output = work / f"qm9-{args.heavy}.h5"
    generate_reference(frames, output, ReferenceSettings(chunk_size=5), workers=args.workers, seed=0)
    reference_seconds = time.perf_counter() - started
    reference = load_reference(output)
    test = list(range(len(reference) - args.test, len(reference)))
    rows = []
    for count in args.train:
        started = time.perf_counter()
        trained, info = train(reference, list(range(count)), settings=RegressionSettings(args.sparse))
        metrics, _ = evaluate(trained, reference, test)
        atoms = sum(len(reference.numbers[i]) for i in test) / len(test)
        rows.append(
            {
                "train": count,
                "rmse_percent": metrics["rmse_percent"],
                "grid_nmae_percent": metrics["grid_nmae_percent"],
                "grid_nmae_floor_percent": metrics["grid_nmae_floor_percent"],
                "energy_mae_kcal_per_mol": metrics["energy_mae_mev_per_atom"]
                * atoms
                / 1000
                / 27.211386
                * KCAL_PER_MOL_PER_HARTREE,
                "energy_mae_mev_per_atom": metrics["energy_mae_mev_per_atom"],
                "parameters": info["parameters"],
                "solver": info["solver"],
                "regularisation": info["regularisation"],
                "regularisation_scan": info.get("regularisation_scan"),
                "seconds": time.perf_counter() - started,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    record = {
        "heavy_atoms": args.heavy,
        "molecules": len(reference),
        "test": args.test,
        "reference_seconds": reference_seconds,
        "curve": rows,
    }
    (RESULTS / "density_qm9.json").write_text(json.dumps(record, indent=1))
    lines = [
        f"QM9, {args.heavy} heavy atoms (H, C, N, O), PBE/def2-SVP → def2-universal-jkfit; "
        f"{args.test} test molecules",
        "",
        "| training molecules | η (auto) | % RMSE | grid NMAE % (floor) "
        "| one-step energy MAE (kcal/mol) | (meV/atom) | train + evaluate (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['train']} | {r['regularisation']:.0e} | {r['rmse_percent']:.2f} "
        f"| {r['grid_nmae_percent']:.3f} ({r['grid_nmae_floor_percent']:.3f}) "
        f"| {r['energy_mae_kcal_per_mol']:.2f} | {r['energy_mae_mev_per_atom']:.1f} | {r['seconds']:.0f} |"
        for r in rows
    ]
    (RESULTS / "density_qm9.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot_curve(rows, RESULTS / "density_qm9.png")


def plot_curve(rows: list, path: Path) -> None:
    """The three learning curves (log–log), ticks at the training-set sizes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, NullFormatter, ScalarFormatter

    figure, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    counts = [r["train"] for r in rows]
    axes[0].loglog(counts, [r["rmse_percent"] for r in rows], "o-")
    axes[0].set(xlabel="training molecules", ylabel="% RMSE (metric)", title="coefficients")
    axes[1].semilogx(counts, [r["grid_nmae_percent"] for r in rows], "o-", label="prediction")
    axes[1].semilogx(counts, [r["grid_nmae_floor_percent"] for r in rows], "k--", label="fitting floor")
    axes[1].set(xlabel="training molecules", ylabel="grid NMAE %", title="density")
    axes[1].legend()
    axes[2].loglog(counts, [r["energy_mae_kcal_per_mol"] for r in rows], "o-")
    axes[2].set(xlabel="training molecules", ylabel="MAE (kcal/mol)", title="one-step energy")
    for axis in axes:
        axis.set_xticks(counts)
        axis.xaxis.set_major_formatter(ScalarFormatter())
        axis.xaxis.set_minor_formatter(NullFormatter())
    for axis in (axes[0], axes[2]):  # log axes within about a decade: label the minor ticks too
        axis.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        axis.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
