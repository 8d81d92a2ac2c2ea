"""The documentation is generated from the registry and stays true: the reference is current,
every built-in has a description and a runnable example, and every `px` block in the docs
parses and checks."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import pxlang
from pxlang.builtins import all_specs
from pxlang.builtins.docs import reference_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_reference_is_current():
    current = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    assert current == reference_markdown(), "run: python scripts/gen_reference.py"


@pytest.mark.parametrize("spec", all_specs(), ids=lambda s: s.name)
def test_every_builtin_has_doc_and_example(spec):
    assert spec.doc.strip(), f"{spec.name} has no description"
    assert spec.example, f"{spec.name} has no example"


@pytest.fixture(scope="module")
def example_env(tmp_path_factory):
    """Where examples run: mono Ha, OIII, SII, L; colour RGB; folders bias/ darks/ flats/
    lights/ of a small synthetic night (mono, FILTER Ha)."""
    from pxlang.synthetic import make_night

    root = tmp_path_factory.mktemp("examples")
    truth = make_night(
        root / "raw",
        size=(128, 160),
        filters=("Ha",),
        lights_per_filter=5,
        n_bias=4,
        n_darks=3,
        n_flats=3,
        layout="siril",
        seed=5,
        cloudy=False,
        trailed=False,
    )
    for src, dst in (
        ("biases", "bias"),
        ("darks", "darks"),
        ("flats", "flats"),
        ("lights", "lights"),
    ):
        shutil.copytree(root / "raw" / src, root / dst)
    sky = np.clip(truth.sky["Ha"], 0, 1).astype(np.float32)[:128, :128]
    images = {
        "Ha": sky,
        "OIII": sky[::-1].copy() * 0.6,
        "SII": sky[:, ::-1].copy() * 0.4,
        "L": np.clip(sky * 1.2, 0, 1),
    }
    images["RGB"] = np.stack([images["Ha"], images["OIII"], images["SII"]])
    return root, images


@pytest.mark.parametrize("spec", all_specs(), ids=lambda s: s.name)
def test_every_example_runs(spec, example_env, monkeypatch):
    root, images = example_env
    work = root / f"run_{spec.name}"
    work.mkdir(exist_ok=True)
    for d in ("bias", "darks", "flats", "lights"):
        link = work / d
        if not link.exists():
            link.symlink_to(root / d, target_is_directory=True)
    monkeypatch.chdir(work)
    pxlang.evaluate(spec.example, images=images, path=str(work / "example.px"))


def _px_blocks():
    for doc in sorted((ROOT / "docs").glob("*.md")):
        text = doc.read_text(encoding="utf-8")
        for i, block in enumerate(re.findall(r"```px\n(.*?)```", text, re.S)):
            yield pytest.param(block, id=f"{doc.name}#{i}")


@pytest.mark.parametrize("block", list(_px_blocks()))
def test_px_blocks_in_docs_check(block):
    pxlang.check(block, names=["Ha", "OIII", "SII", "L", "RGB"])


def test_stdlib_modules_parse_and_check():
    for path in sorted((ROOT / "stdlib").glob("*.px")):
        pxlang.check(path.read_text(encoding="utf-8"), path=str(path))
