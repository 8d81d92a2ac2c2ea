"""What made a file: the pxlang version and the script text, as HISTORY lines every writer uses.

One format for all writers: FITS/XISF write the lines as HISTORY keywords, TIFF puts them in
ImageDescription (with the rest of the header), PNG in a tEXt chunk, JPEG in its comment.

    HISTORY pxlang 0.1.0
    HISTORY pxlang source: Ha
    HISTORY pxlang params: k=0.5 lights='lights/*.fits'
    HISTORY pxlang text: Ha*k + OIII*~k
    HISTORY pxlang text+ (continuation of a text line longer than one card)

``parse_provenance`` reads them back.
"""

from __future__ import annotations

from typing import Any

from pxlang._version import __version__

# A FITS HISTORY card holds 72 characters after the keyword.
CARD_TEXT = 72
VERSION_LINE = f"pxlang {__version__}"
_SOURCE = "pxlang source: "
_PARAMS = "pxlang params: "
_TEXT = "pxlang text: "
_MORE = "pxlang text+ "


def _ascii(text: str) -> str:
    # FITS headers are printable ASCII: escape the rest rather than fail the write.
    text = text.expandtabs(4).encode("ascii", "backslashreplace").decode("ascii")
    return "".join(ch if 32 <= ord(ch) < 127 else " " for ch in text)


def _chunks(prefix: str, more: str, text: str) -> list[str]:
    # Cards lose trailing blanks on reading, so a chunk never ends in a blank: the blanks go
    # to the start of the next chunk, where they survive.
    text = _ascii(text).rstrip()
    out: list[str] = []
    head = prefix
    while True:
        width = CARD_TEXT - len(head)
        if len(text) <= width:
            out.append(head + text)
            return out
        cut = width
        while cut > 1 and text[cut - 1] == " ":
            cut -= 1
        out.append(head + text[:cut])
        text = text[cut:]
        head = more


def _format_param(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def provenance_lines(provenance: dict[str, Any] | None = None) -> list[str]:
    """The HISTORY lines (each at most 72 ASCII characters) for one write.

    The first line is always ``pxlang <version>``; ``provenance`` may add ``source`` (a
    name), ``params`` (a mapping) and ``text`` (script or expression text, kept line by line).
    """
    lines = [VERSION_LINE]
    prov = provenance or {}
    source = prov.get("source")
    if source:
        lines += _chunks(_SOURCE, _SOURCE, str(source))
    params = prov.get("params")
    if params:
        text = " ".join(f"{k}={_format_param(v)}" for k, v in dict(params).items())
        lines += _chunks(_PARAMS, _PARAMS, text)
    text = prov.get("text")
    if text:
        for line in str(text).rstrip("\n").splitlines():
            lines += _chunks(_TEXT, _MORE, line.rstrip())
    return lines


def stamp_header(header: Any, provenance: dict[str, Any] | None = None) -> Any:
    """Add ``PXVERSN`` and the provenance HISTORY lines to an astropy Header, in place."""
    if "PXVERSN" in header:  # an earlier write's (possibly damaged) card goes
        header.remove("PXVERSN", remove_all=True)
    header["PXVERSN"] = (__version__, "pxlang version that wrote this file")
    for line in provenance_lines(provenance):
        header.add_history(line)
    return header


def parse_provenance(lines: list[str]) -> list[dict[str, Any]]:
    """The writes recorded in HISTORY lines, oldest first.

    Each entry: ``{"version": str, "source": str | None, "params": str | None, "text": str}``
    (params stay as written: they are for people to read).
    """
    writes: list[dict[str, Any]] = []
    text_lines: list[str] = []
    for raw in lines:
        line = str(raw).rstrip()
        if line.startswith("pxlang ") and not line.startswith((_SOURCE, _PARAMS, _TEXT, _MORE)):
            if writes:
                writes[-1]["text"] = "\n".join(text_lines)
            text_lines = []
            writes.append({"version": line[7:], "source": None, "params": None, "text": ""})
        elif not writes:
            continue
        elif line.startswith(_SOURCE):
            prev = writes[-1]["source"] or ""
            writes[-1]["source"] = prev + line[len(_SOURCE) :]
        elif line.startswith(_PARAMS):
            prev = writes[-1]["params"] or ""
            writes[-1]["params"] = prev + line[len(_PARAMS) :]
        elif line.startswith(_TEXT):
            text_lines.append(line[len(_TEXT) :])
        elif line.startswith(_MORE) and text_lines:
            text_lines[-1] += line[len(_MORE) :]
    if writes:
        writes[-1]["text"] = "\n".join(text_lines)
    return writes
