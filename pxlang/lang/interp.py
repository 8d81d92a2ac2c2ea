"""The script interpreter: statements, names, user functions, modules. Image arithmetic is
handed to the PixelMath evaluator (``pixel.py``); built-ins come in as ``FunctionSpec``s.

A tree-walker over our own node types only: nothing a script writes can reach Python
objects, import modules or run code (closed world)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import ast
from .errors import PxError, PxNameError, PxRuntimeError, PxTypeError, did_you_mean
from .functions import CallContext, FunctionSpec, TextNumber
from .limits import MAX_CALL_DEPTH, MAX_LOOP_ITERATIONS
from .pixel import Options, PixelEvaluator, per_channel, to_pixel_value

CONSTANTS = {"true": 1.0, "false": 0.0, "none": None}  # none: "no image" for optional arguments


@dataclass
class UserFunction:
    node: ast.FuncDef
    scope: Scope  # where it was defined (closures see module names)

    @property
    def name(self) -> str:
        return self.node.name

    def describe(self) -> str:
        return f"the function {self.name}()"


class Scope:
    """Names of one level (module or function call), chained to the enclosing one."""

    def __init__(self, parent: Scope | None = None):
        self.vars: dict[str, Any] = {}
        self.parent = parent

    def lookup(self, name: str) -> Any:
        s: Scope | None = self
        while s is not None:
            if name in s.vars:
                return s.vars[name]
            s = s.parent
        raise KeyError(name)

    def names(self) -> set[str]:
        out: set[str] = set()
        s: Scope | None = self
        while s is not None:
            out |= set(s.vars)
            s = s.parent
        return out


class ScopeView(Mapping[str, Any]):
    """Read-only view of a scope's values (functions and constants left out)."""

    def __init__(self, scope: Scope):
        self._scope = scope

    def __getitem__(self, name: str) -> Any:
        v = self._scope.lookup(name)
        if isinstance(v, (UserFunction, Module)):
            raise KeyError(name)
        return v

    def _visible(self) -> list[str]:
        names = []
        for n in self._scope.names():
            if n in CONSTANTS:
                continue
            if isinstance(self._scope.lookup(n), (UserFunction, Module)):
                continue
            names.append(n)
        return names

    def __iter__(self):  # noqa: ANN204
        return iter(self._visible())

    def __len__(self) -> int:
        return len(self._visible())


class Module:
    """An imported module: its top-level names."""

    def __init__(self, name: str, scope: Scope):
        self.name = name
        self.scope = scope

    def describe(self) -> str:
        return f"the module {self.name}"


class Interpreter:
    """Runs a checked ``Script``.

    ``functions``: built-ins by name. ``module_loader(name, base_dir)`` returns
    ``(text, path)`` of a module or None. ``params``: values for ``param`` declarations.
    """

    def __init__(
        self,
        functions: Mapping[str, FunctionSpec],
        *,
        base_dir: str = ".",
        params: Mapping[str, Any] | None = None,
        provenance: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        module_loader: Callable[[str, str], tuple[str, str] | None] | None = None,
        warn: Callable[[str], None] | None = None,
        names: Mapping[str, Any] | None = None,
    ):
        self.functions = functions
        self.base_dir = base_dir
        self.params = dict(params or {})
        self.used_params: set[str] = set()
        self.options = dict(options or {})
        self.module_loader = module_loader
        self.warn = warn
        self.provenance = dict(provenance or {})
        self.globals = Scope()
        self.globals.vars.update(CONSTANTS)
        self.globals.vars.update(names or {})
        self.depth = 0
        self._nested = 0
        self.modules: dict[str, Module] = {}

    # -------------------------------------------------------------- context
    def context(self, span: Any = None) -> CallContext:
        return CallContext(
            span=span,
            base_dir=self.base_dir,
            provenance=self.provenance,
            rng_seed=self.options.get("seed"),
            options=self.options,
            warn=self.warn,
        )

    # -------------------------------------------------------------- statements
    def run(self, script: ast.Script) -> Any:
        return self.exec_block(script.statements, self.globals)

    def exec_block(self, statements: tuple[Any, ...], scope: Scope) -> Any:
        value: Any = None
        for st in statements:
            value = self.exec(st, scope)
        return value

    def exec(self, st: Any, scope: Scope) -> Any:
        return getattr(self, "exec_" + type(st).__name__)(st, scope)

    def exec_ExprStmt(self, st: ast.ExprStmt, scope: Scope) -> Any:
        return self.eval(st.expr, scope)

    def exec_Assign(self, st: ast.Assign, scope: Scope) -> Any:
        if st.op == "=":
            value = self.eval(st.value, scope)
        else:
            op = st.op[:-1]
            value = self.eval(
                ast.Binary(st.span, op, ast.Name(st.target_span, st.target), st.value), scope
            )
        # a variable may shadow a built-in name; calls still reach the built-in
        scope.vars[st.target] = value
        return value

    def exec_ParamDecl(self, st: ast.ParamDecl, scope: Scope) -> Any:
        if st.name in self.params:
            self.used_params.add(st.name)
            given = self.params[st.name]
            default = self.eval(st.default, scope) if st.default is not None else None
            value = coerce_param(given, default, st.name, st.span)
        elif st.default is not None:
            value = self.eval(st.default, scope)
        else:
            err = PxRuntimeError(
                f"parameter '{st.name}' has no default and was not given",
                st.span,
                f"pass it on the command line: {st.name}=VALUE",
            )
            err.usage = True
            raise err
        scope.vars[st.name] = value
        return value

    def exec_FuncDef(self, st: ast.FuncDef, scope: Scope) -> Any:
        fn = UserFunction(st, scope)
        scope.vars[st.name] = fn
        return None

    def exec_Import(self, st: ast.Import, scope: Scope) -> Any:
        module = self.load_module(st.module, st.span)
        names = (
            st.names
            if st.names is not None
            else tuple(n for n in module.scope.vars if not n.startswith("_") and n not in CONSTANTS)
        )
        for n in names:
            if n not in module.scope.vars:
                raise PxNameError(
                    f"module '{st.module}' has no name '{n}'",
                    st.span,
                    did_you_mean(n, module.scope.vars),
                )
            scope.vars[n] = module.scope.vars[n]
        return None

    def load_module(self, name: str, span: Any) -> Module:
        if name in self.modules:
            return self.modules[name]
        found = self.module_loader(name, self.base_dir) if self.module_loader else None
        if found is None:
            raise PxNameError(
                f"no module named '{name}'",
                span,
                "modules are stdlib names or NAME.px files next to the script",
            )
        text, path = found
        from .check import check_script
        from .parse import parse_script

        tree = parse_script(text, path)
        check_script(
            tree, self.functions, module_loader=self.module_loader, base_dir=os.path.dirname(path)
        )
        sub = Interpreter(
            self.functions,
            base_dir=os.path.dirname(path),
            provenance=self.provenance,
            options=self.options,
            module_loader=self.module_loader,
            warn=self.warn,
        )
        sub.run(tree)
        module = Module(name, sub.globals)
        self.modules[name] = module
        return module

    def exec_For(self, st: ast.For, scope: Scope) -> Any:
        items = self.eval(st.iterable, scope)
        if isinstance(items, (int, float)) or isinstance(items, str):
            raise PxTypeError(
                f"'for' needs a list or a frame set, got {describe(items)}", st.iterable.span
            )
        count = 0
        value = None
        try:
            iterator = iter(items)
        except TypeError:
            raise PxTypeError(
                f"'for' cannot go through {describe(items)}", st.iterable.span
            ) from None
        for item in iterator:
            count += 1
            if count > MAX_LOOP_ITERATIONS:
                raise PxRuntimeError(f"a loop ran more than {MAX_LOOP_ITERATIONS} times", st.span)
            scope.vars[st.var] = item
            value = self.exec_block(st.body.statements, scope)
        return value

    def exec_If(self, st: ast.If, scope: Scope) -> Any:
        cond = self.eval(st.cond, scope)
        if not isinstance(cond, (int, float)):
            raise PxTypeError(
                f"'if' needs a number (0 is false), got {describe(cond)}",
                st.cond.span,
                "compare image statistics, e.g. if mean(Ha) > 0.1 { … }",
            )
        if cond != 0:
            return self.exec_block(st.then.statements, scope)
        if isinstance(st.orelse, ast.If):
            return self.exec_If(st.orelse, scope)
        if st.orelse is not None:
            return self.exec_block(st.orelse.statements, scope)
        return None

    # -------------------------------------------------------------- expressions
    def eval(self, node: Any, scope: Scope) -> Any:
        if isinstance(node, ast.Number):
            return node.value
        if isinstance(node, ast.String):
            return node.value
        if isinstance(node, ast.Name):
            return self.lookup(node.id, node.span, scope)
        if isinstance(node, ast.ListExpr):
            return [self.eval(i, scope) for i in node.items]
        if isinstance(node, ast.ChannelForm):
            return self.eval_channels(node, scope)
        if isinstance(node, ast.Call):
            fn = self.user_function(node.func, scope)
            if fn is not None:
                return self.call_user(fn, node, scope)
            spec = self.functions.get(node.func)
            if spec is None:
                raise PxNameError(
                    f"unknown function '{node.func}'",
                    node.name_span or node.span,
                    did_you_mean(
                        node.func,
                        list(self.functions)
                        + [
                            n
                            for n in scope.names()
                            if isinstance(self._peek(n, scope), UserFunction)
                        ],
                    ),
                )
            if (
                spec.special is None
                and spec.kind != "pixel"
                and spec.image_form is None
                and not spec.extra.get("varying")
            ):
                return self.call_builtin(spec, node, scope)
        return self.pixel(node, scope)

    def _peek(self, name: str, scope: Scope) -> Any:
        try:
            return scope.lookup(name)
        except KeyError:
            return None

    def lookup(self, name: str, span: Any, scope: Scope) -> Any:
        try:
            return scope.lookup(name)
        except KeyError:
            pass
        if name in self.functions:
            raise PxTypeError(f"'{name}' is a function: call it with ( )", span, f"{name}(…)")
        raise PxNameError(f"'{name}' is not defined", span, did_you_mean(name, scope.names()))

    def user_function(self, name: str, scope: Scope) -> UserFunction | None:
        try:
            v = scope.lookup(name)
        except KeyError:
            return None
        return v if isinstance(v, UserFunction) else None

    def pixel(self, node: Any, scope: Scope) -> Any:
        ev = self.pixel_evaluator(scope)
        result = ev.run([ast.ExprStmt(node.span, node)])
        return self._wrap(result.value, ev.first_header, ev.headers)

    def _wrap(self, value: Any, header: Any, headers: list[Any]) -> Any:
        """An image result becomes what the host makes of it, its first operand's header and
        every operand's (pxlang.api: an Image whose header describes the result)."""
        wrap = self.options.get("_wrap_image")
        if wrap is not None and hasattr(value, "ndim") and value.ndim in (2, 3):
            return wrap(value, header, headers)
        return value

    def pixel_evaluator(self, scope: Scope, **kwargs: Any) -> PixelEvaluator:
        opts = Options(
            # truncation happens where a PixelMath expression ends, not inside it: values the
            # pixel evaluator asks for (generator arguments…) come back untruncated
            truncate=self.options.get("truncate", True) and self._nested == 0,
            truncate_scalars=False,
            rescale=self.options.get("rescale", False),
            seed=self.options.get("seed"),
        )
        return PixelEvaluator(
            resolve=lambda name, span: self.lookup(name, span, scope),
            functions=self.functions.get,
            ctx=self.context(),
            whole=lambda n: self.eval_nested(n, scope),
            options=kwargs.pop("options", opts),
            is_user_function=lambda name: self.user_function(name, scope) is not None,
            **kwargs,
        )

    def eval_nested(self, node: Any, scope: Scope) -> Any:
        self._nested += 1
        try:
            return self.eval_whole(node, scope)
        finally:
            self._nested -= 1

    def eval_whole(self, node: Any, scope: Scope) -> Any:
        """A node the pixel evaluator hands back: user calls, built-in calls, lists, forms."""
        if isinstance(node, ast.Call):
            fn = self.user_function(node.func, scope)
            if fn is not None:
                return self.call_user(fn, node, scope)
            spec = self.functions.get(node.func)
            if spec is not None:
                return self.call_builtin(spec, node, scope)
        if isinstance(node, (ast.Binary, ast.Unary, ast.Index)):
            return self.pixel(node, scope)
        return self.eval(node, scope)

    def eval_channels(self, node: ast.ChannelForm, scope: Scope) -> Any:
        ev = self.pixel_evaluator(scope)
        programs = [[ast.ExprStmt(c.span, c.value)] for c in node.channels]
        result = ev.run_channels(programs)
        return self._wrap(result.value, ev.first_header, ev.headers)

    def call_builtin(self, spec: FunctionSpec, node: ast.Call, scope: Scope) -> Any:
        args = [self.eval(a, scope) for a in node.args]
        kwargs = {k.name: self.eval(k.value, scope) for k in node.kwargs}
        return self.invoke(spec, args, kwargs, node.span, scope)

    def invoke(
        self,
        spec: FunctionSpec,
        args: list[Any],
        kwargs: dict[str, Any],
        span: Any,
        scope: Scope | None = None,
    ) -> Any:
        ctx = self.context(span)
        ctx.names = ScopeView(scope or self.globals)
        try:
            return spec.call(ctx, args, kwargs)
        except PxError as e:
            e.with_span(span)
            raise
        except (ValueError, ArithmeticError, OSError, MemoryError) as e:
            from .errors import PxProcessError

            raise PxProcessError(f"{spec.name}(): {_plain(e)}", span) from e

    def call_user(self, fn: UserFunction, node: ast.Call, scope: Scope) -> Any:
        args = [self.eval(a, scope) for a in node.args]
        kwargs = {k.name: self.eval(k.value, scope) for k in node.kwargs}
        return self.apply(fn, args, kwargs, node.span)

    def apply(self, fn: UserFunction, args: list[Any], kwargs: dict[str, Any], span: Any) -> Any:
        params = fn.node.params
        if len(args) > len(params):
            raise PxTypeError(f"{fn.name}() takes {len(params)} arguments, got {len(args)}", span)
        local = Scope(fn.scope)
        for p, v in zip(params, args):
            local.vars[p.name] = v
        for k, v in kwargs.items():
            if k not in {p.name for p in params}:
                raise PxTypeError(
                    f"{fn.name}() has no parameter '{k}'",
                    span,
                    did_you_mean(k, [p.name for p in params]),
                )
            local.vars[k] = v
        for p in params:
            if p.name not in local.vars:
                if p.default is None:
                    raise PxTypeError(f"{fn.name}() needs a value for '{p.name}'", span)
                local.vars[p.name] = self.eval(p.default, fn.scope)
        self.depth += 1
        if self.depth > MAX_CALL_DEPTH:
            self.depth = 0
            raise PxRuntimeError(
                f"calls nest deeper than {MAX_CALL_DEPTH} (endless recursion?)", span
            )
        try:
            if isinstance(fn.node.body, ast.Block):
                return self.exec_block(fn.node.body.statements, local)
            return self.eval(fn.node.body, local)
        finally:
            self.depth -= 1


def coerce_param(given: Any, default: Any, name: str, span: Any) -> Any:
    """A parameter from the command line (a string) takes the type of its default."""
    if not isinstance(given, str):
        return given
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        try:
            return float(given)
        except ValueError:
            raise PxTypeError(f"parameter '{name}' is a number; got {given!r}", span) from None
    if isinstance(default, list):
        return [s.strip() for s in given.split(",") if s.strip()]
    if default is None:
        try:
            return TextNumber(given)
        except ValueError:
            return given
    return given


def describe(value: Any) -> str:
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, (int, float)):
        return f"the number {value:g}"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    d = getattr(value, "describe", None)
    if d is not None:
        return d()
    shape = getattr(to_pixel_value(value), "shape", None)
    if shape is not None:
        return f"an image {tuple(shape)}"
    return f"a {type(value).__name__}"


def _plain(e: BaseException) -> str:
    msg = str(e)
    if isinstance(e, OSError) and e.filename:
        return f"{e.strerror or msg}: {e.filename}"
    return msg


__all__ = ["Interpreter", "Scope", "UserFunction", "per_channel", "coerce_param"]
