"""The header of a PixelMath result: the first operand's keywords (as PixInsight's PixelMath
keeps its target's), made true of the new image.

- The noise estimate of an operand (NOISEEST, PXPOISK…) describes its pixels, not the
  result's: dropped.
- Masters of several filters combined (a palette, a synthetic luminance) are no longer of
  one filter: FILTER is dropped and a HISTORY line names the filters; the frame count and
  total exposure become the sums over the masters (the integration time imagers quote); the
  mean exposure and one stack's rejection figures, which no longer apply, are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_PIXEL_STATISTICS = ("NOISEEST", "PXPOISK", "PXPOISK0", "PXPOISK1", "PXPOISK2")
_ONE_STACK = ("EXPTIME", "REJLOPCT", "REJHIPCT", "PXREJKEY")
_SUMMED = ("NCOMBINE", "TOTALEXP")


def result_header(first: Any, operands: Sequence[Any] = ()) -> Any:
    """A copy of ``first`` (an astropy Header or None) fitted to a result computed from the
    images whose headers are ``operands`` (``first`` among them)."""
    if first is None:
        return None
    header = first.copy()
    for key in _PIXEL_STATISTICS:
        header.remove(key, ignore_missing=True, remove_all=True)
    distinct: list[Any] = []
    for h in operands or (first,):
        if h is not None and not any(h is d for d in distinct):
            distinct.append(h)
    filters: dict[str, str] = {}
    for h in distinct:
        value = h.get("FILTER")
        if value is not None and str(value).strip():
            filters.setdefault(str(value).strip().lower(), str(value).strip())
    if len(filters) < 2:
        return header
    header.remove("FILTER", ignore_missing=True, remove_all=True)
    for key in _ONE_STACK:
        header.remove(key, ignore_missing=True, remove_all=True)
    # one master per filter: a filter's master used twice (HOO's OIII) counts once
    per_filter = {}
    for h in distinct:
        name = str(h.get("FILTER") or "").strip().lower()
        if name:
            per_filter.setdefault(name, h)
    for key in _SUMMED:
        values = [h.get(key) for h in per_filter.values()]
        if values and all(isinstance(v, (int, float)) for v in values):
            total = sum(values)
            header[key] = int(total) if key == "NCOMBINE" else float(total)
        else:
            header.remove(key, ignore_missing=True, remove_all=True)
    header.add_history("pxlang: combined from filters " + ", ".join(filters.values()))
    return header
