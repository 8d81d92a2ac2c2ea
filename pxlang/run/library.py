"""A calibration library: master bias/dark/flat files indexed by what they were taken with.

The index is a JSON file: ``$PXLANG_LIBRARY`` if set, else ``library.json`` in the user's
data folder (platformdirs), or a path given (a file, or a folder holding ``library.json``).
``add`` scans folders for masters (any FITS/XISF whose IMAGETYP is a bias, dark, flat or
flat-dark), ``choose`` picks the master that fits a light frame's header:

- same camera settings: GAIN, OFFSET, binning, image size (and FILTER for flats);
- darks: the closest EXPTIME, preferring an equal one (others are scaled by calibrate);
- then the closest CCD-TEMP, then the newest.

Staleness follows the guide, as warnings: bias and darks older than 6 months (cooled
cameras keep them 4-6 months), a dark or bias more than 5 C from the lights (uncooled
cameras), flats older than 2 months (or any change of the optical train).

``main(argv)`` implements ``pxlang library add DIR...`` and ``pxlang library list``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from pxlang import runtrace
from pxlang.lang.errors import PxError, PxIOError

KINDS = ("bias", "dark", "flat", "darkflat")
MAX_AGE_DAYS = {"bias": 183, "dark": 183, "darkflat": 61, "flat": 61}
MAX_TEMP_DIFF = 5.0
INDEX_NAME = "library.json"


def index_path(path: str | None = None) -> str:
    """The index file: ``path`` (file or folder), else $PXLANG_LIBRARY, else the data folder."""
    if path is None:
        path = os.environ.get("PXLANG_LIBRARY")
    if path is None:
        import platformdirs

        path = os.path.join(platformdirs.user_data_dir("pxlang"), INDEX_NAME)
    path = os.path.expanduser(path)
    if os.path.isdir(path) or not path.lower().endswith(".json"):
        path = os.path.join(path, INDEX_NAME)
    return path


def _load(path: str) -> dict[str, Any]:
    found = os.path.exists(path)
    runtrace.listed("exists", path, found)
    runtrace.read(path)
    if not found:
        return {"version": 1, "masters": []}
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise PxIOError(f"cannot read the calibration library '{path}': {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("masters"), list):
        raise PxIOError(f"'{path}' is not a pxlang calibration library index")
    return data


def _save(path: str, data: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)


def _num(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _date(header: Any, path: str) -> str:
    from pxlang.image.frameset import header_value

    value = header_value(header, "DATE-OBS") or header_value(header, "DATE")
    if value:
        try:
            return dt.datetime.fromisoformat(str(value).strip().replace("Z", "")).isoformat()
        except ValueError:
            pass
    return dt.datetime.fromtimestamp(os.path.getmtime(path)).isoformat(timespec="seconds")


def describe_header(header: Any, path: str | None = None) -> dict[str, Any]:
    """The matching properties of a frame or master header."""
    from pxlang.image.frameset import header_value, normalise_imagetyp

    xb = _num(header_value(header, "XBINNING")) or 1
    yb = _num(header_value(header, "YBINNING")) or xb
    filt = header_value(header, "FILTER")
    entry = {
        "imagetyp": normalise_imagetyp(header_value(header, "IMAGETYP") or ""),
        "exptime": _num(header_value(header, "EXPTIME")),
        "gain": _num(header_value(header, "GAIN")),
        "offset": _num(header_value(header, "OFFSET")),
        "binning": f"{int(xb)}x{int(yb)}",
        "filter": None if filt is None else str(filt).strip(),
        "ccd_temp": _num(header_value(header, "CCD-TEMP")),
        "size": f"{header.get('NAXIS1', '?')}x{header.get('NAXIS2', '?')}",
        "bayerpat": header_value(header, "BAYERPAT"),
    }
    if path is not None:
        entry["path"] = os.path.abspath(path)
        entry["date"] = _date(header, path)
    return entry


def add(dirs: list[str], path: str | None = None) -> list[dict[str, Any]]:
    """Index every master found in ``dirs`` (recursively); returns the entries added."""
    from pxlang.image import io
    from pxlang.image.listing import IMAGE_EXTENSIONS

    ipath = index_path(path)
    data = _load(ipath)
    known = {m["path"] for m in data["masters"]}
    added = []
    for d in dirs:
        if not os.path.isdir(d):
            raise PxIOError(f"'{d}' is not a folder", hint="pxlang library add takes folders")
        for root, subdirs, names in os.walk(d):
            subdirs[:] = sorted(s for s in subdirs if not s.startswith("."))
            for name in sorted(names):
                if not name.lower().endswith(IMAGE_EXTENSIONS) or name.startswith("."):
                    continue
                full = os.path.abspath(os.path.join(root, name))
                try:
                    header = io.read_header(full)
                except PxError:
                    continue
                entry = describe_header(header, full)
                if entry["imagetyp"] not in KINDS:
                    continue
                if full in known:
                    data["masters"] = [m for m in data["masters"] if m["path"] != full]
                data["masters"].append(entry)
                known.add(full)
                added.append(entry)
    _save(ipath, data)
    return added


def list_masters(path: str | None = None) -> list[dict[str, Any]]:
    """Every master in the library index."""
    return list(_load(index_path(path))["masters"])


def _age_days(entry: dict[str, Any], now: dt.datetime) -> float | None:
    try:
        made = dt.datetime.fromisoformat(entry["date"])
        return abs((now - made.replace(tzinfo=None)).total_seconds()) / 86400.0
    except (KeyError, TypeError, ValueError):
        return None


def _observed(header: Any) -> dt.datetime | None:
    from pxlang.image.frameset import header_value

    value = header_value(header, "DATE-OBS") if header is not None else None
    try:
        return dt.datetime.fromisoformat(str(value)).replace(tzinfo=None) if value else None
    except ValueError:
        return None


def choose(
    kind: str,
    light_header: Any,
    path: str | None = None,
    *,
    warn: Callable[[str], None] | None = None,
    need: bool = True,
    now: dt.datetime | None = None,
) -> str | None:
    """The path of the best master of ``kind`` for frames with this header (module doc).

    With ``need`` a missing master is an error saying what was looked for; else None.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    warn = warn or (lambda m: None)
    want = describe_header(light_header)
    ipath = index_path(path)
    masters = [m for m in _load(ipath)["masters"] if m.get("imagetyp") == kind]

    def same(a: Any, b: Any) -> bool:
        return a is None or b is None or a == b

    fits = [
        m
        for m in masters
        if same(m.get("gain"), want["gain"])
        and same(m.get("offset"), want["offset"])
        and m.get("binning", "1x1") == want["binning"]
        and m.get("size") == want["size"]
        and (
            kind not in ("flat",)
            or want["filter"] is None
            or str(m.get("filter") or "").lower() == want["filter"].lower()
        )
    ]
    if not fits:
        if not need:
            return None
        looked = [f"IMAGETYP={kind}", f"GAIN={want['gain']}", f"OFFSET={want['offset']}"]
        looked += [f"binning {want['binning']}", f"size {want['size']}"]
        if kind == "flat" and want["filter"]:
            looked.append(f"FILTER={want['filter']}")
        if kind == "dark" and want["exptime"] is not None:
            looked.append(f"EXPTIME={want['exptime']:g}")
        held = ", ".join(
            f"{m['imagetyp']} {os.path.basename(m['path'])}"
            f" (GAIN={m.get('gain')}, {m.get('binning')}, {m.get('size')}"
            + (f", FILTER={m.get('filter')}" if m.get("filter") else "")
            + ")"
            for m in _load(ipath)["masters"][:12]
        )
        raise PxError(
            f"no master {kind} in the calibration library '{ipath}' for "
            + ", ".join(looked)
            + f"; it holds: {held or 'nothing'}",
            hint="add masters with: pxlang library add FOLDER",
        )
    # age counts from the night of the lights (DATE-OBS), not from today: re-processing an
    # old night with its own masters is right; masters made after the lights count too
    now = now or _observed(light_header) or dt.datetime.now()
    t_light = want["exptime"]
    temp = want["ccd_temp"]

    def rank(m: dict[str, Any]) -> tuple:
        exp_diff = 0.0
        if kind == "dark" and t_light is not None and m.get("exptime") is not None:
            exp_diff = abs(m["exptime"] - t_light)
        temp_diff = abs(m["ccd_temp"] - temp) if temp is not None and m.get("ccd_temp") else 0.0
        age = _age_days(m, now)
        return (exp_diff, temp_diff, age if age is not None else 1e9)

    best = min(fits, key=rank)
    name = best["path"]
    age = _age_days(best, now)
    if age is not None and age > MAX_AGE_DAYS[kind]:
        months = age / 30.4
        rule = (
            "flats should be replaced every 1-2 months or when the optical train changes"
            if kind in ("flat", "darkflat")
            else "bias and darks keep 4-6 months with a cooled camera"
        )
        warn(f"master {kind} '{name}' is {months:.1f} months old: {rule}")
    if temp is not None and best.get("ccd_temp") is not None:
        if abs(best["ccd_temp"] - temp) > MAX_TEMP_DIFF and kind != "flat":
            warn(
                f"master {kind} '{name}' was taken at {best['ccd_temp']:g} C, the lights at "
                f"{temp:g} C: replace it when conditions change by more than 5 C"
            )
    return name


def load_master(path: str | None) -> Any:
    """The master image at ``path`` (None stays None)."""
    if path is None:
        return None
    from pxlang.image import io

    return io.load(path)


def main(argv: list[str]) -> int:
    """``pxlang library add DIR... [--library PATH]`` / ``pxlang library list [--library PATH]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="pxlang library", description="calibration library")
    parser.add_argument("--library", help="index file or folder (default: $PXLANG_LIBRARY "
                        "or the user data folder)")  # fmt: skip
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_add = sub.add_parser("add", help="index the masters found in folders")
    p_add.add_argument("dirs", nargs="+")
    sub.add_parser("list", help="list the masters")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "add":
            added = add(args.dirs, args.library)
            print(f"added {len(added)} master(s) to {index_path(args.library)}")
            for m in added:
                print("  " + _row(m))
            return 0
        masters = list_masters(args.library)
        print(f"{len(masters)} master(s) in {index_path(args.library)}")
        for m in sorted(masters, key=lambda m: (m["imagetyp"], m.get("date", ""))):
            print("  " + _row(m))
        return 0
    except PxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _row(m: dict[str, Any]) -> str:
    parts = [f"{m['imagetyp']:<8}", m.get("date", "")[:10]]
    if m.get("exptime") is not None:
        parts.append(f"{m['exptime']:g}s")
    if m.get("gain") is not None:
        parts.append(f"gain {m['gain']:g}")
    if m.get("filter"):
        parts.append(f"filter {m['filter']}")
    if m.get("ccd_temp") is not None:
        parts.append(f"{m['ccd_temp']:g}C")
    parts.append(f"{m.get('binning')} {m.get('size')}")
    parts.append(m["path"])
    return "  ".join(parts)
