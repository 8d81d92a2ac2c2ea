"""Random text and random token sequences reach the parser and the checker: the only
exceptions allowed out are PxError (never a lark, Python or numpy error)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pxlang
from pxlang.api import functions, module_loader
from pxlang.lang.check import script_diagnostics
from pxlang.lang.errors import PxError
from pxlang.lang.parse import parse

TOKENS = [
    "Ha",
    "OIII",
    "x",
    "R",
    "G",
    "B",
    "K",
    "0",
    "1.5",
    ".5",
    "2e3",
    "+",
    "-",
    "--",
    "*",
    "/",
    "%",
    "^",
    "~",
    "!",
    "<",
    "<=",
    "==",
    "!=",
    "&",
    "!&",
    "&|",
    "|",
    "&&",
    "||",
    "=",
    "+=",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ";",
    "\n",
    "def",
    "param",
    "import",
    "for",
    "in",
    "if",
    "else",
    '"s"',
    "'t",
    "$T",
    "$Q",
    ".pragma",
    "iif",
    "max",
    "mean",
    "integrate",
    "_",
    "#c",
    "//c",
    "/*",
    "*/",
    ":",
    "pixelmath",
]

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check_all(text: str) -> None:
    for start in ("script", "pm_program", "symbols", "channels"):
        try:
            tree = parse(text, start=start)
        except PxError:
            continue
        if start == "script":
            try:
                script_diagnostics(tree, functions(), module_loader=module_loader, base_dir=".")
            except PxError:
                pass


@SETTINGS
@given(st.text(max_size=60))
def test_random_text_only_pxerrors(text):
    _check_all(text)


@SETTINGS
@given(st.lists(st.sampled_from(TOKENS), max_size=25))
def test_random_token_sequences_only_pxerrors(tokens):
    _check_all(" ".join(tokens))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(TOKENS[:40]), min_size=1, max_size=12))
def test_random_expressions_evaluate_or_raise_pxerror(tokens):
    import numpy as np

    ha = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    try:
        pxlang.pixelmath(" ".join(tokens), images={"Ha": ha, "OIII": ha[::-1].copy(), "x": 0.3})
    except PxError:
        pass
