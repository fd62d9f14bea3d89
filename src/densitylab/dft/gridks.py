"""The closed-shell Kohn–Sham energy of orbitals evaluated on a molecular grid, for orbitals the
analytic integrals no longer cover: a basis whose exponents move, and flow orbitals
ψ_i(r) = Σ_μ C_μi φ_μ(f(r)).

On a Becke grid {r_g, w_g} (PySCF's), with ψ and ∇ψ from JAX (∇ through the flow by
forward-mode differentiation):

- kinetic T = Σ_g w_g Σ_i |∇ψ_i(r_g)|² (two electrons per orbital, times ½);
- nuclear attraction Σ_g w_g ρ_g v_nuc(r_g), v_nuc = −Σ_A Z_A/|r − R_A|;
- Hartree by robust density fitting on the grid in a fixed auxiliary basis {χ_P}:
  b_P = Σ_g w_g ρ_g V_P(r_g), with V_P(r) = ∫ χ_P(r')/|r − r'| dr' (analytic, from PySCF),
  E_H = ½ bᵀ J⁻¹ b (J the aux Coulomb metric). This is a lower bound on the exact Hartree
  energy with an error second order in the fitting error;
- exchange–correlation with libxc (:mod:`densitylab.dft.xc`).

Minibatches: two independent halves A and B, each drawn with replacement from p_g ∝ w_g ρ₀_g
(mixed with w_g for the tails), weights w_g/(m p_g). The per-point terms average the halves
and E_H = ½ b_Aᵀ J⁻¹ b_B, so the estimate of every term is unbiased.

Orbitals: C = L_S(θ)⁻ᵀ W L_G⁻ᵀ with W = U_occ + U_vir κ (S(θ) = L_S L_Sᵀ the analytic overlap of
the current basis, G = WᵀW), orthonormal in S(θ) for every κ and θ.
Energies in hartree, lengths in bohr.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from densitylab.errors import require

AUX_BYTES_LIMIT = 2.0e9  # the aux potentials on the grid (ngrid × naux doubles)


@dataclass(frozen=True)
class GridProblem:
    """Everything about a molecule that the orbitals do not change.

    Attributes:
        coords: (ngrid, 3) grid points (bohr); weights: (ngrid,) (bohr³).
        v_nuc: (ngrid,) nuclear potential at the points (Ha).
        aux_potential: (ngrid, naux) V_P(r_g); metric_cholesky: (naux, naux) lower L, J = LLᵀ.
        nocc: doubly occupied orbitals; e_nuc: nuclear repulsion (Ha).
        xc: libxc name; gga: whether ∇ρ is needed.
    """

    coords: np.ndarray
    weights: np.ndarray
    v_nuc: np.ndarray
    aux_potential: np.ndarray
    metric_cholesky: np.ndarray
    nocc: int
    e_nuc: float
    xc: str
    gga: bool

    @property
    def naux(self) -> int:
        return self.aux_potential.shape[1]


def grid_problem(mol, xc: str, grid_level: int, auxbasis: str) -> GridProblem:
    """Build the grid, nuclear potential and auxiliary potentials of ``mol`` (closed shell)."""
    from pyscf import gto
    from pyscf.dft import gen_grid, libxc

    from densitylab.dft.system import auxiliary_molecule

    require(mol.spin == 0 and mol.nelectron % 2 == 0, "spin", "a closed-shell molecule (spin 0)", mol.spin)
    grids = gen_grid.Grids(mol)
    grids.level = grid_level
    grids.build(with_non0tab=False)
    auxmol = auxiliary_molecule(mol, auxbasis)
    require(
        grids.weights.size * auxmol.nao * 8 <= AUX_BYTES_LIMIT,
        "grid_level",
        f"a grid whose auxiliary potentials fit in {AUX_BYTES_LIMIT / 1e9:.0f} GB "
        f"({grids.weights.size} points × {auxmol.nao} auxiliary functions)",
        grid_level,
    )
    charges = mol.atom_charges()
    distances = np.linalg.norm(grids.coords[:, None, :] - mol.atom_coords()[None, :, :], axis=-1)
    v_nuc = -(charges[None, :] / distances).sum(axis=1)
    potentials = []
    for start in range(0, grids.weights.size, 20000):
        points = gto.fakemol_for_charges(grids.coords[start : start + 20000])
        potentials.append(gto.mole.intor_cross("int2c2e", points, auxmol))
    metric = auxmol.intor("int2c2e")

    return GridProblem(
        coords=np.asarray(grids.coords),
        weights=np.asarray(grids.weights),
        v_nuc=v_nuc,
        aux_potential=np.vstack(potentials),
        metric_cholesky=np.linalg.cholesky(metric),
        nocc=mol.nelectron // 2,
        e_nuc=float(mol.energy_nuc()),
        xc=xc,
        gga=libxc.xc_type(xc) == "GGA",
    )


def orbital_coefficients(jnp, overlap, reference, kappa, nocc: int):
    """Occupied orbitals (nao, nocc) orthonormal in ``overlap``: L_S⁻ᵀ W L_G⁻ᵀ.

    ``reference``: (nao, nao) orthonormal basis in the frame of the Cholesky factor of the
    starting overlap (occupied columns first); ``kappa``: (nao − nocc, nocc).
    """
    import jax.scipy.linalg as jsl

    lower = jnp.linalg.cholesky(overlap)
    w = reference[:, :nocc] + reference[:, nocc:] @ kappa
    gram = jnp.linalg.cholesky(w.T @ w)
    w = jsl.solve_triangular(gram, w.T, lower=True).T
    return jsl.solve_triangular(lower.T, w, lower=False)


def orbital_fields(jax, jnp, values_at, coefficients, points):
    """ψ (npoints, nocc) and ∇ψ (3, npoints, nocc) of ψ(r) = values_at(r) @ C, where
    ``values_at`` maps points (npoints, 3) to AO values (through a flow if any)."""

    def psi(p):
        return values_at(p) @ coefficients

    value, linear = jax.linearize(psi, points)
    gradient = jnp.stack([linear(jnp.zeros_like(points).at[:, axis].set(1.0)) for axis in range(3)])
    return value, gradient


def point_terms(jnp, xc_energy, problem: GridProblem, psi, grad_psi, weights, v_nuc):
    """Kinetic, nuclear and xc energies on a set of points, and w·ρ for the Hartree fit."""
    rho = 2.0 * jnp.sum(psi**2, axis=1)
    kinetic = jnp.sum(weights * jnp.sum(grad_psi**2, axis=(0, 2)))
    nuclear = jnp.sum(weights * rho * v_nuc)
    if problem.gga:
        grad_rho = 4.0 * jnp.sum(psi[None] * grad_psi, axis=2)
        rho_in = jnp.concatenate([rho[None], grad_rho], axis=0)
    else:
        rho_in = rho[None]
    return {"kinetic": kinetic, "nuclear": nuclear, "xc": xc_energy(rho_in, weights)}, weights * rho


COMPONENTS = ("kinetic", "nuclear", "hartree", "xc", "nuclear_repulsion")


def energy_terms(jax, jnp, xc_energy, problem: GridProblem, values_at, coefficients, half_a, half_b=None):
    """The energy components (dict, hartree) from one set of points (``half_b`` None: the
    deterministic full grid) or two independent halves (each ``(points, weights, v_nuc,
    aux_potential)``)."""
    import jax.scipy.linalg as jsl

    cholesky = jnp.asarray(problem.metric_cholesky)
    fitted = []
    terms = {}
    halves = [half_a] if half_b is None else [half_a, half_b]
    for points, weights, v_nuc, aux in halves:
        psi, grad_psi = orbital_fields(jax, jnp, values_at, coefficients, points)
        half_terms, weighted_rho = point_terms(jnp, xc_energy, problem, psi, grad_psi, weights, v_nuc)
        for name, value in half_terms.items():
            terms[name] = terms.get(name, 0.0) + value / len(halves)
        fitted.append(jsl.solve_triangular(cholesky, aux.T @ weighted_rho, lower=True))
    terms["hartree"] = 0.5 * jnp.dot(fitted[0], fitted[-1])
    terms["nuclear_repulsion"] = problem.e_nuc
    return terms


def sampling_probabilities(problem: GridProblem, magnitude: np.ndarray, tail: float = 0.1) -> np.ndarray:
    """p_g ∝ (1 − tail)·|w_g| m_g/Σ|w|m + tail·|w_g|/Σ|w|, for ``magnitude`` m ≥ 0 on the grid: the size of
    the energy integrand at the start (:func:`integrand_magnitude`), so that the points that
    carry the energy are drawn most and the tails are still drawn."""
    size = np.abs(problem.weights)  # PySCF's Becke weights include a few negative ones
    weighted = size * np.maximum(magnitude, 0.0)
    p = (1.0 - tail) * weighted / weighted.sum() + tail * size / size.sum()
    return p / p.sum()


def integrand_magnitude(problem: GridProblem, tau: np.ndarray, density: np.ndarray) -> np.ndarray:
    """|energy integrand| estimate per point: τ + ρ(|v_nuc| + 1) (τ = ½Σ|∇ψ|², ρ the density), the
    kinetic and nuclear terms that dominate near the nuclei plus a Hartree/xc-sized rest."""
    return tau + density * (np.abs(problem.v_nuc) + 1.0)


def sample_half(problem: GridProblem, probabilities: np.ndarray, size: int, rng: np.random.Generator):
    """One half-batch: ``size`` points drawn with replacement, with unbiased weights."""
    index = rng.choice(probabilities.size, size=size, p=probabilities)
    weights = problem.weights[index] / (size * probabilities[index])
    return tuple(
        np.ascontiguousarray(a)
        for a in (problem.coords[index], weights, problem.v_nuc[index], problem.aux_potential[index])
    )


def full_grid(problem: GridProblem):
    """The deterministic 'half': every point with its weight."""
    return problem.coords, problem.weights, problem.v_nuc, problem.aux_potential
