"""Local normalization (after PixInsight's LocalNormalization): match each frame's background
and signal scale to a reference, frame by frame, so that integration sees no gradients or
level differences.

Model, for a registered frame ``f`` and reference ``r``::

    f' = a · f + O(x, y)

``a`` is the signal scale (transparency, exposure), from relative photometry of the same
stars in both images (median flux ratio, local-annulus background); with too few stars it
falls back to the ratio of robust dispersions above the background. ``O`` is the smooth
background model, at the normalization ``scale`` (pixels), of the difference image
``r − a·f``: stars and nebulae cancel in it, leaving the gradients and level differences,
which a sigma-clipped mesh of ``scale``-sized cells, median-filtered and interpolated by
bicubic splines (SEP's background), models without following the noise. PixInsight also
lets the scale vary across the field; here the scale is global and the offset is local —
enough to remove gradients and transparency changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# The background model's scale in pixels, unless asked: PixInsight's LocalNormalization went
# from 128 to 1024 px; a finer model follows noise (at 128 a 1024² stack had 0.5–9 % more
# noise at 4–16 px scales than at 512 in scripts/bench_end2end.py's night)
DEFAULT_SCALE = 512


@dataclass
class NormalizationModel:
    """``apply(f) = scale · f + offset(x, y)``.

    The offset is smooth by construction, so it is kept on a grid every ``step`` pixels
    (``grid``, covering the (H, W) frame ``shape``) and interpolated bilinearly on use: a
    frame's model stays small (256 KB for 2048² at scale 128, less at the default 512)
    however many frames there are.
    """

    scale: float
    grid: np.ndarray
    step: int
    shape: tuple[int, int]
    stars_used: int = 0

    @property
    def offset(self) -> np.ndarray:
        """The full (H, W) offset map."""
        return self.offset_rows(0, self.shape[0])

    def offset_at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Offset at arbitrary (x, y) positions of the frame (clamped at the borders)."""
        from scipy.ndimage import map_coordinates

        coords = [np.asarray(y, np.float64) / self.step, np.asarray(x, np.float64) / self.step]
        return map_coordinates(self.grid, coords, order=1, mode="nearest").astype(np.float32)

    def _grid_columns(self, g0: int, g1: int) -> np.ndarray:
        """Grid rows ``g0:g1`` interpolated along x to every column, float32: a band needs a
        few grid rows (integration asks for every band of every frame; keeping the whole
        (ny, W) array per frame instead cost ~2 MB a 2048² frame for the run's length)."""
        xs = self.__dict__.get("_xs")
        if xs is None:  # the column indices and weights: W values, kept
            gx = np.arange(self.shape[1], dtype=np.float64) / self.step
            nx = self.grid.shape[1]
            x0 = np.clip(np.floor(gx).astype(int), 0, nx - 1)
            x1 = np.clip(x0 + 1, 0, nx - 1)
            fx = np.clip(gx - x0, 0.0, 1.0)[None, :]
            xs = self.__dict__["_xs"] = (x0, x1, fx)
        x0, x1, fx = xs
        g = np.asarray(self.grid[g0:g1], np.float64)
        return (g[:, x0] * (1 - fx) + g[:, x1] * fx).astype(np.float32)

    def offset_rows(self, r0: int, r1: int) -> np.ndarray:
        """Offset over rows ``r0:r1`` (all columns): separable bilinear interpolation."""
        ny = self.grid.shape[0]
        gy = np.arange(r0, r1, dtype=np.float64) / self.step
        y0 = np.clip(np.floor(gy).astype(int), 0, ny - 1)
        y1 = np.clip(y0 + 1, 0, ny - 1)
        fy = np.clip(gy - y0, 0.0, 1.0).astype(np.float32)[:, None]
        g0 = int(y0.min()) if y0.size else 0
        cols = self._grid_columns(g0, int(y1.max()) + 1 if y1.size else g0)
        y0 -= g0
        y1 -= g0
        out = cols[y1] - cols[y0]
        out *= fy
        out += cols[y0]
        return out

    def apply(self, data: np.ndarray, r0: int = 0, r1: int | None = None) -> np.ndarray:
        """Normalize ``data``, or the row band ``r0:r1`` of the frame when ``data`` is a band."""
        arr = np.asarray(data, np.float32)
        r1 = r0 + arr.shape[-2] if r1 is None else r1
        out = self.offset_rows(r0, r1)
        if out.shape != arr.shape:
            return (self.scale * arr + out).astype(np.float32)
        out += np.float32(self.scale) * arr
        return out

    def __call__(self, data: np.ndarray, r0: int = 0, r1: int | None = None) -> np.ndarray:
        return self.apply(data, r0, r1)

    def apply_into(self, band: np.ndarray, r0: int) -> None:
        """``apply`` in place, for a float32 band of rows ``r0``…: the same values (the
        product and the offset added in the other order), without the two temporary bands
        (integration normalizes every band of every frame)."""
        band *= np.float32(self.scale)
        band += self.offset_rows(r0, r0 + band.shape[-2])


class ColourNormalization:
    """Per-channel models for (3, H, W) frames, with the same ``apply`` signature."""

    def __init__(self, models: list[NormalizationModel]):
        self.models = models

    def apply(self, data: np.ndarray, r0: int = 0, r1: int | None = None) -> np.ndarray:
        arr = np.asarray(data, np.float32)
        return np.stack([m.apply(c, r0, r1) for m, c in zip(self.models, arr)])

    def apply_into(self, band: np.ndarray, r0: int) -> None:
        for m, c in zip(self.models, band):
            m.apply_into(c, r0)

    def __call__(self, data: np.ndarray, r0: int = 0, r1: int | None = None) -> np.ndarray:
        return self.apply(data, r0, r1)


def model_to_arrays(model: NormalizationModel | ColourNormalization) -> dict[str, np.ndarray]:
    """A model as plain arrays (``np.savez``-able, no pickling); see ``model_from_arrays``."""
    models = model.models if isinstance(model, ColourNormalization) else [model]
    out: dict[str, np.ndarray] = {"channels": np.array(len(models) if len(models) > 1 else 0)}
    for k, m in enumerate(models):
        out[f"grid{k}"] = m.grid
        out[f"numbers{k}"] = np.array(
            [m.scale, m.step, m.shape[0], m.shape[1], m.stars_used], np.float64
        )
    return out


def model_from_arrays(arrays: Any) -> NormalizationModel | ColourNormalization:
    """The model ``model_to_arrays`` gave (any mapping of name -> array)."""
    channels = int(arrays["channels"])
    models = []
    for k in range(max(channels, 1)):
        scale, step, h, w, used = np.asarray(arrays[f"numbers{k}"]).tolist()
        grid = np.asarray(arrays[f"grid{k}"], np.float32)
        models.append(
            NormalizationModel(float(scale), grid, int(step), (int(h), int(w)), int(used))
        )
    return ColourNormalization(models) if channels else models[0]


@dataclass
class NormalizationReference:
    """What a reference contributes to every frame's model, computed once per reference:
    its background-subtracted pixels and RMS at the normalization ``scale``, and the stars
    (SEP objects with their aperture radii) for the relative photometry."""

    data: np.ndarray
    sub: np.ndarray
    rms: float
    scale: int
    objs: np.ndarray | None
    radii: np.ndarray | None
    # the stars' aperture fluxes in the reference, and whether every reference pixel is
    # finite: measured once here, not again for every frame
    flux: np.ndarray | None = None
    all_finite: bool = False


def prepare_reference(reference: np.ndarray, scale: int = DEFAULT_SCALE) -> NormalizationReference:
    """Background and stars of a mono reference, for ``local_normalization`` of many frames
    (the reference's stars are then detected once, not once per frame)."""
    ref = np.asarray(reference, np.float32)
    if ref.ndim != 2:
        raise ValueError(f"local normalization works on mono (H, W) images; got {ref.shape}")
    scale = _check_scale(scale)
    b_ref, rms_ref = _background(ref, scale)
    ref_sub = np.subtract(ref, b_ref, dtype=np.float32)  # one new plane, not three
    finite = np.isfinite(ref)
    if not finite.all():
        ref_sub[~finite] = 0.0
    del finite, b_ref  # not held through the star detection below
    objs, radii = _reference_stars(ref_sub)
    flux = None if objs is None else _aperture_flux(ref_sub, objs, radii)
    return NormalizationReference(
        ref, ref_sub, rms_ref, scale, objs, radii, flux, bool(np.isfinite(ref).all())
    )


def _check_scale(scale: int) -> int:
    scale = int(scale)
    if scale < 16:
        raise ValueError(f"normalization scale must be at least 16 pixels; got {scale}")
    return scale


def _background(data: np.ndarray, scale: int) -> tuple[np.ndarray, float]:
    from .stars import background

    finite = np.isfinite(data)
    if finite.all():  # the usual case: no masked copy
        back, _, rms = background(data, mesh=scale)
        return back, rms
    arr = np.where(finite, data, 0.0).astype(np.float32)
    back, _, rms = background(arr, mesh=scale, mask=~finite)
    return back, rms


def _reference_stars(ref_sub: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Stars of the background-subtracted reference, clear of the borders, with their
    aperture radii; (None, None) when there are fewer than 5."""
    from .stars import detect

    objs, _, _, _ = detect(ref_sub, threshold=10.0, max_stars=400)
    if objs.size < 5:
        return None, None
    h, w = ref_sub.shape
    r = np.clip(3.0 * np.sqrt(objs["a"] * objs["b"]) * 1.5, 3.0, 15.0)
    m = 2.5 * r
    inside = (objs["x"] > m) & (objs["x"] < w - 1 - m) & (objs["y"] > m) & (objs["y"] < h - 1 - m)
    if inside.sum() < 5:
        return None, None
    return objs[inside], r[inside]


def _aperture_flux(sub: np.ndarray, objs: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Aperture sums at the stars, less a local annulus (it removes what the coarse
    background model leaves around each star)."""
    import sep

    ann = (1.5 * r, 2.5 * r)
    flux, _, _ = sep.sum_circle(np.ascontiguousarray(sub), objs["x"], objs["y"], r, bkgann=ann)
    return flux


def _star_scale(ref: NormalizationReference, tgt_sub: np.ndarray) -> tuple[float, int]:
    """Median flux ratio reference/target of stars found in the reference."""
    objs, r = ref.objs, ref.radii
    if objs is None:
        return float("nan"), 0
    fr = ref.flux if ref.flux is not None else _aperture_flux(ref.sub, objs, r)
    ft = _aperture_flux(tgt_sub, objs, r)
    ok = (fr > 20 * ref.rms * r) & (ft > 0) & np.isfinite(ft)
    if ok.sum() < 5:
        return float("nan"), int(ok.sum())
    return float(np.median(fr[ok] / ft[ok])), int(ok.sum())


def local_normalization(
    reference: np.ndarray | NormalizationReference, target: np.ndarray, scale: int = DEFAULT_SCALE
) -> NormalizationModel:
    """Compute the model that normalizes ``target`` to ``reference`` (both registered, mono,
    same shape). ``reference`` may be ``prepare_reference(reference, scale)``, to normalize
    many frames against one reference without finding its stars each time."""
    tgt = np.asarray(target, np.float32)
    scale = _check_scale(scale)
    if isinstance(reference, NormalizationReference) and reference.scale != scale:
        reference = reference.data
    ref = reference.data if isinstance(reference, NormalizationReference) else reference
    ref = np.asarray(ref, np.float32)
    if ref.ndim != 2 or tgt.ndim != 2:
        raise ValueError(
            f"local normalization works on mono (H, W) images; got {ref.shape} and {tgt.shape}"
        )
    if ref.shape != tgt.shape:
        raise ValueError(
            f"reference and frame differ in size: {ref.shape[1]}x{ref.shape[0]} vs "
            f"{tgt.shape[1]}x{tgt.shape[0]} (register the frames first)"
        )
    prepared = (
        reference
        if isinstance(reference, NormalizationReference)
        else prepare_reference(ref, scale)
    )
    ref_sub = prepared.sub
    tgt_finite = np.isfinite(tgt)
    tgt_whole = bool(tgt_finite.all())
    whole = tgt_whole and prepared.all_finite
    # The star fluxes subtract a local annulus, which takes out a background smooth at the
    # normalization scale (flat or sloped across the annulus) by itself: the target's
    # background model is only needed by the fallback below (it was a quarter of the time).
    # Pixels outside a registered frame's footprint get the frame's median level, so that
    # an annulus reaching them sees sky.
    if tgt_whole:
        tgt_flux = tgt
    else:
        sample = tgt[::4, ::4][tgt_finite[::4, ::4]]
        if sample.size == 0:
            sample = tgt[tgt_finite]
        level = np.float32(np.median(sample)) if sample.size else np.float32(0.0)
        tgt_flux = np.where(tgt_finite, tgt, level)
    a, used = _star_scale(prepared, tgt_flux)
    if not np.isfinite(a) or a <= 0:
        # no usable stars: ratio of the dispersions of the signal above the background
        b_tgt, _ = _background(tgt, scale)
        tgt_sub = np.where(tgt_finite, tgt - b_tgt, 0.0).astype(np.float32)
        # (scipy.stats' median_abs_deviation would import scipy.stats: ~0.75 s)
        from .statistics import mdev

        sr = mdev(ref_sub[np.isfinite(ref)])
        st = mdev(tgt_sub[tgt_finite])
        a = float(sr / st) if st > 0 else 1.0
    from .stars import background

    if whole:
        diff = ref - np.float32(a) * tgt
        offset, _, _ = background(diff, mesh=scale)
    else:
        both = np.isfinite(ref) & tgt_finite
        with np.errstate(invalid="ignore"):  # inf - inf where both are not finite: masked
            diff = np.where(both, ref - np.float32(a) * tgt, 0.0).astype(np.float32)
        offset, _, _ = background(diff, mesh=scale, mask=None if both.all() else ~both)
    step = max(1, scale // 16)
    h, w = offset.shape
    grid = offset[::step, ::step]
    # make sure the last row/column is covered (grid spans the whole frame)
    if (h - 1) % step:
        grid = np.vstack([grid, offset[-1:, ::step]])
    if (w - 1) % step:
        last_col = offset[::step, -1:]
        if (h - 1) % step:
            last_col = np.vstack([last_col, offset[-1:, -1:]])
        grid = np.hstack([grid, last_col])
    return NormalizationModel(float(a), grid.astype(np.float32), step, (h, w), used)


def normalize(
    reference: np.ndarray, target: np.ndarray, scale: int = DEFAULT_SCALE
) -> tuple[np.ndarray, NormalizationModel]:
    """Normalize ``target`` to ``reference``; mono or colour (3, H, W, channel by channel).

    Returns the normalized float32 image and the model (``ColourNormalization`` for colour).
    """
    ref = np.asarray(reference, np.float32)
    tgt = np.asarray(target, np.float32)
    if ref.shape != tgt.shape:
        raise ValueError(f"reference {ref.shape} and frame {tgt.shape} differ in shape")
    if tgt.ndim == 3:
        col = ColourNormalization([local_normalization(r, t, scale) for r, t in zip(ref, tgt)])
        return col.apply(tgt), col
    model = local_normalization(ref, tgt, scale)
    return model.apply(tgt), model
