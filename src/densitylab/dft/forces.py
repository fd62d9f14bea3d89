"""Nuclear forces of a converged direct-minimisation result, and PySCF set up like densitylab.

Forces are the analytic nuclear gradient of the converged energy. The gradient formula needs
only the converged orbitals, so densitylab's orbitals are handed to PySCF's gradient code
(``nuc_grad_method``) for the same functional, grid and Coulomb treatment: RKS and UKS,
LDA/GGA/hybrids, exact or density-fitted J/K (with the auxiliary basis's response). Rewriting
those integral derivatives would duplicate a well-kept library.

The grid moves with the atoms (Becke partitioning), so the derivative of the energy that is
actually computed includes the grid weights' response; ``grid_response=True`` (the default)
includes it, and the forces then equal finite differences of densitylab's own energy. PySCF's
default leaves it out (a 1e-6 Ha/bohr difference on a level-2 grid).

Units: gradients ∂E/∂R and forces −∂E/∂R in Ha/bohr, one row per atom, (natm, 3).
"""

from __future__ import annotations

import numpy as np

from densitylab.dft.system import DFTSettings


def pyscf_scf(mol, settings: DFTSettings):
    """PySCF's RKS/UKS object (not yet run) with the functional, grid level and Coulomb
    treatment of ``settings``: the same energy expression as densitylab's."""
    from pyscf import dft

    unrestricted = settings.unrestricted or mol.spin != 0
    mf = dft.UKS(mol) if unrestricted else dft.RKS(mol)
    mf.xc = settings.xc
    mf.grids.level = settings.grid_level
    mf.verbose = 0
    if settings.coulomb == "df":
        mf = mf.density_fit(auxbasis=settings.auxbasis)
    return mf


def with_orbitals(mf, result):
    """``mf`` holding a :class:`~densitylab.dft.optimise.DFTResult`'s canonical orbitals,
    energies and occupations, marked converged at its energy."""
    nmo = result.mo_coeff.shape[-1]
    if result.unrestricted:
        occupations = np.zeros((2, nmo))
        for spin, count in enumerate(result.nelec):
            occupations[spin, :count] = 1.0
        mf.mo_coeff, mf.mo_energy = result.mo_coeff, result.mo_energy
    else:
        occupations = np.zeros(nmo)
        occupations[: result.nelec[0]] = 2.0
        mf.mo_coeff, mf.mo_energy = result.mo_coeff[0], result.mo_energy[0]
    mf.mo_occ = occupations
    mf.converged, mf.e_tot = True, result.energy
    return mf


def gradient_of(mf, grid_response: bool = True) -> np.ndarray:
    """∂E/∂R (natm, 3), Ha/bohr, of a converged PySCF mean-field object."""
    method = mf.nuc_grad_method()
    method.verbose = 0
    if hasattr(method, "grid_response"):  # absent for Hartree–Fock, which has no grid
        method.grid_response = grid_response
    return np.asarray(method.kernel())


def nuclear_gradient(mol, settings: DFTSettings, result, grid_response: bool = True) -> np.ndarray:
    """∂E/∂R (natm, 3), Ha/bohr, of densitylab's converged ``result`` for ``mol``."""
    return gradient_of(with_orbitals(pyscf_scf(mol, settings), result), grid_response)


def forces(mol, settings: DFTSettings, result, grid_response: bool = True) -> np.ndarray:
    """−∂E/∂R (natm, 3), Ha/bohr: the forces on the nuclei."""
    return -nuclear_gradient(mol, settings, result, grid_response)
