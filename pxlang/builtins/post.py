"""Post-processing built-ins (the guide's chapters 4–8): stretch, colour, masks, PSF,
deconvolution, noise reduction, sharpening. Thin adapters over ``pxlang.process``.

Every process that changes an image accepts ``mask=m, invert_mask=False``: the result is
``mask·processed + (1 − mask)·original``, as a PixInsight mask does (``_masked``, once here).
Only numpy and pxlang are imported at module level; the process modules load on first call.
Colour and background are in ``post_color.py``, masks and PSF in ``post_masks.py``; they
share the helpers here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..image.store import Image
from ..lang.errors import PxProcessError, PxTypeError
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
