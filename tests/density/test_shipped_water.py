"""The shipped liquid-water model, ``water-pbe`` (issue 20): it opens by name, predicts a cell it
never saw with the cell's valence electrons, the same prediction after every atom is moved,
and refuses a molecule."""

from __future__ import annotations

import numpy as np
import pytest

import densitylab
from densitylab.density.basis import auxiliary_integrals, featomic_order, function_labels
from densitylab.density.cells import WaterCellSettings, packed_cell
from densitylab.density.pipeline import predict
from densitylab.errors import InvalidParameterError
from densitylab.loading import kind_of


@pytest.fixture(scope="module")
def shipped():
    return densitylab.load("water-pbe")


def test_shipped_water_model_predicts_a_new_cell_with_its_valence_electrons(shipped):
    from densitylab.density import periodic

    assert kind_of("water-pbe") == "density-model"
    cell = packed_cell(WaterCellSettings(molecules=8), np.random.default_rng(123))  # not in training
    moved = cell.copy()
    moved.positions += [0.37, -1.21, 2.05]
    moved.wrap()
    (predicted, again), _ = predict(shipped, [cell, moved])  # one pass over the features
    built = periodic.build_cell(cell.numbers, cell.positions, cell.cell.array, shipped.reference)
    auxcell = periodic.auxiliary_cell(built, shipped.reference)
    integrals = auxiliary_integrals(auxcell)[featomic_order(function_labels(auxcell))]
    assert predicted @ integrals == pytest.approx(64.0, abs=1e-8)  # 8 × (6 + 1 + 1) valence electrons
    np.testing.assert_allclose(again, predicted, atol=1e-8)


def test_shipped_water_model_refuses_a_molecule(shipped):
    from ase.build import molecule

    with pytest.raises(InvalidParameterError):
        predict(shipped, [molecule("H2O")])
