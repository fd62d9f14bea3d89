"""Independent reference: dense many-electron Hamiltonians in the full Nx^N product space,
restricted to spin-block antisymmetric states built here from explicit permutations (nothing
shared with densitylab.model1d.fock)."""

from __future__ import annotations

import itertools

import numpy as np
import scipy.sparse as sps


def dense_kinetic(points: int, dx: float, stencil_weights: list[float]) -> np.ndarray:
    half = len(stencil_weights) // 2
    second = np.zeros((points, points))
    for offset, weight in zip(range(-half, half + 1), stencil_weights, strict=True):
        second += np.diag(np.full(points - abs(offset), weight), k=offset)
    return -0.5 * second / dx**2


def full_hamiltonian(kinetic: np.ndarray, v_ext: np.ndarray, w: np.ndarray, electrons: int) -> sps.csr_matrix:
    points = len(v_ext)
    h = sps.csr_matrix(kinetic + np.diag(v_ext))
    identity = sps.identity(points, format="csr")
    total = sps.csr_matrix((points**electrons, points**electrons))
    for k in range(electrons):
        factors = [identity] * electrons
        factors[k] = h
        term = factors[0]
        for factor in factors[1:]:
            term = sps.kron(term, factor, format="csr")
        total = total + term
    grids = np.meshgrid(*[np.arange(points)] * electrons, indexing="ij")
    pair = np.zeros([points] * electrons)
    for a, b in itertools.combinations(range(electrons), 2):
        pair += w[grids[a], grids[b]]
    return total + sps.diags(pair.ravel())


def sector_basis(points: int, spins: str) -> np.ndarray:
    """Orthonormal basis (columns) of functions antisymmetric under exchange of equal-spin
    coordinates, for the electron order given by ``spins``."""
    electrons = len(spins)
    groups = [[i for i, s in enumerate(spins) if s == spin] for spin in "ud"]
    same_spin_permutations = []
    for permutation in itertools.permutations(range(electrons)):
        if all(spins[p] == spins[i] for i, p in enumerate(permutation)):
            inversions = sum(1 for a, b in itertools.combinations(permutation, 2) if a > b)
            same_spin_permutations.append((permutation, (-1) ** inversions))
    choices = [list(itertools.combinations(range(points), len(group))) for group in groups]
    columns = []
    for up_tuple, down_tuple in itertools.product(*choices):
        coordinates = [0] * electrons
        for position, value in zip(groups[0], up_tuple, strict=True):
            coordinates[position] = value
        for position, value in zip(groups[1], down_tuple, strict=True):
            coordinates[position] = value
        vector = {}
        for permutation, sign in same_spin_permutations:
            permuted = tuple(coordinates[p] for p in permutation)
            index = np.ravel_multi_index(permuted, [points] * electrons)
            vector[index] = vector.get(index, 0) + sign
        columns.append(vector)
    basis = np.zeros((points**electrons, len(columns)))
    for c, vector in enumerate(columns):
        for index, value in vector.items():
            basis[index, c] = value
    return basis / np.linalg.norm(basis, axis=0)


def reference_energies(kinetic, v_ext, w, spins: str, count: int) -> np.ndarray:
    hamiltonian = full_hamiltonian(kinetic, v_ext, w, len(spins))
    basis = sector_basis(len(v_ext), spins)
    projected = basis.T @ (hamiltonian @ basis)
    return np.linalg.eigvalsh((projected + projected.T) / 2)[:count]
