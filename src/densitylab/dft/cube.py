"""One Gaussian cube writer for every density densitylab draws (VMD, VESTA and Avogadro read
cube files): the self-consistent density of a DFT run and a predicted density-fitting
expansion both go through :func:`write_cube`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from densitylab.data import atomic_output

BLOCK = 8192  # grid points per evaluation block (values (BLOCK, nao) stay a few MB)


def check_cube_points(points: int, files: int = 0, folder: str | Path | None = None) -> None:
    """Refuse, naming ``cube_points``, a count per axis below 2 or cubes that would not fit: the
    coordinates and values take 32 bytes a point in memory, and ``files`` cube files about 14
    bytes a point on the disk of ``folder``."""
    from densitylab.errors import require
    from densitylab.limits import require_disk, require_memory

    require(isinstance(points, int | np.integer) and points >= 2, "cube_points", "an integer ≥ 2", points)
    require_memory(32.0 * float(points) ** 3, "cube_points", f"a cube of {points}³ points", points)
    if files and folder is not None:
        estimate = 14.0 * float(points) ** 3 * files
        require_disk(estimate, folder, "cube_points", f"{files} cube files of {points}³ points", points)


def write_cube(
    mol,
    path: str | Path,
    density_at: Callable[[np.ndarray], np.ndarray],
    points: int = 60,
    comment: str = "densitylab density",
) -> Path:
    """Write ``density_at(coords)`` (bohr⁻³; coords (M, 3) in bohr) on PySCF's default cube box
    around ``mol`` with ``points`` per axis, atomically; the values are computed in blocks."""
    from pyscf.tools import cubegen

    check_cube_points(points)
    cube = cubegen.Cube(mol, points, points, points)
    coords = cube.get_coords()
    values = np.concatenate([density_at(coords[i : i + BLOCK]) for i in range(0, len(coords), BLOCK)])
    path = Path(path)
    with atomic_output(path) as temporary:
        cube.write(values.reshape(points, points, points), str(temporary), comment=comment)
    return path


def density_matrix_density(mol, density_matrix: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """ρ(r) = Σ_μν D_μν φ_μ(r) φ_ν(r) of an AO density matrix, as a function of coords (M, 3)."""

    def density_at(coords: np.ndarray) -> np.ndarray:
        ao = mol.eval_gto("GTOval_sph", coords)
        return np.einsum("pi,ij,pj->p", ao, density_matrix, ao)

    return density_at
