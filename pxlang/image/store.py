"""Images as pxlang holds them: float32 (H, W) mono or (3, H, W) colour, values nominally in [0, 1].

A header (astropy ``Header``, imported lazily) travels with the pixels. ``ImageStore`` holds
named images, loading files only when a name is first used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import numpy as np


class Image:
    """Pixels plus header. ``data`` is float32, shape (H, W) or (3, H, W).

    ``path``: the file the pixels come from (possibly a cache file); ``shown_path``: the
    file messages name, the one a user knows (where the image was saved, else its source
    file; None for a result held in the cache). ``stars``: the star table a stage measured
    on these very pixels, or None (best() passes measure()'s on, so that registering other
    filters on it uses the list the reference's own filter was registered with).
    """

    __slots__ = ("data", "header", "name", "path", "shown_path", "stars")

    def __init__(
        self,
        data: np.ndarray,
        header: Any = None,
        name: str | None = None,
        path: str | None = None,
    ):
        arr = normalised(np.asarray(data))
        if arr.ndim == 3 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[0] != 3):
            raise ValueError(
                f"an image is (H, W) or (3, H, W); got shape {arr.shape}"
                + (f" ({name})" if name else "")
            )
        self.data = arr
        self.header = header
        self.name = name
        self.path = path
        self.shown_path = path
        self.stars: dict | None = None

    # The language reads pixels through this attribute (see lang/pixel.py).
    @property
    def pixels(self) -> np.ndarray:
        return self.data

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def __getitem__(self, index: Any) -> Any:
        return self.data[index]

    @property
    def is_color(self) -> bool:
        return self.data.ndim == 3

    @property
    def channels(self) -> int:
        return 3 if self.data.ndim == 3 else 1

    @property
    def height(self) -> int:
        return int(self.data.shape[-2])

    @property
    def width(self) -> int:
        return int(self.data.shape[-1])

    def with_data(self, data: np.ndarray, name: str | None = None) -> Image:
        """A new image with these pixels and a copy of this header."""
        header = self.header.copy() if self.header is not None else None
        return Image(data, header, name or self.name)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.data if dtype is None else self.data.astype(dtype)

    def __repr__(self) -> str:
        kind = "colour" if self.is_color else "mono"
        label = f" {self.name!r}" if self.name else ""
        return f"<Image{label} {kind} {self.width}x{self.height}>"


def normalised(arr: np.ndarray) -> np.ndarray:
    """float32 pixels; integer samples divided by the largest value of their type (PixInsight's
    normalised reals: uint16 65535 -> 1.0)."""
    if arr.dtype == np.float32:
        return arr
    if arr.dtype.kind in "ui":
        return (arr / np.float32(np.iinfo(arr.dtype).max)).astype(np.float32)
    if arr.dtype == bool:
        return arr.astype(np.float32)
    return arr.astype(np.float32)


def as_image(value: Any, name: str | None = None) -> Image:
    """An ``Image`` from an Image, an ndarray or anything array-like."""
    if isinstance(value, Image):
        return value
    return Image(np.asarray(value, dtype=np.float32), name=name)


class ImageStore(MutableMapping[str, Any]):
    """Named images; a value may be a path (str) or a loader, loaded on first access."""

    def __init__(self, loader: Callable[[str], Image] | None = None):
        self._items: dict[str, Any] = {}
        self._loader = loader

    def __getitem__(self, key: str) -> Any:
        value = self._items[key]
        if isinstance(value, (Image, np.ndarray, float, int)):
            return value
        if callable(value):
            value = value()
        elif isinstance(value, str) and self._loader is not None:
            value = self._loader(value)
        if isinstance(value, Image) and value.name is None:
            value.name = key
        self._items[key] = value
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self._items[key] = value

    def __delitem__(self, key: str) -> None:
        del self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
