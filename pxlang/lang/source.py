"""Source text and spans: where a construct sits in a file or an expression."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    """A piece of program text and the name it is shown under (a path or `<expr>`)."""

    text: str
    name: str = "<expr>"

    def line(self, lineno: int) -> str:
        lines = self.text.splitlines()
        if 1 <= lineno <= len(lines):
            return lines[lineno - 1]
        return ""


@dataclass(frozen=True)
class Span:
    """1-based line/column range; end is exclusive on the column."""

    source: Source
    line: int
    col: int
    end_line: int
    end_col: int

    @classmethod
    def at(cls, source: Source, line: int, col: int, length: int = 1) -> Span:
        return cls(source, line, col, line, col + max(length, 1))

    @classmethod
    def from_offset(cls, source: Source, offset: int, length: int = 1) -> Span:
        before = source.text[:offset]
        line = before.count("\n") + 1
        col = offset - (before.rfind("\n") + 1) + 1
        return cls.at(source, line, col, length)

    def shifted(self, outer: Span) -> Span:
        """This span (inside a string literal) re-expressed in the outer file.

        `outer` is the span of the string's first character of content.
        """
        if self.line == 1:
            col, end_col = outer.col + self.col - 1, outer.col + self.end_col - 1
        else:
            col, end_col = self.col, self.end_col
        line = outer.line + self.line - 1
        end_line = outer.line + self.end_line - 1
        return Span(outer.source, line, col, end_line, end_col)

    def __str__(self) -> str:
        return f"{self.source.name}:{self.line}:{self.col}"
