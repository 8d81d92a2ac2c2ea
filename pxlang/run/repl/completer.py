"""Completion: keyword arguments of the call the cursor is in, session names, built-ins,
the keywords lark accepts here, module names after ``import``, file paths inside strings.
Reads the registry and the session's names; never evaluates anything."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from prompt_toolkit.completion import Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from .cursor import Frame, scan
from .session import Session, user_signature

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")
_IMPORT = re.compile(r"(?:^|[\s;{])(?:import|from)\s+([A-Za-z0-9_]*)$")
_FROM_IMPORT = re.compile(r"(?:^|[\s;{])from\s+([A-Za-z_]\w*)\s+import\s+(?:\w+\s*,\s*)*(\w*)$")
_KEYWORD_TERMINALS = ("PARAM", "DEF", "IMPORT", "FROM", "FOR", "IN", "IF", "ELSE")


def expected_keywords(text: str) -> list[str] | None:
    """Keywords the grammar accepts after ``text`` (lark's interactive parser ``accepts()``);
    None when ``text`` does not lex or parse (then any keyword may do)."""
    from lark.exceptions import LarkError

    from ...lang.parse import parser

    try:
        ip = parser().parse_interactive(text, start="script")
        ip.exhaust_lexer()
        accepted = ip.accepts()
    except LarkError:
        return None
    return [t.lower() for t in _KEYWORD_TERMINALS if t in accepted]


def _kind(value: Any) -> str:
    import numpy as np

    from ...lang.interp import Module, UserFunction

    if isinstance(value, UserFunction):
        return "function"
    if isinstance(value, Module):
        return "module"
    if isinstance(value, (int, float)):
        return f"{value:g}"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return f"list of {len(value)}"
    arr = getattr(value, "pixels", value)
    if isinstance(arr, np.ndarray):
        return f"image {arr.shape[-1]}x{arr.shape[-2]}" + (" RGB" if arr.ndim == 3 else "")
    return type(value).__name__


def _first_line(doc: str) -> str:
    line = doc.strip().split("\n\n")[0].replace("\n", " ").replace("``", "")
    return line if len(line) <= 60 else line[:59] + "…"


class PxCompleter(Completer):
    """Completions for the REPL buffer (see the module docstring)."""

    def __init__(self, session: Session):
        self.session = session
        self._paths = PathCompleter(expanduser=True, get_paths=lambda: [self.session.base_dir])

    def get_completions(self, document: Document, complete_event: Any) -> Iterator[Completion]:
        before = document.text_before_cursor
        state = scan(before)
        if state.in_comment:
            return
        if state.string_start is not None:
            inner = Document(before[state.string_start + 1 :])
            yield from self._paths.get_completions(inner, complete_event)
            return
        m = _FROM_IMPORT.search(before)
        if m:
            yield from _matching(m.group(2), self.session.module_names(m.group(1)), "name")
            return
        m = _IMPORT.search(before)
        if m:
            yield from _matching(m.group(1), self.session.modules(), "module")
            return
        wm = _WORD.search(before)
        word = wm.group(0) if wm else ""
        head = before[: len(before) - len(word)]
        if head.endswith(("$", ".")) or re.search(r"[0-9]\Z", head):
            return  # a metasymbol, a directive, a number: nothing to offer
        seen: set[str] = set()
        call = state.call
        if call is not None and not head[call.arg_start :].strip():
            for c in self._keyword_args(call.func or "", call, word):
                seen.add(c.text)
                yield c
        in_brackets = bool(state.stack) and state.stack[-1].char in "(["
        keywords = [] if in_brackets or not word else expected_keywords(head)
        for kw in keywords if keywords is not None else _KEYWORD_TERMINALS_LOWER:
            if kw.startswith(word):
                seen.add(kw)
                yield Completion(kw, -len(word), display_meta="keyword")
        for c in self._names(word):
            if c.text not in seen:
                seen.add(c.text)
                yield c

    def _keyword_args(self, func: str, call: Frame, word: str) -> Iterator[Completion]:
        """``name=`` for the parameters not given yet (by position or keyword)."""
        given = set(call.keywords)
        spec = self.session.functions.get(func)
        if spec is not None:
            given |= {p.name for p in spec.positional[: call.arg_index]}
            for p in spec.params:
                if p.variadic or p.varkw or p.name in given or not p.name.startswith(word):
                    continue
                default = "" if p.required else f"={p.default!r}"
                yield Completion(
                    p.name + "=",
                    -len(word),
                    display=p.name + "=",
                    display_meta=(p.annotation or p.kind) + default,
                )
            return
        fn = self.session.user_function(func)
        if fn is not None:
            given |= {p.name for p in fn.node.params[: call.arg_index]}
            for p in fn.node.params:
                if p.name not in given and p.name.startswith(word):
                    yield Completion(p.name + "=", -len(word), display_meta=user_signature(fn))

    def _names(self, word: str) -> Iterator[Completion]:
        names = [n for n in self.session.names() if not n.startswith("$")]
        for n in _prefixed(word, names):
            yield Completion(n, -len(word), display_meta=_kind(self.session.value(n)))
        builtins = sorted(self.session.functions)
        for n in _prefixed(word, builtins):
            spec = self.session.functions[n]
            yield Completion(n, -len(word), display_meta=_first_line(spec.doc))


_KEYWORD_TERMINALS_LOWER = [t.lower() for t in _KEYWORD_TERMINALS]


def _prefixed(word: str, names: Iterable[str]) -> list[str]:
    """Names starting with ``word``: case-sensitive matches first, then the others."""
    names = list(names)
    exact = [n for n in names if n.startswith(word)]
    folded = [n for n in names if n not in exact and n.lower().startswith(word.lower())]
    return exact + folded


def _matching(word: str, names: Iterable[str], meta: str) -> Iterator[Completion]:
    for n in _prefixed(word, names):
        yield Completion(n, -len(word), display_meta=meta)
