"""Compilation out of the critical path (issue 19): the DFT's compiled stages are reused within
a process and come from JAX's persistent cache in the next one."""

import os
import subprocess
import sys
import textwrap

import ase
import numpy as np
from ase.build import molecule as ase_molecule

from densitylab.dft import evaluator
from densitylab.dft.run import run_dft
from densitylab.dft.system import DFTSettings

SCRIPT = textwrap.dedent(
    """
    import logging
    import jax
    jax.config.update("jax_log_compiles", True)
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logging.getLogger("jax").addHandler(handler)
    logging.getLogger("jax").setLevel(logging.DEBUG)
    import functools
    from ase.build import molecule
    from densitylab.dft import evaluator
    from densitylab.dft.run import run_dft
    from densitylab.dft.system import DFTSettings
    traces = []
    for name in ("_forward", "_backward"):
        stage = getattr(evaluator, name)
        def counted(*arguments, stage=stage):
            traces.append(stage.__name__)
            return stage(*arguments)
        setattr(evaluator, name, functools.wraps(stage)(counted))
    report = run_dft(molecule("H2O"), basis="sto-3g", xc="pbe", settings=DFTSettings(xc="pbe", grid_level=1))
    misses = [m for m in messages if "PERSISTENT COMPILATION CACHE MISS" in m]
    hits = [m for m in messages if "Persistent compilation cache hit" in m]
    print(len(misses), len(hits), len(traces), repr(report.result.energy))
    """
)


def test_a_second_molecule_of_the_same_shapes_compiles_nothing_in_the_same_process():
    """Catches compiled code tied to one geometry (E_nn or integrals baked in as constants),
    which would recompile at every step of a geometry optimisation: water moved by 0.01 Å
    reuses every stage executable of the first run."""
    settings = DFTSettings(xc="lda,vwn", grid_level=1)
    run_dft(ase_molecule("H2O"), basis="sto-3g", xc="lda,vwn", settings=settings)
    before = evaluator.compilations()
    moved = ase_molecule("H2O")
    moved.positions[1] += 0.01
    report = run_dft(ase.Atoms(moved), basis="sto-3g", xc="lda,vwn", settings=settings)
    assert report.result.converged and evaluator.compilations() == before


def test_a_second_process_takes_every_compiled_stage_from_the_persistent_cache(tmp_path):
    """Catches a host callback inside a compiled stage (such executables are never cached), a
    cache that is not switched on, or exported stages that are not reused: the first process
    traces, compiles and writes; the second, with the same cache directory, traces no stage
    (each comes from its stored export), misses nothing and reproduces the energy bit for bit."""
    environment = {**os.environ, "DENSITYLAB_JAX_CACHE": str(tmp_path / "cache")}
    runs = []
    for _ in range(2):
        output = subprocess.run(
            [sys.executable, "-c", SCRIPT], env=environment, capture_output=True, text=True, check=True
        ).stdout.split()
        runs.append((int(output[0]), int(output[1]), int(output[2]), float(output[3])))
    (
        (first_misses, _, first_traces, first_energy),
        (second_misses, second_hits, second_traces, second_energy),
    ) = runs
    assert first_misses >= 4 and first_traces >= 4 and any((tmp_path / "cache").iterdir())
    assert second_misses == 0 and second_hits >= 4 and second_traces == 0
    assert second_energy == first_energy
    assert np.isfinite(first_energy)


def test_an_exported_stage_is_not_reused_by_other_code(monkeypatch):
    """Catches a stored export reused after the code changed (stale physics): with another
    source digest the stage is traced and exported again, under another file name."""
    arguments = (np.zeros(3), None, None)
    statics = ("model", "density", (1,))
    first = evaluator._exported_path("_forward", statics, arguments)
    monkeypatch.setattr(evaluator, "_source_digest", lambda: "edited")
    second = evaluator._exported_path("_forward", statics, arguments)
    assert first is not None and second is not None and first != second
