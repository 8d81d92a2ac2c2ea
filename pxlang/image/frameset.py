"""Frame sets: a lazy, ordered set of frames (files or arrays) with their headers.

A ``FrameSet`` holds paths and reads headers only when asked (cached); pixels are read whole
(``read``) or as bands of rows (``read_rows``, ``read_rows_into``) so that integration can
stream any number of frames in bounded memory. Frames are sorted by DATE-OBS.

A frame set may be *derived*: a per-frame operation (calibration, cosmetic correction)
pending over a parent set. ``read(i)`` evaluates it for one frame; bands of rows come from a
float32 FITS written once per frame into a cache folder and then read through memory maps.
Materialising beats recomputing each band on the fly (subtract dark band, divide by flat
band...): several consumers (measurement, registration, integration) read the same frames,
whole-frame steps (cosmetic correction looks at neighbours, debayering) cannot work on bands,
and files named by a hash of their inputs make re-runs incremental and interrupted runs
resumable. The cost is one float32 write per frame.

Each frame carries a ``meta`` dict where other stages attach what they measured (weights,
transforms, per-frame normalisation callables...).
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from pxlang import runtrace
from pxlang.lang.errors import PxIOError

from . import fits, io
from .listing import image_files
from .store import Image

# File name suffixes of materialised frames, as PixInsight names them (_c calibrated,
# _cc cosmetically corrected).
_SUFFIXES = {"calibrated": "_c", "cosmetic": "_cc"}
# Per-frame operations that keep the frame's shape (others are asked: see FrameSet.shape).
_SAME_SHAPE = frozenset({"calibrated", "cosmetic", "registered", "normalized"})

# ---------------------------------------------------------------------------- header matching

_KEY_ALIASES = {
    "EXPTIME": ("EXPTIME", "EXPOSURE"),
    "EXPOSURE": ("EXPTIME", "EXPOSURE"),
    "CCD-TEMP": ("CCD-TEMP", "CCD_TEMP", "CCDTEMP", "TEMPERAT"),
    "CCD_TEMP": ("CCD-TEMP", "CCD_TEMP", "CCDTEMP", "TEMPERAT"),
    "FILTER": ("FILTER", "FILTER1", "FILTNAME"),
    "BAYERPAT": ("BAYERPAT", "COLORTYP", "CFA-PAT"),
}


def normalise_imagetyp(value: Any) -> str:
    """'Bias Frame', 'BIAS', 'Master Bias', 'zero' -> 'bias'; likewise dark, flat, light.

    Flat darks ('Dark Flat', 'FlatDark') -> 'darkflat'. Anything else: lower-cased as given.
    """
    text = re.sub(r"[\s_\-]+", " ", str(value).strip().lower())
    text = text.replace("master ", "").replace(" frame", "").replace(" field", "").strip()
    if not text:
        return ""
    squashed = text.replace(" ", "")
    if squashed in ("darkflat", "flatdark"):
        return "darkflat"
    if "bias" in squashed or squashed in ("zero", "offset"):
        return "bias"
    if "dark" in squashed:
        return "dark"
    if "flat" in squashed:
        return "flat"
    if "light" in squashed or squashed in ("object", "science"):
        return "light"
    return text


def header_value(header: Any, key: str) -> Any:
    """A header value by keyword, case-insensitive, trying common spellings (EXPOSURE...)."""
    if header is None:
        return None
    key = key.upper().replace("_", "-") if key.upper() == "CCD_TEMP" else key.upper()
    for k in _KEY_ALIASES.get(key, (key,)):
        if k in header:
            return header[k]
    return None


def _matches(header: Any, key: str, wanted: Any) -> bool:
    value = header_value(header, key)
    options = wanted if isinstance(wanted, (list, tuple, set)) else (wanted,)
    for opt in options:
        if value is None:
            continue
        if key.upper() == "IMAGETYP":
            if normalise_imagetyp(value) == normalise_imagetyp(opt):
                return True
            continue
        if isinstance(opt, (int, float)) and not isinstance(opt, bool):
            try:
                if abs(float(value) - float(opt)) <= 1e-6 * max(1.0, abs(float(opt))):
                    return True
            except (TypeError, ValueError):
                pass
            continue
        if str(value).strip().lower() == str(opt).strip().lower():
            return True
    return False


# ---------------------------------------------------------------------------- frames


class Frame:
    """One frame: a file path (or in-memory pixels), its header (read on demand) and meta."""

    __slots__ = ("path", "_header", "data", "meta")

    def __init__(
        self,
        path: str | None,
        header: Any = None,
        data: np.ndarray | None = None,
        meta: dict[str, Any] | None = None,
    ):
        self.path = path
        self._header = header
        self.data = data
        self.meta = dict(meta or {})

    @property
    def header(self) -> Any:
        if self._header is None and self.path is not None:
            self._header = cached_header(self.path)
        return self._header

    @property
    def name(self) -> str:
        return os.path.basename(self.path) if self.path else "(in memory)"

    def copy(self) -> Frame:
        return Frame(self.path, self._header, self.data, self.meta)

    def __repr__(self) -> str:
        return f"<Frame {self.name}>"


# Headers by file identity (absolute path, size, mtime): a workflow calls files() on the same
# folder once per frame type and filter, and each call filters by header; parsing every
# header each time cost more than a re-run's whole per-frame work. Values are shared, never
# modified in place (derived frames and masters copy them first).
_HEADERS: dict[str, tuple[tuple[int, int], Any]] = {}
_HEADERS_MAX = 20000


def cached_header(path: str) -> Any:
    """``io.read_header(path)``, remembered while the file's size and mtime are unchanged."""
    key = os.path.abspath(path)
    runtrace.read(key)
    try:
        st = os.stat(key)
    except OSError:
        return io.read_header(path)  # the reader's message names the file
    stamp = (st.st_size, st.st_mtime_ns)
    hit = _HEADERS.get(key)
    if hit is None or hit[0] != stamp:
        try:
            value: Any = io.read_header(path)
        except PxIOError as exc:
            value = exc  # an unreadable file stays unreadable until it changes
        if len(_HEADERS) >= _HEADERS_MAX:
            _HEADERS.clear()
        hit = _HEADERS[key] = (stamp, value)
    if isinstance(hit[1], PxIOError):
        raise PxIOError(hit[1].message, hint=hit[1].hint)
    return hit[1]


def _date_key(frame: Frame) -> tuple[int, str, str]:
    date = header_value(frame.header, "DATE-OBS")
    return (0, str(date), frame.path or "") if date else (1, "", frame.path or "")


class FrameSet:
    """A lazy, ordered set of frames. See the module docstring.

    ``source`` describes where the frames came from (for messages). Derived sets take
    ``parent`` and ``op(image, frame_index) -> Image`` plus ``op_key`` (a string that changes
    whenever the operation's inputs or parameters change: it names the cached files).
    """

    def __init__(
        self,
        frames: Sequence[Frame],
        *,
        source: str = "",
        parent: FrameSet | None = None,
        op: Callable[[Image, int], Image] | None = None,
        op_key: str = "",
        op_name: str = "",
        cache_dir: str | None = None,
        header_op: Callable[[Any, int], Any] | None = None,
        frame_keys: Sequence[str] | None = None,
    ):
        self.frames = list(frames)
        # per-frame operation keys (optional): frame i's cached file is named by
        # frame_keys[i] instead of op_key, so that one frame's parameters changing (its own
        # registration transform) leaves the other frames' files valid
        self.frame_keys = list(frame_keys) if frame_keys is not None else None
        self.source = source
        self.parent = parent
        self.op = op
        self.op_key = op_key
        self.op_name = op_name
        self.header_op = header_op
        self._cache_dir = cache_dir
        self._shape: tuple[int, ...] | None = None
        # files found but left out because they cannot be read: (path, reason); carried
        # along to derived sets and subsets so that the report can count them
        self.skipped: list[tuple[str, str]] = list(parent.skipped) if parent is not None else []
        # a detached set (``detached()``) keeps the names and identities of the frames it
        # was made from: messages, reports and cache keys do not change
        self._names: list[str] | None = None
        self._identities: list[str] | None = None

    # -- construction

    @classmethod
    def from_paths(cls, paths: Sequence[str], source: str = "", sort: bool = True) -> FrameSet:
        frames = [Frame(os.fspath(p)) for p in paths]
        for f in frames:
            runtrace.read(f.path)
        if sort:
            frames.sort(key=_date_key)
        return cls(frames, source=source)

    @classmethod
    def from_arrays(
        cls, arrays: Sequence[Any], headers: Sequence[Any] | None = None, source: str = ""
    ) -> FrameSet:
        """In-memory frames (arrays or Images), kept in the order given."""
        frames = []
        for i, a in enumerate(arrays):
            if isinstance(a, Image):
                frames.append(Frame(a.path, a.header, a.data))
            else:
                data = np.asarray(a, dtype=np.float32)
                hdr = headers[i] if headers is not None else None
                frames.append(Frame(None, hdr, data))
        return cls(frames, source=source or "memory")

    def derive(
        self,
        op: Callable[[Image, int], Image],
        op_key: str,
        op_name: str,
        cache_dir: str | None = None,
        header_op: Callable[[Any, int], Any] | None = None,
        frame_keys: Sequence[str] | None = None,
    ) -> FrameSet:
        """A derived set: ``op`` pending over each frame of this set. ``frame_keys``: one
        key per frame, naming each cached frame by its own parameters (default ``op_key``
        for all)."""
        if frame_keys is not None and len(frame_keys) != len(self.frames):
            raise ValueError(f"{len(frame_keys)} frame keys for {len(self.frames)} frames")
        frames = [Frame(None, None, None, f.meta) for f in self.frames]
        return FrameSet(
            frames,
            source=self.source,
            parent=self,
            op=op,
            op_key=op_key,
            op_name=op_name,
            cache_dir=cache_dir,
            header_op=header_op,
            frame_keys=frame_keys,
        )

    # -- container protocol

    def __len__(self) -> int:
        return len(self.frames)

    def __iter__(self) -> Iterator[Frame]:
        for i in range(len(self.frames)):
            self._ensure_header(i)
            yield self.frames[i]

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return self._subset(list(range(len(self)))[index])
        self._ensure_header(index)
        return self.frames[index]

    def __repr__(self) -> str:
        return f"<FrameSet {self.describe()}>"

    def describe(self) -> str:
        """'a frame set of 12 frames from 'lights/'' (for messages)."""
        n = len(self)
        what = f"a frame set of {n} frame{'s' if n != 1 else ''}"
        if self.op_name:
            what += f" ({self.op_name})"
        return what + (f" from '{self.source}'" if self.source else "")

    @property
    def paths(self) -> list[str | None]:
        return [f.path for f in self.frames]

    def header(self, i: int) -> Any:
        self._ensure_header(i)
        return self.frames[i].header

    def name(self, i: int) -> str:
        """The file name of frame i, for messages (the parent's for derived frames)."""
        if self._names is not None:
            return self._names[i]
        if self.parent is not None:
            return self.parent.name(i)
        f = self.frames[i]
        return f.path if f.path else f"frame {i + 1} (in memory)"

    def _ensure_header(self, i: int) -> None:
        f = self.frames[i]
        if f._header is None and f.path is None and self.parent is not None:
            parent_header = self.parent.header(i)
            hdr = parent_header.copy() if parent_header is not None else None
            f._header = self.header_op(hdr, i) if self.header_op is not None else hdr

    def _subset(self, indices: list[int]) -> FrameSet:
        out = FrameSet(
            [self.frames[i] for i in indices],
            source=self.source,
            parent=None if self.parent is None else self.parent._subset(indices),
            op=None,
            op_key=self.op_key,
            op_name=self.op_name,
            cache_dir=self._cache_dir,
            header_op=self.header_op,
            frame_keys=None if self.frame_keys is None else [self.frame_keys[i] for i in indices],
        )
        out.skipped = list(self.skipped)
        if self._names is not None and self._identities is not None:
            out._names = [self._names[i] for i in indices]
            out._identities = [self._identities[i] for i in indices]
        if self.op is not None:
            # re-index the operation onto the subset
            op = self.op
            out.op = lambda img, j, _op=op, _idx=indices: _op(img, _idx[j])
            hop = self.header_op
            if hop is not None:
                out.header_op = lambda h, j, _h=hop, _idx=indices: _h(h, _idx[j])
        return out

    # -- selection

    def filter(self, **header_filters: Any) -> FrameSet:
        """Frames whose headers match every filter (see ``files``)."""
        keep = [
            i
            for i in range(len(self))
            if all(_matches(self.header(i), k, v) for k, v in header_filters.items())
        ]
        return self._subset(keep)

    def group_by(self, keyword: str) -> dict[str, FrameSet]:
        """Frame sets per value of a header keyword (IMAGETYP values normalised)."""
        groups: dict[str, list[int]] = {}
        for i in range(len(self)):
            value = header_value(self.header(i), keyword)
            if keyword.upper() == "IMAGETYP" and value is not None:
                value = normalise_imagetyp(value)
            groups.setdefault("" if value is None else str(value).strip(), []).append(i)
        return {k: self._subset(v) for k, v in groups.items()}

    # -- geometry

    @property
    def shape(self) -> tuple[int, ...]:
        """The common image shape, (H, W) or (3, H, W); an error names a frame that differs."""
        if self._shape is None:
            if not self.frames:
                raise PxIOError(f"{self.describe()} is empty")
            if self.parent is not None:
                if self.op_name in _SAME_SHAPE:
                    self._shape = self.parent.shape
                else:  # debayering makes colour (or half size): ask a computed frame
                    self._shape = tuple(io.image_shape(self.materialize_frame(0)))
                return self._shape
            shapes, bits = [], []
            for i, f in enumerate(self.frames):
                if f.data is not None:
                    shapes.append(tuple(f.data.shape))
                    bits.append(-32)
                else:
                    shapes.append(tuple(io.image_shape(f.path)))
                    bits.append(int(self.header(i).get("BITPIX", -32) or -32))
            if len(set(shapes)) > 1:
                # the odd frames are those not of the most common size (the first frame may
                # be the odd one)
                usual, k = Counter(shapes).most_common(1)[0]
                odd = [i for i, sh in enumerate(shapes) if sh != usual]
                ref = shapes.index(usual)
                names = ", ".join(
                    f"'{self.name(i)}' is {_dims(shapes[i])}{self._binning(i)}" for i in odd[:5]
                )
                raise PxIOError(
                    f"frames differ in size: {names}{' …' if len(odd) > 5 else ''}, the other "
                    f"{k} of {len(shapes)} frames are {_dims(usual)}{self._binning(ref)} "
                    f"({self.describe()})",
                    hint="frames to combine must come from the same camera and binning; move "
                    "the odd files out or filter them (files(..., XBINNING=1))",
                )
            self._check_binning()
            for i, b in enumerate(bits):
                if b != bits[0]:
                    raise PxIOError(
                        f"frames differ in bit depth: '{self.name(i)}' has BITPIX {b} but "
                        f"'{self.name(0)}' has BITPIX {bits[0]} ({self.describe()})",
                        hint="mixed bit depths usually mean frames from different cameras "
                        "or software; keep them apart",
                    )
            self._shape = shapes[0]
        return self._shape

    def _check_binning(self) -> None:
        """Frames of one size but another binning (a binned big sensor, an unbinned small
        one) are from different set-ups: the size check alone would let them through."""
        binned = [(i, self._binning(i)) for i in range(len(self.frames))]
        binned = [(i, b) for i, b in binned if b]
        if len({b for _, b in binned}) < 2:
            return
        usual, k = Counter(b for _, b in binned).most_common(1)[0]
        odd = [(i, b) for i, b in binned if b != usual]
        names = ", ".join(f"'{self.name(i)}'{b}" for i, b in odd[:5])
        raise PxIOError(
            f"frames differ in binning: {names}{' …' if len(odd) > 5 else ''}, the other "
            f"{k} of {len(binned)} frames{usual} ({self.describe()})",
            hint="frames to combine must come from the same camera and binning; move "
            "the odd files out or filter them (files(..., XBINNING=1))",
        )

    def _binning(self, i: int) -> str:
        """' (binning 2x2)' when the header says so, for size messages."""
        h = self.header(i)
        bx, by = header_value(h, "XBINNING"), header_value(h, "YBINNING")
        return f" (binning {bx}x{by or bx})" if bx is not None else ""

    # -- pixels

    def read(self, i: int) -> Image:
        """Frame i as an Image (derived frames: computed, or read from the cache)."""
        f = self.frames[i]
        if f.data is not None:
            return Image(f.data, self.header(i), name=f"frame{i + 1}", path=f.path)
        if self.parent is not None:
            cached = self._cached_path(i)
            if cached is not None and os.path.exists(cached):
                return io.load(cached)
            img = self.op(self.parent.read(i), i)
            if img.header is None:
                img.header = self.header(i)
            return img
        return io.load(f.path)

    def read_rows(self, i: int, r0: int, r1: int) -> np.ndarray:
        """Rows r0:r1 of frame i, float32 (derived frames are materialised first)."""
        f = self.frames[i]
        if f.data is not None:
            return np.asarray(f.data[..., r0:r1, :], dtype=np.float32)
        if self.parent is not None:
            return io.read_rows(self.materialize_frame(i), r0, r1)
        return io.read_rows(f.path, r0, r1)

    def read_rows_into(self, i: int, r0: int, r1: int, out: np.ndarray) -> None:
        """Rows r0:r1 of frame i copied into ``out`` (float32), without a temporary when the
        file holds plain float32 samples."""
        f = self.frames[i]
        path = f.path
        if f.data is None and self.parent is not None:
            path = self.materialize_frame(i)
        if f.data is None and path is not None and _copy_float_rows(path, r0, r1, out):
            return
        out[...] = self.read_rows(i, r0, r1)

    # -- derived frames

    @property
    def cache_dir(self) -> str:
        if self._cache_dir is None:
            root = os.environ.get("PXLANG_CACHE")
            if not root:
                import platformdirs

                root = platformdirs.user_cache_dir("pxlang")
            self._cache_dir = os.path.join(root, "frames")
        return self._cache_dir

    def _cached_path(self, i: int) -> str | None:
        if self.parent is None:
            return None
        parent_id = self.parent._frame_identity(i)
        op_key = self.frame_keys[i] if self.frame_keys is not None else self.op_key
        digest = hashlib.sha256(f"{parent_id}|{op_key}".encode()).hexdigest()[:16]
        stem = os.path.basename(self.name(i)).split(".")[0] or f"frame{i + 1}"
        return os.path.join(self.cache_dir, f"{stem}_{digest}.fits")

    def _frame_identity(self, i: int) -> str:
        if self._identities is not None:
            return self._identities[i]
        f = self.frames[i]
        if self.parent is not None:
            return self._cached_path(i) or ""
        if f.path is not None:
            st = os.stat(f.path)
            return f"{os.path.abspath(f.path)}:{st.st_size}:{st.st_mtime_ns}"
        return hashlib.sha256(np.ascontiguousarray(f.data).tobytes()).hexdigest()

    def content_key(self, i: int) -> str:
        """A hex digest naming frame i's pixels: the file (path, size, modification time),
        a derived frame's inputs and operation, or an in-memory frame's bytes. Per-frame
        results (star tables, measurements, transforms) are cached under it."""
        return hashlib.sha256(self._frame_identity(i).encode()).hexdigest()

    def is_persistent(self, i: int) -> bool:
        """True when frame i comes from a file or derives from one (its results may be cached
        on disk); False for in-memory pixels."""
        return self.parent is not None or self.frames[i].path is not None

    def materialize_frame(self, i: int) -> str:
        """Write derived frame i to the cache (once) and return its path."""
        path = self._cached_path(i)
        if path is None:
            raise ValueError("only derived frame sets are materialised")
        if not os.path.exists(path):
            img = self.read(i)
            io.save(img, path, header=img.header, durable=False)
        return path

    def detached(self) -> FrameSet:
        """This set read from its cached files, without the operations behind it: a derived
        set holds its parents and their operations' closures, and with them the masters they
        calibrate with (a few full frames per filter for the rest of a run). Names, headers,
        meta and content keys stay those of this set. Returned unchanged when it is not
        derived or a frame has not been written to the cache yet."""
        if self.parent is None:
            return self
        paths = [self._cached_path(i) for i in range(len(self))]
        if any(p is None or not os.path.exists(p) for p in paths):
            return self
        frames = []
        for i, path in enumerate(paths):
            self._ensure_header(i)
            frames.append(Frame(path, self.frames[i]._header, None, self.frames[i].meta))
        out = FrameSet(frames, source=self.source, op_name=self.op_name, cache_dir=self._cache_dir)
        out.skipped = list(self.skipped)
        out._names = [self.name(i) for i in range(len(self))]
        out._identities = [self._frame_identity(i) for i in range(len(self))]
        return out

    def materialize(self, output: str | None = None) -> FrameSet:
        """Evaluate every derived frame; return a plain set over the files written.

        ``output``: a folder to write into (input names with PixInsight's suffixes, _c for
        calibrated, _cc for cosmetic); default the cache folder.
        """
        if self.parent is None:
            return self
        paths = []
        if output is not None:
            os.makedirs(output, exist_ok=True)
        for i in range(len(self)):
            if output is None:
                paths.append(self.materialize_frame(i))
                continue
            stem = os.path.basename(self.name(i)).split(".")[0] or f"frame{i + 1}"
            suffix = _SUFFIXES.get(self.op_name, f"_{self.op_name}" if self.op_name else "")
            path = os.path.join(output, f"{stem}{suffix}.fits")
            img = self.read(i)
            io.save(img, path, header=img.header)
            paths.append(path)
        out = FrameSet([Frame(p) for p in paths], source=output or self.source)
        out.skipped = list(self.skipped)
        for f, g in zip(out.frames, self.frames):
            f.meta = dict(g.meta)
        return out


def _dims(shape: tuple[int, ...]) -> str:
    dims = f"{shape[-1]}x{shape[-2]}"
    return dims + (" colour" if len(shape) == 3 else "")


def _copy_float_rows(path: str, r0: int, r1: int, out: np.ndarray) -> bool:
    """Fast path for plain float32/64 FITS: copy (and byte-swap) a band straight into ``out``."""
    if io.format_of(path) != "fits":
        return False
    layout = fits.layout(path)
    if (
        layout.offset is None
        or layout.dtype.kind != "f"
        or layout.bzero != 0
        or layout.bscale != 1
        or len(layout.file_shape) != 2
    ):
        return False
    # read, not memory-mapped: a band is read once, and mapping and unmapping the file for
    # every band of every frame cost more than the copy (integration reads 16 bands a frame)
    width = layout.file_shape[1]
    band = np.empty((r1 - r0, width), layout.dtype)
    with open(path, "rb") as fh:
        fh.seek(layout.offset + r0 * width * layout.dtype.itemsize)
        got = fh.readinto(memoryview(band).cast("B"))
    if got != band.nbytes:  # layout() checked the size: the file changed since
        raise fits.file_error(path, "truncated data (the file changed while being read)")
    np.copyto(out, band, casting="unsafe")
    return True


# ---------------------------------------------------------------------------- files()


_WARNED: set[tuple[str, int, int]] = set()  # files already warned about by this process


def _readable(
    paths: list[str], shown: str, warn: Callable[[str], None] | None
) -> tuple[list[str], list[tuple[str, str]]]:
    """The paths whose headers read, and (path, reason) for the others. Each unreadable
    file is reported once per process (a workflow lists the same folder many times)."""
    from pxlang.run.progress import current_options, stage

    ok, bad = [], []
    with stage(current_options(), "files", sum(1 for p in paths if not _known(p))) as advance:
        for p in paths:
            if _check(p, shown, warn, bad, advance):
                ok.append(p)
    return ok, bad


def _known(path: str) -> bool:
    """True when the header of ``path`` is remembered (no file read needed)."""
    hit = _HEADERS.get(os.path.abspath(path))
    if hit is None:
        return False
    try:
        st = os.stat(path)
    except OSError:
        return False
    return hit[0] == (st.st_size, st.st_mtime_ns)


def _check(
    p: str,
    shown: str,
    warn: Callable[[str], None] | None,
    bad: list[tuple[str, str]],
    advance: Callable[..., None],
) -> bool:
    """Read the header of ``p``; False (and a warning, once) when it cannot be read."""
    known = _known(p)
    try:
        cached_header(p)
        return True
    except PxIOError as exc:
        bad.append((p, exc.message))
        _warn_once(p, f"left out of '{shown}': {exc.message}", warn)
        return False
    finally:
        if not known:
            advance()


def _warn_once(path: str, text: str, warn: Callable[[str], None] | None) -> None:
    """``text`` about ``path``, once per process while the file is unchanged."""
    try:
        st = os.stat(path)
        ident = (os.path.abspath(path), st.st_size, st.st_mtime_ns)
    except OSError:
        ident = (os.path.abspath(path), -1, -1)
    if ident in _WARNED:
        return
    _WARNED.add(ident)
    if warn is not None:
        warn(text)
    else:
        import sys

        print(f"warning: {text}", file=sys.stderr, flush=True)


def files(
    pattern: str,
    *,
    display: str | None = None,
    warn: Callable[[str], None] | None = None,
    exclude: Sequence[str] = (),
    **header_filters: Any,
) -> FrameSet:
    """A frame set from a glob pattern or a folder, filtered by header keywords.

    Folders are searched recursively (hidden folders skipped) for FITS (.fits/.fit/.fts,
    optionally .gz) and XISF.
    ``IMAGETYP`` filters are tolerant of case and spelling ('Bias', 'BIAS', 'Bias Frame',
    'Master Bias' are all 'bias'); other keywords compare case-insensitively (numbers
    numerically). A list value matches any of its items. Frames are sorted by DATE-OBS.
    Raises ``PxIOError`` naming the pattern when nothing is found or everything is filtered
    out (then saying what the folder held). ``display``: the pattern as the user wrote it
    (relative), for messages.

    A file whose header cannot be read (truncated, corrupt, not FITS) is left out with a
    warning naming it (``warn``, default: printed to stderr, once per file): one bad file
    in a night of hundreds should not cost the night. Left-out files are listed in the set's
    ``skipped`` (the report counts them). When every file is unreadable, the error is the
    first file's.

    ``exclude``: folders whose files are left out (a workflow's output folder inside its
    input folder: its masters would otherwise be found as frames by the next run).
    """
    pattern = os.fspath(pattern)
    unlisted: list[tuple[str, str]] = []
    paths, kind = image_files(pattern, unlisted)
    shown = display or pattern
    for folder, reason in unlisted:
        if os.path.abspath(folder) == os.path.abspath(pattern):
            raise PxIOError(
                f"cannot read the folder '{shown}': {reason}",
                hint="make it readable (chmod +rx) or give another folder",
            )
        _warn_once(folder, f"left out of '{shown}': the folder '{folder}' cannot be read "
                   f"({reason})", warn)  # fmt: skip
    for folder in exclude:
        inside = os.path.join(os.path.abspath(folder), "")
        paths = [p for p in paths if not os.path.abspath(p).startswith(inside)]
    runtrace.listed("tree", pattern, paths)
    if paths:
        readable, skipped = _readable(paths, shown, warn)
        if not readable:
            path, reason = skipped[0]
            more = f" (and {len(skipped) - 1} more unreadable files)" if len(skipped) > 1 else ""
            raise PxIOError(f"no readable image files in '{shown}': {reason}{more}")
        paths = readable
    else:
        skipped = []
    skipped += [(folder, f"folder cannot be read ({reason})") for folder, reason in unlisted]
    if not paths:
        hint = None
        if kind == "pattern" and not glob.has_magic(pattern) and not os.path.exists(pattern):
            hint = "no such file or folder; check the name and the folder it is relative to"
        elif kind == "folder":
            hint = "a folder is searched for .fits/.fit/.fts/.xisf files"
        raise PxIOError(f"no image files match '{shown}'", hint=hint)
    fs = FrameSet.from_paths(paths, source=shown)
    fs.skipped = skipped
    if not header_filters:
        return fs
    kept = fs.filter(**header_filters)
    if len(kept) and any(k.upper() == "IMAGETYP" for k in header_filters):
        # a frame of unknown kind would otherwise vanish from every set without a word
        for i in range(len(fs)):
            if not header_value(fs.header(i), "IMAGETYP"):
                _warn_once(
                    fs.frames[i].path or fs.name(i),
                    f"left out of '{shown}': '{fs.name(i)}' has no IMAGETYP "
                    "(Bias, Dark, Flat or Light)",
                    warn,
                )
    if len(kept) == 0:
        wanted = ", ".join(f"{k}={v!r}" for k, v in header_filters.items())
        held = []
        for key in header_filters:
            values: dict[str, int] = {}
            for i in range(len(fs)):
                v = header_value(fs.header(i), key)
                if key.upper() == "IMAGETYP" and v is not None:
                    v = normalise_imagetyp(v)
                label = "(missing)" if v is None else str(v).strip()
                values[label] = values.get(label, 0) + 1
            held.append(f"{key}: " + ", ".join(f"{k} ({n})" for k, n in sorted(values.items())))
        raise PxIOError(
            f"no frames in '{shown}' have {wanted}; its {len(fs)} frames have " + "; ".join(held),
            hint="check the keyword value, or drop the filter",
        )
    return kept
