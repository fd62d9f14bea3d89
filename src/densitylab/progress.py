"""One progress protocol for every long computation.

A function that runs long takes ``progress: Progress | None = None`` and, as it goes, calls

    progress(done, total, **fields)

``done`` units of ``total`` are finished (``total`` None when unknown); ``fields`` are named
numbers worth watching (``loss``, ``gradient``, ``energy``, ``mae``, …). The library is silent
by default; the CLI shows every call on one Rich bar (:func:`densitylab.cli.common.rich_progress`),
and a notebook user can pass any callable, e.g. ``lambda done, total, **f: print(done, f)``.
Raising from the callback (``KeyboardInterrupt``) stops the computation; resumable jobs then
continue from their checkpoint when called again.

The units: systems for datasets and references, steps for propagations, epochs for network
training, iterations for optimisers (windows for the windowed Gauss–Newton fit), and 0/1 for a
single solve.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def __call__(self, done: int, total: int | None, /, **fields: float) -> None: ...
