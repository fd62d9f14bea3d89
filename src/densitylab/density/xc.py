"""The XC energy, its potential's expectation and its AO matrix of one density on a grid,
summed block by block, for the molecular one-step energies (cells use PySCF's multigrid on
their mesh instead, :func:`densitylab.density.periodic.cell_one_step_energies`)."""

from __future__ import annotations

import numpy as np


class XCAccumulator:
    """E_xc, ∫ v_xc ρ̃ and the V_xc matrix (nao, nao) of one density, summed over grid blocks.
    For GGAs the matrix is built as PySCF does, with one product per block:
    V = Xᵀ φ + φᵀ X, X = ½ w v_ρ φ + Σ_k 2 w v_σ ∂_kρ ∂_kφ."""

    def __init__(self, nao: int):
        self.half = np.zeros((nao, nao))
        self.energy = 0.0
        self.expectation = 0.0

    def add(self, xc: str, rho: np.ndarray, weights: np.ndarray, ao: np.ndarray, gga: bool) -> None:
        from pyscf.dft import libxc

        exc, vxc = libxc.eval_xc(xc, rho, spin=0, deriv=1)[:2]
        density = rho[0] if gga else rho
        self.energy += float(np.sum(weights * exc * density))
        if gga:
            v_rho, v_sigma = vxc[0], vxc[1]
            self.expectation += float(
                np.sum(weights * (v_rho * density + 2.0 * v_sigma * np.sum(rho[1:4] ** 2, axis=0)))
            )
            scaled = (0.5 * weights * v_rho)[:, None] * ao[0]
            for k in (1, 2, 3):
                scaled += (2.0 * weights * v_sigma * rho[k])[:, None] * ao[k]
            self.half += scaled.T @ ao[0]
        else:
            self.expectation += float(np.sum(weights * vxc[0] * density))
            self.half += 0.5 * (ao.T @ ((weights * vxc[0])[:, None] * ao))

    def matrix(self) -> np.ndarray:
        return self.half + self.half.T
