"""Write docs/reference.md from the built-in registry: python scripts/gen_reference.py"""

from pathlib import Path

from pxlang.builtins.docs import reference_markdown

if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "docs" / "reference.md"
    out.write_text(reference_markdown(), encoding="utf-8")
    print(f"wrote {out.name}")
