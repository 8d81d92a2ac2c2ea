"""The run report: ``report.json`` and the PNG plots a user looks at after ``preprocess``.

``write_report(output_dir, frames=…, masters=…)`` writes

- ``output_dir/report/subframes_<filter>.png``: FWHM, Eccentricity and SNRWeight per light
  frame (time order), approved frames as dots, rejected ones as red crosses with their reasons
  listed under the panels, the approval thresholds read from ``approve`` and the registration
  reference marked (SubframeSelector's measurement graphs);
- ``output_dir/report/master_<name>.png``: an 8-bit preview of each master given with an image,
  auto-stretched with the STF (``pxlang.process.stretch``), long side ≤ 1200 px;
- ``output_dir/report.json``: the frames and masters given (arrays left out; NaN/∞ -> null),
  the pxlang version, the date, ``reference``, ``approve``, ``weight``, ``extra``, a per-filter
  summary and the plots' relative paths.

Every file is written atomically (temp file, fsync, rename), the plots first and the JSON
last: when a plot fails nothing new appears under ``report.json``. Each plot is keyed by a
content hash of what it shows, and the hash of the PNG bytes written is kept beside it
(both in ``report.json``); an unchanged re-run whose PNGs are still exactly those bytes
draws nothing and leaves every file as it was, while a PNG missing, damaged or replaced is
drawn again (``force`` draws them all). matplotlib is imported
lazily (Agg canvas, no pyplot state), only when there is a subframe plot to draw.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import math
import os
import re
import secrets
from collections.abc import Callable, Mapping
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pxlang import runtrace
from pxlang._version import __version__

PREVIEW_MAX_SIDE = 1200  # long side of a master preview, pixels
PANELS = ("FWHM", "Eccentricity", "SNRWeight")  # SubframeSelector's usual three graphs
MAX_LISTED = 10  # rejected frames listed by name under a plot; the rest are counted
_SMALL_ARRAY = 4096  # 1-D arrays up to this size go into the JSON as lists; larger are dropped

_NAME = r"[A-Za-z_]\w*"
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_CLAUSE_NAME_FIRST = re.compile(rf"^({_NAME})\s*(<=|<|>=|>)\s*({_NUM})$")
_CLAUSE_NUM_FIRST = re.compile(rf"^({_NUM})\s*(<=|<|>=|>)\s*({_NAME})$")
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


# ----------------------------------------------------------------------------------------
# approval thresholds


def _top_level_clauses(expr: str) -> list[str] | None:
    """The '&&' terms outside brackets; None when a top-level '||' makes them no cut."""
    out, depth, start, i = [], 0, 0, 0
    while i < len(expr):
        c = expr[i]
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif depth == 0 and expr.startswith("&&", i):
            out.append(expr[start:i])
            start, i = i + 2, i + 1
        elif depth == 0 and expr.startswith("||", i):
            return None
        i += 1
    out.append(expr[start:])
    return [c.strip() for c in out if c.strip()]


def _wrapped(text: str) -> bool:
    """True for "( … )" whose first bracket closes at the very end."""
    if not (text.startswith("(") and text.endswith(")")):
        return False
    depth = 0
    for i, c in enumerate(text):
        depth += (c == "(") - (c == ")")
        if depth == 0:
            return i == len(text) - 1
    return False


def approval_limits(approve: str | None) -> list[tuple[str, str, float]]:
    """The simple cuts of an approval expression as ``(NAME, op, number)`` with ``op`` one of
    ``<``, ``<=``, ``>``, ``>=`` (``6 > FWHM`` reads as ``FWHM < 6``). Clauses that are not a
    property compared with a number (``FWHM < 1.5*FWHMMedian``) are skipped; an expression
    with a top-level ``||`` has no simple cuts."""
    if not approve:
        return []
    clauses = _top_level_clauses(str(approve))
    if clauses is None:
        return []
    out = []
    for clause in clauses:
        while _wrapped(clause):
            clause = clause[1:-1].strip()
        if m := _CLAUSE_NAME_FIRST.match(clause):
            out.append((m.group(1), m.group(2), float(m.group(3))))
        elif m := _CLAUSE_NUM_FIRST.match(clause):
            out.append((m.group(3), _FLIP[m.group(2)], float(m.group(1))))
    return list(dict.fromkeys(out))


def approval_thresholds(approve: str | None, *, lower: bool = False) -> dict[str, float]:
    """Upper limits (``NAME < x``, ``NAME <= x``) of an approval expression by property name;
    with ``lower=True`` the lower limits (``NAME > x``, ``NAME >= x``) instead. The tightest
    limit wins when a property is cut twice.

    >>> approval_thresholds("FWHM < 6 && Eccentricity <= 0.7")
    {'FWHM': 6.0, 'Eccentricity': 0.7}
    """
    out: dict[str, float] = {}
    for name, op, value in approval_limits(approve):
        if op.startswith(">" if lower else "<"):
            old = out.get(name)
            out[name] = value if old is None else (max(old, value) if lower else min(old, value))
    return out


# ----------------------------------------------------------------------------------------
# JSON


def _plain(value: Any) -> Any:
    """A JSON-ready copy: numpy scalars to Python, NaN/∞ to None, tuples/sets to lists.
    Images and large arrays are left out (returned as ``_DROP``)."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, np.ndarray):
        if value.ndim <= 1 and value.size <= _SMALL_ARRAY:
            return [_plain(v) for v in value.tolist()]
        return _DROP
    if hasattr(value, "data") and isinstance(getattr(value, "data", None), np.ndarray):
        return _DROP  # a pxlang Image
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            p = _plain(v)
            if p is not _DROP:
                out[str(k)] = p
        return out
    if isinstance(value, (list, tuple)):
        return [p for p in (_plain(v) for v in value) if p is not _DROP]
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(v) for v in value), key=str)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


_DROP = object()


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _unit(frames: list[dict], prop: str) -> str | None:
    """The unit every frame gives ``prop`` in (``units``), or None when they differ or none
    says."""
    units = {(f.get("units") or {}).get(prop) for f in frames} - {None}
    return units.pop() if len(units) == 1 else None


def _summary(groups: dict[str, list[dict]]) -> dict[str, Any]:
    """Per filter: counts and the medians of the panels' properties over approved frames."""
    out = {}
    for name, frames in groups.items():
        ok = [f for f in frames if f.get("approved")]
        row: dict[str, Any] = {"frames": len(frames), "approved": len(ok)}
        row["rejected"] = len(frames) - len(ok)
        unit = _unit(frames, "FWHM")
        if unit is not None:
            row["FWHMUnit"] = unit
        for prop in PANELS:
            vals = [_prop(f, prop) for f in ok]
            vals = [v for v in vals if v is not None]
            row[f"{prop}Median"] = float(np.median(vals)) if vals else None
        out[name] = row
    return out


# ----------------------------------------------------------------------------------------
# files


def _write_atomic(path: Path, data: bytes) -> None:
    """``data`` under ``path`` only once it is all on disk (temp + fsync + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


def _safe_name(name: Any) -> str:
    text = re.sub(r"[^A-Za-z0-9_.+-]+", "_", str(name)).strip("._")
    return text or "unnamed"


# ----------------------------------------------------------------------------------------
# subframe plots


def _prop(frame: Mapping, name: str) -> float | None:
    props = frame.get("properties") or {}
    if not isinstance(props, Mapping):
        return None
    value = props.get(name)
    if value is None:  # properties spelled differently (fwhm, FWHM)
        low = name.lower()
        value = next((v for k, v in props.items() if str(k).lower() == low), None)
    return _finite(value)


def _same_path(a: str, b: str) -> bool:
    if a == b:
        return True
    with suppress(OSError, ValueError):
        return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))
    return False


def _reference_index(frames: list[dict], reference: str | None) -> int | None:
    if not reference:
        return None
    ref = str(reference)
    for i, f in enumerate(frames):
        if _same_path(str(f.get("path", "")), ref):
            return i
    base = os.path.basename(ref)
    hits = [i for i, f in enumerate(frames) if os.path.basename(str(f.get("path", ""))) == base]
    return hits[0] if len(hits) == 1 else None


def _time_order(frames: list[dict]) -> list[dict]:
    """Frames in time order: by their "date" when every one has it, else as given."""
    dates = [f.get("date") for f in frames]
    if frames and all(isinstance(d, str) and d for d in dates):
        return sorted(frames, key=lambda f: f["date"])  # ISO dates sort as text
    return list(frames)


def _label(op: str, value: float) -> str:
    return f"{op} {value:g}"


def subframes_png(
    filter_name: str,
    frames: list[dict],
    *,
    reference: str | None = None,
    approve: str | None = None,
) -> bytes:
    """PNG bytes of the three subframe panels for one filter's frames (in the order given)."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    n = len(frames)
    x = np.arange(1, n + 1)
    approved = np.array([bool(f.get("approved")) for f in frames], dtype=bool)
    ref = _reference_index(frames, reference)
    limits = approval_limits(approve)
    rejected = [i for i in range(n) if not approved[i]]

    listed = rejected[:MAX_LISTED]
    extra_lines = len(listed) + (1 if len(rejected) > MAX_LISTED else 0)
    height = 7.2 + 0.19 * extra_lines
    fig = Figure(figsize=(8.5, height), dpi=100)
    bottom = (0.55 + 0.19 * extra_lines) / height
    top = 1 - 0.85 / height
    axes = fig.subplots(3, 1, sharex=True)
    fig.subplots_adjust(left=0.1, right=0.97, top=top, bottom=bottom, hspace=0.12)
    fig.suptitle(f"{filter_name}: {int(approved.sum())} of {n} frames approved", fontsize=12)

    for ax, prop in zip(axes, PANELS):
        y = np.array([np.nan if (v := _prop(f, prop)) is None else v for f in frames])
        ok = approved & np.isfinite(y)
        ax.plot(x[ok], y[ok], "o", color="#1f5fa8", ms=5, zorder=3)
        if ok.sum() > 1:
            ax.plot(x[ok], y[ok], "-", color="#1f5fa8", lw=0.6, alpha=0.4, zorder=2)
        bad = ~approved & np.isfinite(y)
        ax.plot(x[bad], y[bad], "x", color="red", ms=9, mew=2.2, zorder=4)
        # Frames that could not be measured sit on the panel's floor, labelled "no data".
        floor = ax.get_xaxis_transform()
        for mask, style in (
            (~approved & ~np.isfinite(y), {"marker": "x", "color": "red", "ms": 9, "mew": 2.2}),
            (approved & ~np.isfinite(y), {"marker": "o", "color": "#1f5fa8", "mfc": "none"}),
        ):
            if not mask.any():
                continue
            ax.plot(x[mask], np.full(mask.sum(), 0.04), ls="", zorder=4, transform=floor, **style)
            for xi in x[mask]:
                ax.text(xi, 0.1, "no data", transform=floor, ha="center", fontsize=7, color="#666")
        for name, op, value in limits:
            if name.lower() == prop.lower():
                ax.axhline(value, color="#7a3fb0", ls="--", lw=1.2, zorder=1)
                ax.annotate(
                    _label(op, value),
                    (1.0, value),
                    xycoords=("axes fraction", "data"),
                    xytext=(-4, 3),
                    textcoords="offset points",
                    ha="right",
                    va="bottom",
                    fontsize=8,
                    color="#7a3fb0",
                )
        if ref is not None:
            ax.axvline(x[ref], color="#2a9d4b", ls=":", lw=1.4, zorder=1)
            if np.isfinite(y[ref]):
                ax.plot(
                    [x[ref]], [y[ref]], "*", color="#2a9d4b", ms=15, mfc="none", mew=1.5, zorder=5
                )
        span = [*y[np.isfinite(y)], *(v for nm, _, v in limits if nm.lower() == prop.lower())]
        if span:  # room above and below for markers and the limit's label
            lo, hi = min(span), max(span)
            pad = 0.12 * (hi - lo) if hi > lo else 0.1 * abs(hi) or 1.0
            ax.set_ylim(lo - pad, hi + 1.5 * pad)
        unit = _unit(frames, prop)
        ax.set_ylabel(prop if unit is None else f"{prop} ({unit})")
        ax.grid(True, color="#dddddd", lw=0.6)
        if not np.isfinite(y).any():
            ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center", color="#777777")
    axes[-1].set_xlabel("frame (time order)")
    axes[-1].set_xlim(0.4, n + 0.6)
    if n <= 40:
        axes[-1].set_xticks(x)

    handles = [Line2D([], [], ls="", marker="o", color="#1f5fa8", label="approved")]
    if rejected:
        handles.append(
            Line2D([], [], ls="", marker="x", color="red", mew=2.2, ms=9, label="rejected")
        )
    if ref is not None:
        handles.append(
            Line2D(
                [], [], ls=":", marker="*", color="#2a9d4b", mfc="none", ms=12, label="reference"
            )
        )
    if limits:
        handles.append(Line2D([], [], ls="--", color="#7a3fb0", label="approval limit"))
    axes[0].legend(
        handles=handles,
        fontsize=8,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        ncols=len(handles),
        frameon=False,
        borderaxespad=0.2,
    )

    lines = []
    for i in listed:
        reason = frames[i].get("reason") or "rejected"
        name = os.path.basename(str(frames[i].get("path", ""))) or f"frame {i + 1}"
        lines.append(f"#{i + 1} {name}: {reason}")
    if len(rejected) > MAX_LISTED:
        lines.append(f"… and {len(rejected) - MAX_LISTED} more rejected (see report.json)")
    if lines:
        fig.text(0.02, 0.12 / height, "\n".join(lines), fontsize=8, va="bottom", family="monospace")

    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": f"pxlang {__version__}"})
    return buf.getvalue()


# ----------------------------------------------------------------------------------------
# master previews


def _bin_mean(channel: np.ndarray, k: int) -> np.ndarray:
    """Block means of k×k pixels (NaN ignored; an all-NaN block stays NaN)."""
    h, w = (channel.shape[0] // k) * k, (channel.shape[1] // k) * k
    blocks = channel[:h, :w].reshape(h // k, k, w // k, k)
    good = np.isfinite(blocks)
    if good.all():  # the usual case; summing the inner axis first is several times faster
        return blocks.sum(axis=3, dtype=np.float32).sum(axis=1) / np.float32(k * k)
    total = np.where(good, blocks, 0).sum(axis=3, dtype=np.float32).sum(axis=1)
    count = good.sum(axis=3).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / count).astype(np.float32)


def _preview_stf(sample: np.ndarray, linked: bool) -> list[tuple[float, float, float]]:
    """``stf_params`` of the sample, except that channels brighter than 0.5 (a flat exposed
    past half range, a master rescaled from ADU) get the ordinary branch too: the STF's
    "inverted" branch is meant for negatives and would show these nearly black."""
    from pxlang.process.stretch import median_mad, mtf, stf_params

    chans = sample if sample.ndim == 3 else sample[None]
    step = max(1, math.ceil(math.sqrt(chans[0].size / 65536)))  # a quick look is enough here
    if all(median_mad(c[::step, ::step])[0] <= 0.5 for c in chans):
        return stf_params(sample, linked=linked)
    stats = [median_mad(c) for c in chans]
    clip, target = -2.8, 0.25  # the STF defaults
    c0 = [min(max(med + clip * 1.4826 * mad, 0.0), 0.999) if mad > 0 else 0.0 for med, mad in stats]
    meds = [s[0] for s in stats]
    if linked:
        c0, meds = [sum(c0) / len(c0)] * len(c0), [sum(meds) / len(meds)] * len(meds)
    # The midtones balance is taken on the rescaled (x - c0) / (1 - c0), so the median lands
    # on the target even with the large c0 of a bright image (the STF assumes c0 ≈ 0).
    return [(c, float(mtf(target, (m - c) / (1 - c))), 1.0) for c, m in zip(c0, meds)]


def preview_samples(image: Any, max_side: int = PREVIEW_MAX_SIDE) -> np.ndarray:
    """8-bit STF-stretched preview of a linear image: (h, w) or (3, h, w) uint8.

    Values outside [0, 1] are first rescaled into it (by the finite minimum and maximum,
    widened to include 0 and 1). The STF parameters come from the
    full-resolution pixels (a stride sample of about 1 M at most), as PixInsight computes them, and
    are applied to the k×k block means (k = ⌈long side / ``max_side``⌉). Colour channels are
    stretched unlinked, so an unbalanced linear master (OSC) shows a neutral background.
    """
    from pxlang.process.stretch import histogram_transform

    data = np.asarray(getattr(image, "data", image), dtype=np.float32)
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    if data.ndim not in (2, 3) or (data.ndim == 3 and data.shape[0] != 3) or data.size == 0:
        raise ValueError(f"a preview needs an (H, W) or (3, H, W) image; got shape {data.shape}")
    finite = np.isfinite(data)
    if not finite.any():
        return np.zeros(data.shape[:-2] + (1, 1), dtype=np.uint8)
    lo = float(np.min(data, where=finite, initial=np.inf))
    hi = float(np.max(data, where=finite, initial=-np.inf))
    if lo < 0 or hi > 1:  # e.g. a master in ADU or with a negative pedestal
        lo, hi = min(lo, 0.0), max(hi, 1.0)
        data = (data - lo) / np.float32(hi - lo)
    h, w = data.shape[-2:]
    k = max(1, math.ceil(max(h, w) / max_side))
    stride = max(1, math.ceil(math.sqrt(h * w / 1e6)))
    params = _preview_stf(data[..., ::stride, ::stride], linked=data.ndim == 2)
    chans = data if data.ndim == 3 else data[None]
    small = np.stack([_bin_mean(c, k) if k > 1 else c for c in chans])
    if data.ndim == 2:
        small = small[0]
    out = histogram_transform(
        small, [p[0] for p in params], [p[1] for p in params], [p[2] for p in params]
    )
    out = np.nan_to_num(out, nan=0.0)
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def master_png(name: str, image: Any) -> bytes:
    """PNG bytes of a master's auto-stretched preview."""
    from pxlang.image.png import encode_png

    text = {
        "Title": f"master {name} (STF auto-stretch preview)",
        "Software": f"pxlang {__version__}",
    }
    # zlib level 1: noisy previews shrink little more at 6 and take 4× longer.
    return encode_png(preview_samples(image), text, level=1)


def _load(path: Any) -> np.ndarray:
    from pxlang.image import io as image_io

    return image_io.load(os.fspath(path)).data


def _file_pixels_hash(path: str) -> str:
    """A hash of an image file's pixels: a FITS file's data unit as stored, read in chunks
    (no frame-sized copy in the process writing the report); other files by their pixels."""
    from pxlang.image import fits

    lay = None
    if path.lower().endswith((".fits", ".fit", ".fts")):
        with contextlib.suppress(Exception):  # unreadable here: hashed as loaded below
            lay = fits.layout(path)
    if lay is None or lay.offset is None:
        return _digest(_load(path))
    h = hashlib.sha256()
    h.update(f"{lay.dtype.str}{lay.file_shape}{lay.bzero}{lay.bscale}{lay.blank}".encode())
    left = int(np.prod(lay.file_shape)) * lay.dtype.itemsize
    with open(path, "rb") as fh:
        fh.seek(lay.offset)
        while left > 0:
            chunk = fh.read(min(left, 1 << 20))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def _file_png(name: str, path: str) -> bytes:
    """``master_png`` of an image file."""
    return master_png(name, _load(path))


def _draw_all(draws: list[Any], advance: Any) -> list[bytes]:
    """Every drawing's PNG bytes, on both cores (matplotlib holds the GIL: processes, not
    threads). The subframe plots (``subframes_png``) go to one process together: each process
    that draws one first imports matplotlib (~0.6 s, a plot ~0.3 s), while the previews are
    plain numpy (~0.05 s); from four plots on, both processes draw plots."""
    if len(draws) <= 1:
        images = [draw() for draw in draws]
        advance(len(draws))
        return images
    plots = [i for i, d in enumerate(draws) if getattr(d, "uses_matplotlib", False)]
    rest = [i for i in range(len(draws)) if i not in plots]
    warm = _draw_warm(draws, plots, rest, advance)
    if warm is not None:
        return warm
    batches = [b for b in (plots, rest) if b]
    if len(batches) == 1 or len(plots) >= 4:  # many plots: the import is worth paying twice
        batches = [plots[::2] + rest[::2], plots[1::2] + rest[1::2]]
    out: list[Any] = [None] * len(draws)
    _draw_batches(draws, batches, out, advance)
    return out


def _draw_batches(
    draws: list[Any], batches: list[list[int]], out: list[Any], advance: Callable[..., None]
) -> None:
    """``out[i] = draws[i]()`` for the indices of each batch, one batch per process."""
    from .executor import LocalExecutor

    batches = [b for b in batches if b]

    def run(k: int) -> list[bytes]:
        return [draws[i]() for i in batches[k]]

    for batch, images in zip(
        batches, LocalExecutor().map(run, len(batches), lambda n=1: None), strict=True
    ):
        for i, png in zip(batch, images, strict=True):
            out[i] = png
        advance(len(batch))


def _draw_warm(
    draws: list[Any], plots: list[int], rest: list[int], advance: Callable[..., None]
) -> list[Any] | None:
    """The plots by the run's plotting process (``plotter``: matplotlib already imported,
    the plots perhaps drawn ahead), the previews here meanwhile, on both cores; None when
    there is no such process."""
    from . import plotter

    pending = plotter.submit([draws[i].request for i in plots]) if plots else None
    if pending is None:
        return None
    out: list[Any] = [None] * len(draws)
    _draw_batches(draws, [rest[::2], rest[1::2]], out, advance)
    images = pending()
    if images is None:  # the process failed: draw the plots here
        images = [draws[i]() for i in plots]
    for i, png in zip(plots, images, strict=True):
        out[i] = png
    advance(len(plots))
    return out


def _filter_groups(frames: list[dict]) -> dict[str, list[dict]]:
    """The frames by filter as the workflow matches them ("Ha" and "HA" are one filter,
    named as first seen), each group in time order."""
    groups: dict[str, list[dict]] = {}
    spelling: dict[str, str] = {}
    for f in frames:
        name = str(f.get("filter") or "unknown")
        groups.setdefault(spelling.setdefault(name.strip().lower(), name), []).append(f)
    return {key: _time_order(group) for key, group in groups.items()}


def _subframes_request(
    filt: str, group: list[dict], reference: str | None, approve: str | None
) -> tuple[str, tuple, dict]:
    """The plotting request of one filter's subframe plot. The reference is passed only to
    the group that holds it (the plot is the same without): a plot drawn ahead before the
    run's reference was known is then the same request."""
    if _reference_index(group, reference) is None:
        reference = None
    return ("subframes_png", (filt, group), {"reference": reference, "approve": approve})


def draw_ahead(frames: list[dict], reference: str | None, approve: str | None) -> None:
    """Have the subframe plots of ``frames`` (rows as ``write_report`` takes them) drawn
    now by the run's plotting process, for the report that will ask for the same plots
    (``plotter.ahead``); nothing without a plotting process."""
    from . import plotter

    for filt, group in _filter_groups(frames).items():
        plotter.ahead(_subframes_request(filt, group, reference, approve))


def master_name(path: str) -> str:
    """A master's name in the report when it comes from a file: the file name without its
    extension."""
    return os.path.splitext(os.path.basename(path))[0]


def _matplotlib_job(name: str, *args: Any, **kwargs: Any) -> Any:
    """A drawing with matplotlib: the plotting function of this module called ``name``, with
    plain arguments — the same request goes to the plotting process when there is one."""

    def draw() -> bytes:
        return globals()[name](*args, **kwargs)

    draw.uses_matplotlib = True  # type: ignore[attr-defined]
    draw.request = (name, args, kwargs)  # type: ignore[attr-defined]
    return draw


# ----------------------------------------------------------------------------------------
# the report


def _digest(*parts: Any) -> str:
    """A content hash of JSON-able parts (arrays by their bytes, shape and type)."""
    h = hashlib.sha256(__version__.encode())
    for part in parts:
        if isinstance(part, np.ndarray) or hasattr(part, "data"):
            arr = np.ascontiguousarray(np.asarray(getattr(part, "data", part)))
            h.update(f"|{arr.dtype.str}{arr.shape}|".encode())
            h.update(memoryview(arr).cast("B"))
        else:
            text = json.dumps(_plain(part), sort_keys=True, ensure_ascii=False, allow_nan=False)
            h.update(b"|" + text.encode("utf-8"))
    return h.hexdigest()[:32]


def _bytes_hash(data: bytes) -> str:
    """The identity of a written plot: a hash of its bytes."""
    return hashlib.sha256(data).hexdigest()[:32]


def _file_hash(path: Path) -> str | None:
    """``_bytes_hash`` of a file's bytes; None when it cannot be read."""
    try:
        return _bytes_hash(path.read_bytes())
    except OSError:
        return None


def _previous(json_path: Path) -> dict[str, Any]:
    """The report.json of an earlier run (empty when missing or unreadable)."""
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


_STAGE_REASON = re.compile(r"(measure|select|register|normalize|drizzle)\b")


def write_report(
    output_dir: str,
    *,
    frames: list[dict],
    masters: list[dict],
    reference: str | None = None,
    approve: str | None = None,
    weight: str | None = None,
    extra: dict | None = None,
    skipped: list[dict] | None = None,
    options: Mapping[str, Any] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Write ``report.json`` and ``report/*.png`` under ``output_dir`` (see the module doc).

    Parameters
    ----------
    frames : one dict per light frame: ``path``, ``filter``, ``approved``, ``reason`` (why
        rejected, or None), ``weight``, ``properties`` (FWHM, Eccentricity, SNRWeight, Noise,
        Stars, Median, PSFSignalWeight…; missing or None when not measured), optional
        ``units`` ({"FWHM": "arcsec" or "px"}: labels the plot, and the summary's
        ``FWHMUnit``); an optional ISO ``date`` orders the plots.
    masters : one dict per master: ``name``, ``kind``, ``path``, ``frames``, ``rejection``
        ({"low": %, "high": %} or None), ``noise``, and optionally ``image`` (an array, an
        ``Image`` or the path of an image file, read when needed) for the preview.
    reference : path of the registration reference frame.
    approve, weight : the approval and weighting expressions used.
    extra : anything else to keep in the JSON.
    skipped : input files left out because they could not be read (``path``, ``reason``).
    options : run options (``quiet``) for the progress line of the plots drawn.
    force : draw every plot again, even those kept from an earlier report.

    Each plot is named in ``report.json`` with a hash of what it shows (``plot_keys``) and
    a hash of the PNG bytes written (``plot_files``); a re-run whose inputs are unchanged
    finds the same key and the PNG still exactly as written, and does not draw it again
    (nor import matplotlib), and leaves ``report.json`` untouched when nothing in it
    changed. A PNG that is missing or differs from what was written (damaged, replaced) is
    drawn again.

    Returns
    -------
    ``{"json": path of report.json, "plots": [paths of the PNG files], "drawn": [those
    written by this call]}``.
    """
    from .progress import stage

    out = Path(output_dir)
    plot_dir = out / "report"
    json_path = out / "report.json"
    frames = [dict(f) for f in (frames or [])]
    masters = [dict(m) for m in (masters or [])]
    skipped = [dict(s) for s in (skipped or [])]
    before = _previous(json_path)
    known = before.get("plot_keys") if isinstance(before.get("plot_keys"), dict) else {}
    written = before.get("plot_files") if isinstance(before.get("plot_files"), dict) else {}

    groups = _filter_groups(frames)
    taken: set[str] = set()

    def unique(stem: str) -> str:
        name, i = stem, 2
        while name.lower() in taken:  # two filters differing only in case or symbols
            name, i = f"{stem}_{i}", i + 1
        taken.add(name.lower())
        return name

    # (path, content key, drawing function) of every plot; drawn below only when changed
    jobs: list[tuple[Path, str, Any]] = []
    subframe_plots = {}
    for filt, group in groups.items():
        path = plot_dir / f"{unique('subframes_' + _safe_name(filt))}.png"
        name, args, kwargs = _subframes_request(filt, group, reference, approve)
        key = _digest("subframes", *args, kwargs["reference"], approve)
        jobs.append((path, key, _matplotlib_job(name, *args, **kwargs)))
        subframe_plots[filt] = path.relative_to(out).as_posix()
    for m in masters:
        image = m.pop("image", None)
        if image is None:
            continue
        path = plot_dir / f"{unique('master_' + _safe_name(m.get('name')))}.png"
        name = str(m.get("name"))
        if isinstance(image, (str, os.PathLike)):
            # a file: its pixels hashed here as stored, read where the preview is drawn
            key = _digest("master", name, {"pixels": _file_pixels_hash(os.fspath(image))})
            draw = functools.partial(_file_png, name, os.fspath(image))
        else:
            key = _digest("master", name, image)
            draw = functools.partial(master_png, name, image)
        jobs.append((path, key, draw))
        m["preview"] = path.relative_to(out).as_posix()

    plot_keys = {p.relative_to(out).as_posix(): k for p, k, _ in jobs}
    plot_files: dict[str, str] = {}  # relative path -> hash of the PNG bytes written
    todo = []
    for p, k, draw in jobs:
        rel = p.relative_to(out).as_posix()
        was = written.get(rel)
        # kept only when it shows the same and is exactly the file this report wrote
        if not force and known.get(rel) == k and isinstance(was, str) and _file_hash(p) == was:
            plot_files[rel] = was
        else:
            todo.append((p, draw))
    drawn = []
    with stage(options, "report", len(todo)) as advance:
        images = _draw_all([draw for _, draw in todo], advance)
        for (path, _), png in zip(todo, images):
            _write_atomic(path, png)
            plot_files[path.relative_to(out).as_posix()] = _bytes_hash(png)
            drawn.append(str(path))
    plot_files = {rel: plot_files[rel] for rel in plot_keys}  # in the plots' order

    counts = {
        "frames": len(frames),
        "approved": sum(1 for f in frames if f.get("approved")),
        # files that could not be read, and frames a stage could not use (no stars, no
        # match: their reason starts with the stage's name)
        "unreadable": sum(1 for sk in skipped if not _STAGE_REASON.match(str(sk.get("reason")))),
        "left_out": len(skipped),
    }
    counts["rejected"] = counts["frames"] - counts["approved"]
    doc = {
        "pxlang": __version__,
        "date": None,
        "reference": reference,
        "approve": approve,
        "weight": weight,
        "frames": frames,
        "masters": masters,
        "skipped": skipped,
        "counts": counts,
        "summary": _summary(groups),
        "plots": {"subframes": subframe_plots},
        "plot_keys": plot_keys,
        "plot_files": plot_files,
        "extra": extra,
    }
    doc = _plain(doc)
    # the run's outputs, whether written now or kept from a run that made the same
    for p in [json_path] + [p for p, _, _ in jobs]:
        runtrace.wrote(p)
    content = _digest("report", {k: v for k, v in doc.items() if k != "date"})
    if before.get("content") == content and not drawn:
        return {"json": str(json_path), "plots": [str(p) for p, _, _ in jobs], "drawn": []}
    doc["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    doc["content"] = content  # the hash a re-run compares with
    text = json.dumps(doc, indent=2, allow_nan=False, ensure_ascii=False) + "\n"
    _write_atomic(json_path, text.encode("utf-8"))
    return {"json": str(json_path), "plots": [str(p) for p, _, _ in jobs], "drawn": drawn}


__all__ = [
    "PREVIEW_MAX_SIDE",
    "approval_limits",
    "approval_thresholds",
    "draw_ahead",
    "master_name",
    "master_png",
    "preview_samples",
    "subframes_png",
    "write_report",
]
