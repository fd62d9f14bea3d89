"""Stochastic grid minibatches (D4FT's SGD mode): bias, variance against batch size, and where
Adam on minibatches ends up against the full-grid minimum.

1. At the converged full-grid orbitals of MOLECULE (default water, B3LYP/6-31G, grid level 3),
   draw SAMPLES minibatches of B points (uniform, without replacement, weights × N/B) for each B
   and record the XC-energy estimate and its orbital gradient: the mean against the full-grid
   value (the estimator is unbiased: |mean − full| should be within a few standard errors) and
   the standard deviation against B (∝ √(1/B − 1/N)).
2. Adam (D4FT's optimiser) on minibatches of each size from the same initial guess, the step
   size decaying from 1e-2 to 1e-4 over STEPS steps; the full-grid energy of the final orbitals
   against the converged full-grid energy (target: within 1 mHa).

Run:  python benchmarks/dft_minibatch.py [--molecule h2o] [--steps 1500]
Writes benchmarks/results/dft_minibatch.{json,md} and dft_minibatch.png.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
RESULTS = HERE / "results"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--molecule", default="h2o")
    parser.add_argument("--xc", default="b3lyp")
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 1024, 4096, 16384])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--steps", type=int, default=1500)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from densitylab.dft.evaluator import Evaluator
    from densitylab.dft.molecule import load_molecule
    from densitylab.dft.optimise import OptimiserSettings, minimise
    from densitylab.dft.system import DFTSettings, build_system
    from densitylab.jaxsetup import jax_modules

    _, jnp, _ = jax_modules()
    mol = load_molecule(HERE / "molecules" / f"{args.molecule}.xyz")
    system = build_system(mol, DFTSettings(xc=args.xc))
    reference = minimise(system, mol)
    evaluator = Evaluator(system)
    nocc = system.nelec[0]
    orthonormal = system.orthogonaliser.T @ system.overlap @ reference.mo_coeff[0][:, :nocc]
    parameters = [jnp.asarray(orthonormal)]
    full_energy, full_gradient = evaluator.parameter_value_and_grad(parameters, evaluator.ops)
    full_gradient = np.asarray(full_gradient[0])
    rng = np.random.default_rng(0)
    variance_rows = []
    for batch in args.batches:
        energies, gradients = [], []
        for _ in range(args.samples):
            indices = np.sort(rng.choice(system.ngrid, size=batch, replace=False))
            energy, gradient = evaluator.parameter_value_and_grad(
                parameters, evaluator.minibatch_operands(indices)
            )
            energies.append(float(energy))
            gradients.append(np.asarray(gradient[0]))
        energies, gradients = np.array(energies), np.array(gradients)
        standard_error = energies.std(ddof=1) / np.sqrt(args.samples)
        variance_rows.append(
            {
                "batch": batch,
                "energy_std": float(energies.std(ddof=1)),
                "bias": float(energies.mean() - float(full_energy)),
                "bias_in_standard_errors": float((energies.mean() - float(full_energy)) / standard_error),
                "gradient_std": float(np.sqrt(np.mean(gradients.var(axis=0, ddof=1)))),
                "gradient_bias": float(np.sqrt(np.mean((gradients.mean(axis=0) - full_gradient) ** 2))),
            }
        )
        print(json.dumps(variance_rows[-1]), flush=True)

    convergence_rows, histories = [], {}
    for batch in [*args.batches, None]:
        settings = OptimiserSettings(
            method="adam",
            max_iterations=args.steps,
            learning_rate=1e-2,
            final_learning_rate=1e-4,
            minibatch=batch,
            gradient_tolerance=1e-12,
            energy_tolerance=0.0,
        )
        started = time.perf_counter()
        result = minimise(system, mol, settings)
        convergence_rows.append(
            {
                "batch": batch or system.ngrid,
                "steps": result.iterations,
                "final_energy_error": result.energy - reference.energy,
                "seconds": time.perf_counter() - started,
            }
        )
        histories[batch or system.ngrid] = [entry["energy"] - reference.energy for entry in result.history]
        print(json.dumps(convergence_rows[-1]), flush=True)

    RESULTS.mkdir(exist_ok=True)
    record = {
        "molecule": args.molecule,
        "xc": args.xc,
        "grid_points": system.ngrid,
        "reference_energy": reference.energy,
        "variance": variance_rows,
        "convergence": convergence_rows,
    }
    (RESULTS / "dft_minibatch.json").write_text(json.dumps(record, indent=1))
    lines = [
        f"{args.molecule}, {args.xc}/6-31G, grid level 3 ({system.ngrid} points); "
        f"{args.samples} minibatches per size at the converged orbitals",
        "",
        "| batch | std of E estimate (Ha) | mean − full (Ha) | in standard errors | rms std of gradient "
        "| rms gradient bias |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['batch']} | {r['energy_std']:.2e} | {r['bias']:+.1e} | {r['bias_in_standard_errors']:+.1f} "
        f"| {r['gradient_std']:.2e} | {r['gradient_bias']:.1e} |"
        for r in variance_rows
    ]
    lines += [
        "",
        f"Adam, step size 1e-2 → 1e-4 over {args.steps} steps, from the minao-Fock guess:",
        "",
        "| batch | full-grid E − converged E (Ha) | seconds |",
        "|---|---|---|",
    ]
    lines += [
        f"| {r['batch']} | {r['final_energy_error']:+.2e} | {r['seconds']:.0f} |" for r in convergence_rows
    ]
    (RESULTS / "dft_minibatch.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    batches = np.array([r["batch"] for r in variance_rows])
    stds = np.array([r["energy_std"] for r in variance_rows])
    left.loglog(batches, stds, "o-", label="measured")
    finite = np.sqrt(1 / batches - 1 / system.ngrid)
    left.loglog(batches, stds[0] * finite / finite[0], "k--", label="∝ √(1/B − 1/N)")
    left.set(xlabel="minibatch size B", ylabel="std of E estimate (Ha)", title="estimator spread")
    left.legend()
    for batch, errors in histories.items():
        right.semilogy(np.clip(np.abs(errors), 1e-8, None), label=f"B = {batch}", lw=0.8)
    right.axhline(1e-3, color="grey", ls=":", label="1 mHa")
    right.set(xlabel="Adam step", ylabel="|E_step − E_converged| (Ha)", title="Adam with minibatches")
    right.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(RESULTS / "dft_minibatch.png", dpi=120)


if __name__ == "__main__":
    main()
