"""Running independent tasks locally or on a Dask cluster.

``run_tasks`` calls ``function(*arguments)`` for every argument tuple and hands each result to
``on_result`` in the calling process as soon as it is ready, so that the caller can save it
before the next one arrives. With ``workers <= 1`` and no scheduler it runs in this process;
otherwise it uses ``dask.distributed``: a ``LocalCluster`` of single-threaded worker processes
by default, or an existing cluster when given its scheduler address.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from densitylab.errors import require


def check_workers(workers: int) -> None:
    """Refuse a worker count that is not a positive integer (callers check it before long work)."""
    require(isinstance(workers, int) and workers >= 1, "workers", "a positive integer", workers)


def run_tasks(
    function: Callable[..., Any],
    tasks: Sequence[tuple[Hashable, tuple]],
    on_result: Callable[[Hashable, Any], None],
    workers: int = 1,
    scheduler: str | None = None,
) -> None:
    """Run ``function(*arguments)`` for each ``(key, arguments)`` in ``tasks``.

    Args:
        function: a picklable, pure function.
        tasks: (key, arguments) pairs; keys identify results.
        on_result: called as ``on_result(key, result)`` in this process, in completion order.
        workers: local worker processes (ignored when ``scheduler`` is given).
        scheduler: address of a running ``dask.distributed`` scheduler, e.g. ``tcp://host:8786``.
    """
    check_workers(workers)
    if not tasks:
        return
    if scheduler is None and workers == 1:
        for key, arguments in tasks:
            on_result(key, function(*arguments))
        return
    import dask
    from dask.distributed import Client, LocalCluster, as_completed

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s")
        except OSError as exc:
            require(False, "scheduler", f"the address of a reachable dask scheduler ({exc})", scheduler)
        cluster = None
    else:
        # Dask spawns workers with MALLOC_TRIM_THRESHOLD_=65536. Setting any trim threshold also
        # freezes glibc's mmap threshold at 128 KiB, so every large NumPy temporary becomes a
        # fresh mmap: measured here, 2 million page faults and 2.6 s of system time per 500
        # systems (the compute itself takes 2.3 s). Raise both thresholds for our workers.
        environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
        environ.update(MALLOC_TRIM_THRESHOLD_=2**30, MALLOC_MMAP_THRESHOLD_=2**25)
        dask.config.set({"distributed.nanny.pre-spawn-environ": environ})
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
        )
        client = Client(cluster)
    try:
        futures = {}
        for key, arguments in tasks:
            futures[client.submit(function, *arguments, pure=False)] = key
        for future in as_completed(futures):
            on_result(futures[future], future.result())
            future.release()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_resumable(
    function: Callable[..., Any],
    chunks: Sequence[tuple[int, tuple, int]],
    store,
    total: int,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
    scheduler: str | None = None,
) -> tuple[int, int]:
    """Run the chunks not yet in ``store`` (a :class:`densitylab.data.PartsStore`), saving each
    result as a part the moment it arrives, so an interrupt loses nothing already computed.

    Args:
        chunks: (index, arguments, size) per chunk; ``size`` counts items toward ``total``.
        progress: called as ``progress(items_done, total)`` before the first task and after
            each part is saved.

    Returns:
        (chunks computed now, chunks found already done).
    """
    done = store.done() & {index for index, _, _ in chunks}
    sizes = {index: size for index, _, size in chunks}
    completed = sum(sizes[index] for index in done)
    if progress:
        progress(completed, total)

    def save(index: int, arrays) -> None:
        nonlocal completed
        store.save(index, arrays)
        completed += sizes[index]
        if progress:
            progress(completed, total)

    todo = [(index, arguments) for index, arguments, _ in chunks if index not in done]
    try:
        run_tasks(function, todo, save, workers=workers, scheduler=scheduler)
    except BaseException:
        if getattr(store, "created", False) and not store.done():
            store.remove()  # a run that failed before finishing anything leaves nothing behind
        raise
    return len(todo), len(done)
