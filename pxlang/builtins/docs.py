"""Help text and the reference docs, generated from the one registry."""

from __future__ import annotations

from ..lang.errors import PxNameError, did_you_mean
from ..lang.functions import FunctionSpec
from .registry import REGISTRY, all_specs

CATEGORY_TITLES = {
    "pixelmath": "PixelMath functions",
    "files": "Files",
    "preprocess": "Calibration and integration",
    "lights": "Light frames: measure, select, register, drizzle",
    "post": "Post-processing",
    "workflow": "Workflow: paths, grouping, logging",
}


def _spec(name: str) -> FunctionSpec:
    import pxlang.builtins  # noqa: F401  (fills the registry)

    spec = REGISTRY.get(name)
    if spec is None:
        raise PxNameError(f"no built-in named '{name}'", hint=did_you_mean(name, REGISTRY))
    return spec


def equivalents(spec: FunctionSpec, code: str = "") -> str:
    """'PixInsight: X; Siril: y' — what a user of the peers knows this built-in as."""
    eq = []
    if spec.pixinsight:
        eq.append(f"PixInsight: {spec.pixinsight}")
    if spec.siril:
        eq.append(f"Siril: {code}{spec.siril}{code}")
    return "; ".join(eq)


def help_text(name: str) -> str:
    """What ``help(name)`` shows: signature, description, equivalents, example."""
    spec = _spec(name)
    lines = [spec.signature(), ""]
    if spec.aliases:
        lines.append("aliases: " + ", ".join(spec.aliases))
    lines.append(spec.doc or "(no description)")
    eq = equivalents(spec)
    if eq:
        lines += ["", eq]
    if spec.example:
        lines += ["", "example:", f"    {spec.example}"]
    return "\n".join(lines)


def help_index() -> str:
    import pxlang.builtins  # noqa: F401

    out = ["pxlang built-ins (pxlang help NAME for one):"]
    by_cat: dict[str, list[str]] = {}
    for spec in all_specs():
        by_cat.setdefault(spec.category, []).append(spec.name)
    for cat, names in by_cat.items():
        out.append(f"\n{CATEGORY_TITLES.get(cat, cat)}:")
        line = " "
        for n in names:
            if len(line) + len(n) > 96:
                out.append(line)
                line = " "
            line += " " + n
        out.append(line)
    return "\n".join(out)


def reference_markdown() -> str:
    """``docs/reference.md``: every built-in, by category."""
    import pxlang.builtins  # noqa: F401

    out = [
        "# pxlang built-in reference",
        "",
        "Generated from the built-in registry by `python scripts/gen_reference.py`; "
        "a test fails when this file is out of date.",
        "",
    ]
    by_cat: dict[str, list[FunctionSpec]] = {}
    for spec in all_specs():
        by_cat.setdefault(spec.category, []).append(spec)
    for cat, specs in by_cat.items():
        out += [f"## {CATEGORY_TITLES.get(cat, cat)}", ""]
        for spec in specs:
            out += [f"### `{spec.signature()}`", ""]
            if spec.aliases:
                out += ["Aliases: " + ", ".join(f"`{a}`" for a in spec.aliases), ""]
            out += [spec.doc or "", ""]
            eq = equivalents(spec, code="`")
            if eq:
                out += [eq, ""]
            if spec.example:
                out += ["```", spec.example, "```", ""]
    return "\n".join(out).rstrip() + "\n"
