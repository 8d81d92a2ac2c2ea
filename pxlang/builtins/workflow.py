"""Built-ins that glue whole workflows together: paths, grouping by header, logging, reports."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from .. import runtrace
from ..image.frameset import FrameSet, cached_header, header_value
from ..image.store import Image
from ..lang.errors import PxRuntimeError, PxTypeError
from ..lang.functions import CallContext, TextNumber
from .registry import builtin

CAT = "workflow"


@builtin("path", category=CAT, example='path("out", "masters", "bias.fits")')
def path(*parts: str) -> str:
    """Join folder and file names with the system's separator."""
    if not parts:
        raise PxTypeError("path() needs at least one part")
    return os.path.join(*[str(p) for p in parts])


# separators and the characters Windows forbids in a name, and control characters
_UNSAFE_IN_NAME = re.compile(r'[\\/:*?"<>|\x00-\x1f]+')


@builtin("file_name", category=CAT, example='file_name("Ha/OIII") + ".fits"')
def file_name(text: str) -> str:
    """A file name made of any text: path separators and characters a file system forbids
    become "_" (a dual-band FILTER "Ha/OIII" gives "Ha_OIII", not a folder "Ha")."""
    name = _UNSAFE_IN_NAME.sub("_", str(text)).strip(" .")
    return name or "_"


@builtin("without_extension", category=CAT, example='without_extension("out/m42.png")')
def without_extension(path: str) -> str:
    """A path without its image-file extension (.fits, .fit, .fts, .xisf, .png, .tif,
    .tiff, .jpg, .fits.gz; any case), to write one image in several formats; other paths
    as given."""
    from ..image import io

    return io.without_extension(str(path))


def _frames(value: Any, fname: str) -> FrameSet:
    if isinstance(value, FrameSet):
        return value
    raise PxTypeError(f"{fname}(): expects a frame set (files(…)), got {type(value).__name__}")


@builtin("keyword_values", category=CAT, example='keyword_values(files("lights/"), "FILTER")')
def keyword_values(frames: FrameSet, keyword: str) -> list:
    """The distinct values of a header keyword across frames, in first-seen order (e.g. the
    filters of a night: ``for f in keyword_values(lights, "FILTER") { … }``). Frames without
    the keyword are left out."""
    fs = _frames(frames, "keyword_values")
    seen: dict[str, Any] = {}
    for i in range(len(fs)):
        v = header_value(fs.header(i), keyword)
        if v is None or str(v).strip() == "":
            continue
        value = (
            float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v).strip()
        )
        seen.setdefault(str(value).lower(), value)
    return list(seen.values())


@builtin("count", category=CAT, example='count(files("bias/"))')
def count(items: Any) -> float:
    """How many frames a frame set holds (or items a list)."""
    try:
        return float(len(items))
    except TypeError:
        raise PxTypeError("count(): expects a frame set or a list") from None


@builtin(
    "best", category=CAT, example='best(select(measure(files("lights/")), approve="FWHM < 10"))'
)
def best(frames: FrameSet) -> Image:
    """The best frame of a selection (highest weight; the registration reference) as an image."""
    fs = _frames(frames, "best")
    if len(fs) == 0:
        raise PxTypeError("best(): the frame set is empty")
    weights = [f.meta.get("weight") for f in fs.frames]
    flagged = [i for i, f in enumerate(fs.frames) if f.meta.get("best")]
    if flagged:
        i = flagged[0]
    elif any(w is not None for w in weights):
        i = max(range(len(fs)), key=lambda k: weights[k] if weights[k] is not None else -1.0)
    else:
        i = 0
    img = fs.read(i)
    table = fs.frames[i].meta.get("star_table")
    if isinstance(table, dict) and table.get("key") == fs.content_key(i):
        img.stars = table  # measure()'s stars of these pixels, for register()
    return img


def _text(values: tuple[Any, ...]) -> str:
    """Values as a line: numbers as %g (a command-line number as typed), objects described."""

    def one(v: Any) -> str:
        if isinstance(v, float) and not isinstance(v, TextNumber):
            return f"{v:g}"
        describe = getattr(v, "describe", None)
        return describe() if describe else str(v)

    return " ".join(one(v) for v in values)


@builtin("print", category=CAT, example='print("calibrating", 3, "filters")')
def print_(ctx: CallContext, *values: Any) -> None:
    """Print a line of information (silent with --quiet)."""
    from ..run.progress import log as _log

    _log(ctx.options, _text(values))


@builtin("warning", category=CAT, example='warning("no flats for", "Ha")')
def warning(ctx: CallContext, *values: Any) -> None:
    """Print a warning (shown even with --quiet)."""
    ctx.warning(_text(values))


@builtin(
    "error",
    category=CAT,
    example='if !exists("flats/") { error("no flats in", "flats/", "- add them first") }',
)
def error(ctx: CallContext, *values: Any) -> None:
    """Stop the script with this message, at this line (the command exits with status 1)."""
    raise PxRuntimeError(_text(values), ctx.span)


@builtin("lower", category=CAT, example='lower("SHO") == "sho"')
def lower(text: str) -> str:
    """The text in lower case: compare names as users type them ("sho", "SHO", "Sho")."""
    return text.lower()


@builtin("exists", category=CAT, example='exists("bias/")')
def exists(ctx: CallContext, name: str) -> float:
    """1 if the file or folder exists (relative to the script's folder), else 0."""
    path = ctx.resolve_path(name)
    found = os.path.exists(path)
    runtrace.listed("exists", path, found)
    return float(found)


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _filter_of(header: Any) -> str:
    if header is None:
        return "?"
    if header_value(header, "BAYERPAT"):
        return "RGB"
    return str(header_value(header, "FILTER") or "none").strip() or "none"


def _frame_rows(
    measured: Any, selected: Any, reference: Any = None
) -> tuple[list[dict], str | None, dict[str, str]]:
    """The report's rows of the frames measure() saw (``measured``) with select()'s verdicts
    (``selected``): one dict per frame (path, filter, date, approved, reason, weight,
    properties, units); the registration reference (``reference`` when a path, else the
    first frame select() made best); and {path: why} of the input files left out."""
    chosen: dict[str, dict] = {}
    for fs in _as_list(selected):
        fs = _frames(fs, "report")
        for i, f in enumerate(fs.frames):
            chosen[fs.name(i)] = {"weight": f.meta.get("weight"), "best": f.meta.get("best")}
        for verdict in getattr(fs, "selection", None) or []:
            chosen.setdefault(verdict["path"], {}).update(verdict)
    frames = []
    ref_path = reference if isinstance(reference, str) else None
    skipped: dict[str, str] = {}  # files the frame sets left out, and why
    for fs in _as_list(measured) + _as_list(selected):
        for path, reason in getattr(_frames(fs, "report"), "skipped", ()):
            skipped.setdefault(path, reason)
    for fs in _as_list(measured):
        fs = _frames(fs, "report")
        for i, f in enumerate(fs.frames):
            name = fs.name(i)
            v = chosen.get(name, {})
            approved = v.get("approved", name in chosen and "weight" in v)
            props = {
                k: f.meta.get("measure", {}).get(k)
                for k in (
                    "FWHM",
                    "Eccentricity",
                    "SNRWeight",
                    "Noise",
                    "Stars",
                    "Median",
                    "PSFSignalWeight",
                )
            }
            frames.append(
                {
                    "path": name,
                    "filter": _filter_of(fs.header(i)),
                    "date": str(header_value(fs.header(i), "DATE-OBS") or "") or None,
                    "approved": bool(approved),
                    "reason": None if approved else (v.get("reason") or "not approved"),
                    "weight": v.get("weight"),
                    "properties": props,
                    # FWHM is in arcseconds when the pixel scale is known (XPIXSZ and
                    # FOCALLEN, or measure(scale=)), else in pixels
                    "units": {"FWHM": f.meta.get("fwhm_unit", "px")},
                }
            )
            if v.get("best") and ref_path is None:
                ref_path = name
    if frames and not all(fr["date"] for fr in frames):
        for fr in frames:
            fr.pop("date")
    return frames, ref_path, skipped


def report_ahead(measured: FrameSet, selected: FrameSet, approve: str) -> None:
    """Have select()'s subframe plot drawn now for the report at the end of the run
    (``report.draw_ahead``), when the run has a plotting process (its script writes a
    report). The guess of the report's request: its frames as here, and as the reference
    the best frame of the run's first selection (``best(selected[0])`` in the stock
    workflow); a different request is drawn at the report, as without this."""
    from ..run import plotter
    from ..run.report import draw_ahead

    if not plotter.running():
        return
    frames, best, _ = _frame_rows(measured, selected)
    draw_ahead(frames, plotter.note("reference", best), approve)


def _warm_plots() -> Callable[[], None]:
    from ..run import plotter

    plotter.start()  # matplotlib imported while the run works (the report comes last)
    return plotter.stop


@builtin(
    "report",
    category=CAT,
    example='report("out", measured=[measure(files("lights/"))])',
    prepare=_warm_plots,
)
def report(
    ctx: CallContext,
    output: str,
    measured: Any = None,
    selected: Any = None,
    masters: Any = None,
    reference: Any = None,
    approve: str | None = None,
    weight: str | None = None,
) -> str:
    """Write OUTPUT/report.json and OUTPUT/report/*.png: per frame its filter, measured
    properties (FWHM, Eccentricity, SNRWeight…), approved or why not, and weight; per master
    (file paths or images) its frame count, rejection percentages and noise; plots of the
    subframe properties with the rejected frames marked, and a stretched preview of each
    master. ``measured``/``selected`` are frame sets (or lists of them) from measure()/select().
    Input files left out (unreadable, or unusable by a stage: no stars, no match) are listed
    (``skipped``) and counted (``counts``: unreadable, left_out).
    Plots whose inputs are unchanged since the last report are not drawn again."""
    from ..run.report import master_name, write_report

    out_dir = ctx.resolve_path(output)
    frames, ref_path, skipped = _frame_rows(measured, selected, reference)
    rows = []
    for m in _as_list(masters):
        # a master file: its header now, its pixels one at a time by the report (hashed,
        # then drawn by the process that draws its preview), not all the masters at once
        # in this process (7 of them at 2048²: 112 MB at the end of a run)
        img = m if isinstance(m, Image) else None
        path = img.path if img is not None else ctx.resolve_path(str(m))
        h = img.header if img is not None else cached_header(path)
        name = img.name if img is not None else master_name(path)
        name = name or "master"
        lo, hi = header_value(h, "REJLOPCT"), header_value(h, "REJHIPCT")
        rows.append(
            {
                "name": name,
                "kind": str(header_value(h, "IMAGETYP") or "master"),
                "path": path or str(m),
                "frames": header_value(h, "NCOMBINE"),
                "rejection": None if lo is None else {"low": float(lo), "high": float(hi or 0)},
                "noise": header_value(h, "NOISEEST"),
                "image": img.data if img is not None else path,
            }
        )
    try:
        paths = write_report(
            out_dir,
            frames=frames,
            masters=rows,
            reference=ref_path,
            approve=approve,
            weight=weight,
            skipped=[{"path": p, "reason": r} for p, r in skipped.items()],
            options=ctx.options,
        )
    except OSError as e:
        from ..lang.errors import PxIOError

        raise PxIOError(f"cannot write the report in {output}: {e}") from e
    return paths["json"]
