"""The auxiliary basis as the learning sees it, for molecules and cells alike: every function
labelled (atom, l, n, m), featomic's order of them, and their integrals ∫φ_P."""

from __future__ import annotations

import numpy as np

from densitylab.errors import require


def function_labels(auxmol) -> np.ndarray:
    """(naux, 4) integer labels (atom, l, n, m) of the auxiliary functions in PySCF's order, with
    n the radial channel of that (atom, l) and m the real-harmonic index."""
    labels = []
    for atom in range(auxmol.natm):
        channel: dict[int, int] = {}
        for shell in range(auxmol.nbas):
            if auxmol.bas_atom(shell) != atom:
                continue
            l = auxmol.bas_angular(shell)
            for _ in range(auxmol.bas_nctr(shell)):
                n = channel.get(l, 0)
                channel[l] = n + 1
                ms = (1, -1, 0) if l == 1 else tuple(range(-l, l + 1))
                labels += [(atom, l, n, m) for m in ms]
    labels = np.array(labels, dtype=np.int64)
    # PySCF lays out shells atom by atom in _bas order; check that our walk matches its offsets
    require(len(labels) == auxmol.nao_nr(), "auxbasis", "a basis with one contraction set per shell", None)
    return labels


def featomic_order(labels: np.ndarray) -> np.ndarray:
    """Permutation from PySCF's auxiliary order to (atom, l, n, m = −l…l) order."""
    return np.lexsort((labels[:, 3], labels[:, 2], labels[:, 1], labels[:, 0]))


def auxiliary_integrals(auxmol) -> np.ndarray:
    """∫φ_P d³r (naux,), analytically: only s functions integrate to non-zero, each primitive
    to (π/α)^{3/2} times libcint's s-function factor 1/√(4π) (equal to quadrature on a fine
    grid to 1e-7, tested; the quadrature it replaces held every function on the whole grid)."""
    integrals = np.zeros(auxmol.nao_nr())
    offsets = auxmol.ao_loc_nr()
    for shell in range(auxmol.nbas):
        if auxmol.bas_angular(shell) == 0:
            coefficients = auxmol._libcint_ctr_coeff(shell)  # (primitives, contractions)
            values = (np.pi / auxmol.bas_exp(shell)) ** 1.5 @ coefficients / np.sqrt(4 * np.pi)
            integrals[offsets[shell] : offsets[shell + 1]] = values
    return integrals


def pyscf_coefficients(auxiliary, coefficients: np.ndarray) -> np.ndarray:
    """Coefficients in featomic order → the PySCF order of ``auxiliary`` (molecule or cell)."""
    order = featomic_order(function_labels(auxiliary))
    result = np.empty_like(coefficients)
    result[order] = coefficients
    return result


def overlap_matrix(auxiliary) -> np.ndarray:
    """S_PQ (naux, naux) in PySCF's order: ∫φ_P φ_Q for a molecule, summed over the lattice
    (Σ_T ⟨φ_P|φ_Q(· − T)⟩) for a ``pbc`` cell."""
    from pyscf.pbc import gto as pbc_gto

    if isinstance(auxiliary, pbc_gto.Cell):
        return auxiliary.pbc_intor("int1e_ovlp", hermi=1)
    return auxiliary.intor("int1e_ovlp")


def featomic_overlap(auxiliary) -> np.ndarray:
    """:func:`overlap_matrix` in featomic order."""
    order = featomic_order(function_labels(auxiliary))
    return overlap_matrix(auxiliary)[np.ix_(order, order)]
