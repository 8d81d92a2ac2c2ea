"""The bottom toolbar: the signature of the call being typed (the registry's signature and
the first line of its help; for functions defined in the session, their parameters), the
argument under the cursor in bold; otherwise a reminder of the keys."""

from __future__ import annotations

from typing import Any

from .cursor import current_keyword, scan
from .session import Session, user_param

IDLE = " Tab completes · Ctrl-R searches history · help(name) · :images · Ctrl-D leaves"

Fragments = list[tuple[str, str]]


def signature_fragments(session: Session, before: str) -> Fragments:
    """Toolbar fragments ``[(style, text), ...]`` for the text before the cursor."""
    state = scan(before)
    call = state.call  # inside a string argument too: the call around it applies
    if state.in_comment or call is None or call.func is None:
        return [("class:bottom-toolbar", IDLE)]
    keyword = current_keyword(before, call)
    spec = session.functions.get(call.func)
    if spec is not None:
        names = [("*" if p.variadic else "**" if p.varkw else "") + p.name for p in spec.params]
        pieces = [_piece(p) for p in spec.params]
        doc = spec.doc.strip().split("\n\n")[0].replace("\n", " ").replace("``", "")
        doc = doc.split(". ")[0].rstrip(".") + "." if doc else ""
        tail = f"  {doc}"
    else:
        fn = session.user_function(call.func)
        if fn is None:
            return [("class:bottom-toolbar", IDLE)]
        pieces = [user_param(p) for p in fn.node.params]
        names = [p.name for p in fn.node.params]
        tail = "  (your function)"
    current = _current(names, call.arg_index, keyword)
    out: Fragments = [("class:bottom-toolbar.name", f" {call.func}(")]
    for i, piece in enumerate(pieces):
        if i:
            out.append(("class:bottom-toolbar", ", "))
        style = "class:bottom-toolbar.current" if i == current else "class:bottom-toolbar"
        out.append((style, piece))
    out.append(("class:bottom-toolbar.name", ")"))
    out.append(("class:bottom-toolbar.doc", tail))
    return out


def _piece(p: Any) -> str:
    """One parameter as FunctionSpec.signature() writes it."""
    from ...lang.functions import REQUIRED

    if p.variadic:
        return "*" + p.name
    if p.varkw:
        return "**" + p.name
    if p.default is REQUIRED:
        return p.name
    return p.name + (f"={p.default:g}" if isinstance(p.default, float) else f"={p.default!r}")


def _current(names: list[str], arg_index: int, keyword: str | None) -> int | None:
    """Index of the parameter the cursor's argument binds to."""
    if keyword is not None:
        return names.index(keyword) if keyword in names else None
    for i, n in enumerate(names):
        if n.startswith("**"):
            return None
        if n.startswith("*"):
            return i
        if i == arg_index:
            return i
    return None


def toolbar_text(session: Session, before: str) -> str:
    """The toolbar as plain text (tests, and terminals without styles)."""
    return "".join(text for _, text in signature_fragments(session, before))
