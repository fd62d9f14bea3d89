"""Demo section for density learning: a few water molecules end to end."""

from __future__ import annotations

from pathlib import Path

from densitylab.density.features import FeatureSettings
from densitylab.density.pipeline import evaluate, train
from densitylab.density.reference import ReferenceSettings, generate_reference, load_reference
from densitylab.density.regression import RegressionSettings
from densitylab.density.structures import water_monomers
from densitylab.density.workflow import Evaluation

COLUMNS = ("quantity", "value")


def run(output: Path) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """Sample 10 water monomers, compute PBE/def2-SVP references fitted into
    def2-universal-jkfit, train the sparse GPR on 8 and test on 2; write a parity plot."""
    output.mkdir(parents=True, exist_ok=True)
    frames = water_monomers(10, seed=0)
    path = output / "density_water.h5"
    generate_reference(frames, path, ReferenceSettings(chunk_size=5), seed=0)
    reference = load_reference(path)
    trained, info = train(
        reference, list(range(8)), FeatureSettings(columns=300), RegressionSettings(sparse_environments=20)
    )
    test = [8, 9]
    metrics, predicted = evaluate(trained, reference, test)
    Evaluation(metrics, predicted, reference, test).plot(output / "density")  # parity, slices
    return COLUMNS, [
        ("training structures / sparse environments per species", "8 / 20"),
        ("weights, solver", f"{info['parameters']}, {info['solver']}"),
        ("η, chosen on held-out training molecules", f"{info['regularisation']:.0e}"),
        ("% RMSE in the overlap metric (test)", f"{metrics['rmse_percent']:.3f}"),
        (
            "grid NMAE % (fitting floor)",
            f"{metrics['grid_nmae_percent']:.3f} ({metrics['grid_nmae_floor_percent']:.3f})",
        ),
        ("max electron-count error", f"{metrics['electron_count_error_max']:.1e}"),
        ("one-step energy error (meV/atom)", f"{metrics['energy_mae_mev_per_atom']:.2f}"),
    ]
