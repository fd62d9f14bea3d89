"""The DFT's L-BFGS (``minimise``, densitylab's default) against SciPy's L-BFGS-B on the same energy.

Until 15cbc9c ``minimise`` ran a hand-written L-BFGS (two-loop recursion, backtracking Armijo
line search); run at 8f64e2a, this benchmark showed it no better than SciPy's with the same
preconditioner (BENCHMARKS.md, issue 15), and ``minimise`` now runs SciPy's L-BFGS-B on each
chart, re-centring between charts. The "densitylab" column is ``minimise``, whichever it runs.

Both minimise the same function, the Kohn–Sham energy on one Grassmann chart around the guess
orbitals (κ ↦ E(C(κ)), with its JAX gradient), from the same start, to the same test
max|∂E/∂κ| ≤ 1e-5 Ha. SciPy gets the same diagonal preconditioner (ε_a − ε_i + shift) through
the change of variables κ = D^{-1/2} u, and the same history length (12); it cannot re-centre
the chart, which ``minimise`` does when a chart stops short. Counted: energy/gradient
evaluations (each one costs the same) and the final energy against PySCF's converged energy.

Run:  python benchmarks/dft_lbfgs.py [--molecules h2o.xyz c20.xyz]
      (writes benchmarks/results/dft_lbfgs.json)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import scipy.optimize

from densitylab.dft.evaluator import Evaluator
from densitylab.dft.molecule import load_molecule
from densitylab.dft.optimise import OptimiserSettings, _preconditioner, initial_guess, minimise
from densitylab.dft.run import pyscf_reference
from densitylab.dft.system import DFTSettings, build_system

MOLECULES = Path(__file__).parent / "molecules"
CASES = (
    ("h2o.xyz", "b3lyp", "6-31g"),
    ("ch4.xyz", "pbe", "6-31g"),
    ("benzene.xyz", "lda,vwn", "6-31g"),
    ("c20.xyz", "lda,vwn", "6-31g"),  # PySCF's DIIS fails here (BENCHMARKS.md)
)
TOLERANCE = 1e-5


def scipy_lbfgs(system, mol, preconditioned: bool, max_evaluations: int = 2000) -> dict:
    evaluator = Evaluator(system)
    bases, energies = initial_guess(system, mol, evaluator)
    diagonal = np.concatenate(
        [_preconditioner(system, e, n, 0.1) for e, n in zip(energies, evaluator.counts, strict=True)]
    )
    scale = 1.0 / np.sqrt(diagonal) if preconditioned else np.ones_like(diagonal)
    calls, reached = [0], [None]

    def energy_and_gradient(u):
        value, gradient = evaluator.chart(u * scale, bases)
        gradient = np.asarray(gradient)
        calls[0] += 1
        if reached[0] is None and np.max(np.abs(gradient)) <= TOLERANCE:
            reached[0] = (calls[0], float(value))
        return float(value), gradient * scale

    started = time.perf_counter()
    result = scipy.optimize.minimize(
        energy_and_gradient,
        np.zeros(diagonal.size),
        jac=True,
        method="L-BFGS-B",
        options={"maxcor": 12, "maxfun": max_evaluations, "maxiter": max_evaluations, "gtol": 0, "ftol": 0},
    )
    evaluations, energy = reached[0] if reached[0] else (calls[0], float(result.fun))
    return {"evaluations": evaluations, "energy": energy, "converged": reached[0] is not None,
            "seconds": time.perf_counter() - started}  # fmt: skip


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--molecules", nargs="*", help="a subset of the cases, e.g. h2o.xyz c20.xyz")
    chosen = parser.parse_args().molecules
    rows = []
    for name, xc, basis in CASES:
        if chosen and name not in chosen:
            continue
        mol = load_molecule(MOLECULES / name, basis=basis)
        settings = DFTSettings(xc=xc)
        system = build_system(mol, settings)
        # PySCF's DIIS does not converge for C20 (398 s, BENCHMARKS.md): compare with ours there
        reference = pyscf_reference(mol, settings)[0] if name != "c20.xyz" else None
        ours = minimise(system, mol, OptimiserSettings(gradient_tolerance=TOLERANCE))
        densitylab = {"evaluations": ours.iterations, "energy": ours.energy, "converged": ours.converged}
        row = {
            "molecule": name,
            "xc": xc,
            "basis": basis,
            "pyscf_energy": reference,
            "densitylab": densitylab,
        }
        for label, preconditioned in (("scipy_preconditioned", True), ("scipy_plain", False)):
            row[label] = scipy_lbfgs(system, mol, preconditioned)
        rows.append(row)
        print(json.dumps(row))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "dft_lbfgs.json").write_text(
        json.dumps({"date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=1)
    )


if __name__ == "__main__":
    main()
