"""Stored and streamed AO values on the XC grid (issue 19): one energy, two memory profiles."""

import warnings

import numpy as np
import pytest
from ase.build import molecule as ase_molecule

from densitylab.dft import system as system_module
from densitylab.dft.evaluator import Evaluator
from densitylab.dft.molecule import load_molecule
from densitylab.dft.optimise import OptimiserSettings
from densitylab.dft.run import run_dft
from densitylab.dft.system import DFTSettings, build_system
from densitylab.errors import InvalidParameterError

warnings.filterwarnings("ignore", message="Basis may be available")


@pytest.mark.parametrize(
    ("xc", "spin", "name"),
    [("lda,vwn", 0, "H2O"), ("pbe", 2, "O2"), ("b3lyp", 0, "NH3")],
)
def test_streamed_and_stored_grids_give_one_energy_and_fock_matrix(xc, spin, name):
    """Catches a streamed XC term that differs from the stored one (a wrong spin channel, a
    factor on V_xc, a screening that drops AOs that matter, hybrid exchange counted in the
    semilocal part): at the same density matrices (a perturbed minao guess) the energies agree
    to 1e-10 Ha and the Fock matrices to 1e-9."""
    from pyscf.scf import hf

    mol = load_molecule(ase_molecule(name), spin=spin)
    rng = np.random.default_rng(0)
    guess = 0.5 * hf.init_guess_by_minao(mol)
    noise = 1e-3 * rng.normal(size=guess.shape)
    d_alpha, d_beta = guess + noise + noise.T, guess
    results = {}
    for mode in ("stored", "streamed"):
        system = build_system(mol, DFTSettings(xc=xc, grid_level=1, xc_grid=mode))
        assert system.xc_grid == mode
        energy, focks, terms = Evaluator(system).fock_of_density(d_alpha, d_beta)
        results[mode] = energy, np.array(focks), terms["xc"]
    assert results["streamed"][0] == pytest.approx(results["stored"][0], abs=1e-10)
    np.testing.assert_allclose(results["streamed"][1], results["stored"][1], atol=1e-9)
    assert abs(results["stored"][2]) > 1.0  # the XC term is there to compare


def test_a_streamed_minimisation_lands_on_the_stored_energy_without_the_grid_in_memory():
    """Catches a streamed gradient that is not the derivative of the streamed energy (the
    minimisation would stall or wander): both converge, to the same energy within 1e-9 Ha,
    and the streamed system keeps no AO values of the grid."""
    settings = {"xc": "pbe", "grid_level": 2}
    energies = {}
    for mode in ("stored", "streamed"):
        report = run_dft(ase_molecule("CH4"), xc="pbe", settings=DFTSettings(**settings, xc_grid=mode))
        assert report.result.converged and report.xc_grid == mode
        energies[mode] = report.result.energy
    assert energies["streamed"] == pytest.approx(energies["stored"], abs=1e-9)
    streamed = build_system(load_molecule(ase_molecule("CH4")), DFTSettings(**settings, xc_grid="streamed"))
    assert streamed.ao_values.size * 8 < 1e6 < streamed.ngrid * 4 * streamed.nao * 8


def test_auto_streams_when_the_stored_grid_would_exceed_its_budget(monkeypatch):
    """Catches an "auto" that ignores the size of the grid: with the budget lowered below
    water's AO values it streams them, with the default it stores them; grid minibatches
    (which sample stored AO values) keep them stored, and a streamed grid refuses them."""
    mol = load_molecule(ase_molecule("H2O"))
    assert build_system(mol, DFTSettings(xc="lda,vwn", grid_level=1)).xc_grid == "stored"
    monkeypatch.setattr(system_module, "STORED_AO_BYTES", 1e5)
    assert build_system(mol, DFTSettings(xc="lda,vwn", grid_level=1)).xc_grid == "streamed"
    adam = OptimiserSettings(method="adam", minibatch=500, max_iterations=3)
    report = run_dft(
        ase_molecule("H2O"), basis="sto-3g", xc="lda,vwn", settings=DFTSettings(grid_level=1), optimiser=adam
    )
    assert report.xc_grid == "stored"
    streamed = DFTSettings(grid_level=1, xc_grid="streamed")
    with pytest.raises(InvalidParameterError, match="xc_grid"):
        run_dft(ase_molecule("H2O"), basis="sto-3g", xc="lda,vwn", settings=streamed, optimiser=adam)


def test_the_density_fitting_tensor_built_by_pair_blocks_is_the_whole_one(monkeypatch):
    """Catches a pair block written at the wrong offset, a shell range that skips or repeats
    pairs, a padded last block that overwrites its neighbours, or a block solved against the
    wrong factor: B built in blocks of 1e4 and 1e5 bytes equals L⁻¹(P|μν) from PySCF's whole
    3-centre tensor, computed here, to rounding (1e-12 of its largest entry) with the host's
    solve and with the solve a GPU does (JAX's, forced here on the CPU). Not to the last bit:
    OpenBLAS's triangular solve of a block and of the whole rounds differently on some CPUs
    (7e-14 seen on one machine); the faults above are of order one."""
    import scipy.linalg
    from pyscf import df

    from densitylab.dft.system import density_fitting_factor

    mol = load_molecule(ase_molecule("CH3OH"))
    auxmol = df.addons.make_auxmol(mol, "def2-universal-jkfit")
    whole = df.incore.aux_e2(mol, auxmol, "int3c2e", aosym="s2ij")
    cholesky = scipy.linalg.cholesky(auxmol.intor("int2c2e"), lower=True)
    expected = scipy.linalg.solve_triangular(cholesky, whole.T, lower=True)
    for block_bytes in (1e4, 1e5):
        built = np.asarray(density_fitting_factor(mol, auxmol, block_bytes=block_bytes))
        np.testing.assert_allclose(built, expected, rtol=0, atol=1e-12 * np.abs(expected).max())
    monkeypatch.setattr(system_module, "accelerator_memory", lambda: ("gpu", 1e12))
    for block_bytes in (1e4, 3e5):
        built = np.asarray(density_fitting_factor(mol, auxmol, block_bytes=block_bytes))
        np.testing.assert_allclose(built, expected, rtol=0, atol=1e-12 * np.abs(expected).max())


def test_on_a_gpu_auto_stores_the_grid_where_it_fits_beside_the_df_tensor(monkeypatch):
    """Catches an "auto" that streams on a GPU by the CPU's budget (putting the XC work back on
    the host) or stores more than the GPU holds, and a memory check that looks at host memory
    for arrays that live on the GPU: with a GPU reported, the CPU budget does not apply; with
    the GPU's free memory below water's tensors, the grid streams; with 10 kB free, water is
    refused naming the GPU's memory."""
    mol = load_molecule(ase_molecule("H2O"))
    settings = DFTSettings(xc="lda,vwn", grid_level=1, df_storage="device")
    monkeypatch.setattr(system_module, "STORED_AO_BYTES", 1e5)
    monkeypatch.setattr(system_module, "accelerator_memory", lambda: ("gpu", 1e10))
    assert build_system(mol, settings).xc_grid == "stored"
    auxmol = system_module.auxiliary_molecule(mol, settings.auxbasis)
    tensor = system_module.df_tensor_bytes(mol, auxmol)
    monkeypatch.setattr(system_module, "accelerator_memory", lambda: ("gpu", 1.2 * tensor))
    assert build_system(mol, settings).xc_grid == "streamed"
    monkeypatch.setattr(system_module, "accelerator_memory", lambda: ("gpu", 1e4))
    with pytest.raises(InvalidParameterError, match=r"molecule: expected a size that fits in gpu memory"):
        build_system(mol, settings)


def test_a_system_that_cannot_fit_is_refused_before_its_tensors_are_built(monkeypatch):
    """Catches a DF tensor or stored grid allocated before the memory check (an out-of-memory
    kill after minutes of integrals): with 1 MB available, water is refused at once, naming
    the molecule and the sizes of both."""
    from densitylab import limits

    monkeypatch.setattr(limits, "available_memory", lambda: 1e6)
    with pytest.raises(InvalidParameterError, match=r"molecule: .*DF tensor .*AO values"):
        build_system(load_molecule(ase_molecule("H2O")), DFTSettings(xc="pbe", grid_level=1))


@pytest.mark.parametrize("gradient", [False, True])
def test_stored_ao_values_staged_in_small_blocks_equal_pyscfs(monkeypatch, gradient):
    """Catches rows written at the wrong offset, a last block of a chunk that runs past its edge
    or is skipped, or padding that is not zero: with staging blocks that do not divide the chunk
    and several chunks, the stored values equal PySCF's ``eval_ao`` on the whole grid, and the
    padding past the grid is exactly zero."""
    from pyscf.dft import numint

    from densitylab.dft.system import ao_on_grid, build_grid

    mol = load_molecule(ase_molecule("H2O"), basis="sto-3g")
    coords = np.asarray(build_grid(mol, 0).coords)
    ncomp, nao = (4 if gradient else 1), mol.nao_nr()
    monkeypatch.setattr(system_module, "CHUNK_ELEMENTS", 1000 * ncomp * nao)  # several chunks
    monkeypatch.setattr(system_module, "AO_STAGE_BYTES", 8.0 * 192 * ncomp * nao)  # 192 rows
    values = np.asarray(ao_on_grid(mol, coords, gradient))
    nchunk, _, chunk, _ = values.shape
    assert nchunk > 2 and chunk % 192 != 0
    flat = values.transpose(1, 0, 2, 3).reshape(ncomp, nchunk * chunk, nao)
    expected = np.asarray(numint.eval_ao(mol, coords, deriv=1 if gradient else 0)).reshape(ncomp, -1, nao)
    np.testing.assert_allclose(flat[:, : len(coords)], expected, rtol=0, atol=1e-14)
    assert not np.any(flat[:, len(coords) :])


@pytest.mark.parametrize("gradient", [False, True])
def test_the_xc_potential_matrix_is_the_adjoint_of_the_grid_density(gradient):
    """Catches a wrong factor on the ∇ρ terms, a missing symmetrisation or a chunk flattened in
    the wrong order in ``grid_density_adjoint``: for random symmetric D and cotangent c over
    several chunks, ⟨c, ρ[D]⟩ = ⟨M(c), D⟩ (the defining identity of the adjoint of the linear
    map D ↦ (ρ, ∇ρ)), and M(c) equals JAX's VJP of the grid density from D."""
    from densitylab.dft.energy import grid_density_adjoint, grid_density_from_dm
    from densitylab.dft.system import ao_on_grid, build_grid
    from densitylab.jaxsetup import jax_modules

    jax, jnp, _ = jax_modules()
    mol = load_molecule(ase_molecule("CH3OH"), basis="sto-3g")
    coords = np.asarray(build_grid(mol, 0).coords)
    ao_values = ao_on_grid(mol, coords, gradient)
    nchunk, ncomp, chunk, nao = ao_values.shape
    if nchunk == 1:  # force several chunks: split the one chunk into four
        ao_values = ao_values.reshape(ncomp, 4, chunk // 4, nao).transpose(1, 0, 2, 3)
        nchunk, chunk = 4, chunk // 4
    rng = np.random.default_rng(3)
    half = rng.normal(size=(nao, nao))
    density_matrix = jnp.asarray(half + half.T)
    cotangent = jnp.asarray(rng.normal(size=(ncomp, nchunk * chunk)))
    adjoint = grid_density_adjoint(jnp, ao_values, cotangent)
    density = grid_density_from_dm(jnp, ao_values, density_matrix)
    assert float(jnp.sum(cotangent * density)) == pytest.approx(
        float(jnp.sum(adjoint * density_matrix)), rel=1e-12
    )
    _, pullback = jax.vjp(lambda d: grid_density_from_dm(jnp, ao_values, d), density_matrix)
    vjp = pullback(cotangent)[0]
    np.testing.assert_allclose(
        adjoint, 0.5 * (vjp + vjp.T), rtol=0, atol=1e-10 * float(jnp.max(jnp.abs(vjp)))
    )
    np.testing.assert_allclose(adjoint, adjoint.T, rtol=0, atol=0)


def test_the_exchange_from_its_matrix_has_the_plain_value_and_gradient(monkeypatch):
    """Catches a wrong factor in the exchange written through K (2 tr(CᵀK̄C) − Ē must have the
    value Σ_P ‖Cᵀ B_P C‖² and the gradient 4KC), rows counted twice by the last, shifted chunk,
    or a K left inside the derivative: value and gradient, from orbitals and from a density
    matrix, equal those of the plain formula on the unpacked tensor, differentiated by JAX."""
    from densitylab.dft import energy
    from densitylab.jaxsetup import jax_modules

    jax, jnp, _ = jax_modules()
    nao, naux, occupied = 7, 11, 3
    rng = np.random.default_rng(5)
    factor = jnp.asarray(rng.normal(size=(naux, nao * (nao + 1) // 2)))
    unpacked = factor[:, jnp.asarray(energy._unpack_index(nao))]
    orbitals = jnp.asarray(rng.normal(size=(nao, occupied)))
    model = energy.EnergyModel("b3lyp", "hybrid", 0.2, False, "df", nao, naux, 0.0)

    def plain(c):
        return jnp.sum(jnp.einsum("mi,pmn,nj->pij", c, unpacked, c) ** 2)

    for chunk_elements in (10**9, 4 * nao * nao):  # one chunk; three chunks, the last shifted
        monkeypatch.setattr(energy, "EXCHANGE_CHUNK_ELEMENTS", chunk_elements)
        value, gradient = jax.value_and_grad(lambda c: energy._exchange_df(jax, jnp, model, factor, c))(
            orbitals
        )
        expected, expected_gradient = jax.value_and_grad(plain)(orbitals)
        assert float(value) == pytest.approx(float(expected), rel=1e-12)
        np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-11, atol=0)
        density = orbitals @ orbitals.T
        value, gradient = jax.value_and_grad(lambda d: energy._exchange_df_dm(jax, jnp, model, factor, d))(
            density
        )
        plain_dm = jax.value_and_grad(lambda d: jnp.einsum("pmn,nl,plk,km->", unpacked, d, unpacked, d))
        expected, expected_gradient = plain_dm(density)
        assert float(value) == pytest.approx(float(expected), rel=1e-12)
        np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-11, atol=0)
