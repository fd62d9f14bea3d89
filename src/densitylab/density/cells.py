"""Liquid-water cells for periodic density learning: n rigid water molecules in a cubic cell at
a given mass density, packed without overlaps, equilibrated with ASE's TIP3P and Langevin
dynamics, and sampled every few picoseconds, reproducibly from a seed.

Units: ångström, g/cm³, kelvin, femtoseconds and picoseconds as named. The cells come back as
``ase.Atoms`` with ``pbc=True`` and an orthorhombic lattice (written by
:func:`densitylab.density.structures.write_structures` as extxyz with ``Lattice=`` and
``pbc="T T T"``).

TIP3P here is ASE's: molecule-based minimum-image cutoff on the O–O distance with a smooth
switch of ``width``, so the cutoff must fit in half the cell (it is set to half the cell
length, at most 7 Å). For an 8-molecule cell (6.2 Å) that is a 3.1 Å cutoff: a crude
classical model, used only to draw plausible liquid geometries; the references computed on
them are what the learning sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from densitylab.errors import require

WATER_MASS_AMU = 18.01528
AVOGADRO = 6.02214076e23
O_H_BOND = 0.9572  # Å, TIP3P's rigid geometry
H_O_H_ANGLE = 104.52  # degrees
MIN_INTERMOLECULAR = 1.6  # Å: no two atoms of different molecules closer when packed
MIN_HALF_CELL = 3.0  # Å: the smallest TIP3P cutoff allowed (half the cell length)
MAX_MOLECULES = 1000  # ASE's TIP3P loops over molecules in Python, O(n²) a step; references stop far below


@dataclass(frozen=True)
class WaterCellSettings:
    """How liquid-water cells are drawn.

    Attributes:
        molecules: water molecules per cell (≥ 2; the cell must be ≥ 6 Å across, 8 molecules
            at 1 g/cm³ are 6.2 Å).
        density: mass density (g/cm³).
        temperature: Langevin thermostat temperature (K).
        equilibration: picoseconds of dynamics before the first sample.
        interval: picoseconds between samples.
        timestep: femtoseconds per step (the molecules are rigid, so 1–2 fs are safe).
        friction: Langevin friction (1/fs).
    """

    molecules: int = 8
    density: float = 1.0
    temperature: float = 300.0
    equilibration: float = 5.0
    interval: float = 2.0
    timestep: float = 1.0
    friction: float = 0.01

    def __post_init__(self) -> None:
        for name in ("density", "temperature", "equilibration", "interval", "timestep", "friction"):
            value = getattr(self, name)
            require(np.isfinite(value) and value > 0, name, "a positive finite number", value)
        require(
            isinstance(self.molecules, int) and 1 <= self.molecules <= MAX_MOLECULES,
            "molecules",
            f"an integer from 1 to {MAX_MOLECULES}",
            self.molecules,
        )
        require(
            self.length / 2 >= MIN_HALF_CELL,
            "molecules",
            f"enough molecules for a cell ≥ {2 * MIN_HALF_CELL:g} Å across at {self.density:g} g/cm³ "
            f"(TIP3P's cutoff must fit in half the cell; this cell is {self.length:.2f} Å)",
            self.molecules,
        )

    @property
    def length(self) -> float:
        """Cubic cell length (Å) of ``molecules`` waters at ``density``."""
        volume = self.molecules * WATER_MASS_AMU / AVOGADRO / self.density * 1e24  # Å³
        return float(volume ** (1.0 / 3.0))


def _water_geometry() -> np.ndarray:
    """Rigid water (3, 3) Å, O first, centred on O, in the xy plane."""
    half = np.deg2rad(H_O_H_ANGLE) / 2
    return np.array(
        [[0.0, 0.0, 0.0], [O_H_BOND * np.sin(half), O_H_BOND * np.cos(half), 0.0],
         [-O_H_BOND * np.sin(half), O_H_BOND * np.cos(half), 0.0]]
    )  # fmt: skip


def _minimum_image_distances(a: np.ndarray, b: np.ndarray, length: float) -> np.ndarray:
    delta = a[:, None, :] - b[None, :, :]
    delta -= length * np.round(delta / length)
    return np.linalg.norm(delta, axis=-1)


# conventional-cell sites of the cubic lattices, in units of the conventional cell
_BASES = {
    "sc": np.zeros((1, 3)),
    "bcc": np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]),
    "fcc": np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]]),
}
_NEAREST = {"sc": 1.0, "bcc": np.sqrt(3.0) / 2.0, "fcc": 1.0 / np.sqrt(2.0)}  # per conventional edge


def lattice_sites(count: int) -> np.ndarray:
    """Fractional sites (m ≥ count, 3) of the cubic lattice (simple, body- or face-centred, k
    conventional cells per side) with at least ``count`` sites and the largest nearest-neighbour
    distance, simple cubic on a tie: 8 molecules take the simple cubic 2³ (spacing L/2), 32 the
    face-centred 2³ × 4 (L/2√2 = 3.5 Å at 1 g/cm³, where the simple cubic 4³ left 2.5 Å and no
    packing without contacts)."""
    best = None
    for kind, basis in _BASES.items():
        k = 1
        while len(basis) * k**3 < count:
            k += 1
        spacing = _NEAREST[kind] / k
        if best is None or spacing > best[0] + 1e-12:
            best = (spacing, kind, k)
    _, kind, k = best
    cells = np.stack(np.meshgrid(*[np.arange(k)] * 3, indexing="ij"), -1).reshape(-1, 1, 3)
    offset = 0.5 if kind == "sc" else 0.25  # the old simple-cubic centres, (i + ½)/k
    return ((cells + _BASES[kind][None]).reshape(-1, 3) + offset) / k


def packed_cell(settings: WaterCellSettings, rng: np.random.Generator):
    """Waters on the sites of a cubic lattice (:func:`lattice_sites`, chosen at random), each
    randomly oriented, re-drawn until no two atoms of different molecules are closer than
    ``MIN_INTERMOLECULAR`` (minimum image). Returns ``ase.Atoms`` (O, H, H per molecule)."""
    import ase
    from scipy.spatial.transform import Rotation

    length, count = settings.length, settings.molecules
    sites = lattice_sites(count)
    centres = sites[rng.choice(len(sites), count, replace=False)] * length
    geometry = _water_geometry()
    positions = np.zeros((count, 3, 3))
    for index, centre in enumerate(centres):
        for _attempt in range(1000):
            candidate = Rotation.random(random_state=rng).apply(geometry) + centre
            if index == 0:
                break
            placed = positions[:index].reshape(-1, 3)
            if _minimum_image_distances(candidate, placed, length).min() >= MIN_INTERMOLECULAR:
                break
        else:
            require(False, "density", "a density at which the molecules can be packed", settings.density)
        positions[index] = candidate
    return ase.Atoms("OH2" * count, positions=positions.reshape(-1, 3), cell=[length] * 3, pbc=True)


LOCAL_BONDS = ((0, 1), (1, 2), (2, 0))  # O–H, H–H, H–O within a molecule (O, H, H)


class RigidWaters:
    """An ASE constraint keeping every water rigid (its three interatomic distances fixed):
    RATTLE with the three constraints of each molecule solved together, written here because
    ASE's ``FixBondLengths`` sweeps the bonds one by one in Python (0.3 s a step for 8
    molecules here). Velocities: the bond rates are linear in the three multipliers, one
    batched 3 × 3 solve. Positions: Newton's method on the three squared lengths, a batched
    3 × 3 solve per iteration (quadratic convergence, a few iterations). Atoms are ordered
    O, H, H per molecule and molecules kept whole (the MD never wraps them), so no minimum
    image is needed within a molecule."""

    def __init__(self, molecules: int, tolerance: float = 1e-12, max_iterations: int = 50):
        self.molecules = molecules
        geometry = _water_geometry()
        self.lengths = np.array([np.linalg.norm(geometry[a] - geometry[b]) for a, b in LOCAL_BONDS])
        self.tolerance, self.max_iterations = tolerance, max_iterations

    def get_removed_dof(self, atoms) -> int:
        return 3 * self.molecules

    def _coupling(self, atoms) -> np.ndarray:
        """C (n, 3, 3): d(bond j's vector)/d(multiplier k) = C_jk · (bond k's direction)."""
        inverse = 1.0 / atoms.get_masses().reshape(-1, 3)
        coupling = np.zeros((self.molecules, 3, 3))
        for j, (aj, bj) in enumerate(LOCAL_BONDS):
            for k, (ak, bk) in enumerate(LOCAL_BONDS):
                coupling[:, j, k] = ((aj == ak) - (aj == bk)) * inverse[:, aj]
                coupling[:, j, k] -= ((bj == ak) - (bj == bk)) * inverse[:, bj]
        return coupling

    @staticmethod
    def _bonds(positions: np.ndarray) -> np.ndarray:
        molecules = positions.reshape(-1, 3, 3)
        return np.stack([molecules[:, a] - molecules[:, b] for a, b in LOCAL_BONDS], axis=1)

    @staticmethod
    def _apply(target: np.ndarray, multipliers: np.ndarray, directions: np.ndarray, scale) -> None:
        """target_a += g_k d_k · scale_a, target_b −= g_k d_k · scale_b for every bond k = (a, b)."""
        view = target.reshape(-1, 3, 3)
        for k, (a, b) in enumerate(LOCAL_BONDS):
            step = multipliers[:, k, None] * directions[:, k]
            view[:, a] += step * scale[:, a, None]
            view[:, b] -= step * scale[:, b, None]

    def adjust_positions(self, atoms, new: np.ndarray) -> None:
        before = self._bonds(atoms.positions)
        coupling, inverse = self._coupling(atoms), 1.0 / atoms.get_masses().reshape(-1, 3)
        for _ in range(self.max_iterations):
            after = self._bonds(new)
            error = np.sum(after * after, axis=2) - self.lengths**2
            if np.max(np.abs(error)) < self.tolerance:
                return
            jacobian = 2.0 * coupling * np.einsum("njx,nkx->njk", after, before)
            self._apply(new, np.linalg.solve(jacobian, -error[..., None])[..., 0], before, inverse)
        raise RuntimeError("RigidWaters: the position constraints did not converge")

    def adjust_momenta(self, atoms, momenta: np.ndarray) -> None:
        bonds = self._bonds(atoms.positions)
        inverse = 1.0 / atoms.get_masses().reshape(-1, 3)
        velocities = (momenta.reshape(-1, 3, 3) * inverse[..., None]).reshape(-1, 3)
        rates = np.sum(self._bonds(velocities) * bonds, axis=2)
        matrix = self._coupling(atoms) * np.einsum("njx,nkx->njk", bonds, bonds)
        self._apply(momenta, np.linalg.solve(matrix, -rates[..., None])[..., 0], bonds, np.ones_like(inverse))

    def adjust_forces(self, atoms, forces: np.ndarray) -> None:
        self.adjust_momenta(atoms, forces)  # the constraint forces remove the components along bonds

    def index_shuffle(self, atoms, indices):
        raise NotImplementedError("RigidWaters does not follow atoms into a slice")

    def todict(self) -> dict:
        return {"name": "RigidWaters", "kwargs": {"molecules": self.molecules}}


def thermalize(atoms, temperature: float, rng: np.random.Generator) -> None:
    """Maxwell–Boltzmann momenta at ``temperature`` (K), constraints applied."""
    try:
        from ase.md.velocitydistribution import thermalize_momenta  # ASE ≥ 3.29
    except ImportError:
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta
    thermalize_momenta(atoms, temperature_K=temperature, rng=rng)


def water_cells(count: int, settings: WaterCellSettings | None = None, seed: int = 0, progress=None) -> list:
    """``count`` liquid-water cells: one packed cell equilibrated for ``settings.equilibration``
    ps of rigid TIP3P Langevin dynamics, then sampled every ``settings.interval`` ps (positions
    wrapped into the cell, molecules kept whole by their O). ``progress(done, total)`` is
    called after each sample. Same seed, same cells."""
    from ase import units
    from ase.calculators.tip3p import TIP3P
    from ase.md.langevin import Langevin

    settings = settings or WaterCellSettings()
    require(isinstance(count, int) and count >= 1, "count", "an integer ≥ 1", count)
    rng = np.random.default_rng(seed)
    atoms = packed_cell(settings, rng)
    molecules = settings.molecules
    atoms.constraints = RigidWaters(molecules)
    cutoff = min(7.0, settings.length / 2)
    atoms.calc = TIP3P(rc=cutoff, width=min(1.0, cutoff / 3))
    thermalize(atoms, settings.temperature, rng)
    dynamics = Langevin(
        atoms,
        settings.timestep * units.fs,
        temperature_K=settings.temperature,
        friction=settings.friction / units.fs,
        fixcm=False,
        rng=rng,
    )
    steps = lambda picoseconds: max(1, round(1000 * picoseconds / settings.timestep))  # noqa: E731
    dynamics.run(steps(settings.equilibration))
    cells = []
    for done in range(count):
        if done:
            dynamics.run(steps(settings.interval))
        cells.append(_snapshot(atoms, settings, seed, done))
        if progress is not None:
            progress(done + 1, count)
    return cells


def _snapshot(atoms, settings: WaterCellSettings, seed: int, index: int):
    """A copy of the cell without calculator or constraints, each molecule moved whole so that
    its O lies in the cell."""
    import ase

    positions = atoms.get_positions().reshape(-1, 3, 3)
    shift = np.floor(positions[:, 0] / settings.length) * settings.length
    positions = (positions - shift[:, None, :]).reshape(-1, 3)
    cell = ase.Atoms(atoms.get_chemical_symbols(), positions=positions, cell=atoms.cell, pbc=True)
    cell.info.update(
        molecules=settings.molecules, density=settings.density, temperature=settings.temperature,
        seed=seed, sample=index, time_ps=settings.equilibration + index * settings.interval,
    )  # fmt: skip
    return cell
