"""The one registry of built-ins. `@builtin` declares a name once; the checker, the interpreter,
REPL completion, `help()` and `docs/reference.md` all read what it records.

A built-in is a plain Python function whose first parameter may be ``ctx: CallContext``;
the other parameters' type hints give their kinds:

- ``Pixel``  — evaluated per pixel inside PixelMath (a float or a tile array);
- ``Image``  — a whole image (ndarray results are wrapped into ``Image``);
- ``float``/``int``/``str``/``bool``/``list`` — plain values;
- ``FrameSet`` — a lazy set of frames.

The docstring's first paragraph is the description; ``example`` is a runnable snippet.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from typing import Any, Union, get_args, get_origin

import numpy as np

from ..lang.errors import PxTypeError
from ..lang.functions import PIXEL, REQUIRED, CallContext, FunctionSpec, Param, TextNumber

REGISTRY: dict[str, FunctionSpec] = {}  # name and aliases -> spec


class Pixel:
    """Marker type: a per-pixel value (a float, or an array over the current tile)."""


_KINDS = {
    "Pixel": PIXEL,
    "Image": "image",
    "float": "number",
    "int": "int",
    "str": "string",
    "bool": "bool",
    "list": "list",
    "tuple": "list",
    "FrameSet": "frames",
    "Any": "any",
}


def _kind(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return "any"
    origin = get_origin(annotation)
    if origin is Union or isinstance(annotation, types.UnionType):
        kinds = [_kind(a) for a in get_args(annotation) if a is not type(None)]
        return "|".join(dict.fromkeys(kinds)) if kinds else "any"
    if origin is not None:
        annotation = origin
    name = getattr(annotation, "__name__", str(annotation))
    return _KINDS.get(name, "any")


def _annotation_text(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("pxlang.image.store.", "")


def _coerce(value: Any, param: Param, fname: str) -> Any:
    """Convert a language value to what the parameter's kind expects."""
    if value is None and param.default is None:
        return None  # `none` for an optional argument: leave it out
    kind = param.kind
    if "image" in kind.split("|"):
        from ..image.store import Image

        if isinstance(value, np.ndarray) and value.ndim in (2, 3):
            return Image(value)
        if isinstance(value, Image) or "|" in kind:
            return value
        raise PxTypeError(
            f"{fname}(): '{param.name}' must be an image, got {describe(value)}",
            hint=None if not isinstance(value, (int, float)) else "pass an image, not a number",
        )
    if kind == "number":
        if isinstance(value, bool):
            return float(value)
        if isinstance(value, (int, float, np.floating, np.integer)):
            return float(value)
        raise PxTypeError(f"{fname}(): '{param.name}' must be a number, got {describe(value)}")
    if kind == "int":
        if isinstance(value, (int, float, np.floating, np.integer)) and float(value) == int(value):
            return int(value)
        raise PxTypeError(
            f"{fname}(): '{param.name}' must be a whole number, got {describe(value)}"
        )
    if kind == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, TextNumber):
            return value.text
        raise PxTypeError(f"{fname}(): '{param.name}' must be a string, got {describe(value)}")
    if kind == "bool":
        if isinstance(value, (bool, int, float, np.floating, np.integer)):
            return bool(value)
        raise PxTypeError(
            f"{fname}(): '{param.name}' must be true/false (1/0), got {describe(value)}"
        )
    return value


def describe(value: Any) -> str:
    """A short user-facing description of a value's kind."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float, np.floating, np.integer)):
        return f"the number {float(value):g}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, np.ndarray):
        return f"an image {value.shape}"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)}"
    return getattr(value, "describe", lambda: f"a {type(value).__name__}")()


def builtin(
    name: str,
    *,
    category: str,
    aliases: tuple[str, ...] = (),
    example: str | None = None,
    pixinsight: str | None = None,
    siril: str | None = None,
    image_form: Callable[..., Any] | None = None,
    special: str | None = None,
    prepare: Callable[[], Callable[[], None] | None] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a built-in. See the module docstring. ``prepare``: called once when a run
    whose script calls the built-in starts (to warm up what it will need); it may return
    a cleanup, called when the run ends."""

    def deco(func: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(func, eval_str=True)
        plist = list(sig.parameters.values())
        takes_ctx = bool(plist) and plist[0].name == "ctx"
        if takes_ctx:
            plist = plist[1:]
        params = []
        for p in plist:
            params.append(
                Param(
                    name=p.name.rstrip("_"),
                    kind=_kind(p.annotation),
                    default=REQUIRED if p.default is inspect.Parameter.empty else p.default,
                    variadic=p.kind is inspect.Parameter.VAR_POSITIONAL,
                    keyword_only=p.kind
                    in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD),
                    varkw=p.kind is inspect.Parameter.VAR_KEYWORD,
                    annotation=_annotation_text(p.annotation),
                )
            )
        pyname = {p.name.rstrip("_"): p.name for p in plist}

        def call(ctx: CallContext, args: list[Any], kwargs: dict[str, Any]) -> Any:
            fixed = []
            positional = [p for p in params if not p.keyword_only and not p.variadic]
            variadic = next((p for p in params if p.variadic), None)
            for i, value in enumerate(args):
                if i < len(positional):
                    fixed.append(_coerce(value, positional[i], name))
                elif variadic is not None:
                    fixed.append(_coerce(value, variadic, name))
            by_name = {p.name: p for p in params if not p.varkw}
            kw = {
                pyname[k] if k in by_name else k: _coerce(v, by_name[k], name)
                if k in by_name
                else v
                for k, v in kwargs.items()
            }
            return func(ctx, *fixed, **kw) if takes_ctx else func(*fixed, **kw)

        doc = inspect.getdoc(func) or ""
        spec = FunctionSpec(
            name=name,
            params=tuple(params),
            call=call,
            doc=doc,
            category=category,
            aliases=tuple(aliases),
            returns=_annotation_text(sig.return_annotation),
            example=example,
            pixinsight=pixinsight,
            siril=siril,
            image_form=image_form,
            special=special,
        )
        if prepare is not None:
            spec.extra["prepare"] = prepare
        register(spec)
        func.spec = spec  # type: ignore[attr-defined]
        return func

    return deco


def register(spec: FunctionSpec) -> None:
    for key in (spec.name, *spec.aliases):
        if key in REGISTRY and REGISTRY[key] is not spec:
            raise RuntimeError(
                f"built-in name clash: {key} ({REGISTRY[key].category} and {spec.category})"
            )
        REGISTRY[key] = spec


def all_specs() -> list[FunctionSpec]:
    """Every built-in once (aliases folded), sorted by category then name."""
    seen: dict[str, FunctionSpec] = {}
    for spec in REGISTRY.values():
        seen.setdefault(spec.name, spec)
    return sorted(seen.values(), key=lambda s: (s.category, s.name))


def lookup(name: str) -> FunctionSpec | None:
    return REGISTRY.get(name)
