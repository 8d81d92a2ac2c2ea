"""FITS files: the image HDU's layout (cached), pixels through a memory map, writing.

Integer samples are normalised as ``codec.normalise`` says; the header that comes back
describes the float32 pixels. Used through ``io.py``, which picks the format by extension.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from pxlang.lang.errors import PxIOError

from .codec import (
    check_readable,
    clean_header,
    described,
    file_error,
    header_ascii,
    normalise,
    quantise,
)

_ROW_CHUNK = 1 << 20  # bytes converted at a time when writing pixels (cache-sized)


@dataclass(frozen=True)
class FitsLayout:
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


def _open(path: str) -> Any:
    from astropy.io import fits

    return fits.open(
        path, mode="readonly", memmap=True, do_not_scale_image_data=True, lazy_load_hdus=True
    )


_MAX_HEADER_BLOCKS = 1000  # 2.8 MB of header: beyond that, astropy's reader decides


def _primary_header(path: str) -> tuple[Any, int] | None:
    """The primary header and the byte offset of its data, read directly: a tenth of the
    cost of ``fits.open`` (a night's discovery reads every file's header). None when the
    file does not start like a plain FITS file; then the full reader takes over (and gives
    the precise error)."""
    from astropy.io import fits

    cards = bytearray()
    try:
        with open(path, "rb") as fh:
            for _ in range(_MAX_HEADER_BLOCKS):
                block = fh.read(2880)
                if len(block) < 2880:
                    return None
                if not cards and not block.startswith(b"SIMPLE  ="):
                    return None
                cards += block
                # the END card sits at the start of an 80-byte card
                if any(block[k : k + 8] == b"END     " for k in range(0, 2880, 80)):
                    break
            else:
                return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = fits.Header.fromstring(bytes(cards))
            # cards are parsed when read: read the structural ones now, so that a damaged
            # one sends the file to the full reader (and its precise error)
            naxis = header.get("NAXIS", 0)
            for key in ("SIMPLE", "BITPIX", "BZERO", "BSCALE", "BLANK", "GROUPS"):
                header.get(key)
            for k in range(1, int(naxis) + 1 if isinstance(naxis, int) and naxis < 1000 else 1):
                header.get(f"NAXIS{k}")
    except (OSError, ValueError, UnicodeDecodeError, fits.VerifyError):
        return None
    return header, len(cards)


def _parse_layout(path: str, size: int) -> FitsLayout:
    from astropy.io import fits

    gz = path.lower().endswith(".gz")
    quick = None if gz else _primary_header(path)
    naxis = quick[0].get("NAXIS") if quick is not None else None
    if isinstance(naxis, int) and naxis > 0 and not quick[0].get("GROUPS"):
        header, offset = quick
        extra, i = None, 0
    else:  # image in an extension, compressed, gzipped, odd or corrupt: astropy decides
        header, extra, i, offset = _layout_by_astropy(path, fits, gz)
    return _layout_from(path, size, header, extra, i, offset)


def _layout_by_astropy(path: str, fits: Any, gz: bool) -> tuple[Any, Any, int, int | None]:
    """Header, primary keywords, HDU number and data offset of the first image HDU."""
    try:
        with warnings.catch_warnings(), contextlib.ExitStack() as stack:
            warnings.simplefilter("ignore")  # truncation is checked below, by size
            # our own handle, closed even when astropy fails half-way through a corrupt file
            # (it can leave its own handle open: a ResourceWarning later)
            source = path if gz else stack.enter_context(open(path, "rb"))  # noqa: SIM115
            with fits.open(
                source,
                mode="readonly",
                memmap=False,
                do_not_scale_image_data=True,
                lazy_load_hdus=True,
            ) as hdul:
                found = None
                for i, hdu in enumerate(hdul):
                    if not isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)):
                        continue
                    if hdu.header.get("NAXIS", 0) > 0:
                        found = (i, hdu)
                        break
                if found is None:
                    raise file_error(path, "the file holds no image data")
                i, hdu = found
                header = hdu.header.copy()
                extra = hdul[0].header.copy() if i > 0 else None
                compressed = isinstance(hdu, fits.CompImageHDU)
                offset = None if (gz or compressed) else hdul.fileinfo(i)["datLoc"]
    except PxIOError:
        raise
    except (OSError, ValueError, EOFError, KeyError, IndexError, TypeError) as exc:
        if "No SIMPLE card" in str(exc):  # astropy's advice to force it open would not help
            raise file_error(
                path, "not a FITS file: it does not begin with a FITS header (SIMPLE = T)"
            ) from exc
        raise file_error(path, f"not a FITS file, or corrupt ({exc})") from exc
    return header, extra, i, offset


def _layout_from(
    path: str, size: int, header: Any, extra: Any, i: int, offset: int | None
) -> FitsLayout:
    try:
        naxis = int(header.get("NAXIS", 0))
    except (TypeError, ValueError) as exc:
        raise file_error(path, f"corrupt header: NAXIS is not a number ({exc})") from exc
    try:
        axes = [int(header[f"NAXIS{k}"]) for k in range(1, naxis + 1)]
    except (KeyError, ValueError) as exc:
        raise file_error(path, f"corrupt header: NAXISn missing or not a number ({exc})") from exc
    while len(axes) > 3 and axes[-1] == 1:
        axes.pop()
    if len(axes) < 2 or len(axes) > 3:
        raise file_error(
            path, f"{len(axes)}-D data (NAXIS = {naxis}): an image is 2-D, or 3-D colour"
        )
    if len(axes) == 3 and axes[2] not in (1, 3):
        raise file_error(
            path,
            f"NAXIS3 = {axes[2]}: pxlang reads mono (NAXIS3 = 1) or RGB (NAXIS3 = 3) images",
            "a data cube must be split into separate images first",
        )
    if min(axes) < 1:
        raise file_error(path, f"image has an empty axis ({'x'.join(map(str, axes))})")
    bitpix = int(header.get("BITPIX", 0))
    if bitpix not in _BITPIX:
        raise file_error(path, f"corrupt header: BITPIX = {bitpix}")
    dtype = np.dtype(_BITPIX[bitpix])
    file_shape = tuple(reversed(axes))
    if offset is not None:
        need = offset + dtype.itemsize * int(np.prod(axes))
        if need > size:
            raise file_error(
                path,
                f"the file is truncated: its header promises {need} bytes, it has {size}",
                "the file was probably not copied or written completely",
            )
    blank = header.get("BLANK") if bitpix > 0 else None
    try:
        bzero, bscale = float(header.get("BZERO", 0.0)), float(header.get("BSCALE", 1.0))
    except (TypeError, ValueError) as exc:
        raise file_error(path, f"corrupt header: BZERO/BSCALE is not a number ({exc})") from exc
    return FitsLayout(header, extra, i, offset, dtype, file_shape, bzero, bscale, blank)


_LAYOUTS: OrderedDict[str, tuple[tuple[int, ...], bytes, FitsLayout]] = OrderedDict()
_LAYOUTS_LOCK = threading.Lock()
_LAYOUT_CACHE = 256  # files whose layout is remembered
_SIGNATURE_MAX = 1 << 20  # header bytes compared on each use


def layout(path: str) -> FitsLayout:
    """The layout of a FITS file, parsed once and reused while the file is unchanged.

    Streaming reads ask for it once per band, so parsing the header each time would cost more
    than the read. A file rewritten in place within one timestamp tick keeps its size, inode
    and mtime, so a remembered layout is used only if the header bytes are still the same.
    """
    size = check_readable(path)
    key = os.path.abspath(path)
    st = os.stat(path)
    stamp = (st.st_mtime_ns, st.st_ctime_ns, size, st.st_ino)
    with _LAYOUTS_LOCK:
        hit = _LAYOUTS.get(key)
    if hit is not None and hit[0] == stamp and hit[2].offset is not None:
        cached = hit[2]
        with open(path, "rb") as fh:
            if fh.read(min(cached.offset, _SIGNATURE_MAX)) == hit[1]:
                return cached
    parsed = _parse_layout(path, size)
    if parsed.offset is not None:  # gz and tile-compressed files are read whole anyway
        with open(path, "rb") as fh:
            signature = fh.read(min(parsed.offset, _SIGNATURE_MAX))
        with _LAYOUTS_LOCK:
            _LAYOUTS[key] = (stamp, signature, parsed)
            _LAYOUTS.move_to_end(key)
            while len(_LAYOUTS) > _LAYOUT_CACHE:
                _LAYOUTS.popitem(last=False)
    return parsed


def _raw(path: str, lay: FitsLayout, rows: slice | None = None) -> np.ndarray:
    """Stored samples (numpy order as in the file), a band of rows when ``rows`` is given."""
    if lay.offset is not None:
        mm = np.memmap(path, dtype=lay.dtype, mode="r", offset=lay.offset, shape=lay.file_shape)
        part = mm if rows is None else mm[..., rows, :]
        return part
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with _open(path) as hdul:
                data = np.array(hdul[lay.index].data)
    except (OSError, ValueError, EOFError) as exc:
        raise file_error(path, f"corrupt or truncated data ({exc})") from exc
    if data.shape != lay.file_shape:
        data = data.reshape(lay.file_shape)
    return data if rows is None else data[..., rows, :]


def pixels(path: str, lay: FitsLayout, rows: slice | None = None) -> np.ndarray:
    """Float32 pixels (a band of ``rows`` when given), normalised as ``codec.normalise``."""
    raw = _raw(path, lay, rows)
    if lay.offset is None and raw.dtype.kind == "f" and lay.dtype.kind in "ui":
        # astropy scaled tile-compressed integers already; only normalise the range
        top = float(np.iinfo(lay.dtype).max) * lay.bscale + lay.bzero
        out = (raw / top).astype(np.float32)
    else:
        out = normalise(raw, lay.bzero, lay.bscale, lay.blank)
    del raw  # drop the memory map now, not when the caller's frame ends
    return out[0] if out.ndim == 3 and out.shape[0] == 1 else out


def read(path: str) -> tuple[np.ndarray, Any]:
    """Pixels and the header describing them (primary keywords added for an extension)."""
    found = layout(path)
    data = pixels(path, found)
    header = described(found.header, data.shape)
    if found.extra is not None:
        for card in clean_header(found.extra).cards:
            if card.keyword not in header and card.keyword not in ("HISTORY", "COMMENT"):
                header.append(card, end=True)
    return data, header


def write(fh: BinaryIO, data: np.ndarray, header: Any, bits: int, path: str) -> None:
    """Write a FITS file of ``bits`` to ``fh`` (gzip-compressed when ``path`` ends in .gz)."""
    from astropy.io.fits import Header
    from astropy.io.fits.verify import VerifyWarning

    # samples stay native here; _write_samples converts to big-endian one band at a time
    if bits == 32:
        stored, cards = data, [("BITPIX", -32)]
    elif bits == 16:
        u16 = quantise(data, 16)
        stored = (u16 ^ np.uint16(0x8000)).view(np.int16)  # minus 32768, two's complement
        cards = [("BITPIX", 16)]
    else:
        stored, cards = quantise(data, 8), [("BITPIX", 8)]
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
    text = header_ascii(text)
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
