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
import hashlib
import multiprocessing
import os
import pickle
import queue
import signal
import threading
import warnings
from typing import Any

from .children import die_with_parent

_lock = threading.Lock()
_plotter: _Plotter | None = None

ALLOWED = frozenset({"subframes_png"})  # what a request may call
AHEAD_KEPT = 64  # PNGs drawn ahead and kept for their request (~60 KB each)
NICENESS = 10  # the plotting process yields the cores to the run's own processes
CLOSE_WAIT = 0.2  # seconds the run's end waits for the plotting process to end by itself


def _key(request: Any) -> bytes:
    return hashlib.sha256(pickle.dumps(request, protocol=4)).digest()


def _in_child(draw: Any, args: tuple, kwargs: dict) -> bytes:
    """``draw(*args, **kwargs)`` in a child forked from this process: what a drawing leaves
    allocated (matplotlib's font and text caches, ~20 MB over a run's plots) goes with the
    child, and this process stays as small as its imports made it while the run works."""
    here = os.getpid()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: draw, write the PNG, leave without any clean-up of the parent's
        status = 1
        try:
            os.close(r)
            die_with_parent(here)
            png = draw(*args, **kwargs)
            with os.fdopen(w, "wb") as fh:
                fh.write(png)
            status = 0
        finally:
            os._exit(status)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        png = fh.read()
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise RuntimeError(f"drawing {getattr(draw, '__name__', draw)} failed")
    return png


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
        os.nice(NICENESS)
    except OSError:
        pass
    try:
        from matplotlib.backends import backend_agg  # noqa: F401 - the import is the point
        from matplotlib.figure import Figure  # noqa: F401

        from . import report
    except Exception:  # noqa: BLE001 - the parent falls back to drawing itself
        conn.close()
        return
    kept: dict[bytes, bytes] = {}  # drawn ahead, by request
    counts = {"drawn": 0, "served_ahead": 0}
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        kind, request = msg
        if kind == "stats":
            conn.send(("ok", dict(counts)))
            continue
        key = _key(request)
        if kind == "draw" and key in kept:
            counts["served_ahead"] += 1
            conn.send(("ok", kept.pop(key)))
            continue
        name, args, kwargs = request
        try:
            if name not in ALLOWED:
                raise ValueError(f"not a plotting function: {name}")
            draw = getattr(report, name)
            # ahead of the report, while the run's workers hold their frames: in a child
            png = draw(*args, **kwargs) if kind == "draw" else _in_child(draw, args, kwargs)
        except Exception as exc:  # noqa: BLE001 - reported back, the parent redraws
            if kind == "draw":
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
            continue
        counts["drawn"] += 1
        if kind == "draw":
            conn.send(("ok", png))
        else:  # drawn ahead: kept for the request that will ask for it
            kept[key] = png
            while len(kept) > AHEAD_KEPT:
                kept.pop(next(iter(kept)))


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
        # Messages go out in order through one thread: the run never waits on a full pipe
        # (a large set's frame list, a request while the plotter writes a PNG back), and a
        # request sent after a plot drawn ahead reaches the plotter after it.
        self.outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.sender: threading.Thread | None = None
        self.sender_lock = threading.Lock()
        self.broken = False
        self.notes: dict[str, Any] = {}  # what this run's guesses of later requests share

    def send(self, msg: Any) -> None:
        with self.sender_lock:  # one sender thread, whichever thread sends first
            if self.sender is None:
                self.sender = threading.Thread(target=self._send_all, daemon=True)
                self.sender.start()
        self.outbox.put(msg)

    def _send_all(self) -> None:
        while True:
            msg = self.outbox.get()
            try:
                self.conn.send(msg)
            except (OSError, ValueError):
                self.broken = True
                return
            if msg is None:
                return

    def alive(self) -> bool:
        return self.pid == os.getpid() and not self.broken and self.proc.is_alive()

    def close(self) -> None:
        # An idle plotter ends at once on the None (or the pipe's end); one still drawing
        # ahead a plot the report did not ask for (it kept its plots from an earlier run)
        # is not waited for: the run is over.
        self.send(None)
        if self.sender is not None:
            self.sender.join(timeout=CLOSE_WAIT)
        self.conn.close()
        self.proc.join(timeout=CLOSE_WAIT)
        if self.proc.is_alive():
            self.proc.terminate()  # its drawing child follows (die_with_parent)
            self.proc.join(timeout=2)


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
    plotter = _current()
    if plotter is None or not requests:
        return None
    for req in requests:
        plotter.send(("draw", req))

    def collect() -> list[bytes] | None:
        # a broken pipe or a failed drawing ends the process: the caller draws instead
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
        return out

    return collect


def _current() -> _Plotter | None:
    with _lock:
        plotter = _plotter
    return plotter if plotter is not None and plotter.alive() else None


def running() -> bool:
    """True when this run has a plotting process (its script writes a report)."""
    return _current() is not None


def ahead(request: tuple[str, tuple, dict]) -> None:
    """Have ``(function name, args, kwargs)`` drawn now and kept for an equal request later
    (module docstring). Returns at once; nothing happens without a plotting process."""
    plotter = _current()
    if plotter is not None:
        plotter.send(("ahead", request))


def note(key: str, value: Any) -> Any:
    """The value first noted under ``key`` for this run's plotting process (``value`` when
    none was): shared by the guesses a run makes of its later requests."""
    plotter = _current()
    if plotter is None:
        return value
    return plotter.notes.setdefault(key, value)


def stats() -> dict[str, int] | None:
    """How many plots the process drew, and how many requests it answered with a plot drawn
    ahead, once every message sent before is handled (None without a plotting process).
    For tests and diagnosis: call it with no request waiting for its answer."""
    plotter = _current()
    if plotter is None:
        return None
    plotter.send(("stats", None))
    try:
        status, value = plotter.conn.recv()
    except (EOFError, OSError):
        return None
    return value if status == "ok" else None
