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
"""

from __future__ import annotations

import gzip
import os
import re
import secrets
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from pxlang._version import __version__
from pxlang.lang.errors import PxIOError

from .provenance import provenance_lines, stamp_header
from .store import Image

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
STRUCTURAL = frozenset(
    "SIMPLE BITPIX NAXIS EXTEND BZERO BSCALE BLANK XTENSION PCOUNT GCOUNT "
    "CHECKSUM DATASUM END ZIMAGE ZBITPIX ZNAXIS ZTILE1 ZTILE2 ZCMPTYPE".split()
)
_NAXIS_N = re.compile(r"^Z?NAXIS\d+$")
_ROW_CHUNK = 1 << 20  # bytes converted at a time when writing pixels (cache-sized)


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


def _err(path: str, cause: str, hint: str | None = None, writing: bool = False) -> PxIOError:
    verb = "write" if writing else "read"
    return PxIOError(f"cannot {verb} '{path}': {cause}", hint=hint)


def _check_readable(path: str) -> int:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise _err(
            path, "no such file", "check the name and the folder it is relative to"
        ) from None
    except OSError as exc:
        raise _err(path, exc.strerror or str(exc)) from exc
    if os.path.isdir(path):
        raise _err(path, "it is a folder, not an image file")
    if st.st_size == 0:
        raise _err(path, "the file is empty")
    return st.st_size


# ----------------------------------------------------------------------------------------
# samples -> float32 in [0, 1]


def normalise(
    raw: np.ndarray,
    bzero: float = 0.0,
    bscale: float = 1.0,
    blank: Any = None,
    *,
    reuse: bool = False,
) -> np.ndarray:
    """Float32 pixels from stored samples.

    Integers: physical value (raw*bscale + bzero) divided by the physical value of the largest
    storable raw integer. Floats: raw*bscale + bzero. ``blank`` raw values become NaN.
    ``reuse``: ``raw`` is a fresh array of the caller's; native float32 comes back as itself
    (when writeable) instead of a copy.
    """
    raw = np.asarray(raw)
    if raw.dtype.kind in "ui":
        top = float(np.iinfo(raw.dtype).max) * bscale + bzero
        small = raw.dtype.itemsize <= 2 and bscale == 1 and float(bzero).is_integer()
        out = raw.astype(np.float32 if small else np.float64)
        if bscale != 1:
            out *= bscale
        if bzero:
            out += bzero
        if top > 0:
            out /= top
        out = out.astype(np.float32, copy=False)
        if blank is not None:
            out[raw == blank] = np.nan
        return out
    if raw.dtype.kind == "b":
        return raw.astype(np.float32)
    if raw.dtype.kind != "f":
        raise ValueError(f"samples of type {raw.dtype} are not image data")
    out = raw.astype(np.float32, copy=not (reuse and raw.flags.writeable))
    if bscale != 1 or bzero:
        out = (raw.astype(np.float64) * bscale + bzero).astype(np.float32)
    return out


def _quantise(data: np.ndarray, bits: int) -> np.ndarray:
    """[0, 1] floats to unsigned integers of ``bits`` (NaN -> 0, clipped, rounded)."""
    top = (1 << bits) - 1
    dtype = np.uint8 if bits == 8 else np.uint16
    out = np.nan_to_num(data, nan=0.0, posinf=1.0, neginf=0.0)
    out = np.clip(out, 0.0, 1.0) * np.float32(top)
    return np.rint(out).astype(dtype)


# ----------------------------------------------------------------------------------------
# headers


def _is_structural(key: str) -> bool:
    return key in STRUCTURAL or bool(_NAXIS_N.match(key))


def clean_header(header: Any) -> Any:
    """A copy of ``header`` (Header, dict or None) without the structural keywords."""
    from astropy.io.fits import Header

    if header is None:
        return Header()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # odd cards (HIERARCH, long values) copy as they are
        if not isinstance(header, Header):
            out = Header()
            for key, value in dict(header).items():
                if not _is_structural(str(key).upper()):
                    out[str(key)] = value
            return out
        out = header.copy(strip=False)
        for key in {k for k in out.keys() if _is_structural(k)}:
            out.remove(key, remove_all=True)
    return out


def _described(header: Any, shape: tuple[int, ...], bitpix: int = -32) -> Any:
    """``header`` without structure, headed by SIMPLE/BITPIX/NAXISn for an array ``shape``."""
    from astropy.io.fits import Header

    out = Header([("SIMPLE", True), ("BITPIX", bitpix), ("NAXIS", len(shape))])
    for i, n in enumerate(reversed(shape), 1):
        out[f"NAXIS{i}"] = n
    out.extend(clean_header(header).cards)
    return out


def _ascii(text: str) -> str:
    """FITS headers hold printable ASCII: escape the rest instead of losing the card."""
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return "".join(ch if 32 <= ord(ch) < 127 else " " for ch in text)


def _header_from_keywords(keywords: list[tuple[str, Any, str]]) -> Any:
    """A Header from (name, value, comment) triples, skipping what FITS cannot hold."""
    from astropy.io.fits import Card, Header

    out = Header()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, value, comment in keywords:
            key = str(name).strip().upper()
            if not key or _is_structural(key):
                continue
            if isinstance(value, str):
                value = _ascii(value)
            try:
                card = Card(key, value, _ascii(comment or ""))
                card.image  # noqa: B018 - formats the card, raising if FITS cannot hold it
            except (ValueError, TypeError, KeyError):
                continue
            out.append(card, end=True)
    return out


# ----------------------------------------------------------------------------------------
# FITS


@dataclass(frozen=True)
class _FitsLayout:
    header: Any  # the image HDU's header as stored
    extra: Any  # primary header keywords when the image is in an extension, else None
    index: int  # HDU number
    offset: int | None  # byte offset of the data, None when not memory-mappable (gz, tiles)
    dtype: np.dtype  # stored sample type (big-endian)
    file_shape: tuple[int, ...]  # numpy order as stored: (N3, N2, N1) or (N2, N1)
    bzero: float
    bscale: float
    blank: Any

    @property
    def shape(self) -> tuple[int, ...]:
        s = self.file_shape
        return s[1:] if len(s) == 3 and s[0] == 1 else s


_BITPIX = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


def _fits_open(path: str) -> Any:
    from astropy.io import fits

    return fits.open(
        path, mode="readonly", memmap=True, do_not_scale_image_data=True, lazy_load_hdus=True
    )


def _fits_layout_parse(path: str, size: int) -> _FitsLayout:
    from astropy.io import fits

    gz = path.lower().endswith(".gz")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # truncation is checked below, by size
            with _fits_open(path) as hdul:
                found = None
                for i, hdu in enumerate(hdul):
                    if not isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)):
                        continue
                    if hdu.header.get("NAXIS", 0) > 0:
                        found = (i, hdu)
                        break
                if found is None:
                    raise _err(path, "the file holds no image data")
                i, hdu = found
                header = hdu.header.copy()
                extra = hdul[0].header.copy() if i > 0 else None
                compressed = isinstance(hdu, fits.CompImageHDU)
                offset = None if (gz or compressed) else hdul.fileinfo(i)["datLoc"]
    except PxIOError:
        raise
    except (OSError, ValueError, EOFError, KeyError, IndexError, TypeError) as exc:
        raise _err(path, f"not a FITS file, or corrupt ({exc})") from exc
    naxis = int(header.get("NAXIS", 0))
    try:
        axes = [int(header[f"NAXIS{k}"]) for k in range(1, naxis + 1)]
    except (KeyError, ValueError) as exc:
        raise _err(path, f"corrupt header: NAXISn missing or not a number ({exc})") from exc
    while len(axes) > 3 and axes[-1] == 1:
        axes.pop()
    if len(axes) < 2 or len(axes) > 3:
        raise _err(path, f"{len(axes)}-D data (NAXIS = {naxis}): an image is 2-D, or 3-D colour")
    if len(axes) == 3 and axes[2] not in (1, 3):
        raise _err(
            path,
            f"NAXIS3 = {axes[2]}: pxlang reads mono (NAXIS3 = 1) or RGB (NAXIS3 = 3) images",
            "a data cube must be split into separate images first",
        )
    if min(axes) < 1:
        raise _err(path, f"image has an empty axis ({'x'.join(map(str, axes))})")
    bitpix = int(header.get("BITPIX", 0))
    if bitpix not in _BITPIX:
        raise _err(path, f"corrupt header: BITPIX = {bitpix}")
    dtype = np.dtype(_BITPIX[bitpix])
    file_shape = tuple(reversed(axes))
    if offset is not None:
        need = offset + dtype.itemsize * int(np.prod(axes))
        if need > size:
            raise _err(
                path,
                f"the file is truncated: its header promises {need} bytes, it has {size}",
                "the file was probably not copied or written completely",
            )
    blank = header.get("BLANK") if bitpix > 0 else None
    return _FitsLayout(
        header,
        extra,
        i,
        offset,
        dtype,
        file_shape,
        float(header.get("BZERO", 0.0)),
        float(header.get("BSCALE", 1.0)),
        blank,
    )


_LAYOUTS: OrderedDict[str, tuple[tuple[int, ...], bytes, _FitsLayout]] = OrderedDict()
_LAYOUTS_LOCK = threading.Lock()
_LAYOUT_CACHE = 256  # files whose layout is remembered
_SIGNATURE_MAX = 1 << 20  # header bytes compared on each use


def _fits_layout(path: str) -> _FitsLayout:
    """The layout of a FITS file, parsed once and reused while the file is unchanged.

    Streaming reads ask for it once per band, so parsing the header each time would cost more
    than the read. A file rewritten in place within one timestamp tick keeps its size, inode
    and mtime, so a remembered layout is used only if the header bytes are still the same.
    """
    size = _check_readable(path)
    key = os.path.abspath(path)
    st = os.stat(path)
    stamp = (st.st_mtime_ns, st.st_ctime_ns, size, st.st_ino)
    with _LAYOUTS_LOCK:
        hit = _LAYOUTS.get(key)
    if hit is not None and hit[0] == stamp and hit[2].offset is not None:
        layout = hit[2]
        with open(path, "rb") as fh:
            if fh.read(min(layout.offset, _SIGNATURE_MAX)) == hit[1]:
                return layout
    layout = _fits_layout_parse(path, size)
    if layout.offset is not None:  # gz and tile-compressed files are read whole anyway
        with open(path, "rb") as fh:
            signature = fh.read(min(layout.offset, _SIGNATURE_MAX))
        with _LAYOUTS_LOCK:
            _LAYOUTS[key] = (stamp, signature, layout)
            _LAYOUTS.move_to_end(key)
            while len(_LAYOUTS) > _LAYOUT_CACHE:
                _LAYOUTS.popitem(last=False)
    return layout


def _fits_raw(path: str, layout: _FitsLayout, rows: slice | None = None) -> np.ndarray:
    """Stored samples (numpy order as in the file), a band of rows when ``rows`` is given."""
    if layout.offset is not None:
        mm = np.memmap(
            path, dtype=layout.dtype, mode="r", offset=layout.offset, shape=layout.file_shape
        )
        part = mm if rows is None else mm[..., rows, :]
        return part
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with _fits_open(path) as hdul:
                data = np.array(hdul[layout.index].data)
    except (OSError, ValueError, EOFError) as exc:
        raise _err(path, f"corrupt or truncated data ({exc})") from exc
    if data.shape != layout.file_shape:
        data = data.reshape(layout.file_shape)
    return data if rows is None else data[..., rows, :]


def _fits_pixels(path: str, layout: _FitsLayout, rows: slice | None = None) -> np.ndarray:
    raw = _fits_raw(path, layout, rows)
    if layout.offset is None and raw.dtype.kind == "f" and layout.dtype.kind in "ui":
        # astropy scaled tile-compressed integers already; only normalise the range
        top = float(np.iinfo(layout.dtype).max) * layout.bscale + layout.bzero
        out = (raw / top).astype(np.float32)
    else:
        out = normalise(raw, layout.bzero, layout.bscale, layout.blank)
    del raw  # drop the memory map now, not when the caller's frame ends
    return out[0] if out.ndim == 3 and out.shape[0] == 1 else out


def _read_fits(path: str) -> tuple[np.ndarray, Any]:
    layout = _fits_layout(path)
    data = _fits_pixels(path, layout)
    header = _described(layout.header, data.shape)
    if layout.extra is not None:
        for card in clean_header(layout.extra).cards:
            if card.keyword not in header and card.keyword not in ("HISTORY", "COMMENT"):
                header.append(card, end=True)
    return data, header


def _write_fits(fh: BinaryIO, data: np.ndarray, header: Any, bits: int, path: str) -> None:
    from astropy.io.fits import Header
    from astropy.io.fits.verify import VerifyWarning

    # samples stay native here; _write_samples converts to big-endian one band at a time
    if bits == 32:
        stored, cards = data, [("BITPIX", -32)]
    elif bits == 16:
        u16 = _quantise(data, 16)
        stored = (u16 ^ np.uint16(0x8000)).view(np.int16)  # minus 32768, two's complement
        cards = [("BITPIX", 16)]
    else:
        stored, cards = _quantise(data, 8), [("BITPIX", 8)]
    out = Header([("SIMPLE", True, "conforms to FITS standard"), *cards])
    out["NAXIS"] = stored.ndim
    for i, n in enumerate(reversed(stored.shape), 1):
        out[f"NAXIS{i}"] = n
    out["EXTEND"] = True
    if bits == 16:
        out["BZERO"] = (32768, "unsigned 16-bit samples")
        out["BSCALE"] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VerifyWarning)
        out.extend(header.cards)
        text = out.tostring(sep="", endcard=True, padding=True)
    target: BinaryIO = fh
    gz = None
    if path.lower().endswith(".gz"):
        gz = gzip.GzipFile(fileobj=fh, mode="wb", compresslevel=6, mtime=0)
        target = gz  # type: ignore[assignment]
    target.write(text.encode("ascii"))
    _write_samples(target, stored, stored.dtype.newbyteorder(">"))
    pad = (-stored.nbytes) % 2880
    target.write(b"\0" * pad)
    if gz is not None:
        gz.close()


def _write_samples(fh: BinaryIO, arr: np.ndarray, dtype: np.dtype) -> None:
    """Write ``arr`` as ``dtype`` in row bands, so a big image is never copied whole."""
    flat = arr.reshape(-1, arr.shape[-1])
    step = max(1, _ROW_CHUNK // max(1, flat.shape[1] * dtype.itemsize))
    for r in range(0, flat.shape[0], step):
        band = np.ascontiguousarray(flat[r : r + step], dtype=dtype)
        fh.write(memoryview(band).cast("B"))  # no bytes copy of the band


# ----------------------------------------------------------------------------------------
# XISF


def _xisf_open(path: str) -> tuple[Any, Any]:
    from . import xisf

    size = _check_readable(path)
    fh = open(path, "rb")  # noqa: SIM115 - closed by the caller
    try:
        return fh, xisf.XISFImage(fh, size)
    except xisf.XISFError as exc:
        fh.close()
        raise _err(path, str(exc)) from exc


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
    return _described(_header_from_keywords(keywords), img.shape, bitpix)


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
        raise _err(path, str(exc)) from exc
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

    samples = data if bits == 32 else _quantise(data, bits)
    keywords = [(c.keyword, c.value, c.comment) for c in header.cards if c.keyword]
    write_xisf(fh, samples, keywords, compression=compression)


# ----------------------------------------------------------------------------------------
# TIFF


def _tiff_description_header(text: str) -> Any:
    """A Header from an ImageDescription: the FITS header pxlang (and Siril) put there, when it
    starts with a SIMPLE card; otherwise the text as COMMENT lines."""
    from astropy.io.fits import Header
    from astropy.io.fits.verify import VerifyError

    if text.startswith("SIMPLE  ="):
        # cards were written without their trailing blanks; CONTINUE parsing needs all 80
        padded = "\n".join(_ascii(ln).ljust(80) for ln in text.splitlines())
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                header = Header.fromstring(padded, sep="\n")
                cards = [(c.keyword, c.value, c.comment) for c in header.cards]
            return _header_from_keywords(cards)  # fresh cards: damaged ones are dropped
        except (ValueError, TypeError, KeyError, VerifyError):
            pass  # not FITS after all: keep it as text
    out = Header()
    for ln in text.splitlines():
        if ln.strip():
            out.add_comment("TIFF: " + _ascii(ln)[:60])
    return out


def _tiff_read(path: str, header_only: bool = False) -> tuple[Any, Any, tuple[int, ...], int]:
    """(samples or None, header, pxlang shape, BITPIX of the stored samples)."""
    import tifffile

    _check_readable(path)
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes, shape, dtype = series.axes, series.shape, np.dtype(series.dtype)
            page = tif.pages[0]
            desc = page.description if hasattr(page, "description") else ""
            tags = {t.name: t.value for t in page.tags}
            raw = None if header_only else series.asarray()
    except Exception as exc:  # noqa: BLE001 - tifffile raises anything on damaged bytes
        raise _err(path, f"not a TIFF file, or corrupt ({type(exc).__name__}: {exc})") from exc
    if raw is not None and raw.size != int(np.prod(shape)):
        raise _err(
            path, f"corrupt TIFF: {raw.size} samples decoded, {int(np.prod(shape))} expected"
        )
    # Squeeze to (H, W) or (C, H, W): samples last in contiguous files, first in planar ones.
    keep = [i for i, n in enumerate(shape) if n != 1 or axes[i] in "YX"]
    axes = "".join(axes[i] for i in keep)
    shape = tuple(shape[i] for i in keep)
    if raw is not None:
        raw = raw.reshape(shape)
    if len(shape) == 3 and axes[-1] not in "YX":
        if raw is not None:
            raw = np.moveaxis(raw, -1, 0)
        shape = (shape[2], shape[0], shape[1])
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[0] not in (2, 3, 4)):
        raise _err(path, f"TIFF data of shape {shape} (axes {axes}) is not a mono or RGB image")
    if len(shape) == 3:
        channels = 1 if shape[0] == 2 else 3  # grey+alpha, RGB, RGB+alpha
        shape = shape[1:] if channels == 1 else (3, *shape[1:])
        if raw is not None:
            raw = raw[0] if channels == 1 else raw[:3]
    header = _tiff_description_header(desc or "")
    if isinstance(tags.get("DateTime"), str):
        header["DATE"] = _ascii(tags["DateTime"])[:68]
    if isinstance(tags.get("Software"), str) and "SWCREATE" not in header:
        header["SWCREATE"] = _ascii(tags["Software"])[:68]
    bitpix = -8 * dtype.itemsize if dtype.kind == "f" else 8 * dtype.itemsize
    return raw, header, shape, bitpix


def _read_tiff(path: str) -> tuple[np.ndarray, Any]:
    raw, header, shape, _ = _tiff_read(path)
    try:
        data = normalise(raw)
    except ValueError as exc:
        raise _err(path, str(exc)) from exc
    return data, _described(header, shape)


def _write_tiff(
    fh: BinaryIO, data: np.ndarray, header: Any, bits: int, compression: str | None
) -> None:
    import tifffile

    samples = data.astype(np.float32) if bits == 32 else _quantise(data, bits)
    colour = samples.ndim == 3
    if colour:
        samples = np.ascontiguousarray(samples.transpose(1, 2, 0))
    from astropy.io.fits import Header
    from astropy.io.fits.verify import VerifyWarning

    described = Header([("SIMPLE", True, "pxlang: the FITS header of this image")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VerifyWarning)
        described.extend(header.cards)
        text = described.tostring(sep="\n", endcard=False, padding=False)
    lines = [ln.rstrip() for ln in text.splitlines()]
    tifffile.imwrite(
        fh,
        samples,
        photometric="rgb" if colour else "minisblack",
        description="\n".join(lines),
        metadata=None,
        software=f"pxlang {__version__}",
        compression=compression,
    )


# ----------------------------------------------------------------------------------------
# PNG / JPEG


def _read_preview(path: str, kind: str) -> tuple[np.ndarray, Any]:
    from astropy.io.fits import Header

    from .png import PngError, read_preview

    _check_readable(path)
    try:
        with open(path, "rb") as fh:
            raw, text = read_preview(fh, kind)
    except PngError as exc:
        raise _err(path, str(exc)) from exc
    header = Header()
    for key in ("Comment", "comment"):
        for line in text.get(key, "").splitlines():
            if line.startswith("pxlang "):
                header.add_history(_ascii(line)[:72])
    return normalise(raw), _described(header, raw.shape)


def _write_preview(fh: BinaryIO, data: np.ndarray, header: Any, bits: int, kind: str) -> None:
    from .png import write_preview

    history = [str(c.value) for c in header.cards if c.keyword == "HISTORY"]
    text = {"Software": f"pxlang {__version__}", "Comment": "\n".join(history)}
    write_preview(fh, _quantise(data, bits), kind, text)


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
        raise _err(path, f"the image has no pixels (shape {data.shape})")
    if _all_nan(data):
        raise _err(path, "every pixel is NaN (no data)")
    stem, _ = _split(path)
    return Image(data, header, name or stem, path)


def read_header(path: str) -> Any:
    """The file's header (astropy ``Header``) without reading pixels.

    FITS: the header of the image HDU as stored. Other formats: a header built from what the
    file holds (XISF FITSKeyword elements, TIFF description and tags), headed by
    SIMPLE/BITPIX/NAXISn for the stored sample type and shape.
    """
    path = os.fspath(path)
    fmt = format_of(path)
    if fmt == "fits":
        return _fits_layout(path).header.copy()
    if fmt == "xisf":
        fh, img = _xisf_open(path)
        with fh:
            return _xisf_header(img)
    if fmt == "tiff":
        _, header, shape, bitpix = _tiff_read(path, header_only=True)
        return _described(header, shape, bitpix)
    from astropy.io.fits import Header

    shape = image_shape(path)
    return _described(Header(), shape, 8)


def image_shape(path: str) -> tuple[int, ...]:
    """pxlang's shape of the image in a file, (H, W) or (3, H, W), from its header only."""
    path = os.fspath(path)
    fmt = format_of(path)
    if fmt == "fits":
        return _fits_layout(path).shape
    if fmt == "xisf":
        fh, img = _xisf_open(path)
        with fh:
            return img.shape
    if fmt == "tiff":
        return _tiff_read(path, header_only=True)[2]
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    _check_readable(path)
    try:
        with PILImage.open(path) as im:
            w, h = im.size
            grey = im.mode in ("L", "LA", "1", "I", "I;16", "I;16B", "I;16L", "F")
    except (UnidentifiedImageError, OSError) as exc:
        raise _err(path, f"not a readable {fmt.upper()} file ({exc})") from exc
    return (h, w) if grey else (3, h, w)


def read_rows(path: str, r0: int, r1: int) -> np.ndarray:
    """Rows ``r0:r1`` of an image (the last-but-one axis), float32, normalised as ``load``.

    FITS (uncompressed) and uncompressed planar XISF read only those rows, through a memory
    map; other files are loaded whole. Equals ``load(path).data[..., r0:r1, :]``.
    """
    path = os.fspath(path)
    fmt = format_of(path)
    rows = slice(r0, r1)
    if fmt == "fits":
        return _fits_pixels(path, _fits_layout(path), rows)
    if fmt == "xisf":
        fh, img = _xisf_open(path)
        with fh:
            return _xisf_pixels(path, img, rows)
    return load(path).data[..., rows, :]


# ----------------------------------------------------------------------------------------
# public: writing


@contextmanager
def _atomic(path: str, overwrite: bool) -> Iterator[BinaryIO]:
    """A binary file that becomes ``path`` only when the block finishes without error."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise _err(path, f"cannot create its folder ({exc.strerror})", writing=True) from exc
    if os.path.isdir(path):
        raise _err(path, "a folder of that name exists", writing=True)
    if not overwrite and os.path.lexists(path):
        raise _err(path, "the file exists", "pass overwrite=True to replace it", writing=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    try:
        fh = open(tmp, "xb")  # noqa: SIM115 - exclusive create, mode 0o666 less the umask
    except OSError as exc:
        raise _err(path, exc.strerror or str(exc), writing=True) from exc
    try:
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if the name appeared meanwhile: never clobber
            except FileExistsError:
                raise _err(path, "the file exists", writing=True) from None
            os.unlink(tmp)
    except OSError as exc:
        with suppress(OSError):
            os.unlink(tmp)
        raise _err(path, exc.strerror or str(exc), writing=True) from exc
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    with suppress(OSError):  # make the rename itself durable; not every filesystem allows it
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def save(
    image: Any,
    path: str,
    *,
    header: Any = None,
    provenance: dict[str, Any] | None = None,
    bits: int | None = None,
    overwrite: bool = True,
    compression: str | None = None,
) -> str:
    """Write an image (``Image`` or array) to ``path``; the format follows the extension.

    ``bits``: FITS and XISF 32 (float32, default), 16 (uint16; FITS with BZERO 32768) or 8;
    TIFF 16 (default), 32 (float) or 8; PNG 8 (default) or 16; JPEG 8. Integer outputs and
    previews clip to [0, 1] (NaN -> 0). ``header`` replaces the image's own header; its
    keywords are written (FITS cards, XISF FITSKeyword, TIFF ImageDescription) with the
    structural ones regenerated. ``provenance`` ({"source", "text", "params"}) and the pxlang
    version become HISTORY lines. ``compression``: XISF zlib/lz4/lz4hc/zstd, TIFF zlib.
    Missing folders are created. Returns ``path``.
    """
    path = os.fspath(path)
    fmt = format_of(path)
    if isinstance(image, Image):
        img = image
    else:
        try:
            img = Image(np.asarray(image, dtype=np.float32))
        except (ValueError, TypeError) as exc:
            raise _err(path, str(exc), writing=True) from exc
    if img.data.size == 0:
        raise _err(path, f"the image has no pixels (shape {img.data.shape})", writing=True)
    allowed = WRITE_BITS[fmt]
    bits = allowed[0] if bits is None else int(bits)
    if bits not in allowed:
        raise _err(
            path,
            f"{fmt.upper()} files are written with bits = {', '.join(map(str, allowed))}, "
            f"not {bits}",
            writing=True,
        )
    if compression is not None:
        ok = {"xisf": ("zlib", "lz4", "lz4hc", "zstd"), "tiff": ("zlib",)}.get(fmt, ())
        if compression not in ok:
            raise _err(
                path,
                f"compression {compression!r} is not available for {fmt.upper()} "
                f"({', '.join(ok) or 'none'})",
                "FITS files are compressed by naming them .fits.gz" if fmt == "fits" else None,
                writing=True,
            )
    hdr = clean_header(header if header is not None else img.header)
    stamp_header(hdr, provenance)
    data = img.data
    with _atomic(path, overwrite) as fh:
        if fmt == "fits":
            _write_fits(fh, data, hdr, bits, path)
        elif fmt == "xisf":
            _write_xisf(fh, data, hdr, bits, compression)
        elif fmt == "tiff":
            _write_tiff(fh, data, hdr, bits, compression)
        else:
            _write_preview(fh, data, hdr, bits, fmt)
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
