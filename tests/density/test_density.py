"""Density learning: the fit against the SCF density it fits, the one-step energy against the SCF
energy, rotational equivariance of predictions, the two solvers against each other, resumable
reference generation and bad input."""

import json
from dataclasses import replace

import ase
import featomic  # noqa: F401  (a hard dependency: missing, it fails the suite)
import hypothesis
import numpy as np
import pyscf  # noqa: F401  (a hard dependency: missing, it fails the suite)
import pytest
from hypothesis import strategies as st
from scipy import sparse as scipy_sparse
from scipy.spatial.transform import Rotation
from typer.testing import CliRunner

from densitylab.cli import app
from densitylab.density import cg as cg_solver
from densitylab.density import reference as reference_module
from densitylab.density import regression
from densitylab.density.energies import (
    grid_nmae_percent,
    grid_nmae_percents,
    one_step_energies,
    one_step_energy,
    pyscf_coefficients,
)
from densitylab.density.features import FeatureSettings
from densitylab.density.pipeline import load_model, predict, save_model, train
from densitylab.density.reference import (
    ReferenceSettings,
    auxiliary_molecule,
    build_molecule,
    generate_reference,
    load_reference,
    reference_for_structure,
)
from densitylab.density.regression import RegressionSettings
from densitylab.density.structures import (
    qm9_structures,
    read_structures,
    sample_normal_modes,
    write_structures,
)
from densitylab.errors import InvalidParameterError

SMALL_FEATURES = FeatureSettings(max_radial=4, max_angular=4, columns=200)


def _water_frames(count, seed=0):
    """Distorted waters from analytic modes (no Hessian needed): random small displacements."""
    angle, bond = np.deg2rad(104.5), 0.96
    base = ase.Atoms(
        "OH2",
        positions=[
            [0, 0, 0],
            [bond * np.sin(angle / 2), 0, bond * np.cos(angle / 2)],
            [-bond * np.sin(angle / 2), 0, bond * np.cos(angle / 2)],
        ],
    )
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        frame = base.copy()
        frame.positions += rng.normal(scale=0.04, size=(3, 3))
        frame.positions = Rotation.random(random_state=rng.integers(2**31)).apply(frame.positions)
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def water_reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("density") / "ref.h5"
    generate_reference(_water_frames(8), path, ReferenceSettings(chunk_size=4))
    return load_reference(path)


def test_fit_reproduces_scf_density_and_electron_count(water_reference):
    """The fitted density integrates to N and lies within the known fitting floor of the SCF
    density on the grid; the Coulomb metric conserves charge better than the overlap metric."""
    counts = water_reference.electron_counts()
    assert np.all(np.abs(counts - 10.0) < 5e-3)
    frame = water_reference.atoms(0)
    mol = build_molecule(frame.numbers, frame.positions, "def2-svp")
    auxmol = auxiliary_molecule(mol, water_reference.settings)
    nmae = grid_nmae_percent(
        mol, auxmol, water_reference.coefficients[0], water_reference.density_matrices[0]
    )
    assert 0.3 < nmae < 1.5
    coulomb = reference_for_structure(frame.numbers, frame.positions, ReferenceSettings(metric="coulomb"))
    assert abs(coulomb["coefficients"] @ coulomb["integrals"] - 10.0) < abs(counts[0] - 10.0)


def test_auxiliary_integrals_and_overlap_match_quadrature(water_reference):
    """∫φ_P (analytic) against quadrature on a fine grid, for jkfit and even-tempered functions;
    the overlap recomputed from the geometry against quadrature of φ_P φ_Q."""
    from pyscf import dft

    frame = water_reference.atoms(1)
    mol = build_molecule(frame.numbers, frame.positions, "def2-svp")
    for settings in (ReferenceSettings(), ReferenceSettings(auxbasis="etb")):
        auxmol = auxiliary_molecule(mol, settings)
        grids = dft.gen_grid.Grids(auxmol)
        grids.level = 6
        grids.build(with_non0tab=False)
        values = dft.numint.eval_ao(auxmol, grids.coords)
        quadrature = grids.weights @ values
        analytic = reference_module.auxiliary_integrals(auxmol)
        assert np.count_nonzero(np.abs(analytic) > 1e-3) > 10
        np.testing.assert_allclose(analytic, quadrature, atol=1e-6 * np.abs(quadrature).max())
    order = reference_module.featomic_order(reference_module.function_labels(auxmol))
    overlap = reference_module.auxiliary_overlap(frame.numbers, frame.positions, settings)
    chosen = np.arange(0, len(overlap), len(overlap) // 40)
    sample = (values * grids.weights[:, None])[:, order][:, chosen].T @ values[:, order][:, chosen]
    np.testing.assert_allclose(overlap[np.ix_(chosen, chosen)], sample, atol=1e-6)
    assert len(water_reference.overlap) == len(water_reference)
    np.testing.assert_allclose(water_reference.overlap[1].diagonal(), 1.0, atol=1e-10)


def test_selected_products_equal_the_full_lambda_soap():
    """The cheap route (spherical expansion, then only the kept Clebsch–Gordan products) equals
    featomic's full λ-SOAP on the kept columns, for several species and λ up to 4, and its
    column labels (from one isolated atom per species) equal those of the real structures."""
    from densitylab.density import features as features_module

    positions = [
        [0, 0, 0],
        [1.09, 0, 0],
        [-0.4, 1.0, 0],
        [-0.4, -0.5, 0.9],
        [-0.5, -0.6, -1.2],
        [0.6, -1.2, -1.6],
    ]
    frames = [*_water_frames(2), ase.Atoms("CH3NO", positions=positions)]
    species, settings = [1, 6, 7, 8], FeatureSettings(max_radial=3, max_angular=3, columns=40)
    full = features_module.lambda_soap(frames, 4, species, settings)
    labels = features_module.product_labels(4, species, settings)
    calculator = features_module._calculator(species, settings)
    metadata = calculator.compute_metadata(frames, neighbors_to_properties=True)
    for (centre, l), values in full.blocks.items():
        block = metadata.block({"o3_lambda": l, "o3_sigma": 1, "center_type": centre})
        assert np.array_equal(labels[(centre, l)], block.properties.values[:, [0, 1, 2, 3, 4, 5]])
        assert labels[(centre, l)].shape[0] == values.shape[-1] > 40
    columns = features_module.choose_columns(frames, 4, species, settings, max_rows=3)
    assert all(len(c) == 40 and len(set(c)) == 40 for c in columns.values())
    cheap = features_module.selected_lambda_soap(frames, 4, species, settings, columns, rows_per_batch=2)
    expected = features_module.apply_columns(full, columns)
    for key, values in expected.blocks.items():
        assert np.array_equal(cheap.atoms[key[0]], expected.atoms[key[0]])
        np.testing.assert_allclose(cheap.blocks[key], values, atol=1e-12)
        assert np.abs(values).max() > 0.1


def test_reference_shards_concatenate_and_other_settings_are_refused(water_reference):
    from dataclasses import replace as replace_field

    joined = reference_module.concatenate_references([water_reference, water_reference])
    assert len(joined) == 2 * len(water_reference) == len(joined.overlap)
    np.testing.assert_allclose(
        joined.overlap[len(water_reference) + 2], water_reference.overlap[2], atol=1e-14
    )
    np.testing.assert_allclose(
        joined.electron_counts()[len(water_reference) :], water_reference.electron_counts()
    )
    other = replace_field(water_reference, settings=ReferenceSettings(auxbasis="etb"))
    with pytest.raises(InvalidParameterError, match="references"):
        reference_module.concatenate_references([water_reference, other])


def test_one_step_energy_is_second_order_in_the_density_error():
    """Harris–Foulkes from a near-exact fitted density (even-tempered basis, 0.2 % NMAE) lands
    within 0.5 meV/atom of the SCF energy it was fitted to."""
    frame = _water_frames(1, seed=3)[0]
    fine = ReferenceSettings(auxbasis="etb", metric="coulomb")
    result = reference_for_structure(frame.numbers, frame.positions, fine)
    mol = build_molecule(frame.numbers, frame.positions, fine.basis)
    auxmol = auxiliary_molecule(mol, fine)
    energy = one_step_energy(mol, auxmol, result["coefficients"], fine.xc)
    error_mev_per_atom = (energy["energy"] - result["energy"]) * 27211.386 / 3
    assert abs(error_mev_per_atom) < 0.5


def test_one_pass_energies_match_separate_ones(water_reference):
    """Several densities in one grid pass: each energy equals its own one-step energy, and the
    grid NMAE equals the separate grid pass (so nothing leaks between the densities)."""
    frame = water_reference.atoms(1)
    mol = build_molecule(frame.numbers, frame.positions, "def2-svp")
    auxmol = auxiliary_molecule(mol, water_reference.settings)
    fitted = water_reference.coefficients[1]
    perturbed = fitted * (1.0 + 0.02 * np.random.default_rng(0).standard_normal(fitted.size))
    matrix = water_reference.density_matrices[1]
    both = one_step_energies(mol, auxmol, [fitted, perturbed], "pbe", 2, density_matrix=matrix)
    for coefficients, result in zip([fitted, perturbed], both, strict=True):
        alone = one_step_energy(mol, auxmol, coefficients, "pbe", 2)
        for key in ("energy", "hartree", "xc", "band_energy"):
            assert abs(result[key] - alone[key]) < 1e-10
    nmae = grid_nmae_percents(mol, auxmol, [fitted, perturbed], matrix, 2)
    np.testing.assert_allclose([r["grid_nmae_percent"] for r in both], nmae, rtol=1e-10)


@pytest.fixture(scope="module")
def trained_pair(water_reference):
    direct, _ = train(
        water_reference, list(range(6)), SMALL_FEATURES, RegressionSettings(10, solver="direct")
    )
    cg, info = train(water_reference, list(range(6)), SMALL_FEATURES, RegressionSettings(10, solver="cg"))
    return direct, cg, info


def test_direct_and_cg_solvers_agree(trained_pair, water_reference):
    direct, cg, info = trained_pair
    assert info["relative_residual"] < 1e-9
    frames = [water_reference.atoms(i) for i in (6, 7)]
    from_direct, _ = predict(direct, frames)
    from_cg, _ = predict(cg, frames)
    for a, b in zip(from_direct, from_cg, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


@pytest.fixture(scope="module")
def etb_water(tmp_path_factory):
    """8 distorted waters in the even-tempered auxiliary basis (an ill-conditioned metric)."""
    path = tmp_path_factory.mktemp("etb") / "etb.h5"
    generate_reference(_water_frames(8, seed=3), path, ReferenceSettings(auxbasis="etb", chunk_size=8))
    return load_reference(path)


def test_cg_preconditioner_is_the_one_centre_block_and_cg_matches_direct_in_the_even_tempered_basis(
    etb_water,
):
    """The preconditioner's s ⊗ G equals the same-atom part of Σ ΦᵀSΦ assembled atom by atom;
    with it CG reaches a 1e-10 residual on the ill-conditioned even-tempered metric (20,000
    iterations did not before) and gives the direct solution."""
    reference = etb_water
    indices = list(range(6))
    settings = RegressionSettings(10, solver="direct", regularisation=1e-8)
    direct, _ = train(reference, indices, SMALL_FEATURES, settings)
    cg, info = train(
        reference, indices, SMALL_FEATURES, replace(settings, solver="cg", cg_max_iterations=3000)
    )
    assert info["relative_residual"] < 1e-9 and info["iterations"] < 3000
    np.testing.assert_allclose(
        regression.flat_weights(cg.model), regression.flat_weights(direct.model), atol=1e-6
    )
    # metrics held in single precision: S rounded to float32 (its smallest eigenvalues move by
    # about their own size), applied in double, so CG still converges; the held-out densities
    # move by far less than the model's own error
    single, single_info = train(
        reference, indices, SMALL_FEATURES,
        replace(settings, solver="cg", cg_max_iterations=3000, metric_precision="single"),
    )  # fmt: skip
    assert single_info["relative_residual"] < 1e-9
    held = [reference.atoms(i) for i in (6, 7)]
    for i, a, b in zip((6, 7), predict(direct, held)[0], predict(single, held)[0], strict=True):
        metric = reference.overlap[i]
        error = a - reference.coefficients[i]
        shift = a - b
        print("single vs double", np.sqrt(shift @ metric @ shift / (error @ metric @ error)))
        assert shift @ metric @ shift < 1e-4 * (error @ metric @ error)

    frames = [reference.atoms(i) for i in indices]
    labels, numbers = [reference.labels[i] for i in indices], [reference.numbers[i] for i in indices]
    overlaps = [reference.overlap[i] for i in indices]
    designs = regression.design_matrices(direct.model, direct.featurise(frames), labels, numbers)
    layout = regression._weight_layout(direct.model)
    one_centre = cg_solver.one_centre_overlaps(overlaps, labels, numbers)
    problem = cg_solver.CGProblem(designs, [cg_solver.pack_metric(s) for s in overlaps], layout, one_centre)
    dense = sum(d.T @ (s @ d.toarray()) for d, s in zip(designs, overlaps, strict=True))
    blockwise = regression._normal_system(designs, overlaps, None, dense.shape[0], layout)[0]
    np.testing.assert_allclose(blockwise, dense, atol=1e-12 * np.abs(dense).max())
    same_atom = np.zeros((designs[0].shape[1],) * 2)
    for design, overlap, label in zip(designs, overlaps, labels, strict=True):
        for atom in np.unique(label[:, 0]):
            rows = np.flatnonzero(label[:, 0] == atom)
            block = design.tocsr()[rows].toarray()
            same_atom += block.T @ overlap[np.ix_(rows, rows)] @ block
    for offset, channels, width, u, sigma, v, kappa in problem.factors:
        kronecker = np.kron(u @ np.diag(sigma) @ u.T, v @ np.diag(kappa) @ v.T)
        piece = same_atom[offset : offset + channels * width, offset : offset + channels * width]
        np.testing.assert_allclose(kronecker, piece, atol=1e-10 * np.abs(piece).max())
    assert len(problem.factors) >= 6 and max(f[1] for f in problem.factors) > 10  # many radial channels


class _Interrupted(Exception):
    pass


def test_an_interrupted_cg_fit_resumes_where_it_stopped_and_refuses_other_settings(
    trained_pair, water_reference, tmp_path, monkeypatch
):
    """A CG fit (η scan, then the final fit) killed in the middle of a solve resumes from its
    checkpoint: finished solves are read, the solve in progress continues from its last iterate
    to the same stopping point, and the weights equal an uninterrupted fit's. Other settings are
    refused, naming the checkpoint."""
    import densitylab.checkpoint as checkpoint_module

    _, uninterrupted, uninterrupted_info = trained_pair
    path = tmp_path / "fit.checkpoint.npz"
    settings = RegressionSettings(10, solver="cg")
    written = checkpoint_module.write_checkpoint
    partial_writes = []

    def dying(path_, job, arrays, state):
        written(path_, job, arrays, state)
        if state["partial"] is not None and state["finished"]:  # a solve after the first one
            partial_writes.append(state["partial"]["key"])
            if len(partial_writes) == 3:  # its third iterate
                raise _Interrupted

    monkeypatch.setattr(cg_solver, "CHECKPOINT_SECONDS", 0.0)
    monkeypatch.setattr(checkpoint_module, "write_checkpoint", dying)
    with pytest.raises(_Interrupted):
        train(water_reference, list(range(6)), SMALL_FEATURES, settings, checkpoint=path)
    monkeypatch.setattr(checkpoint_module, "write_checkpoint", written)
    solves = []
    solver = cg_solver.conjugate_gradients

    def counted(*args):
        solves.append(args[6])  # the reference norm: given only to a resumed solve
        return solver(*args)

    monkeypatch.setattr(cg_solver, "conjugate_gradients", counted)
    resumed, info = train(water_reference, list(range(6)), SMALL_FEATURES, settings, checkpoint=path)
    # the finished solves were read, the interrupted one resumed with its stopping point
    assert solves[0] is not None and len(solves) < len(info["regularisation_scan"]) + 1
    frames = [water_reference.atoms(i) for i in (6, 7)]  # as the direct and CG solves are compared
    for a, b in zip(predict(resumed, frames)[0], predict(uninterrupted, frames)[0], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)
    assert info["regularisation"] == uninterrupted_info["regularisation"]
    assert info["relative_residual"] < 1e-9
    with pytest.raises(InvalidParameterError, match=r"^checkpoint"):
        train(water_reference, list(range(6)), SMALL_FEATURES, replace(settings, zeta=1), checkpoint=path)
    with pytest.raises(InvalidParameterError, match=r"^checkpoint"):
        train(water_reference, list(range(5)), SMALL_FEATURES, settings, checkpoint=path)


@hypothesis.given(st.integers(1, 40), st.integers(0, 2**31))
@hypothesis.settings(max_examples=20, deadline=None)
def test_packed_metric_applies_as_the_dense_one(size, seed):
    """CG's packed metric (half the memory) multiplies like the dense symmetric matrix."""
    rng = np.random.default_rng(seed)
    half = rng.standard_normal((size, size))
    metric, vector = half @ half.T, rng.standard_normal(size)
    packed = cg_solver.pack_metric(metric)
    assert packed.shape == (size * (size + 1) // 2,)
    np.testing.assert_allclose(cg_solver.metric_times(packed, vector), metric @ vector, atol=1e-12 * size)


def test_evaluation_on_two_workers_equals_the_serial_one(trained_pair, water_reference):
    """Two workers give the serial result; two models evaluated in one grid pass give what each
    gives alone."""
    from densitylab.density.pipeline import evaluate, evaluate_models

    direct, cg, _ = trained_pair
    serial, _ = evaluate(direct, water_reference, [6, 7])
    parallel, _ = evaluate(direct, water_reference, [6, 7], workers=2)
    alone, _ = evaluate(cg, water_reference, [6, 7])
    together = evaluate_models([direct, cg], water_reference, [6, 7])
    with pytest.raises(InvalidParameterError, match="workers"):
        evaluate(direct, water_reference, [6, 7], workers=0)
    for first, second in [(serial, parallel), (serial, together[0][0]), (alone, together[1][0])]:
        for key, value in first.items():
            if not key.endswith("seconds"):
                assert second[key] == pytest.approx(value, rel=1e-10, abs=1e-12), key
    assert serial["rmse_percent"] != alone["rmse_percent"]  # two different models


def test_structures_without_one_of_the_model_species_are_predicted(trained_pair):
    """A water model predicts H2 (no O): only the species present need features."""
    direct, _, _ = trained_pair
    h2 = ase.Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]])
    (coefficients,), (labels,) = predict(direct, [h2])
    assert len(coefficients) == len(labels) > 0 and set(labels[:, 0]) == {0, 1}
    assert np.all(np.isfinite(coefficients))


def _density_at(trained, frame, coefficients, points):
    mol = build_molecule(np.asarray(frame.numbers), frame.positions, trained.reference.basis)
    auxmol = auxiliary_molecule(mol, trained.reference)
    return auxmol.eval_gto("GTOval_sph", points) @ pyscf_coefficients(auxmol, coefficients)


def test_predicted_density_is_rotation_equivariant(trained_pair):
    """ρ_pred[R·structure](R r) = ρ_pred[structure](r) to 1e-8."""
    _, model, _ = trained_pair
    frame = _water_frames(1, seed=11)[0]
    rotation = Rotation.random(random_state=5)
    rotated = frame.copy()
    rotated.positions = rotation.apply(frame.positions)
    (c_frame, c_rotated), _ = predict(model, [frame, rotated])
    points = np.random.default_rng(0).normal(scale=1.5, size=(200, 3))  # bohr
    original = _density_at(model, frame, c_frame, points)
    turned = _density_at(model, rotated, c_rotated, rotation.apply(points))
    assert np.max(np.abs(original - turned)) < 1e-8 * np.max(np.abs(original))
    # the charge-conserving correction gives exactly 10 electrons; without it the count is off
    from densitylab.density.reference import auxiliary_integrals

    mol = build_molecule(np.asarray(frame.numbers), frame.positions, model.reference.basis)
    order = reference_module.featomic_order(
        reference_module.function_labels(auxiliary_molecule(mol, model.reference))
    )
    integrals = auxiliary_integrals(auxiliary_molecule(mol, model.reference))[order]
    assert c_frame @ integrals == pytest.approx(10.0, abs=1e-9)
    (raw,), _ = predict(model, [frame], conserve_charge=False)
    assert abs(raw @ integrals - 10.0) > 1e-6
    assert np.max(np.abs(raw - c_frame)) < 0.05 * np.max(np.abs(c_frame))


def test_model_round_trip_and_unknown_species(trained_pair, tmp_path):
    _, model, _ = trained_pair
    save_model(model, tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    frame = _water_frames(1, seed=2)[0]
    np.testing.assert_allclose(
        predict(loaded, [frame])[0][0], predict(model, [frame])[0][0], rtol=1e-10, atol=1e-12
    )
    save_model(model, tmp_path / "compact", single_precision=True)
    compact = load_model(tmp_path / "compact")
    full = predict(model, [frame])[0][0]
    assert np.max(np.abs(predict(compact, [frame])[0][0] - full)) < 1e-5 * np.max(np.abs(full))
    assert (tmp_path / "compact" / "arrays.h5").stat().st_size < (
        tmp_path / "model" / "arrays.h5"
    ).stat().st_size
    ammonia = ase.Atoms(
        "NH3", positions=[[0, 0, 0], [0.94, 0, 0.38], [-0.47, 0.81, 0.38], [-0.47, -0.81, 0.38]]
    )
    with pytest.raises(InvalidParameterError, match="only species the model was trained on"):
        predict(loaded, [ammonia])


def test_reference_generation_resumes_after_an_interrupt(tmp_path, interrupt_second_chunk):
    frames = _water_frames(3, seed=7)
    output = tmp_path / "resume.h5"
    with pytest.raises(KeyboardInterrupt):
        generate_reference(frames, output, ReferenceSettings(chunk_size=1))
    assert not output.exists()
    interrupt_second_chunk()  # puts the real chunk task back
    summary = generate_reference(frames, output, ReferenceSettings(chunk_size=1))
    assert summary["resumed_chunks"] == 1 and summary["computed_chunks"] == 2
    resumed = load_reference(output)
    fresh = reference_for_structure(frames[0].numbers, frames[0].positions, ReferenceSettings())
    np.testing.assert_allclose(resumed.coefficients[0], fresh["coefficients"], atol=1e-7)
    with pytest.raises(InvalidParameterError, match="output"):
        generate_reference(frames, output, ReferenceSettings(chunk_size=1, metric="coulomb"))


def test_bad_structures(tmp_path):
    empty = tmp_path / "empty.xyz"
    empty.write_text("")
    with pytest.raises(InvalidParameterError, match="structures: expected a non-empty"):
        read_structures(empty)
    with pytest.raises(InvalidParameterError, match="structures"):
        generate_reference([ase.Atoms("X", positions=[[0, 0, 0]])], tmp_path / "x.h5")
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "density",
            "predict",
            "--structures",
            str(empty),
            "--model",
            str(tmp_path),
            "--output",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 2 and "model: expected" in result.output
    from densitylab.density.workflow import ReferenceConfig

    with pytest.raises(InvalidParameterError, match=r"^chunk_size"):  # 0 fell back to the default
        ReferenceConfig(water=2, chunk_size=0)
    assert ReferenceConfig(water=2, chunk_size=None).settings().chunk_size == 10


def test_a_cutoff_featomic_cannot_expand_is_refused_naming_it():
    """Beyond about 37 Gaussian widths featomic's radial integral panics (a FeatomicError with a
    Rust backtrace, after the training had started); the settings refuse it, and the largest
    cutoff they allow is one featomic expands."""
    from ase.build import molecule

    from densitylab.density.features import MAX_CUTOFF_OVER_WIDTH, lambda_soap

    with pytest.raises(InvalidParameterError, match=r"^cutoff: expected at most 35 × the Gaussian width"):
        FeatureSettings(cutoff=100.0)
    for width in (0.3, 0.5):
        largest = FeatureSettings(cutoff=MAX_CUTOFF_OVER_WIDTH * width, width=width, columns=None)
        features = lambda_soap([molecule("H2O")], 1, [1, 8], largest)
        assert all(np.all(np.isfinite(block)) for block in features.blocks.values())


def test_qm9_rows_are_parsed_and_selected_by_heavy_atoms(tmp_path):
    """The qm9pack CSV format (Elements as a quoted list, XYZ_Ang as a nested list)."""
    header = "XYZ_file,Index,SMILES,Elements,XYZ_Ang\n"
    rows = [
        (
            "\"m1.xyz\",1,\"C\",\"['C','H','H','H','H']\",\"[[0,0,0],[0.6,0.6,0.6],[-0.6,-0.6,0.6],"
            '[0.6,-0.6,-0.6],[-0.6,0.6,-0.6]]"'
        ),
        '"m2.xyz",2,"O","[\'O\',\'H\',\'H\']","[[0,0,0],[0.76,0,0.59],[-0.76,0,0.59]]"',
        '"m3.xyz",3,"CO","[\'C\',\'O\']","[[0,0,0],[0,0,1.13]]"',
    ]
    (tmp_path / "part.csv").write_text(header + "\n".join(rows) + "\n")
    frames = qm9_structures(2, 1, path=tmp_path)
    assert frames[0].get_chemical_formula() == "CO" and frames[0].info["name"] == "m3.xyz"
    np.testing.assert_allclose(frames[0].get_distance(0, 1), 1.13)
    assert sorted(f.get_chemical_formula() for f in qm9_structures(1, 2, path=tmp_path)) == ["CH4", "H2O"]
    with pytest.raises(InvalidParameterError, match=r"^count: expected at most 2 molecules"):
        qm9_structures(1, 3, path=tmp_path)
    with pytest.raises(InvalidParameterError, match=r"^heavy_atoms: .*none has 5 heavy atoms"):
        qm9_structures(5, 1, path=tmp_path)


def test_normal_mode_sampler_keeps_the_molecule_rigid_in_rotation_only():
    """With no vibrational modes (all frequencies zero) the sampler only rotates: distances kept."""
    frame = _water_frames(1)[0]
    frames = sample_normal_modes(frame, np.zeros(9), np.eye(9), 4, 300.0, seed=1)
    for sampled in frames:
        np.testing.assert_allclose(sampled.get_all_distances(), frame.get_all_distances(), atol=1e-12)


def test_cli_end_to_end(tmp_path, water_reference):
    frames = [water_reference.atoms(i) for i in range(len(water_reference))]
    xyz = write_structures(frames[:4], tmp_path / "w.xyz")
    runner = CliRunner()
    reference = tmp_path / "ref.h5"
    result = runner.invoke(
        app, ["density", "reference", "--structures", str(xyz), "--output", str(reference), "--json"]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        [
            "density",
            "train",
            "--reference",
            str(reference),
            "--train",
            "3",
            "--sparse",
            "6",
            "--columns",
            "150",
            "--output",
            str(tmp_path / "model"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        [
            "density",
            "evaluate",
            "--model",
            str(tmp_path / "model"),
            "--reference",
            str(reference),
            "--indices",
            "3:4",
            "--plot",
            str(tmp_path / "figures"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "figures" / "parity.png").stat().st_size > 10_000
    assert (tmp_path / "figures" / "density_slices.png").stat().st_size > 10_000
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"rmse_percent", "grid_nmae_percent", "energy_mae_mev_per_atom"} <= set(summary)
    assert summary["grid_nmae_percent"] >= 0.9 * summary["grid_nmae_floor_percent"]
    # one water (3 atoms): the per-molecule MAE is 3 × the per-atom one, in other units
    for prefix in ("energy", "energy_floor", "energy_hartree", "energy_xc"):
        per_atom = summary[f"{prefix}_mae_mev_per_atom"]
        assert summary[f"{prefix}_mae_kcal_per_mol"] == pytest.approx(
            3 * per_atom / 27211.386 * 627.5095, rel=1e-6
        )
    # the components are first order in the density error, the total (stationary) second order
    assert summary["energy_mae_mev_per_atom"] < max(summary["energy_hartree_mae_mev_per_atom"], 1e-3)
    result = runner.invoke(
        app,
        [
            "density",
            "predict",
            "--structures",
            str(xyz),
            "--model",
            str(tmp_path / "model"),
            "--output",
            str(tmp_path / "p"),
            "--cube-points",
            "20",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "p").glob("*.cube"))) == 4


def test_water_generator_is_reproducible():
    """The same seed gives the same structures in every run (normal-mode signs are fixed)."""
    from densitylab.density.structures import water_normal_modes

    first = water_normal_modes()
    second = water_normal_modes()
    np.testing.assert_allclose(first[2], second[2], atol=1e-8)
    a = sample_normal_modes(*first, count=3, temperature=300.0, seed=4)
    b = sample_normal_modes(*second, count=3, temperature=300.0, seed=4)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x.positions, y.positions, atol=1e-8)
    # PBE/def2-SVP water at the experimental geometry: bend ≈ 1530, stretches ≈ 3900–4050 cm⁻¹
    wavenumbers = np.sort(first[1][first[1] > 1e-4]) * 219474.63
    assert wavenumbers.size == 3
    assert 1450 < wavenumbers[0] < 1750 and 3600 < wavenumbers[1] < wavenumbers[2] < 4300


def _synthetic_problem(noise_only: bool, molecules=12, rows=30, size=20, seed=0):
    """Random sparse designs Φ and SPD metrics S; targets Φ·b (a learnable map) or noise
    independent of Φ (nothing to learn). Labels give every row λ = 1, so the baseline is zero."""
    rng = np.random.default_rng(seed)
    designs, overlaps, targets = [], [], []
    truth = rng.normal(size=size)
    for _ in range(molecules):
        design = scipy_sparse.random(rows, size, density=0.3, random_state=rng, format="csr")
        root = rng.normal(size=(rows, rows)) / np.sqrt(rows)
        overlap = root @ root.T + 0.5 * np.eye(rows)
        designs.append(design)
        overlaps.append(overlap)
        # a learnable map carries 1e-6 noise: held-out errors above the rounding floor (1e-6 %)
        # of the quadratic form the direct path evaluates them by
        targets.append(rng.normal(size=rows) if noise_only else design @ truth + 1e-6 * rng.normal(size=rows))
    labels = [np.tile([0, 1, 0, 0], (rows, 1)) for _ in range(molecules)]
    numbers = [np.array([1]) for _ in range(molecules)]
    model = regression.DensityModel([1], 1, {(1, 1): 1}, {}, {}, {(1, 1): np.zeros((1, size))})
    return model, designs, targets, overlaps, labels, numbers


def test_normal_matrix_matches_the_sparse_product():
    _, designs, _, overlaps, _, _ = _synthetic_problem(False)
    expected = sum((d.T @ s @ d.toarray()) for d, s in zip(designs, overlaps, strict=True))
    np.testing.assert_allclose(
        regression._normal_system(designs, overlaps, None, 20)[0], expected, atol=1e-12
    )


@pytest.mark.parametrize("solver", ["direct", "cg"])
def test_auto_regularisation_follows_the_signal(solver):
    """Learnable targets: the held-out error falls to ~0 and a small η wins (η ≤ 1e-7 tie at the
    floor, 6.8e-5 %, and which of them wins is rounding, machine-dependent). Pure noise: nothing
    generalises, so the most regularised fit (closest to predicting 0) wins."""
    settings = RegressionSettings(solver=solver)
    model, *problem = _synthetic_problem(noise_only=False)
    info = regression.fit(model, *problem, settings)
    assert info["solver"] == solver and info["regularisation"] <= 1e-7
    assert min(row["validation_rmse_percent"] for row in info["regularisation_scan"]) < 1e-2
    noisy, *problem = _synthetic_problem(noise_only=True)
    info = regression.fit(noisy, *problem, settings)
    assert info["regularisation"] == max(regression.REGULARISATION_GRID)
    assert all(row["validation_rmse_percent"] > 90 for row in info["regularisation_scan"])


def test_auto_regularisation_needs_two_molecules_and_eta_is_checked():
    model, *problem = _synthetic_problem(False, molecules=1)
    with pytest.raises(InvalidParameterError, match="regularisation"):
        regression.fit(model, *problem, RegressionSettings())
    for bad in (0.0, -1.0, "often", True):
        with pytest.raises(InvalidParameterError, match="regularisation"):
            RegressionSettings(regularisation=bad).check()


def test_held_out_accuracy_is_bounded(trained_pair, water_reference):
    """Catches a regression that still runs but predicts badly (wrong feature order, a dropped
    λ block, a wrong baseline): the % RMSE in the overlap metric on the two held-out waters of
    the fixture (deterministic) must stay within 3× of what it measured, 0.76 %."""
    from densitylab.density.pipeline import evaluate

    direct, _, _ = trained_pair
    metrics, _ = evaluate(direct, water_reference, [6, 7], energies=False)
    assert metrics["rmse_percent"] < 2.3


def test_predictions_are_invariant_to_swapping_equal_atoms_and_to_translation(trained_pair):
    """Catches features or baselines tied to atom order or absolute position: swapping the two
    H atoms swaps their coefficient blocks, and a translation changes nothing."""
    direct, _, _ = trained_pair
    frame = _water_frames(1, seed=21)[0]
    swapped = frame[[0, 2, 1]]
    moved = frame.copy()
    moved.positions += np.array([1.3, -0.7, 2.2])
    (original, swapped_c, moved_c), (labels, swapped_labels, _) = predict(direct, [frame, swapped, moved])
    np.testing.assert_allclose(moved_c, original, atol=1e-10)
    for atom, partner in ((0, 0), (1, 2), (2, 1)):
        mine = original[labels[:, 0] == atom]
        theirs = swapped_c[swapped_labels[:, 0] == partner]
        np.testing.assert_allclose(theirs, mine, atol=1e-10)
