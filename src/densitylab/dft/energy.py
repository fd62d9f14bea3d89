"""The Kohn–Sham total energy as a JAX function of the orbitals, and of their QR parameters.

Orbitals: C_σ (nao, n_σ) with C_σᵀ S C_σ = 1, built as C = X·Q(W) from a free matrix W
(nmo, n_σ), Q its thin QR factor and X the orthogonaliser (``KSSystem.orthogonaliser``), as in
D4FT. Spin density matrices D_σ = C_σ C_σᵀ; for RKS both spins share C.

E = tr(H (D_α + D_β)) + ½ (ρ|ρ) − (a/2) Σ_σ tr(K[D_σ] D_σ) + E_xc[ρ_α, ρ_β] + E_nn

with a the functional's exact-exchange fraction. Coulomb and exchange use the density-fitting
factor B (so (ρ|ρ) = Σ_P (Σ_μν B_Pμν D_μν)² and tr(K[D] D) = Σ_P ‖Cᵀ B_P C‖²) or the exact
ERIs. E_xc is libxc through :mod:`densitylab.dft.xc`. All energies in hartree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from densitylab.dft.compiled import to_device
from densitylab.dft.system import KSSystem
from densitylab.dft.xc import xc_energy_function
from densitylab.errors import require
from densitylab.jaxsetup import jax_numpy

COMPONENTS = ("kinetic", "nuclear_attraction", "coulomb", "exact_exchange", "xc", "nuclear_repulsion")
EXCHANGE_CHUNK_ELEMENTS = 1_000_000  # aux functions per exchange chunk × nao² (8 MB per block)
COULOMB_CHUNK_ELEMENTS = 25_000_000  # aux functions per Coulomb chunk × AO pairs (200 MB of B)


class Operands(NamedTuple):
    """The arrays the energy reads (a JAX pytree; see :class:`~densitylab.dft.system.KSSystem`)."""

    core_hamiltonian: object
    kinetic: object
    orthogonaliser: object
    ao_values: object
    grid_weights: object
    df_factor: object  # (naux, npair) or a (0, npair) placeholder
    eri: object  # (nao,)*4 or a (0,) placeholder


@dataclass(frozen=True)
class EnergyModel:
    """Static description of the energy: which terms, how, and for which spin treatment."""

    xc: str
    family: str
    exact_exchange: float
    unrestricted: bool
    coulomb: str
    nao: int
    naux: int
    nuclear_repulsion: float
    xc_grid: str = "stored"
    df_storage: str = "device"

    @property
    def host_coulomb(self) -> bool:
        """J and K are built on the host by PySCF from the density matrices (DF tensor on disk)."""
        return self.coulomb == "df" and self.df_storage == "disk"

    @staticmethod
    def of(system: KSSystem) -> EnergyModel:
        return EnergyModel(
            xc=system.functional.name,
            family=system.functional.family,
            exact_exchange=system.functional.exact_exchange,
            unrestricted=system.unrestricted,
            coulomb=system.settings.coulomb,
            nao=system.compiled_nao,
            naux=0 if system.df_factor is None else system.df_factor.shape[0],
            nuclear_repulsion=system.nuclear_repulsion,
            xc_grid=system.xc_grid,
            df_storage=system.settings.df_storage,
        )


def operands(system: KSSystem) -> Operands:
    """The system's arrays as JAX arrays (placed on the default device once); for a bucketed
    system (:mod:`~densitylab.dft.buckets`) H, T and X with zero ghost rows and columns."""
    nao = system.compiled_nao
    df = system.df_factor if system.df_factor is not None else np.zeros((0, nao * (nao + 1) // 2))
    eri = system.eri if system.eri is not None else np.zeros((0,))
    padding = system.padding
    padded = (lambda m: m) if padding is None else padding.matrix
    return Operands(
        core_hamiltonian=to_device(padded(system.core_hamiltonian)),
        kinetic=to_device(padded(system.kinetic)),
        orthogonaliser=to_device(padded(system.orthogonaliser)),
        ao_values=system.ao_values,
        grid_weights=to_device(system.grid_weights),
        df_factor=to_device(df),
        eri=to_device(eri),
    )


def _packed(jnp, matrix, nao: int):
    """Lower triangle of a symmetric matrix, off-diagonal entries doubled: B·pack(D) = Σ_μν B_μν D_μν."""
    rows, cols = np.tril_indices(nao)
    factor = np.where(rows == cols, 1.0, 2.0)
    return matrix[rows, cols] * factor


def _unpack_index(nao: int) -> np.ndarray:
    """(nao, nao) positions of each (μ, ν) in PySCF's packed lower triangle (s2ij order)."""
    rows, cols = np.tril_indices(nao)
    index = np.empty((nao, nao), dtype=np.int64)
    index[rows, cols] = np.arange(rows.size)
    index[cols, rows] = np.arange(rows.size)
    return index


def orbitals_from_parameters(jnp, orthogonaliser, parameters):
    """C = X·Q(W): (nao, n) orbitals, S-orthonormal, from free W (nmo, n)."""
    q, _ = jnp.linalg.qr(parameters)
    return orthogonaliser @ q


def _chunk_density(jnp, ao_chunk, values):
    """ρ and (for GGA) ∇ρ on one chunk from the AO values and their products with orbitals
    (or with a density matrix): (ncomp, chunk)."""
    density = jnp.sum(ao_chunk[0] * values, axis=1)
    if ao_chunk.shape[0] == 1:
        return density[None]
    gradients = [2.0 * jnp.sum(ao_chunk[k] * values, axis=1) for k in (1, 2, 3)]
    return jnp.stack([density, *gradients])


def _over_chunks(jax, jnp, ao_values, per_chunk):
    """Apply ``per_chunk`` (ncomp, chunk, nao) → (ncomp', chunk) to each chunk, rematerialised in
    the backward pass; returns (ncomp', nchunk·chunk)."""
    stacked = jax.lax.map(jax.checkpoint(per_chunk), ao_values)
    return jnp.transpose(stacked, (1, 0, 2)).reshape(stacked.shape[1], -1)


def grid_density(jnp, ao_values, orbitals):
    """ρ and (for GGA) ∇ρ of one spin on the grid, (ncomp, nchunk·chunk), from orbitals C (nao, n):
    ρ = Σ_i φ_i², ∇ρ = 2 Σ_i φ_i ∇φ_i with φ = AO·C — cost ∝ points·nao·n."""
    jax, _ = jax_numpy()

    def per_chunk(ao_chunk):
        phi = ao_chunk[0] @ orbitals
        density = jnp.sum(phi * phi, axis=1)
        if ao_chunk.shape[0] == 1:
            return density[None]
        gradients = [2.0 * jnp.sum(phi * (ao_chunk[k] @ orbitals), axis=1) for k in (1, 2, 3)]
        return jnp.stack([density, *gradients])

    return _over_chunks(jax, jnp, ao_values, per_chunk)


def grid_density_from_dm(jnp, ao_values, density_matrix):
    """As :func:`grid_density` from a symmetric density matrix D (nao, nao) — cost ∝ points·nao²."""
    jax, _ = jax_numpy()
    return _over_chunks(
        jax, jnp, ao_values, lambda chunk: _chunk_density(jnp, chunk, chunk[0] @ density_matrix)
    )


def grid_density_adjoint(jnp, ao_values, cotangent):
    """The adjoint of the linear map D ↦ (ρ, ∇ρ)[D] (:func:`grid_density_from_dm`): for a
    cotangent (ncomp, nchunk·chunk) = ∂E/∂(ρ, ∇ρ) on the grid, the symmetric ∂E/∂D (nao, nao),

        M = Σ_g a_g φ φᵀ + Σ_k b_k,g (∇_kφ φᵀ + φ ∇_kφᵀ) = ½(m + mᵀ),  m = Φᵀ(a Φ + 2 Σ_k b_k ∇_kΦ),

    one GEMM per chunk (the XC potential matrix, as PySCF builds it). JAX's VJP of
    :func:`grid_density` gives the same gradient but recomputes the density and transposes every
    product: 2.6–8× slower for GGAs on the CPU, though faster for LDAs, whose adjoint costs
    points·nao² against its 2·points·nao·n_occ (benchmarks/dft_backward.py)."""
    jax, _ = jax_numpy()
    nchunk, ncomp, chunk, nao = ao_values.shape
    per_chunk = jnp.transpose(cotangent.reshape(ncomp, nchunk, chunk), (1, 0, 2))

    def step(total, inputs):
        ao_chunk, weights = inputs
        weighted = weights[0][:, None] * ao_chunk[0]
        for k in range(1, ncomp):  # broadcasts: XLA's CPU einsum over k was 4× slower here
            weighted = weighted + 2.0 * weights[k][:, None] * ao_chunk[k]
        return total + ao_chunk[0].T @ weighted, None

    product, _ = jax.lax.scan(step, jnp.zeros((nao, nao), ao_values.dtype), (ao_values, per_chunk))
    return 0.5 * (product + product.T)


def _sum_over_aux_chunks(jax, jnp, df_factor, chunk: int, contraction, zero=None):
    """Σ over chunks of ``chunk`` auxiliary functions (rows of B) of ``contraction(rows, fresh)``,
    a scalar or, with ``zero`` (zeros of its shape), an array. ``fresh`` (chunk,) is 1 for the
    rows this chunk counts and 0 for rows an earlier chunk counted (the last chunk starts early
    so as to stay inside B, instead of padding B, which would copy it). A rematerialised scan
    step slices its rows out of B, so no operation ever reads or differentiates the whole of B
    at once: XLA's GPU autotuner allocates a scratch copy of every operand it tunes, which for
    the whole B does not fit beside it."""
    naux = df_factor.shape[0]
    chunk = max(1, min(naux, chunk))

    @jax.checkpoint
    def body(total, index):
        start = jnp.minimum(index * chunk, naux - chunk)
        rows = jax.lax.dynamic_slice_in_dim(df_factor, start, chunk, axis=0)
        fresh = (start + jnp.arange(chunk) >= index * chunk).astype(rows.dtype)
        return total + contraction(rows, fresh), None

    start = jnp.zeros(()) if zero is None else zero
    total, _ = jax.lax.scan(body, start, jnp.arange(-(-naux // chunk)))
    return total


def _exchange_chunk(model: EnergyModel) -> int:
    return max(1, EXCHANGE_CHUNK_ELEMENTS // max(model.nao * model.nao, 1))


def _coulomb_df(jax, jnp, model: EnergyModel, df_factor, density_matrix):
    """½ Σ_P (B_P · D)², B·D by chunks of auxiliary functions (:func:`_sum_over_aux_chunks`)."""
    packed = _packed(jnp, density_matrix, model.nao)
    chunk = max(1, COULOMB_CHUNK_ELEMENTS // max(packed.shape[0], 1))

    def contraction(rows, fresh):
        fitted = rows @ packed
        return 0.5 * jnp.sum(fresh * fitted * fitted)

    return _sum_over_aux_chunks(jax, jnp, df_factor, chunk, contraction)


def _exchange_matrix(jax, jnp, model: EnergyModel, df_factor, orbitals=None, density_matrix=None):
    """K = Σ_P B_P D B_P (nao, nao) for one spin, by chunks of auxiliary functions: from orbitals
    C (D = CCᵀ) as Σ_P (B_P C)(B_P C)ᵀ (cost ∝ naux·nao²·n_occ), else from D itself."""
    index = jnp.asarray(_unpack_index(model.nao))

    def contraction(rows, fresh):
        unpacked = (rows * fresh[:, None])[:, index]  # (chunk, nao, nao), rows counted once
        if orbitals is not None:
            half = jnp.einsum("pmn,ni->pmi", unpacked, orbitals)
            return jnp.einsum("pmi,pni->mn", half, half)
        product = jnp.einsum("pmn,nl->pml", unpacked, density_matrix)
        return jnp.einsum("pml,pln->mn", product, unpacked)

    zero = jnp.zeros((model.nao, model.nao), df_factor.dtype)
    return _sum_over_aux_chunks(jax, jnp, df_factor, _exchange_chunk(model), contraction, zero)


def _exchange_df(jax, jnp, model: EnergyModel, df_factor, orbitals):
    """Σ_P ‖Cᵀ B_P C‖² = tr(Cᵀ K C) for one spin, K = :func:`_exchange_matrix`; ∂/∂C = 4 K C.

    K is built outside the derivative (``stop_gradient``) and the energy written as
    2 tr(Cᵀ K̄ C) − Ē, whose value is E and whose first derivative is 4 K C: the backward pass
    is then one small product instead of the VJP of every chunk of the half-transformed
    tensor (n-decane B3LYP: forward stage 0.59 → 0.18 s, BENCHMARKS.md, issue 19). Valid for
    first derivatives in the orbitals only: none with respect to B, no Hessians through it."""
    matrix = jax.lax.stop_gradient(_exchange_matrix(jax, jnp, model, df_factor, orbitals=orbitals))
    fixed = jax.lax.stop_gradient(orbitals)
    value = jnp.sum((matrix @ fixed) * fixed)
    return 2.0 * jnp.sum((matrix @ orbitals) * orbitals) - value


def _exchange_df_dm(jax, jnp, model: EnergyModel, df_factor, density_matrix):
    """Σ_P tr(B_P D B_P D) = tr(D K[D]), the density-matrix form of :func:`_exchange_df`, with
    ∂/∂D = 2 K[D] by the same construction (first derivatives only)."""
    matrix = jax.lax.stop_gradient(
        _exchange_matrix(jax, jnp, model, df_factor, density_matrix=density_matrix)
    )
    value = jnp.sum(matrix * jax.lax.stop_gradient(density_matrix))
    return 2.0 * jnp.sum(matrix * density_matrix) - value


def nonxc_components(model: EnergyModel, ops: Operands, orbitals, density_matrices=None) -> dict:
    """The terms besides E_xc and E_nn (hartree): kinetic, nuclear attraction, Coulomb and exact
    exchange, for orbitals (C_α, C_β) or, if given, density matrices (D_α, D_β).

    With ``density_matrices`` the exchange is built from D (cost ∝ nao²); the orbital route
    costs ∝ nao·n_occ. Both give the same number; D is what the Fock matrix needs.
    """
    jax, jnp = jax_numpy()
    if density_matrices is None:
        density_matrices = tuple(c @ c.T for c in orbitals)
    d_alpha, d_beta = density_matrices
    d_total = d_alpha + d_beta
    kinetic = jnp.sum(ops.kinetic * d_total)
    core = jnp.sum(ops.core_hamiltonian * d_total)

    if model.host_coulomb:  # the host adds J and K (evaluator)
        return {"kinetic": kinetic, "nuclear_attraction": core - kinetic}
    if model.coulomb == "df":
        coulomb = _coulomb_df(jax, jnp, model, ops.df_factor, d_total)
    else:
        coulomb = 0.5 * jnp.einsum("ijkl,ij,kl->", ops.eri, d_total, d_total)

    spin_factor = 1.0 if model.unrestricted else 2.0
    exchange = jnp.zeros(())
    if model.exact_exchange != 0.0:
        for spin in _spins(model):
            if model.coulomb == "exact":
                d_spin = density_matrices[spin]
                term = jnp.einsum("ikjl,ij,kl->", ops.eri, d_spin, d_spin)
            elif orbitals is not None:
                term = _exchange_df(jax, jnp, model, ops.df_factor, orbitals[spin])
            else:
                term = _exchange_df_dm(jax, jnp, model, ops.df_factor, density_matrices[spin])
            exchange = exchange + spin_factor * term
        exchange = -0.5 * model.exact_exchange * exchange
    return {
        "kinetic": kinetic,
        "nuclear_attraction": core - kinetic,
        "coulomb": coulomb,
        "exact_exchange": exchange,
    }


def _spins(model: EnergyModel) -> tuple[int, ...]:
    return (0, 1) if model.unrestricted else (0,)


def xc_input(model: EnergyModel, ops: Operands, orbitals, density_matrices=None):
    """What the host's XC evaluation reads; None for Hartree–Fock.

    Stored AO values: ρ (and ∇ρ for GGAs) on the grid, (ncomp, ngrid) for RKS (both spins) or
    (2, ncomp, ngrid) for UKS, for libxc (:mod:`densitylab.dft.xc`). Streamed (or J and K on
    the host): the density matrix, 2D_α (nao, nao) for RKS (like 2ρ_α above) or (D_α, D_β)
    stacked (2, nao, nao) for UKS (and for RKS with J and K on the host, which needs D_β for J),
    for PySCF's screened ``numint`` and DF J/K on the host (:mod:`densitylab.dft.evaluator`).
    """
    _, jnp = jax_numpy()
    if not _host_reads(model):
        return None
    if _host_reads_density_matrices(model):
        if density_matrices is None:
            density_matrices = tuple(c @ c.T for c in orbitals)
        stacked = jnp.stack(density_matrices)
        return stacked if _host_reads_both_spins(model) else 2.0 * stacked[0]
    if orbitals is not None:
        spin_rho = [grid_density(jnp, ops.ao_values, orbitals[spin]) for spin in _spins(model)]
    else:
        spin_rho = [grid_density_from_dm(jnp, ops.ao_values, density_matrices[s]) for s in _spins(model)]
    return jnp.stack(spin_rho) if model.unrestricted else 2.0 * spin_rho[0]


def host_input_shape(model: EnergyModel, ncomp: int, points: int, nao: int) -> tuple[int, ...] | None:
    """The shape of :func:`xc_input`'s output (None when the host reads nothing), for ``ncomp``
    grid components on ``points`` (padded) grid points and ``nao`` AOs: what the backward stage
    takes as its cotangent, known before any evaluation (to compile it ahead)."""
    if not _host_reads(model):
        return None
    shape = (nao, nao) if _host_reads_density_matrices(model) else (ncomp, points)
    return (2, *shape) if _host_reads_both_spins(model) else shape


def host_reads_grid(model: EnergyModel) -> bool:
    """Whether :func:`xc_input` is the grid density (stored AO values), not density matrices."""
    return _host_reads(model) and not _host_reads_density_matrices(model)


def _host_reads(model: EnergyModel) -> bool:
    return model.family != "HF" or model.host_coulomb


def _host_reads_density_matrices(model: EnergyModel) -> bool:
    return model.xc_grid == "streamed" or model.host_coulomb


def _host_reads_both_spins(model: EnergyModel) -> bool:
    """UKS, and RKS with J on the host (which needs D_β as well as D_α)."""
    return model.unrestricted or model.host_coulomb


def energy_components(model: EnergyModel, ops: Operands, orbitals, density_matrices=None):
    """Every energy term (hartree) for orbitals (C_α, C_β) or density matrices (D_α, D_β), as one
    differentiable JAX function (libxc through a callback with an exact VJP). The optimiser
    evaluates the same terms in stages instead (:mod:`densitylab.dft.evaluator`)."""
    _, jnp = jax_numpy()
    require(model.xc_grid == "stored", "xc_grid", "'stored' for the one-function energy (the optimiser "
            "evaluates a streamed grid in stages)", model.xc_grid)  # fmt: skip
    terms = nonxc_components(model, ops, orbitals, density_matrices)
    xc = jnp.zeros(())
    rho = xc_input(model, ops, orbitals, density_matrices)
    if rho is not None:
        xc = xc_energy_function(model.xc, 1 if model.unrestricted else 0)(rho, ops.grid_weights)
    return {**terms, "xc": xc, "nuclear_repulsion": jnp.asarray(model.nuclear_repulsion)}


def total_energy(model: EnergyModel, ops: Operands, orbitals=None, density_matrices=None):
    """E (hartree): the sum of :func:`energy_components`."""
    terms = energy_components(model, ops, orbitals, density_matrices)
    return sum(terms.values())
