"""The public API: parse + check + run, wired to the built-in registry and the image files.

This is the one place that joins the language (``lang/``) to what names mean (``builtins/``)."""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from . import runtrace
from .lang import ast
from .lang.errors import PxError, PxIOError, PxTypeError
from .lang.functions import CallContext, FunctionSpec

_CHANNEL_FORM = re.compile(r"^\s*[RGBK]\s*=(?!=)")


def functions() -> dict[str, FunctionSpec]:
    """Every built-in by name and alias (importing the registry modules on first use)."""
    from . import builtins

    return builtins.REGISTRY


def stdlib_dir() -> Path:
    packaged = resources.files("pxlang").joinpath("_data/stdlib")
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[1] / "stdlib"


def module_loader(name: str, base_dir: str) -> tuple[str, str] | None:
    """``import NAME``: NAME.px next to the script first, then the stdlib."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return None
    for folder in (Path(base_dir), stdlib_dir()):
        path = folder / f"{name}.px"
        found = path.is_file()
        runtrace.listed("exists", path, found)
        if found:
            runtrace.read(path)
            return path.read_text(encoding="utf-8"), str(path)
    return None


def wrap_image(data: Any, header: Any, operands: Sequence[Any] = ()) -> Any:
    """Pixel results in scripts become Images with the first operand's header, fitted to the
    result (``image.result_header``: filters combined, stale noise figures dropped)."""
    from .image.result_header import result_header
    from .image.store import Image

    return Image(data, result_header(header, operands))


def _interpreter(
    text: str,
    name: str,
    base_dir: str,
    params: Mapping[str, Any] | None,
    images: Mapping[str, Any] | None,
    options: Mapping[str, Any] | None,
) -> Any:
    from .lang.interp import Interpreter

    return Interpreter(
        functions(),
        base_dir=base_dir,
        params=params,
        provenance={"source": name, "text": text, "params": dict(params or {})},
        options={"_wrap_image": wrap_image, **dict(options or {})},
        module_loader=module_loader,
        names=_bind_images(images or {}, base_dir),
        warn=_warn,
    )


def _bind_images(images: Mapping[str, Any], base_dir: str) -> dict[str, Any]:
    from .image.store import Image

    out: dict[str, Any] = {}
    for key, value in images.items():
        if isinstance(value, (str, os.PathLike)):
            out[key] = load(os.path.join(base_dir, os.fspath(value)), name=key)
        elif isinstance(value, np.ndarray) and value.ndim in (2, 3):
            out[key] = Image(value, name=key)
        elif isinstance(value, np.ndarray) and value.ndim == 0:
            out[key] = float(value)
        else:
            out[key] = value
    return out


def check(
    source: str, *, path: str | None = None, names: Mapping[str, Any] | list[str] | None = None
) -> None:
    """Parse and check a script; raises ``PxError`` (``PxCheckErrors`` lists every problem)."""
    from .lang.check import check_script
    from .lang.parse import parse_script

    name = path or "<script>"
    tree = parse_script(source, name)
    base = os.path.dirname(os.path.abspath(path)) if path else os.getcwd()
    check_script(
        tree, functions(), names=list(names or ()), module_loader=module_loader, base_dir=base
    )


@functools.cache
def big_blocks_to_the_system() -> None:
    """glibc's allocator tuned for frames (process-wide; forked workers inherit it):

    - a fixed mmap threshold of 8 MB: glibc's dynamic one follows the largest freed block
      (up to 32 MB), so whole frames stayed in the heap after use and the process grew
      stage after stage; mapped on their own, they go back when freed (peak RSS of the
      2048² night 710 → 563 MB, same time);
    - freed heap memory kept up to 32 MB (``TRIM_THRESHOLD``) instead of 128 kB, with one
      arena: a stage's temporaries (a few MB each at 1024²) are not faulted in again, page
      by page, by the next — page faults were a quarter of the CPU time of the 1024² night
      on this VM; one arena keeps what is kept to one pool (several threads' arenas each
      kept theirs: +70 MB peak).

    Called by ``evaluate`` and the CLI; other C libraries' allocators are unchanged."""
    import sys

    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 8 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, TRIM_THRESHOLD)  # M_TRIM_THRESHOLD
        libc.mallopt(-8, 1)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


TRIM_THRESHOLD = 32 << 20


def evaluate(
    source: str,
    images: Mapping[str, Any] | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    path: str | None = None,
    options: Mapping[str, Any] | None = None,
) -> Any:
    """Run script text and return the value of its last statement.

    ``images`` binds names to arrays, ``Image``s, numbers or file paths. ``params`` gives
    values to ``param`` declarations. ``path`` names the script (errors, relative paths).
    ``options``: run-wide settings, e.g. ``{"quiet": True, "cache_dir": "cache/",
    "scheduler": "tcp://host:8786"}`` (per-frame stages and integration on that dask
    cluster, whose workers see the same folders; see docs/cluster.md).
    """
    big_blocks_to_the_system()
    from .lang.check import check_script
    from .lang.errors import PxNameError, did_you_mean
    from .lang.parse import parse_script

    name = path or "<script>"
    base = _base_dir(path, options)
    tree = parse_script(source, name)
    check_script(
        tree, functions(), names=list(images or ()), module_loader=module_loader, base_dir=base
    )
    declared = {st.name for st in tree.statements if isinstance(st, ast.ParamDecl)}
    for p in params or {}:
        if p not in declared:
            err = PxNameError(
                f"the script has no parameter '{p}'",
                None,
                did_you_mean(p, declared)
                or (
                    "its parameters: " + ", ".join(sorted(declared))
                    if declared
                    else "the script declares no parameters"
                ),
            )
            err.usage = True
            raise err
    interp = _interpreter(source, name, base, params, images, options)
    from .run.executor import run_scope
    from .run.progress import running

    cleanups = _prepare(tree)
    try:
        # the run's executor: options["scheduler"] (a dask cluster, connected before any
        # work) or what cluster() switches to; a LocalCluster is shut down when the run
        # ends. The run's options also reach code without a call context (file discovery's
        # progress).
        with run_scope(interp.options), running(interp.options):
            value = interp.run(tree)
    finally:
        for cleanup in cleanups:
            cleanup()
    return value


def run_workflow(
    source: str,
    *,
    params: Mapping[str, Any] | None = None,
    path: str | None = None,
    options: Mapping[str, Any] | None = None,
    force: bool = False,
) -> bool:
    """Run a script for what it writes (``pxlang run``, ``pxlang demo``): as ``evaluate``,
    but when nothing it read, listed or wrote last time has changed since (see
    ``run/uptodate.py``) only its printed lines are shown again. Returns False when the run
    was skipped. ``force`` runs it anyway (its steps still reuse their cached results)."""
    from .run import uptodate

    opts = dict(options or {})
    base = _base_dir(path, opts)
    if opts.get("cache", True) is False:  # no cache, no record
        evaluate(source, params=params, path=path, options=opts)
        return True
    root = uptodate.cache_root(opts, base)
    key = uptodate.run_key(source, path, params, opts, base)
    record = None if force else uptodate.unchanged(root, key)
    if record is not None:
        if not opts.get("quiet"):
            for line in record["said"]:
                print(line, file=sys.stderr)
            print(uptodate.summary(record), file=sys.stderr, flush=True)
        return False
    uptodate.sweep_temp(root)  # what a killed run left half-written
    with runtrace.tracing(ignore=[root]) as trace:
        evaluate(source, params=params, path=path, options=opts)
    uptodate.keep(root, key, trace)
    return True


def _base_dir(path: str | None, options: Mapping[str, Any] | None) -> str:
    """Where a run's relative paths start: the ``base_dir`` option, else the script's
    folder, else the current one."""
    if options and options.get("base_dir"):
        return str(options["base_dir"])
    return os.path.dirname(os.path.abspath(path)) if path else os.getcwd()


def _warn(message: str) -> None:
    """Script warnings: on stderr, and recorded for an up-to-date re-run to show again."""
    runtrace.said(f"warning: {message}")
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _prepare(tree: ast.Script) -> list[Any]:
    """Call the ``prepare`` hooks of the functions the script calls (before the run, so
    that what they warm up overlaps with its work); returns the cleanups they hand back,
    to call when the run ends."""
    table = functions()
    called = {node.func for node in ast.walk(tree) if isinstance(node, ast.Call)}
    cleanups = []
    for name in sorted(called):
        spec = table.get(name)
        prepare = spec.extra.get("prepare") if spec is not None else None
        if prepare is not None:
            cleanup = prepare()
            if cleanup is not None:
                cleanups.append(cleanup)
    return cleanups


def run_file(path: str, **params: Any) -> Any:
    """Run a ``.px`` file with parameter values; returns the value of its last statement."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PxIOError(f"{path}: no such script") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PxIOError(f"{path}: cannot read the script ({e})") from None
    return evaluate(text, params=params, path=path)


# ------------------------------------------------------------------ PixelMath
def pixelmath(
    rk: str,
    g: str | None = None,
    b: str | None = None,
    *,
    images: Mapping[str, Any] | None = None,
    symbols: str = "",
    truncate: bool = True,
    rescale: bool = False,
    target: Any = None,
    seed: int | None = None,
) -> Any:
    """PixInsight's PixelMath process.

    ``rk`` alone is one expression (applied to every channel of a colour target or operand);
    with ``g`` and ``b`` it is the per-channel form producing ``(3, H, W)``; ``rk`` may also be
    the inline form ``"R = Ha; G = …; B = OIII"``. ``images`` maps identifiers to arrays,
    ``Image``s, file paths or numbers. An expression that depends on no pixel (statistics,
    numbers) returns a Python float when there is no target. Images come back as float32.
    """
    return pixelmath_result(
        rk,
        g,
        b,
        images=images,
        symbols=symbols,
        truncate=truncate,
        rescale=rescale,
        target=target,
        seed=seed,
    ).value


class PixelMathResult:
    def __init__(self, value: Any, globals_: dict[str, Any]):
        self.value = value
        self.globals = globals_


def pixelmath_result(
    rk: str,
    g: str | None = None,
    b: str | None = None,
    *,
    images: Mapping[str, Any] | None = None,
    symbols: str = "",
    truncate: bool = True,
    rescale: bool = False,
    target: Any = None,
    seed: int | None = None,
    names: Mapping[str, Any] | None = None,
    base_dir: str | None = None,
    provenance: dict[str, Any] | None = None,
) -> PixelMathResult:
    """``pixelmath`` with the final values of global accumulators (``globals``)."""
    from .lang.check import check_pixelmath
    from .lang.interp import Interpreter
    from .lang.parse import parse_channels, parse_pixelmath, parse_symbols
    from .lang.pixel import Options, Symbol, per_channel

    if (g is None) != (b is None):
        raise PxTypeError("give both g and b (per-channel form) or neither")
    sym_ast = parse_symbols(symbols or "", "<symbols>")
    if g is None and _CHANNEL_FORM.match(rk):
        form = parse_channels(rk, "<expr>")
        programs = [
            ast.PmProgram(c.span, (), (ast.ExprStmt(c.span, c.value),)) for c in form.channels
        ]
    elif g is None:
        programs = [parse_pixelmath(rk, "<expr>")]
    else:
        programs = [parse_pixelmath(t, n) for t, n in ((rk, "<R/K>"), (g, "<G>"), (b, "<B>"))]
    # PixelMath always makes an image when one is referenced (mean(Ha) fills an image)
    opts = Options(truncate=truncate, rescale=rescale, seed=seed, invariant_as_image=True)
    extra_symbols: list[ast.SymbolDef] = []
    for p in programs:
        for d in p.directives:
            if d.name == "pragma":
                for a in d.args:
                    on = not a.startswith("no-")
                    key = a[3:] if not on else a
                    if key == "truncate":
                        opts.truncate = on
                    elif key == "rescale":
                        opts.rescale = on
                    elif key == "64_bit":
                        opts.float64 = on
            elif d.name == "symbols":
                extra = parse_symbols(", ".join(d.args), "<.symbols>")
                extra_symbols.extend(extra.defs)
    if extra_symbols:
        sym_ast = ast.Symbols(sym_ast.span, sym_ast.defs + tuple(extra_symbols))
    base = base_dir or os.getcwd()
    bound = dict(names or {})
    bound.update(_bind_images(images or {}, base))
    tgt = None
    if target is not None:
        tgt = (
            target
            if not isinstance(target, (str, os.PathLike))
            else load(os.path.join(base, target))
        )
        bound["$T"] = bound["$target"] = tgt
    check_pixelmath(
        programs, sym_ast, functions(), images=set(bound), has_target=target is not None
    )

    text = rk if g is None else f"R/K: {rk}\nG: {g}\nB: {b}"
    interp = Interpreter(
        functions(),
        base_dir=base,
        options={"seed": seed},
        provenance=provenance
        or {
            "source": "pixelmath",
            "text": text + (f"\nsymbols: {symbols}" if symbols else ""),
            "params": {"truncate": truncate, "rescale": rescale, "seed": seed},
        },
        module_loader=module_loader,
        names=bound,
    )
    table: dict[str, Symbol] = {}
    for d in sym_ast.defs:
        if d.kind == "constant":
            value = d.values[0] if len(d.values) == 1 else per_channel(d.values)
            table[d.name] = Symbol(d.name, "constant", value)
        elif d.kind == "variable":
            table[d.name] = Symbol(d.name, "variable", 0.0)
        elif d.kind == "init":
            table[d.name] = Symbol(d.name, "init", d.values[0])
        elif d.kind == "global":
            table[d.name] = Symbol(d.name, "global", d.values[0], d.op)
        else:
            ev = interp.pixel_evaluator(
                interp.globals, options=Options(truncate=False, truncate_scalars=False)
            )
            res = ev.run([ast.ExprStmt(d.call.span, d.call)])
            val = res.value
            if isinstance(val, list) and len(val) == 3:
                val = per_channel(val)
            table[d.name] = Symbol(d.name, "constant", val)
    target_arr = None if tgt is None else np.asarray(getattr(tgt, "pixels", tgt), np.float32)
    ev = interp.pixel_evaluator(interp.globals, symbols=table, target=target_arr, options=opts)
    for v in bound.values():
        arr = getattr(v, "pixels", v)
        if isinstance(arr, np.ndarray) and arr.ndim in (2, 3):
            ev.fallback_shape = arr.shape
            break
    if len(programs) == 3:
        result = ev.run_channels([list(p.statements) for p in programs])
    else:
        result = ev.run(list(programs[0].statements))
    value = result.value
    if isinstance(value, np.ndarray) and value.dtype != np.float32:
        value = value.astype(np.float32)
    return PixelMathResult(value, result.globals)


# ------------------------------------------------------------------ files
def load(path: str, *, name: str | None = None) -> Any:
    """Read an image file (FITS, XISF, TIFF, PNG, JPEG) as an ``Image``."""
    from .image import io

    return io.load(os.fspath(path), name=name)


def save(
    image: Any,
    path: str,
    header: Any = None,
    *,
    provenance: dict[str, Any] | None = None,
    bits: int | None = None,
) -> str:
    """Write an image atomically; the file carries the pxlang version and ``provenance``."""
    from .image import io

    return io.save(image, os.fspath(path), header=header, provenance=provenance, bits=bits)


def context(base_dir: str = ".") -> CallContext:
    """A call context for using built-ins from Python: ``lookup(name).call(ctx, args, kw)``."""
    return CallContext(base_dir=base_dir)


__all__ = [
    "PxError",
    "check",
    "evaluate",
    "run_file",
    "pixelmath",
    "pixelmath_result",
    "load",
    "save",
    "functions",
    "context",
]
