"""Compiled functions of the DFT, kept so that a warm run neither traces nor compiles.

A compiled executable is kept in this process by (name, statics, argument shapes) and, when
JAX's persistent compilation cache is on (:func:`densitylab.jaxsetup.enable_compilation_cache`),
serialised beside it (``jax.experimental.serialize_executable``). A later process loads it in
about 2 ms, where JAX's own cache still traces the function and lowers it to MLIR to find its
key: 10–40 ms per function, 0.2–0.3 s per small molecule (BENCHMARKS.md, issue 19), against
PySCF's 0.5–1 s for the whole SCF of water.

A stored executable is machine code for this CPU. Its key holds a hash of the source of
``densitylab.dft`` and the JAX set-up, the jax and jaxlib versions, the backend's platform
version, the device kind and the CPU's model and feature flags, so it is never loaded by other
code, another JAX or another kind of processor (a shared home directory on a mixed cluster).
A file that fails to load is compiled again and replaced. The folder is pruned to
:data:`STORE_BYTES`, least recently used first. Only on the CPU backend (where it is tested);
elsewhere JAX's own persistent cache serves.

Two traps of serialised executables (jaxlib 0.10), both handled here and tested:

- an executable that JAX loaded from its own persistent cache loses its kernels when it is
  serialised again ("Function wrapped_broadcast not found" when the copy runs), so only
  executables compiled where JAX's cache is off are stored (:func:`_compiles_fresh`);
- a loaded executable that calls LAPACK (QR, eigh) jumps to a null pointer unless jaxlib's
  LAPACK table was filled, which lowering normally does (:func:`_prepare_lapack`).
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from pathlib import Path

import numpy as np

from densitylab.data import atomic_output
from densitylab.jaxsetup import enable_compilation_cache, jax_numpy

MAX_EXECUTABLES = 64  # compiled functions kept in one process (least recently used dropped)
STORE_BYTES = 512 * 1024**2  # the stored executables' folder is pruned to this size
_EXECUTABLES: OrderedDict = OrderedDict()
_COUNTS = {"compiled": 0, "loaded": 0}


def compilations() -> int:
    """How many executables this process has compiled (tracing included); a load from the store
    or an in-process reuse adds nothing."""
    return _COUNTS["compiled"]


def loads() -> int:
    """How many executables this process has loaded from the store."""
    return _COUNTS["loaded"]


def signature(arguments) -> tuple:
    """The pytree structure, shapes and dtypes of ``arguments`` (what a compilation depends on)."""
    jax, _ = jax_numpy()
    leaves, structure = jax.tree_util.tree_flatten(arguments)
    return structure, tuple(
        (tuple(np.shape(x)), str(getattr(x, "dtype", None) or np.asarray(x).dtype)) for x in leaves
    )


@cache
def _cpu_identity() -> str:
    """The CPU's model name and feature flags (Linux), or the platform's description elsewhere."""
    import platform

    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return f"{platform.machine()} {platform.processor()}"
    wanted = ("model name", "flags", "Features", "CPU part")
    return "|".join(sorted({line for line in lines if line.split(":")[0].strip() in wanted}))


@cache
def source_digest() -> str:
    """A hash of the code the DFT's functions are traced from (densitylab.dft and the JAX set-up),
    of the JAX build and of the machine: a stored executable is reused only by the code and the
    processor that compiled it."""
    import jax
    import jaxlib

    device = jax.devices()[0]
    digest = hashlib.sha256(
        repr(
            (
                jax.__version__,
                jaxlib.__version__,
                jax.default_backend(),
                getattr(device.client, "platform_version", ""),
                device.device_kind,
                _cpu_identity(),
            )
        ).encode()
    )
    here = Path(__file__).parent
    for path in sorted([*here.glob("*.py"), here.parent / "jaxsetup.py"]):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def stored_path(name: str, statics: tuple, arguments: tuple) -> Path | None:
    """Where the executable of ``name`` for these statics and argument shapes is stored (beside
    JAX's persistent cache), or None when the cache is off or the backend is not the CPU (where
    only JAX's own cache is used: executables are stored where they were tested)."""
    jax, _ = jax_numpy()
    directory = enable_compilation_cache()
    if directory is None or jax.default_backend() != "cpu":
        return None
    key = repr((name, statics, signature(arguments), source_digest())).encode()
    return directory.parent / f"{directory.name}-executables" / f"{hashlib.sha256(key).hexdigest()[:32]}.bin"


@cache
def _prepare_lapack() -> None:
    """Point jaxlib's LAPACK kernels at SciPy's LAPACK. JAX does this when it lowers a function
    that calls LAPACK (QR, eigh, Cholesky); a loaded executable is not lowered, and without this
    its first LAPACK call jumps to a null pointer (a segmentation fault)."""
    from jaxlib import lapack

    lapack.prepare_lapack_call("geqrf_ffi", np.float64)


def _load(path: Path):
    from jax.experimental import serialize_executable

    try:
        _prepare_lapack()
        payload, in_tree, out_tree = pickle.loads(path.read_bytes())
        loaded = serialize_executable.deserialize_and_load(payload, in_tree, out_tree)
    except Exception:  # a damaged, foreign or unreadable file: compile again
        return None
    try:
        os.utime(path)  # recently used: pruned last
    except OSError:  # a read-only store
        pass
    return loaded


def _store(path: Path, executable) -> None:
    from jax.experimental import serialize_executable

    try:
        data = pickle.dumps(serialize_executable.serialize(executable))
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as temporary:
            Path(temporary).write_bytes(data)
        _prune(path.parent)
    except Exception:  # a backend that cannot serialise, or a read-only cache: run without storing
        pass


def _prune(folder: Path, limit: int = STORE_BYTES) -> None:
    """Delete the least recently used stored executables until ``folder`` holds at most ``limit``."""
    files = sorted(folder.glob("*.bin"), key=lambda p: p.stat().st_mtime)
    total = sum(p.stat().st_size for p in files)
    for path in files:
        if total <= limit:
            break
        total -= path.stat().st_size
        path.unlink(missing_ok=True)


def _compiles_fresh() -> bool:
    """Whether compilations in this process bypass JAX's persistent cache, so that an executable
    compiled here has all its kernels and may be stored.

    JAX decides once per process, at its first compilation, whether its persistent cache is
    used (``compilation_cache.is_cache_used``; not public API), and a later switch does not
    change that. So the decision is taken here with the cache switched off: in a process whose
    first compilation is the DFT's (``densitylab dft``, a script that starts with it), JAX's
    cache stays off for the rest of the process, this store taking its place; in a process that
    compiled other JAX code first, JAX's cache stays on and nothing is stored (the DFT then
    traces and compiles through JAX's cache, as before this store existed)."""
    try:
        from jax._src import compilation_cache
        from jax._src import config as jax_config

        jax, _ = jax_numpy()
        with jax_config.enable_compilation_cache(False):
            return not compilation_cache.is_cache_used(jax.devices()[0].client)
    except (ImportError, AttributeError):  # another JAX: store nothing
        return False


def _compile_or_load(name: str, function, statics: tuple, arguments: tuple, donate: tuple):
    path = stored_path(name, statics, arguments)
    if path is not None and path.is_file():
        loaded = _load(path)
        if loaded is not None:
            _COUNTS["loaded"] += 1
            return loaded
    jax, _ = jax_numpy()
    _COUNTS["compiled"] += 1
    count = len(statics)
    donated = tuple(count + index for index in donate)
    jitted = jax.jit(function, static_argnums=tuple(range(count)), donate_argnums=donated)
    storable = path is not None and _compiles_fresh()  # decided before JAX's first compilation
    executable = jitted.lower(*statics, *arguments).compile()
    if storable:
        _store(path, executable)
    return executable


def executable(
    name: str,
    function,
    statics: tuple,
    arguments: tuple,
    donate: tuple = (),
    executor: ThreadPoolExecutor | None = None,
):
    """``function(*statics, *arguments)`` compiled for these statics (hashable, with a stable
    ``repr``) and argument shapes, called as ``executable(*arguments)``: kept from an earlier
    call, loaded from the store, or compiled now (with ``executor``, in the background: the
    call then returns at once and the next call waits for it). ``name`` identifies ``function``
    (a module-level function, its module's source hashed into the key); ``donate``: indices of
    ``arguments`` whose buffers the call may reuse."""
    key = (name, statics, signature(arguments))
    entry = _EXECUTABLES.get(key)
    if entry is None:
        if executor is not None:
            entry = executor.submit(_compile_or_load, name, function, statics, arguments, donate)
        else:
            entry = _compile_or_load(name, function, statics, arguments, donate)
        _EXECUTABLES[key] = entry
        while len(_EXECUTABLES) > MAX_EXECUTABLES:
            _EXECUTABLES.popitem(last=False)
    else:
        _EXECUTABLES.move_to_end(key)  # least recently used is dropped first, not oldest made
    if isinstance(entry, Future):
        entry = entry.result()
        _EXECUTABLES[key] = entry
    return entry


def to_device(array):
    """A host array on the default device (a device array as it is), without the eager
    compilation that ``jnp.asarray`` of a host array costs (10–25 ms per call)."""
    jax, _ = jax_numpy()
    return jax.device_put(array)
