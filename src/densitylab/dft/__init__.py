"""Direct-minimisation Kohn–Sham DFT for molecules (D4FT-style orbitals C = S^{-1/2}·Q(W)),
reaching PySCF's converged energies. Entry point: :func:`densitylab.dft.run.run_dft`."""

from densitylab.dft.optimise import DFTResult, OptimiserSettings, minimise
from densitylab.dft.run import DFTReport, pyscf_reference, run_dft
from densitylab.dft.system import DFTSettings, build_system

__all__ = [
    "DFTReport",
    "DFTResult",
    "DFTSettings",
    "OptimiserSettings",
    "build_system",
    "minimise",
    "pyscf_reference",
    "run_dft",
]
