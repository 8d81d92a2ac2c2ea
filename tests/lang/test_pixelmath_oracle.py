"""Differential oracle (numexpr-style): each PixelMath operator and elementwise function
against the same computation written directly in numpy, over

    input type  (uint16 file normalised to [0, 1], float32 array)
  x operands    (image op image, image op scalar, scalar op image)
  x channels    (mono (H, W), colour (3, H, W)).

The numpy side is written from the reference's definitions (``a--b`` = |a-b|, ``%`` = C
fmod and 0 for a divisor ~0, bitwise operators on C-truncated ints, 0/1 logic, division by
~0 = huge), in float64 on the same normalised input; results are compared after PixelMath's
default truncation to [0, 1] and, where values are finite, without it. Cases where one side
fails must fail on the other too ("both fail alike").
"""

from __future__ import annotations

import numpy as np
import pytest

import pxlang

H, W = 6, 7
EPS = np.finfo(np.float64).eps
SEED = 20261125


# ------------------------------------------------------------------ inputs
def _raw(channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(SEED + seed)
    shape = (H, W) if channels == 1 else (3, H, W)
    u = rng.integers(0, 65536, size=shape, dtype=np.uint16)
    flat = u.reshape(-1)
    flat[:3] = (0, 65535, 32768)  # exact ends and a middle; zeros exercise /0, %0, !, &&
    flat[5 + seed] = 0
    return u


@pytest.fixture(scope="module")
def operands(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """(kind, channels) -> (X, Y as given to pxlang, x, y as float64 for numpy)."""
    import tifffile

    folder = tmp_path_factory.mktemp("oracle")
    out = {}
    for channels in (1, 3):
        ux, uy = _raw(channels, 0), _raw(channels, 1)
        # float32 arrays: the same numbers as floats
        fx, fy = (ux / 65535.0).astype(np.float32), (uy / 65535.0).astype(np.float32)
        out["float32", channels] = (fx, fy, fx.astype(np.float64), fy.astype(np.float64))
        # uint16 files: pxlang must read them normalised by 65535
        loaded = []
        for name, u in (("x", ux), ("y", uy)):
            path = folder / f"{name}{channels}.tif"
            extra = {"photometric": "rgb", "planarconfig": "separate"} if channels == 3 else {}
            tifffile.imwrite(path, u, **extra)
            loaded.append(pxlang.load(str(path)))
        out["uint16", channels] = (loaded[0], loaded[1], ux / 65535.0, uy / 65535.0)
    return out


KINDS = ["float32", "uint16"]
CHANNELS = [1, 3]
SCALAR = 0.375  # exactly representable


# ------------------------------------------------------------------ numpy definitions
def _trunc_int(v: np.ndarray) -> np.ndarray:
    return np.trunc(v).astype(np.int64)


def _div(a, b):
    b = np.asarray(b, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.asarray(a, np.float64) / np.where(np.abs(b) > EPS, b, 1.0)
    return np.where(np.abs(b) > EPS, q, np.finfo(np.float64).max)


def _mod(a, b):
    b = np.asarray(b, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.fmod(a, np.where(np.abs(b) > EPS, b, 1.0))
    return np.where(np.abs(b) > EPS, r, 0.0)


def _f(x) -> np.ndarray:
    return np.asarray(x, np.float64)


BINARY = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": _div,
    "%": _mod,
    "^": lambda a, b: np.power(a, b),
    "--": lambda a, b: np.abs(a - b),
    "<": lambda a, b: _f(a < b),
    "<=": lambda a, b: _f(a <= b),
    ">": lambda a, b: _f(a > b),
    ">=": lambda a, b: _f(a >= b),
    "==": lambda a, b: _f(a == b),
    "!=": lambda a, b: _f(a != b),
    "&&": lambda a, b: _f((a != 0) & (b != 0)),
    "||": lambda a, b: _f((a != 0) | (b != 0)),
}
# bitwise operators work on truncated ints: scale [0, 1] values by 8 (exact in binary)
BITWISE = {
    "&": lambda a, b: a & b,
    "!&": lambda a, b: ~(a & b),
    "&|": lambda a, b: a ^ b,
    "!&|": lambda a, b: ~(a ^ b),
    "|": lambda a, b: a | b,
    "!|": lambda a, b: ~(a | b),
}
FORMS = ["image-image", "image-scalar", "scalar-image"]


def _operands(form: str, X, Y, x, y, scalar: float):
    if form == "image-image":
        return "X", "Y", {"X": X, "Y": Y}, x, y
    if form == "image-scalar":
        return "X", repr(scalar), {"X": X}, x, scalar
    return repr(scalar), "Y", {"Y": Y}, scalar, y


def _compare(got, expected, *, truncate: bool) -> None:
    exp = np.asarray(expected, np.float64)
    if truncate:
        exp = np.clip(exp, 0.0, 1.0)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    assert got.shape == exp.shape
    np.testing.assert_allclose(got.astype(np.float64), exp, rtol=2e-6, atol=2e-6, equal_nan=True)


def _binary_cases() -> list:
    cases = []
    for op in BINARY:
        for form in FORMS:
            for kind in KINDS:
                for channels in CHANNELS:
                    cases.append(
                        pytest.param(op, form, kind, channels, id=f"{op}-{form}-{kind}-{channels}")
                    )
    return cases


@pytest.mark.parametrize("op,form,kind,channels", _binary_cases())
def test_binary_operator(operands: dict, op: str, form: str, kind: str, channels: int) -> None:
    X, Y, x, y = operands[kind, channels]
    left, right, images, a, b = _operands(form, X, Y, x, y, SCALAR)
    expr = f"{left} {op} {right}"
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        expected = np.broadcast_to(BINARY[op](a, b), x.shape)
    _compare(pxlang.pixelmath(expr, images=images), expected, truncate=True)
    got = pxlang.pixelmath(expr, images=images, truncate=False)
    if op == "/":
        # division by ~0 gives the largest finite value: only "huge" is comparable
        huge = expected > 1e300
        assert np.all(got[huge] > 1e30)
        _compare(
            np.where(huge, 0, got).astype(np.float32), np.where(huge, 0, expected), truncate=False
        )
    else:
        _compare(got, expected, truncate=False)


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("op", list(BITWISE))
def test_bitwise_operator(operands: dict, op: str, form: str, kind: str, channels: int) -> None:
    X, Y, x, y = operands[kind, channels]
    left, right, images, a, b = _operands(form, X, Y, x, y, 0.625)  # 0.625*8 = 5
    expr = f"({left}*8) {op} ({right}*8)"
    expected = np.broadcast_to(
        _f(BITWISE[op](_trunc_int(_f(a) * 8), _trunc_int(_f(b) * 8))), x.shape
    )
    _compare(pxlang.pixelmath(expr, images=images, truncate=False), expected, truncate=False)
    _compare(pxlang.pixelmath(expr, images=images), expected, truncate=True)


@pytest.mark.parametrize(
    "expr,value", [("0 && Y", 0.0), ("1 || Y", 1.0), ("iif(1, 0.25, Y)", 0.25)]
)
def test_short_circuit_over_an_image_still_gives_an_image(
    operands: dict, expr: str, value: float
) -> None:
    # the branch is never evaluated, but the image it names still gives the output geometry
    _, Y, _, y = operands["float32", 1]
    _compare(pxlang.pixelmath(expr, images={"Y": Y}), np.full(y.shape, value), truncate=False)


# ------------------------------------------------------------------ elementwise functions
def _rescale(v, lo, hi):
    return np.clip((v - lo) / (hi - lo), 0, 1)


def _mtf(m, v):
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (m - 1) * v / ((2 * m - 1) * v - m)
    return np.where(v <= 0, 0.0, np.where(v >= 1, 1.0, r))


# (expression over X and Y, numpy of x and y)
FUNCTIONS = {
    "abs": ("abs(X-0.5)", lambda x, y: np.abs(x - 0.5)),
    "acos": ("acos(X)", lambda x, y: np.arccos(x)),
    "acosh": ("acosh(X+1)", lambda x, y: np.arccosh(x + 1)),
    "asin": ("asin(X)", lambda x, y: np.arcsin(x)),
    "asinh": ("asinh(X)", lambda x, y: np.arcsinh(x)),
    "atan": ("atan(X)", lambda x, y: np.arctan(x)),
    "atan2": ("atan(X-0.5, Y-0.5)", lambda x, y: np.arctan2(x - 0.5, y - 0.5)),
    "atanh": ("atanh(X*0.9)", lambda x, y: np.arctanh(x * 0.9)),
    "ceil": ("ceil(X*4)", lambda x, y: np.ceil(x * 4)),
    "cos": ("cos(X*3)", lambda x, y: np.cos(x * 3)),
    "cosh": ("cosh(X)", lambda x, y: np.cosh(x)),
    "exp": ("exp(X)", lambda x, y: np.exp(x)),
    "floor": ("floor(X*4)", lambda x, y: np.floor(x * 4)),
    "frac": ("frac(X*4-2)", lambda x, y: (x * 4 - 2) - np.trunc(x * 4 - 2)),
    "ln": ("ln(X)", lambda x, y: np.log(x)),
    "log": ("log(X)", lambda x, y: np.log10(x)),
    "log2": ("log2(X)", lambda x, y: np.log2(x)),
    "round": ("round(X*4)", lambda x, y: np.floor(x * 4 + 0.5)),  # x >= 0
    "sign": ("sign(X-0.5)", lambda x, y: np.sign(x - 0.5)),
    "sin": ("sin(X*3)", lambda x, y: np.sin(x * 3)),
    "sinh": ("sinh(X)", lambda x, y: np.sinh(x)),
    "sqrt": ("sqrt(X)", lambda x, y: np.sqrt(x)),
    "tan": ("tan(X)", lambda x, y: np.tan(x)),
    "tanh": ("tanh(X)", lambda x, y: np.tanh(x)),
    "trunc": ("trunc(X*4-2)", lambda x, y: np.trunc(x * 4 - 2)),
    "invert": ("~X", lambda x, y: 1 - x),
    "negate": ("-X", lambda x, y: -x),
    "not": ("!X", lambda x, y: _f(x == 0)),
    "min": ("min(X, Y)", lambda x, y: np.minimum(x, y)),
    "max": ("max(X, Y)", lambda x, y: np.maximum(x, y)),
    "mean": ("mean(X, Y, 0.5)", lambda x, y: (x + y + 0.5) / 3),
    "med": (
        "med(X, Y, 0.5)",
        lambda x, y: np.median(np.stack(np.broadcast_arrays(x, y, 0.5)), axis=0),
    ),
    "sum": ("sum(X, Y)", lambda x, y: x + y),
    "mod": ("mod(X-0.5, Y-0.5)", lambda x, y: np.abs(x - 0.5) + np.abs(y - 0.5)),
    "ssqr": ("ssqr(X, Y)", lambda x, y: x * x + y * y),
    "iif": ("iif(X > 0.5, X, Y)", lambda x, y: np.where(x > 0.5, x, y)),
    "iswitch": (
        "iswitch(X < 0.3, 0.1, Y < 0.3, 0.2, X)",
        lambda x, y: np.where(x < 0.3, 0.1, np.where(y < 0.3, 0.2, x)),
    ),
    "range": ("range(X, 0.2, 0.7)", lambda x, y: np.clip(x, 0.2, 0.7)),
    "rescale": ("rescale(X, 0.2, 0.7)", lambda x, y: _rescale(x, 0.2, 0.7)),
    "rescale-swapped": ("rescale(X, 0.7, 0.2)", lambda x, y: _rescale(x, 0.2, 0.7)),
    "mtf": ("mtf(0.3, X)", lambda x, y: _mtf(0.3, x)),
    "mtf-image-m": ("mtf(Y*0.8+0.1, X)", lambda x, y: _mtf(y * 0.8 + 0.1, x)),
}


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_function(operands: dict, name: str, kind: str, channels: int) -> None:
    X, Y, x, y = operands[kind, channels]
    expr, ref = FUNCTIONS[name]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        expected = np.broadcast_to(ref(x, y), x.shape)
    images = {"X": X, "Y": Y}
    _compare(pxlang.pixelmath(expr, images=images, truncate=False), expected, truncate=False)
    _compare(pxlang.pixelmath(expr, images=images), expected, truncate=True)


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("name", ["exp", "sqrt", "tanh", "atan", "~", "abs"])
def test_function_of_a_scalar_is_a_number(name: str, channels: int) -> None:
    # an invariant expression gives a Python float, the same as numpy's
    ref = {
        "exp": np.exp,
        "sqrt": np.sqrt,
        "tanh": np.tanh,
        "atan": np.arctan,
        "~": lambda v: 1 - v,
        "abs": np.abs,
    }[name]
    expr = f"~{SCALAR}" if name == "~" else f"{name}({SCALAR})"
    got = pxlang.pixelmath(expr, truncate=False)
    assert isinstance(got, float)
    assert got == pytest.approx(float(ref(SCALAR)), rel=1e-12)


def test_uint16_file_is_normalised(operands: dict) -> None:
    for channels in CHANNELS:
        X, _, x, _ = operands["uint16", channels]
        np.testing.assert_allclose(X.data, x, rtol=1e-7, atol=0)
        assert float(X.data.max()) == 1.0 and float(X.data.min()) == 0.0


def test_uint16_array_is_normalised() -> None:
    # reference §1: integer images are read as value/(2^n-1), arrays as well as files
    u = np.array([[0, 65535], [32768, 13107]], np.uint16)
    got = pxlang.pixelmath("U", images={"U": u}, truncate=False)
    np.testing.assert_allclose(got, [[0, 1], [32768 / 65535, 0.2]], rtol=1e-6)


# ------------------------------------------------------------------ both fail alike
FAIL_ALIKE = [
    # (id, pxlang expression, images, numpy computation that must fail the same way)
    ("unknown-function", "frobnicate(X)", "mono", lambda x, y, t: np.frobnicate(x)),  # type: ignore[attr-defined]
    ("shapes-differ", "X + T", "mono", lambda x, y, t: x + t),
    ("shapes-differ-rgb", "X + T", "rgb", lambda x, y, t: x + t),
    ("channel-out-of-range", "X[3]", "rgb", lambda x, y, t: x[3]),
    ("mono-channel-1", "X[1]", "mono", lambda x, y, t: np.stack([x])[1]),
]


@pytest.mark.parametrize(
    "expr,layout,ref", [pytest.param(e, lay, r, id=i) for i, e, lay, r in FAIL_ALIKE]
)
def test_both_fail_alike(operands: dict, expr: str, layout: str, ref) -> None:
    channels = 1 if layout == "mono" else 3
    X, Y, x, y = operands["float32", channels]
    t = np.zeros(x.shape[:-2] + (H, W + 1), np.float32)  # one column wider
    with pytest.raises((AttributeError, ValueError, IndexError)):
        ref(x, y, t)
    with pytest.raises(pxlang.PxError) as info:
        pxlang.pixelmath(expr, images={"X": X, "Y": Y, "T": t})
    assert info.value.message


def test_both_succeed_on_broadcast_grey_into_rgb(operands: dict) -> None:
    # the opposite case: a grey operand with a colour one works on both sides (channel 0
    # used for every channel)
    Xm, _, xm, _ = operands["float32", 1]
    Xc, _, xc, _ = operands["float32", 3]
    got = pxlang.pixelmath("Xc * Xm", images={"Xc": Xc, "Xm": Xm}, truncate=False)
    _compare(got, xc * xm[None], truncate=False)
