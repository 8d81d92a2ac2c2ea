"""The grammar: builds strictly, parses the language, and gives friendly syntax errors."""

from __future__ import annotations

import pytest
from lark import Lark

from pxlang.lang import ast
from pxlang.lang.errors import PxIncomplete, PxSyntaxError
from pxlang.lang.parse import STARTS, grammar_text, parse
from pxlang.lang.syntax_errors import CATALOGUE


def test_grammar_builds_strict_lalr_without_conflicts():
    Lark(grammar_text(), parser="lalr", lexer="basic", start=list(STARTS), strict=True)


def expr(text: str) -> ast.Expr:
    prog = parse(text, start="pm_program")
    return prog.statements[-1].expr


def shape(node) -> str:
    """A compact s-expression of an expression tree."""
    if isinstance(node, ast.Binary):
        return f"({node.op} {shape(node.left)} {shape(node.right)})"
    if isinstance(node, ast.Unary):
        return f"({node.op} {shape(node.operand)})"
    if isinstance(node, ast.Number):
        return f"{node.value:g}"
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        return f"{node.func}({' '.join(shape(a) for a in node.args)})"
    if isinstance(node, ast.Index):
        return f"{shape(node.target)}[{shape(node.index)}]"
    if isinstance(node, ast.Meta):
        return "$" + node.id
    raise AssertionError(node)


@pytest.mark.parametrize(
    "text, tree",
    [
        ("2^3^2", "(^ (^ 2 3) 2)"),  # every binary operator is left-associative
        ("-x^2", "(^ (- x) 2)"),  # unary binds tighter than ^
        ("~x^2", "(^ (~ x) 2)"),
        ("2^-1", "(^ 2 (- 1))"),
        ("a--b", "(-- a b)"),  # '--' is one token: absolute difference
        ("a - -b", "(- a (- b))"),
        ("a-b-c", "(- (- a b) c)"),
        ("a/b*c", "(* (/ a b) c)"),
        ("a+b*c", "(+ a (* b c))"),
        ("a*b^c", "(* a (^ b c))"),
        ("a < b == c", "(== (< a b) c)"),
        ("a == b & c", "(& (== a b) c)"),
        ("a & b &| c", "(&| (& a b) c)"),
        ("a &| b | c", "(| (&| a b) c)"),
        ("a | b && c", "(&& (| a b) c)"),
        ("a && b || c", "(|| (&& a b) c)"),
        ("a !& b", "(!& a b)"),
        ("a !&| b", "(!&| a b)"),
        ("a !| b", "(!| a b)"),
        ("!a", "(! a)"),
        ("{a+b}*c", "(* (+ a b) c)"),  # braces group, as in PixelMath
        ("Ha[0] + $T[2]", "(+ Ha[0] $T[2])"),
        ("iif(Ha > .5, 1e-3, 2.5E2)", "iif((> Ha 0.5) 0.001 250))"[:-1]),
        ("max(Ha, OIII) // comment", "max(Ha OIII)"),
        ("/* a\nblock */ Ha * 2", "(* Ha 2)"),
        ("a % b", "(% a b)"),
    ],
)
def test_pixelmath_precedence_and_associativity(text, tree):
    assert shape(expr(text)) == tree


def test_statement_list_last_value_and_directives():
    prog = parse(".pragma no-truncate, 64_bit;\na = Ha*2; a += 1; a", start="pm_program")
    assert [d.args for d in prog.directives] == [("no-truncate", "64_bit")]
    assert isinstance(prog.statements[0], ast.Assign) and prog.statements[1].op == "+="
    assert shape(prog.statements[-1].expr) == "a"


def test_symbols_grammar():
    s = parse(
        "k = 0.5, w = 0.9:1:0.95; n, s = global(+), p = global(*, 2), t = init(-1),"
        ' e = keyword_value($T, "EXPTIME")',
        start="symbols",
    )
    kinds = {d.name: (d.kind, d.values, d.op) for d in s.defs}
    assert kinds["k"] == ("constant", (0.5,), None)
    assert kinds["w"] == ("constant", (0.9, 1.0, 0.95), None)
    assert kinds["n"] == ("variable", (), None)
    assert kinds["s"] == ("global", (0.0,), "+")
    assert kinds["p"] == ("global", (2.0,), "*")
    assert kinds["t"] == ("init", (-1.0,), None)
    assert kinds["e"][0] == "call"


def test_script_constructs():
    tree = parse(
        'import palettes\nfrom palettes import hoo, sho\nparam lights = "x/*.fits"\n'
        "def f(a, b=1) = a*b\n"
        "def g(a) {\n  t = a + 1\n  t * 2\n}\n"
        'x = integrate(files("bias/",\n   IMAGETYP="Bias"), rejection="winsorized")\n'
        'for n in ["Ha", "OIII"] { y = n }\n'
        "if 1 > 2 { z = 1 }\nelse if 2 > 1 { z = 2 } else { z = 3 }\n"
        "c = { R = Ha; G = (Ha*0.5)+(OIII*~0.5); B = OIII }\n"
        "c2 = {\n  K = Ha\n  G = Ha\n  B = Ha\n}\n",
        start="script",
    )
    kinds = [type(s).__name__ for s in tree.statements]
    assert kinds == [
        "Import",
        "Import",
        "ParamDecl",
        "FuncDef",
        "FuncDef",
        "Assign",
        "For",
        "If",
        "Assign",
        "Assign",
    ]
    call = tree.statements[5].value
    assert call.func == "integrate" and [k.name for k in call.kwargs] == ["rejection"]
    assert isinstance(tree.statements[8].value, ast.ChannelForm)
    assert [c.channel for c in tree.statements[9].value.channels] == ["R", "G", "B"]
    assert isinstance(tree.statements[7].orelse, ast.If)


def test_spans_point_at_the_source():
    tree = parse("x = 1\ny = foo(2,\n  bar)\n", "s.px")
    call = tree.statements[1].value
    assert (call.span.line, call.span.col) == (2, 5)
    assert (call.args[1].span.line, call.args[1].span.col) == (3, 3)
    assert str(call.span).startswith("s.px:2:5")


@pytest.mark.parametrize(
    "label, snippet, start, message, hint", CATALOGUE, ids=[c[0] for c in CATALOGUE]
)
def test_friendly_syntax_errors(label, snippet, start, message, hint):
    with pytest.raises(PxSyntaxError) as exc:
        parse(snippet, start=start)
    err = exc.value
    assert message in err.message
    assert hint in (err.hint or "")
    rendered = err.render()
    assert "<expr>:1:" in rendered and "^" in rendered


def test_seed_typo_points_at_the_underscore():
    with pytest.raises(PxSyntaxError) as exc:
        parse("x = 0.5\ny = (0.4*Ha)_(0.6*OIII)\n", "bad.px")
    err = exc.value
    assert (err.line, err.column) == (2, 13)
    assert err.render().splitlines()[0] == "bad.px:2:13: error: unexpected '_'"
    assert err.render().splitlines()[2].index("^") == 2 + 12


def test_unclosed_block_is_incomplete_for_the_repl():
    with pytest.raises(PxIncomplete):
        parse("def f(a) {\n  a + 1\n")
    with pytest.raises(PxIncomplete):
        parse("x = max(Ha,\n")


def test_keywords_do_not_swallow_longer_names():
    tree = parse("params = 1\nimported = 2\nformat = 3\nifx = params + imported + format")
    assert [s.target for s in tree.statements] == ["params", "imported", "format", "ifx"]
