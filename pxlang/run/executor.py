"""Where per-frame work and integration bands run: this machine's cores, or a dask cluster.

One small interface, ``Executor.map(fn, n, advance) -> [fn(0), …, fn(n-1)]``:

- ``LocalExecutor``: forked worker processes (two by default: SEP holds the GIL, so threads
  would not overlap star detection). ``fn`` and the frames it reads are inherited through
  fork; only results travel back. Threads where fork is unavailable; serial for one item.
- ``DaskExecutor``: tasks on a ``dask.distributed`` cluster, either a scheduler address
  (``--scheduler tcp://host:port``) or a ``LocalCluster`` of N worker processes
  (``cluster(workers=N)``). ``fn`` is pickled once (cloudpickle, closures by value) and
  sent to the workers once; each task calls it with one index. Frames travel as file paths:
  derived frames are written by the workers into the run's cache folder, so the cache (and
  the input and output folders) must be on storage every worker sees at the same path.

A run's executor lives in a ``RunExecutors`` holder put in the run options (key
``"_executors"``) and made current for the run by ``run_scope`` (``api.evaluate`` does it);
``executor_for(options)`` finds it, ``close`` at the end of the run shuts a LocalCluster down
and disconnects from a remote scheduler. dask is imported only when a cluster is asked for.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import gc
import io
import os
import threading
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..lang.errors import PxIOError, PxRuntimeError
from ..lang.functions import CallContext
from .children import die_with_parent

LOCAL_WORKERS = 2  # per-frame work on both cores
CONNECT_TIMEOUT = 10.0  # seconds to reach a scheduler before giving up
OPTION_KEY = "_executors"
DASK_HINT = "pip install 'pxlang[dask]'"
SHARED_STORAGE = (
    "every worker must see the input, output and cache folders at the same paths "
    "(a shared filesystem); see docs/cluster.md"
)

Advance = Callable[..., None]


class Executor:
    """Runs ``fn(i)`` for i in range(n) somewhere; results in index order."""

    distributed: bool = False

    @property
    def workers(self) -> int:
        """How many tasks run at once (for choosing how finely to split work)."""
        return 1

    def map(self, fn: Callable[[int], Any], n: int, advance: Advance | None = None) -> list[Any]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the executor started (nothing for local processes)."""

    def describe(self) -> str:
        return type(self).__name__

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serial(fn: Callable[[int], Any], n: int, tick: Advance) -> list[Any]:
    out = []
    for i in range(n):
        out.append(fn(i))
        tick()
    return out


def _ticked(result: Any, tick: Advance) -> Any:
    tick()
    return result


_TASK: dict[str, Callable[[int], Any]] = {}
_MEANWHILE: list[Callable[[], None]] = []


def meanwhile(job: Callable[[], None]) -> None:
    """Run ``job`` in this process while the workers of the next local ``map`` work (after
    they are forked: no thread is started, so no fork happens with a lock held): a warm-up
    for what this process does next. Dropped when that ``map`` has no forked workers."""
    _MEANWHILE.append(job)


def _run_meanwhile() -> None:
    jobs = list(_MEANWHILE)
    _MEANWHILE.clear()
    for job in jobs:
        job()


def _run_task(i: int) -> Any:
    # runs in a forked child: the function was put here by the parent before forking
    _one_thread()
    return _TASK["fn"](i)


def _one_thread() -> None:
    """One numba thread in a forked worker: the workers already fill the cores, and a
    parallel kernel's own threads on top of them only contend (resampling, cosmetic)."""
    from ..process import jit

    jit.set_threads(1)


class LocalExecutor(Executor):
    """``fn(i)`` on ``workers`` forked processes of this machine (threads without fork)."""

    def __init__(self, workers: int = LOCAL_WORKERS):
        self._workers = max(1, int(workers))

    @property
    def workers(self) -> int:
        return self._workers

    def map(self, fn: Callable[[int], Any], n: int, advance: Advance | None = None) -> list[Any]:
        tick = advance if advance is not None else (lambda k=1: None)
        if n <= 1 or self._workers <= 1:
            _MEANWHILE.clear()
            return _serial(fn, n, tick)
        import multiprocessing

        try:
            mp = multiprocessing.get_context("fork")
        except ValueError:
            with ThreadPoolExecutor(max_workers=self._workers) as pool:
                return [_ticked(r, tick) for r in pool.map(fn, range(n))]
        import warnings
        from concurrent.futures import ProcessPoolExecutor

        _TASK["fn"] = fn
        # Out of the collector's sight while workers are forked from here: a child's full
        # collection writes to the header of every object it visits, which copies each page
        # of the inherited heap into the child (time and memory for nothing)
        gc.freeze()
        try:
            with warnings.catch_warnings():
                # Python ≥ 3.12 warns when forking with threads alive (numba's idle pool after
                # a resampling, a closed dask client's loop); the children never use them.
                warnings.simplefilter("ignore", DeprecationWarning)
                with ProcessPoolExecutor(
                    max_workers=self._workers,
                    mp_context=mp,
                    initializer=die_with_parent,
                    initargs=(os.getpid(),),
                ) as pool:
                    results = pool.map(_run_task, range(n))  # the workers are forked now
                    _run_meanwhile()
                    return [_ticked(r, tick) for r in results]
        finally:
            gc.unfreeze()
            _TASK.pop("fn", None)

    def describe(self) -> str:
        return f"this machine ({self._workers} processes)"

    def __reduce__(self) -> tuple[Any, ...]:
        return (LocalExecutor, (self._workers,))


# ---------------------------------------------------------------------------- dask


def _distributed() -> Any:
    """The dask.distributed module, or a clear error saying how to get it."""
    try:
        import distributed
    except ImportError as exc:
        raise PxRuntimeError(
            f"running on a dask cluster needs dask.distributed ({exc})",
            hint=f"install it: {DASK_HINT}",
        ) from None
    return distributed


def _check_address(address: str) -> None:
    """Fail fast, in one message, on an address that is malformed or where nothing listens
    (dask's own client would retry until its timeout and leave a half-made client behind)."""
    import socket

    from distributed.comm.addressing import parse_address, parse_host_port

    hint = "give the scheduler's address as tcp://HOST:PORT (dask's default port is 8786)"
    try:
        scheme, loc = parse_address(address)
        if scheme not in ("tcp", "tls"):
            return  # other transports (ucx, inproc): leave them to dask
        host, port = parse_host_port(loc)
    except (ValueError, TypeError) as exc:
        raise PxRuntimeError(f"bad dask scheduler address {address!r}: {exc}", hint=hint) from None
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise PxRuntimeError(
            f"cannot reach the dask scheduler at {address} ({reason})",
            hint="is the scheduler running (dask scheduler; dask worker ADDRESS)? " + hint,
        ) from None


_TRIM_KEY = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"
# what dask's nanny sets in the driver's environment before spawning workers
_PRE_SPAWN = (
    "MALLOC_TRIM_THRESHOLD_",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "PYTHONHASHSEED",
)

_OPEN: weakref.WeakSet[DaskExecutor] = weakref.WeakSet()


def _close_open() -> None:
    for ex in list(_OPEN):
        with contextlib.suppress(Exception):
            ex.close()


class DaskExecutor(Executor):
    """Tasks on a dask.distributed cluster: the scheduler at ``address``, or a LocalCluster
    of ``workers`` single-threaded worker processes started here (and shut down by close)."""

    distributed = True

    def __init__(self, address: str | None = None, workers: int | None = None):
        dd = _distributed()
        self.address = address
        self.cluster: Any = None
        self.client: Any = None
        if address:
            _check_address(address)
            try:
                self.client = _client_class(dd)(
                    address, timeout=CONNECT_TIMEOUT, set_as_default=False
                )
            except Exception as exc:  # noqa: BLE001 - whatever dask raised: one clear message
                raise PxRuntimeError(
                    f"cannot connect to the dask scheduler at {address} "
                    f"({type(exc).__name__}: {exc})"[:400],
                    hint="is it a dask scheduler, and the same dask version as here?",
                ) from None
            try:  # tasks sent to a scheduler without workers would wait for ever
                self.client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
            except Exception:  # noqa: BLE001 - dask's TimeoutError
                self.close()
                raise PxRuntimeError(
                    f"the dask scheduler at {address} has no workers",
                    hint=f"start some on machines that see the same folders: dask worker {address}",
                ) from None
        else:
            import logging

            import dask

            n = max(1, int(workers or LOCAL_WORKERS))
            # dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, which makes every large
            # array a fresh mmap: per-frame work measured 1.7x slower. The nanny also sets
            # these variables in this process before spawning; they are put back after.
            saved = {k: os.environ.get(k) for k in _PRE_SPAWN}
            try:
                with dask.config.set({_TRIM_KEY: None}):
                    # processes, one thread each: SEP and parts of numpy hold the GIL
                    self.cluster = dd.LocalCluster(
                        n_workers=n,
                        threads_per_worker=1,
                        processes=True,
                        # a free port: the scheduler's HTTP server (health checks, dashboard
                        # when bokeh is installed) would otherwise want 8787, warning if taken
                        dashboard_address=":0",
                        silence_logs=logging.ERROR,
                    )
                self.client = dd.Client(self.cluster, set_as_default=False)
            except Exception as exc:  # noqa: BLE001
                self.close()
                raise PxRuntimeError(
                    f"cannot start a local dask cluster of {n} workers ({type(exc).__name__}: "
                    f"{exc})"[:400]
                ) from None
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            self.address = self.cluster.scheduler_address
        _OPEN.add(self)
        _register_atexit()

    @property
    def workers(self) -> int:
        if self.client is None:
            return 1
        try:
            return max(1, sum(self.client.nthreads().values()))
        except Exception:  # noqa: BLE001 - only a hint for splitting work
            return 1

    def describe(self) -> str:
        kind = "local dask cluster" if self.cluster is not None else "dask scheduler"
        return f"{kind} at {self.address}"

    def map(self, fn: Callable[[int], Any], n: int, advance: Advance | None = None) -> list[Any]:
        tick = advance if advance is not None else (lambda k=1: None)
        if n <= 0:
            return []
        if self.client is None:
            raise PxRuntimeError("the dask cluster of this run is closed")
        dd = _distributed()
        blob = _dumps(fn)
        token = uuid.uuid4().hex
        # the pickled function goes to the cluster once; each worker fetches it once
        [ref] = self.client.scatter([blob], hash=False)
        futures = self.client.map(_run_pickled, range(n), token=token, blob=ref, pure=False)
        try:
            for fut in dd.as_completed(futures, loop=self.client.loop):
                if fut.status == "error":
                    self._task_failed(fut)
                tick()
            return self.client.gather(futures)
        except BaseException as exc:
            self.client.cancel([*futures, ref])  # stop the other tasks
            if isinstance(exc, dd.KilledWorker):
                raise PxRuntimeError(
                    f"a dask worker died while running this step ({exc})",
                    hint="workers may be short of memory; give them more, or fewer threads each",
                ) from None
            raise

    def _task_failed(self, fut: Any) -> None:
        """Raise the task's own exception (PxError, ValueError…) as on one machine; a file
        a worker of a remote cluster cannot read most likely is not on shared storage."""
        exc = fut.exception()
        if self.cluster is None and isinstance(exc, (PxIOError, OSError)):
            if isinstance(exc, OSError):
                raise PxIOError(f"on a dask worker: {exc}", hint=SHARED_STORAGE) from None
            if exc.hint is None:
                exc.hint = SHARED_STORAGE
        raise exc.with_traceback(fut.traceback())  # the worker's traceback, for --debug

    def close(self) -> None:
        client, cluster = self.client, self.cluster
        self.client = self.cluster = None
        _OPEN.discard(self)
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close()

    def __reduce__(self) -> tuple[Any, ...]:
        # a closure that captured the executor runs serially inside a worker
        return (LocalExecutor, (1,))


_CLIENT_CLASS: list[Any] = []


def _client_class(dd: Any) -> Any:
    """distributed.Client that closes itself when it fails to connect (else its __del__
    complains later, at an unrelated moment)."""
    if not _CLIENT_CLASS:

        class _Client(dd.Client):  # type: ignore[misc, name-defined]
            def start(self, **kwargs: Any) -> Any:
                try:
                    return super().start(**kwargs)
                except BaseException:
                    with contextlib.suppress(BaseException):
                        self.close(timeout=1)
                    raise

        _CLIENT_CLASS.append(_Client)
    return _CLIENT_CLASS[0]


_ATEXIT: list[bool] = []


def _register_atexit() -> None:
    # registered after distributed's own handlers, so it runs before them (LIFO): clusters a
    # run did not close (a REPL session, the Python API) are shut down in order
    if not _ATEXIT:
        atexit.register(_close_open)
        _ATEXIT.append(True)


# ---------------------------------------------------------------------------- pickling


def _context_copy(
    span: Any, base_dir: str, provenance: dict[str, Any], seed: Any, options: dict[str, Any]
) -> CallContext:
    return CallContext(
        span=span, base_dir=base_dir, provenance=provenance, rng_seed=seed, options=options
    )


def _reduce_context(ctx: CallContext) -> tuple[Any, ...]:
    """A CallContext as a worker gets it: the span (for error messages), folders and plain
    run options; not the executor, the caller's names, the warning callback or the RNG
    (none of which would pickle, or mean anything in another process)."""
    plain = (str, int, float, bool, type(None))
    options = {
        k: v
        for k, v in ctx.options.items()
        if not k.startswith("_") and k != "scheduler" and isinstance(v, plain)
    }  # no scheduler: a task must not connect to the cluster it runs on
    return (_context_copy, (ctx.span, ctx.base_dir, ctx.provenance, ctx.rng_seed, options))


def _dumps(fn: Callable[..., Any]) -> bytes:
    """``fn`` pickled for the workers (cloudpickle: closures by value, modules by name)."""
    import cloudpickle

    class _Pickler(cloudpickle.Pickler):
        dispatch_table = {**cloudpickle.Pickler.dispatch_table, CallContext: _reduce_context}

    buf = io.BytesIO()
    try:
        _Pickler(buf, protocol=5).dump(fn)
    except Exception as exc:  # noqa: BLE001 - pickling raises many types
        raise PxRuntimeError(
            f"this step cannot be sent to the dask cluster: its data does not pickle "
            f"({type(exc).__name__}: {exc})"[:400],
            hint="run it on this machine (no --scheduler, no cluster())",
        ) from None
    return buf.getvalue()


_LOADED: dict[str, Callable[[int], Any]] = {}
_LOADED_LOCK = threading.Lock()


def _run_pickled(i: int, token: str, blob: bytes) -> Any:
    """A task on a worker: unpickle the function once per map (by token), call it with i."""
    with _LOADED_LOCK:
        fn = _LOADED.get(token)
        if fn is None:
            import pickle

            fn = pickle.loads(blob)
            while len(_LOADED) >= 2:  # the previous step's function (and its frames) go
                _LOADED.pop(next(iter(_LOADED)))
            _LOADED[token] = fn
    return fn(i)


# ---------------------------------------------------------------------------- per run


class RunExecutors:
    """The executor of one run: from ``--scheduler`` (``scheduler``), or switched by the
    script with ``cluster()``. Shared by reference between copies of the options dict."""

    def __init__(self, scheduler: str | None = None):
        self.scheduler = scheduler or None
        self.executor: Executor | None = None
        self._settings: tuple[Any, ...] | None = None

    def get(self, local_workers: int = LOCAL_WORKERS) -> Executor:
        if self.executor is None and self.scheduler:
            self.executor = DaskExecutor(self.scheduler)
            self._settings = ("scheduler", self.scheduler)
        return self.executor if self.executor is not None else LocalExecutor(local_workers)

    def use(
        self, workers: int = 2, scheduler: str | None = None, warn: Advance | None = None
    ) -> Executor:
        """Switch to a LocalCluster of ``workers`` (0: this machine's processes) or to the
        scheduler at ``scheduler``; the same settings twice keep the running cluster."""
        if self.scheduler:  # --scheduler on the command line wins
            if scheduler != self.scheduler and warn is not None:
                warn(
                    f"cluster(): the run uses the scheduler given on the command line "
                    f"({self.scheduler}); cluster() is ignored"
                )
            return self.get()
        settings = ("scheduler", scheduler) if scheduler else ("local", int(workers))
        if settings == self._settings and self.executor is not None:
            return self.executor
        self.close()
        if scheduler:
            self.executor = DaskExecutor(scheduler)
        elif workers > 0:
            self.executor = DaskExecutor(workers=int(workers))
        self._settings = settings if self.executor is not None else None
        return self.get()

    def close(self) -> None:
        ex, self.executor, self._settings = self.executor, None, None
        if ex is not None:
            ex.close()


_CURRENT: contextvars.ContextVar[RunExecutors | None] = contextvars.ContextVar(
    "pxlang_executors", default=None
)


def _holder(options: Mapping[str, Any] | None) -> RunExecutors | None:
    if options is not None:
        got = options.get(OPTION_KEY)
        if isinstance(got, RunExecutors):
            return got
    return _CURRENT.get()


def executor_for(
    options: Mapping[str, Any] | None = None, local_workers: int = LOCAL_WORKERS
) -> Executor:
    """The executor of the running script: its cluster if it has one (``--scheduler``,
    ``cluster()``), else ``local_workers`` processes of this machine. ``options``: the run
    options (``ctx.options``); without them, the run current in this thread."""
    holder = _holder(options)
    if holder is None:
        scheduler = options.get("scheduler") if options is not None else None
        if scheduler and isinstance(options, MutableMapping):
            # built-ins called from Python with {"scheduler": …} but outside run_scope
            holder = options.setdefault(OPTION_KEY, RunExecutors(str(scheduler)))
            if _CURRENT.get() is None:
                _CURRENT.set(holder)
        else:
            return LocalExecutor(local_workers)
    return holder.get(local_workers)


def use_cluster(
    options: MutableMapping[str, Any],
    workers: int = 2,
    scheduler: str | None = None,
    warn: Advance | None = None,
) -> Executor:
    """Switch the run to a LocalCluster of ``workers`` or to ``scheduler`` (``cluster()``).
    Outside ``run_scope`` (a REPL session, the Python API) the cluster becomes current for
    this thread until ``close_executors(options)`` or the end of the process."""
    holder = _holder(options)
    if holder is None:
        holder = RunExecutors(options.get("scheduler"))
        _CURRENT.set(holder)
    options[OPTION_KEY] = holder
    return holder.use(workers, scheduler, warn)


def close_executors(options: MutableMapping[str, Any] | None = None) -> None:
    """Shut the run's cluster down (a LocalCluster) or disconnect (a remote scheduler)."""
    holder = _holder(options)
    if holder is not None:
        holder.close()


@contextlib.contextmanager
def run_scope(options: MutableMapping[str, Any]) -> Iterator[RunExecutors]:
    """The executor of one run: connects to ``options["scheduler"]`` first (a bad address
    fails before any work), is current while the run lasts and is closed at its end."""
    own = not isinstance(options.get(OPTION_KEY), RunExecutors)
    holder = options[OPTION_KEY] if not own else RunExecutors(options.get("scheduler"))
    options[OPTION_KEY] = holder
    token = _CURRENT.set(holder)
    try:
        if own and holder.scheduler:
            holder.get()
        yield holder
    finally:
        _CURRENT.reset(token)
        if own:
            options.pop(OPTION_KEY, None)
            holder.close()


__all__ = [
    "Executor",
    "LocalExecutor",
    "DaskExecutor",
    "RunExecutors",
    "executor_for",
    "use_cluster",
    "close_executors",
    "run_scope",
]
