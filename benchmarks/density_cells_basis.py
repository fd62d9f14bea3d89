"""The fitting basis of cell references (issue 20): for one cell of a reference file, refit its
SCF density into the even-tempered basis at each ratio β and print the fit's own one-step
energy error (the floor of any prediction), its Hartree part and its grid NMAE, in the SCF's
discretisation.

Run:  python benchmarks/density_cells_basis.py CELLS.h5 INDEX BETA [BETA ...]
(BENCHMARKS.md: cells8.h5 30 1.6 1.4 1.3 1.2 and cells8.h5 31 1.6 1.3 1.25)
"""

import dataclasses
import sys
import time
import warnings

from densitylab.density import periodic
from densitylab.density.basis import featomic_order, function_labels
from densitylab.density.reference import load_reference

MEV = 27211.386245988
warnings.filterwarnings("ignore")


def floor(reference, index: int, beta: float) -> None:
    frame = reference.atoms(index)
    settings = dataclasses.replace(reference.settings, etb_beta=beta)
    cell = periodic.build_cell(frame.numbers, frame.positions, frame.cell.array, settings)
    auxcell = periodic.auxiliary_cell(cell, settings)
    started = time.perf_counter()
    density_matrix = reference.density_matrices[index]
    coefficients, _ = periodic.fit_cell_density(cell, auxcell, density_matrix)
    coefficients = coefficients[featomic_order(function_labels(auxcell))]
    densities = periodic.cell_mesh_densities(cell, auxcell, [coefficients], density_matrix)
    scf, fit = periodic.cell_one_step_energies(cell, densities, settings.xc)
    per_atom = MEV / cell.natm
    print(
        f"beta {beta} functions {auxcell.nao_nr()} {time.perf_counter() - started:.1f} s",
        f"floor {(fit['energy'] - scf['energy']) * per_atom:.4f} meV/atom",
        f"hartree {(fit['hartree'] - scf['hartree']) * per_atom:.4f}",
        f"nmae {periodic.mesh_nmae_percents(cell, densities)[0]:.4f} %",
        flush=True,
    )


if __name__ == "__main__":
    data = load_reference(sys.argv[1])
    for value in sys.argv[3:]:
        floor(data, int(sys.argv[2]), float(value))
