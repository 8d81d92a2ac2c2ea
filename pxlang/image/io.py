"""Image files: FITS, XISF, TIFF, PNG and JPEG in and out, as pxlang ``Image`` objects.

Reading gives float32 (H, W) mono or (3, H, W) colour. Integer samples are divided by the
physical value of the largest integer the file can store: BITPIX 16 with BZERO 32768 (uint16)
by 65535, uint8 by 255, uint32 by 4294967295, signed 16-bit without BZERO by 32767. Float
samples are kept as they are (XISF floats with bounds other than 0:1 are rescaled to 0..1).
The header travels as an astropy ``Header`` describing the loaded float32 pixels: BITPIX is
-32, BZERO/BSCALE/BLANK are gone, NAXISn match the array.

FITS pixels are read through a memory map of the file (``read_rows`` reads a band of rows
without touching the rest). The row order is the file's: row 0 is the first row stored.

Writing is atomic: a temp file in the target folder, fsync, then ``os.replace`` onto the name;
on any failure the temp file is removed and nothing appears under the final name. Every file
written carries the pxlang version and the provenance lines of ``provenance.py``.

This module picks the format and holds the XISF and PNG/JPEG glue; FITS is in ``fits.py``,
TIFF in ``tiff.py``, and what they share in ``codec.py``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any, BinaryIO

import numpy as np

from pxlang import runtrace
from pxlang._version import __version__
from pxlang.lang.errors import PxIOError

from . import fits
from .codec import (
    check_readable,
    clean_header,
    described,
    file_error,
    fits_ascii,
    header_from_keywords,
    normalise,
    quantise,
)

# load() and save() call the format readers and writers by these names of this module
from .fits import read as _read_fits
from .fits import write as _write_fits
from .provenance import provenance_lines, stamp_header
from .store import Image
from .tiff import read as _read_tiff
from .tiff import read_samples as _tiff_read
from .tiff import write as _write_tiff

FORMATS: dict[str, str] = {
    ".fits": "fits",
    ".fit": "fits",
    ".fts": "fits",
    ".fits.gz": "fits",
    ".fit.gz": "fits",
    ".fts.gz": "fits",
    ".xisf": "xisf",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
}
# Bits each format can write (None = the format's default, first in the tuple).
WRITE_BITS = {
    "fits": (32, 16, 8),
    "xisf": (32, 16, 8),
    "tiff": (16, 32, 8),
    "png": (8, 16),
    "jpeg": (8,),
}


# ----------------------------------------------------------------------------------------
# names and errors


def _split(path: str) -> tuple[str, str]:
    """(stem, extension) with the longest known extension, case-insensitive."""
    base = os.path.basename(os.fspath(path))
    low = base.lower()
    for ext in sorted(FORMATS, key=len, reverse=True):
        if low.endswith(ext) and len(base) > len(ext):
            return base[: -len(ext)], ext
    stem, ext = os.path.splitext(base)
    return stem, ext.lower()


def without_extension(path: str) -> str:
    """``path`` without its image-file extension (.fits, .fits.gz, .png…; any case); other
    paths as given."""
    _, ext = _split(path)
    return path[: len(path) - len(ext)] if ext in FORMATS else path


def format_of(path: str) -> str:
    """The format name ("fits", "xisf", "tiff", "png", "jpeg") for a file name."""
    _, ext = _split(path)
    if ext not in FORMATS:
        known = ", ".join(sorted(FORMATS))
        raise PxIOError(
            f"'{path}': unknown image file type '{ext or '(no extension)'}'",
            hint=f"image files end in one of {known}",
        )
    return FORMATS[ext]


# ----------------------------------------------------------------------------------------
# XISF


def _xisf_open(path: str) -> tuple[Any, Any]:
    from . import xisf

    size = check_readable(path)
    fh = open(path, "rb")  # noqa: SIM115 - closed by the caller
    try:
        return fh, xisf.XISFImage(fh, size)
    except xisf.XISFError as exc:
        fh.close()
        raise file_error(path, str(exc)) from exc


_XISF_BITPIX = {"u1": 8, "u2": 16, "u4": 32, "f4": -32, "f8": -64}
# XISF standard properties -> the FITS keywords capture software writes for the same thing;
# used only when the file has no such FITSKeyword.
_XISF_PROPERTIES = {
    "Observation:Object:Name": "OBJECT",
    "Observation:Time:Start": "DATE-OBS",
    "Instrument:ExposureTime": "EXPTIME",
    "Instrument:Filter:Name": "FILTER",
    "Instrument:Camera:Name": "INSTRUME",
    "Instrument:Camera:Gain": "GAIN",
    "Instrument:Camera:XBinning": "XBINNING",
    "Instrument:Camera:YBinning": "YBINNING",
    "Instrument:Sensor:Temperature": "CCD-TEMP",
    "Instrument:Telescope:Name": "TELESCOP",
}


def _xisf_header(img: Any, bitpix: int | None = None) -> Any:
    if bitpix is None:
        bitpix = _XISF_BITPIX[img.dtype.newbyteorder("=").str[1:]]
    keywords = []
    for name, value, comment in img.keywords:
        from .xisf import parse_keyword_value

        key = name.strip().upper()
        if key in ("HISTORY", "COMMENT"):
            text = comment or str(parse_keyword_value(value) if value else "")
            keywords.append((key, text, ""))
        else:
            keywords.append((key, parse_keyword_value(value), comment))
    present = {k for k, _, _ in keywords}
    for prop, key in _XISF_PROPERTIES.items():
        text = img.properties.get(prop)
        if text is not None and key not in present:
            value = parse_keyword_value(text)
            keywords.append((key, value, f"from XISF property {prop}"[:47]))
    return described(header_from_keywords(keywords), img.shape, bitpix)


def _xisf_pixels(path: str, img: Any, rows: slice | None = None) -> np.ndarray:
    from .xisf import XISFError

    try:
        raw = None
        if rows is not None:
            r0, r1, _ = rows.indices(img.height)
            raw = img.row_band(path, r0, max(r0, r1))
        if raw is None:
            raw = img.pixels()
            if rows is not None:
                raw = raw[..., rows, :]
    except XISFError as exc:
        raise file_error(path, str(exc)) from exc
    out = np.ascontiguousarray(normalise(raw, reuse=True))
    if img.dtype.kind == "f" and img.bounds and img.bounds != (0.0, 1.0):
        lo, hi = img.bounds
        if hi > lo:
            out = ((out - np.float32(lo)) / np.float32(hi - lo)).astype(np.float32)
    return out


def _read_xisf(path: str) -> tuple[np.ndarray, Any]:
    fh, img = _xisf_open(path)
    with fh:
        data = _xisf_pixels(path, img)
        return data, _xisf_header(img, -32)


def _write_xisf(
    fh: BinaryIO, data: np.ndarray, header: Any, bits: int, compression: str | None
) -> None:
    from .xisf import write_xisf

    samples = data if bits == 32 else quantise(data, bits)
    keywords = [(c.keyword, c.value, c.comment) for c in header.cards if c.keyword]
    write_xisf(fh, samples, keywords, compression=compression)


# ----------------------------------------------------------------------------------------
# PNG / JPEG


def _read_preview(path: str, kind: str) -> tuple[np.ndarray, Any]:
    from astropy.io.fits import Header

    from .png import PngError, read_preview

    check_readable(path)
    try:
        with open(path, "rb") as fh:
            raw, text = read_preview(fh, kind)
    except PngError as exc:
        raise file_error(path, str(exc)) from exc
    header = Header()
    for key in ("Comment", "comment"):
        for line in text.get(key, "").splitlines():
            if line.startswith("pxlang "):
                header.add_history(fits_ascii(line)[:72])
    return normalise(raw), described(header, raw.shape)


def _write_preview(fh: BinaryIO, data: np.ndarray, header: Any, bits: int, kind: str) -> None:
    from .png import write_preview

    history = [str(c.value) for c in header.cards if c.keyword == "HISTORY"]
    text = {"Software": f"pxlang {__version__}", "Comment": "\n".join(history)}
    write_preview(fh, quantise(data, bits), kind, text)


# ----------------------------------------------------------------------------------------
# public: reading


def _all_nan(data: np.ndarray) -> bool:
    """True when no pixel holds a number; looks past the first pixel only when it is NaN."""
    flat = data.reshape(-1)
    if flat.size == 0 or not np.isnan(flat[0]):
        return False
    step = 1 << 20  # bounded temporaries on big frames
    return all(np.isnan(flat[i : i + step]).all() for i in range(0, flat.size, step))


def load(path: str, *, name: str | None = None) -> Image:
    """Read an image file as a float32 ``Image`` (see the module docstring for the rules).

    Raises ``PxIOError`` naming the file when it is missing, empty, not of its format,
    truncated, not a 2-D mono/RGB image, or holds nothing but NaN.
    """
    path = os.fspath(path)
    runtrace.read(path)
    fmt = format_of(path)
    if fmt == "fits":
        data, header = _read_fits(path)
    elif fmt == "xisf":
        data, header = _read_xisf(path)
    elif fmt == "tiff":
        data, header = _read_tiff(path)
    else:
        data, header = _read_preview(path, fmt)
    if data.size == 0:
        raise file_error(path, f"the image has no pixels (shape {data.shape})")
    if _all_nan(data):
        raise file_error(
            path,
            "every pixel is NaN (no data)",
            "move the file out of the input folder and run again; finished work is reused",
        )
    stem, _ = _split(path)
    return Image(data, header, name or stem, path)


def read_header(path: str) -> Any:
    """The file's header (astropy ``Header``) without reading pixels.

    FITS: the header of the image HDU as stored. Other formats: a header built from what the
    file holds (XISF FITSKeyword elements, TIFF description and tags), headed by
    SIMPLE/BITPIX/NAXISn for the stored sample type and shape.
    """
    path = os.fspath(path)
    runtrace.read(path)
    fmt = format_of(path)
    if fmt == "fits":
        return fits.layout(path).header.copy()
    if fmt == "xisf":
        fh, img = _xisf_open(path)
        with fh:
            return _xisf_header(img)
    if fmt == "tiff":
        _, header, shape, bitpix = _tiff_read(path, header_only=True)
        return described(header, shape, bitpix)
    from astropy.io.fits import Header

    shape = image_shape(path)
    return described(Header(), shape, 8)


def image_shape(path: str) -> tuple[int, ...]:
    """pxlang's shape of the image in a file, (H, W) or (3, H, W), from its header only."""
    path = os.fspath(path)
    runtrace.read(path)
    fmt = format_of(path)
    if fmt == "fits":
        return fits.layout(path).shape
    if fmt == "xisf":
        fh, img = _xisf_open(path)
        with fh:
            return img.shape
    if fmt == "tiff":
        return _tiff_read(path, header_only=True)[2]
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    check_readable(path)
    try:
        with PILImage.open(path) as im:
            w, h = im.size
            grey = im.mode in ("L", "LA", "1", "I", "I;16", "I;16B", "I;16L", "F")
    except (UnidentifiedImageError, OSError) as exc:
        raise file_error(path, f"not a readable {fmt.upper()} file ({exc})") from exc
    return (h, w) if grey else (3, h, w)


def read_rows(path: str, r0: int, r1: int) -> np.ndarray:
    """Rows ``r0:r1`` of an image (the last-but-one axis), float32, normalised as ``load``.

    FITS (uncompressed) and uncompressed planar XISF read only those rows, through a memory
    map; other files are loaded whole. Equals ``load(path).data[..., r0:r1, :]``.
    """
    path = os.fspath(path)
    runtrace.read(path)
    fmt = format_of(path)
    rows = slice(r0, r1)
    if fmt == "fits":
        return fits.pixels(path, fits.layout(path), rows)
    if fmt == "xisf":
        fh, img = _xisf_open(path)
        with fh:
            return _xisf_pixels(path, img, rows)
    return load(path).data[..., rows, :]


# ----------------------------------------------------------------------------------------
# public: writing


@contextmanager
def _atomic(path: str, overwrite: bool, durable: bool = True) -> Iterator[BinaryIO]:
    """A binary file that becomes ``path`` only when the block finishes without error.
    ``durable``: flushed to the disk before the rename (outputs); a cache file is not — a
    process killed after the rename leaves it whole in the page cache, and only a crash of
    the machine itself could lose it (then it is recomputed after the user clears it)."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise file_error(path, f"cannot create its folder ({exc.strerror})", writing=True) from exc
    if os.path.isdir(path):
        raise file_error(path, "a folder of that name exists", writing=True)
    if not overwrite and os.path.lexists(path):
        raise file_error(path, "the file exists", "pass overwrite=True to replace it", writing=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    try:
        fh = open(tmp, "xb")  # noqa: SIM115 - exclusive create, mode 0o666 less the umask
    except OSError as exc:
        raise file_error(path, exc.strerror or str(exc), writing=True) from exc
    try:
        with fh:
            yield fh
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if the name appeared meanwhile: never clobber
            except FileExistsError:
                raise file_error(path, "the file exists", writing=True) from None
            os.unlink(tmp)
    except OSError as exc:
        with suppress(OSError):
            os.unlink(tmp)
        raise file_error(path, exc.strerror or str(exc), writing=True) from exc
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    if not durable:
        return
    with suppress(OSError):  # make the rename itself durable; not every filesystem allows it
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def save_arrays(path: str, arrays: dict[str, Any]) -> bool:
    """Cache arrays as ``.npz`` (plain arrays, no pickles), atomically and without fsync
    (``_atomic``); False when it cannot be written: a cache that cannot be written only
    costs time."""
    try:
        with _atomic(path, overwrite=True, durable=False) as fh:
            np.savez(fh, **arrays)
    except (PxIOError, OSError):
        return False
    return True


def save(
    image: Any,
    path: str,
    *,
    header: Any = None,
    provenance: dict[str, Any] | None = None,
    bits: int | None = None,
    overwrite: bool = True,
    compression: str | None = None,
    durable: bool = True,
) -> str:
    """Write an image (``Image`` or array) to ``path``; the format follows the extension.

    ``bits``: FITS and XISF 32 (float32, default), 16 (uint16; FITS with BZERO 32768) or 8;
    TIFF 16 (default), 32 (float) or 8; PNG 8 (default) or 16; JPEG 8. Integer outputs and
    previews clip to [0, 1] (NaN -> 0). ``header`` replaces the image's own header; its
    keywords are written (FITS cards, XISF FITSKeyword, TIFF ImageDescription) with the
    structural ones regenerated. ``provenance`` ({"source", "text", "params"}) and the pxlang
    version become HISTORY lines. ``compression``: XISF zlib/lz4/lz4hc/zstd, TIFF zlib.
    Missing folders are created. ``durable=False`` skips the fsync (cache files: a killed
    process cannot leave them half-written, see ``_atomic``). Returns ``path``.
    """
    path = os.fspath(path)
    fmt = format_of(path)
    if isinstance(image, Image):
        img = image
    else:
        try:
            img = Image(np.asarray(image, dtype=np.float32))
        except (ValueError, TypeError) as exc:
            raise file_error(path, str(exc), writing=True) from exc
    if img.data.size == 0:
        raise file_error(path, f"the image has no pixels (shape {img.data.shape})", writing=True)
    allowed = WRITE_BITS[fmt]
    bits = allowed[0] if bits is None else int(bits)
    if bits not in allowed:
        raise file_error(
            path,
            f"{fmt.upper()} files are written with bits = {', '.join(map(str, allowed))}, "
            f"not {bits}",
            writing=True,
        )
    if compression is not None:
        ok = {"xisf": ("zlib", "lz4", "lz4hc", "zstd"), "tiff": ("zlib",)}.get(fmt, ())
        if compression not in ok:
            raise file_error(
                path,
                f"compression {compression!r} is not available for {fmt.upper()} "
                f"({', '.join(ok) or 'none'})",
                "FITS files are compressed by naming them .fits.gz" if fmt == "fits" else None,
                writing=True,
            )
    hdr = clean_header(header if header is not None else img.header)
    stamp_header(hdr, provenance)
    data = img.data
    with _atomic(path, overwrite, durable) as fh:
        if fmt == "fits":
            _write_fits(fh, data, hdr, bits, path)
        elif fmt == "xisf":
            _write_xisf(fh, data, hdr, bits, compression)
        elif fmt == "tiff":
            _write_tiff(fh, data, hdr, bits, compression)
        else:
            _write_preview(fh, data, hdr, bits, fmt)
    runtrace.wrote(path)
    return path


__all__ = [
    "FORMATS",
    "format_of",
    "image_shape",
    "load",
    "normalise",
    "provenance_lines",
    "read_header",
    "read_rows",
    "save",
]
