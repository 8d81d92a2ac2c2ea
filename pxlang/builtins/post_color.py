"""Post-processing built-ins for colour (the guide's chapters 5–6): luminance and CIE L*a*b*,
channel extraction and combination, LRGB, saturation, SCNR, background neutralization, colour
calibration and background extraction. Thin adapters over ``pxlang.process``, with the shared
helpers of ``post.py`` (masks blend through its ``_masked``).
"""

from __future__ import annotations

import numpy as np

from ..image.store import Image
from ..lang.errors import PxTypeError
from .post import CAT, MASK_HINT, _colour, _floats, _masked, _result, _run, _weights
from .registry import builtin


# ---------------------------------------------------------------------------- colour
@builtin(
    "luminance",
    category=CAT,
    pixinsight="RGBWorkingSpace + ChannelExtraction (CIE L*)",
    example='luminance(RGB, weights="equal")',
)
def luminance(image: Image, weights: str | list = "D50", mode: str = "lightness") -> Image:
    """Luminance of a colour image with the RGB working space coefficients ``weights``: "D50"
    (PixInsight's sRGB: 0.2225, 0.7169, 0.0606), "equal" (the guide's sliders to the far right)
    or [r, g, b] (normalised to sum one). ``mode="lightness"``: CIE L* as ChannelExtraction
    gives; ``mode="linear"``: the plain weighted sum (stays linear on linear data)."""
    from ..process import color

    _colour("luminance", image)
    fn = {"lightness": color.lightness, "linear": color.luminance}.get(mode)
    if fn is None:
        raise PxTypeError(f'luminance(): mode is "lightness" or "linear", got {mode!r}')
    return _result(image, _run("luminance", fn, image.data, _weights(weights)), f"luminance {mode}")


@builtin("lab", category=CAT, pixinsight="ChannelExtraction (CIE L*a*b*)", example="lab(RGB)")
def lab(image: Image, weights: str | list = "D50") -> Image:
    """CIE L*a*b* (D50) as a 3-channel image, normalised as PixInsight does: L* in [0, 1],
    a* and b* in [0, 1] (≈0.543 is neutral). ``from_lab`` is its exact inverse."""
    from ..process import color

    _colour("lab", image)
    return _result(image, _run("lab", color.rgb_to_lab, image.data, _weights(weights)), "lab")


@builtin(
    "from_lab",
    category=CAT,
    pixinsight="ChannelCombination (CIE L*a*b*)",
    example="from_lab(lab(RGB))",
)
def from_lab(
    L: Image, a: Image | None = None, b: Image | None = None, weights: str | list = "D50"
) -> Image:
    """RGB from CIE L*a*b*: either one 3-channel Lab image (as ``lab`` makes) or three mono
    images ``L``, ``a``, ``b``. Colours outside the RGB gamut are clipped."""
    from ..process import color

    if a is None and b is None:
        _colour("from_lab", L, "Lab image")
        arr = L.data
    elif a is not None and b is not None:
        parts = [L, a, b]
        if any(p.is_color for p in parts) or len({p.shape for p in parts}) != 1:
            raise PxTypeError("from_lab(): L, a and b must be mono images of the same size")
        arr = np.stack([p.data for p in parts])
    else:
        raise PxTypeError("from_lab(): give one Lab image, or all three of L, a and b")
    return _result(L, _run("from_lab", color.lab_to_rgb, arr, _weights(weights)), "from_lab")


@builtin(
    "extract",
    category=CAT,
    pixinsight="ChannelExtraction",
    siril="split",
    example='extract(RGB, "L")',
)
def extract(image: Image, channel: str, weights: str | list = "D50") -> Image:
    """One component of a colour image as a mono image: R, G, B; CIE L, a, b, c, h; CIE X, Y,
    Z; H, Sv, Si, V, I (HSV/HSI); K (linear luminance)."""
    from ..process import color

    _colour("extract", image)
    return _result(
        image,
        _run("extract", color.extract_channel, image.data, channel, _weights(weights)),
        f"extract {channel}",
    )


@builtin(
    "channel_combine",
    category=CAT,
    pixinsight="ChannelCombination",
    siril="rgbcomp",
    example="channel_combine(R=Ha, G=OIII, B=OIII)",
)
def channel_combine(R: Image, G: Image, B: Image) -> Image:
    """A colour image from three mono images of the same size (PixelMath's per-channel form
    ``rgb { R = ...; G = ...; B = ... }`` does the same with expressions)."""
    parts = [R, G, B]
    for label, p in zip("RGB", parts, strict=True):
        if p.is_color:
            raise PxTypeError(
                f"channel_combine(): {label} must be a mono image",
                hint=f'use extract(img, "{label}")',
            )
    if len({p.shape for p in parts}) != 1:
        sizes = ", ".join(f"{k}={p.width}x{p.height}" for k, p in zip("RGB", parts, strict=True))
        raise PxTypeError(
            f"channel_combine(): the channels differ in size ({sizes})",
            hint="register the channels onto one reference first",
        )
    return _result(R, np.stack([p.data for p in parts]), "channel_combine")


@builtin(
    "lrgb",
    category=CAT,
    pixinsight="LRGBCombination",
    siril="rgbcomp -lum",
    example="lrgb(L=L, rgb=RGB)",
)
def lrgb(
    L: Image,
    rgb: Image,
    lightness: float = 0.5,
    saturation: float = 0.5,
    mask: Image | None = None,
    invert_mask: bool = False,
) -> Image:
    """LRGBCombination: the CIE L* of ``rgb`` is replaced by the (non-linear) luminance ``L``,
    through ``mtf(lightness, L)``; chroma goes through ``mtf(saturation, c*)``. 0.5 leaves
    either as is; lower values brighten / saturate more."""
    from ..process import color

    _colour("lrgb", rgb, "rgb image")
    if L.is_color:
        raise PxTypeError("lrgb(): L must be a mono image", hint='use extract(img, "L")')
    out = _run("lrgb", color.lrgb_combine, L.data, rgb.data, lightness, saturation)
    return _result(rgb, _masked("lrgb", rgb, out, mask, invert_mask), "lrgb")


@builtin(
    "saturation",
    category=CAT,
    pixinsight="CurvesTransformation (saturation) / ColorSaturation",
    example="saturation(RGB, 0.3, mask=range_mask(RGB, 0.1, 1))",
)
def saturation(
    image: Image, amount: float, mask: Image | None = None, invert_mask: bool = False
) -> Image:
    """Scale CIE chroma by (1 + amount) at constant L* and hue (a perceptual space): 0.3 is
    30 % more colourful, −1 grey. Colours leaving the RGB gamut are clipped."""
    from ..process import color

    _colour("saturation", image)
    out = _run("saturation", color.saturate, image.data, amount)
    return _result(
        image, _masked("saturation", image, out, mask, invert_mask), f"saturation {amount:g}"
    )


@builtin("scnr", category=CAT, pixinsight="SCNR", siril="rmgreen", example="scnr(RGB, amount=0.8)")
def scnr(
    image: Image,
    amount: float = 1.0,
    method: str = "average_neutral",
    preserve_lightness: bool = True,
    mask: Image | None = None,
    invert_mask: bool = False,
) -> Image:
    """SCNR green noise removal: average_neutral (default), maximum_neutral, maximum_mask or
    additive_mask, with PixInsight's formulas; ``preserve_lightness`` keeps CIE L*."""
    from ..process import color

    _colour("scnr", image)
    out = _run("scnr", color.scnr, image.data, amount, method, preserve_lightness)
    return _result(image, _masked("scnr", image, out, mask, invert_mask), f"scnr {method}")


@builtin(
    "neutralize_background",
    category=CAT,
    pixinsight="BackgroundNeutralization",
    siril="bgneutralization",
    example="neutralize_background(RGB, high=0.2)",
)
def neutralize_background(
    image: Image,
    reference: Image | None = None,
    region: Image | None = None,
    low: float = 0.0,
    high: float = 0.1,
    mask: Image | None = None,
    invert_mask: bool = False,
) -> Image:
    """BackgroundNeutralization: offset each channel so the background is neutral grey. The
    background is the median of ``reference`` (default: the image) pixels within [low, high]
    on all channels, inside ``region`` (a mono mask, > 0.5) when given."""
    from ..process import background as bg

    _colour("neutralize_background", image)
    ref = None if reference is None else reference.data
    reg = _region("neutralize_background", image, region)
    out = _run(
        "neutralize_background",
        bg.neutralize_background,
        image.data,
        ref,
        low,
        high,
        reg,
        hint="raise high, or give a region that holds background sky",
    )
    return _result(
        image,
        _masked("neutralize_background", image, out, mask, invert_mask),
        "neutralize_background",
    )


def _region(name: str, image: Image, region: Image | None) -> np.ndarray | None:
    if region is None:
        return None
    if region.is_color or region.shape[-2:] != image.shape[-2:]:
        raise PxTypeError(
            f"{name}(): a region is a mono mask the size of the image", hint=MASK_HINT
        )
    return region.data


@builtin(
    "color_calibrate",
    category=CAT,
    pixinsight="ColorCalibration",
    siril="calibrate colors",
    example="color_calibrate(RGB, white_region=star_mask(RGB))",
)
def color_calibrate(
    image: Image,
    white: Image | None = None,
    background: Image | None = None,
    white_region: Image | None = None,
    background_region: Image | None = None,
    white_low: float = 0.0,
    white_high: float = 0.9,
    background_low: float = 0.0,
    background_high: float = 0.1,
    mask: Image | None = None,
    invert_mask: bool = False,
) -> Image:
    """ColorCalibration: subtract each channel's background (median of the ``background``
    reference within its limits) and scale the channels so the ``white`` reference (mean over
    ``white_region``, e.g. a star mask or a galaxy, below ``white_high`` to skip saturated
    pixels) becomes neutral. No channel is scaled up."""
    from ..process import background as bg

    _colour("color_calibrate", image)
    out = _run(
        "color_calibrate",
        bg.color_calibrate,
        image.data,
        None if white is None else white.data,
        None if background is None else background.data,
        white_low,
        white_high,
        background_low,
        background_high,
        _region("color_calibrate", image, white_region),
        _region("color_calibrate", image, background_region),
        hint="check the reference limits and regions",
    )
    return _result(
        image, _masked("color_calibrate", image, out, mask, invert_mask), "color_calibrate"
    )


@builtin(
    "background",
    category=CAT,
    pixinsight="AutomaticBackgroundExtractor / DynamicBackgroundExtraction",
    siril="subsky",
    example="background(Ha, degree=2)",
)
def background(
    image: Image,
    degree: int = 4,
    samples: int = 16,
    tolerance: float = 1.0,
    points: list | None = None,
    correction: str = "subtract",
    model: bool = False,
    mask: Image | None = None,
    invert_mask: bool = False,
) -> Image:
    """Remove a sky gradient. ABE-like: a polynomial of ``degree`` fitted to a ``samples`` ×
    ``samples`` grid of background medians (bright boxes rejected by ``tolerance``). DBE-like:
    with ``points=[[x, y], ...]`` a thin-plate spline through those samples. ``correction`` is
    "subtract" (light pollution) or "divide" (vignetting); ``model=true`` returns the model."""
    from ..process import background as bg

    pts = None if points is None else [_floats("background", "points", p) for p in points]
    hint = "lower the degree or add samples/points"
    if model:
        return _result(
            image,
            _run(
                "background",
                bg.background_model,
                image.data,
                degree,
                samples,
                tolerance,
                pts,
                hint=hint,
            ),
            "background model",
        )
    out = _run(
        "background",
        bg.subtract_background,
        image.data,
        degree,
        samples,
        tolerance,
        pts,
        correction,
        hint=hint,
    )
    return _result(
        image, _masked("background", image, out, mask, invert_mask), f"background {correction}"
    )
