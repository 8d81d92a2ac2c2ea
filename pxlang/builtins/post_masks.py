"""Post-processing built-ins that make masks (range, star, colour masks) and model the PSF.
Thin adapters over ``pxlang.process``, with the shared helpers of ``post.py``.
"""

from __future__ import annotations

from ..image.store import Image
from ..lang.functions import CallContext
from .post import CAT, _colour, _floats, _result, _run
from .registry import builtin


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
