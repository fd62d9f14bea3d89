"""Exact 1D model systems: grids, interactions, potentials, the exact many-electron solver,
mean-field methods (non-interacting, Hartree, Hartree–Fock, 1D LDA) and Kohn–Sham inversion."""

from densitylab.model1d.exact import ExactHamiltonian, ExactSolution, ExactState, solve_exact
from densitylab.model1d.grid import STENCILS, Grid, second_derivative_weights
from densitylab.model1d.interactions import Interaction
from densitylab.model1d.potentials import resolve_potential
from densitylab.model1d.system import System, make_system, parse_electrons, parse_interaction

__all__ = [
    "STENCILS",
    "ExactHamiltonian",
    "ExactSolution",
    "ExactState",
    "Grid",
    "Interaction",
    "System",
    "make_system",
    "parse_electrons",
    "parse_interaction",
    "resolve_potential",
    "second_derivative_weights",
    "solve_exact",
]
