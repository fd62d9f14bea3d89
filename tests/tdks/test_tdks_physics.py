"""The interacting TDKS Hamiltonian against independent truth (issue 21)."""

import numpy as np

from densitylab.model1d import make_system
from densitylab.model1d.meanfield import solve_mean_field
from densitylab.tdks.models import free_values
from densitylab.tdks.propagation import KSProblem, propagate


def _rhf_problem(steps=200, dt=0.05, strength=1.0):
    """A two-electron soft-Coulomb atom on the KS grid (3-point stencil, hard walls), started
    from its restricted Hartree–Fock orbital."""
    system = make_system(
        81, -12.0, 12.0, "ud", "-2/sqrt(x**2 + 1)", f"soft-coulomb:strength={strength}", stencil=3
    )
    rhf = solve_mean_field(system, "hartree-fock", restricted=True, tol=1e-12)
    orbital = rhf.orbitals_up[:, 0].astype(complex)
    v_ext = np.tile(system.v_ext, (steps, 1))
    return KSProblem(system.grid.x, v_ext, system.w, orbital, dt), system


def test_the_rhf_ground_state_is_stationary_under_exchange_only_tdks():
    """Catches a wrong factor on v_H (exact exchange for the singlet is −v_H/2, so v_KS =
    v_ext + ½v_H): the RHF orbital of two electrons is the ground state of exactly that
    Hamiltonian, so its density must not move; with v_H in place of ½v_H it oscillates."""
    problem, _ = _rhf_problem()
    params, model = free_values(problem.steps, problem.points)
    densities = np.asarray(propagate(problem, model, params)[0])
    drift = np.max(np.sum(np.abs(densities - densities[0]), axis=1)) * problem.dx
    assert drift < 1e-7
    # the same start under the full v_H (what the bug would do) does move: the test can fail
    doubled = KSProblem(problem.x, problem.v_ext, 2.0 * problem.interaction, problem.orbital0, problem.dt)
    moved = np.asarray(propagate(doubled, model, params)[0])
    assert np.max(np.sum(np.abs(moved - moved[0]), axis=1)) * problem.dx > 1e-3
