"""Resource checks made before long work: is there the memory (or disk) for what was asked?

Every workflow estimates what a run will allocate from its parameters alone and calls
:func:`require_memory` (or :func:`require_disk`) before allocating anything, so that a request
that cannot fit is refused at once with the estimate, instead of ending in a ``MemoryError``
traceback or in the kernel's out-of-memory killer after minutes of work.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from densitylab.errors import InvalidParameterError

GIB = 1024.0**3


def available_memory() -> float:
    """Bytes of memory available to a new allocation (``MemAvailable`` of /proc/meminfo, else
    the physical memory as reported by ``os.sysconf``)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return float("inf")


def require_memory(
    estimate: float,
    parameter: str,
    what: str,
    got: object = ...,
    available: float | None = None,
    where: str = "memory",
) -> None:
    """Refuse ``what`` unless ``estimate`` bytes fit in the available memory (``available``
    bytes of ``where`` when given, e.g. an accelerator's, else :func:`available_memory`).

    Raises:
        InvalidParameterError: naming ``parameter``, with the estimate and what is available.
    """
    available = available_memory() if available is None else available
    if estimate > available:
        raise InvalidParameterError(
            parameter,
            f"a size that fits in {where} ({what} needs about {estimate / GIB:.3g} GiB; "
            f"{available / GIB:.3g} GiB are available)",
            got,
        )


def require_disk(estimate: float, folder: str | Path, parameter: str, what: str, got: object = ...) -> None:
    """Refuse ``what`` unless ``estimate`` bytes fit in the free space of ``folder``."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if estimate > free:
        raise InvalidParameterError(
            parameter,
            f"a size that fits on disk ({what} needs about {estimate / GIB:.3g} GiB; "
            f"{free / GIB:.3g} GiB are free in {folder})",
            got,
        )
