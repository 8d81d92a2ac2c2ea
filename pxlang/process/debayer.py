"""Demosaicing of one-shot-colour (Bayer CFA) frames.

Patterns are named by the colours of the top-left 2×2 cell, row by row: RGGB, BGGR, GRBG,
GBRG. FITS headers give the pattern as BAYERPAT and its origin shift as XBAYROFF/YBAYROFF
(an odd offset swaps columns/rows of the cell).

Methods: ``superpixel`` (each 2×2 cell → one RGB pixel, half size, no interpolation),
``bilinear`` (neighbour averages), ``vng`` (threshold-based variable number of gradients,
Chang et al. 1999: interpolate from the directions whose gradient is small, which keeps
edges and stars free of colour fringes).
"""

from __future__ import annotations

import numpy as np

from .jit import njit, prange

PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
METHODS = ("vng", "bilinear", "superpixel")


def shift_pattern(pattern: str, xoff: int = 0, yoff: int = 0) -> str:
    """The pattern seen from a crop starting at (xoff, yoff) of a sensor with ``pattern``."""
    p = pattern.upper().strip()
    if p not in PATTERNS:
        raise ValueError(
            f"unknown Bayer pattern {pattern!r}; expected one of {', '.join(PATTERNS)}"
        )
    cell = [[p[0], p[1]], [p[2], p[3]]]
    if int(xoff) % 2:
        cell = [[r[1], r[0]] for r in cell]
    if int(yoff) % 2:
        cell = [cell[1], cell[0]]
    return "".join(cell[0] + cell[1])


def pattern_from_header(header) -> str | None:
    """Bayer pattern from BAYERPAT (or COLORTYP) with XBAYROFF/YBAYROFF applied; None if absent."""
    if header is None:
        return None
    pat = header.get("BAYERPAT") or header.get("COLORTYP")
    if not pat or str(pat).strip().upper() not in PATTERNS:
        return None
    return shift_pattern(
        str(pat), int(header.get("XBAYROFF", 0) or 0), int(header.get("YBAYROFF", 0) or 0)
    )


def cfa_masks(shape: tuple[int, int], pattern: str) -> np.ndarray:
    """(3, H, W) float32 masks: 1 where the photosite has that colour (R, G, B)."""
    p = shift_pattern(pattern)
    h, w = int(shape[0]), int(shape[1])
    masks = np.zeros((3, h, w), np.float32)
    idx = {"R": 0, "G": 1, "B": 2}
    for k, colour in enumerate(p):
        dy, dx = divmod(k, 2)
        masks[idx[colour], dy::2, dx::2] = 1.0
    return masks


def _check(cfa: np.ndarray) -> np.ndarray:
    arr = np.asarray(cfa, np.float32)
    if arr.ndim != 2:
        raise ValueError(f"a CFA frame is a 2-D (H, W) mosaic; got shape {arr.shape}")
    if arr.shape[0] < 4 or arr.shape[1] < 4:
        raise ValueError(f"CFA frame too small: {arr.shape}")
    return arr


def superpixel(cfa: np.ndarray, pattern: str) -> np.ndarray:
    """2×2 cell → one RGB pixel (greens averaged); (3, H//2, W//2)."""
    arr = _check(cfa)
    p = shift_pattern(pattern)
    h, w = arr.shape[0] // 2 * 2, arr.shape[1] // 2 * 2
    cells = {
        (0, 0): arr[0:h:2, 0:w:2],
        (0, 1): arr[0:h:2, 1:w:2],
        (1, 0): arr[1:h:2, 0:w:2],
        (1, 1): arr[1:h:2, 1:w:2],
    }
    out = {"R": [], "G": [], "B": []}
    for k, colour in enumerate(p):
        out[colour].append(cells[divmod(k, 2)])
    return np.stack([out["R"][0], (out["G"][0] + out["G"][1]) / 2, out["B"][0]]).astype(np.float32)


def bilinear(cfa: np.ndarray, pattern: str) -> np.ndarray:
    """Bilinear demosaicing (normalised convolution); (3, H, W)."""
    # here, not at the top: the workflow imports this module for its header helpers in
    # every run, mono ones too, and scipy.ndimage costs ~0.4 s to import
    from scipy.ndimage import convolve

    arr = _check(cfa)
    masks = cfa_masks(arr.shape, pattern)
    k = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32)
    out = np.empty((3, *arr.shape), np.float32)
    for c in range(3):
        num = convolve(arr * masks[c], k, mode="mirror")
        den = convolve(masks[c], k, mode="mirror")
        out[c] = num / den
        out[c][masks[c] > 0] = arr[masks[c] > 0]  # measured photosites stay exact
    return out


@njit(
    cache=True,
    parallel=True,
    # frames are debayered in the run's workers, one thread each: the serial library
    # function loses nothing there
    export=["f4[:, :, ::1](f4[:, ::1], i8[:, ::1], f4[:, :, ::1])"],
)
def _vng(arr, colour, bil):
    """VNG: for each pixel, 8 directional gradients over a 5×5 window; average the colour
    differences of the directions whose gradient is below a threshold."""
    h, w = arr.shape
    out = bil.copy()
    dirs_y = (-1, -1, 0, 1, 1, 1, 0, -1)
    dirs_x = (0, 1, 1, 1, 0, -1, -1, -1)
    for y in prange(2, h - 2):
        grad = np.empty(8)
        for x in range(2, w - 2):
            c0 = colour[y, x]
            for d in range(8):
                dy = dirs_y[d]
                dx = dirs_x[d]
                py = dx  # perpendicular direction
                px = -dy
                # same-colour differences along the direction, plus the two parallel lines
                g = abs(arr[y + dy, x + dx] - arr[y - dy, x - dx])
                g += abs(arr[y + 2 * dy, x + 2 * dx] - arr[y, x])
                g += 0.5 * abs(arr[y + dy + py, x + dx + px] - arr[y - dy + py, x - dx + px])
                g += 0.5 * abs(arr[y + dy - py, x + dx - px] - arr[y - dy - py, x - dx - px])
                grad[d] = g
            gmin = grad.min()
            gmax = grad.max()
            thr = 1.5 * gmin + 0.5 * (gmax + gmin)
            tot = np.zeros(3)
            n = 0
            for d in range(8):
                if grad[d] <= thr:
                    yy = y + dirs_y[d]
                    xx = x + dirs_x[d]
                    for c in range(3):
                        tot[c] += bil[c, yy, xx] - bil[c0, yy, xx]
                    n += 1
            if n > 0:
                v = arr[y, x]
                for c in range(3):
                    if c != c0:
                        out[c, y, x] = max(v + tot[c] / n, 0.0)
    return out


def vng(cfa: np.ndarray, pattern: str) -> np.ndarray:
    """Variable-number-of-gradients demosaicing; (3, H, W)."""
    arr = _check(cfa)
    masks = cfa_masks(arr.shape, pattern)
    colour = np.argmax(masks, axis=0).astype(np.int64)
    bil = bilinear(arr, pattern)
    return _vng(arr, colour, bil).astype(np.float32)


def debayer(cfa: np.ndarray, pattern: str, method: str = "vng") -> np.ndarray:
    """Demosaic a raw CFA frame into (3, H, W) (``superpixel``: (3, H/2, W/2))."""
    if method not in METHODS:
        raise ValueError(f"debayer method must be one of {', '.join(METHODS)}; got {method!r}")
    return {"vng": vng, "bilinear": bilinear, "superpixel": superpixel}[method](cfa, pattern)


def read_raw(path: str) -> tuple[np.ndarray, str, dict]:
    """Read a camera raw file (CR2, NEF, ARW, DNG...) through rawpy: the CFA mosaic normalised
    to [0, 1] (black level removed), its Bayer pattern and a few header values."""
    try:
        import rawpy
    except ImportError as exc:
        raise ImportError(
            "reading camera raw files needs rawpy: pip install 'pxlang[raw]'"
        ) from exc
    try:
        with rawpy.imread(path) as raw:
            mosaic = raw.raw_image_visible.astype(np.float32)
            desc = raw.color_desc.decode()
            pat = raw.raw_pattern[:2, :2]
            letters = "".join(desc[i] for i in pat.ravel())
            black = float(np.mean(raw.black_level_per_channel))
            white = float(raw.white_level)
            meta = {"BLACK": black, "WHITE": white}
    except (OSError, rawpy.LibRawError) as exc:
        # LibRaw's own messages ("Input/output error", "Unsupported file format") do not name
        # the file: ours does
        raise ValueError(f"cannot read camera raw file {path}: {exc}") from None
    if set(letters) != {"R", "G", "B"}:
        raise ValueError(f"{path}: not a Bayer RGB sensor (colour pattern {letters!r})")
    data = np.clip((mosaic - black) / max(white - black, 1.0), 0.0, 1.0).astype(np.float32)
    return data, letters, meta
