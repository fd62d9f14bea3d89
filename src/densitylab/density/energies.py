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

from densitylab.density.reference import featomic_order, function_labels, molecular_grid


def pyscf_coefficients(auxmol, coefficients: np.ndarray) -> np.ndarray:
    """Coefficients in featomic order → PySCF's auxiliary order."""
    order = featomic_order(function_labels(auxmol))
    result = np.empty_like(coefficients)
    result[order] = coefficients
    return result


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
    import scipy.linalg
    from pyscf import df
    from pyscf.dft import libxc

    c = pyscf_coefficients(auxmol, coefficients)
    nao = mol.nao_nr()
    three_centre = df.incore.aux_e2(mol, auxmol, "int3c2e", aosym="s1").reshape(nao, nao, -1)
    hartree_matrix = three_centre @ c
    metric = auxmol.intor("int2c2e")
    hartree_energy = 0.5 * c @ metric @ c
    gga = libxc.xc_type(xc) == "GGA"
    vxc_matrix, xc_energy, potential_times_density = np.zeros((nao, nao)), 0.0, 0.0
    for coords, weights in _grid_blocks(mol, level):
        aux_values = _screened_values(auxmol, coords, 1 if gga else 0)
        ao = _screened_values(mol, coords, 1 if gga else 0)
        if gga:
            rho = np.einsum("kgp,p->kg", aux_values, c)
            exc, vxc = libxc.eval_xc(xc, rho, spin=0, deriv=1)[:2]
            v_rho, v_sigma = vxc[0], vxc[1]
            vxc_matrix += ao[0].T @ ((weights * v_rho)[:, None] * ao[0])
            gradient_part = sum(
                ao[k].T @ ((2.0 * weights * v_sigma * rho[k])[:, None] * ao[0]) for k in (1, 2, 3)
            )
            vxc_matrix += gradient_part + gradient_part.T
            density = rho[0]
            potential_times_density += np.sum(
                weights * (v_rho * rho[0] + 2.0 * v_sigma * np.sum(rho[1:4] ** 2, axis=0))
            )
        else:
            density = aux_values @ c
            exc, vxc = libxc.eval_xc(xc, density, spin=0, deriv=1)[:2]
            vxc_matrix += ao.T @ ((weights * vxc[0])[:, None] * ao)
            potential_times_density += np.sum(weights * vxc[0] * density)
        xc_energy += float(np.sum(weights * exc * density))
    core = mol.intor_symmetric("int1e_kin") + mol.intor_symmetric("int1e_nuc")
    fock = core + hartree_matrix + vxc_matrix
    overlap = mol.intor_symmetric("int1e_ovlp")
    energies, orbitals = scipy.linalg.eigh(fock, overlap)
    occupied = mol.nelectron // 2
    band = 2.0 * float(np.sum(energies[:occupied]))
    density_matrix = 2.0 * orbitals[:, :occupied] @ orbitals[:, :occupied].T
    total = (
        band - 2.0 * hartree_energy + hartree_energy + xc_energy - potential_times_density + mol.energy_nuc()
    )
    return {
        "energy": float(total),
        "band_energy": band,
        "hartree": float(hartree_energy),
        "xc": xc_energy,
        "nuclear_repulsion": float(mol.energy_nuc()),
        "homo_lumo_gap": float(energies[occupied] - energies[occupied - 1]),
        "output_density_matrix": density_matrix,
    }


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
