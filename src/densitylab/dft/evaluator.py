"""Energy, gradient and Fock matrices of one system for the optimisers, evaluated in stages so
that no compiled function holds a host callback.

For a point of the orbital manifold (chart coordinates κ around bases U, free parameters W, or
spin density matrices D):

1. a compiled *forward* stage gives the terms besides E_xc with their gradient, and libxc's input
   (ρ, and ∇ρ for GGAs, on the grid);
2. libxc runs on the host (:func:`densitylab.dft.xc._host_xc`): E_xc and ∂E_xc/∂ρ;
3. a compiled *backward* stage gives ∂E_xc/∂(variables), the VJP of the grid density with that
   cotangent.

The grid work is that of one differentiable function with the callback inside, whose
checkpointed chunks recompute the density in the backward pass as well. What the stages buy:

- compiled functions without callbacks can be stored: :mod:`densitylab.dft.compiled` keeps each
  stage's executable beside JAX's persistent compilation cache, so a second run on a molecule
  of the same shapes, in another process, neither traces nor compiles (it loads in ~2 ms);
- the stages are module-level, with the energy's static description as a static argument, and
  their executables are kept by signature: in one process every system with the same
  description and shapes (the geometries of an ASE optimisation, finite differences) reuses them.

Energies in hartree.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from densitylab.dft import compiled
from densitylab.dft.energy import (
    EnergyModel,
    Operands,
    grid_density_adjoint,
    host_input_shape,
    host_reads_grid,
    nonxc_components,
    operands,
    orbitals_from_parameters,
    xc_input,
)
from densitylab.dft.system import STREAM_MEMORY_MB, KSSystem, host_coulomb_exchange
from densitylab.dft.xc import _host_xc
from densitylab.errors import require
from densitylab.jaxsetup import jax_numpy

KINDS = ("chart", "parameters", "density")


def compilations() -> int:
    """How many executables (stages and set-up functions) this process has compiled; loads from
    the store of compiled executables and in-process reuses add nothing."""
    return compiled.compilations()


def chart_parameters(bases, counts, kappa) -> list:
    """W(κ) = U_occ + U_vir·κ per spin: ``kappa`` holds the (n_vir × n_occ) blocks of all spins
    one after another; ``bases`` are the (nmo, nmo) chart bases U. Works on NumPy and JAX arrays."""
    parameters, offset = [], 0
    for basis, count in zip(bases, counts, strict=True):
        virtual = basis.shape[1] - count
        block = kappa[offset : offset + virtual * count].reshape(virtual, count)
        parameters.append(basis[:, :count] + basis[:, count:] @ block)
        offset += virtual * count
    return parameters


def _state(kind: str, counts, variables, fixed, ops: Operands):
    """(orbitals (C_α, C_β) or None, density matrices (D_α, D_β) or None) at ``variables``."""
    _, jnp = jax_numpy()
    if kind == "density":
        return None, tuple(variables)
    parameters = chart_parameters(fixed, counts, variables) if kind == "chart" else variables
    orbitals = [orbitals_from_parameters(jnp, ops.orthogonaliser, w) for w in parameters]
    return (orbitals[0], orbitals[-1]), None


def _forward(model: EnergyModel, kind: str, counts, variables, fixed, ops: Operands):
    """(E without E_xc and E_nn, its gradient in ``variables``, its terms, libxc's input)."""
    jax, _ = jax_numpy()

    def energy(point):
        terms = nonxc_components(model, ops, *_state(kind, counts, point, fixed, ops))
        return sum(terms.values()), terms

    (value, terms), gradient = jax.value_and_grad(energy, has_aux=True)(variables)
    return value, gradient, terms, xc_input(model, ops, *_state(kind, counts, variables, fixed, ops))


def _xc_density_matrices(model: EnergyModel, kind: str, counts, variables, fixed, ops: Operands):
    """The spin density matrices the grid density is linear in: (D_α,) for RKS, (D_α, D_β) for UKS."""
    orbitals, density_matrices = _state(kind, counts, variables, fixed, ops)
    if density_matrices is None:
        density_matrices = tuple(c @ c.T for c in orbitals)
    return tuple(density_matrices) if model.unrestricted else (density_matrices[0],)


def _backward(model: EnergyModel, kind: str, counts, variables, fixed, ops: Operands, cotangent):
    """∂E_xc/∂variables: the VJP of libxc's input with ``cotangent`` = ∂E_xc/∂(ρ, ∇ρ).

    For a GGA's grid input the cotangent is first taken to ∂E_xc/∂D_σ
    (:func:`grid_density_adjoint`, one GEMM per chunk; RKS reads 2ρ[D_α]), then through the map
    from ``variables`` to the density matrices: 2.6–8× faster than JAX's VJP of the grid
    density (benchmarks/dft_backward.py). For an LDA's grid input, where that VJP is the cheaper
    one, and for density-matrix input (streamed grid, J on the host), the VJP of
    :func:`xc_input` itself."""
    jax, jnp = jax_numpy()
    # LDA: JAX's VJP costs 2·points·nao·n_occ, less than the matrix's points·nao²
    if not host_reads_grid(model) or model.family == "LDA":
        _, pullback = jax.vjp(
            lambda point: xc_input(model, ops, *_state(kind, counts, point, fixed, ops)), variables
        )
        return pullback(cotangent)[0]
    if model.unrestricted:
        adjoints = tuple(grid_density_adjoint(jnp, ops.ao_values, cotangent[spin]) for spin in (0, 1))
    else:
        adjoints = (2.0 * grid_density_adjoint(jnp, ops.ao_values, cotangent),)
    _, pullback = jax.vjp(
        lambda point: _xc_density_matrices(model, kind, counts, point, fixed, ops), variables
    )
    return pullback(adjoints)[0]


_STAGES = {"_forward": _forward, "_backward": _backward}


def _executable(stage: str, statics: tuple, arguments: tuple, executor: ThreadPoolExecutor | None = None):
    """The compiled ``stage`` for these statics and argument shapes (:func:`compiled.executable`:
    kept from an earlier call, loaded from the store, or compiled, in the background with
    ``executor``)."""
    return compiled.executable(stage, _STAGES[stage], statics, arguments, executor=executor)


class Evaluator:
    """Energy (with gradient) and Fock matrices of one system, shared by both optimisers.

    ``value_and_grad(kind, variables, fixed)`` evaluates at chart coordinates ("chart":
    κ around the bases ``fixed``), free parameters W per spin ("parameters") or spin density
    matrices ("density"), and returns the total energy, its gradient in ``variables`` and the
    terms of :data:`densitylab.dft.energy.COMPONENTS`.
    """

    def __init__(self, system: KSSystem):
        jax, jnp = jax_numpy()
        self.jax, self.jnp = jax, jnp
        self.system = system
        self.model = EnergyModel.of(system)
        self.ops = operands(system)
        self.spins = (0, 1) if system.unrestricted else (0,)
        self.counts = tuple(system.nelec[s] for s in self.spins)
        # a bucketed system (densitylab.dft.buckets) compiles its padded problem; the
        # optimisers see the real one
        self.padding = system.padding
        self._compiled_counts = self.counts
        if self.padding is not None:
            self._compiled_counts = tuple(self.padding.padded_counts[s] for s in self.spins)
        self.fock_builds = 0
        # the compiled stages depend on the description, not on the geometry's E_nn
        self._static = replace(self.model, nuclear_repulsion=0.0)

    def value_and_grad(self, kind: str, variables, fixed=None, ops: Operands | None = None):
        ops = self.ops if ops is None else ops
        if self.padding is not None:
            variables, fixed = self.padding.pad(kind, self.spins, variables, fixed)
        statics = (self._static, kind, self._compiled_counts)
        arguments = (variables, fixed, ops)
        value, gradient, terms, host_input = _executable("_forward", statics, arguments)(*arguments)
        terms = {name: float(term) for name, term in terms.items()}
        terms.update(
            coulomb=terms.get("coulomb", 0.0), exact_exchange=terms.get("exact_exchange", 0.0), xc=0.0
        )
        if host_input is not None:
            host_terms, cotangent = self._host_terms(np.asarray(host_input), ops)
            for name, term in host_terms.items():
                terms[name] += term
            value = float(value) + sum(host_terms.values())
            backward = _executable("_backward", statics, (*arguments, cotangent))
            gradient = self.jax.tree_util.tree_map(np.add, gradient, backward(*arguments, cotangent))
        if self.padding is not None:
            gradient = self.padding.unpad_gradient(kind, self.spins, gradient)
        terms["nuclear_repulsion"] = self.model.nuclear_repulsion
        return float(value) + self.model.nuclear_repulsion, gradient, terms

    def _host_terms(self, host_input: np.ndarray, ops: Operands) -> tuple[dict, np.ndarray]:
        """The terms evaluated on the host and their derivative with respect to ``host_input``:
        E_xc from the grid density (stored grid) or from the density matrices (streamed grid),
        and with the DF tensor on disk (:meth:`_host_coulomb`) the Coulomb and exact-exchange
        energies too."""
        model = self.model
        if not model.host_coulomb:
            if model.xc_grid == "stored":
                spin = 1 if model.unrestricted else 0
                xc, cotangent = _host_xc(model.xc, spin, host_input, np.asarray(ops.grid_weights))
                return {"xc": float(xc)}, cotangent
            xc, cotangent = self._streamed_xc(host_input)
            return {"xc": xc}, cotangent
        terms, cotangent = self._host_coulomb(host_input)
        if model.family != "HF":
            if model.unrestricted:
                terms["xc"], potential = self._streamed_xc(host_input)
                cotangent = cotangent + potential
            else:  # E_xc(2 D_α)
                terms["xc"], potential = self._streamed_xc(2.0 * host_input[0])
                cotangent[0] += 2.0 * potential
        return terms, cotangent

    def _host_coulomb(self, density_matrices: np.ndarray) -> tuple[dict, np.ndarray]:
        """Coulomb and exact-exchange energies and their derivatives with respect to the spin
        density matrices (D_α, D_β) (2, nao, nao), from PySCF's DF tensor on disk; the same
        terms as the device's (:func:`densitylab.dft.energy.nonxc_components`).

        J[D] with D = D_α + D_β, E_J = ½ tr(D J[D]), ∂E_J/∂D_σ = J[D]. Exchange with fraction a,
        UKS: E_K = −½ a Σ_σ tr(D_σ K[D_σ]), ∂E_K/∂D_σ = −a K[D_σ] (one pass over the tensor
        for J and both K); RKS, from D_α alone: E_K = −a tr(D_α K[D_α]), ∂E_K/∂D_α = −2a K[D_α].
        """
        fraction, fitting = self.model.exact_exchange, self.system.host_df
        total = density_matrices[0] + density_matrices[1]
        potential = np.zeros_like(density_matrices)
        energy_k = 0.0
        if self.model.unrestricted:
            coulomb, exchange = host_coulomb_exchange(fitting, density_matrices, True, fraction != 0.0)
            coulomb = coulomb[0] + coulomb[1]
            if exchange is not None:
                energy_k = -0.5 * fraction * float(np.sum(density_matrices * exchange))
                potential -= fraction * exchange
        else:
            coulomb, _ = host_coulomb_exchange(fitting, total, True, False)
            if fraction != 0.0:
                _, exchange = host_coulomb_exchange(fitting, density_matrices[0], False, True)
                energy_k = -fraction * float(np.sum(density_matrices[0] * exchange))
                potential[0] -= 2.0 * fraction * exchange
        potential += coulomb
        return {"coulomb": 0.5 * float(np.sum(total * coulomb)), "exact_exchange": energy_k}, potential

    def _streamed_xc(self, density_input: np.ndarray) -> tuple[float, np.ndarray]:
        """E_xc and V_xc = ∂E_xc/∂(density_input) from PySCF's screened ``numint`` on the host grid."""
        from pyscf.dft import numint

        mol, grids = self.system.host_grid
        calculator = numint.NumInt()
        if self.model.unrestricted:
            _, xc, potential = calculator.nr_uks(
                mol, grids, self.model.xc, (density_input[0], density_input[1]), max_memory=STREAM_MEMORY_MB
            )
        else:
            _, xc, potential = calculator.nr_rks(
                mol, grids, self.model.xc, density_input, max_memory=STREAM_MEMORY_MB
            )
        return float(xc), np.asarray(potential)

    def compile_chart_in_background(self) -> None:
        """Compile the chart stages on a worker thread while the initial-guess Fock matrices are
        built (the second CPU core is otherwise idle)."""
        jax, jnp = self.jax, self.jnp
        system = self.system
        nmo = system.nmo if self.padding is None else self.padding.padded_nao
        size = sum((nmo - n) * n for n in self._compiled_counts)
        kappa = jax.ShapeDtypeStruct((size,), jnp.float64)
        bases = [jax.ShapeDtypeStruct((nmo, nmo), jnp.float64) for _ in self.spins]
        statics = (self._static, "chart", self._compiled_counts)
        executor = ThreadPoolExecutor(max_workers=1)
        _executable("_forward", statics, (kappa, bases, self.ops), executor)
        nchunk, ncomp, chunk, nao = system.ao_values.shape
        shape = host_input_shape(self.model, ncomp, nchunk * chunk, nao)
        if shape is not None:
            cotangent = jax.ShapeDtypeStruct(shape, jnp.float64)
            _executable("_backward", statics, (kappa, bases, self.ops, cotangent), executor)
        executor.shutdown(wait=False)

    def chart(self, kappa, bases):
        """(E, ∂E/∂κ) at ``kappa`` in the chart around ``bases`` (one array (nmo, nmo) per spin)."""
        return self.chart_value_and_grad(kappa, bases, self.ops)

    def chart_value_and_grad(self, kappa, bases, ops: Operands):
        value, gradient, _ = self.value_and_grad(
            "chart", np.asarray(kappa, dtype=float), [np.asarray(b, dtype=float) for b in bases], ops
        )
        return value, np.asarray(gradient)

    def parameter_value_and_grad(self, parameters, ops: Operands):
        """(E, ∂E/∂W per spin) for free parameters W (nmo, n_σ) per spin (Adam, D4FT)."""
        value, gradient, _ = self.value_and_grad(
            "parameters", [self.jnp.asarray(w) for w in parameters], None, ops
        )
        return value, [self.jnp.asarray(g) for g in gradient]

    def fock_matrices(self, orbital_blocks):
        """Energy and Fock matrices (F_α, F_β) (AO basis) for occupied AO orbitals per spin."""
        dms = [c @ c.T for c in orbital_blocks]
        return self.fock_of_density(dms[0], dms[-1])

    def fock_of_density(self, d_alpha: np.ndarray, d_beta: np.ndarray):
        """Energy, Fock matrices (F_α, F_β) = ∂E/∂D_σ (symmetrised; for RKS both the spin
        average) and energy terms for spin density matrices (AO basis); counted in
        ``fock_builds``."""
        self.fock_builds += 1
        dms = (np.asarray(d_alpha, dtype=float), np.asarray(d_beta, dtype=float))
        value, gradient, terms = self.value_and_grad("density", dms)
        gradient = [np.asarray(g) for g in gradient]
        focks = gradient if self.system.unrestricted else [0.5 * (gradient[0] + gradient[1])] * 2
        return value, [0.5 * (f + f.T) for f in focks], terms

    def minibatch_operands(self, indices: np.ndarray) -> Operands:
        """Operands with the XC grid restricted to ``indices``, weights scaled by ngrid/len(indices)
        so that the XC energy and its gradient are unbiased estimates of the full-grid ones
        (stored AO values only)."""
        require(
            self.model.xc_grid == "stored", "xc_grid", "'stored' for grid minibatches", self.model.xc_grid
        )
        scale = self.system.ngrid / len(indices)
        return self.ops._replace(
            ao_values=self.system.flat_ao_values(indices)[None],
            grid_weights=compiled.to_device(self.system.grid_weights[indices] * scale),
        )
