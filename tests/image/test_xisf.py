"""Our XISF reader/writer against the ``xisf`` package (GPL, used here only as an oracle)."""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import zlib

import numpy as np
import pytest
import xisf as xisf_pkg  # GPL-3.0, in the [test] extra: an oracle here, never used by pxlang/

from pxlang.image import io
from pxlang.image import xisf as ours
from pxlang.lang.errors import PxIOError

XISF = xisf_pkg.XISF

DTYPES = {
    "uint8": (np.uint8, 255),
    "uint16": (np.uint16, 65535),
    "uint32": (np.uint32, 4294967295),
    "float32": (np.float32, None),
    "float64": (np.float64, None),
}


def samples(dtype, shape, seed=0):
    """Compressible samples of a dtype holding 0 and the maximum: a ramp, a shift per channel,
    and a few random bright pixels (stars)."""
    rng = np.random.default_rng(1234 + seed)
    h, w = shape[-2:]
    ramp = (np.arange(w)[None, :] + np.arange(h)[:, None]) / (h + w)
    base = np.array(np.broadcast_to(ramp, shape))
    if len(shape) == 3:
        base += 0.05 * np.arange(shape[0])[:, None, None]
    flat = base.reshape(-1)
    flat[rng.integers(0, flat.size, 8)] = rng.random(8)
    base = np.clip(base, 0, 1)
    kind, top = DTYPES[dtype]
    out = (np.rint(base * top).astype(kind)) if top else base.astype(kind)
    out[..., 0, 0] = 0
    out[..., 0, 1] = top if top else 1.0
    return out


def expected(raw, dtype):
    _, top = DTYPES[dtype]
    return (raw / top if top else raw).astype(np.float32)


# ---------------------------------------------------------------------------------------
# xisf writes -> we read


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(
    ("codec", "shuffle"),
    [(None, False), ("zlib", False), ("zlib", True), ("lz4", True), ("lz4hc", False),
     ("zstd", True), ("zstd", False)],
)  # fmt: skip
def test_we_read_what_xisf_writes(tmp_path, dtype, channels, codec, shuffle):
    raw = samples(dtype, (channels, 24, 31)).transpose(1, 2, 0)  # xisf takes channels last
    path = str(tmp_path / "pkg.xisf")
    meta = {
        "FITSKeywords": {
            "OBJECT": [{"value": "'M 31'", "comment": "target"}],
            "EXPTIME": [{"value": "180.5", "comment": ""}],
            "GAIN": [{"value": "120", "comment": ""}],
            "HISTORY": [{"value": "", "comment": "made by the oracle"}],
        }
    }
    _, used = XISF.write(path, raw, "oracle", meta, codec=codec, shuffle=shuffle)
    # the data compresses, so the codec path really is exercised
    assert used == (f"{codec}+sh" if shuffle else codec)
    with open(path, "rb") as fh:
        attrs = ours.XISFImage(fh, os.path.getsize(path)).attrs
    if codec:
        assert attrs["compression"].startswith(codec + ("+sh" if shuffle else ""))
    img = io.load(path)
    want = expected(raw.transpose(2, 0, 1), dtype)
    np.testing.assert_array_equal(img.data, want[0] if channels == 1 else want)
    assert img.header["OBJECT"] == "M 31" and img.header.comments["OBJECT"] == "target"
    assert img.header["EXPTIME"] == 180.5 and img.header["GAIN"] == 120
    assert "made by the oracle" in [str(v) for v in img.header["HISTORY"]]
    assert io.image_shape(path) == img.shape
    np.testing.assert_array_equal(io.read_rows(path, 3, 9), img.data[..., 3:9, :])


# ---------------------------------------------------------------------------------------
# we write -> xisf reads


@pytest.mark.parametrize("bits", [32, 16, 8])
@pytest.mark.parametrize("colour", [False, True], ids=["mono", "rgb"])
@pytest.mark.parametrize("compression", [None, "zlib", "lz4", "lz4hc", "zstd"])
def test_xisf_reads_what_we_write(tmp_path, bits, colour, compression):
    shape = (3, 20, 27) if colour else (20, 27)
    data = samples("float32", shape)
    path = str(tmp_path / "ours.xisf")
    io.save(data, path, bits=bits, compression=compression, provenance={"text": "Ha*2"})
    meta: dict = {}
    got = XISF.read(path, image_metadata=meta)  # (H, W, C)
    assert got.shape == (shape[-2], shape[-1], 3 if colour else 1)
    got = got.transpose(2, 0, 1)
    if bits == 32:
        assert got.dtype == np.float32
        want = data if colour else data[None]
        np.testing.assert_array_equal(got, want)
    else:
        top = (1 << bits) - 1
        assert got.dtype == (np.uint16 if bits == 16 else np.uint8)
        want = np.rint(np.clip(data, 0, 1) * top)
        np.testing.assert_array_equal(got, want if colour else want[None])
    assert meta["colorSpace"] == ("RGB" if colour else "Gray")
    history = [kw["comment"] for kw in meta["FITSKeywords"]["HISTORY"]]
    assert "pxlang 0.1.0" in history and "pxlang text: Ha*2" in history
    assert meta["FITSKeywords"]["PXVERSN"][0]["value"] == "0.1.0"  # xisf strips the quotes
    # and our own reader agrees with itself
    mine = io.load(path).data
    if bits == 32:
        np.testing.assert_array_equal(mine, data)


def test_keywords_round_trip_through_xisf(tmp_path):
    from astropy.io.fits import Header

    h = Header()
    h["OBJECT"] = ("it's M42", "quoted")
    h["EXPTIME"] = 300.0
    h["XBINNING"] = 2
    h["COOLED"] = False
    h.add_comment("a comment line")
    path = str(tmp_path / "k.xisf")
    io.save(np.zeros((4, 4), np.float32) + 0.25, path, header=h)
    back = io.load(path).header
    assert back["OBJECT"] == "it's M42" and back.comments["OBJECT"] == "quoted"
    assert back["EXPTIME"] == 300.0 and isinstance(back["EXPTIME"], float)
    assert back["XBINNING"] == 2 and back["COOLED"] is False
    assert "a comment line" in [str(v) for v in back["COMMENT"]]


# ---------------------------------------------------------------------------------------
# hand-made files for what neither writer produces


def assemble(attrs: dict, block: bytes, keywords: str = "", inline: str | None = None) -> bytes:
    """A monolithic XISF file with one image; the block is attached after the header."""
    a = dict(attrs)
    if inline is None:
        a["location"] = "attachment:{pos:010d}:" + str(len(block))
    else:
        a["location"] = inline
    body = "".join(f' {k}="{v}"' for k, v in a.items())
    text = block.hex() if inline == "inline:hex" else ""
    if inline == "inline:base64":
        text = base64.b64encode(block).decode()
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?><xisf version="1.0" '
        'xmlns="http://www.pixinsight.com/xisf">'
        f"<Image{body}>{keywords}{text}</Image></xisf>"
    )
    size = len(xml.format(pos=0).encode())
    xml = xml.format(pos=16 + size)
    head = b"XISF0100" + struct.pack("<I", size) + b"\0" * 4
    return head + xml.encode() + (block if inline is None else b"")


def write(tmp_path, blob: bytes, name="h.xisf") -> str:
    path = str(tmp_path / name)
    with open(path, "wb") as fh:
        fh.write(blob)
    return path


def test_normal_pixel_storage_big_endian_and_alpha(tmp_path):
    rgba = samples("uint16", (4, 5, 6)).transpose(1, 2, 0)  # (H, W, C) interleaved, alpha last
    attrs = {"geometry": "6:5:4", "sampleFormat": "UInt16", "colorSpace": "RGB",
             "pixelStorage": "Normal", "byteOrder": "big"}  # fmt: skip
    path = write(tmp_path, assemble(attrs, rgba.astype(">u2").tobytes()))
    got = io.load(path).data
    np.testing.assert_array_equal(got, rgba[..., :3].transpose(2, 0, 1) / np.float32(65535))
    np.testing.assert_array_equal(io.read_rows(path, 1, 3), got[:, 1:3])


@pytest.mark.parametrize("algo", ["sha1", "sha-256", "sha512", "sha3-256"])
def test_checksums_verified(tmp_path, algo):
    raw = samples("float32", (6, 7))
    block = zlib.compress(raw.tobytes())
    name = {"sha1": "sha1", "sha-256": "sha256", "sha512": "sha512", "sha3-256": "sha3_256"}
    digest = hashlib.new(name[algo], block).hexdigest()
    attrs = {"geometry": "7:6:1", "sampleFormat": "Float32", "colorSpace": "Gray",
             "compression": f"zlib:{raw.nbytes}", "checksum": f"{algo}:{digest}"}  # fmt: skip
    good = write(tmp_path, assemble(attrs, block), "good.xisf")
    np.testing.assert_array_equal(io.load(good).data, raw)
    bad_block = bytearray(block)
    bad_block[len(bad_block) // 2] ^= 0x40
    bad = write(tmp_path, assemble(attrs, bytes(bad_block)), "bad.xisf")
    with pytest.raises(PxIOError, match=r"bad\.xisf.*checksum"):
        io.load(bad)
    attrs["checksum"] = "md9:00"  # an algorithm we do not know is not an error
    other = write(tmp_path, assemble(attrs, block), "other.xisf")
    np.testing.assert_array_equal(io.load(other).data, raw)


@pytest.mark.parametrize("encoding", ["inline:base64", "inline:hex"])
def test_inline_blocks(tmp_path, encoding):
    raw = samples("uint8", (3, 4))
    attrs = {"geometry": "4:3:1", "sampleFormat": "UInt8"}
    path = write(tmp_path, assemble(attrs, raw.tobytes(), inline=encoding))
    np.testing.assert_array_equal(io.load(path).data, raw / np.float32(255))


def test_subblocks_and_shuffle(tmp_path):
    raw = samples("float64", (8, 9))
    plain = raw.tobytes()
    shuffled = np.frombuffer(plain, np.uint8).reshape(-1, 8).T.tobytes()
    half = len(shuffled) // 2
    parts = [zlib.compress(shuffled[:half]), zlib.compress(shuffled[half:])]
    sub = f"{len(parts[0])},{half}:{len(parts[1])},{len(plain) - half}"
    attrs = {"geometry": "9:8:1", "sampleFormat": "Float64",
             "compression": f"zlib+sh:{len(plain)}:8", "subblocks": sub}  # fmt: skip
    path = write(tmp_path, assemble(attrs, b"".join(parts)))
    np.testing.assert_array_equal(io.load(path).data, raw.astype(np.float32))


def test_capture_software_header(tmp_path):
    """The shape of files from INDI / N.I.N.A.: unquoted strings, HISTORY text in the value
    attribute, integer bounds, a CFA element, and standard properties instead of keywords."""
    raw = samples("uint16", (4, 5))
    kws = (
        '<FITSKeyword name="IMAGETYP" value="Light Frame" comment="Frame Type"/>'
        '<FITSKeyword name="DATE-OBS" value="2026-03-17T01:28:36.431" comment="UTC start"/>'
        '<FITSKeyword name="GAIN" value="0" comment="Gain"/>'
        '<FITSKeyword name="COMMENT" value="" comment="Generated by INDI"/>'
        '<FITSKeyword name="HISTORY" value="first step"/>'
        '<ColorFilterArray pattern="GRBG" width="2" height="2"/>'
        '<Resolution horizontal="72" vertical="72" unit="inch"/>'
        '<Property id="Instrument:ExposureTime" type="Float32" value="300"/>'
        '<Property id="Instrument:Filter:Name" type="String">Ha 3nm</Property>'
        '<Property id="Instrument:Camera:Gain" type="Float32" value="120"/>'
        '<Property id="PCL:Signature" type="I32Vector" length="1" location="inline:hex">'
        "01000000</Property>"
    )
    attrs = {"geometry": "5:4:1", "sampleFormat": "UInt16", "bounds": "0:65535",
             "colorSpace": "Gray", "imageType": "Light", "id": "light"}  # fmt: skip
    path = write(tmp_path, assemble(attrs, raw.tobytes(), keywords=kws))
    img = io.load(path)
    np.testing.assert_array_equal(img.data, raw / np.float32(65535))  # bounds ignored: ints
    h = img.header
    assert h["IMAGETYP"] == "Light Frame" and h["DATE-OBS"] == "2026-03-17T01:28:36.431"
    assert h["GAIN"] == 0  # the keyword wins over the property
    assert h["EXPTIME"] == 300 and h["FILTER"] == "Ha 3nm"
    assert "first step" in [str(v) for v in h["HISTORY"]]
    assert "Generated by INDI" in [str(v) for v in h["COMMENT"]]


def test_float_bounds_rescaled(tmp_path):
    raw = np.array([[0.0, 1000.0], [65535.0, 32767.5]], np.float32)
    attrs = {"geometry": "2:2:1", "sampleFormat": "Float32", "bounds": "0:65535"}
    path = write(tmp_path, assemble(attrs, raw.tobytes()))
    np.testing.assert_allclose(io.load(path).data, raw / 65535, rtol=1e-6)


@pytest.mark.parametrize(
    ("attrs", "pattern"),
    [
        ({"geometry": "4:3:2:1", "sampleFormat": "Float32"}, "not a 2-D image"),
        ({"geometry": "4:3:1", "sampleFormat": "Complex32"}, "sample format"),
        ({"geometry": "4:3:3", "sampleFormat": "Float32", "colorSpace": "CIELab"}, "CIELab"),
        ({"geometry": "4:3:1", "sampleFormat": "Float32", "compression": "lzma:48"}, "lzma"),
        ({"geometry": "4:3:1", "sampleFormat": "Float32", "compression": "zlib:48"},
         "decompress"),
    ],
)  # fmt: skip
def test_unsupported_or_corrupt_images(tmp_path, attrs, pattern):
    path = write(tmp_path, assemble(attrs, b"\0" * 48))
    with pytest.raises(PxIOError, match=pattern) as info:
        io.load(path)
    assert path in str(info.value)


def test_corrupt_headers(tmp_path):
    cases = {
        "sig.xisf": b"XISF0200" + b"\0" * 100,
        "len.xisf": b"XISF0100" + struct.pack("<I", 10_000) + b"\0" * 4 + b"<xisf/>",
        "xml.xisf": b"XISF0100" + struct.pack("<I", 9) + b"\0" * 4 + b"<xisf><Im",
        "noimg.xisf": b"XISF0100" + struct.pack("<I", 7) + b"\0" * 4 + b"<xisf/>",
    }
    patterns = {"sig.xisf": "version", "len.xisf": "truncated", "xml.xisf": "XML",
                "noimg.xisf": "no Image"}  # fmt: skip
    for name, blob in cases.items():
        path = write(tmp_path, blob, name)
        with pytest.raises(PxIOError, match=patterns[name]):
            io.load(path)


def test_shuffle_inverts():
    data = bytes(range(256)) * 3 + b"xyz"  # a tail that is not a whole item
    for item in (2, 4, 8):
        assert ours._unshuffle(ours._shuffle(data, item), item) == data


@pytest.mark.parametrize(
    ("text", "value"),
    [("'M 42'", "M 42"), ("'it''s'", "it's"), ("T", True), ("F", False), ("12", 12),
     ("-1.5E3", -1500.0), ("1.0D2", 100.0), ("plain", "plain"), ("'  '", "")],
)  # fmt: skip
def test_keyword_values(text, value):
    got = ours.parse_keyword_value(text)
    assert got == value and type(got) is type(value)
