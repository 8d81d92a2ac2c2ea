"""PixelMath evaluation: an expression (or ';'-separated statements) evaluated per pixel,
vectorised over row tiles of the output.

Two phases, as PixInsight does:

1. *fold*: names are resolved, constant subexpressions computed, and every invariant call
   (image statistics ``max(Ha)``, generators ``gconv(Ha)``, workflow functions) evaluated
   once over whole images. What remains is a small plan of per-pixel operations.
2. *execute*: the plan runs over tiles of rows (``limits.TILE_ELEMENTS`` elements, small
   enough to stay in cache), writing into one float32 output; temporaries are reused in
   place. No Python loop ever runs per pixel.

This module knows numpy, not astronomy: functions come in as ``FunctionSpec``s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import runtrace
from . import ast
from .errors import PxError, PxRuntimeError, PxTypeError
from .functions import PIXEL, CallContext, FunctionSpec, PixelGeometry, TextNumber
from .limits import MAX_IMAGE_PIXELS, TILE_ELEMENTS

F32_MAX = float(np.finfo(np.float32).max)
EPS = float(np.finfo(np.float64).eps)


# ------------------------------------------------------------------ plan nodes
@dataclass
class Const:
    value: Any  # float | str | list | ndarray (H,W) / (3,H,W) / (3,1,1)
    span: Any = None
    whole: bool = False  # pass the full array to a function (not the tile)
    keep_channels: bool = False  # inside an argument that needs all of R, G, B

    @property
    def is_array(self) -> bool:
        return isinstance(self.value, np.ndarray)


@dataclass
class Var:
    name: str
    span: Any = None


@dataclass
class Op:
    op: str
    args: list[Any]
    span: Any = None


@dataclass
class PixCall:
    spec: FunctionSpec
    args: list[Any]
    span: Any = None


@dataclass
class Lazy:
    """iif / iswitch: branches evaluated only where needed when the condition is scalar."""

    kind: str
    args: list[Any]
    span: Any = None


@dataclass
class Stmt:
    target: str | None  # None: an expression statement
    op: str
    value: Any
    span: Any = None


@dataclass
class Symbol:
    """A PixelMath Symbols entry as the evaluator needs it."""

    name: str
    kind: str  # variable | constant | init | global
    value: Any = 0.0  # constant value / initial value (float or (3,1,1) array)
    op: str | None = None  # global: "+" or "*"


@dataclass
class Options:
    truncate: bool = True
    truncate_scalars: bool = True  # scripts keep numbers as computed; PixelMath fields clamp
    rescale: bool = False
    float64: bool = False
    invariant_as_image: bool = False  # PixelMath fields: a referenced image gives the geometry
    seed: int | None = None


@dataclass
class Result:
    value: Any  # float | ndarray
    globals: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------ operators
def _f(x: Any) -> Any:
    """Booleans from comparisons become 0/1 floats of the working type."""
    if isinstance(x, np.ndarray):
        return x.astype(np.float32) if x.dtype == bool else x
    return float(x)


def _div(a: Any, b: Any) -> Any:
    if not isinstance(b, np.ndarray):
        if abs(b) <= EPS:
            return (
                np.full(np.shape(a), F32_MAX, np.float32) if isinstance(a, np.ndarray) else F32_MAX
            )
        return a / b
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.divide(a, b)
    small = np.abs(b) <= EPS
    if small.any():
        out = np.where(small, np.float32(F32_MAX), out)
    return out


def _mod(a: Any, b: Any) -> Any:
    if not isinstance(b, np.ndarray) and not isinstance(a, np.ndarray):
        return 0.0 if abs(b) <= EPS else math.fmod(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.fmod(a, b)
    return (
        np.where(np.abs(b) <= EPS, np.float32(0), out)
        if isinstance(b, np.ndarray)
        else (out if abs(b) > EPS else np.zeros_like(out))
    )


def _ints(a: Any) -> Any:
    return np.trunc(a).astype(np.int64) if isinstance(a, np.ndarray) else int(a)


def _bits(fn: Callable[[Any, Any], Any], negate: bool = False) -> Callable[[Any, Any], Any]:
    def op(a: Any, b: Any) -> Any:
        r = fn(_ints(a), _ints(b))
        if negate:
            r = ~r
        return r.astype(np.float32) if isinstance(r, np.ndarray) else float(r)

    return op


def _pow(a: Any, b: Any) -> Any:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            return np.power(a, b)
    try:
        r = float(a) ** float(b)
    except ZeroDivisionError:
        return math.inf
    except OverflowError:
        return math.inf
    return float("nan") if isinstance(r, complex) else r


def _truth(x: Any) -> Any:
    return x != 0


BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "--": lambda a, b: abs(a - b),
    "*": lambda a, b: a * b,
    "/": _div,
    "%": _mod,
    "^": _pow,
    "<": lambda a, b: _f(a < b),
    "<=": lambda a, b: _f(a <= b),
    ">": lambda a, b: _f(a > b),
    ">=": lambda a, b: _f(a >= b),
    "==": lambda a, b: _f(a == b),
    "!=": lambda a, b: _f(a != b),
    "&": _bits(lambda a, b: a & b),
    "!&": _bits(lambda a, b: a & b, negate=True),
    "&|": _bits(lambda a, b: a ^ b),
    "!&|": _bits(lambda a, b: a ^ b, negate=True),
    "|": _bits(lambda a, b: a | b),
    "!|": _bits(lambda a, b: a | b, negate=True),
    "&&": lambda a, b: _f(np.logical_and(_truth(a), _truth(b))),
    "||": lambda a, b: _f(np.logical_or(_truth(a), _truth(b))),
}

# in-place forms for owned float temporaries (the hot path of image arithmetic)
INPLACE = {"+": np.add, "-": np.subtract, "*": np.multiply}

UNARY: dict[str, Callable[[Any], Any]] = {
    "-": lambda a: -a,
    "+": lambda a: a,
    "~": lambda a: 1.0 - a,
    "!": lambda a: _f(a == 0),
}

AUGMENTED = {
    "+=": "+",
    "-=": "-",
    "*=": "*",
    "/=": "/",
    "^=": "^",
    "%=": "%",
    "--=": "--",
    "&=": "&",
    "!&=": "!&",
    "|=": "|",
    "!|=": "!|",
    "&|=": "&|",
    "!&|=": "!&|",
    "&&=": "&&",
    "||=": "||",
}
GLOBAL_OPS = {"+": {"+=", "-=", "--="}, "*": {"*=", "/="}}


def scalar_binary(op: str, a: Any, b: Any, span: Any = None) -> Any:
    """A binary operator on non-image values: numbers, strings (``+``, comparisons), lists."""
    if isinstance(a, str) or isinstance(b, str):
        # a command-line number beside a string is its text: "night_" + 2025
        a = a.text if isinstance(a, TextNumber) else a
        b = b.text if isinstance(b, TextNumber) else b
        if isinstance(a, str) and isinstance(b, str):
            if op == "+":
                return a + b
            if op in ("==", "!=", "<", "<=", ">", ">="):
                return BINARY[op](a, b)
        raise PxTypeError(f"'{op}' does not apply to {_kind(a)} and {_kind(b)}", span)
    if isinstance(a, list) and isinstance(b, list) and op == "+":
        return a + b
    return BINARY[op](float(a), float(b))


def _kind(v: Any) -> str:
    if isinstance(v, str):
        return f"the string {v!r}"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, np.ndarray):
        return "an image"
    if isinstance(v, list):
        return "a list"
    return getattr(v, "describe", lambda: f"a {type(v).__name__}")()


# ------------------------------------------------------------------ evaluation
class PixelEvaluator:
    """Folds and executes PixelMath. One instance per evaluation.

    ``resolve(name, span)``: the value of a name (image, number, string, list...).
    ``functions(name)``: the FunctionSpec of a name or None.
    ``whole(node)``: evaluates a node the pixel evaluator does not own (user functions,
    lists, per-channel forms) to a value.
    """

    def __init__(
        self,
        resolve: Callable[[str, Any], Any],
        functions: Callable[[str], FunctionSpec | None],
        ctx: CallContext,
        *,
        whole: Callable[[Any], Any] | None = None,
        symbols: Mapping[str, Symbol] | None = None,
        target: np.ndarray | None = None,
        options: Options | None = None,
        is_user_function: Callable[[str], bool] = lambda name: False,
    ):
        self.resolve = resolve
        self.functions = functions
        self.ctx = ctx
        self.whole_eval = whole
        self.symbols = dict(symbols or {})
        self.target = target
        self.options = options or Options()
        self.is_user_function = is_user_function
        self.globals: dict[str, Any] = {
            s.name: s.value for s in self.symbols.values() if s.kind == "global"
        }
        # size for per-pixel generators (x(), random()) when no image is referenced
        self.fallback_shape: tuple[int, ...] | None = None
        self.referenced: list[tuple[tuple[int, ...], Any]] = []  # every image the fold saw
        self.first_header: Any = None
        self.headers: list[Any] = []  # every operand's header, for the host to merge

    # -------------------------------------------------------------- fold
    def fold(self, node: Any, keep: bool = False) -> Any:
        method = getattr(self, "fold_" + type(node).__name__, None)
        if method is None:
            return self._const(self._whole(node), node.span, keep)
        return method(node, keep)

    def _whole(self, node: Any) -> Any:
        if self.whole_eval is None:
            raise PxRuntimeError("this expression form is not allowed here", node.span)
        return self.whole_eval(node)

    def _const(self, value: Any, span: Any, keep: bool = False) -> Const:
        header = getattr(value, "header", None)
        if header is not None:
            if self.first_header is None:
                self.first_header = header  # the result keeps the first operand's keywords
            self.headers.append(header)
        value = to_pixel_value(value)
        if isinstance(value, np.ndarray) and value.ndim in (2, 3) and value.shape[-2:] != (1, 1):
            self.referenced.append((value.shape, span))
        return Const(value, span, keep_channels=keep)

    def _note_images(self, node: Any) -> None:
        """Record the images a skipped branch names (they still define the output size)."""
        if not self.options.invariant_as_image:
            return
        for n in ast.walk(node):
            if isinstance(n, (ast.Name, ast.Meta)) and not (
                isinstance(n, ast.Name) and n.id in self.symbols
            ):
                try:
                    value = self.resolve(n.id if isinstance(n, ast.Name) else "$" + n.id, n.span)
                except PxError:
                    continue
                self._const(value, n.span)

    def fold_Number(self, node: ast.Number, keep: bool) -> Const:
        return Const(node.value, node.span)

    def fold_String(self, node: ast.String, keep: bool) -> Const:
        return Const(node.value, node.span)

    def fold_Name(self, node: ast.Name, keep: bool) -> Any:
        sym = self.symbols.get(node.id)
        if sym is not None:
            if sym.kind == "constant":
                return Const(sym.value, node.span, keep_channels=keep)
            return Var(node.id, node.span)
        return self._const(self.resolve(node.id, node.span), node.span, keep)

    def fold_Meta(self, node: ast.Meta, keep: bool) -> Const:
        return self._const(self.resolve("$" + node.id, node.span), node.span, keep)

    def fold_Index(self, node: ast.Index, keep: bool) -> Any:
        target = self.fold(node.target, True)
        if isinstance(node.target, ast.Index) and not (
            isinstance(target, Const) and isinstance(target.value, list)
        ):
            raise PxTypeError(
                "a second channel index: an image has one index, Ha[0]", node.index.span
            )
        index = self.fold(node.index)
        if not (isinstance(index, Const) and isinstance(index.value, float)):
            raise PxTypeError("a channel index is a whole number: Ha[0]", node.index.span)
        i = index.value
        if isinstance(target, Const) and isinstance(target.value, list):
            if i != int(i) or not -len(target.value) <= i < len(target.value):
                raise PxRuntimeError(
                    f"index {i:g} is out of range for a list of {len(target.value)}", node.span
                )
            return self._const(target.value[int(i)], node.span, keep)
        if i != int(i) or i < 0:
            raise PxTypeError("a channel index is a non-negative whole number", node.index.span)
        if isinstance(target, Const) and isinstance(target.value, np.ndarray):
            return Const(_channel(target.value, int(i), node.span), node.span)
        if isinstance(target, Const) and isinstance(target.value, float):
            if int(i) != 0:
                raise PxRuntimeError(
                    "Channel index out of range: a number has channel 0 only", node.span
                )
            return target
        return Op("index", [target, int(i)], node.span)

    def fold_Unary(self, node: ast.Unary, keep: bool) -> Any:
        a = self.fold(node.operand, keep)
        if isinstance(a, Const) and not a.is_array:
            self._check_number(a, node.op, node.span)
            return Const(UNARY[node.op](a.value), node.span)
        self._check_operand(a, node.op)
        return Op(node.op, [a], node.span)

    def fold_Binary(self, node: ast.Binary, keep: bool) -> Any:
        a = self.fold(node.left, keep)
        if node.op in ("&&", "||") and isinstance(a, Const) and not a.is_array:
            # scalar short-circuit, as PixInsight's optimiser does
            if isinstance(a.value, float):
                if node.op == "&&" and a.value == 0:
                    self._note_images(node.right)
                    return Const(0.0, node.span)
                if node.op == "||" and a.value != 0:
                    self._note_images(node.right)
                    return Const(1.0, node.span)
        b = self.fold(node.right, keep)
        if node.op in ("==", "!=") and any(
            isinstance(x, Const) and x.value is None for x in (a, b)
        ):
            # `x == none`: is an optional value missing (an image is never none)
            same = all(isinstance(x, Const) and x.value is None for x in (a, b))
            return Const(float(same if node.op == "==" else not same), node.span)
        if isinstance(a, Const) and isinstance(b, Const) and not a.is_array and not b.is_array:
            return Const(scalar_binary(node.op, a.value, b.value, node.span), node.span)
        self._check_operand(a, node.op)
        self._check_operand(b, node.op)
        return Op(node.op, [a, b], node.span)

    def _check_operand(self, x: Any, op: str) -> None:
        if isinstance(x, Const) and not x.is_array and not isinstance(x.value, float):
            raise PxTypeError(f"'{op}' cannot use {_kind(x.value)} in image arithmetic", x.span)

    def _check_number(self, x: Const, op: str, span: Any) -> None:
        if not isinstance(x.value, float):
            raise PxTypeError(f"'{op}' does not apply to {_kind(x.value)}", span)

    def fold_ChannelForm(self, node: ast.ChannelForm, keep: bool) -> Const:
        return self._const(self._whole(node), node.span, keep)

    def fold_Call(self, node: ast.Call, keep: bool) -> Any:
        if self.is_user_function(node.func):
            return self._const(self._whole(node), node.span, keep)
        spec = self.functions(node.func)
        if spec is None:
            return self._const(self._whole(node), node.span, keep)
        if spec.special in ("iif", "iswitch"):
            return self._fold_lazy(spec.special, node, keep)
        if spec.image_form is not None and self._image_form_applies(node):
            return self._fold_image_form(spec, node, keep)
        if spec.kind != PIXEL and not spec.extra.get("varying"):
            # invariant: evaluated once over whole values
            return self._const(self._whole(node), node.span, keep)
        if node.kwargs:
            raise PxTypeError(f"{spec.name}() takes no keyword arguments", node.kwargs[0].span)
        rgb = bool(spec.extra.get("rgb_args"))
        args = []
        params = list(spec.positional)
        var = spec.variadic
        for i, arg in enumerate(node.args):
            param = params[i] if i < len(params) else var
            if param is not None and param.kind != PIXEL:
                folded = self._const(self._whole(arg), arg.span, True)
                folded.whole = True
                args.append(folded)
            else:
                args.append(self.fold(arg, keep or rgb))
        if not spec.extra.get("varying") and all(
            isinstance(a, Const) and (not a.is_array or a.whole) for a in args
        ):
            # every argument is a number: compute now
            value = self._call(spec, [a.value for a in args], None, node.span)
            return self._const(value, node.span, keep)
        return PixCall(spec, args, node.span)

    def _materialise(self, node: Any) -> np.ndarray:
        """A per-pixel plan evaluated over its whole geometry, untruncated."""
        plan = [Stmt(None, "", node, getattr(node, "span", None))]
        geometry = self._geometry([plan])
        if geometry is None:  # pragma: no cover - a plan without images folds to a Const
            raise PxRuntimeError("this expression has no image to evaluate over", node.span)
        height, width, channels = geometry
        out = self._allocate((channels, height, width) if channels == 3 else (height, width))
        self._run_tiles(plan, out, height, width, channels, None, truncate=False)
        return out

    def _image_form_applies(self, node: ast.Call) -> bool:
        n = len(node.args)
        if node.kwargs or n not in (1, 5):
            return False
        first = node.args[0]
        if n == 5:  # (image, x0, y0, w, h): the region must be invariant numbers
            if not isinstance(first, (ast.Name, ast.Meta)):
                return False
            rest = [self.fold(a) for a in node.args[1:]]
            return all(isinstance(r, Const) and isinstance(r.value, float) for r in rest)
        return True

    def _fold_image_form(self, spec: FunctionSpec, node: ast.Call, keep: bool) -> Any:
        first = self.fold(node.args[0], True)
        if isinstance(first, Const) and not first.is_array:
            return first  # max(x) of one number is the number
        if not isinstance(first, Const):
            if _uses_vars(first):
                raise PxTypeError(
                    f"{spec.name}() of one per-pixel variable has no meaning",
                    node.span,
                    f"give an image ({spec.name}(Ha)) or two or more values ({spec.name}(a, b))",
                )
            # pxlang extension: the statistic of an image expression, e.g. max(Ha*2)
            first = Const(self._materialise(first), node.args[0].span)
        roi = tuple(int(self.fold(a).value) for a in node.args[1:])
        img = first.value
        if img.ndim == 3 and img.shape[1:] == (1, 1):
            img = img.reshape(3, 1, 1)
        try:
            value = spec.image_form(img, roi) if roi else spec.image_form(img)
        except PxError as e:
            e.with_span(node.span)
            raise
        except (ValueError, ArithmeticError) as e:
            raise PxRuntimeError(f"{spec.name}(): {e}", node.span) from e
        return self._const(value, node.span, keep)

    def _fold_lazy(self, kind: str, node: ast.Call, keep: bool) -> Any:
        args = node.args
        if kind == "iif" and len(args) != 3:
            raise PxTypeError("iif(condition, if_true, if_false) takes 3 arguments", node.span)
        if kind == "iswitch" and (len(args) < 3 or len(args) % 2 == 0):
            raise PxTypeError(
                "iswitch(c1, e1[, c2, e2 …], default) takes pairs and a default", node.span
            )
        folded: list[Any] = []
        pairs = [(args[i], args[i + 1]) for i in range(0, len(args) - 1, 2)]
        default = args[-1]
        for cond, expr in pairs:
            c = self.fold(cond, keep)
            if isinstance(c, Const) and not c.is_array:
                self._check_number(c, kind, cond.span)
                if c.value != 0:
                    if not folded:
                        # taken branch; the rest never runs but its images still give the size
                        for rest in args[args.index(cond) + 1 :]:
                            self._note_images(rest)
                        return self.fold(expr, keep)
                    folded.append((Const(1.0), self.fold(expr, keep)))
                    return Lazy(kind, folded + [self.fold(expr, keep)], node.span)
                self._note_images(expr)
                continue  # branch never taken
            folded.append((c, self.fold(expr, keep)))
        d = self.fold(default, keep)
        if not folded:
            return d
        return Lazy(kind, folded + [d], node.span)

    # -------------------------------------------------------------- programs
    def fold_statements(self, statements: list[Any]) -> list[Stmt]:
        plan = []
        for st in statements:
            if isinstance(st, ast.Assign):
                value = self.fold(st.value)
                plan.append(Stmt(st.target, st.op, value, st.span))
            else:
                expr = st.expr if isinstance(st, ast.ExprStmt) else st
                plan.append(Stmt(None, "", self.fold(expr), getattr(expr, "span", None)))
        return plan

    def run(self, statements: list[Any], *, channel_mode: bool = False) -> Result:
        """Evaluate statements (the last one gives the value) in vector mode."""
        plan = self.fold_statements(statements)
        geometry = self._geometry([plan])
        if geometry is None:
            value = self._execute(plan, None)
            return Result(self._finish_scalar(value), self._final_globals())
        height, width, channels = geometry
        out = self._allocate((channels, height, width) if channels == 3 else (height, width))
        self._run_tiles(plan, out, height, width, channels, None)
        self._finish_image(out)
        return Result(out, self._final_globals())

    def run_channels(self, programs: list[list[Any]]) -> Result:
        """Per-channel form: program c computes channel c of a (3, H, W) result."""
        plans = [self.fold_statements(p) for p in programs]
        geometry = self._geometry(plans)
        if geometry is None:
            # no image anywhere: a 1x1 colour value is meaningless; give the three numbers
            values = [self._finish_scalar(self._execute(p, None)) for p in plans]
            return Result(values, self._final_globals())
        height, width, _ = geometry
        out = self._allocate((3, height, width))
        for c, plan in enumerate(plans):
            self._run_tiles(plan, out[c], height, width, 1, c)
        self._finish_image(out)
        return Result(out, self._final_globals())

    def _allocate(self, shape: tuple[int, ...]) -> np.ndarray:
        if math.prod(shape) > MAX_IMAGE_PIXELS:
            raise PxRuntimeError(
                f"the result would have {math.prod(shape)} pixels; the limit is {MAX_IMAGE_PIXELS}"
            )
        return np.empty(shape, np.float64 if self.options.float64 else np.float32)

    def _final_globals(self) -> dict[str, Any]:
        out = {}
        for k, v in self.globals.items():
            out[k] = [float(x) for x in np.ravel(v)] if isinstance(v, np.ndarray) else float(v)
        return out

    def _finish_scalar(self, value: Any) -> Any:
        if isinstance(value, np.ndarray):
            value = [float(x) for x in value.ravel()]
            if self.options.truncate and self.options.truncate_scalars:
                value = [min(max(x, 0.0), 1.0) for x in value]
            return value
        if not isinstance(value, float):
            return value
        if (
            self.options.truncate
            and self.options.truncate_scalars
            and not self.options.rescale
            and not math.isnan(value)
        ):
            return min(max(value, 0.0), 1.0)
        return value

    def _finish_image(self, out: np.ndarray) -> None:
        if self.options.rescale:
            finite = out[np.isfinite(out)]
            if finite.size:
                lo, hi = float(finite.min()), float(finite.max())
                if hi - lo > EPS:
                    np.subtract(out, lo, out=out)
                    np.multiply(out, 1.0 / (hi - lo), out=out)
                else:
                    out[...] = 0
        # truncation is done per tile (in cache); rescale already bounds to [0, 1]

    # -------------------------------------------------------------- geometry
    def _geometry(self, plans: list[list[Stmt]]) -> tuple[int, int, int] | None:
        shapes: list[tuple[tuple[int, ...], Any]] = []
        needs = False

        def visit(n: Any) -> None:
            nonlocal needs
            if isinstance(n, Const):
                if n.is_array and not n.whole and n.value.shape[-2:] != (1, 1):
                    shapes.append((n.value.shape, n.span))
                elif n.is_array and n.value.ndim == 3:
                    shapes.append((n.value.shape, None))
            elif isinstance(n, Op):
                for a in n.args:
                    if not isinstance(a, int):
                        visit(a)
            elif isinstance(n, PixCall):
                if n.spec.extra.get("varying"):
                    needs = True
                for a in n.args:
                    visit(a)
            elif isinstance(n, Lazy):
                for a in n.args:
                    if isinstance(a, tuple):
                        visit(a[0])
                        visit(a[1])
                    else:
                        visit(a)
            elif isinstance(n, Var):
                needs_var.append(n)

        needs_var: list[Var] = []
        for plan in plans:
            for st in plan:
                visit(st.value)
        channels = 3 if any(len(s) == 3 for s, _ in shapes) else 1
        full = [(s, sp) for s, sp in shapes if s[-2:] != (1, 1)]
        if self.target is not None:
            t = self.target
            hw = t.shape[-2:]
            channels = 3 if (t.ndim == 3 or channels == 3) else 1
            for s, sp in full:
                if s[-2:] != hw:
                    raise PxTypeError(
                        f"an image of {s[-1]}x{s[-2]} pixels cannot combine with the target of "
                        f"{hw[1]}x{hw[0]}",
                        sp,
                        "all images in one expression must have the same width and height",
                    )
            return int(hw[0]), int(hw[1]), channels
        if not full and self.options.invariant_as_image and self.referenced:
            shapes = self.referenced
            ref = shapes[0][0]
            for s, sp in shapes[1:]:
                if s[-2:] != ref[-2:]:
                    raise PxTypeError(
                        f"images of different sizes: {ref[-1]}x{ref[-2]} and "
                        f"{s[-1]}x{s[-2]} pixels",
                        sp,
                        "all images in one expression must have the same width and height",
                    )
            chans = 3 if channels == 3 or any(len(s) == 3 for s, _ in shapes) else 1
            return int(ref[-2]), int(ref[-1]), chans
        if not full and needs and self.fallback_shape is not None:
            fs = self.fallback_shape
            return int(fs[-2]), int(fs[-1]), channels
        if not full:
            if needs:
                raise PxRuntimeError(
                    "this expression has per-pixel functions (x(), random() …) but no image "
                    "to give it a size",
                    hint="name an image in the expression or give a target",
                )
            return None
        hw = full[0][0][-2:]
        for s, sp in full[1:]:
            if s[-2:] != hw:
                raise PxTypeError(
                    f"images of different sizes: {hw[1]}x{hw[0]} and {s[-1]}x{s[-2]} pixels",
                    sp,
                    "all images in one expression must have the same width and height",
                )
        return int(hw[0]), int(hw[1]), channels

    # -------------------------------------------------------------- execute
    def _run_tiles(
        self,
        plan: list[Stmt],
        out: np.ndarray,
        height: int,
        width: int,
        channels: int,
        channel: int | None,
        truncate: bool | None = None,
    ) -> None:
        rows = max(1, TILE_ELEMENTS // max(1, width * channels))
        if truncate is None:
            truncate = self.options.truncate and not self.options.rescale
        for r0 in range(0, height, rows):
            r1 = min(height, r0 + rows)
            geo = PixelGeometry(r0, r1, height, width, channels, channel)
            with np.errstate(all="ignore"):  # PixelMath arithmetic is silent (inf, nan)
                value = self._execute(plan, geo)
            dest = out[..., r0:r1, :]
            if isinstance(value, np.ndarray) and value.ndim > dest.ndim:
                raise PxTypeError(
                    "a per-channel expression gives a colour value; index a channel, e.g. RGB[0]",
                    plan[-1].span,
                )
            if truncate:
                np.clip(value, 0.0, 1.0, out=dest)
            else:
                dest[...] = value

    def _execute(self, plan: list[Stmt], geo: PixelGeometry | None) -> Any:
        local: dict[str, Any] = {}
        for s in self.symbols.values():
            if s.kind in ("variable", "init"):
                local[s.name] = s.value
        value: Any = 0.0
        for st in plan:
            value, _ = self._eval(st.value, geo, local)
            if st.target is not None:
                value = self._assign(st, value, geo, local)
        return value

    def _assign(
        self, st: Stmt, value: Any, geo: PixelGeometry | None, local: dict[str, Any]
    ) -> Any:
        sym = self.symbols.get(st.target)
        if sym is None or sym.kind == "constant":
            raise PxRuntimeError(f"'{st.target}' is not a declared variable", st.span)
        if sym.kind == "global":
            per_pixel = _sum_pixels(value, geo) if sym.op == "+" else _prod_pixels(value, geo)
            cur = self.globals[st.target]
            op = AUGMENTED[st.op]
            if op == "--":
                self.globals[st.target] = abs(cur - per_pixel)
            else:
                self.globals[st.target] = BINARY[op](cur, per_pixel)
            return value
        if st.op == "=":
            local[st.target] = value
        else:
            local[st.target] = BINARY[AUGMENTED[st.op]](local[st.target], value)
        return local[st.target]

    def _eval(self, n: Any, geo: PixelGeometry | None, local: dict[str, Any]) -> tuple[Any, bool]:
        """Value of a plan node over the tile, and whether the array is a fresh temporary."""
        if isinstance(n, Const):
            v = n.value
            if not isinstance(v, np.ndarray) or n.whole:
                return v, False
            if geo is None:
                return v, False
            if v.ndim == 3 and geo.channel is not None and not n.keep_channels:
                v = v[geo.channel]
            if v.shape[-2:] == (1, 1):
                return (float(v.reshape(-1)[0]) if v.size == 1 else v), False
            v = v[..., geo.r0 : geo.r1, :]
            if self.options.float64:
                return v.astype(np.float64), True
            return v, False
        if isinstance(n, Var):
            return local[n.name], False
        if isinstance(n, Op):
            if n.op == "index":
                target, _ = self._eval(n.args[0], geo, local)
                return _channel(target, n.args[1], n.span), False
            if len(n.args) == 1:
                a, own = self._eval(n.args[0], geo, local)
                if n.op == "-" and own:
                    return np.negative(a, out=a), True
                if n.op == "~" and own:
                    np.subtract(1.0, a, out=a)
                    return a, True
                return UNARY[n.op](a), isinstance(a, np.ndarray)
            if n.op in ("&&", "||"):
                return self._logical(n, geo, local)
            (a, own_a), (b, own_b) = (self._eval(x, geo, local) for x in n.args)
            if n.op in INPLACE:
                fn = INPLACE[n.op]
                if (
                    own_a
                    and isinstance(a, np.ndarray)
                    and a.shape == np.broadcast_shapes(a.shape, np.shape(b))
                ):
                    return fn(a, b, out=a), True
                if (
                    own_b
                    and isinstance(b, np.ndarray)
                    and b.shape == np.broadcast_shapes(b.shape, np.shape(a))
                ):
                    return fn(a, b, out=b), True
            try:
                r = BINARY[n.op](a, b)
            except ValueError as e:
                raise PxTypeError(f"'{n.op}': operands do not fit together ({e})", n.span) from e
            return r, isinstance(r, np.ndarray)
        if isinstance(n, PixCall):
            args = [self._eval(a, geo, local)[0] for a in n.args]
            return self._call(n.spec, args, geo, n.span), True
        if isinstance(n, Lazy):
            return self._lazy(n, geo, local), True
        raise PxRuntimeError(f"cannot evaluate {n!r}")  # pragma: no cover

    def _logical(self, n: Op, geo: PixelGeometry | None, local: dict[str, Any]) -> tuple[Any, bool]:
        a, _ = self._eval(n.args[0], geo, local)
        if not isinstance(a, np.ndarray):
            if n.op == "&&" and a == 0:
                return 0.0, False
            if n.op == "||" and a != 0:
                return 1.0, False
        b, _ = self._eval(n.args[1], geo, local)
        r = BINARY[n.op](a, b)
        return r, isinstance(r, np.ndarray)

    def _lazy(self, n: Lazy, geo: PixelGeometry | None, local: dict[str, Any]) -> Any:
        pairs, default = n.args[:-1], n.args[-1]
        conds, values = [], []
        for cond, expr in pairs:
            c, _ = self._eval(cond, geo, local)
            if not isinstance(c, np.ndarray):
                if c != 0 and not conds:
                    return self._eval(expr, geo, local)[0]
                if c == 0:
                    continue
                conds.append(np.asarray(True))
            else:
                conds.append(c != 0)
            values.append(self._eval(expr, geo, local)[0])
        d, _ = self._eval(default, geo, local)
        if not conds:
            return d
        if len(conds) == 1:
            return np.where(conds[0], values[0], d).astype(np.float32, copy=False)
        shape = np.broadcast_shapes(
            *(np.shape(c) for c in conds), *(np.shape(v) for v in values), np.shape(d)
        )
        return np.select(
            [np.broadcast_to(c, shape) for c in conds],
            [np.broadcast_to(v, shape) for v in values],
            np.broadcast_to(d, shape),
        ).astype(np.float32, copy=False)

    def _call(
        self, spec: FunctionSpec, args: list[Any], geo: PixelGeometry | None, span: Any
    ) -> Any:
        self.ctx.span = span
        self.ctx.pixel = geo
        if self.ctx.rng is None and spec.extra.get("varying") == "random":
            self.ctx.rng = np.random.default_rng(self.options.seed)
            if self.options.seed is None:
                runtrace.volatile("random numbers without a seed")
        try:
            value = spec.call(self.ctx, args, {})
        except PxError as e:
            e.with_span(span)
            raise
        except (ValueError, ArithmeticError, TypeError) as e:
            raise PxRuntimeError(f"{spec.name}(): {e}", span) from e
        finally:
            self.ctx.pixel = None
        return to_pixel_value(value)


# ------------------------------------------------------------------ helpers
def to_pixel_value(value: Any) -> Any:
    """Language values as the evaluator uses them: images -> ndarray, numbers -> float,
    a list of 3 numbers stays a list (it becomes a per-channel constant only in arithmetic)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, TextNumber):
        return value  # a number that keeps its command-line text
    if isinstance(value, (int, float, np.floating, np.integer)):
        return float(value)
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return float(value)
        if value.dtype == bool:
            return value.astype(np.float32)
        if value.dtype not in (np.float32, np.float64):
            return value.astype(np.float32)
        return value
    pixels = getattr(value, "pixels", None)
    if isinstance(pixels, np.ndarray):
        return pixels
    return value


def _uses_vars(node: Any) -> bool:
    if isinstance(node, Var):
        return True
    if isinstance(node, (Op, PixCall, Lazy)):
        for a in node.args:
            parts = a if isinstance(a, tuple) else (a,)
            if any(_uses_vars(p) for p in parts if not isinstance(p, int)):
                return True
    return False


def per_channel(values: Any) -> np.ndarray:
    """Three numbers as a (3, 1, 1) per-channel constant."""
    return np.asarray(values, np.float32).reshape(3, 1, 1)


def _channel(v: Any, i: int, span: Any) -> Any:
    if not isinstance(v, np.ndarray):
        if i != 0:
            raise PxRuntimeError("Channel index out of range: a number has channel 0 only", span)
        return v
    if v.ndim == 2 or (v.ndim == 3 and v.shape[0] == 1):
        if i != 0:
            raise PxRuntimeError(
                f"Channel index out of range: a mono image has channel 0 only, not {i}", span
            )
        return v
    if i >= v.shape[0]:
        raise PxRuntimeError(
            f"Channel index out of range: a colour image has channels 0-2, not {i}", span
        )
    return v[i]


def _sum_pixels(value: Any, geo: PixelGeometry | None) -> Any:
    if isinstance(value, np.ndarray):
        if value.ndim == 3:
            return value.reshape(value.shape[0], -1).sum(axis=1, dtype=np.float64).reshape(3, 1, 1)
        return float(value.sum(dtype=np.float64))
    n = 1 if geo is None else (geo.r1 - geo.r0) * geo.width
    return float(value) * n


def _prod_pixels(value: Any, geo: PixelGeometry | None) -> Any:
    if isinstance(value, np.ndarray):
        if value.ndim == 3:
            return value.reshape(value.shape[0], -1).prod(axis=1, dtype=np.float64).reshape(3, 1, 1)
        return float(value.prod(dtype=np.float64))
    n = 1 if geo is None else (geo.r1 - geo.r0) * geo.width
    return float(value) ** n
