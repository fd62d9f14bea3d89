"""Cost and memory of one TDKS loss gradient against the number of time steps T.

For the memory functional (c) (a DensityNet with memory 4: its parameters do not grow with
T) on a soft-Coulomb atom (N points, T steps), this measures
* the wall time of one forward propagation and of one loss + gradient (jitted, warm);
* XLA's temporary memory for the gradient (``memory_analysis().temp_size_in_bytes`` of the
  compiled function), with the default √T rematerialised blocks and with one block
  (no checkpointing: every step's residuals are kept).

Run:  python benchmarks/tdks_gradient.py [--points 200]
Writes benchmarks/results/tdks_gradient.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--steps", type=int, nargs="+", default=[64, 256, 1024, 4096])
    args = parser.parse_args()

    import equinox as eqx
    import jax

    from densitylab.tdks.models import DensityNetConfig, build_density_net, density_net_model
    from densitylab.tdks.propagation import KSProblem, propagate, propagate_loss

    x = np.linspace(-20.0, 20.0, args.points)
    dx = x[1] - x[0]
    w = 1.0 / np.sqrt((x[:, None] - x[None, :]) ** 2 + 1.0)
    orbital = np.exp(-(x**2) / 4 + 0.5j * x)
    orbital /= np.sqrt(np.sum(np.abs(orbital) ** 2) * dx)
    rows = []
    for steps in args.steps:
        v_ext = np.tile(-2.0 / np.sqrt(x**2 + 1.0), (steps, 1))
        problem = KSProblem(x, v_ext, w, orbital, 0.05)
        net = build_density_net(DensityNetConfig(memory=4, channels=8, depth=3, kernel=9, dx=dx, dt=0.05))
        net = jax.tree_util.tree_map(lambda leaf: leaf + 0.01 if eqx.is_inexact_array(leaf) else leaf, net)
        params, model = density_net_model(net)
        target = np.asarray(propagate(problem, lambda p, w, k: 0.0 * x, None)[0])
        row = {"steps": steps}
        for label, block in (("sqrt_blocks", None), ("one_block", steps)):

            def loss(params, block=block, problem=problem, model=model, target=target):
                return propagate_loss(problem, model, params, target, 4, block)

            arrays, static = eqx.partition(params, eqx.is_inexact_array)

            def loss_of_arrays(arrays, loss=loss, static=static):
                return loss(eqx.combine(arrays, static))

            gradient = jax.jit(jax.value_and_grad(loss_of_arrays))
            compiled = gradient.lower(arrays).compile()
            row[f"gradient_temp_mb_{label}"] = compiled.memory_analysis().temp_size_in_bytes / 2**20
            if label == "sqrt_blocks":
                forward = jax.jit(loss_of_arrays)
                forward(arrays).block_until_ready()
                jax.block_until_ready(gradient(arrays))
                start = time.perf_counter()
                for _ in range(3):
                    forward(arrays).block_until_ready()
                row["forward_seconds"] = (time.perf_counter() - start) / 3
                start = time.perf_counter()
                for _ in range(3):
                    jax.block_until_ready(gradient(arrays))
                row["gradient_seconds"] = (time.perf_counter() - start) / 3
                row["gradient_over_forward"] = row["gradient_seconds"] / row["forward_seconds"]
        rows.append(row)
        print(row, flush=True)

    RESULTS.mkdir(exist_ok=True)
    machine = platform.processor() or platform.machine()
    payload = {"points": args.points, "rows": rows, "machine": machine, "device": str(jax.devices()[0])}
    (RESULTS / "tdks_gradient.json").write_text(json.dumps(payload, indent=1))
    lines = [
        f"# TDKS gradient cost and memory ({args.points} points, memory functional, {jax.devices()[0]})",
        "",
        "| steps T | forward (s) | loss + gradient (s) | ratio | gradient temp. memory, √T blocks (MB) "
        "| … one block (MB) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['steps']} | {row['forward_seconds']:.3f} | {row['gradient_seconds']:.3f} | "
            f"{row['gradient_over_forward']:.2f} | {row['gradient_temp_mb_sqrt_blocks']:.1f} | "
            f"{row['gradient_temp_mb_one_block']:.1f} |"
        )
    (RESULTS / "tdks_gradient.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
