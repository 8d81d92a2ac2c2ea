"""Looking at images while working: ``show`` (an auto-stretched PNG preview, opened in a
viewer when there is one) and ``whos`` (the images in scope with their statistics)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import runtrace
from ..image.store import Image
from ..lang.functions import CallContext
from .registry import builtin

PREVIEW_ENV = "PXLANG_PREVIEW_DIR"  # where previews go (default: <temp>/pxlang-preview)
VIEWER_ENV = "PXLANG_VIEWER"  # a command to open them with (default: xdg-open / open)


def preview_dir() -> str:
    import tempfile

    folder = os.environ.get(PREVIEW_ENV) or os.path.join(tempfile.gettempdir(), "pxlang-preview")
    os.makedirs(folder, exist_ok=True)
    return folder


def viewer_command() -> list[str] | None:
    """How to open a file: $PXLANG_VIEWER, else ``open`` on macOS, else ``xdg-open`` when a
    display is available (never on a headless machine)."""
    import shlex
    import shutil
    import sys

    custom = os.environ.get(VIEWER_ENV)
    if custom:
        return shlex.split(custom)
    if sys.platform == "darwin" and shutil.which("open"):
        return ["open"]
    has_display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if has_display and shutil.which("xdg-open"):
        return ["xdg-open"]
    return None


_VIEWERS: list[Any] = []  # started viewers, reaped when they end (no zombies, no warnings)


def open_viewer(path: str) -> bool:
    """Start a viewer on ``path`` without waiting for it; False when there is none."""
    import subprocess

    _VIEWERS[:] = [p for p in _VIEWERS if p.poll() is None]
    cmd = viewer_command()
    if not cmd:
        return False
    import shutil

    sh = shutil.which("sh") if os.name == "posix" else None
    try:
        if sh:
            # started through a shell that returns at once: the viewer is nobody's child
            # here (no zombie, no "still running" warning when pxlang exits before it)
            subprocess.run(
                [sh, "-c", '"$@" </dev/null >/dev/null 2>&1 &', "sh", *cmd, path],
                start_new_session=True,  # Ctrl-C in the REPL must not reach the viewer
                check=True,
                timeout=10,
            )
            return True
        proc = subprocess.Popen(
            [*cmd, path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    _VIEWERS.append(proc)
    return True


@builtin(
    "show",
    category="files",
    aliases=("preview",),
    example='show(Ha, path="Ha_preview.png", view=false)',
    pixinsight="ScreenTransferFunction auto-stretch (a preview, the image is unchanged)",
    siril="autostretch + savepng",
)
def show(ctx: CallContext, image: Image, path: str | None = None, view: bool = True) -> str:
    """Write an auto-stretched 8-bit PNG preview of an image (PixInsight's STF auto-stretch,
    linked for colour) and return its path; the image itself is unchanged. Without ``path``
    the file goes to the preview folder ($PXLANG_PREVIEW_DIR, else pxlang-preview in the
    temp folder), named after the image. With ``view`` (default) the PNG is opened in a
    viewer when there is one ($PXLANG_VIEWER, ``open`` on macOS, ``xdg-open`` when a display
    is set), without waiting for it."""
    from ..image import io
    from ..process.stretch import auto_stretch

    data = np.asarray(image.pixels, dtype=np.float32)
    finite = np.isfinite(data)
    if not finite.any():
        raise ValueError("the image has no finite pixel to show")
    data = np.where(finite, data, np.nanmedian(data))
    stretched = auto_stretch(data)
    if path:
        target = ctx.resolve_path(path)
        if not target.lower().endswith(".png"):
            target += ".png"
    else:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", _shown_name(ctx) or image.name or "preview")
        stem = stem.strip("._") or "preview"
        target = os.path.join(preview_dir(), stem + ".png")
    written = io.save(Image(stretched, image.header), target, provenance=ctx.provenance)
    written = os.path.abspath(written)
    opened = open_viewer(written) if view else False
    if opened:
        runtrace.volatile("show() opened a viewer")
    if not ctx.options.get("repl"):  # the REPL shows the returned path itself
        from ..run.progress import log

        log(ctx.options, f"preview: {written}" + (" (opened)" if opened else ""))
    return written


def _shown_name(ctx: CallContext) -> str | None:
    """The variable name in ``show(NAME)``, read from the call's source text."""
    span = ctx.span
    if span is None or getattr(span, "source", None) is None:
        return None
    text = span.source.line(span.line)[span.col - 1 :]
    m = re.match(r"[A-Za-z_]\w*\s*\(\s*([A-Za-z_]\w*)\s*[,)]", text)
    return m.group(1) if m else None


def images_table(names: Mapping[str, Any]) -> str:
    """One line per image among ``names``: size, mono/RGB, dtype, median and MAD."""
    rows = []
    for name in sorted(names):
        value = names[name]
        arr = getattr(value, "pixels", value)
        if not (isinstance(arr, np.ndarray) and arr.ndim in (2, 3)):
            continue
        arr = np.asarray(arr)
        med = float(np.nanmedian(arr))
        mad = float(np.nanmedian(np.abs(arr - med)))
        kind = "RGB" if arr.ndim == 3 else "mono"
        rows.append(
            f"{name:12} {arr.shape[-1]}x{arr.shape[-2]} {kind:4} {arr.dtype}  "
            f"median {med:.5g}  MAD {mad:.5g}"
        )
    return "\n".join(rows) if rows else "(no images)"


@builtin("whos", category="workflow", example="print(whos())")
def whos(ctx: CallContext) -> str:
    """The images in scope, one line each: name, width×height, mono/RGB, type, median and
    MAD (median absolute deviation). The REPL's ``:images`` shows the same."""
    names = ctx.names if ctx.names is not None else {}
    values = {}
    for n in names:
        try:
            values[n] = names[n]
        except KeyError:  # functions and modules are not values
            continue
    return images_table(values)
