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
