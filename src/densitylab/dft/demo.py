"""Demo section for direct-minimisation DFT: water with B3LYP/6-31G against PySCF."""

from __future__ import annotations

from pathlib import Path

import ase

from densitylab.dft.run import pyscf_reference, run_dft
from densitylab.plots import plot_dft_convergence

COLUMNS = ("code", "energy (Ha)", "E − PySCF (Ha)", "steps (energy/gradient evaluations)", "seconds")
WATER = ase.Atoms("OH2", positions=[(0.0, 0.0, 0.1173), (0.0, 0.7572, -0.4692), (0.0, -0.7572, -0.4692)])


def run(output: Path) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """Minimise the B3LYP/6-31G energy of water (density-fitted J and K, grid level 3) with the
    preconditioned L-BFGS and with Adam (D4FT's optimiser, 200 steps), run PySCF's DIIS SCF with
    the same settings, and write the convergence plot, the density cube and the orbitals."""
    output.mkdir(parents=True, exist_ok=True)
    report = run_dft(WATER, xc="b3lyp")
    report.save(output / "dft_water", plot=False)
    reference, converged, seconds, cycles = pyscf_reference(report.mol, report.settings)
    plot_dft_convergence(
        report.result.history, output / "dft_convergence.png", reference, report.result.iterations
    )
    from densitylab.dft.optimise import OptimiserSettings

    adam = run_dft(WATER, xc="b3lyp", optimiser=OptimiserSettings(method="adam", max_iterations=200))
    rows = [
        ("densitylab L-BFGS", report.result, report.seconds),
        ("densitylab Adam (D4FT), at most 200 steps", adam.result, adam.seconds),
    ]
    table = [
        (
            name,
            f"{result.energy:.8f}",
            f"{result.energy - reference:+.1e}",
            f"{len(result.history)} ({result.iterations})",
            f"{time:.1f}",
        )
        for name, result, time in rows
    ]
    table.append(
        (
            "PySCF DIIS" + ("" if converged else " (not converged)"),
            f"{reference:.8f}",
            "0",
            f"{cycles} SCF cycles",
            f"{seconds:.1f}",
        )
    )
    return COLUMNS, table
