"""PixelMath's per-pixel functions of where a pixel is and what else is around: coordinates
and image dimensions, distances to lines and shapes, ``pixel()``, colour components (CIE,
HSV, HSI) and seeded random numbers. Registered like the rest of ``pixelmath.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..lang.errors import PxRuntimeError, PxTypeError
from ..lang.functions import CallContext, Param
from .pixelmath import P, V, _num, _spec


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
