"""Friendly syntax errors: hints for the mistakes people make, and the catalogue of labelled
bad snippets that tests render (each entry is also documentation of a message)."""

from __future__ import annotations

from typing import Any

from .source import Source

_OPERATORS = {"PLUS", "MINUS", "STAR", "SLASH", "CARET", "OROR", "ANDAND", "EQ"}
KEYWORDS = {"param", "def", "import", "from", "for", "in", "if", "else"}


def hint_for(tok: Any, text: str, source: Source, e: Any) -> str | None:
    """A hint for an unexpected token ``tok`` (lark Token or None for a bad character)."""
    expected = set(getattr(e, "expected", ()) or ())
    after_value = bool(expected & _OPERATORS)
    if tok is None:
        if text == "`":
            return 'backquotes are not quotes: use "…"'
        return None
    ttype = tok.type
    value = str(tok)
    if ttype == "NAME" and value == "_" and after_value:
        return "'_' is not an operator: did you mean '+'? e.g. (0.4*Ha)+(0.6*OIII)"
    if ttype == "ASSIGN" and after_value:
        return "'=' assigns; to compare two values use '=='"
    if ttype == "TILDE" and after_value:
        return "'~' is the unary invert (~x = 1-x); between two values use an operator like '-'"
    if ttype in ("NAME", "NUMBER", "LPAR", "STRING", "META") and after_value:
        return f"is an operator missing before {value!r}?"
    if ttype == "RPAR" and "RPAR" not in expected:
        return "there is no '(' for this ')' to close"
    if ttype == "RSQB" and "RSQB" not in expected:
        return "there is no '[' for this ']' to close"
    if ttype in {k.upper() for k in KEYWORDS}:
        return f"'{value}' is a keyword and cannot be used as a name"
    if ttype == "LSQB" and after_value:
        return "a channel index follows an image name directly: Ha[0]"
    if ttype == "_NL" and after_value is False and "NAME" in expected:
        return "the line ends where a value is expected"
    if ttype == "ABSDIFF":
        return "'--' is PixelMath's absolute difference |a-b|; for a - (-b) write a - (-b)"
    return None


# (label, snippet, start symbol, fragment of the message, fragment of the hint)
CATALOGUE: list[tuple[str, str, str, str, str]] = [
    ("underscore typo", "x = (0.4*Ha)_(0.6*OIII)", "script", "unexpected '_'", "did you mean '+'"),
    ("missing )", "x = max(Ha, OIII", "script", "'(' is never closed", "close the '('"),
    ("= for comparison", "if Ha = 0.5 { x = 1 }", "script", "unexpected '='", "'=='"),
    (
        "channel outside R/G/B",
        "x = { R = Ha; X = OIII; B = SII }",
        "script",
        "'X' is not a channel",
        "R = …; G = …; B = …",
    ),
    (
        "unterminated string",
        'x = load("Ha.fits)',
        "script",
        "unterminated string",
        "close the string",
    ),
    ("binary tilde", "Ha ~ OIII", "pm_program", "unexpected '~'", "unary invert"),
    ("missing operator", "x = 2 Ha", "script", "unexpected 'Ha'", "operator missing"),
    ("stray )", "x = Ha)", "script", "unexpected ')'", "no '('"),
    ("keyword as name", "in = 3", "script", "unexpected 'in'", "keyword"),
    ("missing channel", "x = { R = Ha; G = OIII }", "script", "no B expression", "all three"),
    ("bad per-channel constant", "k = 1:2", "symbols", "1 or 3 values", "0.9:1.0:0.95"),
    (
        "global without operator",
        "s = global(1)",
        "symbols",
        "needs the operator first",
        "global(+)",
    ),
]
