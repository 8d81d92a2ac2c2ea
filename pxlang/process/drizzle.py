"""Drizzle integration (STScI ``drizzle`` 3.x) from calibrated frames and their transforms.

Each input pixel is shrunk by ``pixfrac`` and dropped onto an output grid ``scale`` times
finer than the reference, through the registration transform (no interpolation of the
input). The output is the weighted mean of the drops, so it keeps the input's surface
brightness (pixel values comparable to a normal integration); the total flux is the sum of
the output divided by ``scale²``.

Rejected pixels (from a preceding integration) and per-frame weights enter through the
weight map. For one-shot-colour frames (CFA), each frame is drizzled three times, once per
colour, with a weight map selecting that colour's photosites: colour without demosaicing.
"""

from __future__ import annotations

import numpy as np

KERNELS = ("square", "point", "turbo", "gaussian", "lanczos3")


def output_pixmap(ref_xy: np.ndarray, scale: float) -> np.ndarray:
    """Reference coordinates → output grid coordinates (pixel centres stay centred)."""
    return (np.asarray(ref_xy, np.float64) + 0.5) * scale - 0.5


class DrizzleStack:
    """Accumulate frames one at a time; ``result()`` gives the image and its weight map.

    Parameters
    ----------
    ref_shape : (H, W) of the reference (registration) grid.
    scale : output pixels per reference pixel along each axis (2 = twice the resolution).
    pixfrac : linear size of the dropped input pixel, as a fraction of a pixel.
    kernel : one of ``KERNELS``.
    cfa : None for mono frames, else a 2×2 Bayer pattern such as "RGGB" (frames are raw CFA
        mosaics, not debayered); the result is then (3, H', W').
    """

    def __init__(
        self,
        ref_shape: tuple[int, int],
        scale: float = 2.0,
        pixfrac: float = 0.9,
        kernel: str = "square",
        cfa: str | None = None,
    ):
        from drizzle.resample import Drizzle

        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(KERNELS)}; got {kernel!r}")
        if not 0.0 < pixfrac <= 1.0:
            raise ValueError(f"pixfrac must be in (0, 1]; got {pixfrac}")
        if not 0.5 <= scale <= 4.0:
            raise ValueError(f"drizzle scale must be between 0.5 and 4; got {scale}")
        if kernel in ("point", "turbo") and pixfrac != 1.0 and kernel == "point":
            pixfrac = 1.0
        self.ref_shape = (int(ref_shape[0]), int(ref_shape[1]))
        self.scale = float(scale)
        self.pixfrac = float(pixfrac)
        self.kernel = kernel
        self.cfa = cfa.upper() if cfa else None
        self.out_shape = (
            int(round(self.ref_shape[0] * self.scale)),
            int(round(self.ref_shape[1] * self.scale)),
        )
        nchan = 3 if self.cfa else 1
        self._driz = [
            Drizzle(kernel=kernel, fillval=0.0, out_shape=self.out_shape, disable_ctx=True)
            for _ in range(nchan)
        ]
        self.frames = 0

    def add(
        self,
        data: np.ndarray,
        pixmap: np.ndarray,
        weight: float = 1.0,
        mask: np.ndarray | None = None,
    ) -> None:
        """Drop one frame.

        Parameters
        ----------
        data : (H, W) frame (a raw CFA mosaic when the stack is CFA).
        pixmap : (H, W, 2) reference coordinates (x, y) of every frame pixel
            (``Transform.pixmap``).
        weight : the frame's weight.
        mask : (H, W) bool, True where a pixel is rejected (hot, cosmic ray, satellite...).
        """
        from .debayer import cfa_masks

        arr = np.ascontiguousarray(data, dtype=np.float32)
        if arr.ndim != 2:
            raise ValueError(f"drizzle takes mono or raw CFA (H, W) frames; got {arr.shape}")
        pm = np.asarray(pixmap, np.float64)
        if pm.shape != (*arr.shape, 2):
            raise ValueError(f"pixmap must be (H, W, 2) = {(*arr.shape, 2)}; got {pm.shape}")
        pm = np.ascontiguousarray(output_pixmap(pm, self.scale))
        wmap = np.full(arr.shape, np.float32(weight), np.float32)
        bad = ~np.isfinite(arr)
        if mask is not None:
            if mask.shape != arr.shape:
                raise ValueError(f"mask shape {mask.shape} differs from the frame {arr.shape}")
            bad |= mask.astype(bool)
        wmap[bad] = 0.0
        arr = np.where(bad, 0.0, arr).astype(np.float32)
        ratio = 1.0 / self.scale
        if self.cfa is None:
            planes = [wmap]
        else:
            planes = [wmap * m for m in cfa_masks(arr.shape, self.cfa)]
        for drz, w in zip(self._driz, planes):
            drz.add_image(
                arr,
                exptime=1.0,
                pixmap=pm,
                weight_map=np.ascontiguousarray(w, np.float32),
                pixfrac=self.pixfrac,
                in_units="cps",
                pixel_scale_ratio=ratio,
            )
        self.frames += 1

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(image, weight): (H', W') or (3, H', W') float32 each."""
        if self.frames == 0:
            raise ValueError("no frame was drizzled")
        img = [np.asarray(d.out_img, np.float32) for d in self._driz]
        wht = [np.asarray(d.out_wht, np.float32) for d in self._driz]
        if self.cfa is None:
            return img[0], wht[0]
        return np.stack(img), np.stack(wht)


# per-pixel sizes and WCS steps shrink by the drizzle scale; CRPIX moves with the grid
_PIXEL_SIZE_KEYS = ("XPIXSZ", "YPIXSZ", "PIXSIZE1", "PIXSIZE2", "PIXSIZE")
_WCS_STEP_KEYS = ("CDELT1", "CDELT2", "CD1_1", "CD1_2", "CD2_1", "CD2_2")


def scale_header(header, scale: float) -> None:
    """Rewrite in place a header's pixel geometry for an output ``scale`` times finer:
    pixel sizes (XPIXSZ, PIXSIZE1…) and WCS steps divided by ``scale``, CRPIX moved to the
    same sky point (FITS pixel p → (p − 0.5)·scale + 0.5), so plate scale and FWHM in
    arcseconds read from the drizzled master stay true."""
    for key in _PIXEL_SIZE_KEYS + _WCS_STEP_KEYS:
        value = header.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            header[key] = float(value) / scale
    for key in ("CRPIX1", "CRPIX2"):
        value = header.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            header[key] = (float(value) - 0.5) * scale + 0.5
