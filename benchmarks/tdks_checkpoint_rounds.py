"""The finished DAgger rounds of a running (or interrupted) ``tdks functional``, as functionals.

A long training keeps its stage-1b rounds in ``<checkpoint>.stage.npz`` (``round001/…``) and
the network's config (scales and gate included) in the settings of ``<checkpoint>``; this writes
each finished round as a functional folder ``OUT/roundK`` (kind ``tdks-density-net``), its
training score and per-case errors in the manifest, so that it can be evaluated on held-out cases
(``benchmarks/tdks_rollout_errors.py``) before the run ends. The checkpoint is only read.

Run:  python benchmarks/tdks_checkpoint_rounds.py CHECKPOINT OUT
(CHECKPOINT: the run's ``<output>.checkpoint.npz``.)
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    checkpoint, out = Path(sys.argv[1]), Path(sys.argv[2])
    from densitylab.checkpoint import inspect_checkpoint
    from densitylab.tdks.models import DensityNetConfig, build_density_net, save_density_net
    from densitylab.tdks.supervised import stored_rounds

    settings, _, _ = inspect_checkpoint(checkpoint)
    like = build_density_net(DensityNetConfig(**settings["net"]))
    _, arrays, state = inspect_checkpoint(f"{checkpoint}.stage.npz")
    history = state["history"]
    out.mkdir(parents=True, exist_ok=True)
    for done, net in enumerate(stored_rounds(arrays, state["rounds"], like), 1):
        scored = done < len(history["score"])  # a round is scored when the next one starts
        extra = {
            "checkpoint": str(checkpoint),
            "round": done,
            "score": history["score"][done] if scored else None,
            "errors": history["errors"][done] if scored else None,
        }
        path = save_density_net(out / f"round{done}", net, extra)
        print(path, "score", extra["score"], flush=True)


if __name__ == "__main__":
    main()
