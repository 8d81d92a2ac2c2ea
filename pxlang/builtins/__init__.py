"""What names mean: the built-in registry and the modules that fill it.

Importing this package registers every built-in. Modules keep heavy imports (astropy, scipy,
numba, sep...) inside function bodies so that `pxlang check` starts fast.
"""

from . import (  # noqa: F401  (registration)
    align,
    cluster,
    frames,
    lights,
    pixelmath,
    pixelmath_generators,
    pixelmath_geometry,
    post,
    post_color,
    post_masks,
    preprocess,
    preview,
    workflow,
)
from .registry import REGISTRY, all_specs, builtin, lookup  # noqa: F401
