"""A switched functional (``densitylab tdks switch``) beside the anchors on every case of
trajectory sets: which part propagated, and max ∫|n_KS − n_exact| dx of it, exchange-only,
ALDA and SCE, each through :func:`densitylab.tdks.workflow.evaluate_model` (what ``tdks
evaluate`` runs).

Run:  python benchmarks/tdks_switch.py MODEL -- SET [SET ...]
Prints one markdown row per case (as it finishes), then the cases where the model is above
exchange-only's error.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main() -> None:
    arguments = sys.argv[1:]
    split = arguments.index("--")
    (model,) = arguments[:split]
    from densitylab.tdks.workflow import evaluate_model

    print("| case | propagated | model | exchange-only | ALDA | SCE |")
    print("|---|---|---|---|---|---|")
    worse = []
    for folder in arguments[split + 1 :]:
        for path in sorted(Path(folder).glob("*.h5")):
            summary = evaluate_model(path, model).summary
            errors = [summary[key] for key in ("density_error_max", "density_error_exchange_only")]
            errors += [summary["density_error_alda"], summary["density_error_sce"]]
            part = summary["propagated"].removeprefix(Path(model).name).strip() or "network"
            case = f"{Path(folder).name}/{path.stem}"
            print(f"| {case} | {part} | " + " | ".join(f"{error:.3f}" for error in errors) + " |", flush=True)
            if errors[0] > errors[1]:
                worse.append(case)
    print("above exchange-only:", ", ".join(worse) or "none")


if __name__ == "__main__":
    main()
