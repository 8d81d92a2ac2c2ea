"""PixelMath semantics, case by case, against hand-computed values.

Every expected value below was worked out by hand from the definitions in
``../shared/domain/pixelmath-reference.md`` (and, where the reference is silent, PixInsight's
PCL PixelMath source it was established from); none is computed by numpy from the same
expression. Images are tiny and hold values chosen so the arithmetic is easy to follow.

Cases where pxlang disagrees with the reference are kept and marked ``xfail(strict=True)``
with the reason "BUG: …", so they turn into failures the moment pxlang is fixed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import pxlang
from pxlang.api import pixelmath_result

# ---------------------------------------------------------------------------------- images
# A: 3 rows x 4 columns, mono, values easy to reason about (float32, so 0.1 means 0.1f).
A = np.array(
    [[0.1, 0.2, 0.3, 0.4],
     [0.5, 0.6, 0.7, 0.8],
     [0.9, 1.0, 0.0, 0.25]], np.float32)  # fmt: skip
# B: constant 0.5, same geometry.
B = np.full((3, 4), 0.5, np.float32)
# E: exactly representable (dyadic) values, for integer truncation and fmod.
E = np.array(
    [[0.0, 0.25, 0.5, 0.75],
     [1.0, 0.125, 0.375, 0.625],
     [0.875, 0.0625, 0.1875, 0.3125]], np.float32)  # fmt: skip
# N: A - 0.5 (negative values), as a float image.
N = np.array(
    [[-0.4, -0.3, -0.2, -0.1],
     [0.0, 0.1, 0.2, 0.3],
     [0.4, 0.5, -0.5, -0.25]], np.float32)  # fmt: skip
# C: RGB, R = A, G = 0.2 everywhere, B = 0.6 everywhere.
C = np.stack([A, np.full((3, 4), 0.2, np.float32), np.full((3, 4), 0.6, np.float32)])
# G4: grey 0.4.
G4 = np.full((3, 4), 0.4, np.float32)
# P: one row of three RGB pixels: pure red, pure green, pure blue.
P = np.zeros((3, 1, 3), np.float32)
P[0, 0, 0] = P[1, 0, 1] = P[2, 0, 2] = 1.0
# K: one row of two RGB pixels: black, white.
K = np.zeros((3, 1, 2), np.float32)
K[:, 0, 1] = 1.0
# D5: one bright pixel in the centre of a 5x5 black frame; H5: a hot pixel on a 0.2 frame.
D5 = np.zeros((5, 5), np.float32)
D5[2, 2] = 1.0
H5 = np.full((5, 5), 0.2, np.float32)
H5[2, 2] = 0.9
F5 = np.full((5, 5), 0.3, np.float32)
# Q: 2x2 for rotations.
Q = np.array([[0.1, 0.2], [0.3, 0.4]], np.float32)

IMAGES = {
    "A": A,
    "B": B,
    "E": E,
    "N": N,
    "C": C,
    "G4": G4,
    "P": P,
    "K": K,
    "D5": D5,
    "H5": H5,
    "F5": F5,
    "Q": Q,
}


def pm(expr: str, *channels: str, **kw):
    kw.setdefault("images", IMAGES)
    return pxlang.pixelmath(expr, *channels, **kw)


# ------------------------------------------------------------------ scalar expressions
# (id, expression, hand-computed value) - evaluated with truncate=False so that values
# outside [0, 1] show; truncation itself is tested separately below.
SCALAR = [
    # level 1: unary
    ("invert", "~0.25", 0.75),
    ("invert-then-power", "~0.25^2", 0.5625),  # (1-0.25)^2
    ("neg-then-power", "-0.5^2", 0.25),  # (-0.5)^2: unary binds tighter than ^
    ("neg2-squared", "-2^2", 4.0),
    ("unary-plus", "+0.3", 0.3),
    ("not-zero", "!0", 1.0),
    ("not-nonzero", "!0.3", 0.0),
    ("not-negative", "!-1", 0.0),
    ("not-binds-tighter-than-plus", "!0+1", 2.0),
    ("not-of-group", "!(0+1)", 0.0),
    ("invert-then-plus", "~1+1", 1.0),
    # level 2: power, left-associative
    ("pow-left-assoc", "2^3^2", 64.0),
    ("pow-negative-exponent", "2^-1", 0.5),
    ("pow-neg-exp-left-assoc", "2^-2^2", 0.0625),  # (2^-2)^2
    ("pow-fraction", "4^0.5", 2.0),
    # level 3
    ("mul", "0.5*0.25", 0.125),
    ("div", "0.75/3", 0.25),
    ("div-left-assoc", "8/4/2", 1.0),
    ("fmod", "7%3", 1.0),
    ("fmod-sign-of-x", "-7%3", -1.0),
    ("fmod-negative-divisor", "7%-3", 1.0),
    ("fmod-fraction", "5.5%2", 1.5),
    ("fmod-by-zero", "1%0", 0.0),
    ("mul-then-mod", "2*3%4", 2.0),
    ("mod-then-mul", "7%4*2", 6.0),
    ("div-by-small-not-eps", "1/1e-15", 1e15),
    # level 4
    ("add", "0.25+0.5", 0.75),
    ("sub-left-assoc", "2-1-1", 0.0),
    ("absdiff", "0.2--0.5", 0.3),
    ("absdiff-reversed", "0.5--0.2", 0.3),
    ("absdiff-chain", "1--2--4", 3.0),  # ||1-2|-4|
    ("sub-then-absdiff", "1-2--3", 4.0),  # |(1-2)-3|
    ("absdiff-then-sub", "1--2-3", -2.0),  # |1-2|-3
    # precedence between levels 2-4
    ("mul-before-add", "1+2*3", 7.0),
    ("group", "(1+2)*3", 9.0),
    ("brace-group", "{1+1}*2", 4.0),
    ("pow-before-mul", "2*3^2", 18.0),
    ("neg-pow-mul", "-2^2*2", 8.0),
    # levels 6, 7: relational and equality give 0/1
    ("lt-true", "0.3<0.5", 1.0),
    ("lt-false", "0.5<0.3", 0.0),
    ("le-equal", "0.5<=0.5", 1.0),
    ("ge-false", "0.6>=0.7", 0.0),
    ("gt-true", "0.7>0.6", 1.0),
    ("eq-true", "0.5==0.5", 1.0),
    ("ne-false", "0.5!=0.5", 0.0),
    ("ne-true", "0.4!=0.5", 1.0),
    ("rel-before-eq", "1<2==1", 1.0),
    ("eq-after-rel", "2==2<1", 0.0),  # 2 == (2<1)
    ("add-before-eq", "0.5+0.5==1", 1.0),
    # levels 8-10: bitwise on truncated (signed) integers
    ("and", "6&3", 2.0),
    ("nand", "6!&3", -3.0),  # ~(6&3) = ~2
    ("xor", "6&|3", 5.0),
    ("xnor", "6!&|3", -6.0),  # ~(6^3) = ~5
    ("or", "6|3", 7.0),
    ("nor", "6!|3", -8.0),  # ~(6|3) = ~7
    ("and-truncates", "6.9&3.2", 2.0),
    ("and-truncates-toward-zero", "-6.5&7", 2.0),  # trunc -> -6 = ...11010
    ("caret-is-not-xor", "2^3", 8.0),
    ("and-before-or", "3&1|4", 5.0),
    ("xor-before-or", "1|2&|3", 1.0),  # 1|(2^3)
    ("and-before-xor", "6&3&|1", 3.0),  # (6&3)^1
    ("ne-before-xor", "5&|1!=0", 4.0),  # 5 ^ (1!=0)
    # levels 11, 12: logical
    ("land-false", "0&&1", 0.0),
    ("land-true", "0.2&&0.1", 1.0),
    ("lor-false", "0||0", 0.0),
    ("lor-true", "0||0.4", 1.0),
    ("land-negative-is-true", "-1&&2", 1.0),
    ("rel-before-land", "1+2<4&&3>2", 1.0),
    ("land-before-lor", "0||1&&0", 0.0),
    ("land-before-lor-2", "1||0&&0", 1.0),
    ("bor-before-land", "1&&2|4", 1.0),
    # lexical: comments, statements
    ("block-comment", "1 + /* two */ 2", 3.0),
    ("line-comment", "0.5 // a half", 0.5),
    ("statements-last-wins", "1; 2; 0.25", 0.25),
    # elementary functions
    ("log-is-base-10", "log(1000)", 3.0),
    ("log10", "log10(0.01)", -2.0),
    ("Log10-alias", "Log10(100)", 2.0),
    ("Log-alias", "Log(10)", 1.0),
    ("ln", "ln(10)", 2.302585092994046),
    ("ln-1", "ln(1)", 0.0),
    ("log2", "log2(8)", 3.0),
    ("exp", "exp(1)", 2.718281828459045),
    ("sqrt", "sqrt(0.25)", 0.5),
    ("abs", "abs(-0.3)", 0.3),
    ("atan-1", "atan(1)", math.pi / 4),
    ("atan-y-x-q2", "atan(1, -1)", 3 * math.pi / 4),
    ("atan-y-x-q3", "atan(-1, -1)", -3 * math.pi / 4),
    ("atan-y-x-zero", "atan(0, 1)", 0.0),
    ("round", "round(2.7)", 3.0),
    ("round-negative", "round(-2.7)", -3.0),
    ("round-n", "round(1.2345, 2)", 1.23),
    ("round-n-up", "round(0.987, 1)", 1.0),
    ("frac", "frac(2.75)", 0.75),
    ("frac-negative", "frac(-2.75)", -0.75),
    ("sign-negative", "sign(-3)", -1.0),
    ("sign-zero", "sign(0)", 0.0),
    ("sign-positive", "sign(0.2)", 1.0),
    ("trunc", "trunc(-2.7)", -2.0),
    ("floor", "floor(-2.5)", -3.0),
    ("ceil", "ceil(-2.5)", -2.0),
    ("pi", "pi()", math.pi),
    ("cos-pi", "cos(pi())", -1.0),
    ("sin-half-pi", "sin(pi()/2)", 1.0),
    ("tan-0", "tan(0)", 0.0),
    ("asin-1", "asin(1)", math.pi / 2),
    ("acos-minus-1", "acos(-1)", math.pi),
    ("sinh-1", "sinh(1)", 1.1752011936438014),
    ("cosh-1", "cosh(1)", 1.5430806348152437),
    ("tanh-half", "tanh(0.5)", 0.46211715726000974),
    ("asinh-1", "asinh(1)", 0.881373587019543),
    ("acosh-2", "acosh(2)", 1.3169578969248166),
    ("atanh-half", "atanh(0.5)", 0.5493061443340549),
    # statistics, per-value (variadic) form
    ("max-values", "max(0.1, 0.5, 0.3)", 0.5),
    ("min-values", "min(0.1, 0.5, 0.3)", 0.1),
    ("med-3", "med(0.1, 0.9, 0.4)", 0.4),
    ("median-alias-5", "median(5, 1, 4, 2, 3)", 3.0),
    ("mean-values", "mean(1, 2, 3, 6)", 3.0),
    ("avg-alias", "avg(0.2, 0.4)", 0.3),
    ("sdev-values", "sdev(1, 2, 3, 4)", 1.2909944487358056),  # sqrt(5/3)
    ("var-values", "var(1, 2, 3, 4)", 5 / 3),
    ("mdev-is-mad-x1.4826", "mdev(1, 2, 3, 4, 100)", 1.4826),  # median |x-3| = 1
    ("MAD-alias", "MAD(0, 1, 2)", 1.4826),
    ("adev-x1.2533", "adev(1, 2, 3)", 2 / 3 * 1.2533),
    ("mod-is-sum-of-abs", "mod(-1, 2, -3)", 6.0),
    ("norm-is-sum", "norm(1, 2, -3)", 0.0),
    ("ssqr", "ssqr(1, 2, 3)", 14.0),
    ("asqr", "asqr(1, 2, 3)", 14 / 3),
    ("ostat-median", "ostat(0.5, 5, 1, 3)", 3.0),
    ("ostat-min", "ostat(0, 5, 1, 3)", 1.0),
    ("ostat-max", "ostat(1, 5, 1, 3)", 5.0),
    ("sum", "sum(1, 2, 3)", 6.0),
    ("sum-2", "sum(0.25, 0.5)", 0.75),
    # conditionals and clamping
    ("iif-true", "iif(1, 0.2, 0.3)", 0.2),
    ("iif-false", "iif(0, 0.2, 0.3)", 0.3),
    ("iif-negative-is-true", "iif(-1, 0.2, 0.3)", 0.2),
    ("iswitch-second", "iswitch(0, 0.1, 1, 0.2, 0.3)", 0.2),
    ("iswitch-default", "iswitch(0, 0.1, 0, 0.2, 0.3)", 0.3),
    ("iswitch-first-wins", "iswitch(1, 0.1, 1, 0.2, 0.3)", 0.1),
    ("range-above", "range(1.5, 0, 1)", 1.0),
    ("range-below", "range(-1, 0.2, 0.8)", 0.2),
    ("range-inside", "range(0.5, 0.2, 0.8)", 0.5),
    ("rescale-mid", "rescale(0.5, 0.25, 0.75)", 0.5),
    ("rescale-swapped-bounds", "rescale(0.3, 0.75, 0.25)", 0.1),
    ("rescale-equal-bounds", "rescale(0.5, 0.5, 0.5)", 0.0),
    ("rescale-nearly-equal-bounds", "rescale(0.5, 0.3, 0.3+1e-18)", 0.0),
    ("rescale-clamps-high", "rescale(2, 0, 1)", 1.0),
    ("rescale-clamps-low", "rescale(-1, 0, 1)", 0.0),
    ("mtf-m-m", "mtf(0.3, 0.3)", 0.5),
    ("mtf-half-identity", "mtf(0.5, 0.37)", 0.37),
    ("mtf-quarter", "mtf(0.25, 0.5)", 0.75),  # (-0.75*0.5)/((-0.5)*0.5-0.25)
    ("mtf-tenth", "mtf(0.1, 0.5)", 0.9),  # (-0.9*0.5)/((-0.8)*0.5-0.1)
    ("mtf-inverse", "mtf(~0.25, mtf(0.25, 0.4))", 0.4),
    ("mtf-zero", "mtf(0.2, 0)", 0.0),
    ("mtf-one", "mtf(0.2, 1)", 1.0),
    ("mtf-below-zero", "mtf(0.2, -1)", 0.0),
    ("mtf-above-one", "mtf(0.2, 2)", 1.0),
]


@pytest.mark.parametrize("expr,expected", [pytest.param(e, v, id=i) for i, e, v in SCALAR])
def test_scalar_expression(expr: str, expected: float) -> None:
    got = pxlang.pixelmath(expr, truncate=False)
    assert isinstance(got, float)
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-9)


# invariant expressions keep the default truncation to [0, 1]
TRUNCATED_SCALAR = [
    ("pow-64-truncated", "2^3^2", 1.0),
    ("negative-truncated", "0.2-0.5", 0.0),
    ("inside-kept", "0.25+0.5", 0.75),
    ("div-by-zero-huge-truncated", "1/0", 1.0),
    ("div-by-tiny-huge-truncated", "0.5/1e-17", 1.0),
    ("neg-div-by-zero-is-plus-max", "-1/0", 1.0),  # the code returns +DBL_MAX
    ("nand-negative-truncated", "6!&3", 0.0),
]


@pytest.mark.parametrize(
    "expr,expected", [pytest.param(e, v, id=i) for i, e, v in TRUNCATED_SCALAR]
)
def test_scalar_truncated_by_default(expr: str, expected: float) -> None:
    assert pxlang.pixelmath(expr) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("expr", ["1/0", "0.5/1e-17", "1/(0.25-0.25)"])
def test_division_by_about_zero_is_huge_without_truncation(expr: str) -> None:
    assert pxlang.pixelmath(expr, truncate=False) > 1e30


# ------------------------------------------------------------------ image expressions
# (id, expression, hand-computed array, keyword arguments)
IMAGE = [
    # operators over an image
    ("image-identity", "A", A, {}),
    (
        "image-invert",
        "~E",
        [[1, 0.75, 0.5, 0.25], [0, 0.875, 0.625, 0.375], [0.125, 0.9375, 0.8125, 0.6875]],
        {},
    ),
    (
        "image-neg-untruncated",
        "-E",
        [
            [0, -0.25, -0.5, -0.75],
            [-1, -0.125, -0.375, -0.625],
            [-0.875, -0.0625, -0.1875, -0.3125],
        ],
        {"truncate": False},
    ),
    ("image-neg-truncated", "-E", np.zeros((3, 4)), {}),
    (
        "image-square",
        "E^2",
        [
            [0, 0.0625, 0.25, 0.5625],
            [1, 0.015625, 0.140625, 0.390625],
            [0.765625, 0.00390625, 0.03515625, 0.09765625],
        ],
        {},
    ),
    ("image-times-2-truncated", "A*2", [[0.2, 0.4, 0.6, 0.8], [1, 1, 1, 1], [1, 1, 0, 0.5]], {}),
    (
        "image-minus-half-truncated",
        "A-0.5",
        [[0, 0, 0, 0], [0, 0.1, 0.2, 0.3], [0.4, 0.5, 0, 0]],
        {},
    ),
    (
        "image-absdiff",
        "E--0.5",
        [[0.5, 0.25, 0, 0.25], [0.5, 0.375, 0.125, 0.125], [0.375, 0.4375, 0.3125, 0.1875]],
        {},
    ),
    (
        "image-div-with-zero-pixel",
        "0.1/A",
        [[1, 0.5, 1 / 3, 0.25], [0.2, 1 / 6, 1 / 7, 0.125], [1 / 9, 0.1, 1, 0.4]],
        {},
    ),
    (
        "image-fmod",
        "E%0.25",
        [[0, 0, 0, 0], [0, 0.125, 0.125, 0.125], [0.125, 0.0625, 0.1875, 0.0625]],
        {},
    ),
    (
        "image-fmod-integer",
        "E*8%3",
        [[0, 2, 1, 0], [2, 1, 0, 2], [1, 0.5, 1.5, 2.5]],
        {"truncate": False},
    ),
    (
        "image-fmod-negative",
        "N%0.25",
        [[-0.15, -0.05, -0.2, -0.1], [0, 0.1, 0.2, 0.05], [0.15, 0, 0, 0]],
        {"truncate": False},
    ),
    ("image-band", "E*8&3", [[0, 2, 0, 2], [0, 1, 3, 1], [3, 0, 1, 2]], {"truncate": False}),
    ("image-bxor", "E*8&|5", [[5, 7, 1, 3], [13, 4, 6, 0], [2, 5, 4, 7]], {"truncate": False}),
    ("image-bor", "E*8|1", [[1, 3, 5, 7], [9, 1, 3, 5], [7, 1, 1, 3]], {"truncate": False}),
    ("image-gt", "A>0.45", [[0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]], {}),
    ("image-eq", "E==0.5", [[0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]], {}),
    ("image-ne", "E!=0.5", [[1, 1, 0, 1], [1, 1, 1, 1], [1, 1, 1, 1]], {}),
    ("image-not", "!E", [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], {}),
    ("image-land", "E>0.3 && E<0.8", [[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1]], {}),
    ("image-lor", "E<0.1 || E>0.9", [[1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]], {}),
    ("image-plus-image", "A+B", [[0.6, 0.7, 0.8, 0.9], [1, 1, 1, 1], [1, 1, 0.5, 0.75]], {}),
    ("image-minus-image-untruncated", "A-B", N, {"truncate": False}),
    # statistics: image form folds to one number per channel
    ("image-minus-its-max", "A-max(A)+1", A, {}),
    (
        "image-over-mean",
        "A/mean(A)*0.1",
        [[0.1 * v / (5.75 / 12) for v in row] for row in A.tolist()],
        {"truncate": False},
    ),
    # statistics: per-pixel form over images
    (
        "per-pixel-max",
        "max(A, B)",
        [[0.5, 0.5, 0.5, 0.5], [0.5, 0.6, 0.7, 0.8], [0.9, 1, 0.5, 0.5]],
        {},
    ),
    (
        "per-pixel-min",
        "min(A, B)",
        [[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 0, 0.25]],
        {},
    ),
    (
        "per-pixel-med",
        "med(A, B, 0.35)",
        [[0.35, 0.35, 0.35, 0.4], [0.5, 0.5, 0.5, 0.5], [0.5, 0.5, 0.35, 0.35]],
        {},
    ),
    (
        "per-pixel-mean",
        "mean(E, 0.5)",
        [
            [0.25, 0.375, 0.5, 0.625],
            [0.75, 0.3125, 0.4375, 0.5625],
            [0.6875, 0.28125, 0.34375, 0.40625],
        ],
        {},
    ),
    (
        "per-pixel-sum",
        "sum(E, E)",
        [[0, 0.5, 1, 1.5], [2, 0.25, 0.75, 1.25], [1.75, 0.125, 0.375, 0.625]],
        {"truncate": False},
    ),
    # conditionals over images
    ("image-iif", "iif(A>0.45, A, 0)", [[0, 0, 0, 0], [0.5, 0.6, 0.7, 0.8], [0.9, 1, 0, 0]], {}),
    (
        "image-iswitch",
        "iswitch(A<0.3, 0, A<0.7, 0.5, 1)",
        [[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1], [1, 1, 0, 0]],
        {},
    ),
    (
        "image-range",
        "range(A, 0.2, 0.6)",
        [[0.2, 0.2, 0.3, 0.4], [0.5, 0.6, 0.6, 0.6], [0.6, 0.6, 0.2, 0.25]],
        {},
    ),
    (
        "image-rescale",
        "rescale(A, 0.2, 0.6)",
        [[0, 0, 0.25, 0.5], [0.75, 1, 1, 1], [1, 1, 0, 0.125]],
        {},
    ),
    ("image-mtf-half", "mtf(0.5, A)", A, {}),
    (
        "image-mtf-m-equals-x",
        "mtf(E, E)",
        [[0, 0.5, 0.5, 0.5], [1, 0.5, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]],
        {},
    ),  # 0 and 1 are the ends
    # coordinates (A is 4 wide, 3 high)
    ("x", "x()+A*0", [[0, 1, 2, 3]] * 3, {"truncate": False}),
    ("xpos-alias", "xpos()+A*0", [[0, 1, 2, 3]] * 3, {"truncate": False}),
    ("y", "y()+A*0", [[0] * 4, [1] * 4, [2] * 4], {"truncate": False}),
    ("X-normalised", "X()+A*0", [[0, 1 / 3, 2 / 3, 1]] * 3, {}),
    ("Y-normalised", "Y()+A*0", [[0] * 4, [0.5] * 4, [1] * 4], {}),
    (
        "rdist-from-origin",
        "rdist(0, 0)+A*0",
        [
            [0, 1, 2, 3],
            [1, math.sqrt(2), math.sqrt(5), math.sqrt(10)],
            [2, math.sqrt(5), math.sqrt(8), math.sqrt(13)],
        ],
        {"truncate": False},
    ),
    (
        "rdist-default-centre",
        "rdist()+A*0",
        # PixInsight's default centre is (0.5*width, 0.5*height) = (2, 1.5), not a pixel centre
        [
            [2.5, math.sqrt(3.25), 1.5, math.sqrt(3.25)],
            [math.sqrt(4.25), math.sqrt(1.25), 0.5, math.sqrt(1.25)],
            [math.sqrt(4.25), math.sqrt(1.25), 0.5, math.sqrt(1.25)],
        ],
        {"truncate": False},
    ),
    ("inrect", "inrect(1, 1, 2, 1)+A*0", [[0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]], {}),
    ("inellipse", "inellipse(1, 1, 1, 1)+A*0", [[0, 1, 0, 0], [1, 1, 1, 0], [0, 1, 0, 0]], {}),
    (
        "d2line-horizontal",
        "d2line(0, 0, 3, 0)+A*0",
        [[0] * 4, [1] * 4, [2] * 4],
        {"truncate": False},
    ),
    (
        "d2line-diagonal",
        "d2line(0, 0, 1, 1)+A*0",
        [[abs(x - y) / math.sqrt(2) for x in range(4)] for y in range(3)],
        {"truncate": False},
    ),
    # pixel(): an arbitrary pixel fetch
    ("pixel-fetch", "pixel(A, 1, 2)+B*0", np.ones((3, 4)), {}),
    (
        "pixel-shift-left",
        "pixel(A, x()+1, y())",
        [[0.2, 0.3, 0.4, 0], [0.6, 0.7, 0.8, 0], [1, 0, 0.25, 0]],
        {},
    ),
    ("pixel-coords-truncated", "pixel(A, x()+0.6, y())", A, {}),  # TruncInt, as PCL's pixel()
    # generators on tiny known images
    (
        "translate-right",
        "translate(A, 1, 0)",
        [[0, 0.1, 0.2, 0.3], [0, 0.5, 0.6, 0.7], [0, 0.9, 1, 0]],
        {},
    ),
    (
        "translate-down",
        "translate(A, 0, 1)",
        [[0, 0, 0, 0], [0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]],
        {},
    ),
    ("hmirror", "hmirror(A)", [[0.4, 0.3, 0.2, 0.1], [0.8, 0.7, 0.6, 0.5], [0.25, 0, 1, 0.9]], {}),
    ("vmirror", "vmirror(A)", [[0.9, 1, 0, 0.25], [0.5, 0.6, 0.7, 0.8], [0.1, 0.2, 0.3, 0.4]], {}),
    ("urotate-90-ccw", "urotate(Q, 90)", [[0.2, 0.4], [0.1, 0.3]], {}),
    ("urotate-180", "urotate(Q, 180)", [[0.4, 0.3], [0.2, 0.1]], {}),
    ("binarize", "binarize(A, 0.45)", [[0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]], {}),
    (
        "truncate-generator",
        "truncate(A, 0.2, 0.6)",
        [[0.2, 0.2, 0.3, 0.4], [0.5, 0.6, 0.6, 0.6], [0.6, 0.6, 0.2, 0.25]],
        {},
    ),
    ("normalize-negative-image", "normalize(N)", A, {}),
    (
        "normalize-to-range",
        "normalize(E, 0.2, 0.6)",
        [[0.2, 0.3, 0.4, 0.5], [0.6, 0.25, 0.35, 0.45], [0.55, 0.225, 0.275, 0.325]],
        {},
    ),
    ("medfilt-removes-hot-pixel", "medfilt(H5)", np.full((5, 5), 0.2), {}),
    ("bconv-constant", "bconv(F5)", np.full((5, 5), 0.3), {}),
    ("gconv-constant", "gconv(F5, 1)", np.full((5, 5), 0.3), {}),
    ("kconv-identity-kernel", "kconv(A, 0, 0, 0, 0, 1, 0, 0, 0, 0)", A, {}),
    ("erosion-removes-bright-pixel", "erosion(D5)", np.zeros((5, 5)), {}),
    (
        "dilation-grows-bright-pixel",
        "dilation(D5)",
        [[0, 0, 0, 0, 0], [0, 1, 1, 1, 0], [0, 1, 1, 1, 0], [0, 1, 1, 1, 0], [0, 0, 0, 0, 0]],
        {},
    ),
    (
        "combine-screen",
        "combine(A, B, op_screen())",
        [[0.55, 0.6, 0.65, 0.7], [0.75, 0.8, 0.85, 0.9], [0.95, 1, 0.5, 0.625]],
        {},
    ),
    # symbols
    (
        "symbol-constant",
        "A*k",
        [[0.05, 0.1, 0.15, 0.2], [0.25, 0.3, 0.35, 0.4], [0.45, 0.5, 0, 0.125]],
        {"symbols": "k = 0.5"},
    ),
    ("symbol-variable-statements", "v = A*2; v - A", A, {"symbols": "v", "truncate": False}),
    (
        "symbol-init",
        "v += A; v",
        [[0.35, 0.45, 0.55, 0.65], [0.75, 0.85, 0.95, 1.05], [1.15, 1.25, 0.25, 0.5]],
        {"symbols": "v = init(0.25)", "truncate": False},
    ),
    (
        "symbol-two-variables",
        "a = E*2; b = a + 0.25; b",
        [[0.25, 0.75, 1.25, 1.75], [2.25, 0.5, 1, 1.5], [2, 0.375, 0.625, 0.875]],
        {"symbols": "a, b", "truncate": False},
    ),
    (
        "symbols-semicolon-separated",
        "E*k + j",
        [
            [0.25, 0.375, 0.5, 0.625],
            [0.75, 0.3125, 0.4375, 0.5625],
            [0.6875, 0.28125, 0.34375, 0.40625],
        ],
        {"symbols": "k = 0.5; j = 0.25"},
    ),
    (
        "symbols-directive",
        ".symbols k=0.5; E*k",
        [
            [0, 0.125, 0.25, 0.375],
            [0.5, 0.0625, 0.1875, 0.3125],
            [0.4375, 0.03125, 0.09375, 0.15625],
        ],
        {},
    ),
    # directives, truncation and rescale
    (
        "pragma-no-truncate",
        ".pragma no-truncate; A*2",
        [[0.2, 0.4, 0.6, 0.8], [1, 1.2, 1.4, 1.6], [1.8, 2, 0, 0.5]],
        {},
    ),
    (
        "truncate-off",
        "A*2",
        [[0.2, 0.4, 0.6, 0.8], [1, 1.2, 1.4, 1.6], [1.8, 2, 0, 0.5]],
        {"truncate": False},
    ),
    ("rescale-on", "A*2-0.5", A, {"rescale": True}),  # min -0.5, max 1.5
    ("pragma-rescale", ".pragma rescale; A*2-0.5", A, {}),
    ("rescale-wins-over-truncate", "E*4-1", E, {"rescale": True, "truncate": True}),
    # per-channel form, channel index
    ("channel-index-0", "C[0]", A, {}),
    ("channel-index-1", "C[1]", np.full((3, 4), 0.2), {}),
    ("channel-index-2-arith", "C[2]-C[1]", np.full((3, 4), 0.4), {}),
]


_ParameterSet = type(pytest.param(0))


def _expected(value) -> np.ndarray:
    return np.asarray(value, np.float64)


@pytest.mark.parametrize(
    "expr,expected,kw",
    [c if isinstance(c, _ParameterSet) else pytest.param(c[1], c[2], c[3], id=c[0]) for c in IMAGE],
)
def test_image_expression(expr: str, expected, kw: dict) -> None:
    got = pm(expr, **kw)
    exp = _expected(expected)
    assert isinstance(got, np.ndarray)
    assert got.dtype == np.float32
    assert got.shape == exp.shape
    np.testing.assert_allclose(got, exp, rtol=1e-5, atol=2e-6)


# ------------------------------------------------------------------ image statistics
# A holds 0, .1, .2, .25, .3, .4, .5, .6, .7, .8, .9, 1: sum 5.75, median (.4+.5)/2 = .45,
# |x - .45| sorted: .05 .05 .15 .15 .2 .25 .25 .35 .35 .45 .45 .55 (sum 3.25, median .25),
# squares sum 3.9125, sum of (x - mean)^2 = 3.9125 - 5.75^2/12 = 1.157291667.
STATS = [
    ("max", "max(A)", 1.0),
    ("maximum-alias", "maximum(A)", 1.0),
    ("min", "min(A)", 0.0),
    ("mean", "mean(A)", 5.75 / 12),
    ("med", "med(A)", 0.45),
    ("sdev", "sdev(A)", math.sqrt(1.1572916666666667 / 11)),
    ("var", "var(A)", 1.1572916666666667 / 11),
    ("mdev", "mdev(A)", 0.25 * 1.4826),
    ("adev", "adev(A)", 3.25 / 12 * 1.2533),
    ("mod", "mod(N)", 3.25),
    ("norm", "norm(N)", -0.25),
    ("ssqr", "ssqr(A)", 3.9125),
    ("asqr", "asqr(A)", 3.9125 / 12),
    ("roi-mean", "mean(A, 0, 0, 2, 2)", 0.35),  # .1 .2 .5 .6
    ("roi-max", "max(A, 1, 1, 2, 2)", 1.0),  # .6 .7 1 0
    ("roi-min", "min(A, 1, 1, 2, 2)", 0.0),
    ("roi-mean-columns", "mean(A, 2, 0, 2, 3)", 2.45 / 6),  # .3 .4 .7 .8 0 .25
    ("stat-in-arithmetic", "max(A)-min(A)*2+mean(E, 0, 0, 2, 1)", 1.125),  # 1 - 0 + .125
]


@pytest.mark.parametrize("expr,expected", [pytest.param(e, v, id=i) for i, e, v in STATS])
def test_image_statistic_is_invariant(expr: str, expected: float) -> None:
    # an image statistic is one number; PixelMath writes it to every pixel of the result
    got = pm(expr, truncate=False)
    assert invariant(got) == pytest.approx(expected, rel=1e-6, abs=1e-7)


def invariant(got) -> float:
    """The one value of a statistic: a float, or an image filled with it."""
    if isinstance(got, np.ndarray):
        assert got.shape == (3, 4)
        assert float(got.min()) == float(got.max())
        return float(got.flat[0])
    assert isinstance(got, float)
    return got


def per_channel_invariant(got) -> list[float]:
    if isinstance(got, np.ndarray):
        assert got.shape == (3, 3, 4)
        return [invariant(c) for c in got]
    return list(got)


def test_image_statistic_of_rgb_is_per_channel() -> None:
    assert per_channel_invariant(pm("max(C)")) == pytest.approx([1.0, 0.2, 0.6], abs=1e-7)
    assert per_channel_invariant(pm("mean(C, 0, 0, 2, 2)")) == pytest.approx(
        [0.35, 0.2, 0.6], abs=1e-7
    )


def test_rgb_divided_by_its_per_channel_max() -> None:
    got = pm("C/max(C)")
    np.testing.assert_allclose(got[0], A, atol=1e-6)
    np.testing.assert_allclose(got[1:], np.ones((2, 3, 4)), atol=1e-6)


@pytest.mark.parametrize(
    "expr,expected",
    [
        ("width(A)", 4.0),
        ("height(A)", 3.0),
        ("area(A)", 12.0),
        ("channels(C)", 3.0),
        ("iscolor(C)", 1.0),
    ],
)
def test_geometry_of_a_named_image(expr: str, expected: float) -> None:
    # width([img]) etc.: no argument = the target, one image reference = that image
    got = pm(expr, truncate=False)
    assert float(np.max(got)) == expected and float(np.min(got)) == expected


def test_width_and_height_of_the_target() -> None:
    got = pm("width()*10 + height()", target=A, truncate=False)
    np.testing.assert_array_equal(got, np.full((3, 4), 43.0))


# ------------------------------------------------------------------ colour components
def test_colour_components_of_primaries() -> None:
    # V (HSV value) and maxsample of a pure primary are 1, minsample 0, HSV saturation 1
    for fn, expected in [("V", 1.0), ("maxsample", 1.0), ("minsample", 0.0), ("Sv", 1.0)]:
        got = pm(f"{fn}(P)", truncate=False)
        np.testing.assert_allclose(got, np.full((3, 1, 3), expected), atol=1e-6, err_msg=fn)
    np.testing.assert_allclose(pm("Hd(P)", truncate=False)[0, 0], [0, 120, 240], atol=1e-4)
    np.testing.assert_allclose(pm("H(P)")[0, 0], [0, 1 / 3, 2 / 3], atol=1e-6)


def test_cie_y_of_primaries_uses_pixinsight_default_rgbws() -> None:
    # PixInsight's default RGB working space: sRGB primaries, D50, luminance coefficients
    # 0.222491, 0.716888, 0.060621 (they sum to 1: CIE Y of white is 1)
    np.testing.assert_allclose(pm("CIEY(P)")[0, 0], [0.222491, 0.716888, 0.060621], atol=1e-5)


@pytest.mark.parametrize("fn", ["CIEL", "V", "I", "maxsample", "minsample", "CIEY"])
def test_colour_component_of_black_and_white(fn: str) -> None:
    got = pm(f"{fn}(K)")
    np.testing.assert_allclose(got[..., 0], 0.0, atol=1e-6)
    np.testing.assert_allclose(got[..., 1], 1.0, atol=1e-5)


def test_colour_components_of_grey() -> None:
    for fn, expected in [
        ("V", 0.4),
        ("I", 0.4),
        ("maxsample", 0.4),
        ("minsample", 0.4),
        ("Sv", 0.0),
        ("Si", 0.0),
    ]:
        np.testing.assert_allclose(
            pm(f"{fn}(G4)"), np.full((3, 4), expected), atol=1e-6, err_msg=fn
        )
    # sRGB gamma: ((0.4+0.055)/1.055)^2.4 = 0.13287; L* = 116*0.13287^(1/3) - 16 = 43.19
    np.testing.assert_allclose(pm("CIEL(G4)"), np.full((3, 4), 0.4319), atol=2e-4)


def test_maxsample_and_minsample_of_rgb_image() -> None:
    mx = [[0.6, 0.6, 0.6, 0.6], [0.6, 0.6, 0.7, 0.8], [0.9, 1.0, 0.6, 0.6]]
    mn = [[0.1, 0.2, 0.2, 0.2], [0.2, 0.2, 0.2, 0.2], [0.2, 0.2, 0.0, 0.2]]
    got_max, got_min = pm("maxsample(C)"), pm("minsample(C)")
    for c in range(got_max.shape[0] if got_max.ndim == 3 else 1):
        np.testing.assert_allclose(got_max[c] if got_max.ndim == 3 else got_max, mx, atol=1e-6)
        np.testing.assert_allclose(got_min[c] if got_min.ndim == 3 else got_min, mn, atol=1e-6)


# ------------------------------------------------------------ RGB: symbols, broadcast, channels
def test_per_channel_constant_on_rgb_image() -> None:
    got = pm("C*k", symbols="k = 0.1:0.2:0.3")
    np.testing.assert_allclose(got[0], A * np.float32(0.1), atol=1e-6)
    np.testing.assert_allclose(got[1], np.full((3, 4), 0.04), atol=1e-6)
    np.testing.assert_allclose(got[2], np.full((3, 4), 0.18), atol=1e-6)


def test_per_channel_constant_makes_grey_operand_colour() -> None:
    got = pm("B*k", symbols="k = 0.1:0.2:0.3")
    assert got.shape == (3, 3, 4)
    for c, v in enumerate([0.05, 0.1, 0.15]):
        np.testing.assert_allclose(got[c], np.full((3, 4), v), atol=1e-6)


def test_grey_operand_broadcast_into_rgb_expression() -> None:
    got = pm("A+C")
    assert got.shape == (3, 3, 4)
    np.testing.assert_allclose(
        got[0], [[0.2, 0.4, 0.6, 0.8], [1, 1, 1, 1], [1, 1, 0, 0.5]], atol=1e-6
    )
    np.testing.assert_allclose(
        got[1], [[0.3, 0.4, 0.5, 0.6], [0.7, 0.8, 0.9, 1], [1, 1, 0.2, 0.45]], atol=1e-6
    )
    np.testing.assert_allclose(
        got[2], [[0.7, 0.8, 0.9, 1], [1, 1, 1, 1], [1, 1, 0.6, 0.85]], atol=1e-6
    )


def test_rescale_uses_joint_min_max_over_all_channels() -> None:
    # C*2 spans [0, 2] over all channels jointly -> C; per channel G and B (constants) would be 0
    got = pm("C*2", rescale=True)
    np.testing.assert_allclose(got[0], A, atol=1e-6)
    np.testing.assert_allclose(got[1], np.full((3, 4), 0.2), atol=1e-6)
    np.testing.assert_allclose(got[2], np.full((3, 4), 0.6), atol=1e-6)


def test_per_channel_form_three_expressions() -> None:
    got = pm("A", "B", "E*0.5")
    assert got.shape == (3, 3, 4) and got.dtype == np.float32
    np.testing.assert_allclose(got[0], A, atol=1e-7)
    np.testing.assert_allclose(got[1], B, atol=1e-7)
    np.testing.assert_allclose(got[2], E * 0.5, atol=1e-7)


def test_per_channel_form_truncates_each_channel() -> None:
    got = pm("A*2", "A-0.5", "0.25")
    np.testing.assert_allclose(
        got[0], [[0.2, 0.4, 0.6, 0.8], [1, 1, 1, 1], [1, 1, 0, 0.5]], atol=1e-6
    )
    np.testing.assert_allclose(
        got[1], [[0, 0, 0, 0], [0, 0.1, 0.2, 0.3], [0.4, 0.5, 0, 0]], atol=1e-6
    )
    np.testing.assert_allclose(got[2], np.full((3, 4), 0.25), atol=1e-7)


def test_inline_per_channel_form() -> None:
    got = pm("R = A; G = 0.3; B = E*0.5")
    assert got.shape == (3, 3, 4)
    np.testing.assert_allclose(got[0], A, atol=1e-7)
    np.testing.assert_allclose(got[1], np.full((3, 4), 0.3), atol=1e-7)
    np.testing.assert_allclose(got[2], E * 0.5, atol=1e-7)


def test_channel_index_of_a_per_channel_constant() -> None:
    got = pm("A*k[1]", symbols="k = 0.1:0.2:0.3")
    np.testing.assert_allclose(got, A * np.float32(0.2), atol=1e-7)


def test_channel_index_of_rgb_target_applies_to_every_channel() -> None:
    got = pxlang.pixelmath("$T[2] - $T[1]", target=C)
    assert got.shape == (3, 3, 4)
    np.testing.assert_allclose(got, np.full((3, 3, 4), 0.4), atol=1e-6)


def test_target_metasymbol() -> None:
    got = pxlang.pixelmath("$T*0.5 + 0.25", target=E)
    np.testing.assert_allclose(got, E * 0.5 + 0.25, atol=1e-7)


def test_rgb_target_single_expression_applies_to_each_channel() -> None:
    got = pxlang.pixelmath("~$T", target=C)
    np.testing.assert_allclose(got[0], 1 - A, atol=1e-6)
    np.testing.assert_allclose(got[1], np.full((3, 4), 0.8), atol=1e-6)
    np.testing.assert_allclose(got[2], np.full((3, 4), 0.4), atol=1e-6)


# ------------------------------------------------------------------ global accumulators
@pytest.mark.parametrize(
    "expr,symbols,name,expected",
    [
        pytest.param("s += A; A", "s = global(+)", "s", 5.75, id="global-add"),
        pytest.param("s -= A; A", "s = global(+)", "s", -5.75, id="global-sub"),
        pytest.param("s += A; A", "s = global(+, 1)", "s", 6.75, id="global-add-initial"),
        pytest.param("p *= B; B", "p = global(*)", "p", 0.5**12, id="global-mul"),
        pytest.param("p *= B; B", "p = global(*, 2)", "p", 2 * 0.5**12, id="global-mul-initial"),
        pytest.param("n += 1; A", "n = global(+)", "n", 12.0, id="global-count-pixels"),
    ],
)
def test_global_accumulator(expr: str, symbols: str, name: str, expected: float) -> None:
    res = pixelmath_result(expr, images=IMAGES, symbols=symbols)
    np.testing.assert_allclose(res.value, IMAGES[expr.split("; ")[1]], atol=1e-7)
    assert res.globals[name] == pytest.approx(expected, rel=1e-7)  # float32 pixels


def test_global_accumulator_on_rgb_has_three_values() -> None:
    res = pixelmath_result("s += C; C", images=IMAGES, symbols="s = global(+)")
    assert res.globals["s"] == pytest.approx([5.75, 2.4, 7.2], rel=1e-6)


# ------------------------------------------------------------------ random
Z = np.zeros((200, 200), np.float32)


def test_random_is_reproducible_with_a_seed_and_uniform() -> None:
    r1 = pxlang.pixelmath("random()", target=Z, seed=7)
    r2 = pxlang.pixelmath("random()", target=Z, seed=7)
    np.testing.assert_array_equal(r1, r2)
    assert r1.min() >= 0.0 and r1.max() < 1.0
    assert abs(float(r1.mean()) - 0.5) < 0.01  # sd of the mean: 0.2887/200 = 0.0014
    assert len(np.unique(r1)) > 39000  # one draw per pixel, not one per image


def test_random_different_seeds_differ() -> None:
    r1 = pxlang.pixelmath("rnd()", images={"Z": Z}, target=Z, seed=1)
    r2 = pxlang.pixelmath("rnd()", images={"Z": Z}, target=Z, seed=2)
    assert not np.array_equal(r1, r2)


# ------------------------------------------------------------------ precision of numbers
@pytest.mark.parametrize(
    "expr,expected",
    [
        pytest.param("var(1e4, 1e4+0.01, 1e4+0.02)", 1e-4, id="var-offset"),
        pytest.param("sdev(1, 1.000001, 1.000002)", 1e-6, id="sdev-small-spread"),
    ],
)
def test_variadic_statistics_of_numbers_keep_double_precision(expr: str, expected: float) -> None:
    assert pxlang.pixelmath(expr, truncate=False) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "expr,symbols",
    [
        pytest.param("mean(A, 0, 0, 1+1, 2)", "", id="roi-expression"),
        pytest.param("mean(A, 0, 0, w, 2)", "w = 2", id="roi-constant-symbol"),
    ],
)
def test_roi_form_with_invariant_scalar_arguments(expr: str, symbols: str) -> None:
    assert invariant(pm(expr, symbols=symbols)) == pytest.approx(0.35, abs=1e-7)
