"""Cosmetic correction (PixInsight's CosmeticCorrection): find hot and cold pixels, replace
them by the median of their same-colour neighbours.

Detection works on a reference image where defects stand out and the sky does not move: the
master dark when there is one, else the median of (up to 15) frames, in which dithered
stars blur while fixed defects stay. A pixel is hot when it is

- above the median of its 8 same-colour neighbours by more than ``sigma`` times the robust
  spread (1.4826 MAD) of that difference over the image,
- above every one of those neighbours, and
- at least ``ratio`` times further above their median than the brightest neighbour is:
  a star's peak has bright neighbours (its profile spans pixels), a hot pixel has none.

Cold pixels mirror this. Same-colour neighbours are 1 pixel away for mono data and 2 for
CFA data (the Bayer cell repeats every 2 pixels).

The default ``sigma`` is 5: in Gaussian noise a 5-sigma cut flags ~3e-7 of the pixels (a
handful in a 24 MP frame), while a 3-sigma cut would "fix" hundreds of plain noise pixels.
Real hot pixels stand tens of sigmas out.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from .normalize_global import MAD_TO_SIGMA

_OFFSETS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


def neighbours(image: np.ndarray, step: int = 1) -> np.ndarray:
    """The 8 same-colour neighbours of every pixel, (8, H, W), mirrored at the edges."""
    x = np.asarray(image, dtype=np.float32)
    # reflect keeps parity for step 2: a CFA site mirrors onto a site of the same colour
    p = np.pad(x, step, mode="reflect")
    h, w = x.shape
    return np.stack(
        [p[step + dy * step : step + dy * step + h, step + dx * step : step + dx * step + w]
         for dy, dx in _OFFSETS]
    )  # fmt: skip


def detect_defects(
    image: np.ndarray,
    sigma: float = 5.0,
    hot: bool = True,
    cold: bool = False,
    cfa: bool = False,
    ratio: float = 3.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (hot, cold) of isolated defective pixels (module docstring)."""
    x = np.asarray(image, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"defects are found in a 2-D image; got shape {x.shape}")
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0; got {sigma}")
    step = 2 if cfa else 1
    # One plane (the deviation from the neighbours' median) and one copy for its spread;
    # the masks then recompute the neighbour statistics pixel by pixel (a 2048² master dark
    # took +124 MB with the three statistics planes and their temporaries, now ~+40 MB).
    # Images too small to mirror take the plain way, with numpy's median over the stack.
    kernel = min(x.shape) > 2 * step
    if kernel:
        from .pixel_kernels import defect_masks, neighbour_deviation

        d = neighbour_deviation(x, step)
    else:
        nb = neighbours(x, step)
        med, top, bottom = np.median(nb, axis=0), nb.max(axis=0), nb.min(axis=0)
        d = x - med
    finite = np.isfinite(d)
    v = d[finite]
    spread = float("nan")
    if v.size:
        np.subtract(v, np.median(v, overwrite_input=True), out=v)
        spread = float(np.median(np.abs(v, out=v), overwrite_input=True)) * MAD_TO_SIGMA
    del v
    if not np.isfinite(spread) or spread <= 0:
        spread = float(np.std(d[finite])) or 1e-12
    if kernel:
        del d
        hot_mask, cold_mask = defect_masks(x, step, sigma * spread, ratio, hot, cold)
    else:
        hot_mask = (d > sigma * spread) & (x > top) & (d > ratio * (top - med))
        cold_mask = (-d > sigma * spread) & (x < bottom) & (-d > ratio * (med - bottom))
        hot_mask &= bool(hot)
        cold_mask &= bool(cold)
    return hot_mask & finite, cold_mask & finite


def reference_image(frames: list[np.ndarray]) -> np.ndarray:
    """Median of the frames (stars blur out when dithered, defects stay)."""
    stack = np.stack([np.asarray(f, dtype=np.float32) for f in frames])
    return np.median(stack, axis=0) if len(stack) > 1 else stack[0]


def _reflect(i: np.ndarray, n: int) -> np.ndarray:
    """Indices mirrored at the edges as ``np.pad(mode="reflect")`` (offsets up to n - 1)."""
    i = np.abs(i)
    return np.where(i > n - 1, 2 * (n - 1) - i, i)


def _neighbours_at(
    x: np.ndarray, mask: np.ndarray, ys: np.ndarray, xs: np.ndarray, step: int
) -> tuple[np.ndarray, np.ndarray]:
    """The 8 same-colour neighbours of the pixels (ys, xs), (8, K), and whether each is
    itself masked: the values ``neighbours()`` gives there, without building 8 full-frame
    copies (a frame has a few hundred defects; the copies cost 25 ms per 1024² frame)."""
    h, w = x.shape
    dy = np.array([o[0] for o in _OFFSETS])[:, None] * step
    dx = np.array([o[1] for o in _OFFSETS])[:, None] * step
    yy = _reflect(ys[None, :] + dy, h)
    xx = _reflect(xs[None, :] + dx, w)
    return x[yy, xx], mask[yy, xx]


def fix_defects(image: np.ndarray, mask: np.ndarray, cfa: bool = False) -> np.ndarray:
    """A copy of ``image`` with masked pixels replaced by the median of their same-colour
    neighbours (neighbours that are themselves masked are left out when possible)."""
    x = np.asarray(image, dtype=np.float32)
    if x.ndim == 3:
        return np.stack([fix_defects(c, mask, cfa) for c in x])
    if mask.shape != x.shape:
        raise ValueError(f"defect mask {mask.shape} does not match the image {x.shape}")
    out = x.copy()
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return out
    step = 2 if cfa else 1
    nb, bad = _neighbours_at(x, mask, ys, xs, step)
    vals = np.where(bad, np.nan, nb)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            rep = np.nanmedian(vals, axis=0)
    fallback = np.median(nb, axis=0)
    out[ys, xs] = np.where(np.isfinite(rep), rep, fallback)
    return out


def _load_masks(path: str | None, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray] | None:
    if path is None or not os.path.exists(path):
        return None
    try:
        with np.load(path) as z:
            n = int(np.prod(shape))
            hot = np.unpackbits(z["hot"], count=n).astype(bool).reshape(shape)
            cold = np.unpackbits(z["cold"], count=n).astype(bool).reshape(shape)
        return hot, cold
    except (OSError, ValueError, KeyError):
        return None  # unreadable (interrupted write, other version): found again


def _save_masks(path: str | None, hot: np.ndarray, cold: np.ndarray) -> None:
    if path is not None:
        from pxlang.image import io

        io.save_arrays(path, {"hot": np.packbits(hot), "cold": np.packbits(cold)})


def cosmetic(
    frames,
    hot: str | bool = "auto",
    cold: bool = False,
    sigma: float = 5.0,
    master_dark=None,
    cfa: str | bool = "auto",
    ratio: float = 3.0,
    max_reference_frames: int = 15,
    cache_dir: str | None = None,
):
    """Cosmetic correction of a FrameSet; returns a derived (lazy) FrameSet.

    ``hot``: "auto" (detect) or False. ``cold``: detect cold pixels too. ``master_dark``: an
    Image to detect defects in (else the median of up to ``max_reference_frames`` frames).
    ``cfa``: "auto" (from BAYERPAT), True or False. The number of pixels fixed is in each
    frame's header (COSMHOT, COSMCOLD) and ``meta`` ("cosmetic_hot", "cosmetic_cold").
    """

    from pxlang.image.frameset import header_value

    from .calibration import _identity

    n = len(frames)
    if n == 0:
        raise ValueError("no frames to correct")
    if isinstance(hot, str):
        if hot.lower() not in ("auto", "none", "off"):
            raise ValueError(f"hot must be 'auto' or false; got {hot!r}")
        do_hot = hot.lower() == "auto"
    else:
        do_hot = bool(hot)
    if not do_hot and not cold:
        raise ValueError("nothing to correct: hot is off and cold is false")
    shape = frames.shape
    if isinstance(cfa, str):
        if cfa.lower() != "auto":
            raise ValueError(f"cfa must be 'auto', true or false; got {cfa!r}")
        is_cfa = header_value(frames.header(0), "BAYERPAT") is not None
    else:
        is_cfa = bool(cfa)
    if master_dark is not None:
        if tuple(master_dark.shape) != tuple(shape):
            raise ValueError(
                f"master dark {master_dark.path or ''} is {master_dark.shape[-1]}x"
                f"{master_dark.shape[-2]} but the frames are {shape[-1]}x{shape[-2]}"
            )
        ref = master_dark.data
        source = "master dark"
    else:
        picks = np.unique(np.linspace(0, n - 1, min(n, max_reference_frames)).astype(int))
        ref = reference_image([frames.read(int(i)).data for i in picks])
        source = f"median of {len(picks)} frames"
    refs = ref if ref.ndim == 3 else ref[None]
    mask_file = None
    if cache_dir is not None and master_dark is not None:
        # the defect map of a master dark is found once: a re-run loads it
        mask_key = hashlib.sha256(
            f"{_identity(master_dark)}|{sigma}|{do_hot}|{cold}|{is_cfa}|{ratio}|defects/1".encode()
        ).hexdigest()[:20]
        mask_file = os.path.join(cache_dir, f"defects_{mask_key}.npz")
    found = _load_masks(mask_file, refs.shape[-2:])
    if found is not None:
        hot_mask, cold_mask = found
    else:
        masks = [detect_defects(c, sigma, do_hot, cold, is_cfa, ratio) for c in refs]
        hot_mask = np.any([m[0] for m in masks], axis=0)
        cold_mask = np.any([m[1] for m in masks], axis=0)
        _save_masks(mask_file, hot_mask, cold_mask)
    bad = hot_mask | cold_mask
    n_hot, n_cold = int(hot_mask.sum()), int(cold_mask.sum())

    def header_op(header, i):
        from astropy.io.fits import Header

        hdr = Header() if header is None else header.copy()
        hdr["COSMHOT"] = (n_hot, "hot pixels fixed")
        hdr["COSMCOLD"] = (n_cold, "cold pixels fixed")
        hdr.add_history(
            f"CosmeticCorrection: {n_hot} hot, {n_cold} cold pixels from the {source}, "
            f"sigma={sigma:g}" + (" (CFA)" if is_cfa else "")
        )
        return hdr

    def op(img, i):
        from pxlang.image.store import Image

        data = fix_defects(img.data, bad, is_cfa)
        return Image(data, header_op(img.header, i), name=img.name)

    key = hashlib.sha256(
        "|".join(
            [
                hashlib.sha256(np.packbits(bad).tobytes()).hexdigest(),
                str(is_cfa),
                "cosmetic/1",
                _identity(master_dark) if master_dark is not None else "-",
            ]
        ).encode()
    ).hexdigest()
    out = frames.derive(op, key, "cosmetic", cache_dir=cache_dir, header_op=header_op)
    for f in out.frames:
        f.meta["cosmetic_hot"] = n_hot
        f.meta["cosmetic_cold"] = n_cold
    out.defects = bad  # type: ignore[attr-defined]
    return out
