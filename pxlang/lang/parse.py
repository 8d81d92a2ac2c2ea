"""Text -> AST. Wraps lark, loads the one grammar file, and turns lark's errors into
``PxSyntaxError`` with a position, the offending text and a hint."""

from __future__ import annotations

import threading
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from . import ast
from .build import Builder
from .errors import PxError, PxIncomplete, PxSyntaxError
from .limits import MAX_SOURCE_LENGTH
from .source import Source, Span

STARTS = ("script", "pm_program", "symbols", "channels")
_local = threading.local()


def grammar_text() -> str:
    """The grammar: shipped in the wheel under pxlang/_data, or read from the source tree."""
    packaged = resources.files("pxlang").joinpath("_data/grammar/pxlang.lark")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    tree = Path(__file__).resolve().parents[2] / "grammar" / "pxlang.lark"
    return tree.read_text(encoding="utf-8")


class _Newlines:
    """Post-lexer: newlines inside () and [] are not statement ends; a newline before
    ``else`` is dropped so ``}\\nelse {`` works; PixelMath fields ignore newlines."""

    always_accept = ("_NL",)

    def process(self, stream: Any) -> Any:
        depth = 0
        drop_all = getattr(_local, "drop_newlines", False)
        pending = None
        for tok in stream:
            if tok.type == "_NL":
                if not (drop_all or depth > 0) and pending is None:
                    pending = tok
                continue
            if pending is not None:
                if tok.type != "ELSE":
                    yield pending
                pending = None
            if tok.type in ("LPAR", "LSQB"):
                depth += 1
            elif tok.type in ("RPAR", "RSQB"):
                depth = max(0, depth - 1)
            yield tok
        if pending is not None:
            yield pending


@lru_cache(maxsize=1)
def parser() -> Any:
    from lark import Lark

    return Lark(
        grammar_text(),
        parser="lalr",
        lexer="basic",
        start=list(STARTS),
        propagate_positions=True,
        maybe_placeholders=True,
        postlex=_Newlines(),
        cache=_cache_path(),
    )


def _cache_path() -> str | bool:
    # lark's default cache goes to the temp dir keyed by grammar hash; that is what we want,
    # but a read-only temp dir must not break parsing.
    import tempfile

    tmp = Path(tempfile.gettempdir())
    return True if tmp.is_dir() and _writable(tmp) else False


def _writable(path: Path) -> bool:
    import os

    return os.access(path, os.W_OK)


def parse(text: str, name: str = "<expr>", start: str = "script") -> Any:
    """Parse ``text`` from the start symbol ``start`` and build the AST."""
    source = Source(text, name)
    if len(text) > MAX_SOURCE_LENGTH:
        raise PxSyntaxError(
            f"the program is {len(text)} characters long; the limit is {MAX_SOURCE_LENGTH}",
            Span.at(source, 1, 1),
        )
    from lark.exceptions import LarkError, UnexpectedInput, VisitError

    _local.drop_newlines = start != "script"
    try:
        tree = parser().parse(text, start=start)
    except UnexpectedInput as e:
        raise translate(e, source, start) from None
    except LarkError as e:  # pragma: no cover - lark internal
        raise PxSyntaxError(str(e), Span.at(source, 1, 1)) from None
    finally:
        _local.drop_newlines = False
    try:
        return Builder(source).transform(tree)
    except VisitError as e:
        if isinstance(e.orig_exc, PxError):
            raise e.orig_exc from None
        raise


def parse_script(text: str, name: str = "<script>") -> ast.Script:
    return parse(text, name, "script")


def parse_pixelmath(text: str, name: str = "<expr>") -> ast.PmProgram:
    return parse(text, name, "pm_program")


def parse_symbols(text: str, name: str = "<symbols>") -> ast.Symbols:
    if not text.strip():
        return ast.Symbols(Span.at(Source(text, name), 1, 1), ())
    return parse(text, name, "symbols")


def parse_channels(text: str, name: str = "<expr>") -> ast.Channels:
    return parse(text, name, "channels")


# ------------------------------------------------------------------ error translation
_TOKEN_WORDS = {
    "$END": "the end of the input",
    "_NL": "the end of the line",
    "_SEMI": "';'",
    "RPAR": "')'",
    "LPAR": "'('",
    "RSQB": "']'",
    "LSQB": "'['",
    "RBRACE": "'}'",
    "LBRACE": "'{'",
    "COMMA": "','",
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "ASSIGN": "'='",
}


def _describe_token(tok: Any) -> str:
    if tok.type in ("$END",):
        return "the end of the input"
    if tok.type == "_NL":
        return "the end of the line"
    return f"'{tok}'"


def translate(e: Any, source: Source, start: str) -> PxSyntaxError:
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

    from .syntax_errors import hint_for

    if isinstance(e, UnexpectedEOF) or (isinstance(e, UnexpectedToken) and e.token.type == "$END"):
        offset = len(source.text.rstrip())
        span = Span.from_offset(source, max(0, offset - 1))
        opener = _unclosed(source.text)
        msg = "the input ended too early"
        hint = f"close the '{opener}'" if opener else "the expression is incomplete"
        if opener:
            msg = f"'{opener}' is never closed"
        return PxIncomplete(msg, span, hint)
    if isinstance(e, UnexpectedCharacters):
        ch = source.text[e.pos_in_stream] if e.pos_in_stream < len(source.text) else ""
        span = Span.from_offset(source, e.pos_in_stream)
        if ch in "\"'":
            return PxSyntaxError("unterminated string", span, f"close the string with {ch}")
        if ch == "$":
            return PxSyntaxError("a metasymbol is '$' and a name, like $T", span)
        if ch == ".":
            return PxSyntaxError(
                "unexpected '.'",
                span,
                "directives like .pragma go at the start of a PixelMath expression; "
                "there is no attribute access",
            )
        return PxSyntaxError(f"unexpected character {ch!r}", span, hint_for(None, ch, source, e))
    if isinstance(e, UnexpectedToken):
        tok = e.token
        span = Span.from_offset(source, tok.start_pos or 0, max(1, len(str(tok))))
        if tok.type == "_NL":
            opener = _unclosed(source.text[: tok.start_pos])
            if opener in ("{",):
                return PxIncomplete(f"'{opener}' is never closed", span, f"close the '{opener}'")
        msg = f"unexpected {_describe_token(tok)}"
        expected = _expected_words(e.expected)
        hint = hint_for(tok, str(tok), source, e)
        if hint is None and expected:
            hint = "expected " + expected
        return PxSyntaxError(msg, span, hint)
    return PxSyntaxError(str(e), Span.at(source, 1, 1))  # pragma: no cover


def _expected_words(expected: Any) -> str:
    words = []
    for t in sorted(expected or ()):
        if t in _TOKEN_WORDS:
            words.append(_TOKEN_WORDS[t])
    words = list(dict.fromkeys(words))
    if not words:
        return ""
    if len(words) > 4:
        words = words[:4] + ["…"]
    return " or ".join(words)


def _unclosed(text: str) -> str | None:
    """The innermost bracket left open in ``text`` (ignoring strings and comments)."""
    stack: list[str] = []
    pairs = {")": "(", "]": "[", "}": "{"}
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            j = text.find(c, i + 1)
            i = n if j < 0 else j + 1
            continue
        if c == "#" or text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
            continue
        if c in "([{":
            stack.append(c)
        elif c in ")]}" and stack and stack[-1] == pairs[c]:
            stack.pop()
        i += 1
    return stack[-1] if stack else None
