"""What the language needs to know about a callable: its parameters and how to call it.

The built-in registry (outside `lang/`) builds `FunctionSpec`s; the checker, the interpreter,
the REPL and the docs read them. Nothing here knows what an image is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

REQUIRED: Any = type("Required", (), {"__repr__": lambda self: "REQUIRED"})()

# Parameter kinds. "pixel" parameters are evaluated per pixel (over tiles) inside PixelMath
# expressions; every other kind receives a whole value (a whole image, a number, a string...).
PIXEL = "pixel"


class TextNumber(float):
    """A number given as text on the command line (``NAME=VALUE`` for a ``param`` without a
    default): a number in arithmetic, its text where a string is expected, so that a folder
    named ``20240915`` or ``2025`` is still that folder."""

    text: str

    def __new__(cls, text: str) -> TextNumber:
        obj = super().__new__(cls, text)
        obj.text = text
        return obj

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Param:
    name: str
    kind: str = "any"  # pixel | image | number | int | string | bool | list | frames | any ...
    default: Any = REQUIRED
    variadic: bool = False
    keyword_only: bool = False
    annotation: str = ""
    varkw: bool = False  # **name: any further keyword (e.g. header keywords of files())

    @property
    def required(self) -> bool:
        return self.default is REQUIRED and not self.variadic


@dataclass(frozen=True)
class FunctionSpec:
    """A callable the language knows: built-in or user-defined.

    ``call(ctx, args, kwargs)`` runs it. ``kind`` is ``"pixel"`` when some parameter is
    evaluated per pixel (then the function is elementwise over tiles), else ``"whole"``.
    ``image_form`` is the statistics form of a dual function: ``max(Ha)`` (image maximum)
    versus ``max(Ha, OIII)`` (per-pixel maximum).
    """

    name: str
    params: tuple[Param, ...]
    call: Callable[..., Any]
    doc: str = ""
    category: str = ""
    aliases: tuple[str, ...] = ()
    returns: str = "any"
    example: str | None = None
    pixinsight: str | None = None
    siril: str | None = None
    image_form: Callable[..., Any] | None = None
    special: str | None = None  # handled by the interpreter itself (iif, iswitch, lazy forms)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "pixel" if any(p.kind == PIXEL for p in self.params) else "whole"

    @property
    def positional(self) -> tuple[Param, ...]:
        return tuple(
            p for p in self.params if not p.keyword_only and not p.variadic and not p.varkw
        )

    @property
    def variadic(self) -> Param | None:
        return next((p for p in self.params if p.variadic), None)

    @property
    def varkw(self) -> Param | None:
        return next((p for p in self.params if p.varkw), None)

    def min_args(self) -> int:
        return sum(1 for p in self.positional if p.required)

    def max_args(self) -> int | None:
        return None if self.variadic else len(self.positional)

    def signature(self) -> str:
        parts = []
        for p in self.params:
            s = ("*" if p.variadic else "**" if p.varkw else "") + p.name
            if p.default is not REQUIRED and not p.variadic and not p.varkw:
                s += (
                    "=" + repr(p.default) if not isinstance(p.default, float) else f"={p.default:g}"
                )
            parts.append(s)
        return f"{self.name}({', '.join(parts)})"


@dataclass
class CallContext:
    """What a called function may know of its call site.

    ``span``: where the call is (for errors). ``base_dir``: folder relative paths resolve
    against (the script's folder). ``provenance``: what made the values (pxlang version is
    added by the writer): ``{"source": name, "text": program text, "params": {...}}``.
    ``rng_seed``: seed for random generators. ``pixel``: the geometry of the tile being
    evaluated, for per-pixel functions (``None`` outside PixelMath evaluation).
    ``options``: run-wide settings (truncate, rescale, cache dir, workers, quiet...).
    """

    span: Any = None
    base_dir: str = "."
    provenance: dict[str, Any] = field(default_factory=dict)
    rng_seed: int | None = None
    pixel: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    warn: Callable[[str], None] | None = None
    rng: Any = None  # numpy Generator of the running evaluation (random(), gauss()...)
    names: Any = None  # read-only view of the caller's names (for pixelmath("...") in scripts)

    def warning(self, message: str) -> None:
        if self.warn is not None:
            self.warn(message)
        else:
            import sys

            print(f"warning: {message}", file=sys.stderr)

    def resolve_path(self, path: str) -> str:
        import os

        path = os.path.expanduser(path)
        return path if os.path.isabs(path) else os.path.normpath(os.path.join(self.base_dir, path))


@dataclass(frozen=True)
class PixelGeometry:
    """The tile of pixels being evaluated: rows ``r0:r1`` of a ``height`` × ``width`` image,
    ``channels`` 1 or 3 (3: per-pixel values have a leading channel axis), ``channel``: the
    channel being computed in per-channel mode (None in vector mode)."""

    r0: int
    r1: int
    height: int
    width: int
    channels: int = 1
    channel: int | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        rows = self.r1 - self.r0
        return (3, rows, self.width) if self.channels == 3 else (rows, self.width)
