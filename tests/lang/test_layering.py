"""The language core knows nothing of astronomy: lang/ imports nothing from builtins/,
process/ or image/ (design.md, rules of the house); process/ imports nothing of the language."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "pxlang"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            out.add("." * node.level + mod)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_lang_imports_no_astronomy():
    for path in (ROOT / "lang").glob("*.py"):
        for mod in _imports(path):
            assert not any(x in mod for x in ("builtins", "process", "image", "astropy", "sep")), (
                f"{path.name} imports {mod}"
            )


def test_process_imports_no_language():
    for path in (ROOT / "process").glob("*.py"):
        for mod in _imports(path):
            assert "lang" not in mod.split(".") and "builtins" not in mod.split("."), (
                f"{path.name} imports {mod}"
            )
