"""A Pygments lexer for pxlang, derived from the grammar's terminals.

The keywords are the grammar's quoted words ("def", "if", ...), the operators its string
terminals (``--``, ``~``, ``&|`` ...), and numbers, strings, metasymbols, directives and
comments its regular-expression terminals; names of built-ins (from the registry) are
highlighted as such. The REPL uses it through prompt_toolkit's ``PygmentsLexer``; the docs
may use it as ``pxlang.lexer:PxLexer`` (Pygments entry point ``pygments.lexers``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from pygments.lexer import RegexLexer
from pygments.token import (
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Text,
    Whitespace,
)

# words the language gives a meaning without being in the grammar (constants)
CONSTANTS = ("true", "false")


def _terminals(grammar: str) -> dict[str, list[tuple[str, str]]]:
    """``NAME: "lit" | /re/`` lines of the grammar → [("str"|"re", text), ...] per name."""
    out: dict[str, list[tuple[str, str]]] = {}
    for line in grammar.splitlines():
        m = re.match(r"^([A-Z_][A-Z0-9_]*)\s*:\s*(.+)$", line)
        if not m:
            continue
        alts = []
        for lit, rx in re.findall(r'"((?:[^"\\]|\\.)*)"|/((?:[^/\\\n]|\\.)+)/', m.group(2)):
            alts.append(("str", lit) if lit else ("re", rx))
        if alts:
            out[m.group(1)] = alts
    return out


@lru_cache(maxsize=1)
def grammar_vocabulary() -> dict[str, Any]:
    """Keywords, operators, punctuation and the regexes of the grammar's terminals."""
    from .lang.parse import grammar_text

    text = grammar_text()
    terms = _terminals(text)
    # quoted words in rules are the keywords ("def", "import", ...); other quoted strings
    # in rules are punctuation ("(", ",", ":", ...)
    body = "\n".join(
        line.split("//")[0] for line in text.splitlines() if ":" in line or "|" in line
    )
    quoted = set(re.findall(r'"([^"\s]+)"', body))
    literal_terms = {v for alts in terms.values() for k, v in alts if k == "str"}
    keywords = sorted(q for q in quoted if re.fullmatch(r"[a-z]+", q))
    punctuation = sorted(q for q in quoted - literal_terms if re.fullmatch(r"[^\w\s]", q))
    operators = sorted(literal_terms, key=lambda s: (-len(s), s))
    regexes = {k: [v for kind, v in alts if kind == "re"] for k, alts in terms.items()}
    return {
        "keywords": keywords,
        "operators": operators,
        "punctuation": punctuation,
        "regex": {k: v for k, v in regexes.items() if v},
    }


@lru_cache(maxsize=1)
def builtin_names() -> frozenset[str]:
    from .builtins import REGISTRY

    return frozenset(REGISTRY)


def _alt(parts: list[str]) -> str:
    return "|".join(f"(?:{p})" for p in parts)


def _tokens() -> dict[str, list[Any]]:
    v = grammar_vocabulary()
    rx = v["regex"]
    ops = "|".join(re.escape(o) for o in v["operators"])
    punct = "[" + "".join(re.escape(p) for p in v["punctuation"]) + "]"
    keywords = v["keywords"]

    def name(lexer: Any, match: re.Match[str]) -> Iterator[tuple[int, Any, str]]:
        word = match.group(0)
        if word in keywords:
            kind = Keyword.Namespace if word in ("import", "from") else Keyword
        elif word in CONSTANTS:
            kind = Keyword.Constant
        elif re.match(r"[ \t]*\(", match.string[match.end() :]):
            kind = Name.Builtin if word in builtin_names() else Name.Function
        else:
            kind = Name
        yield match.start(), kind, word

    return {
        "root": [
            (_alt(rx["COMMENT"]), Comment),
            (_alt(rx["STRING"]), String),
            (_alt(rx["META"]), Name.Variable.Magic),
            (_alt(rx["NUMBER"]), Number),
            (_alt(rx["DIRECTIVE"]), Comment.Preproc),
            (r"(def)(\s+)(" + _alt(rx["NAME"]) + ")", _def_name),
            (_alt(rx["NAME"]), name),
            (ops, Operator),
            (punct, Punctuation),
            (_alt(rx["LINE_CONT"]), Text),
            (r"\s+", Whitespace),
            (r".", Text),
        ]
    }


def _def_name(lexer: Any, match: re.Match[str]) -> Iterator[tuple[int, Any, str]]:
    yield match.start(1), Keyword, match.group(1)
    yield match.start(2), Whitespace, match.group(2)
    yield match.start(3), Name.Function, match.group(3)


class PxLexer(RegexLexer):
    """pxlang scripts and PixelMath expressions."""

    name = "pxlang"
    aliases = ["pxlang", "px"]
    filenames = ["*.px"]
    mimetypes = ["text/x-pxlang"]
    url = "https://github.com/pxlang/pxlang"
    flags = re.MULTILINE
    tokens = _tokens()


__all__ = ["PxLexer", "grammar_vocabulary", "builtin_names"]
