"""Small helpers the built-in modules share (one copy of each)."""

from __future__ import annotations

from typing import Any

from ..image.frameset import FrameSet
from ..image.store import Image
from ..lang.errors import PxError, PxProcessError
from ..lang.functions import CallContext
from .registry import describe


def process_error(ctx: CallContext, name: str, exc: Exception) -> PxError:
    """A process's ValueError as the user's error at the call site."""
    return PxProcessError(f"{name}(): {exc}", span=ctx.span)


def as_frames(value: Any, name: str) -> FrameSet:
    """A frame set from a frame set, an image or a list of images."""
    if isinstance(value, FrameSet):
        return value
    if isinstance(value, Image):
        return FrameSet.from_arrays([value])
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, Image) for v in value):
        return FrameSet.from_arrays(list(value))
    raise PxProcessError(
        f"{name}(): expected a frame set (files(...)) or a list of images, got {describe(value)}"
    )


def stage_label(name: str, fs: FrameSet) -> str:
    """A progress line's label saying what is processed: "integrate flat Ha", "measure
    light OIII", "integrate dark 300s" (the first frame's IMAGETYP, FILTER or exposure)."""
    from ..image.frameset import header_value, normalise_imagetyp

    try:
        header = fs.header(0) if len(fs) else None
    except PxError:
        header = None
    if header is None:
        return name
    kind = normalise_imagetyp(header_value(header, "IMAGETYP") or "")
    parts = [name, kind] if kind else [name]
    if kind in ("dark", "darkflat"):
        exposure = header_value(header, "EXPTIME")
        if isinstance(exposure, (int, float)):
            parts.append(f"{exposure:g}s")
    else:
        filt = header_value(header, "FILTER")
        if filt is not None and str(filt).strip():
            parts.append(str(filt).strip())
    return " ".join(parts)
