"""Periodic references (issue 20, first part): the valence density of a two-water cell fitted
in the lattice-summed basis integrates to the valence electrons and matches the grid density;
translations by a lattice vector or by whole grid steps change nothing; permuting the molecules
permutes the coefficients; bad lattices are refused."""

from __future__ import annotations

import numpy as np
import pytest

from densitylab.density import periodic
from densitylab.density.cells import WaterCellSettings, packed_cell
from densitylab.errors import InvalidParameterError

# Translating a cell by an arbitrary vector moves its energy through the uniform grid (egg-box
# effect, measured with GTH-SZV: 13 mHa at 100 Ry, 0.45 mHa at 300 Ry), so exact invariance is
# tested on whole grid steps
SETTINGS = periodic.CellSettings(basis="gth-szv", ke_cutoff=200.0)
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
    assert reference["valence_electrons"] == 16
    assert reference["coefficients"] @ reference["integrals"] == pytest.approx(16.0, abs=0.05)
    cell = periodic.build_cell(two_waters.numbers, two_waters.positions, two_waters.cell.array, SETTINGS)
    auxcell = periodic.auxiliary_cell(cell, SETTINGS)
    rho, fitted, weight = periodic.cell_grid_densities(
        cell, auxcell, reference["coefficients"], reference["density_matrix"]
    )
    assert rho.sum() * weight == pytest.approx(16.0, abs=1e-3)
    assert fitted.sum() * weight == pytest.approx(
        reference["coefficients"] @ reference["integrals"], abs=0.02
    )
    assert 100 * np.abs(rho - fitted).sum() * weight / 16 < 4.0  # % NMAE of the fit


def test_translation_by_lattice_and_grid_steps_and_swapped_molecules_change_nothing(two_waters, reference):
    """Moving every atom by a lattice vector plus whole steps of the uniform grid, and listing
    the second molecule first, gives the same energy and the same coefficients, swapped."""
    cell = periodic.build_cell(two_waters.numbers, two_waters.positions, two_waters.cell.array, SETTINGS)
    moved = two_waters[[3, 4, 5, 0, 1, 2]]
    moved.positions += np.array([LENGTH, 0.0, -LENGTH]) + LENGTH / np.asarray(cell.mesh) * [3, -5, 7]
    result = _reference(moved)
    assert result["energy"] == pytest.approx(reference["energy"], abs=1e-8)
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
    with pytest.raises(InvalidParameterError, match=r"^basis"):
        periodic.build_cell(
            [8], [[0.0, 0.0, 0.0]], np.eye(3) * 5, periodic.CellSettings(basis="no-such-basis")
        )
