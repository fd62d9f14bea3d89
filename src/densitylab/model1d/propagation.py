"""Exact time propagation of two electrons on a 1D grid.

The spatial wavefunction ψ(x₁, x₂) is an (N, N) complex array, normalised as
Σ |ψ|² dx² = 1; it is symmetric for a spin singlet and antisymmetric for a triplet, and the
Hamiltonian H = T₁ + T₂ + v(x₁, t) + v(x₂, t) + w(x₁ − x₂) keeps that symmetry. Atomic
units throughout; densities n(x) = 2 Σ_{x₂} |ψ(x, x₂)|² dx integrate to 2.

Two propagators:

* ``split-operator`` (default): Strang splitting e^{−iV dt/2} e^{−iT dt} e^{−iV dt/2} with
  V at the mid-step time. T is applied exactly in the eigenbasis of the grid's
  finite-difference stencil: with ``boundary="hard-wall"`` (the default for the 3-point
  stencil) by a type-I sine transform, whose sines diagonalise the 3-point operator with
  ψ = 0 beyond the grid, the operator of Crank–Nicolson and of the KS propagation; with
  ``boundary="periodic"`` (the default for wider stencils) by an FFT with the stencil's
  symbol T(k) = Σ_m w_m cos(k m dx), the stencil on a periodic box. Unitary to rounding; cost
  O(N² log N) per step.
* ``crank-nicolson``: (1 + iH dt/2) ψ' = (1 − iH dt/2) ψ with the hard-wall stencil, by a
  sparse LU of the N²×N² matrix (factorised once when v does not depend on time). For small
  grids and as an independent check of the split-operator path.

Scenarios (:func:`scattering_scenario`, :func:`laser_scenario`) build the initial state and
the (time-dependent) potential of the models in docs/tdks.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path

import numpy as np
import scipy.fft
import scipy.sparse as sps
import scipy.sparse.linalg as spla

from densitylab.checkpoint import read_checkpoint, write_checkpoint
from densitylab.errors import NumericalError, require, require_finite
from densitylab.limits import require_memory
from densitylab.model1d.grid import BOUNDARIES, Grid
from densitylab.model1d.interactions import Interaction

PROPAGATORS = ("split-operator", "crank-nicolson")


@dataclass(frozen=True)
class Scenario:
    """An initial two-electron state and the potential it evolves in.

    Attributes:
        name: scenario name, stored with trajectories.
        grid: the exact grid.
        interaction: electron–electron interaction w.
        psi0: initial spatial wavefunction (N, N), complex, Σ|ψ|² dx² = 1.
        v_ext: static external potential (N,), Ha.
        electric_field: E(t) in Ha/bohr (the potential E(t)·x is added), or None.
        parameters: everything that defines the scenario (stored with trajectories).
    """

    name: str
    grid: Grid
    interaction: Interaction
    psi0: np.ndarray
    v_ext: np.ndarray
    electric_field: Callable[[float], float] | None = None
    parameters: dict = dataclass_field(default_factory=dict)

    def potential(self, time: float) -> np.ndarray:
        """v(x, t) = v_ext(x) + E(t)·x, shape (N,), Ha."""
        if self.electric_field is None:
            return self.v_ext
        return self.v_ext + self.electric_field(time) * self.grid.x


@dataclass(frozen=True)
class Trajectory:
    """Observables of an exact propagation, sampled every ``store_every`` steps.

    Attributes:
        times: (T,) a.u.; density, current: (T, N); norm, energy: (T,) (energy is ⟨H(t)⟩, Ha).
        x: grid (N,); v_ext: static potential (N,); parameters: scenario and propagator settings.
        electric_field: E(t) at ``times`` (T,), zero without a field.
        field_midpoints: E at the midpoints of the stored intervals (T − 1,), for a KS
            propagation with step = the storage interval.
    """

    times: np.ndarray
    density: np.ndarray
    current: np.ndarray
    norm: np.ndarray
    energy: np.ndarray
    x: np.ndarray
    v_ext: np.ndarray
    electric_field: np.ndarray
    field_midpoints: np.ndarray
    parameters: dict


def density_and_current(psi: np.ndarray, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """n(x) = 2 Σ|ψ(x, x₂)|² dx and j(x) = 2 Im Σ ψ* ∂ₓψ dx (spectral ∂ₓ), both (N,)."""
    density = 2.0 * np.sum(np.abs(psi) ** 2, axis=1) * grid.dx
    k = 2.0 * np.pi * np.fft.fftfreq(grid.points, grid.dx)
    derivative = scipy.fft.ifft(1j * k[:, None] * scipy.fft.fft(psi, axis=0, workers=-1), axis=0, workers=-1)
    current = 2.0 * np.sum(np.imag(np.conj(psi) * derivative), axis=1) * grid.dx
    return density, current


def _energy(psi, grid, symbol, potential, w_matrix) -> float:
    """⟨ψ|H|ψ⟩ with the periodic stencil (the split-operator Hamiltonian), Ha."""
    spectrum = scipy.fft.fft2(psi, workers=-1)
    kinetic = np.sum((symbol[:, None] + symbol[None, :]) * np.abs(spectrum) ** 2) / psi.size
    weight = np.abs(psi) ** 2
    local = np.sum(weight * (potential[:, None] + potential[None, :] + w_matrix))
    return float((kinetic + local) * grid.dx**2)


def _hard_wall_energy(psi, grid, potential, w_matrix) -> float:
    """⟨ψ|H|ψ⟩ with the grid's stencil and boundary (the Crank–Nicolson Hamiltonian), Ha."""
    kinetic = grid.kinetic_sparse()
    h_psi = kinetic @ psi + (kinetic @ psi.T).T + (potential[:, None] + potential[None, :] + w_matrix) * psi
    return float(np.real(np.sum(np.conj(psi) * h_psi)) * grid.dx**2)


def _two_body_operator(grid: Grid, potential: np.ndarray, w_matrix: np.ndarray) -> sps.csr_matrix:
    kinetic = grid.kinetic_sparse()
    identity = sps.identity(grid.points, format="csr")
    local = sps.diags((potential[:, None] + potential[None, :] + w_matrix).ravel())
    return (sps.kron(kinetic, identity) + sps.kron(identity, kinetic) + local).tocsc()


def step_count(duration: float, dt: float) -> int:
    """The number of steps of ``dt`` in ``duration`` (a.u.); refuses a duration that is not a
    positive multiple of a positive, finite dt, naming whichever of the two is wrong."""
    require_finite(dt=dt, time=duration)
    require(dt > 0, "dt", "a positive time step (a.u.)", dt)
    require(duration > 0, "time", "a positive propagation time (a.u.)", duration)
    steps = round(duration / dt)
    require(
        steps >= 1 and abs(steps * dt - duration) <= 1e-9 * max(1.0, duration),
        "time",
        f"a positive multiple of dt={dt}",
        duration,
    )
    return steps


def propagate(
    scenario: Scenario,
    dt: float,
    steps: int,
    store_every: int = 1,
    method: str = "split-operator",
    progress: Callable[[int, int], None] | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 200,
    boundary: str | None = None,
) -> Trajectory:
    """Propagate ``scenario.psi0`` for ``steps`` steps of ``dt`` (a.u.).

    The stencil and the boundary are the scenario grid's (:class:`Grid`; :func:`box_grid`
    builds one for each boundary). ``boundary`` overrides the grid's on the same points
    (split-operator only, to compare boundaries): "hard-wall" (3-point stencil only) or
    "periodic". Crank–Nicolson is always hard-wall. A density that reaches the edge of a
    periodic box comes back in at the other side, where a hard-wall KS propagation reflects it.

    Observables are stored at t = 0 and after every ``store_every`` steps. ``progress`` is
    called as ``progress(step, steps)``. With ``checkpoint`` (a .npz path), the wavefunction
    and records are written there atomically every ``checkpoint_every`` stored samples, and a
    run with the same settings resumes from it; the file is removed when the run completes.
    """
    require_finite(dt=dt)
    require(dt > 0, "dt", "a positive time step (a.u.)", dt)
    require(isinstance(steps, int | np.integer) and steps >= 1, "steps", "a positive integer", steps)
    require(
        store_every >= 1 and steps % store_every == 0,
        "store_every",
        f"a divisor of steps={steps}",
        store_every,
    )
    require(method in PROPAGATORS, "method", f"one of {PROPAGATORS}", method)
    if boundary is None:
        boundary = "hard-wall" if method == "crank-nicolson" else scenario.grid.boundary
    require(boundary in BOUNDARIES, "boundary", f"one of {BOUNDARIES}", boundary)
    require(
        method == "split-operator" or boundary == "hard-wall",
        "boundary",
        "'hard-wall' with crank-nicolson (its operator has hard walls)",
        boundary,
    )
    grid = scenario.grid.with_boundary(boundary)
    w_matrix = scenario.interaction.matrix(grid.x)
    periodic = boundary == "periodic"
    if method == "split-operator":
        symbol = grid.kinetic_eigenvalues()
    psi = np.array(scenario.psi0, dtype=complex)
    require(
        psi.shape == (grid.points, grid.points), "psi0", f"shape ({grid.points}, {grid.points})", psi.shape
    )
    settings = {
        **scenario.parameters,
        "dt": dt,
        "steps": steps,
        "store_every": store_every,
        "method": method,
        "boundary": boundary,
    }
    names = ("times", "density", "current", "norm", "energy", "electric_field")
    records: dict[str, list] = {key: [] for key in names}

    def record(time: float) -> None:
        density, current = density_and_current(psi, grid)
        records["times"].append(time)
        records["density"].append(density)
        records["current"].append(current)
        records["norm"].append(float(np.sum(np.abs(psi) ** 2) * grid.dx**2))
        if periodic:
            records["energy"].append(_energy(psi, grid, symbol, scenario.potential(time), w_matrix))
        else:
            records["energy"].append(_hard_wall_energy(psi, grid, scenario.potential(time), w_matrix))
        records["electric_field"].append(_field(scenario, time))
        if not np.isfinite(records["norm"][-1]):
            raise NumericalError(
                f"the exact propagation produced non-finite values at t = {time:g} a.u.; "
                "check the scenario's parameters and dt"
            )

    first = 0
    stored = read_checkpoint(checkpoint, settings) if checkpoint else None
    if stored is not None:
        arrays, state = stored
        psi, first = arrays["psi"], int(state["step"])
        records = {key: list(arrays[key]) for key in names}
    else:
        record(0.0)
    if method == "split-operator":
        kinetic_phase = np.exp(-1j * dt * (symbol[:, None] + symbol[None, :]))
        interaction_phase = np.exp(-0.5j * dt * w_matrix)

        def advance(psi, step):
            one_body = np.exp(-0.5j * dt * scenario.potential((step + 0.5) * dt))
            half = interaction_phase * one_body[:, None] * one_body[None, :]
            if periodic:
                kinetic = scipy.fft.ifft2(kinetic_phase * scipy.fft.fft2(half * psi, workers=-1), workers=-1)
            else:  # the orthonormal type-I sine transform is its own inverse
                sines = scipy.fft.dstn(half * psi, type=1, norm="ortho", workers=-1)
                kinetic = scipy.fft.dstn(kinetic_phase * sines, type=1, norm="ortho", workers=-1)
            return half * kinetic

    else:
        identity = sps.identity(grid.points**2, format="csc")
        cache: dict[str, object] = {}

        def advance(psi, step):
            if not cache or scenario.electric_field is not None:
                hamiltonian = _two_body_operator(grid, scenario.potential((step + 0.5) * dt), w_matrix)
                cache["solver"] = spla.splu((identity + 0.5j * dt * hamiltonian).tocsc())
                cache["explicit"] = identity - 0.5j * dt * hamiltonian
            return cache["solver"].solve(cache["explicit"] @ psi.ravel()).reshape(psi.shape)

    for step in range(first, steps):
        psi = advance(psi, step)
        if (step + 1) % store_every == 0:
            record((step + 1) * dt)
            if checkpoint and (len(records["times"]) - 1) % checkpoint_every == 0 and step + 1 < steps:
                arrays = {"psi": psi, **{key: np.asarray(value) for key, value in records.items()}}
                write_checkpoint(checkpoint, settings, arrays, {"step": step + 1})
        if progress:
            progress(step + 1, steps)
    if checkpoint:
        Path(checkpoint).unlink(missing_ok=True)
    interval = dt * store_every
    midpoints = (np.arange(steps // store_every) + 0.5) * interval
    return Trajectory(
        times=np.array(records["times"]),
        density=np.array(records["density"]),
        current=np.array(records["current"]),
        norm=np.array(records["norm"]),
        energy=np.array(records["energy"]),
        x=grid.x.copy(),
        v_ext=scenario.v_ext.copy(),
        electric_field=np.array(records["electric_field"]),
        field_midpoints=np.array([_field(scenario, t) for t in midpoints]),
        parameters=settings,
    )


EDGE_WIDTH = 5.0
"""Bohr from either end of the box within which :func:`edge_charge` counts charge."""


def edge_charge(trajectory: Trajectory, width: float = EDGE_WIDTH) -> float:
    """The largest charge (electrons) within ``width`` bohr of either end of the box, over
    the stored times: a box that holds the dynamics keeps it small."""
    x = trajectory.x
    dx = float(x[1] - x[0])
    left, right = x < x[0] + width, x > x[-1] - width
    return float(max(np.max(np.sum(trajectory.density[:, edge], axis=1)) * dx for edge in (left, right)))


def _field(scenario: Scenario, time: float) -> float:
    return 0.0 if scenario.electric_field is None else float(scenario.electric_field(time))


def save_trajectory(trajectory: Trajectory, path: str | Path) -> Path:
    """Write a trajectory to HDF5 (atomic), with its parameters as attributes."""
    from densitylab.data import write_h5

    arrays = {
        name: getattr(trajectory, name)
        for name in ("times", "density", "current", "norm", "energy", "x", "v_ext", "electric_field")
    }
    arrays["field_midpoints"] = trajectory.field_midpoints
    return write_h5(
        path, arrays, {"kind": "exact-trajectory", **trajectory.parameters}, kind="exact-trajectory"
    )


def load_trajectory(path: str | Path) -> Trajectory:
    """Read a trajectory written by :func:`save_trajectory` (``densitylab tdks exact``)."""
    from densitylab.data import read_h5, require_kind

    arrays, attributes = read_h5(require_kind(path, "exact-trajectory", "trajectory"))
    return Trajectory(
        times=arrays["times"],
        density=arrays["density"],
        current=arrays["current"],
        norm=arrays["norm"],
        energy=arrays["energy"],
        x=arrays["x"],
        v_ext=arrays["v_ext"],
        electric_field=arrays["electric_field"],
        field_midpoints=arrays["field_midpoints"],
        parameters={k: v for k, v in json.loads(attributes["parameters"]).items() if k != "kind"},
    )


def _ground_orbital(grid: Grid, potential: np.ndarray) -> np.ndarray:
    """Lowest eigenvector of T + v with hard walls on the grid's points (a bound state: on a
    periodic grid the walls change it below rounding), normalised Σ|φ|² dx = 1, positive."""
    hamiltonian = grid.with_boundary("hard-wall").kinetic_dense() + np.diag(potential)
    _, vectors = np.linalg.eigh(hamiltonian)
    orbital = vectors[:, 0] / np.sqrt(grid.dx)
    return orbital * np.sign(orbital[np.argmax(np.abs(orbital))])


def _symmetrised(first: np.ndarray, second: np.ndarray, grid: Grid, spin: str) -> np.ndarray:
    outer = np.outer(first, second)
    psi = outer + outer.T if spin == "singlet" else outer - outer.T
    return psi / np.sqrt(np.sum(np.abs(psi) ** 2) * grid.dx**2)


def default_boundary(stencil: int) -> str:
    """'hard-wall' for the 3-point stencil (the KS operator), 'periodic' for wider ones."""
    return "hard-wall" if stencil == 3 else "periodic"


def box_grid(
    x_min: float,
    x_max: float,
    dx: float,
    stencil: int,
    boundary: str | None = None,
    size_parameter: str = "dx",
    size_value: float | None = None,
) -> Grid:
    """The grid of a box of spacing dx; a box too large for memory is refused naming
    ``size_parameter`` (the option that made it so: the spacing, or a caller's padding) and
    echoing ``size_value`` (its value; dx when not given).

    boundary "hard-wall" (the default for the 3-point stencil, which it requires): walls at
    x_min and x_max (ψ = 0 there), so the points are x_min + dx … x_max − dx; for the usual boxes
    (x_max − x_min)/dx is then a smooth number and the sine transforms are fast. "periodic"
    (the default for wider stencils): points x_min … x_max − dx.
    """
    require_finite(x_min=x_min, x_max=x_max, dx=dx)
    boundary = boundary or default_boundary(stencil)
    require(boundary in BOUNDARIES, "boundary", f"one of {BOUNDARIES}", boundary)
    require(
        boundary == "periodic" or stencil == 3, "boundary", "'periodic' for a stencil wider than 3 points"
    )
    require(dx > 0, "dx", "a positive grid spacing (bohr)", dx)
    intervals = round((x_max - x_min) / dx)
    hard = boundary == "hard-wall"
    points = intervals - 1 if hard else intervals
    require(points >= 8, "dx", f"a spacing that gives at least 8 points on [{x_min}, {x_max}]", dx)
    # two-electron propagation: ψ, its transform, phases and the interaction, ~12 N² complex
    require_memory(
        16.0 * 12 * float(points) ** 2,
        size_parameter,
        f"a two-electron box of {points} points on [{x_min:g}, {x_max:g}] with dx = {dx:g}",
        dx if size_value is None else size_value,
    )
    first = x_min + dx if hard else x_min
    return Grid(points, first, first + (points - 1) * dx, stencil, boundary)


def check_momentum(momentum: float, dx: float) -> None:
    """Refuse a packet momentum the grid of spacing ``dx`` cannot carry (|p| ≥ π/dx)."""
    require(
        abs(momentum) < np.pi / dx,
        "momentum",
        f"|p| below the largest momentum the grid carries, π/dx = {np.pi / dx:.4g} a.u.",
        momentum,
    )


def scattering_scenario(
    momentum: float = -1.0,
    x0: float = 10.0,
    alpha: float = 0.1,
    atom_center: float = -10.0,
    spin: str = "singlet",
    dx: float = 0.1,
    x_min: float = -80.0,
    x_max: float = 40.0,
    stencil: int = 13,
    boundary: str | None = None,
) -> Scenario:
    """Electron–hydrogen scattering (Suzuki et al. 2020; Bhat et al. 2022).

    A soft-Coulomb H atom v = −1/√((x − atom_center)² + 1) holds one electron in its ground
    state; a Gaussian wavepacket e^{−α(x−x0)²} e^{i p x} carries the other. Both electrons
    interact by 1/√((x−x')² + 1). The box has spacing dx and, with the 3-point stencil, hard
    walls at x_min and x_max; with wider stencils it is periodic (:func:`box_grid`).

    Args:
        momentum: wavepacket momentum p (a.u.); negative moves it towards the atom.
        spin: "singlet" (symmetric ψ) or "triplet" (antisymmetric ψ).
    """
    require_finite(momentum=momentum, x0=x0, alpha=alpha, atom_center=atom_center)
    require(spin in ("singlet", "triplet"), "spin", "'singlet' or 'triplet'", spin)
    require(alpha > 0, "alpha", "a positive Gaussian exponent (bohr⁻²)", alpha)
    grid = box_grid(x_min, x_max, dx, stencil, boundary)
    check_momentum(momentum, dx)
    require(x_min < x0 < x_max and x_min < atom_center < x_max, "x0/atom_center", "positions inside the box")
    v_ext = -1.0 / np.sqrt((grid.x - atom_center) ** 2 + 1.0)
    bound = _ground_orbital(grid, v_ext)
    packet = np.exp(-alpha * (grid.x - x0) ** 2 + 1j * momentum * grid.x)
    parameters = {
        "scenario": "scattering",
        "momentum": momentum,
        "x0": x0,
        "alpha": alpha,
        "atom_center": atom_center,
        "spin": spin,
        "dx": dx,
        "x_min": x_min,
        "x_max": x_max,
        "stencil": stencil,
        "boundary": boundary or default_boundary(stencil),
        "interaction": Interaction("soft-coulomb").to_spec(),
    }
    return Scenario(
        "scattering",
        grid,
        Interaction("soft-coulomb"),
        _symmetrised(bound, packet, grid, spin),
        v_ext,
        None,
        parameters,
    )


def laser_scenario(
    amplitude: float = 0.05,
    frequency: float = 0.5,
    duration: float = 30.0,
    softening: float = 1.0,
    charge: float = 2.0,
    dx: float = 0.1,
    x_min: float = -30.0,
    x_max: float = 30.0,
    stencil: int = 13,
    interaction: float = 1.0,
    boundary: str | None = None,
) -> Scenario:
    """A two-electron soft-Coulomb atom (charge Z, singlet ground state) driven by a laser.

    The field is E(t) = amplitude · sin²(πt/duration) · sin(frequency·t) for 0 ≤ t ≤ duration
    (zero after), entering as the potential E(t)·x. ``interaction`` scales the
    electron–electron repulsion (0 switches it off). The initial state is the exact ground
    state, found with :func:`densitylab.model1d.exact.solve_exact`.
    """
    from densitylab.model1d.exact import solve_exact
    from densitylab.model1d.system import System

    require_finite(
        amplitude=amplitude, frequency=frequency, duration=duration, softening=softening, charge=charge,
        interaction=interaction,
    )  # fmt: skip
    require(duration > 0, "duration", "a positive pulse length (a.u.)", duration)
    grid = box_grid(x_min, x_max, dx, stencil, boundary)
    v_ext = -charge / np.sqrt(grid.x**2 + softening**2)
    repulsion = Interaction("soft-coulomb", strength=interaction) if interaction != 0 else Interaction("none")
    system = System(grid.with_boundary("hard-wall"), v_ext, "ud", repulsion)  # a bound state, as above
    psi = _wavefunction_from_state(solve_exact(system).ground, grid)

    def field(time: float) -> float:
        if time < 0 or time > duration:
            return 0.0
        return amplitude * np.sin(np.pi * time / duration) ** 2 * np.sin(frequency * time)

    parameters = {
        "scenario": "laser",
        "amplitude": amplitude,
        "frequency": frequency,
        "duration": duration,
        "softening": softening,
        "charge": charge,
        "dx": dx,
        "x_min": x_min,
        "x_max": x_max,
        "stencil": stencil,
        "boundary": boundary or default_boundary(stencil),
        "interaction": repulsion.to_spec(),
    }
    return Scenario("laser", grid, system.interaction, psi, v_ext, field, parameters)


def _wavefunction_from_state(state, grid: Grid) -> np.ndarray:
    """The singlet spatial wavefunction ψ(x₁, x₂) (N, N) of a 'ud' exact ground state: its
    (N, N) coefficient matrix over (x↑, x↓), symmetric for a singlet, divided by dx."""
    psi = np.asarray(state.coefficients, dtype=complex) / grid.dx
    psi = 0.5 * (psi + psi.T)
    return psi / np.sqrt(np.sum(np.abs(psi) ** 2) * grid.dx**2)
