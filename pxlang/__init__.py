"""pxlang: a PixelMath-style language for astrophotography.

>>> import pxlang
>>> pxlang.pixelmath("2^3^2", truncate=False)
64.0
"""

from ._version import __version__
from .api import check, evaluate, load, pixelmath, run_file, save
from .image.store import Image
from .lang.errors import (
    PxCheckError,
    PxError,
    PxIOError,
    PxNameError,
    PxProcessError,
    PxRuntimeError,
    PxSyntaxError,
    PxTypeError,
)

__all__ = [
    "__version__",
    "pixelmath",
    "evaluate",
    "run_file",
    "check",
    "load",
    "save",
    "Image",
    "PxError",
    "PxSyntaxError",
    "PxCheckError",
    "PxNameError",
    "PxTypeError",
    "PxRuntimeError",
    "PxIOError",
    "PxProcessError",
]
