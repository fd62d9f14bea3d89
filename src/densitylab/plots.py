"""Matplotlib figures shared by the CLI and the demo. Every function writes one PNG."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np


def plot_state(
    x: np.ndarray,
    density: np.ndarray,
    rdm1: np.ndarray,
    occupations: np.ndarray,
    title: str,
    path: str | Path,
) -> Path:
    """Density, 1-RDM heat map and natural occupations (log scale) side by side."""
    figure, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    axes[0].plot(x, density, color="C0")
    axes[0].set(xlabel="x (bohr)", ylabel="n(x) (bohr$^{-1}$)", title="density")
    extent = (x[0], x[-1], x[-1], x[0])
    limit = float(np.max(np.abs(rdm1))) or 1.0
    image = axes[1].imshow(rdm1, extent=extent, cmap="RdBu_r", vmin=-limit, vmax=limit)
    axes[1].set(xlabel="x' (bohr)", ylabel="x (bohr)", title="1-RDM γ(x, x')")
    figure.colorbar(image, ax=axes[1], shrink=0.85)
    shown = occupations[: min(12, len(occupations))]
    axes[2].semilogy(np.arange(1, len(shown) + 1), np.clip(shown, 1e-16, None), "o-", color="C3")
    axes[2].set(xlabel="natural orbital", ylabel="occupation", title="natural occupations")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)


def plot_densities(
    x: np.ndarray, densities: Mapping[str, np.ndarray], v_ext: np.ndarray, title: str, path: str | Path
) -> Path:
    """Several densities on one axis, with v_ext on a twin axis."""
    figure, axis = plt.subplots(figsize=(7, 4.2))
    for index, (label, density) in enumerate(densities.items()):
        axis.plot(x, density, label=label, lw=2 if index == 0 else 1.3, ls="-" if index == 0 else "--")
    axis.set(xlabel="x (bohr)", ylabel="n(x) (bohr$^{-1}$)", title=title)
    twin = axis.twinx()
    twin.plot(x, v_ext, color="0.6", lw=1)
    twin.set_ylabel("v_ext (Ha)", color="0.5")
    axis.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)


def plot_potentials(
    x: np.ndarray, potentials: Mapping[str, np.ndarray], title: str, path: str | Path
) -> Path:
    """Potentials on one axis (e.g. v_ext, v_KS, v_Hxc)."""
    figure, axis = plt.subplots(figsize=(7, 4.2))
    for label, values in potentials.items():
        axis.plot(x, values, label=label)
    axis.set(xlabel="x (bohr)", ylabel="Ha", title=title)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return Path(path)
