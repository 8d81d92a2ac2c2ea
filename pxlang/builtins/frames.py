"""Images in and out of files, and PixelMath in its PixInsight form (expression strings)."""

from __future__ import annotations

import os
from typing import Any

from ..image.store import Image
from ..lang.errors import PxIOError
from ..lang.functions import CallContext
from .registry import builtin


def _inputs(ctx: CallContext) -> set[str]:
    return ctx.options.setdefault("_inputs", set())


@builtin(
    "load",
    category="files",
    aliases=("open",),
    pixinsight="File > Open",
    siril="load",
    example='load(save(Ha, "copy.fits"))',
)
def load(ctx: CallContext, path: str) -> Image:
    """Read an image: FITS, XISF, TIFF, PNG or JPEG. Integer data is normalised to [0, 1] by its
    bit depth; the header comes with it. Relative paths are relative to the script's folder."""
    from ..image import io

    full = ctx.resolve_path(path)
    img = io.load(full)
    _inputs(ctx).add(os.path.realpath(full))
    return img


@builtin(
    "save",
    category="files",
    pixinsight="File > Save As",
    siril="save",
    example='save(Ha*0.5, "half.fits")',
)
def save(
    ctx: CallContext, image: Image, path: str, bits: int | None = None, overwrite: bool = True
) -> str:
    """Write an image atomically (temp file, then rename). The format follows the extension:
    .fits/.fit (32-bit float; ``bits=16`` for unsigned 16-bit), .xisf, .tif (16-bit; ``bits=32``
    float), .png (8-bit; ``bits=16``), .jpg. The file records the pxlang version and the script
    and parameters that made it. A file this run has read is never overwritten."""
    from ..image import io

    full = ctx.resolve_path(path)
    if os.path.realpath(full) in _inputs(ctx):
        raise PxIOError(
            f"{path}: this file is an input of the run and is never overwritten",
            hint="save under another name",
        )
    out = io.save(image, full, provenance=ctx.provenance, bits=bits, overwrite=overwrite)
    if isinstance(image, Image):
        image.shown_path = out  # later messages about this image name the file the user has
    return out


@builtin(
    "pixelmath",
    category="pixelmath",
    pixinsight="PixelMath",
    example='pixelmath("Ha*0.5 + OIII*0.5")',
)
def pixelmath(
    ctx: CallContext,
    rk: str,
    g: str | None = None,
    b: str | None = None,
    symbols: str = "",
    truncate: bool = True,
    rescale: bool = False,
    target: Image | None = None,
    seed: int | None = None,
) -> Any:
    """PixInsight's PixelMath process with its expression fields as strings: ``rk`` (R/K), ``g``
    and ``b`` (per-channel when given), ``symbols`` ("k = 0.5, a, s = global(+)"), and the
    truncate/rescale switches. Identifiers are the images and numbers of the script."""
    from ..api import pixelmath_result

    names = dict(ctx.names) if ctx.names is not None else {}
    return pixelmath_result(
        rk,
        g,
        b,
        symbols=symbols,
        truncate=truncate,
        rescale=rescale,
        target=target,
        seed=seed if seed is not None else ctx.rng_seed,
        names=names,
        base_dir=ctx.base_dir,
        provenance=ctx.provenance,
    ).value
