"""The checker: every name, arity and keyword is verified before a pixel is touched.

It collects every diagnostic (``check_*`` raise one ``PxCheckErrors`` holding them all);
the interpreter does not start while any remain."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from . import ast
from .errors import PxCheckError, PxCheckErrors, PxError, PxNameError, did_you_mean
from .functions import PIXEL, FunctionSpec

PRAGMAS = {
    "rescale",
    "truncate",
    "64_bit",
    "single_thread",
    "optimize",
    "cache",
    "single_expr",
    "new_image",
    "alpha",
}
# functions people expect that PixelMath spells otherwise
NO_SUCH_FUNCTION = {
    "pow": "PixelMath has no pow(): write x^y",
    "atan2": "PixelMath has no atan2(): write atan(y, x)",
    "clamp": "use range(x, a, b)",
    "clip": "use range(x, a, b)",
    "if": "use iif(condition, a, b)",
    "ifelse": "use iif(condition, a, b)",
}
METASYMBOLS = {"T", "target", "M", "mask", "A", "active"}


class _UserSig:
    """What the checker knows of a user-defined function."""

    def __init__(self, node: ast.FuncDef):
        self.name = node.name
        self.params = [p.name for p in node.params]
        self.required = [p.name for p in node.params if p.default is None]


class Checker:
    def __init__(
        self,
        functions: Mapping[str, FunctionSpec],
        *,
        module_loader: Callable[[str, str], tuple[str, str] | None] | None = None,
        base_dir: str = ".",
        symbols: Mapping[str, ast.SymbolDef] | None = None,
        images: Iterable[str] | None = None,
        has_target: bool = False,
    ):
        self.functions = functions
        self.module_loader = module_loader
        self.base_dir = base_dir
        self.errors: list[PxError] = []
        self.user: dict[str, _UserSig] = {}
        self.symbols = dict(symbols or {})
        self.images = set(images) if images is not None else None
        self.has_target = has_target
        self._module_cache: dict[str, tuple[set[str], dict[str, _UserSig]]] = {}

    def error(
        self, message: str, span: Any, hint: str | None = None, cls: type = PxCheckError
    ) -> None:
        self.errors.append(cls(message, span, hint))

    # ------------------------------------------------------------ scripts
    def script(self, tree: ast.Script, names: Iterable[str] = ()) -> set[str]:
        if isinstance(names, Mapping):  # a live session: its functions keep their signatures
            for key, value in names.items():
                node = getattr(value, "node", None)
                if isinstance(node, ast.FuncDef):
                    self.user[key] = _UserSig(node)
        scope = set(names) | {"true", "false", "none"}
        module_names = self._top_level_names(tree.statements)
        deferred: list[ast.FuncDef] = []
        for st in tree.statements:
            self.statement(st, scope, deferred)
        for fn in deferred:
            inner = scope | module_names | {p.name for p in fn.params}
            for p in fn.params:
                if p.default is not None:
                    self.expr(p.default, scope | module_names)
            if isinstance(fn.body, ast.Block):
                self.block(fn.body, inner, deferred=None)
            else:
                self.expr(fn.body, inner)
        return scope

    def _top_level_names(self, statements: Iterable[Any]) -> set[str]:
        out: set[str] = set()
        for st in statements:
            if isinstance(st, (ast.Assign,)):
                out.add(st.target)
            elif isinstance(st, (ast.ParamDecl, ast.FuncDef)):
                out.add(st.name)
            elif isinstance(st, ast.For):
                out.add(st.var)
                out |= self._top_level_names(st.body.statements)
            elif isinstance(st, ast.If):
                out |= self._top_level_names(st.then.statements)
                if isinstance(st.orelse, ast.Block):
                    out |= self._top_level_names(st.orelse.statements)
                elif isinstance(st.orelse, ast.If):
                    out |= self._top_level_names([st.orelse])
        return out

    def block(self, block: ast.Block, scope: set[str], deferred: list[ast.FuncDef] | None) -> None:
        for st in block.statements:
            self.statement(st, scope, deferred)

    def statement(self, st: Any, scope: set[str], deferred: list[ast.FuncDef] | None) -> None:
        if isinstance(st, ast.Assign):
            self.expr(st.value, scope)
            if st.op != "=" and st.target not in scope:
                self.error(
                    f"'{st.target}' is not defined before '{st.op}'",
                    st.target_span,
                    did_you_mean(st.target, scope),
                    PxNameError,
                )
            scope.add(st.target)
        elif isinstance(st, ast.ExprStmt):
            self.expr(st.expr, scope)
        elif isinstance(st, ast.ParamDecl):
            if st.default is not None:
                self.expr(st.default, scope)
            scope.add(st.name)
        elif isinstance(st, ast.FuncDef):
            self.user[st.name] = _UserSig(st)
            scope.add(st.name)
            if deferred is not None:
                deferred.append(st)
            else:
                inner = scope | {p.name for p in st.params}
                if isinstance(st.body, ast.Block):
                    self.block(st.body, inner, None)
                else:
                    self.expr(st.body, inner)
        elif isinstance(st, ast.Import):
            self.import_(st, scope)
        elif isinstance(st, ast.For):
            self.expr(st.iterable, scope)
            scope.add(st.var)
            self.block(st.body, scope, deferred)
        elif isinstance(st, ast.If):
            self.expr(st.cond, scope)
            self.block(st.then, scope, deferred)
            if isinstance(st.orelse, ast.Block):
                self.block(st.orelse, scope, deferred)
            elif isinstance(st.orelse, ast.If):
                self.statement(st.orelse, scope, deferred)

    def import_(self, st: ast.Import, scope: set[str]) -> None:
        found = self.module_loader(st.module, self.base_dir) if self.module_loader else None
        if found is None:
            self.error(
                f"no module named '{st.module}'",
                st.span,
                "modules are stdlib names (e.g. palettes) or NAME.px files next to the script",
                PxNameError,
            )
            return
        if st.module not in self._module_cache:
            from .parse import parse_script

            text, path = found
            try:
                tree = parse_script(text, path)
            except PxError as e:
                self.errors.append(e)
                return
            sub = Checker(
                self.functions, module_loader=self.module_loader, base_dir=os.path.dirname(path)
            )
            names = sub.script(tree)
            self.errors.extend(sub.errors)
            self._module_cache[st.module] = (names - {"true", "false", "none"}, sub.user)
        names, users = self._module_cache[st.module]
        wanted = st.names if st.names is not None else [n for n in names if not n.startswith("_")]
        for n in wanted:
            if n not in names:
                self.error(
                    f"module '{st.module}' has no name '{n}'",
                    st.span,
                    did_you_mean(n, names),
                    PxNameError,
                )
                continue
            scope.add(n)
            if n in users:
                self.user[n] = users[n]

    # ------------------------------------------------------------ expressions
    def expr(self, node: Any, scope: set[str]) -> None:
        if isinstance(node, (ast.Number, ast.String)):
            return
        if isinstance(node, ast.Name):
            self.name(node, scope)
        elif isinstance(node, ast.Meta):
            self.meta(node)
        elif isinstance(node, ast.ListExpr):
            for i in node.items:
                self.expr(i, scope)
        elif isinstance(node, ast.Index):
            self.expr(node.target, scope)
            self.expr(node.index, scope)
        elif isinstance(node, ast.Unary):
            self.expr(node.operand, scope)
        elif isinstance(node, ast.Binary):
            self.expr(node.left, scope)
            self.expr(node.right, scope)
        elif isinstance(node, ast.ChannelForm):
            for c in node.channels:
                self.expr(c.value, scope)
        elif isinstance(node, ast.Call):
            self.call(node, scope)

    def name(self, node: ast.Name, scope: set[str]) -> None:
        if node.id in scope or node.id in self.symbols:
            return
        if self.images is not None and node.id in self.images:
            return
        if node.id in self.functions:
            self.error(
                f"'{node.id}' is a function: call it with ( )", node.span, f"write {node.id}(…)"
            )
            return
        candidates = set(scope) | set(self.symbols) | (self.images or set())
        what = "image or variable" if self.images is not None else "name"
        hint = did_you_mean(node.id, candidates)
        if hint is None and self.images is not None:
            hint = (
                ("images: " + ", ".join(sorted(self.images)))
                if self.images
                else ("no images are defined; pass files or --image NAME=PATH")
            )
        self.error(f"unknown {what} '{node.id}'", node.span, hint, PxNameError)

    def meta(self, node: ast.Meta) -> None:
        base = node.id.split("_", 1)[0] if node.id.startswith("T_") else node.id
        if base not in METASYMBOLS:
            self.error(
                f"Unknown metasymbol identifier '${node.id}'",
                node.span,
                "metasymbols are $T (target), $M (mask), $A (active image)",
            )
        elif not self.has_target and base in ("T", "target", "M", "mask"):
            self.error(
                f"'${node.id}' needs a target image",
                node.span,
                "give a target (pixelmath(…, target=…)) or name the image",
            )

    def call(self, node: ast.Call, scope: set[str]) -> None:
        for a in node.args:
            self.expr(a, scope)
        seen: set[str] = set()
        for k in node.kwargs:
            if k.name in seen:
                self.error(f"keyword '{k.name}' is given twice", k.span)
            seen.add(k.name)
            self.expr(k.value, scope)
        span = node.name_span or node.span
        if node.func in self.user and node.func in scope:
            self.user_call(self.user[node.func], node, span, scope)
            return
        spec = self.functions.get(node.func)
        if spec is None:
            if node.func in scope and node.func not in self.user:
                self.error(f"'{node.func}' is a variable, not a function", span)
                return
            cands = list(self.functions) + [n for n in self.user if n in scope]
            hint = NO_SUCH_FUNCTION.get(node.func) or did_you_mean(node.func, cands)
            self.error(f"unknown function '{node.func}'", span, hint, PxNameError)
            return
        self.builtin_call(spec, node, span, scope)

    def user_call(self, sig: _UserSig, node: ast.Call, span: Any, scope: set[str]) -> None:
        n = len(node.args)
        if n > len(sig.params):
            self.error(f"{sig.name}() takes at most {len(sig.params)} arguments, got {n}", span)
        given = set(sig.params[:n])
        for k in node.kwargs:
            if k.name not in sig.params:
                self.error(
                    f"{sig.name}() has no parameter '{k.name}'",
                    k.span,
                    did_you_mean(k.name, sig.params),
                )
            elif k.name in given:
                self.error(f"{sig.name}() got '{k.name}' twice", k.span)
            given.add(k.name)
        missing = [p for p in sig.required if p not in given]
        if missing:
            self.error(f"{sig.name}() needs {', '.join(repr(m) for m in missing)}", span)

    def builtin_call(self, spec: FunctionSpec, node: ast.Call, span: Any, scope: set[str]) -> None:
        n = len(node.args)
        lo, hi = spec.min_args(), spec.max_args()
        if spec.special == "iif" and n != 3:
            self.error(f"iif() takes 3 arguments (condition, if true, if false), got {n}", span)
            return
        if spec.special == "iswitch" and (n < 3 or n % 2 == 0):
            self.error(
                "iswitch(c1, e1[, c2, e2 …], default) takes condition/value pairs and a "
                f"default, got {n} arguments",
                span,
            )
            return
        names = {p.name for p in spec.params if not p.variadic and not p.varkw}
        kw_given = {k.name for k in node.kwargs}
        positional_given = {p.name for p in spec.positional[:n]}
        if hi is not None and n > hi:
            self.error(
                f"{spec.name}() takes at most {hi} argument{'s' if hi != 1 else ''}, got {n}",
                span,
                f"usage: {spec.signature()}",
            )
        for k in node.kwargs:
            if k.name not in names and spec.varkw is None:
                hint = None
                if k.name in scope or (self.images and k.name in self.images):
                    hint = "'=' passes a keyword argument; to compare, use '=='"
                hint = hint or did_you_mean(k.name, names)
                if hint is None and spec.kind == PIXEL:
                    hint = f"{spec.name}() takes no keyword arguments"
                self.error(f"{spec.name}() has no keyword '{k.name}'", k.span, hint)
            elif k.name in positional_given:
                self.error(f"{spec.name}() got '{k.name}' both by position and by keyword", k.span)
        required = [p.name for p in spec.positional if p.required]
        missing = [p for p in required[n:] if p not in kw_given]
        if n < lo and missing:
            self.error(
                f"{spec.name}() needs at least {lo} argument{'s' if lo != 1 else ''}, got {n}",
                span,
                f"usage: {spec.signature()}",
            )

    # ------------------------------------------------------------ PixelMath fields
    def pm_program(self, program: ast.PmProgram) -> None:
        for d in program.directives:
            self.directive(d)
        for st in program.statements:
            if isinstance(st, ast.Assign):
                self.expr(st.value, set())
                self.pm_assign(st)
            else:
                self.expr(st.expr, set())

    def directive(self, d: ast.Directive) -> None:
        if d.name == "pragma":
            for a in d.args:
                base = a[3:] if a.startswith("no-") else a
                if base not in PRAGMAS:
                    self.error(f"unknown pragma '{a}'", d.span, did_you_mean(base, PRAGMAS))
        elif d.name != "symbols":
            self.error(
                f"unknown directive '.{d.name}'", d.span, "directives are .pragma and .symbols"
            )

    def pm_assign(self, st: ast.Assign) -> None:
        sym = self.symbols.get(st.target)
        if sym is None:
            self.error(
                f"'{st.target}' is assigned but not declared in Symbols",
                st.target_span,
                f'declare it as a variable: symbols="{st.target}"',
            )
        elif sym.kind == "constant":
            self.error(
                f"'{st.target}' is a constant and cannot be assigned",
                st.target_span,
                f'declare it as a variable: symbols="{st.target}"',
            )
        elif sym.kind == "global":
            allowed = {"+": ("+=", "-=", "--="), "*": ("*=", "/=")}[sym.op or "+"]
            if st.op not in allowed:
                self.error(
                    f"'{st.target}' is a global({sym.op}) accumulator: assign it with "
                    f"{' or '.join(allowed)}, not '{st.op}'",
                    st.target_span,
                    f"write {st.target} {allowed[0]} …",
                )

    def symbols_(self, symbols: ast.Symbols) -> None:
        for d in symbols.defs:
            if d.kind == "call" and d.call is not None:
                self.expr(d.call, set())


def _raise(checker: Checker) -> None:
    if checker.errors:
        raise PxCheckErrors(checker.errors)


def check_script(
    tree: ast.Script,
    functions: Mapping[str, FunctionSpec],
    *,
    names: Iterable[str] | Mapping[str, Any] = (),
    module_loader: Callable[[str, str], tuple[str, str] | None] | None = None,
    base_dir: str = ".",
) -> list[PxError]:
    """Check a script; raise ``PxCheckErrors`` with every problem found."""
    c = Checker(functions, module_loader=module_loader, base_dir=base_dir)
    c.script(tree, names)
    _raise(c)
    return c.errors


def script_diagnostics(
    tree: ast.Script, functions: Mapping[str, FunctionSpec], **kw: Any
) -> list[PxError]:
    """The checker's diagnostics, without raising."""
    names = kw.pop("names", ())
    c = Checker(functions, **kw)
    c.script(tree, names)
    return c.errors


def check_pixelmath(
    programs: list[ast.PmProgram | None],
    symbols: ast.Symbols,
    functions: Mapping[str, FunctionSpec],
    *,
    images: Iterable[str] | None,
    has_target: bool,
) -> None:
    defs = {d.name: d for d in symbols.defs}
    c = Checker(functions, symbols=defs, images=images, has_target=has_target)
    c.symbols_(symbols)
    for p in programs:
        if p is not None:
            c.pm_program(p)
    _raise(c)
