"""What a run reads, lists, writes and says, recorded while it runs, so that the next run of
the same script with the same parameters can tell that nothing it depends on changed
(``pxlang.run.uptodate``) and skip its work, as ``make`` does.

The file layer reports here (``read``, ``listed``, ``wrote``); nothing is recorded unless a
run is being traced (``tracing``), so the calls cost a list check otherwise. Paths under the
ignored folders (the run's own cache) are not recorded: derived files, not inputs or
outputs. Standard library only: the up-to-date check imports it before anything heavy.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_active: list[Trace] = []


def stamp(path: str) -> list[int] | None:
    """A file's (size, modification time in ns), or None when it does not exist. The same
    identity the step cache gives a file (``FrameSet.content_key``)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


class Trace:
    """One run's record: files read (with their stamp when first read), listings (a folder
    walk or an existence test, with what it gave), files written (stamped when the run
    ends), lines said, and why the run cannot be skipped next time (``volatile``)."""

    def __init__(self, ignore: list[str]):
        self.ignore = [os.path.join(os.path.abspath(p), "") for p in ignore]
        self.reads: dict[str, list[int] | None] = {}
        self.listings: dict[str, Any] = {}
        self.writes: set[str] = set()
        self.said: list[str] = []
        self.volatile: str | None = None

    def _ours(self, path: str) -> str | None:
        full = os.path.abspath(path)
        return None if any(full.startswith(p) for p in self.ignore) else full

    def read(self, path: str) -> None:
        full = self._ours(path)
        if full is not None and full not in self.reads and full not in self.writes:
            self.reads[full] = stamp(full)

    def listed(self, kind: str, arg: str, result: Any) -> None:
        full = self._ours(arg)
        if full is not None:
            if isinstance(result, list):
                result = [os.path.abspath(p) for p in result]
            self.listings.setdefault(f"{kind}:{full}", result)


def read(path: str | os.PathLike[str]) -> None:
    """The run reads this file (its pixels, header or text)."""
    for t in _active:
        t.read(os.fspath(path))


def listed(kind: str, arg: str | os.PathLike[str], result: Any) -> None:
    """The run looked at the file system and saw ``result``: kind ``tree`` (the image files
    under a folder or matching a pattern, see ``pxlang.image.listing``) or ``exists``."""
    for t in _active:
        t.listed(kind, os.fspath(arg), result)


def wrote(path: str | os.PathLike[str]) -> None:
    """The run wrote this file (an output: it must still be there, unchanged, to skip)."""
    for t in _active:
        full = t._ours(os.fspath(path))
        if full is not None:
            t.writes.add(full)


def said(line: str) -> None:
    """A line the run printed for the user (replayed when the run is skipped)."""
    for t in _active:
        t.said.append(line)


def volatile(reason: str) -> None:
    """The run did something whose result is not a function of its files (random numbers
    without a seed, opening a viewer): its next run is not skipped."""
    for t in _active:
        if t.volatile is None:
            t.volatile = reason


@contextmanager
def tracing(ignore: list[str]) -> Iterator[Trace]:
    trace = Trace(ignore)
    _active.append(trace)
    try:
        yield trace
    finally:
        _active.remove(trace)
