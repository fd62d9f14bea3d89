"""Compilation out of the critical path (issue 19): the DFT's compiled stages are reused within
a process and come from JAX's persistent cache in the next one."""

import os
import subprocess
import sys
import textwrap

import ase
import numpy as np
from ase.build import molecule as ase_molecule

from densitylab.dft import compiled, evaluator
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
    from ase.build import molecule
    from densitylab.dft import compiled
    from densitylab.dft.run import run_dft
    from densitylab.dft.system import DFTSettings
    report = run_dft(molecule("H2O"), basis="sto-3g", xc="pbe", settings=DFTSettings(xc="pbe", grid_level=1))
    lowered = [m for m in messages if m.startswith("Compiling ")]
    print(compiled.compilations(), compiled.loads(), len(lowered), repr(report.result.energy))
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


def test_an_isomer_reuses_the_compiled_code_of_another():
    """Catches shapes that depend on the geometry rather than the composition (a grid size or
    chunking fitted to one structure): every compiled shape is set by the basis size, the
    electron counts, the auxiliary basis and PySCF's grid size per element, so dimethyl ether,
    run after ethanol, compiles nothing (and still lands on its own, different energy)."""
    settings = DFTSettings(xc="lda,vwn", grid_level=0)
    first = run_dft(ase_molecule("CH3CH2OH"), basis="sto-3g", xc="lda,vwn", settings=settings)
    before = evaluator.compilations()
    second = run_dft(ase_molecule("CH3OCH3"), basis="sto-3g", xc="lda,vwn", settings=settings)
    assert second.result.converged and evaluator.compilations() == before
    assert abs(second.result.energy - first.result.energy) > 1e-3


def test_a_second_process_compiles_nothing_and_reproduces_the_energy(tmp_path):
    """Catches a host callback inside a compiled stage (it could not be stored), a store that is
    not switched on, eager JAX operations left in the set-up (each is traced and lowered on
    every run), and stored executables that do not run (JAX re-serialising an executable it
    loaded from its own cache drops its kernels): the first process compiles and stores; the
    second, with the same cache directory, lowers nothing at all (JAX's compilation log is
    empty), loads every executable and reproduces the energy bit for bit."""
    environment = {**os.environ, "DENSITYLAB_JAX_CACHE": str(tmp_path / "cache")}
    runs = []
    for _ in range(2):
        output = subprocess.run(
            [sys.executable, "-c", SCRIPT], env=environment, capture_output=True, text=True, check=True
        ).stdout.split()
        runs.append((int(output[0]), int(output[1]), int(output[2]), float(output[3])))
    (first_compiled, _, first_lowered, first_energy), (second_compiled, loaded, lowered, second_energy) = runs
    assert first_compiled >= 4 and first_lowered >= 4
    assert second_compiled == 0 and lowered == 0 and loaded >= 4
    assert second_energy == first_energy
    assert np.isfinite(first_energy)


def test_a_stored_executable_is_not_reused_by_other_code(monkeypatch):
    """Catches a stored executable reused after the code changed (stale physics) or on another
    processor: with another source digest the key, and so the file, differ."""
    arguments = (np.zeros(3), None, None)
    statics = ("model", "density", (1,))
    first = compiled.stored_path("_forward", statics, arguments)
    monkeypatch.setattr(compiled, "source_digest", lambda: "edited")
    second = compiled.stored_path("_forward", statics, arguments)
    assert first is not None and second is not None and first != second


def _double(x):
    return 2.0 * x


def test_a_damaged_stored_executable_is_compiled_again(tmp_path, monkeypatch):
    """Catches a crash or a wrong result from a truncated or foreign file in the store: it is
    compiled again, gives the right answer and is replaced by a file that loads."""
    path = tmp_path / "double.bin"
    monkeypatch.setattr(compiled, "stored_path", lambda *_: path)
    monkeypatch.setattr(compiled, "_EXECUTABLES", type(compiled._EXECUTABLES)())
    monkeypatch.setattr(compiled, "_compiles_fresh", lambda: True)
    path.write_bytes(b"not an executable")
    before = compiled.compilations()
    result = compiled.executable("double", _double, (), (np.ones(3),))(np.arange(3.0))
    assert np.array_equal(np.asarray(result), [0.0, 2.0, 4.0])
    assert compiled.compilations() == before + 1
    assert compiled._load(path) is not None


def test_the_executables_kept_in_process_drop_the_least_recently_used(monkeypatch):
    """Catches a first-in-first-out cache (the CI failure of 2026-12-01: a run that reused an
    old executable and compiled a new one evicted the one it had just used, and the next
    geometry step compiled it again): with room for two, using A after B keeps A when C comes."""
    monkeypatch.setattr(compiled, "stored_path", lambda *_: None)
    monkeypatch.setattr(compiled, "_EXECUTABLES", type(compiled._EXECUTABLES)())
    monkeypatch.setattr(compiled, "MAX_EXECUTABLES", 2)

    def call(size):
        return compiled.executable("double", _double, (), (np.ones(size),))

    call(1), call(2), call(1)
    before = compiled.compilations()
    call(3)
    call(1)
    assert compiled.compilations() == before + 1
    call(2)
    assert compiled.compilations() == before + 2


def test_the_store_is_pruned_least_recently_used_first(tmp_path):
    """Catches a store that grows without bound: pruned to the limit, the oldest files go."""
    for index in range(4):
        path = tmp_path / f"{index}.bin"
        path.write_bytes(b"x" * 100)
        os.utime(path, (index, index))
    compiled._prune(tmp_path, limit=250)
    assert sorted(p.name for p in tmp_path.glob("*.bin")) == ["2.bin", "3.bin"]


MIXED = textwrap.dedent(
    """
    import jax, jax.numpy as jnp
    from densitylab.jaxsetup import jax_modules
    jax_modules()
    jax.jit(lambda x: jnp.sin(x) * 2.0)(jnp.ones(3)).block_until_ready()  # JAX's cache decided: on
    from ase.build import molecule
    from densitylab.dft import compiled
    from densitylab.dft.run import run_dft
    from densitylab.dft.system import DFTSettings
    report = run_dft(molecule("H2O"), basis="sto-3g", xc="pbe", settings=DFTSettings(xc="pbe", grid_level=1))
    print(compiled.compilations(), repr(report.result.energy))
    """
)


def test_a_process_that_compiled_other_jax_code_first_stores_nothing(tmp_path):
    """Catches stored executables that do not run: where JAX's persistent cache was switched on
    by an earlier compilation, an executable may come from it, and such a copy loses its
    kernels when serialised again ("Function ... not found" in a later process, as the full
    test suite once hit). Such a process stores nothing and still converges."""
    environment = {**os.environ, "DENSITYLAB_JAX_CACHE": str(tmp_path / "cache")}
    output = subprocess.run(
        [sys.executable, "-c", MIXED], env=environment, capture_output=True, text=True, check=True
    ).stdout.split()
    assert int(output[0]) >= 4 and np.isfinite(float(output[1]))
    assert not list((tmp_path / "cache-executables").glob("*.bin"))


WRITER = textwrap.dedent(
    """
    import numpy as np
    from densitylab.dft import compiled, system
    host = np.ones((1, 64, 5))
    values = system.device_zeros((2, 1, 64, 5))
    arguments = (values, host, np.int64(0), np.int64(0))
    write = compiled.executable("ao_write", system._write_block, (), arguments, donate=(0,))
    written = np.asarray(write(values, host, np.int64(1), np.int64(0)))
    correct = bool(np.all(written[1] == 1.0) and np.all(written[0] == 0.0))
    print(compiled.loads(), values.is_deleted(), correct)
    """
)


def test_a_loaded_buffer_writer_still_writes_in_place(tmp_path):
    """Catches a stored executable that loses its buffer donation (the AO values and the DF
    tensor would then exist twice while they are built, 12 GB for C80): the AO writer, compiled
    and stored by one process and loaded by the next, consumes the buffer it is given and
    writes the block."""
    environment = {**os.environ, "DENSITYLAB_JAX_CACHE": str(tmp_path / "cache")}
    runs = [
        subprocess.run(
            [sys.executable, "-c", WRITER], env=environment, capture_output=True, text=True, check=True
        ).stdout.split()
        for _ in range(2)
    ]
    assert runs[0] == ["0", "True", "True"]
    assert runs[1] == ["2", "True", "True"]  # the zeros and the writer came from the store
