"""Synthetic nights with ground truth: the data the demo, the tests and the benchmarks share.

``make_night(outdir, ...)`` writes bias, darks, flats and dithered lights as 16-bit FITS
frames with the headers capture programs write, and returns a :class:`Truth` holding what the
frames really contain: the noise-free sky per filter (in the units of a calibrated master),
the star catalogue and PSF, each light's transform and defects, cosmic rays, hot and cold
pixels, the bias pattern, the dark current, the flat fields, gain and read noise.

Modules: ``psf`` (Moffat stars rendered by stamps), ``sky`` (stars, nebulae, background),
``camera`` (bias, dark, defects, flats, readout), ``night`` (the frames and files),
``truth`` (the :class:`Truth` record, saved with :meth:`Truth.to_json`).

Example
-------
>>> from pxlang.synthetic import make_night
>>> truth = make_night("night/", seed=1)              # doctest: +SKIP
>>> truth.sky["Ha"].shape, truth.lights[2].cloudy      # doctest: +SKIP
((256, 384), True)
"""

from .camera import Camera, cfa_index, make_camera
from .night import DEFAULT_IMAGETYP, LAYOUTS, make_night
from .psf import (
    ellipticity_to_eccentricity,
    moffat_alpha_to_fwhm,
    moffat_fwhm_to_alpha,
    moffat_peak,
    render_stars,
)
from .sky import BANDS, Sky, make_sky
from .truth import LightTruth, Truth

__all__ = [
    "BANDS",
    "DEFAULT_IMAGETYP",
    "LAYOUTS",
    "Camera",
    "LightTruth",
    "Sky",
    "Truth",
    "cfa_index",
    "ellipticity_to_eccentricity",
    "make_camera",
    "make_night",
    "make_sky",
    "moffat_alpha_to_fwhm",
    "moffat_fwhm_to_alpha",
    "moffat_peak",
    "render_stars",
]
