"""A plotting process started with the run, so the report's plots do not wait for matplotlib.

Importing matplotlib costs ~0.6 s of one core, and the report is the last step of a run:
paid there, it is serial time. ``start()`` forks a small process when a run begins (the
``report`` built-in asks for it through its ``prepare`` hook): it imports matplotlib while
the run calibrates and measures, then draws on request. Requests name a plotting function
of ``pxlang.run.report`` and carry plain arguments (lists, dicts, numbers), pickled through
a pipe. When the process is not there (never started, died, no fork on this platform) the
caller draws itself: the plotter only saves time, it never changes a result.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import signal
import threading
import warnings
from typing import Any

from .children import die_with_parent

_lock = threading.Lock()
_plotter: _Plotter | None = None

ALLOWED = frozenset({"subframes_png"})  # what a request may call


def _serve(conn: Any, parent_end: Any, parent: int) -> None:
    """The plotting process: warm matplotlib, then answer requests until the pipe closes."""
    # the fork copied the run's end of the pipe too: closed here, so that the run's death
    # (even by SIGKILL) ends this process with it (EOF) instead of leaving it waiting
    parent_end.close()
    die_with_parent(parent)
    # Ctrl-C reaches the whole process group: the run handles it and this process ends
    # with it (EOF), without a KeyboardInterrupt traceback of its own
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        from matplotlib.backends import backend_agg  # noqa: F401 - the import is the point
        from matplotlib.figure import Figure  # noqa: F401

        from . import report
    except Exception:  # noqa: BLE001 - the parent falls back to drawing itself
        conn.close()
        return
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        name, args, kwargs = msg
        try:
            if name not in ALLOWED:
                raise ValueError(f"not a plotting function: {name}")
            conn.send(("ok", getattr(report, name)(*args, **kwargs)))
        except Exception as exc:  # noqa: BLE001 - reported back, the parent redraws
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class _Plotter:
    def __init__(self) -> None:
        ctx = multiprocessing.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=_serve, args=(child, self.conn, os.getpid()), daemon=True, name="pxlang-plots"
        )
        with warnings.catch_warnings():
            # Python ≥ 3.12 warns when forking with threads alive; the child uses none
            warnings.simplefilter("ignore", DeprecationWarning)
            self.proc.start()
        child.close()
        self.pid = os.getpid()

    def alive(self) -> bool:
        return self.pid == os.getpid() and self.proc.is_alive()

    def close(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.conn.close()
        self.proc.join(timeout=2)
        if self.proc.is_alive():
            self.proc.terminate()


def start() -> None:
    """Fork the plotting process unless one is running (idempotent, thread-safe)."""
    global _plotter
    with _lock:
        if _plotter is not None and _plotter.alive():
            return
        try:
            _plotter = _Plotter()
        except (ValueError, OSError):  # no fork here, or no resources: draw in place
            _plotter = None


def stop() -> None:
    global _plotter
    with _lock:
        if _plotter is not None and _plotter.pid == os.getpid():
            _plotter.close()
        _plotter = None


atexit.register(stop)


def submit(requests: list[tuple[str, tuple, dict]]) -> Any:
    """Send ``(function name, args, kwargs)`` requests; returns a function collecting their
    PNG bytes, in order (None on a failure: the caller then draws) — or None at once when no
    plotting process is running. The caller may work between the two."""
    with _lock:
        plotter = _plotter
    if plotter is None or not plotter.alive() or not requests:
        return None
    failed: list[BaseException] = []

    def send() -> None:
        # from a thread: a request is sent while the plotter may be writing a PNG back
        try:
            for req in requests:
                plotter.conn.send(req)
        except (OSError, ValueError) as exc:
            failed.append(exc)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()

    def collect() -> list[bytes] | None:
        # answers are read while requests may still be going out (not after joining the
        # sender: both ends could then wait on a full pipe); a broken pipe ends both
        out = []
        try:
            for _ in requests:
                status, value = plotter.conn.recv()
                if status != "ok":
                    stop()
                    return None
                out.append(value)
        except (EOFError, OSError):
            stop()
            return None
        sender.join()
        return None if failed else out

    return collect
