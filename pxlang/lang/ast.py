"""The syntax tree: frozen dataclasses, each node with its source span.

Naming chain: grammar alias ``channel_form`` -> class ``ChannelForm`` -> ``visit_ChannelForm``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .source import Span


@dataclass(frozen=True)
class Node:
    span: Span = field(compare=False, repr=False)


# ----------------------------------------------------------------- expressions
@dataclass(frozen=True)
class Number(Node):
    value: float


@dataclass(frozen=True)
class String(Node):
    value: str


@dataclass(frozen=True)
class Name(Node):
    id: str


@dataclass(frozen=True)
class Meta(Node):
    """A PixelMath metasymbol: ``$T``, ``$target``, ``$M``, ``$T_Ha`` ..."""

    id: str


@dataclass(frozen=True)
class ListExpr(Node):
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Index(Node):
    target: Expr
    index: Expr


@dataclass(frozen=True)
class Unary(Node):
    op: str
    operand: Expr


@dataclass(frozen=True)
class Binary(Node):
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class KwArg(Node):
    name: str
    value: Expr


@dataclass(frozen=True)
class Call(Node):
    func: str
    args: tuple[Expr, ...]
    kwargs: tuple[KwArg, ...]
    name_span: Span = field(compare=False, repr=False, default=None)  # type: ignore[assignment]


@dataclass(frozen=True)
class ChannelAssign(Node):
    channel: str  # "R" (or "K"), "G", "B"
    value: Expr


@dataclass(frozen=True)
class ChannelForm(Node):
    """``{ R = …; G = …; B = … }``: one RGB image from three per-channel expressions."""

    channels: tuple[ChannelAssign, ...]


Expr = Number | String | Name | Meta | ListExpr | Index | Unary | Binary | Call | ChannelForm


# ----------------------------------------------------------------- statements
@dataclass(frozen=True)
class Assign(Node):
    target: str
    op: str  # "=", "+=", ...
    value: Expr
    target_span: Span = field(compare=False, repr=False, default=None)  # type: ignore[assignment]


@dataclass(frozen=True)
class ExprStmt(Node):
    expr: Expr


@dataclass(frozen=True)
class ParamDecl(Node):
    name: str
    default: Expr | None


@dataclass(frozen=True)
class DefParam(Node):
    name: str
    default: Expr | None


@dataclass(frozen=True)
class Block(Node):
    statements: tuple[Stmt, ...]


@dataclass(frozen=True)
class FuncDef(Node):
    name: str
    params: tuple[DefParam, ...]
    body: Expr | Block


@dataclass(frozen=True)
class Import(Node):
    module: str
    names: tuple[str, ...] | None  # None: every public name


@dataclass(frozen=True)
class For(Node):
    var: str
    iterable: Expr
    body: Block


@dataclass(frozen=True)
class If(Node):
    cond: Expr
    then: Block
    orelse: Block | If | None


Stmt = Assign | ExprStmt | ParamDecl | FuncDef | Import | For | If


@dataclass(frozen=True)
class Script(Node):
    statements: tuple[Stmt, ...]


# ----------------------------------------------------------------- PixelMath fields
@dataclass(frozen=True)
class Directive(Node):
    """``.pragma no-truncate, 64_bit;`` -> name "pragma", args ("no-truncate", "64_bit")."""

    name: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class PmProgram(Node):
    directives: tuple[Directive, ...]
    statements: tuple[Assign | ExprStmt, ...]


@dataclass(frozen=True)
class SymbolDef(Node):
    """One Symbols entry. kind: variable | constant | init | global."""

    name: str
    kind: str
    values: tuple[float, ...] = ()  # constant (1 or 3 values) / init value / global initial
    op: str | None = None  # global accumulator: "+" or "*"
    call: Call | None = None  # a symbol function: width(), keyword_value("EXPTIME")...


@dataclass(frozen=True)
class Symbols(Node):
    defs: tuple[SymbolDef, ...]


@dataclass(frozen=True)
class Channels(Node):
    """The inline per-channel form from the command line or the API."""

    channels: tuple[ChannelAssign, ...]


def walk(node: object):  # noqa: ANN201 - generator of nodes
    """Every node under ``node`` (pre-order)."""
    if isinstance(node, Node):
        yield node
        for value in node.__dict__.values():
            if isinstance(value, (Node, tuple)):
                yield from walk(value)
    elif isinstance(node, tuple):
        for item in node:
            yield from walk(item)
