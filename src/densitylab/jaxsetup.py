"""JAX, imported lazily with 64-bit floats enabled (so ``import densitylab`` stays light), and
the artefact folder every trained Equinox model uses: ``manifest.json`` + ``weights.eqx``.

64-bit floats: every function that needs JAX obtains it through :func:`jax_numpy` (JAX alone,
as the DFT uses it) or :func:`jax_modules` (with equinox), which set ``jax_enable_x64`` before
handing JAX out. densitylab never changes it at import, so a
program that imports densitylab and uses JAX for itself keeps its own setting until it calls
a densitylab function that runs JAX code; from then on x64 is on for the process (JAX has one
global switch).

Compilation cache: :func:`jax_numpy` also turns on JAX's persistent cache
(:func:`enable_compilation_cache`), so that compiled code survives the process (a second run of
the same shapes compiles nothing). It lives in ``$DENSITYLAB_JAX_CACHE`` (``off`` disables it),
else ``$XDG_CACHE_HOME/densitylab/jax`` or ``~/.cache/densitylab/jax``; a cache directory the
program set itself is left alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path

from densitylab.artefacts import artefact_folder, read_manifest, write_manifest
from densitylab.errors import require


def jax_numpy():
    """(jax, jax.numpy) with ``jax_enable_x64`` set and the persistent compilation cache on
    (:func:`enable_compilation_cache`): for code without neural networks (the DFT), which so
    does not import equinox (7 MB of resident memory)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    enable_compilation_cache()
    limit_malloc_arenas()
    import jax.numpy as jnp

    return jax, jnp


def jax_modules():
    """(jax, jax.numpy, equinox), set up as :func:`jax_numpy` does."""
    jax, jnp = jax_numpy()
    import equinox as eqx

    return jax, jnp, eqx


MALLOC_ARENAS = 1  # glibc malloc arenas once JAX runs (DENSITYLAB_MALLOC_ARENAS overrides; 0 = glibc's)
MAX_MALLOC_ARENAS = 1024  # above glibc's default (8 per core) for any machine; mallopt takes a C int


@cache
def limit_malloc_arenas() -> int:
    """Cap glibc's malloc arenas (once per process); returns the cap set, 0 where none was.

    XLA's CPU runtime allocates an executable's temporaries and outputs on whichever of its pool
    threads runs it, and glibc gives each thread an arena of its own that keeps what was freed
    in it, so the process's peak held a copy of the temporaries per thread: 45–90 MB more for
    methane and benzene PBE (BENCHMARKS.md, issue 19), no faster. One arena holds one copy; the
    DFT's times were unchanged. ``$DENSITYLAB_MALLOC_ARENAS`` sets another cap, ``0`` leaves
    glibc's default. Arenas made before the call keep their memory. Elsewhere than glibc
    (macOS, musl) nothing is done."""
    import ctypes

    text = os.environ.get("DENSITYLAB_MALLOC_ARENAS", str(MALLOC_ARENAS)).strip()
    require(
        text.isdigit() and int(text) <= MAX_MALLOC_ARENAS,
        "DENSITYLAB_MALLOC_ARENAS",
        f"a whole number 0–{MAX_MALLOC_ARENAS} (0: glibc's default)",
        text,
    )
    arenas = int(text)
    if arenas == 0:
        return 0
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return 0
    m_arena_max = -8  # glibc's M_ARENA_MAX
    return arenas if mallopt(ctypes.c_int(m_arena_max), ctypes.c_int(arenas)) == 1 else 0


def accelerator_memory() -> tuple[str, float] | None:
    """(platform, free bytes) of JAX's default device when it is an accelerator (GPU/TPU) that
    reports its memory; None on the CPU, where arrays live in host memory."""
    jax, _ = jax_numpy()
    device = jax.devices()[0]
    if device.platform == "cpu":
        return None
    stats = device.memory_stats() or {}
    if "bytes_limit" not in stats:
        return None
    return device.platform, float(stats["bytes_limit"] - stats.get("bytes_in_use", 0))


CACHE_BYTES = 2 * 1024**3  # the persistent compilation cache's cap


def compilation_cache_dir() -> Path | None:
    """Where :func:`enable_compilation_cache` keeps compiled code (None when disabled)."""
    chosen = os.environ.get("DENSITYLAB_JAX_CACHE")
    if chosen is not None:
        return None if chosen.strip().lower() in ("", "off", "0", "none") else Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "densitylab" / "jax"


@cache
def enable_compilation_cache() -> Path | None:
    """Turn on JAX's persistent compilation cache (once per process) unless disabled or already
    set by the program; every compilation is stored, however short, so that a second run compiles
    nothing. The cache is capped at 2 GB, least recently used entries going first (JAX's cap
    needs ``filelock``, a dependency). Returns the directory."""
    import jax

    if jax.config.jax_compilation_cache_dir:  # the program chose one
        return Path(jax.config.jax_compilation_cache_dir)
    directory = compilation_cache_dir()
    if directory is None:
        return None
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: run without the cache
        return None
    jax.config.update("jax_compilation_cache_dir", str(directory))
    for option, value in (
        ("jax_persistent_cache_min_compile_time_secs", 0.0),
        ("jax_persistent_cache_min_entry_size_bytes", 0),
        ("jax_compilation_cache_max_size", CACHE_BYTES),
    ):
        try:
            jax.config.update(option, value)
        except AttributeError:  # a JAX without this option: its default stands
            pass
    return directory


def save_module(
    path: str | Path,
    kind: str,
    config: dict,
    module,
    extra_files: Callable[[Path], None] | None = None,
    **manifest: object,
) -> Path:
    """Write an Equinox model as an artefact folder (:mod:`densitylab.artefacts`):
    ``manifest.json`` (``kind``, ``config`` and the ``manifest`` keys) and ``weights.eqx``;
    ``extra_files(folder)`` may add files. The folder appears whole or not at all."""
    _, _, eqx = jax_modules()
    with artefact_folder(path) as folder:
        eqx.tree_serialise_leaves(folder / "weights.eqx", module)
        if extra_files is not None:
            extra_files(folder)
        write_manifest(folder, kind, config, seed=config.get("seed"), **manifest)
    return Path(path)


def read_module_config(path: str | Path, kinds: tuple[str, ...], fields: Iterable[str]) -> dict:
    """The config of an Equinox model folder of one of ``kinds``, restricted to ``fields``
    (the config dataclass's); a clear error naming what was expected otherwise."""
    manifest = read_manifest(path, kinds)
    require((Path(path) / "weights.eqx").is_file(), "model", "a model folder with weights.eqx", str(path))
    fields = set(fields)
    return {key: value for key, value in manifest["config"].items() if key in fields}


def load_weights(path: str | Path, skeleton):
    """``skeleton`` (a freshly built module of the right shape) with the weights of PATH."""
    _, _, eqx = jax_modules()
    return eqx.tree_deserialise_leaves(Path(path) / "weights.eqx", skeleton)
