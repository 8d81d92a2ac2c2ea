"""Damaged files: whatever the bytes, reading raises PxIOError or returns an image (whose
header can be written again), nothing else."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pxlang.image import io
from pxlang.image.store import Image
from pxlang.lang.errors import PxIOError

EXTS = [".fits", ".xisf", ".tif", ".png", ".jpg"]
_GOOD: dict[str, bytes] = {}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> str:
    # module-scoped: hypothesis reruns the test body many times within one function call
    return str(tmp_path_factory.mktemp("fuzz"))


def good(folder: str, ext: str) -> bytes:
    """A small valid file of each format (colour, 16-bit where the format has it)."""
    if ext not in _GOOD:
        data = np.linspace(0, 1, 3 * 12 * 9, dtype=np.float32).reshape(3, 12, 9)
        path = os.path.join(folder, "good" + ext)
        bits = {".png": 16, ".tif": 16, ".xisf": 16, ".fits": 16, ".jpg": 8}[ext]
        kw = {"compression": "zlib"} if ext == ".xisf" else {}
        io.save(Image(data), path, bits=bits, provenance={"text": "fuzz"}, **kw)
        with open(path, "rb") as fh:
            _GOOD[ext] = fh.read()
    return _GOOD[ext]


def read_all(folder: str, path: str) -> None:
    try:
        img = io.load(path)
        assert img.data.dtype == np.float32 and img.data.ndim in (2, 3)
        io.read_rows(path, 0, 2)
        io.read_header(path)
        io.image_shape(path)
    except PxIOError as exc:
        assert path in str(exc)
        return
    for ext in (".fits", ".xisf", ".tif"):  # whatever header came in can be written out
        io.save(img, os.path.join(folder, "again" + ext))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ext=st.sampled_from(EXTS),
    edits=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=6),
    cut=st.one_of(st.none(), st.floats(0, 1)),
)
@example(ext=".fits", edits=[(0.125, 128)], cut=None)  # a byte 0x80 in a header card
@example(ext=".fits", edits=[(0.21875, 0), (0.171875, 0)], cut=None)  # NUL in a blank card
def test_damaged_files_fail_cleanly(folder, ext, edits, cut):
    blob = bytearray(good(folder, ext))
    for where, value in edits:
        blob[min(len(blob) - 1, int(where * len(blob)))] = value
    if cut is not None:
        blob = blob[: int(cut * len(blob))]
    path = os.path.join(folder, "bad" + ext)
    with open(path, "wb") as fh:
        fh.write(bytes(blob))
    read_all(folder, path)


@settings(max_examples=60, deadline=None)
@given(ext=st.sampled_from(EXTS), blob=st.binary(max_size=400))
def test_random_bytes_fail_cleanly(folder, ext, blob):
    path = os.path.join(folder, "rand" + ext)
    with open(path, "wb") as fh:
        fh.write(blob)
    read_all(folder, path)
