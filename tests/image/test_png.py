"""Our PNG codec: what Pillow cannot do (16-bit colour) checked against plain references."""

from __future__ import annotations

import io as pyio
import struct
import zlib

import numpy as np
import pytest
from PIL import Image as PILImage

from pxlang.image import io
from pxlang.image.png import PngError, decode_png, encode_png
from pxlang.lang.errors import PxIOError


def reference_png(samples: np.ndarray, depth: int, colour_type: int) -> bytes:
    """A PNG written the slow, obvious way, cycling through all five row filters."""
    h, w = samples.shape[:2]
    channels = samples.shape[2] if samples.ndim == 3 else 1
    bpp = channels * depth // 8
    dtype = ">u2" if depth == 16 else "u1"
    rows = [bytes(samples[y].astype(dtype).tobytes()) for y in range(h)]
    out = bytearray()
    prev = bytes(len(rows[0]))
    for y, row in enumerate(rows):
        kind = y % 5
        line = bytearray([kind])
        for x in range(len(row)):
            a = row[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if kind == 0:
                pred = 0
            elif kind == 1:
                pred = a
            elif kind == 2:
                pred = b
            elif kind == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)
            line.append((row[x] - pred) % 256)
        out += line
        prev = row

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"tEXt", b"Comment\0hello")
        + chunk(b"IDAT", zlib.compress(bytes(out)))
        + chunk(b"IEND", b"")
    )


def test_decoder_handles_every_filter_in_16_bit_colour():
    rng = np.random.default_rng(7)
    rgba = rng.integers(0, 65536, (11, 9, 4), dtype=np.uint16)
    rgba[0, 0] = [0, 65535, 1, 2]
    got, text = decode_png(reference_png(rgba, 16, 6))
    np.testing.assert_array_equal(got, rgba[..., :3].transpose(2, 0, 1))  # alpha dropped
    assert text == {"Comment": "hello"}
    grey = rng.integers(0, 256, (10, 13), dtype=np.uint8)
    got, _ = decode_png(reference_png(grey, 8, 0))
    np.testing.assert_array_equal(got, grey)


def test_decoder_agrees_with_pillow_on_pillows_adaptive_filters():
    y, x = np.mgrid[0:40, 0:50]
    rgb = np.stack([(x * 5) % 256, (y * 3) % 256, (x * y) % 256], -1).astype(np.uint8)
    rgb[::7, ::3] = 255
    buf = pyio.BytesIO()
    PILImage.fromarray(rgb).save(buf, format="PNG")
    got, _ = decode_png(buf.getvalue())
    np.testing.assert_array_equal(got, rgb.transpose(2, 0, 1))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_pillow_reads_our_grey_png_exactly(dtype):
    top = np.iinfo(dtype).max
    grey = np.random.default_rng(3).integers(0, top + 1, (12, 17)).astype(dtype)
    im = PILImage.open(pyio.BytesIO(encode_png(grey, {"Software": "pxlang"})))
    assert im.info["Software"] == "pxlang"
    np.testing.assert_array_equal(np.asarray(im).astype(dtype), grey)


def test_pillow_reads_our_8_bit_colour_exactly():
    rgb = np.random.default_rng(4).integers(0, 256, (3, 12, 17)).astype(np.uint8)
    im = PILImage.open(pyio.BytesIO(encode_png(rgb)))
    assert im.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(im), rgb.transpose(1, 2, 0))


def test_corrupt_png_named(tmp_path):
    data = bytearray(encode_png(np.arange(64, dtype=np.uint16).reshape(8, 8)))
    data[-20] ^= 0xFF  # inside the IDAT chunk: its CRC no longer matches
    with pytest.raises(PngError, match="CRC"):
        decode_png(bytes(data))
    path = str(tmp_path / "bad.png")
    rgb = encode_png(np.zeros((3, 8, 8), np.uint16))
    with open(path, "wb") as fh:
        fh.write(rgb[:40] + b"\0" * 8 + rgb[48:])
    with pytest.raises(PxIOError, match=r"bad\.png"):
        io.load(path)
