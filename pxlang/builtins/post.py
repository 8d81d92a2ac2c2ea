"""Post-processing built-ins (the guide's chapters 4–8): stretch, colour, masks, PSF,
deconvolution, noise reduction, sharpening. Thin adapters over ``pxlang.process``.

Every process that changes an image accepts ``mask=m, invert_mask=False``: the result is
``mask·processed + (1 − mask)·original``, as a PixInsight mask does (``_masked``, once here).
Only numpy and pxlang are imported at module level; the process modules load on first call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..image.store import Image
from ..lang.errors import PxProcessError, PxTypeError
from ..lang.functions import CallContext
from .registry import builtin

CAT = "post"
MASK_HINT = "make the mask from the same image, e.g. range_mask(img) or star_mask(img)"


# ---------------------------------------------------------------------------- shared helpers
def _run(
    name: str, fn: Callable[..., Any], *args: Any, hint: str | None = None, **kwargs: Any
) -> Any:
    """Call a process; its ValueErrors become PxProcessErrors naming the built-in."""
    try:
        return fn(*args, **kwargs)
    except ValueError as exc:
        raise PxProcessError(f"{name}(): {exc}", hint=hint) from exc


def _colour(name: str, img: Image, what: str = "image") -> None:
    if not img.is_color:
        raise PxTypeError(
            f"{name}() needs a colour image, but the {what} is mono ({img.width}x{img.height})",
            hint="combine channels first: channel_combine(R=..., G=..., B=...)",
        )


def _masked(
    name: str, original: Image, processed: np.ndarray, mask: Image | None, invert: bool
) -> np.ndarray:
    """``mask·processed + (1 − mask)·original``; a mono mask applies to every channel."""
    if mask is None:
        return processed
    m = _check_mask(name, original, mask)
    if invert:
        m = 1 - m
    if m.ndim == 2 and original.data.ndim == 3:
        m = m[None]
    return (m * processed + (1 - m) * original.data).astype(np.float32)


def _check_mask(name: str, original: Image, mask: Image | None) -> np.ndarray:
    """The mask's pixels clipped to [0, 1], after checking it fits the image (slow processes
    call this first, so that a wrong mask fails before the work)."""
    if mask is None:
        return np.ones((1, 1), dtype=np.float32)
    m = np.asarray(mask.data, dtype=np.float32)
    if m.shape[-2:] != original.data.shape[-2:]:
        raise PxTypeError(
            f"{name}(): the mask is {m.shape[-1]}x{m.shape[-2]} but the image is "
            f"{original.width}x{original.height}",
            hint=MASK_HINT,
        )
    if m.ndim == 3 and original.data.ndim == 2:
        raise PxTypeError(
            f"{name}(): a colour mask cannot mask a mono image",
            hint='use a mono mask, e.g. extract(mask, "L")',
        )
    return np.clip(m, 0, 1)


def _result(img: Image, data: np.ndarray, note: str) -> Image:
    out = img.with_data(np.asarray(data, dtype=np.float32))
    if out.header is not None:
        out.header.add_history(f"pxlang {note}")
    return out


def _floats(name: str, what: str, value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        try:
            return [float(v) for v in value]
        except (TypeError, ValueError) as exc:
            raise PxTypeError(f"{name}(): '{what}' must be numbers, got {value!r}") from exc
    return float(value)


def _weights(value: Any) -> Any:
    return value if isinstance(value, str) else _floats("luminance", "weights", value)


# ---------------------------------------------------------------------------- stretch
@builtin(
    "stf",
    category=CAT,
    pixinsight="ScreenTransferFunction (auto stretch)",
    siril="autostretch (parameters)",
    example="p = stf(Ha)",
)
def stf(
    image: Image, shadows_clip: float = -2.8, target_bg: float = 0.25, linked: bool = True
) -> list:
    """The STF auto-stretch parameters PixInsight computes: ``[shadows, midtones, highlights]``
    (one triple per channel for colour). shadows = median + shadows_clip·1.4826·MAD,
    midtones = mtf(target_bg, median − shadows). ``linked`` uses one set for all channels."""
    from ..process import stretch

    p = _run("stf", stretch.stf_params, image.data, shadows_clip, target_bg, linked)
    triples = [[float(c0), float(m), float(c1)] for c0, m, c1 in p]
    return triples if image.is_color else triples[0]


@builtin(
    "ht",
    category=CAT,
    pixinsight="HistogramTransformation",
    siril="mtf",
    example="ht(Ha, shadows=0.001, midtones=0.05)",
)
def ht(
    image: Image,
    shadows: float | list = 0.0,
    midtones: float | list = 0.5,
    highlights: float | list = 1.0,
    low: float = 0.0,
    high: float = 1.0,
    mask: Image | None = None,
    invert_mask: bool = False,
) -> Image:
    """HistogramTransformation: clip to [shadows, highlights], apply the midtones transfer
    function ``mtf(midtones, x)``, expand to [low, high]. Each of shadows/midtones/highlights is
    one number or one per channel (a list of 3), e.g. the lists ``stf(img)`` returns."""
    from ..process import stretch

    out = _run(
        "ht",
        stretch.histogram_transform,
        image.data,
        _floats("ht", "shadows", shadows),
        _floats("ht", "midtones", midtones),
        _floats("ht", "highlights", highlights),
        low,
        high,
    )
    return _result(image, _masked("ht", image, out, mask, invert_mask), "ht")


@builtin(
    "autostretch",
    category=CAT,
    pixinsight="STF auto stretch dragged to HistogramTransformation",
    siril="autostretch",
    example="autostretch(Ha)",
)
def autostretch(
    image: Image,
    shadows_clip: float = -2.8,
    target_bg: float = 0.25,
    linked: bool = True,
    mask: Image | None = None,
    invert_mask: bool = False,
) -> Image:
    """Make a linear image non-linear: ``ht`` with the ``stf`` auto-stretch parameters (the
    guide's "drag the STF to HT")."""
    from ..process import stretch

    out = _run("autostretch", stretch.auto_stretch, image.data, shadows_clip, target_bg, linked)
    return _result(image, _masked("autostretch", image, out, mask, invert_mask), "autostretch")


@builtin(
    "curves",
    category=CAT,
    pixinsight="CurvesTransformation",
    example="curves(RGB, [[0.3, 0.25], [0.7, 0.8]])",
)
def curves(
    image: Image,
    points: list,
    channel: str = "K",
    interpolation: str = "akima",
    mask: Image | None = None,
    invert_mask: bool = False,
) -> Image:
    """CurvesTransformation: a smooth curve (Akima subspline, or "cubic"/"linear") through
    ``points`` ``[[x, y], ...]`` — (0, 0) and (1, 1) are implied — applied to ``channel``: K (all),
    R, G, B, L (CIE L*), a, b, c (CIE chroma) or S (saturation)."""
    from ..process import stretch

    pts = [_floats("curves", "points", p) for p in points]
    if any(not isinstance(p, list) or len(p) != 2 for p in pts):
        raise PxTypeError("curves(): points are [x, y] pairs, e.g. [[0.3, 0.25], [0.7, 0.8]]")
    out = _run("curves", stretch.curves_transform, image.data, pts, channel, interpolation)
    return _result(image, _masked("curves", image, out, mask, invert_mask), f"curves {channel}")


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


# ---------------------------------------------------------------------------- masks
@builtin(
    "range_mask",
    category=CAT,
    pixinsight="RangeSelection",
    example="range_mask(autostretch(L), 0.2, 1, smoothness=2)",
)
def range_mask(
    image: Image,
    low: float = 0.0,
    high: float = 1.0,
    fuzziness: float = 0.0,
    smoothness: float = 0.0,
    invert: bool = False,
) -> Image:
    """RangeSelection: 1 where the image (CIE L* for colour) is within [low, high], 0 elsewhere;
    ``fuzziness`` softens the limits (ramps inside each), ``smoothness`` blurs (Gaussian σ, px).
    The guide makes it from a stretched clone: ``range_mask(autostretch(L), 0.2)``."""
    from ..process import masks

    return _result(
        image,
        _run("range_mask", masks.range_mask, image.data, low, high, fuzziness, smoothness, invert),
        "range_mask",
    )


@builtin(
    "star_mask",
    category=CAT,
    pixinsight="StarMask",
    siril="starnet (mask)",
    example="star_mask(L, grow=2)",
)
def star_mask(
    image: Image,
    scale: int = 5,
    threshold: float = 3.0,
    smoothness: float = 2.0,
    grow: int = 1,
    size: float = 3.0,
) -> Image:
    """StarMask: 1 on stars, 0 elsewhere. Stars are detected above ``threshold`` × noise σ on
    the small-scale wavelet layers (nebulosity stays out); objects larger than 2^``scale`` px are
    not stars; each star's ellipse (``size`` × its RMS radii) is grown by ``grow`` px and the edges
    softened (Gaussian σ = ``smoothness``). Raise ``scale``/``grow`` to cover big stars."""
    from ..process import masks

    return _result(
        image,
        _run("star_mask", masks.star_mask, image.data, scale, threshold, smoothness, grow, size),
        "star_mask",
    )


@builtin(
    "color_mask",
    category=CAT,
    pixinsight="ColorMask script",
    example='color_mask(RGB, "red", blur=3)',
)
def color_mask(
    image: Image,
    hue: str | list = "red",
    blur: int = 3,
    strength: float = 1.0,
    mode: str = "chrominance",
) -> Image:
    """ColorMask: a mono mask of one hue range — "red", "yellow", "green", "cyan", "blue",
    "magenta" (120° wide) or [h0, h1] in degrees — weighted by chroma (``mode``), blurred by
    dropping the first ``blur`` wavelet layers (the guide sets 3)."""
    from ..process import masks

    _colour("color_mask", image)
    h = hue if isinstance(hue, str) else _floats("color_mask", "hue", hue)
    return _result(
        image,
        _run("color_mask", masks.color_mask, image.data, h, blur, strength, mode),
        f"color_mask {hue}",
    )


# ---------------------------------------------------------------------------- PSF, deconvolution
@builtin(
    "psf",
    category=CAT,
    pixinsight="DynamicPSF (average PSF)",
    siril="psf / findstar",
    example="k = psf(L, stars=20)",
)
def psf(
    ctx: CallContext,
    image: Image,
    stars: int = 40,
    avoid_saturated: bool = True,
    avoid_edges: int | None = None,
    saturation: float = 0.95,
    threshold: float = 5.0,
) -> Image:
    """The average PSF of the image's stars (the guide's DynamicPSF recipe: 30–40 unsaturated
    stars away from the edges and nebulosity, each fitted by an elliptical Moffat). Returns the
    PSF as a small peak-normalised image for ``deconvolve``; its header holds the model:
    PSFBETA, PSFFWHM, PSFFWHMX, PSFFWHMY, PSFELLIP, PSFANGLE (deg), PSFNSTAR."""
    from astropy.io import fits

    from ..process import color
    from ..process import psf as psfmod

    data = color.luminance(image.data) if image.is_color else image.data
    model = _run(
        "psf",
        psfmod.fit_psf,
        data,
        stars,
        avoid_saturated,
        avoid_edges,
        saturation,
        threshold,
        hint="give a linear image with isolated, unsaturated stars (lower threshold)",
    )
    if model.n_stars < 5:
        ctx.warning(f"psf(): only {model.n_stars} star(s) fitted; the guide averages 30–40")
    h = fits.Header()
    h["PSFMODEL"] = ("Moffat", "elliptical Moffat fitted by pxlang psf()")
    h["PSFBETA"] = (round(model.beta, 5), "Moffat beta")
    h["PSFFWHM"] = (round(model.fwhm, 5), "[px] geometric mean FWHM")
    h["PSFFWHMX"] = (round(model.fwhm_x, 5), "[px] FWHM along the major axis")
    h["PSFFWHMY"] = (round(model.fwhm_y, 5), "[px] FWHM along the minor axis")
    h["PSFELLIP"] = (round(model.ellipticity, 5), "1 - minor/major")
    h["PSFANGLE"] = (round(model.angle, 3), "[deg] major axis from +x, counter-clockwise")
    h["PSFNSTAR"] = (model.n_stars, "stars averaged")
    return Image(model.image(), header=h, name="psf")


@builtin(
    "deconvolve",
    category=CAT,
    pixinsight="Deconvolution",
    siril="rl",
    example="deconvolve(L, psf(L, stars=20), iterations=10, local_support=star_mask(L, grow=3))",
)
def deconvolve(
    image: Image,
    psf: Image,
    iterations: int = 20,
    algorithm: str = "richardson_lucy",
    deringing: bool | Image = True,
    dark: float = 0.5,
    bright: float = 0.0,
    local_support: Image | None = None,
    local_amount: float = 0.7,
    mask: Image | None = None,
    invert_mask: bool = False,
) -> Image:
    """Deconvolution (FFT Richardson–Lucy) with an external PSF (from ``psf()``).
    ``algorithm``: "richardson_lucy" or "regularized_rl" (updates only significant structure,
    so background noise is not amplified). Deringing: ``dark`` (global, 0–1) stops dark rings
    around stars while keeping star fluxes; ``local_support`` (a star mask; also accepted as
    ``deringing=star_mask(...)``) protects with ``local_amount``. Apply to linear luminance,
    with ``mask=range_mask(...)`` as the guide does; a colour image is deconvolved per channel."""
    from ..process import deconvolution as dc

    _check_mask("deconvolve", image, mask)

    if psf.is_color:
        raise PxTypeError(
            "deconvolve(): the PSF must be a mono image", hint="make it with psf(image)"
        )
    support = local_support
    if isinstance(deringing, Image):
        support, deringing = deringing, True
    if support is not None and support.shape[-2:] != image.shape[-2:]:
        raise PxTypeError(
            f"deconvolve(): the local support is {support.width}x{support.height} but the image is "
            f"{image.width}x{image.height}",
            hint=MASK_HINT,
        )
    sup = (
        None
        if support is None
        else (support.data if support.data.ndim == 2 else support.data.max(axis=0))
    )
    chans = image.data if image.is_color else image.data[None]
    out = np.stack(
        [
            _run(
                "deconvolve",
                dc.deconvolve,
                ch,
                psf.data,
                iterations,
                algorithm,
                bool(deringing),
                dark,
                bright,
                sup,
                local_amount,
            )
            for ch in chans
        ]
    )
    out = out if image.is_color else out[0]
    return _result(
        image, _masked("deconvolve", image, out, mask, invert_mask), f"deconvolve {algorithm}"
    )


# ---------------------------------------------------------------------------- noise, sharpening
@builtin(
    "tgv_denoise", category=CAT, pixinsight="TGVDenoise", example="tgv_denoise(Ha, strength=5)"
)
def tgv_denoise(
    image: Image,
    strength: float = 5.0,
    edge_protection: float | None = None,
    smoothness: float = 2.0,
    iterations: int = 100,
    auto_convergence: bool = True,
    convergence: float = 3e-5,
    mode: str = "rgbk",
    mask: Image | None = None,
    invert_mask: bool = False,
) -> Image:
    """TGVDenoise: total generalised variation noise reduction (primal–dual solver). ``strength``
    in units of the image's own noise (5 ≈ one σ of regularisation), ``edge_protection`` the
    gradient (data units/px) above which edges and stars are protected (default 3σ),
    ``smoothness`` the second-order weight. ``mode``: "rgbk" or "lab" (for SHO/tricolour)."""
    from ..process import denoise

    _check_mask("tgv_denoise", image, mask)

    out = _run(
        "tgv_denoise",
        denoise.tgv_denoise,
        image.data,
        strength,
        edge_protection,
        smoothness,
        iterations,
        auto_convergence,
        convergence,
        mode,
    )
    return _result(image, _masked("tgv_denoise", image, out, mask, invert_mask), "tgv_denoise")


@builtin(
    "mlt_denoise",
    category=CAT,
    pixinsight="MultiscaleLinearTransform (noise reduction)",
    example="mlt_denoise(Ha, layers=4, amounts=[1, 0.8, 0.5, 0.3])",
)
def mlt_denoise(
    image: Image,
    layers: int = 4,
    thresholds: list | float = (3.0, 2.0, 1.0, 0.5),
    amounts: list | float = (1.0, 1.0, 1.0, 1.0),
    target: str = "RGBK",
    mask: Image | None = None,
    invert_mask: bool = False,
) -> Image:
    """MultiscaleLinearTransform noise reduction: per starlet layer, soft thresholding at
    ``thresholds`` × the layer's noise σ, blended by ``amounts`` (0–1).
    ``target``: "RGBK" or "L"."""
    from ..process import wavelets

    out = _run(
        "mlt_denoise",
        wavelets.mlt_denoise,
        image.data,
        layers,
        _floats("mlt_denoise", "thresholds", thresholds),
        _floats("mlt_denoise", "amounts", amounts),
        target,
    )
    return _result(image, _masked("mlt_denoise", image, out, mask, invert_mask), "mlt_denoise")


@builtin(
    "mlt",
    category=CAT,
    pixinsight="MultiscaleLinearTransform (sharpening)",
    example="mlt(autostretch(RGB), layers=4, bias=[0, 0.012, 0.05, 0.075])",
)
def mlt(
    image: Image,
    layers: int = 4,
    bias: list | float = (0.0, 0.012, 0.05, 0.075),
    transform: str = "starlet",
    deringing: bool = True,
    dark: float = 0.01,
    bright: float = 0.0,
    target: str = "L",
    mask: Image | None = None,
    invert_mask: bool = False,
) -> Image:
    """MultiscaleLinearTransform sharpening, the guide's settings by default: starlet transform,
    4 layers, layer j multiplied by (1 + bias_j), deringing with ``dark`` (the most a pixel may
    darken) and ``bright``, applied to CIE L* (``target="L"``) or each channel ("RGBK").
    Bias 0 on every layer leaves the image unchanged."""
    from ..process import wavelets

    if transform.lower() not in ("starlet", "a trous", "à trous"):
        raise PxTypeError(
            f"mlt(): only the starlet transform is available, got transform={transform!r}"
        )
    out = _run(
        "mlt",
        wavelets.mlt_sharpen,
        image.data,
        layers,
        _floats("mlt", "bias", bias),
        deringing,
        dark,
        bright,
        target,
    )
    return _result(image, _masked("mlt", image, out, mask, invert_mask), "mlt")
