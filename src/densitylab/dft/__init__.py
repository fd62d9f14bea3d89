"""Direct-minimisation Kohn–Sham DFT for molecules (D4FT-style orbitals C = S^{-1/2}·Q(W)),
reaching PySCF's converged energies, with forces. Entry points: :func:`densitylab.dft.run.run_dft`,
:func:`densitylab.dft.workflow.run`, and :class:`Calculator` for ASE (imported on first use)."""

from densitylab.dft.optimise import DFTResult, OptimiserSettings, minimise
from densitylab.dft.run import DFTReport, pyscf_reference, run_dft
from densitylab.dft.system import DFTSettings, build_system

__all__ = [
    "Calculator",
    "DFTReport",
    "DFTResult",
    "DFTSettings",
    "OptimiserSettings",
    "build_system",
    "minimise",
    "pyscf_reference",
    "run_dft",
]


def __getattr__(name: str):
    """``Calculator`` imports ASE's calculator machinery only when it is asked for."""
    if name == "Calculator":
        from densitylab.dft.calculator import Calculator

        return Calculator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
