"""lark parse tree -> AST. Only builds; never evaluates."""

from __future__ import annotations

from typing import Any

from lark import Token, Transformer, Tree, v_args

from . import ast
from .errors import PxSyntaxError
from .source import Source, Span

CHANNELS = {"R": "R", "K": "R", "G": "G", "B": "B"}


def _is_tok(x: Any, *types: str) -> bool:
    return isinstance(x, Token) and (not types or x.type in types)


@v_args(meta=True)
class Builder(Transformer):
    def __init__(self, source: Source):
        super().__init__(visit_tokens=False)
        self.source = source

    # ------------------------------------------------------------ spans
    def span(self, meta: Any) -> Span:
        if getattr(meta, "empty", True):
            return Span.at(self.source, 1, 1)
        start, end = meta.start_pos, meta.end_pos
        return self._span(start, end)

    def _span(self, start: int, end: int) -> Span:
        a = Span.from_offset(self.source, start)
        b = Span.from_offset(self.source, max(start, end - 1))
        return ast.Span(self.source, a.line, a.col, b.line, b.col + 1)

    def tspan(self, tok: Token) -> Span:
        return self._span(tok.start_pos, tok.end_pos)

    # ------------------------------------------------------------ atoms
    def number(self, meta, ch):
        return ast.Number(self.tspan(ch[0]), float(ch[0]))

    def string(self, meta, ch):
        tok = ch[0]
        return ast.String(self.tspan(tok), _unquote(tok, self.tspan(tok)))

    def name(self, meta, ch):
        return ast.Name(self.tspan(ch[0]), str(ch[0]))

    def meta(self, meta, ch):
        return ast.Meta(self.tspan(ch[0]), str(ch[0])[1:])

    def list(self, meta, ch):
        return ast.ListExpr(self.span(meta), tuple(c for c in ch if c is not None))

    def index(self, meta, ch):
        return ast.Index(self.span(meta), ch[0], ch[1])

    def unop(self, meta, ch):
        return ast.Unary(self.span(meta), str(ch[0]), ch[1])

    def binop(self, meta, ch):
        left, op, right = ch
        return ast.Binary(self.span(meta), str(op), left, right)

    def kwarg(self, meta, ch):
        name = ch[0]
        value = ch[-1]
        return ast.KwArg(self.span(meta), str(name), value)

    def args(self, meta, ch):
        return list(ch)

    def call(self, meta, ch):
        name_tok = ch[0]
        items = ch[1] if len(ch) > 1 and ch[1] is not None else []
        args, kwargs = [], []
        for item in items:
            if isinstance(item, ast.KwArg):
                kwargs.append(item)
            else:
                if kwargs:
                    raise PxSyntaxError(
                        f"a positional argument follows the keyword argument '{kwargs[-1].name}'",
                        kwargs[-1].span,
                        "to compare two values use '=='; keyword arguments (key=value) go last",
                    )
                args.append(item)
        return ast.Call(
            self.span(meta), str(name_tok), tuple(args), tuple(kwargs), self.tspan(name_tok)
        )

    def channel_assign(self, meta, ch):
        name_tok = ch[0]
        value = ch[-1]
        if str(name_tok) not in CHANNELS:
            raise PxSyntaxError(
                f"'{name_tok}' is not a channel: a per-channel form assigns R (or K), G and B",
                self.tspan(name_tok),
                "write { R = …; G = …; B = … }; to name an image, assign it outside the braces",
            )
        return ast.ChannelAssign(self.span(meta), CHANNELS[str(name_tok)], value)

    def _channel_tuple(self, meta, ch):
        assigns = [c for c in ch if isinstance(c, ast.ChannelAssign)]
        seen: dict[str, ast.ChannelAssign] = {}
        for a in assigns:
            if a.channel in seen:
                raise PxSyntaxError(
                    f"channel {a.channel} is assigned twice", a.span, "assign each of R, G, B once"
                )
            seen[a.channel] = a
        missing = [c for c in "RGB" if c not in seen]
        if missing:
            raise PxSyntaxError(
                f"the per-channel form has no {' and '.join(missing)} expression",
                self.span(meta),
                "write all three: { R = …; G = …; B = … }",
            )
        return tuple(seen[c] for c in "RGB")

    def channel_list(self, meta, ch):
        return (meta, ch)

    def channel_form(self, meta, ch):
        inner_meta, inner = ch[0]
        return ast.ChannelForm(self.span(meta), self._channel_tuple(meta, inner))

    def channels(self, meta, ch):
        return ast.Channels(self.span(meta), self._channel_tuple(meta, ch))

    # ------------------------------------------------------------ statements
    def assign_op(self, meta, ch):
        return ch[0]

    def assign(self, meta, ch):
        name, op, value = ch
        return ast.Assign(self.span(meta), str(name), str(op), value, self.tspan(name))

    pm_assign = assign

    def expr_stmt(self, meta, ch):
        return ast.ExprStmt(self.span(meta), ch[0])

    def param_decl(self, meta, ch):
        ch = [c for c in ch if not _is_tok(c, "ASSIGN")]
        return ast.ParamDecl(self.span(meta), str(ch[0]), ch[1] if len(ch) > 1 else None)

    def def_param(self, meta, ch):
        ch = [c for c in ch if not _is_tok(c, "ASSIGN")]
        return ast.DefParam(self.span(meta), str(ch[0]), ch[1] if len(ch) > 1 else None)

    def def_params(self, meta, ch):
        return tuple(ch)

    def def_stmt(self, meta, ch):
        ch = [c for c in ch if not _is_tok(c, "ASSIGN")]
        name, params, body = ch[0], ch[1] or (), ch[2]
        seen = set()
        for p in params:
            if p.name in seen:
                raise PxSyntaxError(f"parameter '{p.name}' appears twice", p.span)
            seen.add(p.name)
        return ast.FuncDef(self.span(meta), str(name), tuple(params), body)

    def block(self, meta, ch):
        return ast.Block(self.span(meta), tuple(_as_stmt(c) for c in ch if c is not None))

    def import_all(self, meta, ch):
        return ast.Import(self.span(meta), str(ch[0]), None)

    def import_names(self, meta, ch):
        return ast.Import(self.span(meta), str(ch[0]), tuple(str(c) for c in ch[1:]))

    def for_stmt(self, meta, ch):
        return ast.For(self.span(meta), str(ch[0]), ch[1], ch[2])

    def if_stmt(self, meta, ch):
        orelse = ch[2] if len(ch) > 2 else None
        return ast.If(self.span(meta), ch[0], ch[1], orelse)

    def script(self, meta, ch):
        return ast.Script(self.span(meta), tuple(_as_stmt(c) for c in ch if c is not None))

    # ------------------------------------------------------------ PixelMath fields
    def pm_program(self, meta, ch):
        directives, stmts = [], []
        for c in ch:
            if _is_tok(c, "DIRECTIVE"):
                directives.append(_directive(c, self.tspan(c)))
            else:
                stmts.append(_as_stmt(c))
        return ast.PmProgram(self.span(meta), tuple(directives), tuple(stmts))

    def negative(self, meta, ch):
        return -float(ch[-1])

    def signed_number(self, meta, ch):  # "+" NUMBER
        return float(ch[-1])

    def op_arg(self, meta, ch):
        return str(ch[0])

    def symbol_constant(self, meta, ch):
        return ("constant", tuple(float(c) for c in ch))

    def symbol_call(self, meta, ch):
        name_tok, args = ch[0], [c for c in ch[1:] if c is not None]
        return ("call", name_tok, args, self.span(meta))

    def symbol_def(self, meta, ch):
        ch = [c for c in ch if not _is_tok(c, "ASSIGN")]
        name = str(ch[0])
        span = self.span(meta)
        if len(ch) == 1:
            return ast.SymbolDef(span, name, "variable")
        value = ch[1]
        if isinstance(value, (Token, float)):
            value = ("constant", (float(value),))
        if value[0] == "constant":
            vals = value[1]
            if len(vals) not in (1, 3):
                raise PxSyntaxError(
                    f"symbol '{name}': a per-channel constant has 1 or 3 values, not {len(vals)}",
                    span,
                    "write k = 0.5 or k = 0.9:1.0:0.95 (R:G:B)",
                )
            return ast.SymbolDef(span, name, "constant", vals)
        _, fname, args, cspan = value
        fname = str(fname)
        if fname == "init":
            nums = [a for a in args if isinstance(a, (float, Token))]
            if len(nums) != 1 or len(args) != 1:
                raise PxSyntaxError(f"symbol '{name}': init() takes one number", cspan)
            return ast.SymbolDef(span, name, "init", (float(nums[0]),))
        if fname == "global":
            if not args or args[0] not in ("+", "*"):
                raise PxSyntaxError(
                    f"symbol '{name}': global() needs the operator first",
                    cspan,
                    "write global(+) for a sum or global(*) for a product, e.g. s = global(+, 0)",
                )
            rest = [float(a) for a in args[1:]]
            if len(rest) > 1:
                raise PxSyntaxError(
                    f"symbol '{name}': global(op[, initial]) takes 1 or 2 arguments", cspan
                )
            init = rest[0] if rest else (0.0 if args[0] == "+" else 1.0)
            return ast.SymbolDef(span, name, "global", (init,), op=args[0])
        call_args = []
        for a in args:
            if isinstance(a, (float, Token)) and not isinstance(a, str):
                call_args.append(ast.Number(cspan, float(a)))
            elif isinstance(a, Token):
                call_args.append(ast.Number(cspan, float(a)))
            elif isinstance(a, ast.Node):
                call_args.append(a)
            else:
                raise PxSyntaxError(f"symbol '{name}': '{a}' is not a valid argument", cspan)
        call = ast.Call(cspan, fname, tuple(call_args), (), cspan)
        return ast.SymbolDef(span, name, "call", call=call)

    def symbols(self, meta, ch):
        defs = [c for c in ch if isinstance(c, ast.SymbolDef)]
        seen = set()
        for d in defs:
            if d.name in seen:
                raise PxSyntaxError(f"symbol '{d.name}' is declared twice", d.span)
            seen.add(d.name)
        return ast.Symbols(self.span(meta), tuple(defs))

    def __default__(self, data, children, meta):  # pragma: no cover - grammar guard
        return Tree(data, children, meta)


def _as_stmt(node: Any) -> Any:
    if isinstance(
        node, (ast.Assign, ast.ExprStmt, ast.ParamDecl, ast.FuncDef, ast.Import, ast.For, ast.If)
    ):
        return node
    return ast.ExprStmt(node.span, node)


def _directive(tok: Token, span: Span) -> ast.Directive:
    text = str(tok)[1:].rstrip(";").strip()
    name, _, rest = text.partition(" ")
    args = tuple(a.strip() for a in rest.split(",") if a.strip())
    return ast.Directive(span, name, args)


_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


def _unquote(tok: Token, span: Span) -> str:
    body = str(tok)[1:-1]
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)
