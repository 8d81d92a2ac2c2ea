"""``pxlang repl``: small prompt_toolkit modules that reuse the language.

``session`` (the interpreter across inputs, commands, help), ``cursor`` (where the cursor is
in unfinished input), ``completer``, ``validator``, ``toolbar`` (signature help), ``loop``
(``run_repl``). The Pygments lexer is ``pxlang.lexer.PxLexer``."""

from .loop import run_repl
from .session import Session, format_value

__all__ = ["Session", "format_value", "run_repl"]
