"""Progress of long stages: a rich progress bar (count, rate, ETA) on a terminal; plain log
lines when output is not a terminal (CI, files); nothing with ``--quiet``.

Built-ins use it as ``with stage(ctx.options, "calibrate", n) as advance: … advance()``.
Code that has no call context (file discovery, the process layer) uses
``stage(current_options(), …)``: the options of the run in progress, set by
``with running(options):`` around an evaluation; outside one it is silent."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pxlang import runtrace

_LINE_EVERY = 10.0  # seconds between plain progress lines
_QUIET: Mapping[str, Any] = {"quiet": True}
_RUN: ContextVar[Mapping[str, Any] | None] = ContextVar("pxlang_run_options", default=None)


@contextmanager
def running(options: Mapping[str, Any] | None) -> Iterator[None]:
    """Make ``options`` the run's options for ``current_options()`` inside the block."""
    token = _RUN.set(dict(options or {}))
    try:
        yield
    finally:
        _RUN.reset(token)


def current_options() -> Mapping[str, Any]:
    """The options of the run in progress; quiet when there is none (a library call)."""
    return _RUN.get() or _QUIET


@contextmanager
def stage(
    options: Mapping[str, Any] | None, label: str, total: int
) -> Iterator[Callable[[int], None]]:
    """A progress reporter for ``total`` items of work; yields ``advance(n=1)``."""
    options = options or {}
    stream = sys.stderr
    if options.get("quiet") or total <= 0:
        yield lambda n=1: None
        return
    if stream.isatty() and not options.get("plain_progress"):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        with Progress(
            TextColumn("{task.description:>22}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            transient=False,
            console=Console(file=stream),  # the bars go where the plain lines would
        ) as bar:
            task = bar.add_task(label, total=total)
            yield lambda n=1: bar.advance(task, n)
        return
    start = time.perf_counter()
    state = {"done": 0, "last": start}
    print(f"{label}: {total} to do", file=stream, flush=True)

    def advance(n: int = 1) -> None:
        state["done"] += n
        now = time.perf_counter()
        if now - state["last"] >= _LINE_EVERY and state["done"] < total:
            rate = state["done"] / (now - start)
            eta = (total - state["done"]) / rate if rate else 0
            print(f"{label}: {state['done']}/{total} ({eta:.0f} s left)", file=stream, flush=True)
            state["last"] = now

    yield advance
    print(
        f"{label}: {state['done']}/{total} done in {time.perf_counter() - start:.1f} s",
        file=stream,
        flush=True,
    )


def log(options: Mapping[str, Any] | None, message: str) -> None:
    """One line of workflow information (silent with --quiet)."""
    runtrace.said(message)
    if not (options or {}).get("quiet"):
        print(message, file=sys.stderr, flush=True)
