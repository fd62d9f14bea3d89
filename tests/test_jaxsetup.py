"""The JAX set-up's process-wide settings."""

import ctypes
import os
import subprocess
import sys
import textwrap

import pytest

from densitylab.errors import InvalidParameterError
from densitylab.jaxsetup import limit_malloc_arenas

THREADS_ALLOCATING = textwrap.dedent(
    """
    import threading
    import numpy as np
    from densitylab.jaxsetup import jax_modules, limit_malloc_arenas
    jax, jnp, _ = jax_modules()
    print(limit_malloc_arenas(), flush=True)
    barrier = threading.Barrier(6)
    def work():
        barrier.wait()
        for _ in range(200):
            np.ones(20_000).sum()  # 160 kB: below the mmap threshold, from an arena
    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    import ctypes
    ctypes.CDLL(None).malloc_stats()  # one "Arena N:" block per arena, on stderr
    """
)


def _arenas(setting: str) -> tuple[int, int]:
    environment = {**os.environ, "DENSITYLAB_MALLOC_ARENAS": setting}
    command = [sys.executable, "-c", THREADS_ALLOCATING]
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, check=True)
    return int(completed.stdout.split()[0]), completed.stderr.count("Arena ")


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "malloc_stats"), reason="glibc only")
def test_once_jax_runs_threads_share_one_malloc_arena():
    """Catches the arena cap not being applied when JAX is set up (each XLA pool thread then keeps
    a copy of the freed temporaries in an arena of its own): six threads allocating at once use
    one arena under the default cap, and several with the cap off (so the check can tell)."""
    cap, arenas = _arenas("1")
    assert (cap, arenas) == (1, 1)
    cap, arenas = _arenas("0")
    assert cap == 0 and arenas > 1


@pytest.mark.parametrize("setting", ["many", "nan", "-1", "99999999999999999999"])
def test_a_malformed_arena_setting_is_refused(monkeypatch, setting):
    """Catches a setting passed to mallopt unchecked (a huge one wraps around in a C int)."""
    limit_malloc_arenas.cache_clear()
    monkeypatch.setenv("DENSITYLAB_MALLOC_ARENAS", setting)
    with pytest.raises(InvalidParameterError, match=r"^DENSITYLAB_MALLOC_ARENAS"):
        limit_malloc_arenas()
    limit_malloc_arenas.cache_clear()
