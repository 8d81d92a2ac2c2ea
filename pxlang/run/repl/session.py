"""The language state of a REPL: one interpreter whose names live across inputs, the
``:`` commands and ``help()``. No prompt_toolkit here: tests drive it directly."""

from __future__ import annotations

import os
import time
from typing import Any

from ...lang.errors import PxError, PxIncomplete

COMMANDS_HELP = (
    ":images   images in the session (shape, type, median, MAD); also whos()\n"
    ":time E   evaluate E and show how long it took\n"
    "help(name) help on a built-in or your function; help() lists the built-ins\n"
    "show(img) write an auto-stretched PNG preview and open it\n"
    "Tab       complete · Ctrl-R search history · Ctrl-C cancel · Ctrl-D leave"
)


class Session:
    """One interpreter whose globals persist; ``run(text)`` parses, checks and evaluates."""

    def __init__(self, base_dir: str | None = None):
        from ...api import functions, module_loader, wrap_image
        from ...lang.interp import Interpreter

        self.functions = functions()
        self.base_dir = base_dir or os.getcwd()
        self.interp = Interpreter(
            self.functions,
            base_dir=self.base_dir,
            # repl: show() returns its path for the REPL to echo instead of printing it
            options={"_wrap_image": wrap_image, "repl": True},
            provenance={"source": "pxlang repl", "text": "", "params": {}},
            module_loader=module_loader,
        )
        self.history: list[str] = []
        self.busy = False  # True while an input is being evaluated

    # ------------------------------------------------------------------ names
    def names(self) -> list[str]:
        return sorted(n for n in self.interp.globals.vars if n not in ("true", "false", "none"))

    def value(self, name: str) -> Any:
        return self.interp.globals.vars.get(name)

    def user_function(self, name: str) -> Any:
        from ...lang.interp import UserFunction

        v = self.interp.globals.vars.get(name)
        return v if isinstance(v, UserFunction) else None

    def modules(self) -> list[str]:
        """Modules ``import`` can find: .px files next to the session, then the stdlib."""
        from pathlib import Path

        from ...api import stdlib_dir

        found: set[str] = set()
        for folder in (Path(self.base_dir), stdlib_dir()):
            try:
                found |= {p.stem for p in folder.glob("*.px") if p.stem.isidentifier()}
            except OSError:
                continue
        return sorted(found)

    def module_names(self, module: str) -> list[str]:
        """Top-level names a module defines (parsed, never run)."""
        from ...api import module_loader
        from ...lang import ast
        from ...lang.parse import parse_script

        found = module_loader(module, self.base_dir)
        if found is None:
            return []
        try:
            tree = parse_script(found[0], found[1])
        except PxError:
            return []
        out = []
        for st in tree.statements:
            name = getattr(st, "name", None) or getattr(st, "target", None)
            if isinstance(name, str) and not isinstance(st, ast.Import):
                out.append(name)
        return sorted(set(out))

    # ------------------------------------------------------------------ input
    def is_complete(self, text: str) -> bool:
        """False while brackets or blocks are open (the language raises PxIncomplete)."""
        from ...lang.parse import parse_script

        if text.strip().startswith(":"):
            return self.is_complete(text.strip().partition(" ")[2]) if ":time" in text else True
        try:
            parse_script(text, "<repl>")
        except PxIncomplete:
            return False
        except PxError:
            return True
        return True

    def run(self, text: str) -> Any:
        """Parse, check against the session's names, evaluate; returns the last value."""
        from ...api import module_loader
        from ...lang.check import check_script
        from ...lang.parse import parse_script

        stripped = text.strip()
        if stripped.startswith(":"):
            return self.command(stripped)
        if stripped.startswith("help(") or stripped in ("help", "help()"):
            return self.help(stripped)
        tree = parse_script(text, "<repl>")
        check_script(
            tree,
            self.functions,
            names=dict(self.interp.globals.vars),
            module_loader=module_loader,
            base_dir=self.interp.base_dir,
        )
        self.history.append(text)
        self.interp.provenance["text"] = "\n".join(self.history)
        return self.interp.run(tree)

    def cancelled(self) -> None:
        """After Ctrl-C stopped an evaluation midway: reset the interpreter's counters."""
        self.interp.depth = 0
        self.interp._nested = 0

    # ------------------------------------------------------------------ commands
    def help(self, text: str) -> str:
        from ...builtins.docs import help_index, help_text

        inner = text[5:-1].strip().strip("\"'") if text.startswith("help(") else ""
        if not inner:
            return help_index() + "\n\n" + COMMANDS_HELP
        fn = self.user_function(inner)
        if fn is not None:
            return user_signature(fn) + "\n\n(defined in this session)"
        return help_text(inner)

    def command(self, text: str) -> Any:
        cmd, _, rest = text.partition(" ")
        if cmd in (":images", ":whos"):
            return self.images_table()
        if cmd == ":time":
            t = time.perf_counter()
            value = self.run(rest)
            return f"{format_value(value)}\n({time.perf_counter() - t:.3f} s)"
        if cmd in (":help", ":h"):
            return COMMANDS_HELP
        raise PxError(f"unknown command '{cmd}'", hint="commands: :images, :time EXPR, :help")

    def images_table(self) -> str:
        from ...builtins.preview import images_table

        return images_table({n: self.interp.globals.vars[n] for n in self.names()})


def user_signature(fn: Any) -> str:
    """``name(a, b=2)`` of a user-defined function, from its definition's text."""
    return f"{fn.name}({', '.join(user_param(p) for p in fn.node.params)})"


def user_param(p: Any) -> str:
    return p.name if p.default is None else f"{p.name}={source_text(p.default) or '…'}"


def source_text(node: Any) -> str:
    span = getattr(node, "span", None)
    if span is None or span.end_line != span.line:
        return ""
    return span.source.line(span.line)[span.col - 1 : span.end_col - 1]


def format_value(value: Any) -> str:
    """How the REPL shows a value."""
    import numpy as np

    from ...lang.pixel import to_pixel_value

    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.10g}"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    arr = to_pixel_value(value)
    if isinstance(arr, np.ndarray):
        kind = "RGB" if arr.ndim == 3 else "mono"
        return (
            f"<image {arr.shape[-1]}x{arr.shape[-2]} {kind}, median {float(np.nanmedian(arr)):.5g}>"
        )
    describe = getattr(value, "describe", None)
    return describe() if describe else f"<{type(value).__name__}>"
