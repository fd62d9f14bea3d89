"""From fitted or predicted coefficients to densities on a grid, their error, and a total
energy from one Kohn–Sham step.

ρ̃(r) = Σ_P c_P φ_P(r). The one-step (Harris–Foulkes) energy builds the Kohn–Sham potential of
ρ̃ — Hartree through density fitting, J_μν = Σ_P (μν|P) c_P, and XC on the grid — diagonalises
F = H + J[ρ̃] + V_xc[ρ̃] once, occupies the lowest orbitals and evaluates

E_HF = Σ_i f_i ε_i − ∫ v_H[ρ̃] ρ̃ + E_H[ρ̃] + E_xc[ρ̃] − ∫ v_xc[ρ̃] ρ̃ + E_nn,

which is stationary at the self-consistent density: its error is second order in ρ̃ − ρ.
For GGAs ∫ v_xc ρ̃ means Σ_g w_g (v_ρ ρ̃ + 2 v_σ |∇ρ̃|²), the expectation value of the same
potential operator. Energies in hartree; coefficients in featomic order (see
:mod:`densitylab.density.reference`).
"""

from __future__ import annotations

import numpy as np

from densitylab.density.basis import pyscf_coefficients
from densitylab.density.reference import molecular_grid
from densitylab.density.xc import XCAccumulator


def grid_nmae_percent(
    mol, auxmol, coefficients: np.ndarray, density_matrix: np.ndarray, level: int = 3
) -> float:
    """100·∫|ρ̃ − ρ| / N on PySCF's grid, ρ from the SCF density matrix."""
    return grid_nmae_percents(mol, auxmol, [coefficients], density_matrix, level)[0]


GRID_BLOCK = 8192  # grid points per block: aux values of a QM9 molecule in the even-tempered
# basis on its whole grid (2,000 functions, 4 components for GGAs, 250,000 points) are 16 GB


def _grid_blocks(mol, level: int):
    coords, weights = molecular_grid(mol, level)
    for start in range(0, len(weights), GRID_BLOCK):
        yield coords[start : start + GRID_BLOCK], weights[start : start + GRID_BLOCK]


def _screened_values(mol, coords: np.ndarray, deriv: int = 0) -> np.ndarray:
    """Basis function values (and first derivatives) on ``coords``, skipping the shells that
    vanish on each block of points (PySCF's mask): most even-tempered functions are tight and
    live near their own nucleus (unscreened, the aux values took 24 of 35 s of a QM9 molecule's
    one-step energy)."""
    from pyscf.dft import gen_grid, numint

    return numint.eval_ao(mol, coords, deriv=deriv, non0tab=gen_grid.make_mask(mol, coords))


def grid_nmae_percents(
    mol, auxmol, coefficient_sets: list, density_matrix: np.ndarray, level: int = 3
) -> list:
    """:func:`grid_nmae_percent` for several coefficient vectors of one molecule, building the
    grid and the SCF density once (block by block over the grid)."""
    from pyscf.dft import numint

    expansions = [pyscf_coefficients(auxmol, c) for c in coefficient_sets]
    totals = np.zeros(len(expansions))
    for coords, weights in _grid_blocks(mol, level):
        aux_values = _screened_values(auxmol, coords)
        exact = numint.eval_rho(mol, _screened_values(mol, coords), density_matrix)
        totals += [np.sum(weights * np.abs(aux_values @ c - exact)) for c in expansions]
    return [float(100.0 * total / mol.nelectron) for total in totals]


def one_step_energy(mol, auxmol, coefficients: np.ndarray, xc: str, level: int = 3) -> dict:
    """Harris–Foulkes total energy and its components from the density of ``coefficients``."""
    return one_step_energies(mol, auxmol, [coefficients], xc, level)[0]


def one_step_energies(
    mol, auxmol, coefficient_sets: list, xc: str, level: int = 3, density_matrix=None
) -> list:
    """:func:`one_step_energy` for several coefficient vectors of one molecule (a prediction
    and the reference fit, say) in one pass over the grid: the three-centre integrals, the
    AO and auxiliary values of each block are computed once for all of them (they are most of
    the cost; a QM9 molecule's prediction, floor and grid errors took 34 s done one by one).
    With the SCF ``density_matrix`` every result also holds its ``grid_nmae_percent``."""
    import scipy.linalg
    from pyscf import df, lib
    from pyscf.dft import libxc, numint

    expansions = [pyscf_coefficients(auxmol, c) for c in coefficient_sets]
    three_centre = df.incore.aux_e2(mol, auxmol, "int3c2e", aosym="s2ij")  # (nao(nao+1)/2, naux)
    metric = auxmol.intor("int2c2e")
    gga = libxc.xc_type(xc) == "GGA"
    potentials = [XCAccumulator(mol.nao_nr()) for _ in expansions]
    nmae = np.zeros(len(expansions))
    for coords, weights in _grid_blocks(mol, level):
        aux_values = _screened_values(auxmol, coords, 1 if gga else 0)
        ao = _screened_values(mol, coords, 1 if gga else 0)
        if density_matrix is not None:
            exact = numint.eval_rho(mol, ao[0] if gga else ao, density_matrix)
        for index, (c, potential) in enumerate(zip(expansions, potentials, strict=True)):
            rho = aux_values @ c if not gga else np.einsum("kgp,p->kg", aux_values, c)
            potential.add(xc, rho, weights, ao, gga)
            if density_matrix is not None:
                nmae[index] += np.sum(weights * np.abs((rho[0] if gga else rho) - exact))
    core = mol.intor_symmetric("int1e_kin") + mol.intor_symmetric("int1e_nuc")
    overlap = mol.intor_symmetric("int1e_ovlp")
    occupied = mol.nelectron // 2
    results = []
    for index, (c, potential) in enumerate(zip(expansions, potentials, strict=True)):
        hartree_energy = 0.5 * c @ metric @ c
        fock = core + lib.unpack_tril(three_centre @ c) + potential.matrix()
        energies, orbitals = scipy.linalg.eigh(fock, overlap)
        band = 2.0 * float(np.sum(energies[:occupied]))
        total = band - hartree_energy + potential.energy - potential.expectation + mol.energy_nuc()
        result = {
            "energy": float(total),
            "band_energy": band,
            "hartree": float(hartree_energy),
            "xc": potential.energy,
            "nuclear_repulsion": float(mol.energy_nuc()),
            "homo_lumo_gap": float(energies[occupied] - energies[occupied - 1]),
            "output_density_matrix": 2.0 * orbitals[:, :occupied] @ orbitals[:, :occupied].T,
        }
        if density_matrix is not None:
            result["grid_nmae_percent"] = float(100.0 * nmae[index] / mol.nelectron)
        results.append(result)
    return results


def density_slices(
    mol, auxmol, predicted: np.ndarray, fitted: np.ndarray, density_matrix: np.ndarray, points=120
):
    """ρ_pred − ρ_SCF and ρ_fit − ρ_SCF on the plane through the centre of the atoms spanned by
    their two principal axes. Returns (extent bohr, {label: (n, n)}, atoms projected (natm, 2))."""
    from pyscf.dft import numint

    coordinates = mol.atom_coords()
    centre = coordinates.mean(axis=0)
    _, _, axes = np.linalg.svd(coordinates - centre)
    extent = float(np.max(np.abs((coordinates - centre) @ axes[:2].T))) + 3.0
    grid = np.linspace(-extent, extent, points)
    u, v = np.meshgrid(grid, grid, indexing="ij")
    plane = centre + u.reshape(-1, 1) * axes[0] + v.reshape(-1, 1) * axes[1]
    exact = numint.eval_rho(mol, numint.eval_ao(mol, plane), density_matrix)
    aux_values = numint.eval_ao(auxmol, plane)
    slices = {
        "prediction − SCF": (aux_values @ pyscf_coefficients(auxmol, predicted) - exact).reshape(
            points, points
        ),
        "reference fit − SCF": (aux_values @ pyscf_coefficients(auxmol, fitted) - exact).reshape(
            points, points
        ),
    }
    return extent, slices, (coordinates - centre) @ axes[:2].T
