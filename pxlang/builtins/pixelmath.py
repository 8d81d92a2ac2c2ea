"""PixInsight PixelMath's function set (module 1.9.3), with PixInsight's names and aliases.

Functions with ``Pixel`` parameters run per pixel over tiles; statistics have two forms
(``max(Ha)`` = image maximum, ``max(Ha, OIII)`` = per-pixel maximum); generators
(``gconv``, ``medfilt`` …) build whole images once. Astrometric functions (ra, dec) are not
provided: they need a plate solution.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..image.frameset import FrameSet
from ..image.store import Image
from ..lang.errors import PxRuntimeError, PxTypeError
from ..lang.functions import PIXEL, REQUIRED, CallContext, FunctionSpec, Param
from .registry import Pixel, builtin, register

CAT = "pixelmath"


def _spec(
    name: str,
    fn: Callable[..., Any],
    params: list[Param],
    doc: str,
    *,
    aliases: tuple[str, ...] = (),
    example: str | None = None,
    image_form: Any = None,
    special: str | None = None,
    **extra: Any,
) -> None:
    def call(ctx: CallContext, args: list[Any], kwargs: dict[str, Any]) -> Any:
        return fn(ctx, *args)

    register(
        FunctionSpec(
            name=name,
            params=tuple(params),
            call=call,
            doc=doc,
            category=CAT,
            aliases=aliases,
            example=example,
            image_form=image_form,
            special=special,
            pixinsight="PixelMath",
            extra=extra,
            returns="Pixel",
        )
    )


def P(name: str, default: Any = REQUIRED) -> Param:
    return Param(name, PIXEL, default)


def V(name: str = "values") -> Param:
    return Param(name, PIXEL, variadic=True)


def _num(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x if x.dtype == np.float32 or x.dtype == np.float64 else x.astype(np.float32)
    return float(x)


# ------------------------------------------------------------------ elementary
def _elementwise(
    name: str, fn: Callable[[Any], Any], doc: str, aliases: tuple[str, ...] = ()
) -> None:
    def f(ctx: CallContext, x: Any) -> Any:
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return _num(fn(x))

    _spec(name, f, [P("x")], doc, aliases=aliases, example=f"{name}(0.5)")


_ELEMENTARY = [
    ("abs", np.abs, "Absolute value.", ()),
    ("acos", np.arccos, "Arc cosine (radians).", ()),
    ("acosh", np.arccosh, "Inverse hyperbolic cosine.", ()),
    ("asin", np.arcsin, "Arc sine (radians).", ()),
    ("asinh", np.arcsinh, "Inverse hyperbolic sine.", ()),
    ("atanh", np.arctanh, "Inverse hyperbolic tangent.", ()),
    ("ceil", np.ceil, "Smallest integer ≥ x.", ()),
    ("cos", np.cos, "Cosine (radians).", ()),
    ("cosh", np.cosh, "Hyperbolic cosine.", ()),
    ("exp", np.exp, "e to the power x.", ()),
    ("floor", np.floor, "Largest integer ≤ x.", ()),
    ("frac", lambda x: x - np.trunc(x), "Fractional part, in (−1, 1).", ()),
    ("ln", np.log, "Natural logarithm.", ()),
    ("log", np.log10, "Base-10 logarithm (PixelMath's log is base 10).", ("log10", "Log10", "Log")),
    ("log2", np.log2, "Base-2 logarithm.", ()),
    ("sign", np.sign, "−1, 0 or +1.", ()),
    ("sin", np.sin, "Sine (radians).", ()),
    ("sinh", np.sinh, "Hyperbolic sine.", ()),
    ("sqrt", np.sqrt, "Square root.", ()),
    ("tan", np.tan, "Tangent (radians).", ()),
    ("tanh", np.tanh, "Hyperbolic tangent.", ()),
    ("trunc", np.trunc, "Integer part (towards zero).", ()),
]
for _n, _f, _d, _a in _ELEMENTARY:
    _elementwise(_n, _f, _d, _a)


@builtin("atan", category=CAT, pixinsight="PixelMath", example="atan(1)")
def atan(y: Pixel, x: Pixel = 1.0) -> Pixel:
    """Arc tangent of y/x in radians, in the quadrant of (x, y): ``atan(y, x)`` (PixelMath has
    no atan2)."""
    return _num(np.arctan2(y, x))


@builtin("pi", category=CAT, pixinsight="PixelMath", example="pi()")
def pi() -> float:
    """The constant π."""
    return math.pi


@builtin("round", category=CAT, pixinsight="PixelMath", example="round(0.123456, 2)")
def round_(x: Pixel, n: Pixel = 0.0) -> Pixel:
    """Round to ``n`` decimal places (half away from zero)."""
    scale = 10.0 ** np.asarray(n)
    r = np.sign(x) * np.floor(np.abs(x) * scale + 0.5) / scale
    return _num(r)


# ------------------------------------------------------------------ statistics
def _image_stat(fn: Callable[[np.ndarray], float]) -> Callable[..., Any]:
    def form(img: np.ndarray, roi: tuple[int, ...] = ()) -> Any:
        if roi:
            x0, y0, w, h = roi
            if (
                w <= 0
                or h <= 0
                or x0 < 0
                or y0 < 0
                or x0 + w > img.shape[-1]
                or y0 + h > img.shape[-2]
            ):
                raise PxRuntimeError(
                    f"the region x0={x0}, y0={y0}, w={w}, h={h} is outside the {img.shape[-1]}x"
                    f"{img.shape[-2]} image"
                )
            img = img[..., y0 : y0 + h, x0 : x0 + w]
        if img.ndim == 3:
            return np.array([fn(c) for c in img], np.float64).reshape(3, 1, 1)
        return fn(img)

    return form


def _register_stats() -> None:
    from ..process import statistics as S

    table: list[
        tuple[str, tuple[str, ...], Callable[..., Any], Callable[[list], Any], int, str]
    ] = [
        ("mean", ("avg",), S.mean, S.stack_mean, 1, "Arithmetic mean."),
        (
            "med",
            ("median",),
            S.median,
            S.stack_median,
            3,
            "Median (the per-pixel form needs ≥ 3 values).",
        ),
        ("min", ("minimum",), S.minimum, lambda v: _reduce(np.minimum, v), 1, "Minimum."),
        ("max", ("maximum",), S.maximum, lambda v: _reduce(np.maximum, v), 1, "Maximum."),
        ("sdev", ("stdDev",), S.sdev, S.stack_sdev, 2, "Standard deviation (n−1)."),
        ("var", ("variance",), S.variance, S.stack_var, 2, "Variance (n−1)."),
        (
            "adev",
            (),
            S.adev,
            S.stack_adev,
            2,
            "Average absolute deviation from the median ×1.2533.",
        ),
        ("mdev", ("MAD", "medDev"), S.mdev, S.stack_mdev, 2, "Median absolute deviation ×1.4826."),
        ("bwmv", (), S.bwmv, S.stack_bwmv, 2, "Biweight midvariance."),
        ("pbmv", (), S.pbmv, S.stack_pbmv, 2, "Percentage bend midvariance (β = 0.2)."),
        ("Sn", (), S.sn, S.stack_sn, 2, "Rousseeuw–Croux Sn scale estimator ×1.1926."),
        ("Qn", (), S.qn, S.stack_qn, 2, "Rousseeuw–Croux Qn scale estimator ×2.2191."),
        (
            "mod",
            ("modulus",),
            S.modulus,
            lambda v: _reduce(lambda a, b: np.abs(a) + np.abs(b), v, abs_first=True),
            1,
            "Sum of absolute values (not a remainder: that is '%').",
        ),
        ("norm", (), S.norm, lambda v: _reduce(np.add, v), 1, "Sum of the values."),
        (
            "ssqr",
            (),
            S.ssqr,
            lambda v: _reduce(np.add, [np.square(x) for x in v]),
            1,
            "Sum of squares.",
        ),
        (
            "asqr",
            (),
            S.asqr,
            lambda v: _reduce(np.add, [np.square(x) for x in v]) / len(v),
            1,
            "Mean of squares.",
        ),
    ]
    for name, aliases, image_fn, stack_fn, min_n, doc in table:

        def fn(ctx: CallContext, *values: Any, _s=stack_fn, _n=min_n, _name=name) -> Any:
            if len(values) < _n:
                raise PxTypeError(f"{_name}() of single values needs at least {_n} arguments")
            return _num(_s(list(values)))

        params = [P("a"), V("values")]
        _spec(
            name,
            fn,
            params,
            f"{doc} ``{name}(image[, x0, y0, w, h])`` is the image statistic (per channel, "
            f"computed once); ``{name}(a, b, …)`` works per pixel.",
            aliases=aliases,
            image_form=_image_stat(image_fn),
            example=f"{name}(Ha)",
        )

    def ostat(ctx: CallContext, k: Any, *values: Any) -> Any:
        if not values:
            raise PxTypeError("ostat(k, a, b, …) needs values after k")
        return _num(S.stack_ostat(float(k), list(values)))

    _spec(
        "ostat",
        ostat,
        [P("k"), V()],
        "Order statistic: k in [0, 1] of the values (0.5 = median).",
        example="ostat(0.25, 0.1, 0.2, 0.3, 0.4, 0.5)",
    )

    def maxdev(ctx: CallContext, *values: Any) -> Any:
        if len(values) < 3:
            raise PxTypeError("maxdev(a, b, c, …) needs at least 3 values")
        return _num(S.stack_maxdev(list(values)))

    _spec(
        "maxdev",
        maxdev,
        [V()],
        "Largest absolute deviation of the values from their median.",
        example="maxdev(0.1, 0.2, 0.9)",
    )

    def sum_(ctx: CallContext, *values: Any) -> Any:
        if len(values) < 2:
            raise PxTypeError("sum(a, b, …) needs at least 2 values")
        return _num(_reduce(np.add, list(values)))

    _spec("sum", sum_, [V()], "Sum of the values, per pixel.", example="sum(0.1, 0.2)")


def _reduce(fn: Callable[[Any, Any], Any], values: list[Any], abs_first: bool = False) -> Any:
    acc = np.abs(values[0]) if abs_first else values[0]
    for v in values[1:]:
        acc = fn(acc, v) if not abs_first else acc + np.abs(v)
    return acc


_register_stats()


# ------------------------------------------------------------------ conditionals, clamping
def _never(ctx: CallContext, *args: Any) -> Any:  # pragma: no cover - handled by the evaluator
    raise PxRuntimeError("internal: lazy form reached a direct call")


_spec(
    "iif",
    _never,
    [P("condition"), P("if_true"), P("if_false")],
    "Conditional: ``if_true`` where ``condition`` is nonzero, else ``if_false``. Only the "
    "branch needed is evaluated.",
    special="iif",
    example="iif(Ha > 0.5, Ha, 0)",
)
_spec(
    "iswitch",
    _never,
    [P("c1"), P("e1"), V("more")],
    "``iswitch(c1, e1[, c2, e2 …], default)``: the first ``e`` whose ``c`` is nonzero, else the "
    "default.",
    special="iswitch",
    example="iswitch(Ha < 0.1, 0, Ha < 0.5, 0.5, 1)",
)


@builtin("range", category=CAT, pixinsight="PixelMath", example="range(Ha, 0.1, 0.9)")
def range_(x: Pixel, a: Pixel, b: Pixel) -> Pixel:
    """Clamp ``x`` to ``[a, b]``."""
    return _num(np.minimum(np.maximum(x, a), b))


@builtin("rescale", category=CAT, pixinsight="PixelMath", example="rescale(Ha, 0.1, 0.6)")
def rescale(x: Pixel, a: Pixel, b: Pixel) -> Pixel:
    """``(x − a)/(b − a)`` clamped to [0, 1]; a and b are swapped if b < a; 0 if b ≈ a."""
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    d = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(d > 1e-15, (x - lo) / np.where(d > 1e-15, d, 1), 0.0)
    return _num(np.clip(r, 0, 1))


def mtf_array(m: Any, x: Any) -> Any:
    """PixInsight's midtones transfer function (0 at x ≤ 0, 1 at x ≥ 1)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (m - 1) * x / ((2 * m - 1) * x - m)
    r = np.where(x <= 0, 0.0, np.where(x >= 1, 1.0, r))
    return _num(r)


@builtin(
    "mtf", category=CAT, pixinsight="PixelMath / HistogramTransformation", example="mtf(0.25, Ha)"
)
def mtf(m: Pixel, x: Pixel) -> Pixel:
    """Midtones transfer: ``(m−1)x / ((2m−1)x − m)``; ``mtf(m, m) = 0.5``, ``mtf(0.5, x) = x``."""
    return mtf_array(m, x)


# ------------------------------------------------------------------ geometry / coordinates
def _grid(ctx: CallContext) -> tuple[np.ndarray, np.ndarray]:
    g = ctx.pixel
    if g is None:
        raise PxRuntimeError("coordinates need an image to evaluate over")
    y = np.arange(g.r0, g.r1, dtype=np.float32)[:, None]
    x = np.arange(g.width, dtype=np.float32)[None, :]
    shape = (g.r1 - g.r0, g.width)
    return np.broadcast_to(x, shape), np.broadcast_to(y, shape)


def _coord(
    name: str, fn: Callable[[CallContext], Any], doc: str, aliases: tuple[str, ...] = ()
) -> None:
    _spec(
        name,
        lambda ctx: fn(ctx),
        [],
        doc,
        aliases=aliases,
        varying="geometry",
        example=f"Ha * {name}()",
    )


_coord(
    "x", lambda c: np.array(_grid(c)[0]), "Column of the current pixel (0 … width−1).", ("xpos",)
)
_coord("y", lambda c: np.array(_grid(c)[1]), "Row of the current pixel (0 … height−1).", ("ypos",))
_coord(
    "X",
    lambda c: np.array(_grid(c)[0]) / max(1, c.pixel.width - 1),
    "Normalised column: 0 at the left, 1 at the right.",
)
_coord(
    "Y",
    lambda c: np.array(_grid(c)[1]) / max(1, c.pixel.height - 1),
    "Normalised row: 0 at the top, 1 at the bottom.",
)


def _dim(
    name: str, fn: Callable[[int, int, int], float], doc: str, aliases: tuple[str, ...] = ()
) -> None:
    def call(ctx: CallContext, image: Any = None) -> float:
        g = ctx.pixel
        if g is None:
            raise PxRuntimeError(f"{name}() without an image needs a target")
        return fn(g.width, g.height, g.channels)

    def form(img: np.ndarray, roi: tuple[int, ...] = ()) -> float:
        return fn(img.shape[-1], img.shape[-2], 3 if img.ndim == 3 else 1)

    _spec(
        name,
        call,
        [Param("image", "image", None)],
        doc + f" ``{name}()`` is the target's; ``{name}(image)`` another image's.",
        aliases=aliases,
        image_form=form,
        varying="geometry",
        example=f"{name}(Ha)",
    )


_dim("width", lambda w, h, c: float(w), "Width in pixels.", ("w",))
_dim("height", lambda w, h, c: float(h), "Height in pixels.", ("h",))
_dim("area", lambda w, h, c: float(w * h), "Width × height.")
_dim("invarea", lambda w, h, c: 1.0 / (w * h), "1 / (width × height).")
_dim("channels", lambda w, h, c: float(c), "Number of channels (1 or 3).", ("n",))
_dim("iscolor", lambda w, h, c: float(c == 3), "1 for a colour image, else 0.")


def _centre(ctx: CallContext, xc: Any, yc: Any) -> tuple[Any, Any]:
    # PixInsight's default centre is (width/2, height/2), not the central pixel
    g = ctx.pixel
    return (g.width / 2 if xc is None else xc), (g.height / 2 if yc is None else yc)


def rdist(ctx: CallContext, xc: Any = None, yc: Any = None) -> Any:
    x, y = _grid(ctx)
    cx, cy = _centre(ctx, xc, yc)
    return np.hypot(x - cx, y - cy).astype(np.float32)


def pangle(ctx: CallContext, xc: Any = None, yc: Any = None) -> Any:
    x, y = _grid(ctx)
    cx, cy = _centre(ctx, xc, yc)
    a = np.arctan2(y - cy, x - cx)
    return np.where(a < 0, a + 2 * np.pi, a).astype(np.float32)


_spec(
    "rdist",
    rdist,
    [P("xc", None), P("yc", None)],
    "Distance from the current pixel to (xc, yc), default the image centre.",
    aliases=("r",),
    varying="geometry",
    example="iif(rdist() < 20, Ha, 0)",
)
_spec(
    "pangle",
    pangle,
    [P("xc", None), P("yc", None)],
    "Polar angle (radians, [0, 2π)) of the current pixel about (xc, yc), default the centre.",
    aliases=("a",),
    varying="geometry",
    example="Ha * pangle() / (2*pi())",
)


def _line(ctx: CallContext, x1: Any, y1: Any, x2: Any, y2: Any) -> tuple[Any, ...]:
    x, y = _grid(ctx)
    dx, dy = x2 - x1, y2 - y1
    L2 = dx * dx + dy * dy
    if np.any(np.asarray(L2) == 0):
        raise PxRuntimeError("the two points of a line must differ")
    t = ((x - x1) * dx + (y - y1) * dy) / L2
    return x, y, t, dx, dy


def d2line(ctx: CallContext, x1: Any, y1: Any, x2: Any, y2: Any) -> Any:
    x, y, t, dx, dy = _line(ctx, x1, y1, x2, y2)
    return np.hypot(x - (x1 + t * dx), y - (y1 + t * dy)).astype(np.float32)


def d2seg(ctx: CallContext, x1: Any, y1: Any, x2: Any, y2: Any) -> Any:
    x, y, t, dx, dy = _line(ctx, x1, y1, x2, y2)
    t = np.clip(t, 0, 1)
    return np.hypot(x - (x1 + t * dx), y - (y1 + t * dy)).astype(np.float32)


def xperp2line(ctx: CallContext, x1: Any, y1: Any, x2: Any, y2: Any) -> Any:
    x, y, t, dx, dy = _line(ctx, x1, y1, x2, y2)
    return (x1 + t * dx).astype(np.float32)


def yperp2line(ctx: CallContext, x1: Any, y1: Any, x2: Any, y2: Any) -> Any:
    x, y, t, dx, dy = _line(ctx, x1, y1, x2, y2)
    return (y1 + t * dy).astype(np.float32)


for _name, _fn, _doc in [
    ("d2line", d2line, "Distance to the line through (x1, y1) and (x2, y2)."),
    ("d2seg", d2seg, "Distance to the segment from (x1, y1) to (x2, y2)."),
    ("xperp2line", xperp2line, "x of the foot of the perpendicular to the line."),
    ("yperp2line", yperp2line, "y of the foot of the perpendicular to the line."),
]:
    _spec(
        _name,
        _fn,
        [P("x1"), P("y1"), P("x2"), P("y2")],
        _doc,
        varying="geometry",
        example=f"iif({_name}(0, 0, 10, 10) < 5, Ha, 0)",
    )


def inrect(ctx: CallContext, x0: Any, y0: Any, w: Any, h: Any) -> Any:
    x, y = _grid(ctx)
    return ((x >= x0) & (x < x0 + w) & (y >= y0) & (y < y0 + h)).astype(np.float32)


def mind2rect(ctx: CallContext, x0: Any, y0: Any, w: Any, h: Any) -> Any:
    x, y = _grid(ctx)
    inside = (x >= x0) & (x < x0 + w) & (y >= y0) & (y < y0 + h)
    d = np.minimum(np.minimum(x - x0, x0 + w - 1 - x), np.minimum(y - y0, y0 + h - 1 - y))
    return np.where(inside, d, -1).astype(np.float32)


def maxd2rect(ctx: CallContext, x0: Any, y0: Any, w: Any, h: Any) -> Any:
    x, y = _grid(ctx)
    inside = (x >= x0) & (x < x0 + w) & (y >= y0) & (y < y0 + h)
    d = np.maximum(np.maximum(x - x0, x0 + w - 1 - x), np.maximum(y - y0, y0 + h - 1 - y))
    return np.where(inside, d, -1).astype(np.float32)


def inellipse(ctx: CallContext, xc: Any, yc: Any, rx: Any, ry: Any) -> Any:
    x, y = _grid(ctx)
    return ((((x - xc) / rx) ** 2 + ((y - yc) / ry) ** 2) <= 1).astype(np.float32)


for _name, _fn, _doc, _p in [
    ("inrect", inrect, "1 inside the rectangle (x0, y0, w, h), else 0.", ("x0", "y0", "w", "h")),
    (
        "mind2rect",
        mind2rect,
        "Distance to the nearest side of the rectangle inside it, −1 outside.",
        ("x0", "y0", "w", "h"),
    ),
    (
        "maxd2rect",
        maxd2rect,
        "Distance to the farthest side of the rectangle inside it, −1 outside.",
        ("x0", "y0", "w", "h"),
    ),
    (
        "inellipse",
        inellipse,
        "1 inside the ellipse centred (xc, yc) with radii rx, ry, else 0.",
        ("xc", "yc", "rx", "ry"),
    ),
]:
    _spec(
        _name,
        _fn,
        [P(n) for n in _p],
        _doc,
        varying="geometry",
        example=f"Ha * {_name}(10, 10, 20, 20)",
    )


def pixel(ctx: CallContext, img: Any, x: Any, y: Any, c: Any = None) -> Any:
    """Value of image ``img`` at (x, y[, c]): coordinates are truncated to integers, as
    PixInsight does; 0 outside the image."""
    arr = np.asarray(getattr(img, "pixels", img), np.float32)
    xi = np.trunc(np.asarray(x)).astype(np.int64)
    yi = np.trunc(np.asarray(y)).astype(np.int64)
    h, w = arr.shape[-2:]
    inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    xs, ys = np.clip(xi, 0, w - 1), np.clip(yi, 0, h - 1)
    if arr.ndim == 3:
        if c is None:
            g = ctx.pixel
            ci = g.channel if g is not None and g.channel is not None else 0
        else:
            ci = int(np.asarray(c).flat[0])
        if not 0 <= ci < 3:
            raise PxRuntimeError(f"Channel index out of range: {ci}")
        vals = arr[ci][ys, xs]
    else:
        if c is not None and int(np.asarray(c).flat[0]) != 0:
            raise PxRuntimeError("Channel index out of range: a mono image has channel 0 only")
        vals = arr[ys, xs]
    r = np.where(inside, vals, 0)
    return float(r) if np.ndim(r) == 0 else r.astype(np.float32)


_spec(
    "pixel",
    pixel,
    [Param("img", "image"), P("x"), P("y"), P("c", None)],
    "The value of an image at pixel (x, y[, channel]) (coordinates truncated); 0 outside.",
    aliases=("p",),
    example="pixel(Ha, 10, 20)",
)


# ------------------------------------------------------------------ colour components
def _rgb(v: Any) -> np.ndarray:
    a = np.asarray(v, np.float32)
    if a.ndim >= 1 and a.shape[0] == 3 and a.ndim in (1, 3):
        return a
    return np.stack([a, a, a])  # grey: R = G = B


def _component(
    name: str, conv: str, index: int | None, doc: str, post: Callable[[Any], Any] | None = None
) -> None:
    def fn(ctx: CallContext, img: Any) -> Any:
        from ..process import color

        rgb = _rgb(img)
        if conv == "none":
            out = post(rgb)
        else:
            out = getattr(color, conv)(rgb)[index]
            if post is not None:
                out = post(out)
        return _num(out)

    _spec(name, fn, [P("image")], doc, rgb_args=True, example=f"{name}(RGB)")


_component("CIEL", "rgb_to_lab", 0, "CIE L* of the current pixel, normalised to [0, 1].")
_component("CIEa", "rgb_to_lab", 1, "CIE a* of the current pixel, normalised to [0, 1].")
_component("CIEb", "rgb_to_lab", 2, "CIE b* of the current pixel, normalised to [0, 1].")
_component("CIEc", "rgb_to_lch", 1, "CIE c* (chroma) of the current pixel, normalised.")
_component("CIEh", "rgb_to_lch", 2, "CIE h* (hue) of the current pixel, normalised to [0, 1).")
_component("CIEhr", "rgb_to_lch", 2, "CIE h* in radians.", post=lambda h: h * 2 * np.pi)
_component("CIEhd", "rgb_to_lch", 2, "CIE h* in degrees.", post=lambda h: h * 360)
_component("CIEX", "rgb_to_xyz", 0, "CIE X of the current pixel.")
_component("CIEY", "rgb_to_xyz", 1, "CIE Y of the current pixel.")
_component("CIEZ", "rgb_to_xyz", 2, "CIE Z of the current pixel.")
_component("H", "rgb_to_hsv", 0, "Hue (HSV/HSI), normalised to [0, 1).")
_component("Hr", "rgb_to_hsv", 0, "Hue in radians.", post=lambda h: h * 2 * np.pi)
_component("Hd", "rgb_to_hsv", 0, "Hue in degrees.", post=lambda h: h * 360)
_component("Sv", "rgb_to_hsv", 1, "HSV saturation.")
_component("V", "rgb_to_hsv", 2, "HSV value (max of R, G, B).")
_component("Si", "rgb_to_hsi", 1, "HSI saturation.")
_component("I", "rgb_to_hsi", 2, "HSI intensity (mean of R, G, B).")
_component("maxsample", "none", None, "Largest of R, G, B.", post=lambda rgb: rgb.max(axis=0))
_component("minsample", "none", None, "Smallest of R, G, B.", post=lambda rgb: rgb.min(axis=0))


# ------------------------------------------------------------------ random
def _rng(ctx: CallContext) -> np.random.Generator:
    if ctx.rng is None:
        ctx.rng = np.random.default_rng(ctx.rng_seed)
    return ctx.rng


def _shape(ctx: CallContext) -> tuple[int, ...]:
    g = ctx.pixel
    if g is None:
        return ()
    return g.shape if g.channel is None else (g.r1 - g.r0, g.width)


def _random_spec(
    name: str,
    fn: Callable[..., Any],
    params: list[Param],
    doc: str,
    aliases: tuple[str, ...] = (),
    example: str | None = None,
) -> None:
    def call(ctx: CallContext, *args: Any) -> Any:
        r = fn(_rng(ctx), _shape(ctx), *args)
        return float(r) if np.ndim(r) == 0 else np.asarray(r, np.float32)

    _spec(
        name,
        call,
        params,
        doc + " Seeded by ``--seed`` / ``seed=``.",
        aliases=aliases,
        varying="random",
        example=example or f"Ha + {name}()*0.01",
    )


_random_spec("random", lambda g, s: g.random(s), [], "Uniform random number in [0, 1).", ("rnd",))
_random_spec("gauss", lambda g, s: g.standard_normal(s), [], "Normal random number, mean 0, σ 1.")
_random_spec(
    "poisson",
    lambda g, s, x: g.poisson(np.broadcast_to(np.asarray(x, np.float64), s) if s else x, s or None),
    [P("x")],
    "Poisson random number of mean x (in DN).",
    example="poisson(Ha*1000)/1000",
)
_random_spec(
    "gamma",
    lambda g, s, k, t=1.0: g.gamma(k, t, s or None),
    [P("k"), P("t", 1.0)],
    "Gamma-distributed random number, shape k, scale t.",
    example="Ha + gamma(2)*0.01",
)
_random_spec(
    "chisq",
    lambda g, s, k: g.chisquare(k, s or None),
    [P("k")],
    "Chi-squared random number with k degrees of freedom.",
    example="Ha + chisq(3)*0.01",
)
_random_spec(
    "studentt",
    lambda g, s, n: g.standard_t(n, s or None),
    [P("n")],
    "Student's t random number with n degrees of freedom.",
    example="Ha + studentt(5)*0.01",
)


def _rndselect(g: np.random.Generator, s: tuple[int, ...], *values: Any) -> Any:
    if not values:
        raise PxTypeError("rndselect(a, b, …) needs values")
    idx = g.integers(0, len(values), s or None)
    if not s:
        return values[int(idx)]
    stack = np.stack([np.broadcast_to(np.asarray(v, np.float32), s) for v in values])
    return np.take_along_axis(stack, idx[None], axis=0)[0]


_random_spec(
    "rndselect",
    _rndselect,
    [V()],
    "One of the values, chosen at random.",
    example="rndselect(Ha, OIII, SII)",
)


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


@builtin("normalize", category=CAT, pixinsight="PixelMath normalize / LocalNormalization",
         example="normalize(Ha)")
def normalize(ctx: CallContext, img: Image | FrameSet, a: float = 0.0, b: float = 1.0,
              reference: Any = "best", method: str = "local", scale: int = 128) -> Any:
    """Of an image: PixelMath's linear map of its range onto [a, b]. Of a frame set
    (registered lights): LocalNormalization against ``reference`` ("best", a frame number, a
    file or an image) at ``scale`` pixels — see ``localnormalization``."""
    if isinstance(img, (FrameSet, list)):
        from .lights import normalize as local_normalization

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


@builtin("combine", category=CAT, pixinsight="PixelMath", example="combine(Ha, OIII, op_screen())")
def combine(img1: Image, img2: Image, op: str) -> Image:
    """Blend two images with an operator: ``op_add()``, ``op_screen()``, ``op_overlay()`` …"""
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
