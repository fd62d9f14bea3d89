"""Periodic references (issue 20, first part): the valence density of a two-water cell fitted
in the lattice-summed basis integrates to the valence electrons and matches the grid density;
translations by a lattice vector or by whole grid steps change nothing; permuting the molecules
permutes the coefficients; bad lattices are refused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from densitylab.density import periodic
from densitylab.density.cells import WaterCellSettings, packed_cell
from densitylab.errors import InvalidParameterError

# Translating a cell by an arbitrary vector moves its energy through the uniform grid (egg-box
# effect, measured with GTH-SZV: 13 mHa at 100 Ry, 0.45 mHa at 300 Ry), so exact invariance is
# tested on whole grid steps
SETTINGS = periodic.CellSettings(basis="gth-szv", ke_cutoff=200.0, etb_beta=1.6)
LENGTH = 5.0


@pytest.fixture(scope="module")
def two_waters():
    cell = packed_cell(WaterCellSettings(molecules=8), np.random.default_rng(0))[:6]
    cell.set_cell([LENGTH] * 3)
    cell.wrap()
    return cell


@pytest.fixture(scope="module")
def reference(two_waters):
    return periodic.cell_reference(two_waters.numbers, two_waters.positions, two_waters.cell.array, SETTINGS)


def _reference(atoms):
    return periodic.cell_reference(atoms.numbers, atoms.positions, atoms.cell.array, SETTINGS)


def test_fitted_valence_density_has_the_electrons_and_matches_the_grid(two_waters, reference):
    """The mesh densities, built in Fourier space (the SCF's by PySCF's multigrid, the fit's
    from the analytic transforms of its basis), hold the electrons and agree with the same
    densities sampled in real space from basis values (a second method)."""
    from pyscf.pbc.dft import numint

    from densitylab.density.basis import pyscf_coefficients

    assert reference["valence_electrons"] == 16
    assert reference["coefficients"] @ reference["integrals"] == pytest.approx(16.0, abs=0.05)
    cell = periodic.build_cell(two_waters.numbers, two_waters.positions, two_waters.cell.array, SETTINGS)
    auxcell = periodic.auxiliary_cell(cell, SETTINGS)
    coefficients, density_matrix = reference["coefficients"], reference["density_matrix"]
    densities = periodic.cell_mesh_densities(cell, auxcell, [coefficients], density_matrix, block_bytes=2**20)
    rho, fitted = (np.fft.ifftn(d.reshape(cell.mesh)).real.ravel() for d in densities)
    weight = cell.vol / rho.size
    assert rho.sum() * weight == pytest.approx(16.0, abs=1e-4)  # multigrid: 5e-6 off here
    assert fitted.sum() * weight == pytest.approx(coefficients @ reference["integrals"], abs=1e-8)
    coords = cell.gen_uniform_grids(cell.mesh)
    sampled = numint.eval_rho(cell, numint.eval_ao(cell, coords), density_matrix)
    sampled_fit = numint.eval_ao(auxcell, coords) @ pyscf_coefficients(auxcell, coefficients)
    assert 100 * np.abs(rho - sampled).sum() * weight / 16 < 0.2
    assert 100 * np.abs(fitted - sampled_fit).sum() * weight / 16 < 0.2
    (nmae,) = periodic.mesh_nmae_percents(cell, densities)
    assert nmae == pytest.approx(100 * np.abs(rho - fitted).sum() * weight / 16, rel=1e-12)
    assert 0.1 < nmae < 4.0  # the fit's own error


def test_translation_by_lattice_and_grid_steps_and_swapped_molecules_change_nothing(two_waters, reference):
    """Moving every atom by a lattice vector plus whole steps of the uniform grid, and listing
    the second molecule first, gives the same energy and the same coefficients, swapped."""
    cell = periodic.build_cell(two_waters.numbers, two_waters.positions, two_waters.cell.array, SETTINGS)
    moved = two_waters[[3, 4, 5, 0, 1, 2]]
    moved.positions += np.array([LENGTH, 0.0, -LENGTH]) + LENGTH / np.asarray(cell.mesh) * [3, -5, 7]
    result = _reference(moved)
    # 1.2e-8 Ha apart: the multigrid's coarser levels have grid steps of their own
    assert result["energy"] == pytest.approx(reference["energy"], abs=1e-7)
    first = reference["labels"][:, 0] < 3
    np.testing.assert_allclose(result["coefficients"][first], reference["coefficients"][~first], atol=1e-6)
    np.testing.assert_allclose(result["coefficients"][~first], reference["coefficients"][first], atol=1e-6)


@pytest.mark.parametrize(
    ("lattice", "message"),
    [
        (np.zeros((3, 3)), "independent"),
        (np.diag([5.0, 5.0, np.nan]), "finite"),
        (np.eye(2), "three"),
    ],
)
def test_bad_lattices_are_refused(two_waters, lattice, message):
    with pytest.raises(InvalidParameterError, match=rf"^lattice: .*{message}"):
        periodic.build_cell(two_waters.numbers, two_waters.positions, lattice, SETTINGS)


def test_bad_cell_settings_are_refused():
    with pytest.raises(InvalidParameterError, match=r"^ke_cutoff"):
        periodic.CellSettings(ke_cutoff=-1.0)
    for ratio in (float("inf"), float("nan"), 1.0):
        with pytest.raises(InvalidParameterError, match=r"^etb_beta: expected a finite ratio above 1"):
            periodic.CellSettings(etb_beta=ratio)
    with pytest.raises(InvalidParameterError, match=r"^basis"):
        periodic.build_cell(
            [8], [[0.0, 0.0, 0.0]], np.eye(3) * 5, periodic.CellSettings(basis="no-such-basis")
        )


# ------------------------------------------------------------------ cells through the pipeline


def _small_cells(count: int) -> list:
    cells = []
    for seed in range(count):
        cell = packed_cell(WaterCellSettings(molecules=8), np.random.default_rng(seed))[:6]
        cell.set_cell([LENGTH] * 3)
        cell.wrap()
        cells.append(cell)
    return cells


@pytest.fixture(scope="module")
def cell_model(tmp_path_factory):
    from densitylab.density.features import FeatureSettings
    from densitylab.density.pipeline import train
    from densitylab.density.reference import generate_reference, load_reference
    from densitylab.density.regression import RegressionSettings

    path = tmp_path_factory.mktemp("cells") / "cells.h5"
    generate_reference(_small_cells(4), path, SETTINGS)
    reference = load_reference(path)
    features = FeatureSettings(max_radial=4, max_angular=3, columns=100)
    trained, _ = train(
        reference, [0, 1, 2], features, RegressionSettings(8, solver="direct", regularisation=1e-6)
    )
    return trained, reference


def test_cell_references_round_trip_train_and_evaluate(cell_model, tmp_path):
    from densitylab.density.pipeline import evaluate, load_model, predict, save_model

    trained, reference = cell_model
    assert isinstance(reference.settings, periodic.CellSettings) and len(reference.lattices) == 4
    assert reference.atoms(0).pbc.all()
    np.testing.assert_allclose(reference.electron_counts(), 16.0, atol=0.05)
    summary, (predicted,) = evaluate(trained, reference, [3], energies=False)
    assert predicted @ reference.integrals[3] == pytest.approx(16.0, abs=1e-9)  # charge conserved
    assert summary["grid_nmae_percent"] >= summary["grid_nmae_floor_percent"] > 0
    assert summary["electron_count_error_max"] < 1e-9  # the valence electrons (16), not Σ Z (20)
    assert summary["rmse_percent"] < 100.0
    with_energies, _ = evaluate(trained, reference, [3])  # one KS step of the cell
    assert with_energies["grid_nmae_percent"] == pytest.approx(summary["grid_nmae_percent"], rel=1e-12)
    assert with_energies["energy_mae_mev_per_atom"] > 0 and with_energies["energy_floor_mae_mev_per_atom"] > 0
    copy = load_model(save_model(trained, tmp_path / "model"))
    assert isinstance(copy.reference, periodic.CellSettings)
    np.testing.assert_allclose(predict(copy, [reference.atoms(3)])[0][0], predicted, atol=1e-12)


def test_a_cell_evaluation_too_big_for_memory_is_refused_before_any_prediction(cell_model, monkeypatch):
    from densitylab import limits
    from densitylab.density import pipeline

    trained, reference = cell_model
    monkeypatch.setattr(limits, "available_memory", lambda: 1e6)
    monkeypatch.setattr(pipeline, "predict", lambda *args: pytest.fail("predicted before the check"))
    with pytest.raises(InvalidParameterError, match=r"^reference: .*evaluation of a 6-atom cell"):
        pipeline.evaluate(trained, reference, [3])


def test_cell_cube_spans_the_cell_and_holds_the_valence_electrons(cell_model, tmp_path):
    from ase.io.cube import read_cube_data

    from densitylab.density.pipeline import predict, write_density_cube

    trained, reference = cell_model
    cell = reference.atoms(3)
    (coefficients,), _ = predict(trained, [cell])
    count, path = write_density_cube(trained, cell, coefficients, tmp_path / "cell.cube", points=24)
    data, atoms = read_cube_data(str(path))
    np.testing.assert_allclose(atoms.cell.array, cell.cell.array, atol=1e-5)
    assert count == pytest.approx(16.0, abs=1e-9)
    # a uniform grid over one period integrates the lattice-summed density to the valence
    # electrons; the functions of atoms near a face, not summed over images, would lose some
    voxel = cell.get_volume() / data.size / 0.529177210903**3
    assert np.sum(data) * voxel == pytest.approx(16.0, abs=0.05)


def test_cell_predictions_follow_translations_permutations_and_supercells(cell_model):
    from densitylab.density.pipeline import predict

    trained, reference = cell_model
    cell = reference.atoms(3)
    (base,), (labels,) = predict(trained, [cell])
    moved = cell.copy()
    moved.positions += [1.3, -0.7, 2.1]
    np.testing.assert_allclose(predict(trained, [moved])[0][0], base, atol=1e-8)
    swapped = cell[[3, 4, 5, 0, 1, 2]]
    (permuted,), _ = predict(trained, [swapped])
    first = labels[:, 0] < 3
    np.testing.assert_allclose(permuted[first], base[~first], atol=1e-8)
    np.testing.assert_allclose(permuted[~first], base[first], atol=1e-8)
    (doubled,), (doubled_labels,) = predict(trained, [cell.repeat((2, 1, 1))])
    for image in range(2):  # the supercell's density per volume is the cell's
        rows = (doubled_labels[:, 0] >= 6 * image) & (doubled_labels[:, 0] < 6 * (image + 1))
        np.testing.assert_allclose(doubled[rows], base, atol=1e-6)


def test_cells_and_molecules_are_not_mixed_up(cell_model, tmp_path):
    import ase

    from densitylab.density.pipeline import predict
    from densitylab.density.reference import ReferenceSettings, generate_reference

    trained, reference = cell_model
    molecule = ase.Atoms(reference.atoms(3).get_chemical_symbols(), positions=reference.atoms(3).positions)
    with pytest.raises(InvalidParameterError, match=r"^structures: expected cells"):
        predict(trained, [molecule])
    with pytest.raises(InvalidParameterError, match=r"^structures: expected cells"):
        generate_reference([molecule], tmp_path / "x.h5", SETTINGS)
    with pytest.raises(InvalidParameterError, match=r"^structures: expected molecules"):
        generate_reference([reference.atoms(3)], tmp_path / "y.h5", ReferenceSettings())
    assert not list(tmp_path.iterdir())


def test_a_molecule_in_a_large_box_has_its_isolated_features(cell_model):
    trained, reference = cell_model
    molecule = reference.atoms(3)[:3]
    molecule.pbc = False
    molecule.cell = None
    molecule.center()
    boxed = molecule.copy()
    boxed.set_cell([20.0] * 3)
    boxed.pbc = True
    boxed.center()
    isolated, periodic_features = trained.featurise([molecule]), trained.featurise([boxed])
    for key, block in isolated.blocks.items():
        np.testing.assert_allclose(periodic_features.blocks[key], block, atol=1e-10)


def test_cli_reference_takes_cells_to_the_periodic_path(cell_model, tmp_path):
    from typer.testing import CliRunner

    from densitylab.cli import app
    from densitylab.density.reference import load_reference
    from densitylab.density.structures import write_structures

    _, reference = cell_model
    structures = write_structures(_small_cells(1), tmp_path / "cell.extxyz")
    output = tmp_path / "cell.h5"
    arguments = ["density", "reference", "--structures", str(structures), "--output", str(output)]
    options = ["--basis", "gth-szv", "--ke-cutoff", "200", "--etb-beta", "1.6"]
    result = CliRunner().invoke(app, [*arguments, *options])
    assert result.exit_code == 0, result.output
    stored = load_reference(output)
    assert stored.settings == reference.settings
    np.testing.assert_allclose(stored.coefficients[0], reference.coefficients[0], atol=1e-8)


def test_blocked_fit_equals_the_whole_fit(two_waters, reference):
    cell = periodic.build_cell(two_waters.numbers, two_waters.positions, two_waters.cell.array, SETTINGS)
    auxcell = periodic.auxiliary_cell(cell, SETTINGS)
    whole, overlap = periodic.fit_cell_density(cell, auxcell, reference["density_matrix"])
    blocked, _ = periodic.fit_cell_density(cell, auxcell, reference["density_matrix"], block_bytes=10**5)
    np.testing.assert_allclose(blocked, whole, rtol=1e-9, atol=1e-10)
    # one shell per block: PySCF screens each slice on its own, which moves the projections
    # by ~1e-8 (the integrals' precision), amplified in c by the conditioning of S̄
    single, _ = periodic.fit_cell_density(cell, auxcell, reference["density_matrix"], block_bytes=1)
    projections = overlap @ whole
    assert np.abs(overlap @ single - projections).max() < 1e-7 * np.abs(projections).max()


def test_a_cell_too_big_for_memory_is_refused_before_any_work(two_waters, tmp_path, monkeypatch):
    from densitylab import limits
    from densitylab.density.reference import generate_reference

    cell = periodic.build_cell(two_waters.numbers, two_waters.positions, two_waters.cell.array, SETTINGS)
    needed = periodic.reference_memory(cell, periodic.auxiliary_cell(cell, SETTINGS))
    # the estimate grows with the mesh: a higher cutoff needs more
    dense = periodic.build_cell(
        two_waters.numbers,
        two_waters.positions,
        two_waters.cell.array,
        periodic.CellSettings(basis="gth-szv", ke_cutoff=400.0),
    )
    assert periodic.reference_memory(dense, periodic.auxiliary_cell(dense, SETTINGS)) > needed
    monkeypatch.setattr(limits, "available_memory", lambda: 0.5 * needed)
    with pytest.raises(InvalidParameterError, match=r"^structures.*GiB"):
        generate_reference([two_waters], tmp_path / "big.h5", SETTINGS)
    assert list(tmp_path.iterdir()) == []


def test_a_larger_box_with_the_same_atoms_is_checked_for_memory_too(two_waters, tmp_path, monkeypatch):
    """Catches a memory check that looks only at the cell with the most atoms: a box of the same
    two waters with twice the edge has an eight times larger mesh, and it is refused before any
    SCF even when it comes after a cell that fits."""
    from densitylab import limits
    from densitylab.density.reference import generate_reference

    wide = two_waters.copy()
    wide.set_cell(2.0 * two_waters.cell.array, scale_atoms=False)
    sizes = [
        periodic.reference_memory(cell, periodic.auxiliary_cell(cell, SETTINGS))
        for frame in (two_waters, wide)
        for cell in [periodic.build_cell(frame.numbers, frame.positions, frame.cell.array, SETTINGS)]
    ]
    assert sizes[1] > sizes[0]
    monkeypatch.setattr(limits, "available_memory", lambda: 0.5 * (sizes[0] + sizes[1]))
    with pytest.raises(InvalidParameterError, match=r"^structures.*GiB"):
        generate_reference([two_waters, wide], tmp_path / "cells.h5", SETTINGS)
    assert list(tmp_path.iterdir()) == []


def test_cell_references_resume_after_an_interrupt(two_waters, reference, tmp_path, interrupt_second_chunk):
    from densitylab.density.reference import generate_reference, load_reference

    moved = two_waters.copy()
    moved.positions += [0.4, 0.0, 0.0]
    frames = [two_waters, moved]
    settings = dataclasses.replace(SETTINGS, chunk_size=1)
    output = tmp_path / "cells.h5"
    with pytest.raises(KeyboardInterrupt):
        generate_reference(frames, output, settings)
    assert not output.exists()
    interrupt_second_chunk()  # puts the real chunk task back
    summary = generate_reference(frames, output, settings)
    assert summary["resumed_chunks"] == 1 and summary["computed_chunks"] == 1
    np.testing.assert_allclose(load_reference(output).coefficients[0], reference["coefficients"], atol=1e-7)
    with pytest.raises(InvalidParameterError, match="output"):
        generate_reference(frames, output, dataclasses.replace(SETTINGS, ke_cutoff=250.0, chunk_size=1))


def test_one_step_energy_of_the_scf_density_is_the_scf_energy(two_waters, reference):
    """Harris–Foulkes is stationary: one KS step from the self-consistent density gives the
    reference SCF's energy itself (PySCF's multigrid SCF); its Hartree energy matches PySCF's
    FFTDF Coulomb of the density matrix and its XC energy PySCF's multigrid XC; a density off
    the fit by 0.1 % gives a different energy, and the fit gives its own."""
    from pyscf.pbc import df

    cell = periodic.build_cell(two_waters.numbers, two_waters.positions, two_waters.cell.array, SETTINGS)
    auxcell = periodic.auxiliary_cell(cell, SETTINGS)
    density_matrix, fit = reference["density_matrix"], reference["coefficients"]
    densities = periodic.cell_mesh_densities(cell, auxcell, [fit, 1.001 * fit], density_matrix)
    scf, fitted, scaled = periodic.cell_one_step_energies(cell, densities, "pbe")
    assert scf["energy"] == pytest.approx(reference["energy"], abs=1e-8)
    coulomb = df.FFTDF(cell).get_jk(density_matrix, with_k=False)[0]
    assert scf["hartree"] == pytest.approx(0.5 * np.sum(density_matrix * coulomb), abs=1e-5)
    _, xc_energy, _ = periodic.mesh_numint(cell).nr_rks(cell, None, "pbe", density_matrix)
    assert scf["xc"] == pytest.approx(xc_energy, abs=1e-9)
    assert 1e-5 < abs(fitted["energy"] - scf["energy"]) < 1e-2  # the fit's floor, second order
    assert abs(scaled["hartree"] - fitted["hartree"]) > 1e-3
    with pytest.raises(InvalidParameterError, match=r"^xc"):
        periodic.cell_one_step_energies(cell, densities, "b3lyp")
