"""Demo section for 1-RDM learning: a small dataset, PCA, and the density functionals."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from densitylab.model1d.grid import Grid
from densitylab.model1d.interactions import Interaction
from densitylab.plots import plot_compression, plot_rdm_comparison
from densitylab.rdm.dataset import DatasetSpec, generate_dataset, load_dataset
from densitylab.rdm.functionals import LinearPCAFunctional, sqrt_functional
from densitylab.rdm.metrics import evaluate_rdm
from densitylab.rdm.models import pretrained
from densitylab.rdm.pca import analyse_dataset, split

COLUMNS = ("γ[n] functional", "MAE (bohr⁻¹)", "rel. error of T", "rel. error of E_x", "occupation MAE")


def run(output: Path) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """Generate 1000 systems of the paper's family (seed 2026, unseen by the shipped model), run
    PCA, and evaluate √(n n'), the linear PCA functional and the pretrained neural γ[n] on a
    held-out 10 %; write figures and return the summary table."""
    output.mkdir(parents=True, exist_ok=True)
    spec = DatasetSpec(systems=1000, seed=2026, chunk_size=250)
    generate_dataset(spec, output / "rdm_family.h5")
    data = load_dataset(output / "rdm_family.h5")
    plot_compression(
        analyse_dataset(data.arrays["density"], data.rdm1(), 0.1),
        output / "rdm_pca.png",
        "PCA of 1000 exact densities and 1-RDMs (62 points)",
    )
    train, test = split(len(data), 0.1)
    density, exact = data.arrays["density"], data.rdm1()
    kinetic = Grid(spec.points, spec.x_min, spec.x_max, spec.stencil).kinetic_dense()
    w = Interaction().matrix(data.x)
    linear = LinearPCAFunctional.fit(density[train], exact[train], data.dx, components=20)
    rows = []
    candidates = (
        ("√(n(x) n(x')) baseline", "sqrt", sqrt_functional(density[test])),
        ("linear PCA functional", "linear", linear(density[test])),
        ("pretrained neural γ[n]", "neural", pretrained()(density[test])),
    )
    for label, _, predicted in candidates:
        metrics = evaluate_rdm(predicted, exact[test], density[test], kinetic, w, data.dx)
        rows.append(
            (
                label,
                f"{metrics['mae']:.2e}",
                f"{metrics['kinetic_rel_error']:.3f}",
                f"{metrics['exchange_rel_error']:.3f}",
                f"{metrics['occupation_mae']:.2e}",
            )
        )
    # one system (the neural functional's median held-out error) under every functional
    neural = candidates[-1][2]
    example = int(np.argsort(np.mean(np.abs(neural - exact[test]), axis=(1, 2)))[len(test) // 2])
    others = {"√(n n′)": candidates[0][2][example], "linear PCA": candidates[1][2][example]}
    plot_rdm_comparison(
        data.x, exact[test][example], neural[example],
        f"held-out system {test[example]}: exact γ, the neural γ[n] ('model') and the other functionals",
        output / "rdm_functionals.png", others,
    )  # fmt: skip
    return COLUMNS, rows
