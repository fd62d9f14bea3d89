"""Accuracy of predicted 1-RDMs against exact ones (two-electron singlets, atomic units).

T[γ] = Tr(K γ) dx with K the grid's kinetic matrix (so the same stencil as the solver).
E_x[γ] = −¼ ∫∫ γ(x, x')² w(x, x') for a singlet (γ_σ = γ/2 in −½ Σ_σ ∫∫ γ_σ² w).
"""

from __future__ import annotations

import numpy as np


def kinetic_energy(rdm1: np.ndarray, kinetic: np.ndarray, dx: float) -> np.ndarray:
    """T[γ] for each (N, N) 1-RDM, shape (S,), Ha."""
    return np.einsum("ij,sji->s", kinetic, rdm1) * dx


def exchange_energy(rdm1: np.ndarray, w: np.ndarray, dx: float) -> np.ndarray:
    """E_x[γ] = −¼ Σ γ² w dx² for each singlet 1-RDM, shape (S,), Ha."""
    return -0.25 * np.einsum("sij,ij->s", rdm1**2, w) * dx * dx


def occupations(rdm1: np.ndarray, dx: float) -> np.ndarray:
    """Eigenvalues of γ·dx, descending, shape (S, N)."""
    return np.linalg.eigvalsh(rdm1 * dx)[:, ::-1]


def evaluate_rdm(
    predicted: np.ndarray,
    exact: np.ndarray,
    density: np.ndarray,
    kinetic: np.ndarray,
    w: np.ndarray,
    dx: float,
) -> dict[str, float]:
    """Error measures of predicted against exact 1-RDMs.

    Returns:
        mae: mean over systems and all (i, j) of |γ_pred − γ_exact| (bohr⁻¹);
        kinetic_rel_error: mean |T_pred − T_exact| / T_exact;
        exchange_rel_error and exchange_mae_ha: errors of E_x[γ];
        occupation_mae: mean |Δ occupation| over the natural occupations;
        kinetic_correlation_recovered: Σ(T_pred − T_√) / Σ(T_exact − T_√), where T_√ is the
            kinetic energy of √(n n'); 1 is perfect, 0 is no better than the baseline;
        variance_captured: 1 − Σ|γ_pred − γ|² / Σ|γ − γ̄|².
    """
    root = np.sqrt(np.maximum(density, 0.0))
    baseline = root[:, :, None] * root[:, None, :]
    t_pred, t_exact, t_base = (kinetic_energy(g, kinetic, dx) for g in (predicted, exact, baseline))
    x_pred, x_exact = exchange_energy(predicted, w, dx), exchange_energy(exact, w, dx)
    mean = exact.mean(axis=0)
    return {
        "systems": int(exact.shape[0]),
        "mae": float(np.mean(np.abs(predicted - exact))),
        "kinetic_rel_error": float(np.mean(np.abs(t_pred - t_exact) / np.abs(t_exact))),
        "exchange_rel_error": float(np.mean(np.abs(x_pred - x_exact) / np.abs(x_exact))),
        "exchange_mae_ha": float(np.mean(np.abs(x_pred - x_exact))),
        "occupation_mae": float(np.mean(np.abs(occupations(predicted, dx) - occupations(exact, dx)))),
        "kinetic_correlation_recovered": float(np.sum(t_pred - t_base) / np.sum(t_exact - t_base)),
        "kinetic_correlation_fraction": float(np.mean((t_exact - t_base) / t_exact)),
        "variance_captured": float(1 - np.sum((predicted - exact) ** 2) / np.sum((exact - mean) ** 2)),
    }
