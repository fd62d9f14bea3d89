"""Beyond the fixed basis (issue 17): differentiable Gaussians against PySCF, the
volume-preserving flow, the grid energy against PySCF's analytic energy, basis gradients
against finite differences, monotone deterministic minimisation, unbiased minibatches, and
clear errors for what the grid route cannot do."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from densitylab.errors import InvalidParameterError
from densitylab.jaxsetup import jax_modules

jax, jnp, eqx = jax_modules()

WATER = "O 0 0 0.1173; H 0 0.7572 -0.4692; H 0 -0.7572 -0.4692"
H2 = "H 0 0 0; H 0 0 0.74"


def _shifted(params, group: int, part: int, index: int, step: float):
    """A copy of basis ``params`` with one entry moved by ``step`` (fresh arrays: a jitted call
    may read its NumPy inputs without copying them)."""
    moved = [[np.array(x, dtype=float) for x in p] for p in params]
    moved[group][part][index] += step
    return tuple(tuple(p) for p in moved)


def _mol(basis="6-31g", atom=WATER):
    from pyscf import gto

    return gto.M(atom=atom, basis=basis, verbose=0)


@pytest.fixture(scope="module")
def water_setup():
    """Water 6-31G, LDA, on a level-1 grid: the pieces :func:`optimise_orbitals` builds."""
    from densitylab.dft import gridks
    from densitylab.dft import orbitals as orb

    settings = orb.OrbitalsSettings(routes=(), grid_level=1, check_level=None)
    layout, params, basis, start, mf = orb._start(_mol(), "lda,vwn", settings)
    problem = gridks.grid_problem(start, "lda,vwn", 1, settings.auxbasis)
    reference = jnp.asarray(np.linalg.cholesky(start.intor("int1e_ovlp")).T @ mf.mo_coeff)
    params = tuple((jnp.asarray(e), jnp.asarray(c)) for e, c in params)
    terms = orb._energy_function(problem, basis, params, reference, jax, jnp)
    full = tuple(jnp.asarray(a) for a in gridks.full_grid(problem))
    kappa = jnp.zeros((start.nao - problem.nocc, problem.nocc))
    return {
        "layout": layout,
        "params": params,
        "basis": basis,
        "mf": mf,
        "problem": problem,
        "terms": terms,
        "full": full,
        "kappa": kappa,
    }


@pytest.mark.parametrize("name", ["6-31g**", "cc-pvtz"])
def test_gaussians_equal_pyscf_values_and_overlap(name):
    """AO values (s to f) and the Obara–Saika overlap equal PySCF's; the basis written out
    in NWChem form is read back by PySCF unchanged."""
    from pyscf import gto

    from densitylab.dft.gaussians import GaussianBasis, nwchem_text, prepare

    mol = _mol(name)
    layout, params = prepare(mol)
    basis = GaussianBasis(layout, params)
    points = np.random.default_rng(1).normal(scale=1.5, size=(300, 3))
    np.testing.assert_allclose(
        basis.values(params, jnp.asarray(points)), mol.eval_gto("GTOval_sph", points), atol=1e-12
    )
    np.testing.assert_allclose(basis.overlap(params), mol.intor("int1e_ovlp"), atol=1e-12)
    again = gto.M(
        atom=WATER, basis={s: gto.basis.parse(nwchem_text(layout, params), s) for s in ("O", "H")}, verbose=0
    )
    np.testing.assert_allclose(again.intor("int1e_ovlp"), mol.intor("int1e_ovlp"), atol=1e-12)


def test_overlap_exponent_gradient_matches_finite_differences():
    from densitylab.dft.gaussians import GaussianBasis, prepare

    layout, params = prepare(_mol("6-31g"), extra_shells={"O": [(2, 0.8)]})
    basis = GaussianBasis(layout, params)

    @jax.jit
    def f(p):
        return jnp.sum(basis.overlap(p) ** 3)

    gradient = jax.grad(f)(params)
    for group in (1, 5):  # a contracted s shell and the added d shell
        h = 1e-5
        plus, minus = (float(f(_shifted(params, group, 0, 0, step))) for step in (h, -h))
        assert abs(gradient[group][0][0] - (plus - minus) / (2 * h)) < 1e-7


def test_flow_is_volume_preserving_and_keeps_the_overlap(water_setup):
    """A flow with random (non-identity) couplings, pinned at the nuclei as the flow route
    makes it: det ∂f/∂r = 1, and the grid overlap of the flowed AOs equals the analytic overlap
    (to the grid's accuracy)."""
    from densitylab.dft.flow import jacobian_determinants, make_flow

    flow = make_flow(np.zeros(3), layers=2, width=8, pins=water_setup["layout"].centres)
    leaves, static = eqx.partition(flow, eqx.is_inexact_array)
    keys = iter(jax.random.split(jax.random.PRNGKey(3), 64))
    leaves = jax.tree_util.tree_map(lambda x: 0.1 * jax.random.normal(next(keys), x.shape), leaves)
    flow = eqx.combine(leaves, static)
    points = jnp.asarray(np.random.default_rng(0).normal(scale=2.0, size=(50, 3)))
    moved = flow(points)
    assert float(jnp.max(jnp.abs(moved - points))) > 0.05  # the flow really moves points
    np.testing.assert_allclose(jacobian_determinants(flow, points), 1.0, atol=1e-12)
    basis, params = water_setup["basis"], water_setup["params"]

    from pyscf.dft import gen_grid

    fine = gen_grid.Grids(water_setup["mf"].mol)
    fine.level = 5
    fine.build(with_non0tab=False)
    values = jax.jit(lambda p: basis.values(params, flow(p)))(jnp.asarray(fine.coords))
    grid_overlap = values.T @ (fine.weights[:, None] * values)
    np.testing.assert_allclose(grid_overlap, basis.overlap(params), atol=3e-5)


def test_identity_flow_and_frozen_basis_give_the_fixed_basis_energy(water_setup):
    from densitylab.dft.flow import make_flow

    s = water_setup
    rotated = s["kappa"].at[0, 0].set(0.05)  # not the SCF orbitals, so nothing is at a stationary point
    fixed = sum(s["terms"]({"kappa": rotated}, s["full"]).values())
    flowed = sum(
        s["terms"]({"kappa": rotated, "flow": make_flow(s["layout"].centres.mean(0))}, s["full"]).values()
    )
    frozen = sum(s["terms"]({"kappa": rotated, "basis": s["params"]}, s["full"]).values())
    assert abs(float(flowed - fixed)) < 1e-8
    assert abs(float(frozen - fixed)) < 1e-12


def test_grid_energy_matches_pyscf_analytic_energy():
    """At PySCF's SCF orbitals, the grid kinetic and nuclear energies match the analytic
    integrals, and the fitted Hartree energy sits just below the exact one (a lower bound)."""
    from pyscf import dft

    from densitylab.dft import gridks
    from densitylab.dft.gaussians import GaussianBasis, prepare
    from densitylab.dft.xc import xc_energy_function

    mol = _mol()
    mf = dft.RKS(mol, xc="lda,vwn")
    mf.grids.level = 3
    mf.conv_tol = 1e-10
    mf.kernel()
    problem = gridks.grid_problem(mol, "lda,vwn", 3, "def2-universal-jkfit")
    layout, params = prepare(mol)
    basis = GaussianBasis(layout, params)
    terms = gridks.energy_terms(
        jax,
        jnp,
        xc_energy_function("lda,vwn", 0),
        problem,
        lambda p: basis.values(params, p),
        jnp.asarray(mf.mo_coeff[:, :5]),
        gridks.full_grid(problem),
    )
    dm = mf.make_rdm1()
    assert abs(float(terms["kinetic"]) - np.einsum("ij,ji", mol.intor("int1e_kin"), dm)) < 2e-5
    assert abs(float(terms["nuclear"]) - np.einsum("ij,ji", mol.intor("int1e_nuc"), dm)) < 2e-5
    exact_hartree = 0.5 * np.einsum("ij,ji", mf.get_j(dm=dm), dm)
    assert -1e-4 < float(terms["hartree"]) - exact_hartree < 0.0
    assert abs(float(sum(terms.values())) - mf.e_tot) < 1e-4


def test_basis_gradient_matches_finite_differences(water_setup):
    s = water_setup

    @jax.jit
    def energy(params):
        return sum(s["terms"]({"kappa": s["kappa"], "basis": params}, s["full"]).values())

    gradient = jax.grad(energy)(s["params"])
    for group, index in ((4, 0), (6, 0)):  # oxygen's outer p and hydrogen's outer s exponents
        h = 1e-4
        plus, minus = (float(energy(_shifted(s["params"], group, 0, index, step))) for step in (h, -h))
        assert abs(gradient[group][0][index] - (plus - minus) / (2 * h)) < 1e-6
    coefficient = jax.grad(energy)(s["params"])[1][1][0]
    h = 1e-5
    plus, minus = (float(energy(_shifted(s["params"], 1, 1, 0, step))) for step in (h, -h))
    assert abs(coefficient - (plus - minus) / (2 * h)) < 1e-6


def test_minibatch_estimates_are_unbiased(water_setup):
    from densitylab.dft import gridks

    s = water_setup
    problem = s["problem"]
    tree = {"kappa": s["kappa"].at[1, 2].set(0.1)}
    exact = float(sum(s["terms"](tree, s["full"]).values()))
    rng = np.random.default_rng(0)
    probabilities = gridks.sampling_probabilities(problem, np.exp(-np.linalg.norm(problem.coords, axis=1)))
    estimate = jax.jit(lambda a, b: sum(s["terms"](tree, a, b).values()))
    samples = [
        float(
            estimate(
                gridks.sample_half(problem, probabilities, 600, rng),
                gridks.sample_half(problem, probabilities, 600, rng),
            )
        )
        for _ in range(200)
    ]
    mean, error = np.mean(samples), np.std(samples, ddof=1) / np.sqrt(len(samples))
    assert abs(mean - exact) < 4 * error


def test_deterministic_basis_optimisation_lowers_energy_monotonically(tmp_path):
    """Four L-BFGS steps of the optimised-basis route on water: every accepted step lowers the
    energy. PySCF, given the written basis, finds it better than 6-31G, and its SCF in it (the
    orbitals fully relaxed) is at or below the grid energy of the result (to the grid error)."""
    from pyscf import dft, gto

    from densitylab.dft.orbitals import OrbitalsSettings, load_orbitals, optimise_orbitals

    settings = OrbitalsSettings(routes=("optimised-basis",), max_iterations=4, grid_level=1, check_level=3)
    result = optimise_orbitals(_mol(), "lda,vwn", settings)
    energies = [h["energy"] for h in result.history] + [result.energy]
    assert all(b <= a + 1e-10 for a, b in itertools.pairwise(energies))
    assert result.energy < result.start_energy - 1e-4
    assert abs(result.check_energy - result.energy) < 1e-4
    saved = load_orbitals(result.save(tmp_path / "water-basis"))
    mol = gto.M(atom=WATER, basis=str(tmp_path / "water-basis" / "basis.nw"), verbose=0)
    energies = {}
    for name, basis in (("optimised", mol.basis), ("6-31g", "6-31g")):
        mf = dft.RKS(gto.M(atom=WATER, basis=basis, verbose=0), xc="lda,vwn")
        mf.grids.level = 1
        energies[name] = mf.kernel()
    assert energies["optimised"] < energies["6-31g"] - 1e-4
    assert energies["optimised"] < saved.energy + 1e-4  # grid and fitting error of the grid energy


def test_flow_route_in_minibatch_mode():
    """The flow route end to end on unbiased minibatches: the estimate's spread is reported and
    small steps leave the full-grid energy near the start (deterministic steps are checked
    monotone in the basis test; the flow's energy pieces in the tests above)."""
    from densitylab.dft.orbitals import OrbitalsSettings, optimise_orbitals

    settings = OrbitalsSettings(
        routes=("flow",),
        mode="minibatch",
        max_iterations=3,
        grid_level=1,
        check_level=None,
        minibatch=2048,
        learning_rate=1e-4,
        flow_layers=2,
        flow_width=8,
    )
    result = optimise_orbitals(_mol(), "lda,vwn", settings)
    assert result.minibatch_std is not None and 0 < result.minibatch_std < 5.0  # Ha, 2,048 points
    assert abs(result.energy - result.start_energy) < 0.01


@pytest.mark.parametrize(
    ("change", "parameter"),
    [
        ({"xc": "b3lyp"}, "xc"),
        ({"orbitals": "orbitals-please"}, "orbitals"),
        ({"extra_shell": ("O:q:1.0",)}, "extra_shells"),
        ({"minibatch": 10}, "minibatch"),
    ],
)
def test_bad_orbitals_input_is_refused(tmp_path, change, parameter):
    from densitylab.dft.workflow import OrbitalsConfig, run_orbitals

    molecule = tmp_path / "h2o.xyz"
    molecule.write_text("3\nwater\nO 0 0 0.1173\nH 0 0.7572 -0.4692\nH 0 -0.7572 -0.4692\n")
    with pytest.raises(InvalidParameterError) as error:
        run_orbitals(OrbitalsConfig(molecule=str(molecule), grid_level=1, max_iterations=1, **change))
    assert parameter in str(error.value)


def test_unsupported_basis_and_open_shell_are_refused():
    from densitylab.dft.orbitals import OrbitalsSettings, optimise_orbitals

    with pytest.raises(InvalidParameterError, match="spin"):
        from pyscf import gto

        optimise_orbitals(gto.M(atom="N 0 0 0", spin=3, basis="6-31g", verbose=0), "lda,vwn")
    from pyscf import gto

    ecp = gto.M(atom="I 0 0 0; H 0 0 1.6", basis="lanl2dz", ecp="lanl2dz", verbose=0)
    with pytest.raises(InvalidParameterError, match="basis"):
        optimise_orbitals(ecp, "lda,vwn", OrbitalsSettings(grid_level=1, check_level=None))


def test_cli_orbitals_writes_a_basis_pyscf_reads(tmp_path):
    from typer.testing import CliRunner

    from densitylab.cli import app

    molecule = tmp_path / "h2o.xyz"
    molecule.write_text("3\nwater\nO 0 0 0.1173\nH 0 0.7572 -0.4692\nH 0 -0.7572 -0.4692\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "dft",
            "--molecule",
            str(molecule),
            "--xc",
            "lda,vwn",
            "--orbitals",
            "optimised-basis",
            "--max-iterations",
            "2",
            "--grid-level",
            "1",
            "--output",
            str(out),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["energy"] < summary["start_energy"]
    from pyscf import gto

    assert gto.M(atom=WATER, basis=str(out / "basis.nw"), verbose=0).nao == 13
    import densitylab

    loaded = densitylab.load(out)
    assert loaded.energy == pytest.approx(summary["energy"]) and loaded.manifest["optimised_basis"]["H"]
    refused = CliRunner().invoke(
        app, ["dft", "--molecule", str(molecule), "--xc", "pbe0", "--orbitals", "flow"]
    )
    assert refused.exit_code == 2 and "xc" in refused.output
    for option, name in (
        (["--spin", "2"], "spin"),
        (["--forces"], "forces"),
        (["--optimiser", "adam"], "optimiser"),
    ):
        arguments = ["dft", "--molecule", str(molecule), "--xc", "lda,vwn", "--orbitals", "flow", *option]
        ignored = CliRunner().invoke(app, arguments)
        assert ignored.exit_code == 2 and f"{name}: expected its default" in ignored.output


def test_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    """A minibatch run stopped after its checkpoint at step 2 continues from it (parameters,
    Adam's moments and the sampling generator) to the uninterrupted run's energy; a checkpoint
    of other settings is refused."""
    from densitylab.dft import orbitals
    from densitylab.dft.orbitals import OrbitalsSettings, optimise_orbitals

    monkeypatch.setattr(orbitals, "CHECKPOINT_EVERY", 2)
    settings = OrbitalsSettings(
        mode="minibatch", minibatch=512, max_iterations=3, grid_level=1, check_level=None
    )
    whole = optimise_orbitals(_mol(atom=H2), "lda,vwn", settings)
    checkpoint = tmp_path / "run.checkpoint.npz"

    def stop_at_3(done, total, **fields):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        optimise_orbitals(_mol(atom=H2), "lda,vwn", settings, stop_at_3, checkpoint)
    assert checkpoint.is_file()
    other = OrbitalsSettings(
        mode="minibatch", minibatch=512, max_iterations=3, grid_level=1, check_level=None, learning_rate=1e-3
    )
    with pytest.raises(InvalidParameterError, match="checkpoint"):
        optimise_orbitals(_mol(atom=H2), "lda,vwn", other, checkpoint=checkpoint)
    resumed = optimise_orbitals(_mol(atom=H2), "lda,vwn", settings, checkpoint=checkpoint)
    assert len(resumed.history) == 3 and not checkpoint.exists()
    assert resumed.energy == pytest.approx(whole.energy, abs=1e-10)
    assert [h["energy"] for h in resumed.history] == pytest.approx(
        [h["energy"] for h in whole.history], abs=1e-10
    )


def test_orbitals_config_shares_the_dft_defaults():
    """dft --orbitals builds OrbitalsConfig from the dft command's options, whose defaults are
    DFTConfig's: the shared fields must default alike, or the CLI and Python runs differ."""
    from dataclasses import MISSING, fields

    from densitylab.dft.workflow import DFTConfig, OrbitalsConfig

    dft_defaults = {f.name: f.default for f in fields(DFTConfig)}
    for field in fields(OrbitalsConfig):
        if (
            field.name in dft_defaults
            and field.name not in ("xc", "molecule")
            and field.default is not MISSING
        ):
            assert field.default == dft_defaults[field.name], field.name
