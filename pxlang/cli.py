"""The ``pxlang`` command: eval | check | run | help | repl | demo | library.

Exit status: 0 success, 1 an error in a script, an expression or the data, 2 bad usage.
User errors print ``file:line:col: error: …`` with a caret and a hint, never a traceback
(``--debug`` shows it)."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from ._version import __version__

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")
_IMAGE_EXT = re.compile(r"\.(fits|fit|fts|xisf|tiff?|png|jpe?g)(\.gz)?$", re.IGNORECASE)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's usage errors: exit 2, no traceback
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


FORCE_HELP = (
    "run even when nothing it read or wrote changed since its last run (which is otherwise "
    "skipped); its steps still reuse their cached results"
)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="pxlang", description="A PixelMath-style language for astrophotography.")
    p.add_argument("--version", action="version", version=f"pxlang {__version__}")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    e = sub.add_parser(
        "eval",
        help="evaluate a PixelMath expression over image files",
        description="Evaluate a PixelMath expression. Positional files are bound "
        "to their file names: Ha.fits -> Ha.",
    )
    e.add_argument("expression", help="R/K expression (or 'R=…; G=…; B=…')")
    e.add_argument("files", nargs="*", help="image files, bound by file stem")
    e.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="bind an image file to a name",
    )
    e.add_argument("--g", help="G expression (per-channel form)")
    e.add_argument("--b", help="B expression (per-channel form)")
    e.add_argument("--symbols", default="", help='PixelMath symbols, e.g. "k = 0.5, a"')
    e.add_argument("--target", help="target image file ($T; gives the output its size)")
    e.add_argument("-o", "--output", help="write the result image here")
    e.add_argument("--no-truncate", action="store_true", help="do not clamp results to [0, 1]")
    e.add_argument("--rescale", action="store_true", help="rescale the result to [0, 1]")
    e.add_argument("--seed", type=int, help="seed for random()/gauss()…")
    e.add_argument("--bits", type=int, help="output bit depth (e.g. 16)")

    c = sub.add_parser("check", help="check scripts without running them")
    c.add_argument("files", nargs="+", metavar="FILE.px")

    r = sub.add_parser("run", help="run a .px script (or a stdlib workflow by name)")
    r.add_argument("script", help="FILE.px or a stdlib workflow name (e.g. preprocess)")
    r.add_argument("params", nargs="*", default=[], metavar="NAME=VALUE", help="script parameters")
    r.add_argument("--seed", type=int, help="seed for random()/gauss() (the same numbers each run)")
    r.add_argument("--quiet", action="store_true", help="no progress output")
    r.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run per-frame stages and integration on this dask.distributed scheduler "
        "(tcp://host:8786); its workers must see the input, output and cache folders at the "
        "same paths (a shared filesystem); needs pip install 'pxlang[dask]'",
    )
    r.add_argument("--no-truncate", action="store_true", help="image arithmetic is not clamped")
    r.add_argument("--force", action="store_true", help=FORCE_HELP)
    r.add_argument(
        "--cache",
        metavar="DIR",
        help="folder for intermediate frames (default: .pxlang-cache next to the "
        "script, or in the current folder for stdlib workflows)",
    )

    h = sub.add_parser("help", help="help on built-ins")
    h.add_argument("name", nargs="?")

    rp = sub.add_parser("repl", help="interactive session")
    rp.add_argument(
        "--history",
        metavar="FILE",
        help="history file (default: the user data folder; PXLANG_HISTORY_DIR)",
    )

    d = sub.add_parser("demo", help="make a synthetic night and process it end to end")
    d.add_argument(
        "dir",
        nargs="?",
        default="pxlang-demo",
        help="folder for the night, its outputs and cache (default: ./pxlang-demo)",
    )
    d.add_argument("--quiet", action="store_true", help="no progress output")
    d.add_argument("--seed", type=int, default=0, help="seed of the synthetic night")
    d.add_argument("--force", action="store_true", help=FORCE_HELP)

    lib = sub.add_parser("library", help="calibration library: add DIR… | list")
    lib.add_argument("args", nargs=argparse.REMAINDER)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from .api import big_blocks_to_the_system

    big_blocks_to_the_system()
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # argparse cannot take positionals after options ("eval EXPR --g … Ha.fits"): files
        # that come after options arrive here
        if args.command == "eval" and not any(x.startswith("-") and len(x) > 1 for x in extra):
            args.files = list(args.files) + extra
        elif args.command == "run" and all("=" in x and not x.startswith("-") for x in extra):
            args.params = list(args.params) + extra  # NAME=VALUE after options
        else:
            parser.error("unrecognized arguments: " + " ".join(extra))
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    debug = args.debug or os.environ.get("PXLANG_DEBUG") == "1"
    from .lang.errors import PxError

    if args.command in ("run", "demo", "eval", "repl"):
        _kernels_ahead_of_time(quiet=bool(getattr(args, "quiet", False)))

    try:
        return COMMANDS[args.command](args)
    except PxError as e:
        if debug:
            raise
        print(e.render(), file=sys.stderr)
        return EXIT_USAGE if e.usage else EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`pxlang eval … | head`): nothing more to say to it
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    except Exception as e:  # noqa: BLE001 - the last guard: an internal error is still no traceback
        if debug:
            raise
        print(f"internal error: {type(e).__name__}: {e}", file=sys.stderr)
        print(
            "hint: this is a bug in pxlang; run again with --debug for the traceback",
            file=sys.stderr,
        )
        return EXIT_ERROR


def _kernels_ahead_of_time(quiet: bool) -> None:
    """A command's first pixel kernel builds pxlang's kernel library when it is missing
    (once per install: ``pxlang.process.jit``); later processes load it without numba."""
    from .process import jit

    say = None if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    jit.build_on_first_use(say)


# ------------------------------------------------------------------ eval
def _stem(path: str) -> str:
    base = os.path.basename(path)
    return _IMAGE_EXT.sub("", base) if _IMAGE_EXT.search(base) else os.path.splitext(base)[0]


def cmd_eval(args: argparse.Namespace) -> int:
    from .api import pixelmath_result
    from .lang.errors import PxError

    images: dict[str, Any] = {}
    for f in args.files:
        name = _stem(f)
        if not _IDENT.match(name):
            raise PxError(
                f"{f}: '{name}' is not a valid image name",
                hint=f"bind it explicitly: --image NAME={f}",
            )
        images[name] = f
    for item in args.image:
        name, sep, path = item.partition("=")
        if not sep or not _IDENT.match(name.strip()):
            _usage(f"--image expects NAME=PATH, got {item!r}")
        images[name.strip()] = path.strip()
    if (args.g is None) != (args.b is None):
        _usage("--g and --b go together (the per-channel form)")
    result = pixelmath_result(
        args.expression,
        args.g,
        args.b,
        images=images,
        symbols=args.symbols,
        truncate=not args.no_truncate,
        rescale=args.rescale,
        target=args.target,
        seed=args.seed,
        provenance={
            "source": "pxlang eval",
            "text": _eval_text(args),
            "params": {
                "files": " ".join(args.files) or None,
                "images": " ".join(args.image) or None,
                "truncate": not args.no_truncate,
                "rescale": args.rescale,
                "seed": args.seed,
            },
        },
    )
    value = result.value
    import numpy as np

    if args.output:
        if not isinstance(value, np.ndarray):
            raise PxError(
                f"the result is {_fmt(value)}, not an image: nothing to write to {args.output}",
                hint="use an expression that refers to an image",
            )
        from .api import save

        prov = {
            "source": "pxlang eval",
            "text": _eval_text(args),
            "params": {
                "truncate": not args.no_truncate,
                "rescale": args.rescale,
                "seed": args.seed,
            },
        }
        save(value, args.output, provenance=prov, bits=args.bits)
        print(f"wrote {args.output} ({_shape_text(value)})")
    elif isinstance(value, np.ndarray) and _constant(value) is not None:
        print(_fmt(_constant(value)))  # an invariant (e.g. mean(Ha)): every pixel is this number
    elif isinstance(value, np.ndarray):
        print(_stats_text(value))
    else:
        print(_fmt(value))
    for k, v in result.globals.items():
        print(f"{k} = {_fmt(v)}")
    return EXIT_OK


def _eval_text(args: argparse.Namespace) -> str:
    parts = [f"R/K: {args.expression}"]
    if args.g is not None:
        parts += [f"G: {args.g}", f"B: {args.b}"]
    if args.symbols:
        parts.append(f"symbols: {args.symbols}")
    return "\n".join(parts)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.10g}"
    if isinstance(v, list):
        return " ".join(_fmt(x) for x in v)
    return str(v)


def _constant(a: Any) -> Any:
    """The value of a constant image (a float, or R G B values), else None."""
    import numpy as np

    flat = a.reshape(a.shape[0], -1) if a.ndim == 3 else a.reshape(1, -1)
    if not np.all(np.isfinite(flat)) or not np.all(flat == flat[:, :1]):
        return None
    vals = [float(v) for v in flat[:, 0]]
    return vals[0] if len(vals) == 1 else vals


def _shape_text(a: Any) -> str:
    return f"{a.shape[-1]}x{a.shape[-2]}" + (" RGB" if a.ndim == 3 else " mono")


def _stats_text(a: Any) -> str:
    import numpy as np

    lines = [f"image {_shape_text(a)}"]
    chans = [("K", a)] if a.ndim == 2 else list(zip("RGB", a))
    for name, c in chans:
        finite = c[np.isfinite(c)]
        if finite.size == 0:
            lines.append(f"  {name}: no finite pixels")
            continue
        med = float(np.median(finite))
        mad = float(np.median(np.abs(finite - med)))
        lines.append(
            f"  {name}: min {finite.min():.6g}  max {finite.max():.6g}  mean "
            f"{finite.mean():.6g}  median {med:.6g}  MAD {mad:.6g}"
        )
    return "\n".join(lines)


def _usage(msg: str) -> None:
    print(f"pxlang: error: {msg}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


# ------------------------------------------------------------------ check / run
def cmd_check(args: argparse.Namespace) -> int:
    from .lang.check import script_diagnostics
    from .lang.errors import PxCheckErrors, PxError
    from .lang.parse import parse_script

    status = EXIT_OK
    for name in args.files:
        path = resolve_script(name)  # a file, or a stdlib workflow by name
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as e:
            print(
                f"{path}: error: cannot read ({getattr(e, 'strerror', None) or e})", file=sys.stderr
            )
            status = EXIT_ERROR
            continue
        try:
            tree = parse_script(text, path)
            from .api import functions, module_loader

            diags = script_diagnostics(
                tree,
                functions(),
                module_loader=module_loader,
                base_dir=os.path.dirname(os.path.abspath(path)),
            )
        except PxError as e:
            print(e.render(), file=sys.stderr)
            status = EXIT_ERROR
            continue
        if diags:
            print(PxCheckErrors(diags).render(), file=sys.stderr)
            status = EXIT_ERROR
        else:
            print(f"{path}: ok")
    return status


def _parse_params(items: list[str]) -> dict[str, str]:
    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not _IDENT.match(name):
            _usage(f"parameters are NAME=VALUE, got {item!r}")
        params[name] = value
    return params


def resolve_script(name: str) -> str:
    """A path to a .px file, or a stdlib workflow name."""
    if os.path.exists(name) or name.endswith(".px") or os.sep in name:
        return name
    from .api import stdlib_dir

    candidate = stdlib_dir() / f"{name}.px"
    return str(candidate) if candidate.is_file() else name


def cmd_run(args: argparse.Namespace) -> int:
    from .api import run_workflow
    from .lang.errors import PxError, PxIOError

    params = _parse_params(args.params)
    path = resolve_script(args.script)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        from .run.workflows import did_you_mean

        err = PxIOError(
            f"{args.script}: no such script",
            hint=did_you_mean(args.script)
            or "give a .px file or a stdlib workflow name (e.g. preprocess)",
        )
        err.usage = True
        raise err from None
    except (OSError, UnicodeDecodeError) as e:
        raise PxIOError(f"{args.script}: cannot read the script ({e})") from None
    stdlib = os.path.abspath(path) != os.path.abspath(args.script)
    options = {
        "seed": args.seed,
        "quiet": args.quiet,
        "scheduler": args.scheduler,
        "truncate": not args.no_truncate,
    }
    if stdlib:  # a stdlib workflow works on the user's folders: paths relative to the cwd
        options["base_dir"] = os.getcwd()
    if args.cache:
        options["cache_dir"] = os.path.abspath(args.cache)
    try:
        run_workflow(text, params=params, path=path, options=options, force=args.force)
    except PxError as e:
        # an error at a line of a stdlib workflow is about the user's frames or parameters,
        # not that line: its message names what is wrong, without pxlang's own source
        # (--debug shows the traceback)
        if stdlib and e.span is not None:
            if os.path.abspath(e.span.source.name) == os.path.abspath(path):
                e.span = None
        raise
    return EXIT_OK


def cmd_help(args: argparse.Namespace) -> int:
    from .builtins.docs import help_index, help_text
    from .builtins.registry import REGISTRY
    from .lang.errors import PxNameError
    from .run import workflows

    if not args.name:
        flows = ", ".join(workflows.names())
        print(help_index() + f"\n\nWorkflows (pxlang run NAME …; pxlang help NAME): {flows}")
        return EXIT_OK
    flow = workflows.help_text(args.name)
    if flow is None:
        try:
            print(help_text(args.name))
        except PxNameError as e:  # unknown: "did you mean" a built-in, else a workflow
            if not e.hint:
                e.hint = workflows.did_you_mean(args.name)
            e.usage = True
            raise
    elif args.name in REGISTRY:  # both a built-in and a workflow (combine)
        print(f"{help_text(args.name)}\n\n{flow}")
    else:
        print(flow)
    return EXIT_OK


def cmd_repl(args: argparse.Namespace) -> int:
    from .repl import run_repl

    return run_repl(history=args.history)


def cmd_demo(args: argparse.Namespace) -> int:
    from .run.demo import run_demo

    return run_demo(args.dir, quiet=args.quiet, seed=args.seed, force=args.force)


def cmd_library(args: argparse.Namespace) -> int:
    from .run import library

    return library.main(list(args.args))


COMMANDS = {
    "eval": cmd_eval,
    "check": cmd_check,
    "run": cmd_run,
    "help": cmd_help,
    "repl": cmd_repl,
    "demo": cmd_demo,
    "library": cmd_library,
}


def entry() -> None:
    """The ``pxlang`` command: ``main``, then a quick exit. Tearing the interpreter down
    after numba's kernels ran (its thread pool, LLVM) takes ~0.4 s here and serves nothing
    once every output is written and closed: the exit handlers run (logging, the run's
    helper processes), the standard streams are flushed, and the process ends."""
    import atexit

    try:
        code = main()
    except SystemExit as e:  # argparse's usage errors
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_USAGE)
        if e.code is not None and not isinstance(e.code, int):
            print(e.code, file=sys.stderr)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    entry()
