"""What the image file formats share: file errors, samples to and from [0, 1], header cards.

``io.py`` dispatches on the format; ``fits.py``, ``tiff.py`` and the XISF and preview code in
``io.py`` build on these pieces.
"""

from __future__ import annotations

import os
import re
import warnings
from typing import Any

import numpy as np

from pxlang.lang.errors import PxIOError

STRUCTURAL = frozenset(
    "SIMPLE BITPIX NAXIS EXTEND BZERO BSCALE BLANK XTENSION PCOUNT GCOUNT "
    "CHECKSUM DATASUM END ZIMAGE ZBITPIX ZNAXIS ZTILE1 ZTILE2 ZCMPTYPE".split()
)
_NAXIS_N = re.compile(r"^Z?NAXIS\d+$")


# ----------------------------------------------------------------------------------------
# file errors


def file_error(path: str, cause: str, hint: str | None = None, writing: bool = False) -> PxIOError:
    """The ``PxIOError`` "cannot read (write) 'path': cause", with an optional hint."""
    verb = "write" if writing else "read"
    return PxIOError(f"cannot {verb} '{path}': {cause}", hint=hint)


def check_readable(path: str) -> int:
    """The file's size in bytes, after checking that it exists, is a file and is not empty."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise file_error(
            path, "no such file", "check the name and the folder it is relative to"
        ) from None
    except OSError as exc:
        raise file_error(path, exc.strerror or str(exc)) from exc
    if os.path.isdir(path):
        raise file_error(path, "it is a folder, not an image file")
    if st.st_size == 0:
        raise file_error(path, "the file is empty")
    try:  # a file we may not open is not "corrupt": say what it is
        os.close(os.open(path, os.O_RDONLY))
    except PermissionError as exc:
        raise file_error(
            path, "permission denied", "make it readable (chmod +r) or move it out"
        ) from exc
    except OSError:
        pass  # the reader will say what is wrong
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


def quantise(data: np.ndarray, bits: int) -> np.ndarray:
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


def described(header: Any, shape: tuple[int, ...], bitpix: int = -32) -> Any:
    """``header`` without structure, headed by SIMPLE/BITPIX/NAXISn for an array ``shape``."""
    from astropy.io.fits import Header

    out = Header([("SIMPLE", True), ("BITPIX", bitpix), ("NAXIS", len(shape))])
    for i, n in enumerate(reversed(shape), 1):
        out[f"NAXIS{i}"] = n
    with warnings.catch_warnings():
        # a damaged card (a NUL in a blank card) is verified as it is appended: it is kept
        # as read, as clean_header keeps it, and made printable when written (header_ascii)
        warnings.simplefilter("ignore")
        out.extend(clean_header(header).cards)
    return out


def fits_ascii(text: str) -> str:
    """FITS headers hold printable ASCII: escape the rest instead of losing the card."""
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    return "".join(ch if 32 <= ord(ch) < 127 else " " for ch in text)


_NOT_HEADER_TEXT = re.compile(r"[^\x20-\x7e]")


def header_ascii(text: str) -> str:
    """Rendered header text (whole 80-column cards) as printable ASCII, one character for
    one so that cards and 2880-byte blocks keep their size: what a damaged or foreign header
    brought in (bytes 0x80-0xFF read as Latin-1, control characters) becomes '?'. (Values
    for new cards go through ``fits_ascii``, which keeps them readable, not their length.)"""
    return _NOT_HEADER_TEXT.sub("?", text)


def header_from_keywords(keywords: list[tuple[str, Any, str]]) -> Any:
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
                value = fits_ascii(value)
            try:
                card = Card(key, value, fits_ascii(comment or ""))
                card.image  # noqa: B018 - formats the card, raising if FITS cannot hold it
            except (ValueError, TypeError, KeyError):
                continue
            out.append(card, end=True)
    return out
