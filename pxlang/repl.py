"""``pxlang repl``: the interactive session (the modules live in ``pxlang/run/repl/``)."""

from .run.repl import Session, format_value, run_repl

__all__ = ["Session", "format_value", "run_repl"]
