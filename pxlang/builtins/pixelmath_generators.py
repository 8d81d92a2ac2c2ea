"""PixelMath's generators, which build whole images once (``gconv`` … ``combine``), the
symbolic ``str_``/``krn_``/``op_`` tokens they take, and the header functions
``keyword_value``/``keyword_defined``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..image.frameset import FrameSet
from ..image.store import Image
from ..lang.errors import PxRuntimeError, PxTypeError
from ..lang.functions import CallContext
from ..process.normalization import DEFAULT_SCALE as DEFAULT_LN_SCALE
from .pixelmath import CAT, _spec
from .registry import builtin


# ------------------------------------------------------------------ generators (whole images)
def _arr(img: Image) -> np.ndarray:
    return img.data


@builtin("gconv", category=CAT, pixinsight="PixelMath", example="gconv(Ha, 2)")
def gconv(
    img: Image, sigma: float = 2.0, rho: float = 1.0, theta: float = 0.0, eps: float = 0.01
) -> Image:
    """Gaussian convolution: ``sigma`` (px), aspect ``rho`` ≤ 1, rotation ``theta`` (°), kernel
    truncated below ``eps`` of its peak."""
    from ..process import filters

    return Image(filters.gconv(_arr(img), sigma, rho, theta, eps))


@builtin("bconv", category=CAT, pixinsight="PixelMath", example="bconv(Ha, 5)")
def bconv(img: Image, n: int = 3) -> Image:
    """Box (mean) filter of n×n pixels (n odd)."""
    from ..process import filters

    return Image(filters.bconv(_arr(img), n))


@builtin(
    "kconv", category=CAT, pixinsight="PixelMath", example="kconv(Ha, 1, 2, 1, 2, 4, 2, 1, 2, 1)"
)
def kconv(img: Image, *k: float) -> Image:
    """Convolution with an odd square kernel given row by row (normalised when its sum ≠ 0)."""
    from ..process import filters

    return Image(filters.kconv(_arr(img), list(k)))


def _structure(s: Any) -> str:
    if s is None:
        return "square"
    s = str(s)
    return s[4:] if s.startswith("str_") else s


@builtin("medfilt", category=CAT, pixinsight="PixelMath", example="medfilt(Ha, 3)")
def medfilt(img: Image, n: int = 3, structure: str | None = None) -> Image:
    """Median filter over an n×n structuring element (``str_square()``, ``str_circular()`` …)."""
    from ..process import filters

    return Image(filters.medfilt(_arr(img), n, _structure(structure)))


@builtin(
    "erosion", category=CAT, aliases=("minfilt",), pixinsight="PixelMath", example="erosion(Ha, 3)"
)
def erosion(img: Image, n: int = 3, structure: str | None = None) -> Image:
    """Morphological erosion (minimum filter)."""
    from ..process import filters

    return Image(filters.erosion(_arr(img), n, _structure(structure)))


@builtin(
    "dilation",
    category=CAT,
    aliases=("maxfilt",),
    pixinsight="PixelMath",
    example="dilation(Ha, 3)",
)
def dilation(img: Image, n: int = 3, structure: str | None = None) -> Image:
    """Morphological dilation (maximum filter)."""
    from ..process import filters

    return Image(filters.dilation(_arr(img), n, _structure(structure)))


@builtin("translate", category=CAT, pixinsight="PixelMath", example="translate(Ha, 2.5, -1)")
def translate(img: Image, dx: float, dy: float) -> Image:
    """Shift by (dx, dy) pixels; bilinear; uncovered pixels are 0."""
    from ..process import filters

    return Image(filters.translate(_arr(img), dx, dy))


@builtin("rotate", category=CAT, pixinsight="PixelMath", example="rotate(Ha, 30)")
def rotate(img: Image, angle: float, cx: float | None = None, cy: float | None = None) -> Image:
    """Rotate by ``angle`` degrees about (cx, cy), default the centre; bilinear."""
    from ..process import filters

    return Image(filters.rotate(_arr(img), angle, cx, cy))


@builtin("urotate", category=CAT, pixinsight="PixelMath", example="urotate(Ha, 90)")
def urotate(img: Image, angle: float) -> Image:
    """Exact rotation by a multiple of 90°."""
    from ..process import filters

    return Image(filters.urotate(_arr(img), angle))


@builtin("hmirror", category=CAT, pixinsight="PixelMath", example="hmirror(Ha)")
def hmirror(img: Image) -> Image:
    """Mirror left–right."""
    from ..process import filters

    return Image(filters.hmirror(_arr(img)))


@builtin("vmirror", category=CAT, pixinsight="PixelMath", example="vmirror(Ha)")
def vmirror(img: Image) -> Image:
    """Mirror top–bottom."""
    from ..process import filters

    return Image(filters.vmirror(_arr(img)))


@builtin(
    "normalize",
    category=CAT,
    pixinsight="PixelMath normalize / LocalNormalization",
    example="normalize(Ha)",
)
def normalize(
    ctx: CallContext,
    img: Image | FrameSet,
    a: float = 0.0,
    b: float = 1.0,
    reference: Any = "best",
    method: str = "local",
    scale: int = DEFAULT_LN_SCALE,
) -> Any:
    """Of an image: PixelMath's linear map of its range onto [a, b]. Of a frame set
    (registered lights): LocalNormalization against ``reference`` ("best", a frame number, a
    file or an image) at ``scale`` pixels — see ``localnormalization``."""
    if isinstance(img, (FrameSet, list)):
        from .align import normalize as local_normalization

        return local_normalization(ctx, img, reference=reference, method=method, scale=scale)
    from ..process import filters

    return Image(filters.normalize(_arr(img), a, b))


@builtin("truncate", category=CAT, pixinsight="PixelMath", example="truncate(Ha*2)")
def truncate(img: Image, a: float = 0.0, b: float = 1.0) -> Image:
    """Clip to [a, b]."""
    from ..process import filters

    return Image(filters.truncate(_arr(img), a, b))


@builtin("binarize", category=CAT, pixinsight="PixelMath", example="binarize(Ha, 0.2)")
def binarize(img: Image, t: float = 0.5) -> Image:
    """1 where the image is above ``t``, else 0."""
    from ..process import filters

    return Image(filters.binarize(_arr(img), t))


@builtin("lvar", category=CAT, pixinsight="PixelMath", example="lvar(Ha, 5)")
def lvar(img: Image, d: int = 3, kernel: str | None = None) -> Image:
    """Local variance in a d×d window (``krn_flat()`` or ``krn_gauss()`` weights)."""
    from ..process import filters

    k = "flat" if kernel is None else str(kernel).removeprefix("krn_")
    return Image(filters.lvar(_arr(img), d, k))


@builtin(
    "combine",
    category=CAT,
    pixinsight="PixelMath combine / ChannelCombination / LRGBCombination",
    example="combine(Ha, OIII, op_screen())",
)
def combine(
    img1: Image | None = None,
    img2: Image | None = None,
    op: str | None = None,
    R: Image | None = None,
    G: Image | None = None,
    B: Image | None = None,
    L: Image | None = None,
    rgb: Image | None = None,
) -> Image:
    """Three forms. ``combine(img1, img2, op)``: PixelMath's blend of two images with an
    operator (``op_add()``, ``op_screen()``, ``op_overlay()`` …). ``combine(R=…, G=…, B=…)``:
    ChannelCombination of three mono images (see ``channel_combine``). ``combine(L=…,
    rgb=…)``: LRGBCombination (see ``lrgb``)."""
    if R is not None or G is not None or B is not None:
        if None in (R, G, B) or img1 is not None:
            raise PxTypeError("combine(R=…, G=…, B=…) needs all three channels and nothing else")
        from .post_color import channel_combine

        return channel_combine(R, G, B)
    if L is not None or rgb is not None:
        if L is None or rgb is None or img1 is not None:
            raise PxTypeError("combine(L=…, rgb=…) needs both a luminance and a colour image")
        from .post_color import lrgb

        return lrgb(L, rgb)
    if img1 is None or img2 is None or op is None:
        raise PxTypeError(
            "combine() takes (img1, img2, op), or R=, G=, B=, or L=, rgb=",
            hint="e.g. combine(Ha, OIII, op_screen()) or combine(R=r, G=g, B=b)",
        )
    from ..process import filters

    a, b = _arr(img1), _arr(img2)
    if a.shape[-2:] != b.shape[-2:]:
        raise PxTypeError(
            f"combine(): images of {a.shape[-1]}x{a.shape[-2]} and "
            f"{b.shape[-1]}x{b.shape[-2]} differ in size"
        )
    return Image(filters.blend(a, b, str(op).removeprefix("op_")))


def _symbolic(prefix: str, names: tuple[str, ...], what: str) -> None:
    for n in names:
        token = f"{prefix}{n}"
        _spec(
            token,
            lambda ctx, _t=token: _t,
            [],
            f"The {what} '{n}' (an argument for generators).",
            example=f"{token}()",
        )


def _register_symbolic() -> None:
    from ..process.filter_names import BLEND_OPS, KERNELS, STRUCTURES

    _symbolic("str_", STRUCTURES, "structuring element")
    _symbolic("krn_", KERNELS, "kernel")
    _symbolic("op_", BLEND_OPS, "combination operator")


_register_symbolic()


# ------------------------------------------------------------------ header / symbol functions
def _header(img: Any) -> Any:
    h = getattr(img, "header", None)
    return h if h is not None else {}


@builtin(
    "keyword_value",
    category=CAT,
    aliases=("kwd_value",),
    pixinsight="PixelMath symbol function",
    example='keyword_value(load(save(Ha, "k.fits")), "NAXIS1")',
)
def keyword_value(img: Image, keyword: str) -> float:
    """The numeric value of a FITS keyword of an image (an error if absent or not a number)."""
    h = _header(img)
    key = keyword.upper()
    if key not in h:
        raise PxRuntimeError(
            f"the image has no keyword {key}", hint='check with keyword_defined(image, "KEY")'
        )
    try:
        return float(h[key])
    except (TypeError, ValueError):
        raise PxTypeError(f"keyword {key} is not a number: {h[key]!r}") from None


@builtin(
    "keyword_defined",
    category=CAT,
    aliases=("kwd_defined",),
    pixinsight="PixelMath symbol function",
    example='keyword_defined(Ha, "EXPTIME")',
)
def keyword_defined(img: Image, keyword: str) -> float:
    """1 if the image's header has the keyword, else 0."""
    return float(keyword.upper() in _header(img))
