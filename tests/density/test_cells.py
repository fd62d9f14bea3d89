"""Liquid-water cells (issue 20): density, rigid molecules, no overlaps, reproducibility, the
rigid-body constraint against energy conservation, the extxyz round trip and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from densitylab.density.cells import (
    H_O_H_ANGLE,
    O_H_BOND,
    RigidWaters,
    WaterCellSettings,
    lattice_sites,
    packed_cell,
    thermalize,
    water_cells,
)
from densitylab.density.structures import read_structures, write_structures
from densitylab.errors import InvalidParameterError

QUICK = WaterCellSettings(molecules=8, equilibration=0.2, interval=0.1)


@pytest.fixture(scope="module")
def cells():
    return water_cells(3, QUICK, seed=4)


def _intramolecular(cell) -> np.ndarray:
    distances = cell.get_all_distances(mic=True)
    first = np.arange(0, len(cell), 3)
    return np.stack(
        [distances[first, first + 1], distances[first, first + 2], distances[first + 1, first + 2]], axis=1
    )


def test_cells_have_the_density_and_rigid_unbroken_molecules(cells):
    h_h = 2 * O_H_BOND * np.sin(np.deg2rad(H_O_H_ANGLE) / 2)
    for cell in cells:
        grams_per_cm3 = cell.get_masses().sum() * 1.66053906660e-24 / (cell.get_volume() * 1e-24)
        assert grams_per_cm3 == pytest.approx(1.0, rel=1e-4)  # the masses' isotopes against 18.01528
        assert cell.pbc.all() and np.allclose(cell.cell.array, np.diag([QUICK.length] * 3))
        np.testing.assert_allclose(_intramolecular(cell), [[O_H_BOND, O_H_BOND, h_h]] * 8, atol=1e-8)
        distances = cell.get_all_distances(mic=True)
        other = np.arange(len(cell))[:, None] // 3 != np.arange(len(cell))[None, :] // 3
        assert distances[other].min() > 1.2  # hydrogen bonds are ≈ 1.8 Å; nothing overlaps
        oxygens = cell.get_scaled_positions(wrap=False)[::3]
        assert np.all((oxygens >= 0) & (oxygens < 1))


def test_cells_move_and_the_same_seed_gives_the_same_cells(cells):
    again = water_cells(3, QUICK, seed=4)
    for first, second in zip(cells, again, strict=True):
        np.testing.assert_array_equal(first.positions, second.positions)
    assert np.abs(cells[0].positions - cells[1].positions).max() > 0.1
    other = water_cells(1, QUICK, seed=5)[0]
    assert np.abs(other.positions - cells[0].positions).max() > 0.1


def test_rigid_constraint_conserves_energy_in_constant_energy_dynamics():
    """NVE with TIP3P under the constraint: the total energy is conserved (the constraint
    forces do no work) while the molecules stay rigid, and the removed degrees of freedom are
    three per molecule."""
    from ase import units
    from ase.calculators.tip3p import TIP3P
    from ase.md.verlet import VelocityVerlet

    settings = WaterCellSettings(molecules=8)
    rng = np.random.default_rng(0)
    atoms = packed_cell(settings, rng)
    atoms.constraints = RigidWaters(8)
    atoms.calc = TIP3P(rc=settings.length / 2, width=1.0)
    thermalize(atoms, 300.0, rng)
    assert (
        np.abs(
            np.sum(RigidWaters._bonds(atoms.get_velocities()) * RigidWaters._bonds(atoms.positions), axis=2)
        ).max()
        < 1e-10
    )
    dynamics = VelocityVerlet(atoms, 0.5 * units.fs)
    energies = []
    for _ in range(20):
        dynamics.run(20)
        energies.append(atoms.get_potential_energy() + atoms.get_kinetic_energy())
    kinetic = atoms.get_kinetic_energy()
    assert np.ptp(energies) < 0.02 * kinetic
    assert atoms.constraints[0].get_removed_dof(atoms) == 24


def test_cells_round_trip_through_extxyz_with_their_lattice(cells, tmp_path):
    path = write_structures(cells, tmp_path / "cells.extxyz")
    text = path.read_text()
    assert 'Lattice="' in text and 'pbc="T T T"' in text
    back = read_structures(path)
    for cell, read in zip(cells, back, strict=True):
        np.testing.assert_allclose(read.positions, cell.positions, atol=1e-7)
        np.testing.assert_allclose(read.cell.array, cell.cell.array)
        assert read.pbc.all()


def test_overlapping_atoms_in_a_cell_are_refused_across_the_boundary(cells, tmp_path):
    broken = cells[0].copy()
    broken.positions[3] = broken.positions[0] + [broken.cell[0, 0] - 0.1, 0.0, 0.0]  # 0.1 Å by image
    path = write_structures([broken], tmp_path / "broken.extxyz")
    with pytest.raises(InvalidParameterError, match=r"structures: .*apart"):
        read_structures(path)


@pytest.mark.parametrize(
    ("changes", "parameter"),
    [
        ({"molecules": 1}, "molecules"),
        ({"molecules": 0}, "molecules"),
        ({"molecules": 10**9}, "molecules"),
        ({"density": 0.0}, "density"),
        ({"density": float("nan")}, "density"),
        ({"temperature": -1.0}, "temperature"),
        ({"timestep": float("inf")}, "timestep"),
    ],
)
def test_bad_cell_settings_are_refused(changes, parameter):
    with pytest.raises(InvalidParameterError, match=rf"^{parameter}"):
        WaterCellSettings(**changes)


def test_bad_cell_count_is_refused():
    with pytest.raises(InvalidParameterError, match=r"^count"):
        water_cells(0, QUICK)


def test_cli_writes_the_cells_the_library_draws(tmp_path):
    from typer.testing import CliRunner

    from densitylab.cli import app

    output = tmp_path / "cells.extxyz"
    arguments = ["density", "cells", "--output", str(output), "--count", "2", "--seed", "3"]
    result = CliRunner().invoke(app, [*arguments, "--equilibration", "0.2", "--interval", "0.1"])
    assert result.exit_code == 0, result.output
    library = water_cells(2, QUICK, seed=3)
    for read, drawn in zip(read_structures(output), library, strict=True):
        np.testing.assert_allclose(read.positions, drawn.positions, atol=1e-7)
    refused = CliRunner().invoke(
        app, ["density", "cells", "--output", str(tmp_path / "x.extxyz"), "--molecules", "1"]
    )
    assert refused.exit_code == 2 and "molecules" in refused.output and not (tmp_path / "x.extxyz").exists()


@pytest.mark.parametrize("count", [8, 16, 27, 32, 64, 100])
def test_lattice_sites_are_enough_and_as_far_apart_as_a_cubic_lattice_allows(count):
    """The sites number at least ``count``, and their nearest-neighbour distance (minimum
    image, brute force) is the best of the simple, body- and face-centred cubic lattices with
    enough sites: (1/k, √3/2k, 1/√2k) for k conventional cells per side."""
    sites = lattice_sites(count)
    assert len(sites) >= count
    difference = sites[:, None] - sites[None]
    difference -= np.round(difference)
    distances = np.linalg.norm(difference, axis=-1)[~np.eye(len(sites), dtype=bool)]
    best = 0.0
    for per_cell, nearest in ((1, 1.0), (2, np.sqrt(3) / 2), (4, 1 / np.sqrt(2))):
        k = int(np.ceil((count / per_cell) ** (1 / 3) - 1e-9))
        best = max(best, nearest / k)
    assert distances.min() == pytest.approx(best, rel=1e-12)


def test_thirty_two_waters_pack_at_liquid_density():
    atoms = packed_cell(WaterCellSettings(molecules=32), np.random.default_rng(0))
    oxygens = atoms.positions[::3]
    difference = oxygens[:, None] - oxygens[None]
    difference -= np.round(difference / atoms.cell.lengths()) * atoms.cell.lengths()
    distances = np.linalg.norm(difference, axis=-1)[~np.eye(32, dtype=bool)]
    assert len(atoms) == 96 and distances.min() > 3.4  # face-centred sites 3.48 Å apart
