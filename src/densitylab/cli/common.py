"""What every command shares: the consoles, one progress protocol rendered by Rich, the JSON
or table summary, and :func:`command`, which registers a command behind one guard.

The guard is where the CLI's conventions are enforced for every command alike (docs/api.md,
"CLI conventions"): float options must be finite, ``--output`` and ``--plot`` must be
writable before any work starts, and densitylab's own errors become one line
``Error: <parameter>: expected …, got …`` with exit code 2. Messages are printed without
Rich markup, so user text such as ``[/red]`` or ``densitylab[qm9]`` is shown as it is.
"""

from __future__ import annotations

import json
import math
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from functools import wraps
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from densitylab.artefacts import check_replaceable
from densitylab.data import check_output
from densitylab.errors import DensitylabError, InvalidParameterError, require

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)


def typer_app(help_text: str) -> typer.Typer:
    """A Typer (sub-)application with densitylab's settings: no Rich markup in help texts
    (so ``densitylab[qm9]`` is printed as written), help when called without arguments."""
    return typer.Typer(help=help_text, no_args_is_help=True, rich_markup_mode=None)


def progress_bar(fields: str = ""):
    """A Rich progress bar on stderr: the task's description, a bar, done/total, ``fields``
    (a column template over the task's fields) and the time remaining."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(fields),
        TimeRemainingColumn(),
        console=err,
    )


#: Seconds between the plain progress lines of a job whose stderr is no terminal.
LOG_EVERY = 60.0


def batch_log(description: str) -> Callable[..., None]:
    """``log(done, total, text)``: where stderr is no terminal (a batch job's log file, where
    Rich draws no bar), a plain line ``DESCRIPTION: done/total text (elapsed s)`` at most every
    :data:`LOG_EVERY` seconds, none before, so a job of hours shows its progress in its log
    and a short one stays silent; on a terminal, nothing (the bar shows it)."""
    started = time.perf_counter()
    last = [started]

    def log(done: int, total: int | None, text: str = "") -> None:
        now = time.perf_counter()
        if err.is_terminal or now - last[0] < LOG_EVERY:
            return
        last[0] = now
        count = f"{done}/{'?' if total is None else total}"
        err.print(f"{description}: {count} {text} ({now - started:.0f} s)", markup=False, soft_wrap=True)

    return log


def rich_progress(description: str, total: int | None = None, fields: Mapping[str, str] | None = None):
    """One Rich bar for the progress protocol of :mod:`densitylab.progress`; returns
    (bar, callback). ``fields`` maps a field the library reports to its format, e.g.
    ``{"loss": ".3e"}``; the bar shows each after the count (and a batch job's log, where
    there is no bar, gets them as plain lines: :func:`batch_log`)."""
    fields = dict(fields or {})
    bar = progress_bar("  ".join(f"{name} {{task.fields[{name}]}}" for name in fields))
    task = bar.add_task(description, total=total, **{name: "—" for name in fields})
    log = batch_log(description)

    def callback(done: int, total: int | None = None, /, **values: float) -> None:
        shown = {name: format(value, fields[name]) for name, value in values.items() if name in fields}
        bar.update(task, completed=done, total=total, **shown)
        log(done, total, "  ".join(f"{name} {value}" for name, value in shown.items()))

    return bar, callback


def systems_progress(description: str):
    """A Rich progress bar that shows systems per second; returns (progress, callback(done, total))."""
    progress = progress_bar("{task.fields[rate]} systems/s")
    task = progress.add_task(description, total=None, rate="—")
    started: dict[str, float] = {}
    log = batch_log(description)

    def update(done: int, total: int) -> None:
        now = time.perf_counter()
        if "time" not in started:
            started.update(time=now, done=done)
        elapsed = now - started["time"]
        rate = f"{(done - started['done']) / elapsed:.0f}" if elapsed > 0 and done > started["done"] else "—"
        progress.update(task, completed=done, total=total, rate=rate)
        log(done, total, f"{rate} systems/s")

    return progress, update


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.10g}"
    if isinstance(value, list | tuple) and len(value) > 8:
        return ", ".join(_cell(v) for v in value[:8]) + f", … ({len(value)} values)"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value)
    return str(value)


def summary_table(summary: Mapping[str, object], title: str | None = None) -> Table:
    """A two-column table of a summary; nested mappings become rows ``outer.inner``. Names and
    values are shown as they are (``[network]`` is text, not Rich markup)."""
    table = Table(title=None if title is None else escape(title))
    table.add_column("quantity")
    table.add_column("value", justify="right")

    def add(prefix: str, mapping: Mapping[str, object]) -> None:
        for key, value in mapping.items():
            name = f"{prefix}{key}"
            if isinstance(value, Mapping):
                add(name + ".", value)
            else:
                table.add_row(escape(name), escape(_cell(value)))

    add("", summary)
    return table


def print_summary(summary: dict, as_json: bool, title: str | None = None) -> None:
    """One JSON object on stdout with --json, else a readable table."""
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        out.print(summary_table(summary, title))


def print_rows(rows: list[Mapping[str, object]], columns: Mapping[str, str], title: str) -> None:
    """A table with one row per mapping; ``columns`` maps a header to the key it shows."""
    table = Table(title=escape(title))
    for header in columns:
        table.add_column(escape(header))
    for row in rows:
        table.add_row(*(escape(_cell(row.get(key, ""))) for key in columns.values()))
    out.print(table)


def _finite_floats(arguments: Mapping[str, object]) -> None:
    """Refuse NaN and ±inf in every float option (and in lists of floats)."""
    for name, value in arguments.items():
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if isinstance(item, float) and not math.isfinite(item):
                raise InvalidParameterError(name, "a finite number", item)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one line on stderr, ``Warning: …`` (not Python's path, line and source)."""
    err.print(f"Warning: {message}", markup=False, style="yellow", soft_wrap=True)


def command(app: typer.Typer, name: str, outputs: Mapping[str, str] | None = None) -> Callable:
    """Register ``function`` as command ``name`` of ``app`` behind the CLI's guard.

    Args:
        outputs: option name → "file", "folder" (written into) or "artefact" (a folder
            replaced whole, :mod:`densitylab.artefacts`) for the options the command writes; the
            default checks ``output`` and ``plot`` (a folder) where the command has them. An
            artefact output that is an existing folder of other files is refused here, before
            the work, not when the result is saved.
    """
    kinds = {"output": "any", "plot": "folder", **(outputs or {})}  # every option a command writes

    def register(function: Callable) -> Callable:
        @wraps(function)
        def guarded(*args, **kwargs):
            try:
                _finite_floats(kwargs)
                for option, kind in kinds.items():
                    if isinstance(kwargs.get(option), Path):
                        check_output(kwargs[option], option, "folder" if kind == "artefact" else kind)
                        if kind == "artefact":
                            check_replaceable(kwargs[option], option)
                with warnings.catch_warnings():  # restores the default display afterwards
                    warnings.showwarning = _show_warning
                    return function(*args, **kwargs)
            except DensitylabError as exc:
                err.print("Error: " + str(exc), markup=False, style="bold red", soft_wrap=True)
                raise typer.Exit(code=2) from None

        return app.command(name)(guarded)

    return register


# ------------------------------------------------------------------ options every command shares
def option(kind, help_text: str):
    """The type of a plain option: ``name: option(int, "What it is.") = default``."""
    return Annotated[kind, typer.Option(help=help_text)]


Json = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of a table.")]
Plot = Annotated[Path | None, typer.Option(help="Folder for the figures (created; its parent must exist).")]
Seed = Annotated[int, typer.Option(help="Seed of every random choice (initialisation, sampling).")]
Workers = Annotated[int, typer.Option(help="Local Dask worker processes (1: in this process).")]
Scheduler = Annotated[str | None, typer.Option(help="Address of a running dask.distributed scheduler.")]


def input_argument(help_text: str):
    """The type of a command's optional positional input file (``densitylab dft water.xyz``),
    also accepted as an option of the same name; :func:`one_input` takes the one given."""
    return Annotated[Path | None, typer.Argument(help=help_text, show_default=False)]


def one_input(positional: Path | None, named: Path | None, name: str) -> Path:
    """The input file given as the command's argument or as ``--name``: exactly one of them."""
    require(
        (positional is None) != (named is None),
        name,
        f"one {name} file, given as the argument or as --{name} (not both)",
        "neither" if positional is None else f"{positional} and {named}",
    )
    return positional if named is None else named


def checkpoint_beside(output: Path | None) -> Path | None:
    """OUTPUT.checkpoint.npz, where a command with ``--output`` keeps its resumable state (None
    without an output)."""
    return None if output is None else Path(str(output) + ".checkpoint.npz")


def plot_folder(plot: Path | None) -> Path | None:
    """The --plot folder, created (its parent was checked by the guard)."""
    if plot is not None:
        plot.mkdir(exist_ok=True)
    return plot


def config_from(config_class, arguments: Mapping[str, object], **overrides: object):
    """``config_class`` built from a command's options: each of its fields is the option of the
    same name (``overrides`` for those spelled otherwise on the command line)."""
    from dataclasses import fields

    names = {field.name for field in fields(config_class)}
    return config_class(
        **{k: v for k, v in arguments.items() if k in names and k not in overrides}, **overrides
    )
