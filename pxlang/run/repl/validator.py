"""The validator: a syntax error keeps the input in the buffer and moves the cursor to the
error's span, with the message (and hint) below. Pressing Enter again on the same text runs
it anyway, so the full report with its caret is one key away. Unfinished input (an open
bracket or block: ``PxIncomplete``) never gets here: Enter inserts a newline instead."""

from __future__ import annotations

from prompt_toolkit.document import Document
from prompt_toolkit.validation import ValidationError, Validator

from ...lang.errors import PxError, PxIncomplete


def offset_of(text: str, line: int, col: int) -> int:
    """Offset in ``text`` of 1-based ``line``/``col`` (clamped to the text)."""
    lines = text.split("\n")
    line = max(1, min(line, len(lines)))
    before = sum(len(s) + 1 for s in lines[: line - 1])
    return min(len(text), before + max(0, min(col - 1, len(lines[line - 1]))))


class PxValidator(Validator):
    def __init__(self) -> None:
        self.rejected: str | None = None

    def validate(self, document: Document) -> None:
        from ...lang.parse import parse_script

        text = document.text
        stripped = text.strip()
        if not stripped or stripped.startswith(":") or text == self.rejected:
            self.rejected = None
            return
        try:
            parse_script(text, "<repl>")
        except PxIncomplete:
            return
        except PxError as e:
            self.rejected = text
            where = offset_of(text, e.span.line, e.span.col) if e.span else len(text)
            hint = f" — {e.hint}" if e.hint else ""
            raise ValidationError(
                cursor_position=where, message=f"{e.message} (Enter again runs it){hint}"
            ) from None
        self.rejected = None
