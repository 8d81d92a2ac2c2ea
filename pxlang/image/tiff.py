"""TIFF files: mono, RGB and grey/RGB with alpha in; 8/16-bit or float out, with the FITS
header kept in ImageDescription (as Siril does). Used through ``io.py``."""

from __future__ import annotations

import warnings
from typing import Any, BinaryIO

import numpy as np

from pxlang._version import __version__

from .codec import (
    check_readable,
    described,
    file_error,
    fits_ascii,
    header_ascii,
    header_from_keywords,
    normalise,
    quantise,
)


def _description_header(text: str) -> Any:
    """A Header from an ImageDescription: the FITS header pxlang (and Siril) put there, when it
    starts with a SIMPLE card; otherwise the text as COMMENT lines."""
    from astropy.io.fits import Header
    from astropy.io.fits.verify import VerifyError

    if text.startswith("SIMPLE  ="):
        # cards were written without their trailing blanks; CONTINUE parsing needs all 80
        padded = "\n".join(fits_ascii(ln).ljust(80) for ln in text.splitlines())
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                header = Header.fromstring(padded, sep="\n")
                cards = [(c.keyword, c.value, c.comment) for c in header.cards]
            return header_from_keywords(cards)  # fresh cards: damaged ones are dropped
        except (ValueError, TypeError, KeyError, VerifyError):
            pass  # not FITS after all: keep it as text
    out = Header()
    for ln in text.splitlines():
        if ln.strip():
            out.add_comment("TIFF: " + fits_ascii(ln)[:60])
    return out


def read_samples(path: str, header_only: bool = False) -> tuple[Any, Any, tuple[int, ...], int]:
    """(samples or None, header, pxlang shape, BITPIX of the stored samples)."""
    import tifffile

    check_readable(path)
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes, shape, dtype = series.axes, series.shape, np.dtype(series.dtype)
            page = tif.pages[0]
            desc = page.description if hasattr(page, "description") else ""
            tags = {t.name: t.value for t in page.tags}
            raw = None if header_only else series.asarray()
    except Exception as exc:  # noqa: BLE001 - tifffile raises anything on damaged bytes
        raise file_error(
            path, f"not a TIFF file, or corrupt ({type(exc).__name__}: {exc})"
        ) from exc
    if raw is not None and raw.size != int(np.prod(shape)):
        raise file_error(
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
        raise file_error(
            path, f"TIFF data of shape {shape} (axes {axes}) is not a mono or RGB image"
        )
    if len(shape) == 3:
        channels = 1 if shape[0] == 2 else 3  # grey+alpha, RGB, RGB+alpha
        shape = shape[1:] if channels == 1 else (3, *shape[1:])
        if raw is not None:
            raw = raw[0] if channels == 1 else raw[:3]
    header = _description_header(desc or "")
    if isinstance(tags.get("DateTime"), str):
        header["DATE"] = fits_ascii(tags["DateTime"])[:68]
    if isinstance(tags.get("Software"), str) and "SWCREATE" not in header:
        header["SWCREATE"] = fits_ascii(tags["Software"])[:68]
    bitpix = -8 * dtype.itemsize if dtype.kind == "f" else 8 * dtype.itemsize
    return raw, header, shape, bitpix


def read(path: str) -> tuple[np.ndarray, Any]:
    """Pixels and the header describing them."""
    raw, header, shape, _ = read_samples(path)
    try:
        data = normalise(raw)
    except ValueError as exc:
        raise file_error(path, str(exc)) from exc
    return data, described(header, shape)


def write(fh: BinaryIO, data: np.ndarray, header: Any, bits: int, compression: str | None) -> None:
    """Write a TIFF of ``bits`` to ``fh``, the header as FITS cards in ImageDescription."""
    import tifffile

    samples = data.astype(np.float32) if bits == 32 else quantise(data, bits)
    colour = samples.ndim == 3
    if colour:
        samples = np.ascontiguousarray(samples.transpose(1, 2, 0))
    from astropy.io.fits import Header
    from astropy.io.fits.verify import VerifyWarning

    described = Header([("SIMPLE", True, "pxlang: the FITS header of this image")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VerifyWarning)
        described.extend(header.cards)
        text = header_ascii(described.tostring(sep="", endcard=False, padding=False))
    lines = [text[i : i + 80].rstrip() for i in range(0, len(text), 80)]  # one card a line
    tifffile.imwrite(
        fh,
        samples,
        photometric="rgb" if colour else "minisblack",
        description="\n".join(lines),
        metadata=None,
        software=f"pxlang {__version__}",
        compression=compression,
    )
