"""A Coulomb term in the cell fit's metric (issue 20): minimise ∫δρ² + λ·2E_H[δρ], the Hartree
part on the mesh's G vectors below GMAX bohr⁻¹, for each λ, and print the fit's one-step
energy error, its Hartree part and its grid NMAE.

Run:  python benchmarks/density_cells_coulomb_fit.py CELLS.h5 INDEX BETA GMAX LAMBDA [LAMBDA ...]
(BENCHMARKS.md: cells8.h5 30 1.6 4 0 1 10 100 1000)
"""

import dataclasses
import sys
import warnings

import numpy as np
from pyscf.pbc.df import ft_ao

from densitylab.density import periodic
from densitylab.density.basis import featomic_order, function_labels
from densitylab.density.reference import load_reference

MEV = 27211.386245988
warnings.filterwarnings("ignore")


def main() -> None:
    reference, index = load_reference(sys.argv[1]), int(sys.argv[2])
    beta, largest = float(sys.argv[3]), float(sys.argv[4])
    frame = reference.atoms(index)
    settings = dataclasses.replace(reference.settings, etb_beta=beta)
    cell = periodic.build_cell(frame.numbers, frame.positions, frame.cell.array, settings)
    auxcell = periodic.auxiliary_cell(cell, settings)
    density_matrix = reference.density_matrices[index]
    plain, overlap = periodic.fit_cell_density(cell, auxcell, density_matrix)
    projections = overlap @ plain
    rho = periodic.cell_mesh_densities(cell, auxcell, [], density_matrix)[0]
    vectors = cell.get_Gv(cell.mesh)
    squares = (vectors**2).sum(1)
    kept = (squares > 0) & (squares < largest**2)
    transforms = ft_ao.ft_ao(auxcell, vectors[kept])
    weights = 4 * np.pi / cell.vol / squares[kept]
    weighted = (transforms.conj() * weights[:, None]).T
    coulomb = (weighted @ transforms).real
    coulomb_projections = (weighted @ (rho[kept] * cell.vol / rho.size)).real
    order = featomic_order(function_labels(auxcell))
    per_atom = MEV / cell.natm
    print("G vectors kept", int(kept.sum()), flush=True)
    for value in sys.argv[5:]:
        weight = float(value)
        coefficients = np.linalg.solve(overlap + weight * coulomb, projections + weight * coulomb_projections)
        densities = periodic.cell_mesh_densities(cell, auxcell, [coefficients[order]], density_matrix)
        scf, fit = periodic.cell_one_step_energies(cell, densities, settings.xc)
        print(
            f"lambda {weight} floor {(fit['energy'] - scf['energy']) * per_atom:.4f} meV/atom",
            f"hartree {(fit['hartree'] - scf['hartree']) * per_atom:.4f}",
            f"nmae {periodic.mesh_nmae_percents(cell, densities)[0]:.4f} %",
            flush=True,
        )


if __name__ == "__main__":
    main()
