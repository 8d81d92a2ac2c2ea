"""The stdlib workflows (``pxlang run NAME``) as ``pxlang help`` shows them: each script's
opening comment and its ``param`` lines, as written."""

from __future__ import annotations

import re
from pathlib import Path

_PARAM = re.compile(r"^param\s+[A-Za-z_]\w*")


def _stdlib() -> Path:
    from ..api import stdlib_dir

    return Path(stdlib_dir())


def _params(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if _PARAM.match(line)]


def names() -> list[str]:
    """Workflow names: stdlib scripts with parameters (modules such as palettes have none)."""
    return sorted(p.stem for p in _stdlib().glob("*.px") if _params(p.read_text(encoding="utf-8")))


def help_text(name: str) -> str | None:
    """The workflow's opening comment and parameters, or None when there is no such workflow."""
    path = _stdlib() / f"{name}.px"
    if name not in names():
        return None
    text = path.read_text(encoding="utf-8")
    lines = [f"workflow {name} (pxlang run {name} NAME=VALUE …; stdlib/{name}.px)", ""]
    for line in text.splitlines():
        if not line.startswith("//"):
            break
        lines.append(line[2:].removeprefix(" "))
    lines += ["", "parameters (NAME=VALUE on the command line; without a default: required):"]
    lines += [f"    {p.removeprefix('param ')}" for p in _params(text)]
    return "\n".join(lines)


def did_you_mean(name: str) -> str | None:
    """A hint naming the workflow closest to a mistyped name, if one is close."""
    import difflib

    close = difflib.get_close_matches(name, names(), n=1)
    return f"did you mean the workflow '{close[0]}'?" if close else None
