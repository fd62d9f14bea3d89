"""Time the DFT's evaluation stages on one molecule (6-31G, grid level 3, def2-universal-jkfit DF,
the default grid choice): the compiled forward stage (the terms besides E_xc with their
gradient, and libxc's input), the host terms (libxc or PySCF's streamed numint) and the
compiled backward stage, at a point of the orbital chart near the guess; median of
``--repeats`` calls after one warm-up.

Run:  python benchmarks/dft_stages.py MOLECULE XC [--repeats 10]
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

MOLECULES = Path(__file__).parent / "molecules"


def median_ms(call, repeats: int) -> float:
    call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return 1e3 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("molecule")
    parser.add_argument("xc")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    from densitylab.dft import evaluator
    from densitylab.dft.molecule import load_molecule
    from densitylab.dft.optimise import initial_guess
    from densitylab.dft.system import DFTSettings, build_system
    from densitylab.jaxsetup import jax_modules

    jax, _, _ = jax_modules()
    mol = load_molecule(MOLECULES / f"{args.molecule}.xyz")
    system = build_system(mol, DFTSettings(xc=args.xc))
    stages = evaluator.Evaluator(system)
    bases, _ = initial_guess(system, mol, stages)
    size = sum((basis.shape[1] - count) * count for basis, count in zip(bases, stages.counts, strict=True))
    kappa = np.full(size, 1e-3)
    statics = (stages._static, "chart", stages.counts)
    arguments = (kappa, bases, stages.ops)
    forward = evaluator._executable("_forward", statics, arguments)
    host_input = np.asarray(forward(*arguments)[3])
    cotangent = stages._host_terms(host_input, stages.ops)[1]
    backward = evaluator._executable("_backward", statics, (*arguments, cotangent))
    record = {"molecule": args.molecule, "xc": args.xc, "nao": system.nao, "xc_grid": system.xc_grid}
    record["forward_ms"] = median_ms(lambda: jax.block_until_ready(forward(*arguments)), args.repeats)
    record["host_ms"] = median_ms(lambda: stages._host_terms(host_input, stages.ops), args.repeats)
    record["backward_ms"] = median_ms(
        lambda: jax.block_until_ready(backward(*arguments, cotangent)), args.repeats
    )
    record["evaluation_ms"] = median_ms(lambda: stages.chart(kappa, bases), args.repeats)
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
