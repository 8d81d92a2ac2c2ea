"""Skipping a run that has nothing to do, as ``make`` does.

After a workflow run that ends well, what it depended on is kept in the cache folder
(``runs/<key>.json``; the key hashes the pxlang version, the script's path and text, its
parameters and the options that change results): the stamp (size, modification time) of
every file it read, what every folder listing and existence test it made gave, the stamp of
every file it wrote, and the lines it printed. The next run with the same key checks those
first; when every file read is unchanged, every listing gives the same files and every
output is still there as written, the run's work is already done: its lines are shown
again and nothing else happens. Anything different (a light added, a file touched, an
output deleted, another parameter) runs the script, and its steps still reuse their own
cached results (``builtins/preprocess.py``). Files are identified as the step cache
identifies them (path, size, mtime). Runs that used random numbers without a seed or opened
a viewer are not kept (``runtrace.volatile``).

This module and what it imports use the standard library only (beside ``import pxlang``
itself, which brings numpy): an up-to-date run imports no astropy, scipy or numba and takes
~0.1 s.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import secrets
import time
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from .. import runtrace
from .._version import __version__
from ..image.listing import image_files

_FORMAT = 1  # bump when what a record means changes
# options that change what a run makes (a run with cache=False is not recorded at all)
RESULT_OPTIONS = ("seed", "truncate")


def cache_root(options: Mapping[str, Any] | None, base_dir: str) -> str:
    """A run's cache folder: the ``cache_dir`` option, else $PXLANG_CACHE, else
    ``.pxlang-cache`` in the folder the run's relative paths start from."""
    opt = (options or {}).get("cache_dir")
    if opt:
        return str(opt)
    return os.environ.get("PXLANG_CACHE") or os.path.join(base_dir, ".pxlang-cache")


STALE_TEMP = 3600.0  # s without a write: a temporary file no live run is writing


def sweep_temp(root: str, older_than: float = STALE_TEMP) -> int:
    """Remove the temporary files (``*.tmp``) a killed run left in the cache folder ``root``
    (``frames/``, ``runs/``): each is written to steadily and renamed when whole, so one not
    written to for ``older_than`` seconds belongs to no live run, even one on another
    machine sharing the folder. Returns how many were removed."""
    removed, now = 0, time.time()
    for sub in ("frames", "runs"):
        try:
            entries = list(os.scandir(os.path.join(root, sub)))
        except OSError:
            continue
        for e in entries:
            if not e.name.endswith(".tmp"):
                continue
            with suppress(OSError):
                if now - e.stat().st_mtime > older_than:
                    os.remove(e.path)
                    removed += 1
    return removed


def run_key(
    text: str,
    path: str | None,
    params: Mapping[str, Any] | None,
    options: Mapping[str, Any],
    base_dir: str,
) -> str:
    """What names one run: pxlang's version, the script (path and text), the folder its
    relative paths start from, its parameters and the options that change its results (not
    ``quiet``, not where it computes)."""
    what = {
        "format": _FORMAT,
        "version": __version__,
        "script": os.path.abspath(path) if path else None,
        "base": os.path.abspath(base_dir),
        "text": text,
        "params": {str(k): repr(v) for k, v in sorted((params or {}).items())},
        "options": {k: repr(options.get(k)) for k in RESULT_OPTIONS},
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


def _record_path(root: str, key: str) -> str:
    return os.path.join(root, "runs", f"{key[:32]}.json")


def _listing(kind: str, path: str) -> Any:
    """What a listing of ``kind`` gives now (as ``runtrace.Trace.listed`` records it)."""
    if kind == "exists":
        return os.path.exists(path)
    if kind == "tree":
        return [os.path.abspath(p) for p in image_files(path)[0]]
    if kind == "glob":
        return [os.path.abspath(p) for p in sorted(glob.glob(path))]
    return None  # a kind this version does not know: never equal to a record


def unchanged(root: str, key: str) -> dict[str, Any] | None:
    """The record of the last run with this key when nothing it depended on changed since;
    None otherwise (no record, an unreadable one, or any difference)."""
    try:
        with open(_record_path(root, key), encoding="utf-8") as fh:
            record = json.load(fh)
        if record.get("key") != key:
            return None
        for path, st in record["reads"].items():
            if runtrace.stamp(path) != st:
                return None
        for item, result in record["listings"].items():
            kind, _, path = item.partition(":")
            if _listing(kind, path) != result:
                return None
        for path, st in record["writes"].items():
            if st is None or runtrace.stamp(path) != st:
                return None
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        return None
    return record


def keep(root: str, key: str, trace: runtrace.Trace) -> None:
    """Record a run that ended well (not one that was volatile). A record that cannot be
    written only means the next run does its work again."""
    if trace.volatile is not None:
        return
    record = {
        "key": key,
        "finished": time.time(),
        "reads": trace.reads,
        "listings": trace.listings,
        "writes": {p: runtrace.stamp(p) for p in sorted(trace.writes)},
        "said": trace.said,
    }
    path = _record_path(root, key)
    tmp = f"{path}.{secrets.token_hex(4)}.tmp"
    with suppress(OSError):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(record, fh)
        os.replace(tmp, path)
    with suppress(OSError):
        os.unlink(tmp)


def summary(record: Mapping[str, Any]) -> str:
    """The line an up-to-date run prints."""
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.get("finished", 0)))
    return (
        f"up to date: the {len(record['reads'])} files it reads and the folders it lists are "
        f"unchanged since its run of {when}, and its {len(record['writes'])} outputs are "
        "there as written (--force runs it again)"
    )
