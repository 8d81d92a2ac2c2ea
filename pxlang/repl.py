"""``pxlang repl``: an interactive session on prompt_toolkit.

Each input is parsed with the script grammar; an unfinished input (open bracket or block)
continues on the next line. Names persist between inputs. Completion comes from the built-in
registry and the session's names; errors show with the caret and the prompt returns."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from typing import Any

from .lang.errors import PxError, PxIncomplete


class Session:
    """The language state of a REPL: one interpreter whose globals live across inputs."""

    def __init__(self, base_dir: str | None = None):
        from .api import functions, module_loader
        from .lang.interp import Interpreter

        self.functions = functions()
        from .api import wrap_image

        self.interp = Interpreter(
            self.functions,
            base_dir=base_dir or os.getcwd(),
            options={"_wrap_image": wrap_image},
            provenance={"source": "pxlang repl", "text": "", "params": {}},
            module_loader=module_loader,
        )
        self.history: list[str] = []

    def names(self) -> list[str]:
        return sorted(n for n in self.interp.globals.vars if n not in ("true", "false"))

    def is_complete(self, text: str) -> bool:
        from .lang.parse import parse_script

        try:
            parse_script(text, "<repl>")
        except PxIncomplete:
            return False
        except PxError:
            return True
        return True

    def run(self, text: str) -> Any:
        """Parse, check against the session's names, evaluate; returns the last value."""
        from .api import module_loader
        from .lang.check import check_script
        from .lang.parse import parse_script

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

    def help(self, text: str) -> str:
        from .builtins.docs import help_index, help_text

        inner = text[5:-1].strip().strip("\"'") if text.startswith("help(") else ""
        return help_text(inner) if inner else help_index()

    def command(self, text: str) -> Any:
        cmd, _, rest = text.partition(" ")
        if cmd == ":images":
            return self.images_table()
        if cmd == ":time":
            t = time.perf_counter()
            value = self.run(rest)
            return f"{format_value(value)}\n({time.perf_counter() - t:.3f} s)"
        if cmd in (":help", ":h"):
            return (
                ":images   images in the session (shape, median, MAD)\n"
                ":time E   evaluate E and show how long it took\n"
                "help(name) help on a built-in; help() lists them\n"
                "Ctrl-D    leave"
            )
        raise PxError(f"unknown command '{cmd}'", hint="commands: :images, :time EXPR, :help")

    def images_table(self) -> str:
        import numpy as np

        from .lang.pixel import to_pixel_value

        rows = []
        for name in self.names():
            v = to_pixel_value(self.interp.globals.vars[name])
            if isinstance(v, np.ndarray) and v.ndim in (2, 3):
                med = float(np.nanmedian(v))
                mad = float(np.nanmedian(np.abs(v - med)))
                kind = "RGB" if v.ndim == 3 else "mono"
                rows.append(
                    f"{name:12} {v.shape[-1]}x{v.shape[-2]} {kind:4} {v.dtype}  "
                    f"median {med:.5g}  MAD {mad:.5g}"
                )
        return "\n".join(rows) if rows else "(no images)"


def format_value(value: Any) -> str:
    import numpy as np

    from .lang.pixel import to_pixel_value

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


def _completions(session: Session, word: str) -> Iterable[str]:
    seen = set()
    for name in list(session.names()) + sorted(session.functions):
        if name.startswith(word) and name not in seen:
            seen.add(name)
            yield name


def run_repl(input: Any = None, output: Any = None) -> int:  # noqa: A002 - prompt_toolkit's names
    """The interactive loop (``input``/``output`` let tests drive it with pipes)."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import Completer, Completion
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    session = Session()

    class _Completer(Completer):
        def get_completions(self, document, complete_event):  # noqa: ANN001, ANN201
            word = document.get_word_before_cursor()
            for name in _completions(session, word):
                yield Completion(name, start_position=-len(word))

    history: Any = InMemoryHistory()
    if input is None:
        try:
            from platformdirs import user_data_dir

            folder = os.environ.get("PXLANG_HISTORY_DIR") or user_data_dir("pxlang")
            os.makedirs(folder, exist_ok=True)
            history = FileHistory(os.path.join(folder, "history"))
        except OSError:
            pass
    prompt = PromptSession(history=history, completer=_Completer(), input=input, output=output)
    out = sys.stdout if output is None else None

    def emit(text: str) -> None:
        if out is not None:
            print(text, file=out)
        else:
            output.write(text + "\n")

    emit("pxlang — PixelMath for astrophotography. help() lists built-ins; Ctrl-D leaves.")
    buffer = ""
    while True:
        try:
            line = prompt.prompt("px> " if not buffer else "... ")
        except KeyboardInterrupt:
            buffer = ""
            continue
        except EOFError:
            break
        buffer = f"{buffer}\n{line}" if buffer else line
        if not buffer.strip():
            buffer = ""
            continue
        if not session.is_complete(buffer):
            continue
        text, buffer = buffer, ""
        try:
            value = session.run(text)
        except PxError as e:
            emit(e.render())
            continue
        except KeyboardInterrupt:
            emit("cancelled")
            continue
        shown = (
            value
            if isinstance(value, str) and text.strip().startswith((":", "help"))
            else format_value(value)
        )
        if shown:
            emit(shown)
    return 0
