"""XISF 1.0 monolithic files, read and written here (our own code: the ``xisf`` package is GPL).

A monolithic XISF file is a 16-byte preamble (``XISF0100``, the XML header length as a
little-endian uint32, 4 reserved bytes), the UTF-8 XML header, then attached data blocks at
the byte positions the header gives (``location="attachment:POS:SIZE"``).

Reading covers the first ``Image`` element: geometry ``W:H:C``; sample formats UInt8, UInt16,
UInt32, Float32, Float64; Planar and Normal pixel storage; Gray and RGB colour spaces (extra
channels, e.g. alpha, are dropped); little- or big-endian data; zlib, lz4, lz4hc and zstd
compression, with or without byte shuffling (``+sh``) and in sub-blocks; block checksums
(sha1, sha256, sha512, sha3-256, sha3-512) are verified; ``FITSKeyword`` elements become the
header. Attachment, inline (base64/hex) and embedded data blocks are read.

Writing produces one planar image, Float32 or UInt16 (UInt8 with bits=8), uncompressed by
default or compressed with zlib / lz4 / lz4hc / zstd (byte-shuffled), with the header as
``FITSKeyword`` elements and the creation metadata the specification requires.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import xml.etree.ElementTree as ET
import zlib
from datetime import UTC, datetime
from typing import Any, BinaryIO

import numpy as np

from pxlang._version import __version__

SIGNATURE = b"XISF0100"
NS = "http://www.pixinsight.com/xisf"
_Q = "{" + NS + "}"
MAX_HEADER = 64 * 1024 * 1024  # a bound against garbage lengths, far above real headers
BLOCK_ALIGN = 4096  # where the first attached block starts; the gap is zero-filled

SAMPLE_DTYPES = {
    "UInt8": np.dtype(np.uint8),
    "UInt16": np.dtype(np.uint16),
    "UInt32": np.dtype(np.uint32),
    "Float32": np.dtype(np.float32),
    "Float64": np.dtype(np.float64),
}
_SAMPLE_NAMES = {v: k for k, v in SAMPLE_DTYPES.items()}
_HASHES = {
    "sha1": "sha1",
    "sha-1": "sha1",
    "sha256": "sha256",
    "sha-256": "sha256",
    "sha512": "sha512",
    "sha-512": "sha512",
    "sha3-256": "sha3_256",
    "sha3-512": "sha3_512",
}
CODECS = ("zlib", "lz4", "lz4hc", "zstd")


class XISFError(Exception):
    """The file is not a readable XISF file; the message says why (io.py adds the file name)."""


# ----------------------------------------------------------------------------------------
# reading


class XISFImage:
    """The first image of an XISF file: geometry, sample format and keywords, pixels on demand."""

    def __init__(self, fh: BinaryIO, size: int):
        self._fh = fh
        self._size = size
        head = fh.read(16)
        if len(head) < 16 or head[:8] != SIGNATURE:
            if head[:4] == b"XISF":
                raise XISFError(f"unsupported XISF version {head[4:8]!r} (expected 0100)")
            raise XISFError("not an XISF file (no XISF0100 signature)")
        (length,) = struct.unpack("<I", head[8:12])
        if length == 0 or length > MAX_HEADER:
            raise XISFError(f"implausible XML header length {length}")
        if 16 + length > size:
            raise XISFError("file is truncated inside the XML header")
        try:
            root = ET.fromstring(fh.read(length).rstrip(b"\0"))
        except ET.ParseError as exc:
            raise XISFError(f"corrupt XML header ({exc})") from exc
        if root.tag not in (_Q + "xisf", "xisf"):
            raise XISFError(f"XML root is <{root.tag}>, not <xisf>")
        image = root.find(_Q + "Image")
        if image is None:
            image = root.find("Image")
        if image is None:
            raise XISFError("no Image element in the header")
        self.element = image
        self.attrs = dict(image.attrib)
        self._attachment()  # a truncated file fails here, where its header is read (as FITS)
        try:
            dims = [int(v) for v in self.attrs["geometry"].split(":")]
        except (KeyError, ValueError) as exc:
            raise XISFError(f"bad or missing geometry {self.attrs.get('geometry')!r}") from exc
        if len(dims) != 3 or min(dims) < 1:
            raise XISFError(
                f"geometry {self.attrs['geometry']!r} is not a 2-D image W:H:C "
                "(pxlang reads 2-D images with 1 or 3 channels)"
            )
        self.width, self.height, self.channels = dims
        fmt = self.attrs.get("sampleFormat", "")
        if fmt not in SAMPLE_DTYPES:
            raise XISFError(f"sample format {fmt!r} is not supported (UInt8/16/32, Float32/64)")
        self.dtype = SAMPLE_DTYPES[fmt]
        if self.attrs.get("byteOrder", "little") == "big":
            self.dtype = self.dtype.newbyteorder(">")
        self.color_space = self.attrs.get("colorSpace", "Gray")
        if self.color_space not in ("Gray", "RGB"):
            raise XISFError(f"colour space {self.color_space!r} is not supported (Gray, RGB)")
        nominal = 3 if self.color_space == "RGB" else 1
        if self.channels < nominal:
            raise XISFError(f"{self.color_space} image with {self.channels} channel(s)")
        self.nominal_channels = nominal
        self.planar = self.attrs.get("pixelStorage", "Planar") != "Normal"
        self.bounds = _parse_bounds(self.attrs.get("bounds"))
        self.keywords = [
            (k.get("name", ""), k.get("value", ""), k.get("comment", ""))
            for k in list(image.iter(_Q + "FITSKeyword")) + list(image.iter("FITSKeyword"))
        ]
        # scalar XISF properties of the image (id -> text), for keywords FITS-less writers omit
        self.properties = {
            p.get("id", ""): p.get("value", p.text or "")
            for p in list(image.findall(_Q + "Property")) + list(image.findall("Property"))
            if p.get("location") is None
        }

    def _attachment(self) -> tuple[int, int]:
        """(position, size) of an attached data block, checked against the file's size;
        (0, 0) for other locations."""
        location = self.attrs.get("location", "")
        kind, _, rest = location.partition(":")
        if kind != "attachment":
            return 0, 0
        try:
            pos, size = (int(v) for v in rest.split(":"))
        except ValueError as exc:
            raise XISFError(f"bad location {location!r}") from exc
        if pos + size > self._size:
            raise XISFError(
                f"file is truncated: the image block ends at byte {pos + size}, "
                f"the file has {self._size} bytes"
            )
        return pos, size

    @property
    def shape(self) -> tuple[int, ...]:
        """pxlang's shape: (H, W) or (3, H, W)."""
        if self.nominal_channels == 1:
            return (self.height, self.width)
        return (3, self.height, self.width)

    def block(self) -> bytes | np.ndarray:
        """The image data block as stored (checksum verified), still compressed.

        An attached block is read into a fresh uint8 array: pixels decoded from it without
        compression use that memory as it is.
        """
        location = self.attrs.get("location", "")
        kind, _, rest = location.partition(":")
        if kind == "attachment":
            pos, size = self._attachment()
            self._fh.seek(pos)
            data = np.empty(size, dtype=np.uint8)  # not zero-filled: readinto fills it
            if self._fh.readinto(memoryview(data)) != size:
                raise XISFError("file is truncated inside the image block")
        elif kind == "inline":
            data = _decode_text(self.element.text or "", rest)
        elif kind == "embedded":
            node = self.element.find(_Q + "Data")
            if node is None:
                node = self.element.find("Data")
            if node is None:
                raise XISFError("embedded image block without a Data element")
            data = _decode_text(node.text or "", node.get("encoding", "base64"))
        else:
            raise XISFError(f"data block location {location!r} is not supported")
        _verify(data, self.attrs.get("checksum"))
        return data

    def row_band(self, path: str, r0: int, r1: int) -> np.ndarray | None:
        """Rows r0:r1 through a memory map, or None when the block is not plain planar data.

        The checksum (of the whole block) is not verified on this path.
        """
        kind, _, rest = self.attrs.get("location", "").partition(":")
        if kind != "attachment" or self.attrs.get("compression") or not self.planar:
            return None
        try:
            pos, size = (int(v) for v in rest.split(":"))
        except ValueError:
            return None
        shape = (self.channels, self.height, self.width)
        if size != int(np.prod(shape)) * self.dtype.itemsize or pos + size > self._size:
            return None
        mm = np.memmap(path, dtype=self.dtype, mode="r", offset=pos, shape=shape)
        band = np.array(mm[: self.nominal_channels, r0:r1])
        del mm
        return band[0] if self.nominal_channels == 1 else band

    def pixels(self) -> np.ndarray:
        """Raw samples in pxlang order, (H, W) or (3, H, W), in the file's sample type."""
        raw = _decompress(self.block(), self.attrs.get("compression"), self.attrs.get("subblocks"))
        n = self.width * self.height * self.channels
        if len(raw) != n * self.dtype.itemsize:
            raise XISFError(
                f"image block holds {len(raw)} bytes, geometry needs {n * self.dtype.itemsize}"
            )
        arr = np.frombuffer(raw, dtype=self.dtype)
        if self.planar:
            arr = arr.reshape(self.channels, self.height, self.width)
        else:
            arr = arr.reshape(self.height, self.width, self.channels).transpose(2, 0, 1)
        arr = arr[: self.nominal_channels]
        return arr[0] if self.nominal_channels == 1 else arr


def _parse_bounds(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError as exc:
        raise XISFError(f"bad bounds {text!r}") from exc
    return (lo, hi)


def _decode_text(text: str, encoding: str) -> bytes:
    text = "".join(text.split())
    try:
        if encoding == "base64":
            return base64.b64decode(text, validate=True)
        if encoding in ("hex", "base16"):
            return bytes.fromhex(text)
    except ValueError as exc:
        raise XISFError(f"bad {encoding} data block ({exc})") from exc
    raise XISFError(f"data block encoding {encoding!r} is not supported")


def _verify(data: bytes, checksum: str | None) -> None:
    if not checksum:
        return
    algo, _, digest = checksum.partition(":")
    name = _HASHES.get(algo.lower())
    if name is None:  # an algorithm we do not know: nothing to verify against
        return
    if hashlib.new(name, data).hexdigest() != digest.strip().lower():
        raise XISFError(f"{algo} checksum of the image block does not match (file corrupt)")


def _decompress(data: bytes, compression: str | None, subblocks: str | None) -> bytes:
    if not compression:
        return data
    parts = compression.split(":")
    codec, shuffled = parts[0], False
    if codec.endswith("+sh"):
        codec, shuffled = codec[:-3], True
    if codec not in CODECS:
        raise XISFError(f"compression codec {codec!r} is not supported ({', '.join(CODECS)})")
    try:
        size = int(parts[1])
        item = int(parts[2]) if shuffled else 1
    except (IndexError, ValueError) as exc:
        raise XISFError(f"bad compression attribute {compression!r}") from exc
    if subblocks:
        pieces, pos = [], 0
        try:
            pairs = [tuple(int(v) for v in s.split(",")) for s in subblocks.split(":")]
        except ValueError as exc:
            raise XISFError(f"bad subblocks attribute {subblocks!r}") from exc
        for csize, usize in pairs:
            pieces.append(_inflate(codec, data[pos : pos + csize], usize))
            pos += csize
        out = b"".join(pieces)
    else:
        out = _inflate(codec, data, size)
    if len(out) != size:
        raise XISFError(f"{codec} block inflates to {len(out)} bytes, header says {size}")
    return _unshuffle(out, item) if shuffled and item > 1 else out


def _inflate(codec: str, data: bytes, size: int) -> bytes:
    try:
        if codec == "zlib":
            return zlib.decompress(data)
        if codec in ("lz4", "lz4hc"):
            import lz4.block

            return lz4.block.decompress(data, uncompressed_size=size)
        import zstandard

        return zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
    except Exception as exc:  # each codec has its own error type; all mean "corrupt"
        raise XISFError(f"{codec} data does not decompress ({exc})") from exc


def _shuffle(data: bytes, item: int) -> bytes:
    n = len(data) // item
    arr = np.frombuffer(data, dtype=np.uint8)
    head = arr[: n * item].reshape(n, item).T.tobytes()
    return head + arr[n * item :].tobytes()


def _unshuffle(data: bytes, item: int) -> bytes:
    n = len(data) // item
    arr = np.frombuffer(data, dtype=np.uint8)
    head = arr[: n * item].reshape(item, n).T.tobytes()
    return head + arr[n * item :].tobytes()


def parse_keyword_value(value: str) -> Any:
    """A FITSKeyword value attribute as a Python value (FITS conventions: 'text', T/F, numbers)."""
    v = value.strip()
    if len(v) >= 2 and v[0] == "'" and v[-1] == "'":
        return v[1:-1].replace("''", "'").rstrip()
    if v == "T":
        return True
    if v == "F":
        return False
    try:
        return int(v)
    except ValueError:
        pass
    try:
        return float(v.replace("D", "E"))
    except ValueError:
        return v


# ----------------------------------------------------------------------------------------
# writing


def format_keyword_value(value: Any) -> str:
    """A header value as FITSKeyword text, the way PixInsight writes it."""
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    text = str(value).replace("'", "''")
    return f"'{text}'"


def _compress(data: bytes, codec: str, item: int) -> tuple[bytes, str]:
    shuffled = _shuffle(data, item) if item > 1 else data
    if codec == "zlib":
        packed = zlib.compress(shuffled, 6)
    elif codec in ("lz4", "lz4hc"):
        import lz4.block

        mode = "high_compression" if codec == "lz4hc" else "default"
        packed = lz4.block.compress(shuffled, mode=mode, store_size=False)
    elif codec == "zstd":
        import zstandard

        packed = zstandard.ZstdCompressor(level=9).compress(shuffled)
    else:
        raise ValueError(f"XISF compression must be one of {', '.join(CODECS)}; got {codec!r}")
    attr = f"{codec}+sh:{len(data)}:{item}" if item > 1 else f"{codec}:{len(data)}"
    return packed, attr


def write_xisf(
    fh: BinaryIO,
    data: np.ndarray,
    keywords: list[tuple[str, Any, str]],
    *,
    compression: str | None = None,
) -> None:
    """Write one image as a monolithic XISF file to an open binary file.

    ``data``: (H, W) or (C, H, W), dtype uint8, uint16 or float32 (float64 allowed).
    ``keywords``: (name, value, comment) triples; HISTORY/COMMENT text goes in the comment
    attribute as PixInsight does. ``compression``: None or one of zlib, lz4, lz4hc, zstd
    (byte-shuffled for multi-byte samples).
    """
    arr = np.asarray(data)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"XISF writer takes (H, W) or (C, H, W); got shape {arr.shape}")
    dtype = arr.dtype.newbyteorder("=")
    if dtype not in _SAMPLE_NAMES:
        raise ValueError(f"XISF writer takes uint8, uint16, uint32, float32/64; got {arr.dtype}")
    channels, height, width = arr.shape
    samples = np.ascontiguousarray(arr, dtype=dtype.newbyteorder("<"))
    block: Any = memoryview(samples).cast("B")  # the bytes, without copying them

    attrs = {
        "geometry": f"{width}:{height}:{channels}",
        "sampleFormat": _SAMPLE_NAMES[dtype],
        "colorSpace": "RGB" if channels == 3 else "Gray",
        "pixelStorage": "Planar",
    }
    if dtype.kind == "f":
        attrs["bounds"] = "0:1"
    if compression:
        block, attrs["compression"] = _compress(block, compression, dtype.itemsize)

    root = ET.Element(
        "xisf",
        {
            "version": "1.0",
            "xmlns": NS,
            "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
            "xsi:schemaLocation": f"{NS} http://pixinsight.com/xisf/xisf-1.0.xsd",
        },
    )
    image = ET.SubElement(root, "Image", attrs)
    for name, value, comment in keywords:
        if name in ("HISTORY", "COMMENT", ""):
            kw = {"name": name, "value": "", "comment": str(value)}
        else:
            kw = {"name": name, "value": format_keyword_value(value), "comment": comment or ""}
        ET.SubElement(image, "FITSKeyword", kw)
    meta = ET.SubElement(root, "Metadata")
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ET.SubElement(meta, "Property", {"id": "XISF:CreationTime", "type": "TimePoint", "value": now})
    app = ET.SubElement(meta, "Property", {"id": "XISF:CreatorApplication", "type": "String"})
    app.text = f"pxlang {__version__}"

    # The block position is written in the header, so the header length depends on it: fix
    # the position at the next aligned offset and grow it until the header fits before it.
    pos = BLOCK_ALIGN
    while True:
        image.set("location", f"attachment:{pos}:{len(block)}")
        text = ET.tostring(root, encoding="unicode")
        xml = ('<?xml version="1.0" encoding="UTF-8"?>\n' + text).encode("utf-8")
        if 16 + len(xml) <= pos:
            break
        pos = (16 + len(xml) + BLOCK_ALIGN - 1) // BLOCK_ALIGN * BLOCK_ALIGN
    fh.write(SIGNATURE + struct.pack("<I", len(xml)) + b"\0\0\0\0")
    fh.write(xml)
    fh.write(b"\0" * (pos - 16 - len(xml)))
    fh.write(block)
