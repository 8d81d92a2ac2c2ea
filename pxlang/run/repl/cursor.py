"""Where the cursor is in an unfinished input: inside a string, a comment, which call and
which argument. A small scanner over the text before the cursor (lark needs complete
tokens; this must work on half-typed ones). Shared by the completer and the toolbar."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_NAME_BEFORE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*$")


@dataclass
class Frame:
    """An open bracket: ``(`` of a call to ``func`` (None for grouping), ``[`` or ``{``."""

    char: str
    pos: int
    func: str | None = None
    arg_index: int = 0  # how many top-level commas since the bracket
    keywords: set[str] = field(default_factory=set)  # keyword arguments already given
    arg_start: int = 0  # where the current argument starts


@dataclass
class CursorState:
    stack: list[Frame]
    string_start: int | None = None  # offset of the opening quote of an unclosed string
    in_comment: bool = False

    @property
    def call(self) -> Frame | None:
        """The innermost open call (a ``(`` after a name), if the cursor is directly in it."""
        for fr in reversed(self.stack):
            if fr.char == "(":
                return fr if fr.func else None
            return None
        return None


def scan(text: str) -> CursorState:
    """Scan ``text`` (everything before the cursor)."""
    stack: list[Frame] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                return CursorState(stack, string_start=i)
            i = j + 1
            continue
        if c == "#" or text.startswith("//", i):
            j = text.find("\n", i)
            if j < 0:
                return CursorState(stack, in_comment=True)
            i = j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                return CursorState(stack, in_comment=True)
            i = j + 2
            continue
        if c in "([{":
            func = None
            if c == "(":
                m = _NAME_BEFORE.search(text, 0, i)
                if m and m.group(1) not in ("if", "for", "in", "else"):
                    func = m.group(1)
            stack.append(Frame(c, i, func, arg_start=i + 1))
        elif c in ")]}":
            if stack:
                stack.pop()
        elif c == "," and stack:
            stack[-1].arg_index += 1
            stack[-1].arg_start = i + 1
        elif c == "=" and stack and stack[-1].char == "(":
            # name= at the start of an argument is a keyword argument (not ==, <=, ...)
            prev = text[i - 1] if i else ""
            nxt = text[i + 1] if i + 1 < n else ""
            if prev not in "=!<>+-*/%^&|~" and nxt != "=":
                m = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*", text[stack[-1].arg_start : i])
                if m:
                    stack[-1].keywords.add(m.group(1))
        i += 1
    return CursorState(stack)


def current_keyword(text: str, frame: Frame) -> str | None:
    """The keyword of the argument the cursor is in (``name=…``), if it has one."""
    m = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)", text[frame.arg_start :])
    return m.group(1) if m else None
