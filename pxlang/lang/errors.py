"""One error hierarchy; every error may carry a span and a hint, and renders with a caret."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from .source import Span


class PxError(Exception):
    """Base of every error pxlang reports to a user.

    Attributes: ``message``, ``span`` (file/line/column, may be None), ``hint``.
    ``render()`` gives ``file:line:col: error: message``, the line, a caret and the hint.
    """

    kind = "error"
    # a mistake in how the script or command was called (a parameter missing or unknown, no
    # such script): the command line exits with status 2, as for its own usage errors
    usage = False

    def __init__(self, message: str, span: Span | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.hint = hint

    @property
    def file(self) -> str | None:
        return self.span.source.name if self.span else None

    @property
    def line(self) -> int | None:
        return self.span.line if self.span else None

    @property
    def column(self) -> int | None:
        return self.span.col if self.span else None

    def with_span(self, span: Span | None) -> PxError:
        if self.span is None and span is not None:
            self.span = span
        return self

    def render(self) -> str:
        return render(self)

    def __str__(self) -> str:
        where = f"{self.span}: " if self.span else ""
        hint = f" (hint: {self.hint})" if self.hint else ""
        return f"{where}{self.message}{hint}"


class PxSyntaxError(PxError):
    """The text does not parse."""


class PxIncomplete(PxSyntaxError):
    """The text ended too early (an open bracket or block): a REPL asks for more lines."""


class PxCheckError(PxError):
    """Static check failed (unknown name, arity, keyword) before anything ran."""


class PxNameError(PxCheckError):
    """A name is not defined."""


class PxTypeError(PxError):
    """A value of the wrong kind (an image where a number is needed, shapes that differ...)."""


class PxRuntimeError(PxError):
    """Evaluation failed."""


class PxIOError(PxError):
    """A file could not be read or written; the message names the file."""


class PxProcessError(PxError):
    """An image process failed on its input (no stars found, nothing matched...)."""


class PxCheckErrors(PxCheckError):
    """Several diagnostics from the checker, reported together."""

    MAX_SHOWN = 20

    def __init__(self, errors: list[PxError]):
        self.errors = errors
        first = errors[0]
        super().__init__(first.message, first.span, first.hint)

    def render(self) -> str:
        shown = [render(e) for e in self.errors[: self.MAX_SHOWN]]
        more = len(self.errors) - self.MAX_SHOWN
        if more > 0:
            shown.append(f"… and {more} more")
        return "\n".join(shown)

    def __str__(self) -> str:
        return "; ".join(str(e) for e in self.errors)


def render(err: PxError) -> str:
    """``file:line:col: error: message`` + source line + caret/underline + ``hint:``."""
    out = []
    span = err.span
    if span is not None:
        out.append(f"{span.source.name}:{span.line}:{span.col}: {err.kind}: {err.message}")
        text = span.source.line(span.line)
        if text:
            out.append("  " + text.expandtabs(1))
            width = span.end_col - span.col if span.end_line == span.line else 1
            width = max(1, min(width, max(1, len(text) - span.col + 1)))
            out.append("  " + " " * (span.col - 1) + "^" + "~" * (width - 1))
    else:
        out.append(f"{err.kind}: {err.message}")
    if err.hint:
        out.append(f"hint: {err.hint}")
    return "\n".join(out)


_CONFUSABLE = str.maketrans({"l": "i", "1": "i", "|": "i", "0": "o"})


def _skeleton(name: str) -> str:
    """What a name looks like: case folded, l/1/I and 0/O merged (OIll looks like OIII)."""
    return name.lower().translate(_CONFUSABLE)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A 'did you mean' hint from the closest candidates: same letters in another case, then
    look-alike characters (l/I, 0/O), then difflib's closest matches."""
    cands = sorted(set(candidates))
    lower = {c.lower(): c for c in cands}
    if name.lower() in lower and lower[name.lower()] != name:
        return f"did you mean '{lower[name.lower()]}'? (names are case-sensitive)"
    skel = {_skeleton(c): c for c in cands}
    if _skeleton(name) in skel and skel[_skeleton(name)] != name:
        return f"did you mean '{skel[_skeleton(name)]}'?"
    cutoff = 0.5 if len(name) <= 3 else 0.6  # one wrong letter in a short name (Hx -> Ha)
    close = difflib.get_close_matches(name, cands, n=3, cutoff=cutoff)
    if not close:
        close_l = difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=cutoff)
        close = [lower[c] for c in close_l]
    if not close:
        return None
    if len(close) == 1:
        return f"did you mean '{close[0]}'?"
    return "did you mean " + ", ".join(f"'{c}'" for c in close[:-1]) + f" or '{close[-1]}'?"
