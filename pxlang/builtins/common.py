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
