"""The REPL's parts on their own: completion at given cursor positions, the signature
toolbar, the validator's cursor placement, the cursor scanner and the Pygments lexer."""

from __future__ import annotations

import re

import numpy as np
import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.validation import ValidationError
from pygments.token import Comment, Keyword, Name, Number, Operator, String

from pxlang.image.store import Image
from pxlang.lexer import PxLexer, grammar_vocabulary
from pxlang.repl import Session
from pxlang.run.repl.completer import PxCompleter
from pxlang.run.repl.cursor import scan
from pxlang.run.repl.toolbar import signature_fragments, toolbar_text
from pxlang.run.repl.validator import PxValidator


@pytest.fixture
def session(tmp_path):
    (tmp_path / "lights").mkdir()
    (tmp_path / "lights" / "L_001.fits").write_bytes(b"")
    (tmp_path / "light_notes.txt").write_text("x")
    (tmp_path / "mytools.px").write_text("def boost(img, k=2) = img*k\nlevel = 0.1\n")
    s = Session(base_dir=str(tmp_path))
    s.interp.globals.vars["OIII"] = Image(np.zeros((4, 5), np.float32))
    s.run("def hoo(ha, o3, k=0.5) = { R = ha; G = (o3*k)+(ha*~k); B = o3 }")
    s.run("gain = 0.8")
    return s


def complete(session: Session, text: str) -> list[str]:
    comp = PxCompleter(session)
    return [c.text for c in comp.get_completions(Document(text), CompleteEvent(True, False))]


def test_builtins_and_session_names_complete(session):
    assert complete(session, "x = gco") == ["gconv"]
    assert complete(session, "OI") == ["OIII"]
    assert complete(session, "ga")[:2] == ["gain", "gamma"]  # session names come first
    assert complete(session, "y = ho")[0] == "hoo"


def test_keyword_arguments_of_the_call_under_the_cursor(session):
    # after '(' and ',': the parameters not given yet, as name=
    assert complete(session, "gconv(")[:5] == ["img=", "sigma=", "rho=", "theta=", "eps="]
    assert complete(session, "gconv(OIII, ")[:4] == ["sigma=", "rho=", "theta=", "eps="]
    assert complete(session, "gconv(OIII, sigma=3, ")[:3] == ["rho=", "theta=", "eps="]
    assert complete(session, "integrate(files('a'), rej")[0] == "rejection="
    # the innermost call counts; a finished call does not
    assert complete(session, "mtf(0.2, gconv(OIII, th")[0] == "theta="
    assert "theta=" not in complete(session, "mtf(gconv(OIII), ")
    # user-defined functions too
    assert complete(session, "hoo(OIII, ")[:2] == ["o3=", "k="]
    # not after an operator inside the argument
    assert not any(c.endswith("=") for c in complete(session, "gconv(OIII * "))


def test_keywords_are_those_the_grammar_accepts_here(session):
    assert complete(session, "x = 1\ni")[:2] == ["import", "if"]
    assert complete(session, "for f i")[0] == "in"
    assert complete(session, "if gain > 1 { 2 } el")[0] == "else"
    assert "if" not in complete(session, "max(i")  # no statements inside a call


def test_modules_after_import(session):
    assert complete(session, "import pa") == ["palettes"]
    assert "mytools" in complete(session, "import ")
    assert complete(session, "from mytools import b") == ["boost"]
    assert complete(session, "from palettes import bicolour, hs") == ["hso"]


def test_file_paths_inside_strings(session):
    got = complete(session, 'L = load("lig')
    assert sorted(got) == ["ht_notes.txt", "hts"]
    assert complete(session, 'L = files("lights/L_') == ["001.fits"]
    assert complete(session, "# a comment gco") == []


def test_completion_never_evaluates(session, tmp_path):
    complete(session, 'save(OIII, "written.fits")\nsa')
    complete(session, 'y = save(OIII, "written2.fits") + ')
    assert not list(tmp_path.glob("written*"))
    assert "y" not in session.names()


def test_toolbar_shows_the_signature_and_the_current_argument(session):
    text = toolbar_text(session, "gconv(OIII, ")
    assert "gconv(img, sigma=2, rho=1, theta=0, eps=0.01)" in text
    assert "Gaussian convolution" in text
    frags = signature_fragments(session, "gconv(OIII, ")
    current = [t for style, t in frags if style.endswith(".current")]
    assert current == ["sigma=2"]
    frags = signature_fragments(session, "gconv(OIII, eps=0.1, theta=")
    assert [t for style, t in frags if style.endswith(".current")] == ["theta=0"]
    assert [t for s, t in signature_fragments(session, "max(1, 2, 3, ") if ".current" in s] == [
        "*values"
    ]
    # a string argument: still the call's help
    assert "save(image, path" in toolbar_text(session, 'save(OIII, "a.fi')


def test_toolbar_for_user_functions_and_outside_calls(session):
    text = toolbar_text(session, "hoo(OIII, ")
    assert "hoo(ha, o3, k=0.5)" in text and "your function" in text
    assert "Ctrl-R" in toolbar_text(session, "x = 1")
    assert "Ctrl-R" in toolbar_text(session, "unknown_fn(")


def test_validator_moves_the_cursor_to_the_error_and_lets_incomplete_input_pass():
    v = PxValidator()
    with pytest.raises(ValidationError) as e:
        v.validate(Document("a = 1\ny = (0.4*Ha)_(0.6*OIII)"))
    assert e.value.cursor_position == len("a = 1\ny = (0.4*Ha)")
    assert "unexpected '_'" in e.value.message
    v.validate(Document("a = 1\ny = (0.4*Ha)_(0.6*OIII)"))  # the same text again: runs
    v.validate(Document("def f(a) {"))  # unfinished: not an error
    v.validate(Document(":time 1 +"))


def test_cursor_scanner():
    st = scan('files("a(b", IMAGETYP="Bias"), max(1')
    assert st.call is not None and st.call.func == "max" and st.call.arg_index == 0
    st = scan('files("a(b", IMAGETYP="Bias", ')
    assert st.call.func == "files" and st.call.keywords == {"IMAGETYP"}
    assert scan('load("pa').string_start == 5
    assert scan("x = 1 /* open").in_comment
    st = scan("if (a == 1) { f(b <= 2, ")
    assert st.call.func == "f" and st.call.keywords == set() and st.call.arg_index == 1


def test_lexer_tokens_follow_the_grammar():
    src = 'param k = 0.5  # c\ndef f(a) = ~a -- $T &| .5e3 // x\n/* m\n */ s = "q\\"q" + mtf(k, Ha)'
    toks = [(t, v) for t, v in PxLexer().get_tokens(src) if v.strip()]
    assert (Keyword, "param") in toks and (Keyword, "def") in toks
    assert (Name.Function, "f") in toks and (Name.Builtin, "mtf") in toks
    assert (Name, "Ha") in toks and (Name.Variable.Magic, "$T") in toks
    assert (Operator, "--") in toks and (Operator, "~") in toks and (Operator, "&|") in toks
    assert (Number, ".5e3") in toks and (String, '"q\\"q"') in toks
    assert [v for t, v in toks if t in Comment] == ["# c", "// x", "/* m\n */"]
    # every operator terminal of the grammar is one operator token
    grammar_ops = set(re.findall(r'^[A-Z_]+: "([^"]+)"$', open_grammar(), re.M))
    assert grammar_ops == set(grammar_vocabulary()["operators"]) and "&|" in grammar_ops
    for op in grammar_ops:
        lexed = [(t, v) for t, v in PxLexer().get_tokens(f"a {op} b") if v.strip()]
        assert lexed[1] == (Operator, op), op


def open_grammar() -> str:
    from pxlang.lang.parse import grammar_text

    return grammar_text()


def test_lexer_is_a_pygments_lexer_by_alias():
    from pygments import highlight
    from pygments.formatters import HtmlFormatter

    html = highlight("x = mtf(0.25, Ha) -- 1", PxLexer(), HtmlFormatter())
    assert '<span class="nb">mtf</span>' in html and '<span class="o">--</span>' in html
    assert "px" in PxLexer.aliases and "*.px" in PxLexer.filenames
