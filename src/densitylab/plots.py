"""Matplotlib figures shared by the CLI and the demo. Every function writes one PNG.

Figures are made with :class:`matplotlib.figure.Figure` directly, never through pyplot, so
drawing needs no GUI backend and importing this module changes nothing in the caller's
matplotlib (a notebook keeps its backend). Matplotlib itself is imported on the first figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np


class _Figures:
    """``plt``-like access to the two calls used here, with matplotlib imported lazily."""

    @staticmethod
    def subplots(nrows: int = 1, ncols: int = 1, *, figsize=None, squeeze: bool = True, **kwargs):
        from matplotlib.figure import Figure

        figure = Figure(figsize=figsize)
        return figure, figure.subplots(nrows, ncols, squeeze=squeeze, **kwargs)

    @staticmethod
    def close(figure) -> None:
        figure.clear()


plt = _Figures()


def _save(figure, path: str | Path, tight: bool = True) -> Path:
    """Lay out (unless ``tight`` is False: a colour bar shared by several axes keeps the layout
    it was placed with), write at 120 dpi and close ``figure``; returns the path."""
    if tight:
        figure.tight_layout()
    from densitylab.data import atomic_output

    with atomic_output(path) as temporary:  # NAME.tmp.png: the format still follows the suffix
        figure.savefig(temporary, dpi=120)
    plt.close(figure)
    return Path(path)


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
    return _save(figure, path)


def _occupied_range(x: np.ndarray, density: np.ndarray, threshold: float = 1e-3) -> tuple[float, float]:
    """x-range where the density exceeds ``threshold`` × its maximum, padded by 10 %."""
    inside = x[density > threshold * density.max()]
    low, high = float(inside.min()), float(inside.max())
    pad = 0.1 * (high - low)
    return max(x[0], low - pad), min(x[-1], high + pad)


def plot_densities(
    x: np.ndarray, densities: Mapping[str, np.ndarray], v_ext: np.ndarray, title: str, path: str | Path
) -> Path:
    """Densities (the first is the reference) with v_ext, and their differences from the reference."""
    figure, (axis, difference_axis) = plt.subplots(1, 2, figsize=(12, 4.2))
    labels = list(densities)
    reference = densities[labels[0]]
    span = _occupied_range(x, reference)
    for index, label in enumerate(labels):
        axis.plot(
            x, densities[label], label=label, lw=2.2 if index == 0 else 1.2, ls="-" if index == 0 else "--"
        )
        if index:
            difference_axis.plot(x, densities[label] - reference, label=f"{label} − {labels[0]}")
    axis.set(xlabel="x (bohr)", ylabel="n(x) (bohr$^{-1}$)", title=title, xlim=span)
    twin = axis.twinx()
    window = (x >= span[0]) & (x <= span[1])
    twin.plot(x[window], v_ext[window], color="0.6", lw=1)
    twin.set_ylabel("v_ext (Ha)", color="0.5")
    axis.legend(loc="upper right", fontsize=8)
    difference_axis.axhline(0, color="0.7", lw=0.8)
    difference_axis.set(
        xlabel="x (bohr)", ylabel="Δn(x) (bohr$^{-1}$)", title="difference from " + labels[0], xlim=span
    )
    difference_axis.legend(fontsize=8)
    return _save(figure, path)


def plot_potentials(
    x: np.ndarray,
    potentials: Mapping[str, np.ndarray],
    title: str,
    path: str | Path,
    density: np.ndarray | None = None,
) -> Path:
    """Potentials on one axis (e.g. v_ext, v_KS, v_Hxc), limited to where ``density`` lives."""
    figure, axis = plt.subplots(figsize=(7, 4.2))
    span = _occupied_range(x, density) if density is not None else (x[0], x[-1])
    window = (x >= span[0]) & (x <= span[1])
    for label, values in potentials.items():
        axis.plot(x[window], values[window], label=label)
    axis.set(xlabel="x (bohr)", ylabel="Ha", title=title)
    axis.axhline(0, color="0.8", lw=0.8)
    axis.legend(fontsize=8)
    return _save(figure, path)


def plot_compression(curves, path: str | Path, title: str = "PCA compression") -> Path:
    """Explained variance and held-out max reconstruction error against component count.

    ``curves`` are :class:`densitylab.rdm.pca.CompressionCurve` objects.
    """
    figure, (variance_axis, error_axis) = plt.subplots(1, 2, figsize=(12, 4.2))
    for curve in curves:
        k = np.arange(1, len(curve.explained_variance_ratio) + 1)
        remaining = 1.0 - np.cumsum(curve.explained_variance_ratio)
        variance_axis.semilogy(
            k, np.clip(remaining, 1e-32, None), label=f"{curve.name} ({curve.features} features)"
        )
        error_axis.semilogy(
            np.arange(len(curve.max_error)), np.clip(curve.max_error, 1e-17, None), label=curve.name
        )
    variance_axis.set(
        xlabel="components k", ylabel="unexplained variance fraction", title="explained variance"
    )
    for level, label in ((1e-6, "1e-6"), (1e-12, "machine precision (1e-12)")):
        error_axis.axhline(level, color="0.6", ls=":", lw=1)
        error_axis.text(1, level * 1.5, label, color="0.4", fontsize=8)
    error_axis.set(xlabel="components k", ylabel="held-out max |x − x̂|", title="reconstruction error")
    variance_axis.legend(fontsize=8)
    error_axis.legend(fontsize=8)
    figure.suptitle(title)
    return _save(figure, path)


def plot_rdm_comparison(
    x: np.ndarray,
    exact: np.ndarray,
    predicted: np.ndarray,
    title: str,
    path: str | Path,
    others: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """One system under several functionals: the exact 1-RDM, the model's and each of
    ``others`` (name → γ, e.g. the √(n n′) baseline) on one colour scale in the top row, and
    each one's difference from the exact γ on one shared scale below; γ in bohr⁻¹."""
    columns = {"exact": exact, "model": predicted, **(others or {})}
    count = len(columns)
    figure, axes = plt.subplots(2, count, figsize=(3.6 * count + 1.2, 7.4), squeeze=False)
    figure.subplots_adjust(hspace=0.5)  # room for the two-line difference titles
    extent = (x[0], x[-1], x[-1], x[0])
    limit = float(np.max(np.abs(exact))) or 1.0
    differences = {name: gamma - exact for name, gamma in columns.items() if name != "exact"}
    scale = max(float(np.max(np.abs(d))) for d in differences.values()) or 1.0
    for column, (name, gamma) in enumerate(columns.items()):
        top = axes[0, column].imshow(gamma, extent=extent, cmap="RdBu_r", vmin=-limit, vmax=limit)
        axes[0, column].set(title=f"{name} γ", xlabel="x′ (bohr)", ylabel="x (bohr)" if column == 0 else None)
        if name == "exact":
            axes[1, column].axis("off")
            axes[1, column].text(0.5, 0.5, "differences from the exact γ\nbelow, on one scale",
                                 ha="center", va="center", transform=axes[1, column].transAxes)  # fmt: skip
            continue
        error = float(np.mean(np.abs(differences[name])))
        bottom = axes[1, column].imshow(
            differences[name], extent=extent, cmap="PuOr", vmin=-scale, vmax=scale
        )
        axes[1, column].set_title(f"{name} − exact\nmean |Δγ| {error:.1e} bohr⁻¹", fontsize=9)
        axes[1, column].set_xlabel("x′ (bohr)")
    figure.colorbar(top, ax=axes[0].tolist(), shrink=0.85, label="γ(x, x′) (bohr⁻¹)")
    figure.colorbar(bottom, ax=axes[1].tolist(), shrink=0.85, label="Δγ (bohr⁻¹)")
    figure.suptitle(title)
    return _save(figure, path, tight=False)


def plot_learning_curve(history: dict, path: str | Path) -> Path:
    """Training loss and held-out MAE against epoch."""
    figure, (loss_axis, mae_axis) = plt.subplots(1, 2, figsize=(11, 4))
    loss_axis.semilogy(history["epoch"], history["train_loss"])
    loss_axis.set(xlabel="epoch", ylabel="training loss (mean squared γ error)", title="training")
    values = [v for v in history["validation_mae"] if v is not None]
    if values:
        mae_axis.semilogy(history["epoch"][: len(values)], values, color="C3")
    mae_axis.set(xlabel="epoch", ylabel="held-out MAE (bohr⁻¹)", title="held-out")
    return _save(figure, path)


def plot_dimer(curves: dict, path: str | Path) -> Path:
    """γ₁₂ against the first site's occupation for the exact dimer and the models."""
    figure, axis = plt.subplots(figsize=(7, 4.2))
    order = np.argsort(curves["n1"])
    x = curves["n1"][order]
    axis.semilogy(x, curves["sqrt"][order], color="0.6", label="√(n₁ n₂) (non-interacting)")
    axis.semilogy(x, curves["exact"][order], ".", ms=3, color="k", label="exact")
    axis.semilogy(x, curves["log_perceptron"][order], "-", color="C0", label="log perceptron")
    axis.semilogy(x, curves["c_model"][order], "-", color="C3", label="c-model")
    axis.set(xlabel="n₁ (bohr⁻¹)", ylabel="γ₁₂ (bohr⁻¹)", title="two-site limit: held-out systems")
    axis.legend(fontsize=8)
    return _save(figure, path)


def plot_xt_maps(x: np.ndarray, times: np.ndarray, maps: Mapping[str, np.ndarray], path: str | Path) -> Path:
    """x–t heat maps side by side, one per entry of ``maps`` ((T, N) arrays on x and times).

    Densities (names starting with 'exact n' or 'KS n') share one colour scale (bohr⁻¹); the
    exact density's response n(x, t) − n(x, 0) follows it (the dynamics, which the density
    itself hides), and when a KS density is given too, the difference KS − exact, each on a
    diverging scale. Entries whose name starts with 'v' (potentials, Ha) use a diverging scale centred on
    zero. Every scale ends at the 99.5th percentile, so one spike does not wash out the rest."""
    maps = dict(maps)
    exact = next((v for k, v in maps.items() if k.startswith("exact n")), None)
    ks_name = next((k for k in maps if k.startswith("KS n")), None)
    if exact is not None:
        potentials = {k: v for k, v in maps.items() if k.startswith("v")}
        maps = {k: v for k, v in maps.items() if not k.startswith("v")}
        maps["exact n(t) − n(0)"] = np.asarray(exact) - np.asarray(exact)[:1]
        if ks_name is not None:
            maps["KS n − exact n"] = np.asarray(maps[ks_name]) - np.asarray(exact)
        maps.update(potentials)
    densities = [np.asarray(v) for k, v in maps.items() if k.startswith(("exact n", "KS n")) and "−" not in k]
    density_top = max((float(np.percentile(v, 99.5)) for v in densities), default=1.0) or 1.0
    figure, axes = plt.subplots(1, len(maps), figsize=(4.2 * len(maps), 4.2), squeeze=False)
    extent = (x[0], x[-1], times[0], times[-1])
    for axis, (name, values) in zip(axes[0], maps.items(), strict=True):
        values = np.asarray(values)
        diverging = name.startswith("v") or "−" in name
        if diverging:
            limit = float(np.percentile(np.abs(values), 99.5)) or 1.0
            options = {"cmap": "RdBu_r", "vmin": -limit, "vmax": limit}
        else:
            options = {"cmap": "viridis", "vmin": 0.0, "vmax": density_top}
        image = axis.imshow(values, origin="lower", aspect="auto", extent=extent, **options)
        axis.set(xlabel="x (bohr)", ylabel="t (a.u.)", title=name)
        unit = "Ha" if name.startswith("v") else "bohr⁻¹"
        figure.colorbar(image, ax=axis, shrink=0.85, label=f"{name.split(' (')[0]} ({unit})", extend="both")
    return _save(figure, path)


def plot_density_errors(times: np.ndarray, errors: Mapping[str, np.ndarray], path: str | Path) -> Path:
    """∫|n_KS − n_exact| dx against time for each model or anchor."""
    figure, axis = plt.subplots(figsize=(7, 4.2))
    for name, values in errors.items():
        axis.semilogy(times[1:], np.maximum(values[1:], 1e-16), label=name)
    axis.set(xlabel="t (a.u.)", ylabel="∫|n_KS − n_exact| dx", title="TDKS density error")
    axis.legend(fontsize=8)
    return _save(figure, path)


def plot_optimisation(history: Mapping[str, list], path: str | Path, title: str = "training") -> Path:
    """Loss and gradient norm against iteration (an optimiser's history)."""
    figure, (loss_axis, gradient_axis) = plt.subplots(1, 2, figsize=(11, 4))
    loss_axis.semilogy(history["iteration"], history["loss"])
    loss_axis.set(xlabel="iteration", ylabel="loss", title=title)
    gradient_axis.semilogy(history["iteration"], history["gradient_norm"], color="C3")
    gradient_axis.set(xlabel="iteration", ylabel="|gradient|", title="gradient norm")
    return _save(figure, path)


def plot_dft_convergence(
    history: list[dict],
    path: str | Path,
    reference_energy: float | None = None,
    evaluations: int | None = None,
) -> Path:
    """Direct-minimisation convergence: energy above the final (or reference) energy and the
    orbital-gradient norm at every accepted step (one history entry each), on log scales. The
    title gives the steps and, if given, the energy/gradient ``evaluations`` they took (line-search
    trials and chart re-centring included), so it matches the tables that report evaluations."""
    iterations = np.array([entry["iteration"] for entry in history])
    energies = np.array([entry["energy"] for entry in history])
    gradients = np.array([entry["gradient"] for entry in history])
    floor = reference_energy if reference_energy is not None else energies.min()
    label = "E − E(PySCF)" if reference_energy is not None else "E − E(final)"
    figure, (energy_axis, gradient_axis) = plt.subplots(1, 2, figsize=(10, 3.8))
    energy_axis.semilogy(iterations, np.clip(np.abs(energies - floor), 1e-12, None), "o-", ms=3)
    energy_axis.axhline(1e-6, color="grey", ls=":", label="1 µHa")
    energy_axis.set(xlabel="accepted step", ylabel=f"|{label}| (Ha)", title="energy")
    energy_axis.legend()
    gradient_axis.semilogy(iterations, np.clip(gradients, 1e-14, None), "o-", ms=3, color="C3")
    gradient_axis.set(xlabel="accepted step", ylabel="max |orbital gradient| (Ha)", title="gradient")
    counted = f", {evaluations} energy/gradient evaluations" if evaluations is not None else ""
    figure.suptitle(f"{len(history)} accepted steps{counted}")
    return _save(figure, path)


def plot_energy_steps(curves: Mapping[str, list], path: str | Path, levels: Mapping[str, float]) -> Path:
    """Energy (Ha) against optimisation step for each route in ``curves``, with horizontal
    lines at the fixed-basis energies in ``levels`` (name → energy)."""
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for name, energies in curves.items():
        axis.plot(np.arange(len(energies)), energies, label=name)
    for index, (name, energy) in enumerate(levels.items()):
        axis.axhline(energy, color=f"C{(index + len(curves)) % 10}", ls="--", lw=1, label=name)
    everything = [e for energies in curves.values() for e in energies] + list(levels.values())
    if everything:
        low, high = (
            min(everything),
            max(e for energies in curves.values() for e in energies[:1]) if curves else max(everything),
        )
        axis.set_ylim(low - 0.05 * (high - low + 1e-6), high + 0.05 * (high - low + 1e-6))
    axis.set(xlabel="optimisation step", ylabel="energy (Ha)", title="beyond the fixed basis")
    axis.legend(fontsize=8)
    return _save(figure, path)


ELEMENTS = {1: "H", 6: "C", 7: "N", 8: "O", 9: "F", 16: "S", 17: "Cl"}


def _symlog_ticks(limit: float, threshold: float) -> list[float]:
    """0 and ±10^k for decades above the linear band, at most three a side (labels stay apart)."""
    low, high = int(np.ceil(np.log10(threshold * 10))), int(np.floor(np.log10(max(limit, threshold * 10))))
    decades = list(range(high, low - 1, -max(1, -(-(high - low + 1) // 3))))
    return sorted([-(10.0**k) for k in decades] + [0.0] + [10.0**k for k in decades])


def plot_parity(
    reference: np.ndarray,
    predicted: np.ndarray,
    path: str | Path,
    species: np.ndarray | None = None,
    angular: np.ndarray | None = None,
) -> Path:
    """Predicted against reference density-fitting coefficients (a.u.): one panel per angular
    momentum λ of the auxiliary function (``angular``), points coloured by the species of its
    atom (``species``, atomic numbers), symmetric-log axes (the s coefficients of heavy atoms
    are 10³ times the rest), linear within 10⁻³ of each panel's largest value, and each
    panel's RMSE on it."""
    reference, predicted = np.asarray(reference), np.asarray(predicted)
    angular = np.zeros(len(reference), dtype=int) if angular is None else np.asarray(angular)
    species = np.zeros(len(reference), dtype=int) if species is None else np.asarray(species)
    lambdas = sorted(set(angular.tolist()))[:4]
    every_species = sorted(set(species.tolist()))
    figure, axes = plt.subplots(1, len(lambdas), figsize=(4.2 * len(lambdas), 4.2), squeeze=False)
    for axis, value in zip(axes[0], lambdas, strict=True):
        chosen = angular == value
        for z in sorted(set(species[chosen].tolist())):
            mask, index = chosen & (species == z), every_species.index(z)  # one colour per species
            label = ELEMENTS.get(int(z), f"Z={z}") if z else "all"
            axis.plot(reference[mask], predicted[mask], ".", ms=3, alpha=0.6, color=f"C{index}", label=label)
        limit = float(np.max(np.abs(np.concatenate([reference[chosen], predicted[chosen]])))) or 1.0
        threshold = 1e-3 * limit  # each λ has its own linear band: their sizes differ by decades
        axis.plot([-limit, limit], [-limit, limit], "k--", lw=0.8)
        axis.set_xscale("symlog", linthresh=threshold)
        axis.set_yscale("symlog", linthresh=threshold)
        ticks = _symlog_ticks(limit, threshold)
        axis.set_xticks(ticks)
        axis.set_yticks(ticks)
        rmse = float(np.sqrt(np.mean((predicted[chosen] - reference[chosen]) ** 2)))
        axis.set(xlabel="reference coefficient (a.u.)", title=f"λ = {value}")
        axis.text(0.04, 0.93, f"RMSE {rmse:.2e}", transform=axis.transAxes)
        axis.legend(loc="lower right", fontsize=8)
    axes[0, 0].set_ylabel("predicted coefficient (a.u.)")
    figure.suptitle("density-fitting coefficients, by angular momentum λ and species")
    return _save(figure, path)


def plot_density_slices(
    extent: float, slices: Mapping[str, np.ndarray], positions: np.ndarray, path: str | Path
) -> Path:
    """Density differences on a plane (bohr⁻³): one panel per entry of ``slices`` (each (n, n)
    on [−extent, extent]², bohr), the projected atoms marked, a shared symmetric colour scale
    clipped at the 99th percentile (the nuclear cusps would otherwise hide everything else)."""
    limit = max(float(np.percentile(np.abs(values), 99)) for values in slices.values()) or 1.0
    figure, axes = plt.subplots(1, len(slices), figsize=(4.6 * len(slices), 4.0), squeeze=False)
    for axis, (title, values) in zip(axes[0], slices.items(), strict=True):
        image = axis.imshow(
            values.T,
            origin="lower",
            extent=(-extent, extent, -extent, extent),
            cmap="RdBu_r",
            vmin=-limit,
            vmax=limit,
        )
        axis.plot(positions[:, 0], positions[:, 1], "k.", ms=6)
        axis.set(xlabel="bohr", ylabel="bohr", title=title)
    figure.colorbar(image, ax=axes[0].tolist(), shrink=0.85, label="Δρ (bohr⁻³)")
    return _save(figure, path, tight=False)
