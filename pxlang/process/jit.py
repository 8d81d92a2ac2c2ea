"""Per-pixel kernels compiled by numba, run without numba where they can be.

A kernel is declared once, with ``@njit(..., export=SIGNATURES)`` in place of numba's own
decorator, ``prange`` taken from here. It then runs one of two ways:

- **ahead of time**: :func:`build_library` compiles every kernel at its declared signatures with
  numba's ``pycc`` into one C extension module in the kernel folder (:func:`kernel_dir`). A
  process that finds the module built from the kernels' present sources loads it and calls
  it directly: numba and LLVM are never imported (~110 MB less in every process, main and
  workers, and ~1 s less at start). Its functions give up the GIL, so :func:`split` runs a
  parallel kernel's slices on threads.
- **just in time**: any other call (no module yet, a type not declared, a source changed)
  compiles the kernel with numba as before (cached on disk by numba).

Both compile the same function with numba at the same options, for this machine's CPU; the
tests check that the two give identical results. The library's functions are serial: a kernel
that must use every core of the main process takes its rows in slices (:func:`split`); the
post-processing kernels (deconvolution, TGV denoising), parallel over rows and run once an
image, are not exported and keep numba's threads. The ``pxlang`` command (run, demo, eval,
repl) builds the module at the first kernel a script calls when it is missing, once
(``PXLANG_AOT=0`` turns the library off); the Python API and dask workers only use a module
already built (``python -m pxlang.process.jit`` builds one).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
import sysconfig
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

# the modules holding kernels: their sources make the library's name
KERNEL_MODULES = (
    "pxlang.process.pixel_kernels",
    "pxlang.process.rejection_kernels",
    "pxlang.process.interpolation",
    "pxlang.process.psf_kernels",
    "pxlang.process.debayer",
    "pxlang.process.denoise",
    "pxlang.process.deconvolution",
)
LIBRARY_PREFIX = "pxkernels_"

# numba's prange outside numba: a kernel run by the library or called as Python is serial
prange = range

_KERNELS: dict[str, Kernel] = {}
_LOCK = threading.RLock()
_LIBRARY: dict[str, Any] = {}  # "module": the loaded extension (or None), "exports": its table


def _numba_loaded() -> Any:
    return sys.modules.get("numba")


class Kernel:
    """One kernel: the Python function, numba's options for it, the signatures it is compiled
    at ahead of time. Calling it runs the library's compiled function for those argument
    types, or numba's dispatcher for any other."""

    def __init__(self, fn: Callable[..., Any], options: dict[str, Any], export: Sequence[str]):
        self.py_func = fn
        self.options = dict(options)
        self.export = tuple(export)
        self.key = f"{fn.__module__}.{fn.__qualname__}"
        self._dispatcher: Any = None
        self._compiled: list[tuple[tuple[Any, ...], Callable[..., Any]]] | None = None
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any) -> Any:
        return self.implementation(args)(*args)

    def implementation(self, args: Sequence[Any]) -> Callable[..., Any]:
        """The library's function for these arguments, else numba's dispatcher."""
        compiled = self._compiled if self._compiled is not None else self._bind()
        for decl, fn in compiled:
            if _matches(decl, args):
                return fn
        return self.dispatcher()

    def ahead_of_time(self, args: Sequence[Any]) -> bool:
        """Whether these arguments run the library's compiled function."""
        compiled = self._compiled if self._compiled is not None else self._bind()
        return any(_matches(decl, args) for decl, _ in compiled)

    def _bind(self) -> list[tuple[tuple[Any, ...], Callable[..., Any]]]:
        lib = library()
        found = []
        if lib is not None:
            for symbol, decl in _LIBRARY["exports"].get(self.key, ()):
                found.append((tuple(tuple(d) for d in decl), getattr(lib, symbol)))
        self._compiled = found
        return found

    def dispatcher(self) -> Any:
        """numba's dispatcher for this kernel (numba imported, every kernel's made at once)."""
        if self._dispatcher is None:
            _make_dispatchers()
        return self._dispatcher


def njit(*, export: Sequence[str] = (), **options: Any) -> Callable[[Callable[..., Any]], Kernel]:
    """numba's ``njit(**options)``, compiled lazily, and ahead of time at ``export``'s
    signatures (numba's signature strings, e.g. ``"void(f4[:, ::1], i8)"``)."""

    def wrap(fn: Callable[..., Any]) -> Kernel:
        k = Kernel(fn, options, export)
        _KERNELS[k.key] = k
        return k

    return wrap


def _make_dispatchers() -> None:
    """A numba dispatcher for every declared kernel. Each is made from a copy of its function
    whose globals name the other kernels' dispatchers (and numba's prange): numba compiles a
    callee only if it is its own dispatcher. The module's own globals are left alone, so the
    Python around the kernels keeps calling the :class:`Kernel` objects."""
    with _LOCK:
        if all(k._dispatcher is not None for k in _KERNELS.values()):
            return
        import numba

        for k in _KERNELS.values():
            if k._dispatcher is None:
                k._dispatcher = numba.njit(**k.options)(_numba_function(k, numba.prange))


_GLOBALS: dict[str, dict[str, Any]] = {}


def _numba_function(k: Kernel, numba_prange: Any) -> Callable[..., Any]:
    import types

    fn = k.py_func
    g = _GLOBALS.get(fn.__module__)
    if g is None:
        g = _GLOBALS[fn.__module__] = _LazyGlobals(fn.__globals__, numba_prange)
    copy = types.FunctionType(fn.__code__, g, fn.__name__, fn.__defaults__, fn.__closure__)
    copy.__qualname__ = fn.__qualname__
    copy.__module__ = fn.__module__
    copy.__doc__ = fn.__doc__
    return copy


class _LazyGlobals(dict):  # type: ignore[type-arg]
    """A module's globals as numba must see them: kernels as their dispatchers, prange as
    numba's. Looked up when numba compiles, so the dispatchers made after it are found."""

    def __init__(self, source: dict[str, Any], numba_prange: Any):
        super().__init__(source)
        self._prange = numba_prange

    def __getitem__(self, name: str) -> Any:
        v = super().__getitem__(name)
        if isinstance(v, Kernel):
            return v.dispatcher() if v._dispatcher is None else v._dispatcher
        if v is range and name == "prange":
            return self._prange
        return v

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default


# ---------------------------------------------------------------------------- arguments


def _decl(arg: Any) -> tuple[Any, ...]:
    """What the library's wrapper accepts for one of numba's argument types."""
    from numba.core import types

    if isinstance(arg, types.Array):
        return ("array", str(np.dtype(arg.dtype.name)), arg.ndim, arg.layout)
    if isinstance(arg, types.Boolean):
        return ("bool",)
    if isinstance(arg, types.Integer):
        return ("int",)
    if isinstance(arg, types.Float):
        return ("float",)
    raise TypeError(f"cannot export a kernel argument of type {arg}")


def _matches(decl: tuple[tuple[Any, ...], ...], args: Sequence[Any]) -> bool:
    if len(decl) != len(args):
        return False
    for d, a in zip(decl, args, strict=True):
        kind = d[0]
        if kind == "array":
            if not isinstance(a, np.ndarray) or a.ndim != d[2] or str(a.dtype) != d[1]:
                return False
            f = a.flags
            # numba would type a read-only array apart (and the wrapper would write to it)
            if not (f.writeable and f.aligned and a.dtype.isnative):
                return False
            if d[3] == "C" and not f.c_contiguous:
                return False
        elif kind == "bool":
            if not isinstance(a, (bool, np.bool_)):
                return False
        elif kind == "int":
            if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)):
                return False
        elif not isinstance(a, (float, np.floating, int, np.integer)) or isinstance(a, bool):
            return False  # a float argument takes an integer as numba's wrapper does
    return True


# ---------------------------------------------------------------------------- threads


def threads() -> int:
    """How many slices (threads) a parallel kernel spreads over: ``NUMBA_NUM_THREADS`` or the
    machine's cores, as numba takes them, until :func:`set_threads`."""
    return _THREADS[0]


def _default_threads() -> int:
    env = os.environ.get("NUMBA_NUM_THREADS", "")
    return int(env) if env.isdigit() and int(env) > 0 else (os.cpu_count() or 1)


_THREADS = [_default_threads()]


def set_threads(n: int) -> None:
    """Parallel kernels on ``n`` threads from now on (numba's too, when loaded)."""
    _THREADS[0] = max(1, int(n))
    numba = _numba_loaded()
    if numba is not None and numba.get_num_threads() != _THREADS[0]:
        numba.set_num_threads(min(_THREADS[0], numba.config.NUMBA_NUM_THREADS))


def split(kernel: Kernel, *args: Any, nthreads: int | None = None) -> None:
    """``kernel(*args, t0, t1, nthreads)`` over the slices ``t`` in ``[0, nthreads)``
    (default :func:`threads`): one call when numba runs it (its ``prange`` spreads the slices
    over its threads), one thread per slice when the library's function runs it (compiled
    serial, without the GIL)."""
    if nthreads is None:
        nthreads = threads()
    full = (*args, 0, nthreads, nthreads)
    fn = kernel.implementation(full)  # the argument types checked once
    if nthreads <= 1 or fn is kernel._dispatcher:
        fn(*full)
        return
    pool = _pool(nthreads)
    for f in [pool.submit(fn, *args, t, t + 1, nthreads) for t in range(nthreads)]:
        f.result()


_POOL: tuple[int, ThreadPoolExecutor] | None = None  # (threads, pool)
_POOL_LOCK = threading.Lock()


def _pool(nthreads: int) -> ThreadPoolExecutor:
    """The process's threads for :func:`split`, kept: a pool made and shut down at every
    call cost ~0.3 ms, and a run makes hundreds of calls of a few ms."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] < nthreads:
            _POOL = (nthreads, ThreadPoolExecutor(nthreads, "pxlang-split"))
        return _POOL[1]


def _forget_pool() -> None:
    """In a forked child (a run's worker): the parent's threads do not exist there, and its
    lock may have been held by one of them at the fork; the child starts its own."""
    global _POOL, _POOL_LOCK
    _POOL = None
    _POOL_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


# ---------------------------------------------------------------------------- the library


def kernel_dir() -> Path:
    """Where the library is built: ``PXLANG_KERNEL_DIR``, else beside numba's cache when
    ``NUMBA_CACHE_DIR`` is set, else the user's cache folder."""
    env = os.environ.get("PXLANG_KERNEL_DIR")
    if env:
        return Path(env)
    numba_dir = os.environ.get("NUMBA_CACHE_DIR")
    if numba_dir:
        return Path(numba_dir) / "pxlang-kernels"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pxlang" / "kernels"


def _cpu() -> str:
    """This machine's CPU as the compiled code depends on it (its model and features)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags"))][:2]
        return "".join(lines)
    except OSError:
        import platform

        return platform.machine() + platform.processor()


@functools.cache
def library_name() -> str:
    """The module name of the library for the kernels' present sources, this Python, numpy's
    major version and this CPU."""
    h = hashlib.sha256()
    for mod in KERNEL_MODULES:
        spec = importlib.util.find_spec(mod)
        origin = spec.origin if spec is not None else None
        h.update(mod.encode())
        if origin:
            h.update(Path(origin).read_bytes())
    h.update(Path(__file__).read_bytes())
    h.update(sys.version.encode())
    h.update(np.__version__.split(".")[0].encode())
    h.update(_cpu().encode())
    return LIBRARY_PREFIX + h.hexdigest()[:20]


def library_path(directory: Path | None = None) -> Path:
    """The library's file (an extension module) in ``directory`` (default: kernel_dir())."""
    return (directory or kernel_dir()) / (library_name() + _EXT_SUFFIX)


_EXT_SUFFIX = sysconfig.get_config_var("EXT_SUFFIX") or importlib.machinery.EXTENSION_SUFFIXES[0]


def _beside(path: Path, ext: str) -> Path:
    """A file beside the library: its export table (.json), or why it could not be built."""
    return path.with_name(library_name() + ext)


def _enabled() -> bool:
    return os.environ.get("PXLANG_AOT", "1") != "0"


# set by the command line: the first kernel a command calls builds the library when missing
BUILD = {"on_first_use": False, "say": None}


def build_on_first_use(say: Callable[[str], None] | None = None) -> None:
    """Build the library at the first kernel call of this process when it is missing (the
    ``pxlang`` command: scripts without kernels never wait for it)."""
    BUILD["on_first_use"] = True
    BUILD["say"] = say


def library() -> Any:
    """The loaded library for the present sources, or None (none built, or turned off)."""
    if "module" in _LIBRARY:
        return _LIBRARY["module"]
    with _LOCK:
        if "module" not in _LIBRARY:
            _LIBRARY["module"], _LIBRARY["exports"] = _load() if _enabled() else (None, {})
            if _LIBRARY["module"] is None and _enabled() and BUILD["on_first_use"]:
                BUILD["on_first_use"] = False  # once a process, built or not
                ensure_library(BUILD["say"])
    return _LIBRARY["module"]


def _load() -> tuple[Any, dict[str, Any]]:
    path = library_path()
    table = _beside(path, ".json")
    if not path.exists() or not table.exists():
        return None, {}
    try:
        exports = json.loads(table.read_text())["exports"]
        spec = importlib.util.spec_from_file_location(library_name(), path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except Exception:  # a damaged library is as none: numba compiles instead
        return None, {}
    return module, exports


def loaded() -> bool:
    """Whether kernels run from the library (looked for on first use)."""
    return library() is not None


def _forget() -> None:
    """Look for the library again at the next call (after a build, or in tests)."""
    with _LOCK:
        _LIBRARY.clear()
        for k in _KERNELS.values():
            k._compiled = None


def import_kernels() -> list[Kernel]:
    """Every declared kernel (their modules imported)."""
    for mod in KERNEL_MODULES:
        importlib.import_module(mod)
    return list(_KERNELS.values())


def build_library(directory: Path | None = None) -> Path:
    """Compile every kernel at its declared signatures into the library, in ``directory``
    (default :func:`kernel_dir`); written under a temporary name, then renamed. Needs numba
    and a C compiler (pycc links the module). Returns the library's path."""
    import warnings

    directory = Path(directory or kernel_dir())
    directory.mkdir(parents=True, exist_ok=True)
    path = library_path(directory)
    kernels = [k for k in import_kernels() if k.export]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pycc's pending deprecation
        from numba.core import sigutils
        from numba.pycc import CC

    _make_dispatchers()
    name = library_name()
    with tempfile.TemporaryDirectory(dir=directory, prefix=".build-") as tmp:
        cc = CC(name)
        cc.output_dir = tmp
        cc.target_cpu = "host"  # the same code as numba's JIT makes here
        cc.verbose = False
        exports: dict[str, list[Any]] = {}
        options: dict[Any, dict[str, Any]] = {}  # numba's options, by exported function
        for i, k in enumerate(kernels):
            for j, sig in enumerate(k.export):
                args, _ = sigutils.normalize_signature(sig)
                symbol = f"k{i}_{j}_{k.py_func.__name__.lstrip('_')}"
                fn = _numba_function(k, _prange_of_numba())
                cc.export(symbol, sig)(fn)
                options[fn] = k.options
                exports.setdefault(k.key, []).append([symbol, [list(_decl(a)) for a in args]])
        with _pycc_options(options), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cc.compile()
        built = next(Path(tmp).glob(name + "*"))
        tmp_table = Path(tmp) / "table.json"
        tmp_table.write_text(json.dumps({"library": name, "exports": exports}, indent=1))
        # the table last: a library is used only once both are in place
        os.replace(built, path)
        os.replace(tmp_table, _beside(path, ".json"))
    _forget()
    return path


def _prange_of_numba() -> Any:
    import numba

    return numba.prange


@contextlib.contextmanager
def _pycc_options(by_function: dict[Any, dict[str, Any]]) -> Any:
    """pycc compiles every export with one set of flags; give each kernel its own numba
    options (error model, fast maths) and let its wrapper give up the GIL (``nogil``)."""
    from numba.core.compiler import Flags
    from numba.core.cpu import FastMathOptions
    from numba.pycc import compiler as pycc_compiler

    original = pycc_compiler.compile_extra

    def compile_extra(typingctx, targetctx, func, args, return_type, flags, locals, **kw):  # noqa: A002
        opts = by_function.get(func, {})
        f = Flags()
        for name in ("no_compile", "no_cpython_wrapper", "no_cfunc_wrapper", "nrt"):
            setattr(f, name, getattr(flags, name))
        f.release_gil = bool(opts.get("nogil", False))
        f.error_model = opts.get("error_model", "python")
        if opts.get("fastmath"):
            f.fastmath = FastMathOptions(opts["fastmath"])
        if opts.get("boundscheck") is not None:
            f.boundscheck = opts["boundscheck"]
        return original(typingctx, targetctx, func, args, return_type, f, locals, **kw)

    pycc_compiler.compile_extra = compile_extra
    try:
        yield
    finally:
        pycc_compiler.compile_extra = original


def ensure_library(say: Callable[[str], None] | None = None) -> bool:
    """Build the library when it is missing (once: a lock keeps two runs from building it
    together); False, with numba compiling just in time, when it cannot be built."""
    if not _enabled():
        return False
    with _LOCK:
        return _ensure(say)


def _ensure(say: Callable[[str], None] | None) -> bool:
    if "module" not in _LIBRARY:
        _LIBRARY["module"], _LIBRARY["exports"] = _load()
    if _LIBRARY["module"] is not None:
        return True
    directory = kernel_dir()
    failed = _beside(library_path(directory), ".failed")
    if failed.exists():
        return False
    try:
        directory.mkdir(parents=True, exist_ok=True)
        import fcntl

        with open(directory / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            _forget()
            _LIBRARY["module"], _LIBRARY["exports"] = _load()  # built meanwhile by another?
            if _LIBRARY["module"] is not None:
                return True
            if say is not None:
                say(f"compiling pxlang's pixel kernels once, into {directory} (~40 s)")
            _build_apart(directory)
    except Exception as exc:  # no compiler, no numba.pycc: numba compiles just in time
        with contextlib.suppress(OSError):
            failed.write_text(f"{type(exc).__name__}: {exc}\n")
        if say is not None:
            say(
                f"could not compile the kernels ahead of time ({exc}); numba compiles them "
                f"as they are used (remove {failed} to try again)"
            )
        _forget()
        _LIBRARY["module"], _LIBRARY["exports"] = None, {}
        return False
    _forget()
    _LIBRARY["module"], _LIBRARY["exports"] = _load()
    return _LIBRARY["module"] is not None


def _build_apart(directory: Path) -> None:
    """:func:`build_library` in a child process: numba and LLVM are loaded there, not in the
    process that goes on to use the library. The child imports this same pxlang (the folder
    holding it first on its path, as its working folder) and refuses to build a library of
    another name."""
    import subprocess

    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "pxlang.process.jit", str(directory), library_name()],
        capture_output=True,
        text=True,
        check=False,
        cwd=root,
        env=env,
    )
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout or "").strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"exit status {proc.returncode}")


if __name__ == "__main__":  # python -m pxlang.process.jit [DIR [NAME]]: build the library
    from pxlang.process import jit as _jit  # the module the kernels registered with

    if len(sys.argv) > 2 and _jit.library_name() != sys.argv[2]:
        sys.exit(
            f"the build imported another pxlang ({Path(_jit.__file__).parent}): its library "
            f"would be {_jit.library_name()}, not {sys.argv[2]}"
        )
    print(_jit.build_library(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
