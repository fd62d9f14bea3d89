"""Fixtures of the DFT tests."""

import pytest

WATER_XYZ = "3\nwater\nO 0.000 0.000 0.117\nH 0.000 0.757 -0.467\nH 0.000 -0.757 -0.467\n"


@pytest.fixture
def water_xyz(tmp_path):
    """Water as an xyz file (ångström), for the command-line tests."""
    path = tmp_path / "water.xyz"
    path.write_text(WATER_XYZ)
    return path
