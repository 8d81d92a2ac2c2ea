"""PNG and JPEG previews: a small PNG codec of our own plus Pillow.

Pillow reads 16-bit RGB PNG only as 8-bit and cannot write it, so PNG files are written here
(8 or 16 bits, grey or RGB, rows "Up"-filtered, zlib), and 16-bit PNGs with colour or alpha
are decoded here; every other PNG and all JPEG go through Pillow. Arrays cross this module
as integer samples in pxlang order: (H, W) or (3, H, W); alpha channels are dropped.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any, BinaryIO

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# colour type -> samples per pixel (grey, -, RGB, palette, grey+alpha, -, RGBA)
_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_MAX_PIXELS = 1 << 31  # refuse a header that promises more pixels than any preview has


class PngError(Exception):
    """Not a PNG pxlang can read; the message says why (io.py adds the file name)."""


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _latin1(text: str) -> bytes:
    return text.encode("latin-1", "replace")


def encode_png(samples: np.ndarray, text: dict[str, str] | None = None, level: int = 6) -> bytes:
    """PNG bytes of (H, W) or (3, H, W) uint8 / uint16 samples, with tEXt chunks."""
    arr = np.asarray(samples)
    if arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"PNG samples must be uint8 or uint16; got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[0] == 3:
        arr = arr.transpose(1, 2, 0)
        colour_type = 2
    elif arr.ndim == 2:
        colour_type = 0
    else:
        raise ValueError(f"PNG takes (H, W) or (3, H, W); got shape {arr.shape}")
    height, width = arr.shape[:2]
    depth = arr.dtype.itemsize * 8
    rows = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder(">"))
    rows = rows.view(np.uint8).reshape(height, -1)
    # "Up" filter: each byte minus the byte above (mod 256); smooth images compress better.
    filtered = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    filtered[:, 0] = 2
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    out = [PNG_SIGNATURE]
    out.append(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)))
    for key, value in (text or {}).items():
        out.append(_chunk(b"tEXt", _latin1(key)[:79] + b"\0" + _latin1(value)))
    out.append(_chunk(b"IDAT", zlib.compress(filtered.tobytes(), level)))
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)


def png_header(head: bytes) -> dict[str, int]:
    """Width, height, bit depth, colour type and interlace from the first 33 bytes of a PNG."""
    if len(head) < 33 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise PngError("not a PNG file (bad signature or no IHDR)")
    width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    return {"width": width, "height": height, "depth": depth, "type": ctype, "interlace": interlace}


def decode_png(data: bytes) -> tuple[np.ndarray, dict[str, str]]:
    """Samples ((H, W) or (3, H, W), uint8/uint16, alpha dropped) and tEXt of a PNG.

    Handles bit depths 8 and 16, colour types grey, RGB, grey+alpha and RGBA, without
    interlace; the rest (palettes, 1/2/4-bit, Adam7) is Pillow's job.
    """
    info = png_header(data[:33])
    width, height, depth, ctype = info["width"], info["height"], info["depth"], info["type"]
    if depth not in (8, 16) or ctype not in (0, 2, 4, 6) or info["interlace"]:
        raise PngError(f"PNG layout (depth {depth}, colour type {ctype}, interlace) unsupported")
    if width == 0 or height == 0 or width * height > _MAX_PIXELS:
        raise PngError(f"implausible PNG size {width}x{height}")
    pos, idat, text = 8, [], {}
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if len(body) < length or pos + 12 + length > len(data):
            raise PngError("file is truncated")
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise PngError(f"CRC error in the {kind.decode('latin-1')} chunk (file corrupt)")
        if kind == b"IDAT":
            idat.append(body)
        elif kind == b"tEXt" and b"\0" in body:
            key, _, value = body.partition(b"\0")
            text[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"IEND":
            break
        pos += 12 + length
    else:
        raise PngError("file is truncated (no IEND chunk)")
    samples = _SAMPLES[ctype]
    bpp = samples * depth // 8
    stride = width * bpp
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as exc:
        raise PngError(f"image data does not decompress ({exc})") from exc
    if len(raw) != height * (stride + 1):
        raise PngError(f"image data holds {len(raw)} bytes, {height * (stride + 1)} expected")
    buf = np.frombuffer(raw, dtype=np.uint8)
    if np.any(buf[:: stride + 1] > 4):
        raise PngError("unknown row filter type (file corrupt)")
    rows = _unfilter(buf.reshape(height, stride + 1), bpp)
    dtype = np.dtype(">u2") if depth == 16 else np.dtype(np.uint8)
    arr = rows.view(dtype).reshape(height, width, samples).astype(dtype.newbyteorder("="))
    if ctype in (0, 4):
        return arr[:, :, 0], text
    return np.ascontiguousarray(arr[:, :, :3].transpose(2, 0, 1)), text


def _unfilter(rows: np.ndarray, bpp: int) -> np.ndarray:
    """Undo PNG row filters; None/Up rows in numpy, Sub/Average/Paeth rows in a numba kernel."""
    kinds = rows[:, 0]
    if np.all(kinds == 0) or (np.all(kinds == 2)):
        data = rows[:, 1:]
        if kinds[0] == 0:
            return np.array(data)
        return np.cumsum(data, axis=0, dtype=np.uint8)  # Up on every row: sum down columns
    return _unfilter_kernel()(np.ascontiguousarray(rows), bpp)


_KERNEL: Any = None


def _unfilter_kernel() -> Any:
    global _KERNEL
    if _KERNEL is None:
        from numba import njit

        @njit(cache=True)
        def unfilter(rows: np.ndarray, bpp: int) -> np.ndarray:  # pragma: no cover - numba
            height, width = rows.shape[0], rows.shape[1] - 1
            out = np.zeros((height, width), dtype=np.uint8)
            for y in range(height):
                f = rows[y, 0]
                for x in range(width):
                    r = np.int32(rows[y, x + 1])
                    a = np.int32(out[y, x - bpp]) if x >= bpp else 0
                    b = np.int32(out[y - 1, x]) if y > 0 else 0
                    c = np.int32(out[y - 1, x - bpp]) if (y > 0 and x >= bpp) else 0
                    if f == 1:
                        r += a
                    elif f == 2:
                        r += b
                    elif f == 3:
                        r += (a + b) // 2
                    elif f == 4:
                        p = a + b - c
                        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                        if pa <= pb and pa <= pc:
                            r += a
                        elif pb <= pc:
                            r += b
                        else:
                            r += c
                    out[y, x] = r & 255
            return out

        _KERNEL = unfilter
    return _KERNEL


# ----------------------------------------------------------------------------------------
# files


def read_preview(fh: BinaryIO, kind: str) -> tuple[np.ndarray, dict[str, str]]:
    """Integer samples in pxlang order and text metadata of a PNG or JPEG file."""
    if kind == "png":
        head = fh.read(33)
        info = png_header(head)
        if info["depth"] == 16 and info["type"] in (2, 4, 6) and not info["interlace"]:
            return decode_png(head + fh.read())
        fh.seek(0)
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        with PILImage.open(fh) as im:
            im.load()
            text = {k: v for k, v in im.info.items() if isinstance(v, str)}
            if "comment" in im.info and isinstance(im.info["comment"], bytes):
                text["comment"] = im.info["comment"].decode("latin-1")
            if im.mode in ("I;16", "I;16B", "I;16L"):
                return np.asarray(im).astype(np.uint16), text
            if im.mode == "I":
                return np.asarray(im).astype(np.uint16), text
            if im.mode in ("L", "1", "LA", "La"):
                return np.asarray(im.convert("L")), text
            im2 = im if im.mode == "RGB" else im.convert("RGB")
            return np.ascontiguousarray(np.asarray(im2).transpose(2, 0, 1)), text
    except UnidentifiedImageError as exc:
        raise PngError(f"not a {kind.upper()} file ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 - Pillow raises anything on damaged bytes
        raise PngError(f"corrupt {kind.upper()} file ({type(exc).__name__}: {exc})") from exc


def write_preview(
    fh: BinaryIO, samples: np.ndarray, kind: str, text: dict[str, str], quality: int = 95
) -> None:
    """Write integer samples ((H, W) or (3, H, W)) as PNG (8/16-bit) or JPEG (8-bit)."""
    if kind == "png":
        fh.write(encode_png(samples, text))
        return
    from PIL import Image as PILImage

    arr = np.asarray(samples)
    if arr.dtype != np.uint8:
        raise ValueError("JPEG is 8-bit")
    pil = PILImage.fromarray(arr if arr.ndim == 2 else np.ascontiguousarray(arr.transpose(1, 2, 0)))
    comment = text.get("Comment") or "\n".join(text.values())  # history holds the version
    comment_bytes = comment.encode("latin-1", "replace")
    pil.save(fh, format="JPEG", quality=quality, subsampling=0, comment=comment_bytes)
