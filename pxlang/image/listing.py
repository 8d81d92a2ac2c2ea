"""Which image files a folder or a glob pattern names (standard library only: the up-to-date
check of a run lists folders again before anything heavy is imported)."""

from __future__ import annotations

import glob
import os

IMAGE_EXTENSIONS = (".fits", ".fit", ".fts", ".xisf", ".fits.gz", ".fit.gz", ".fts.gz")


def image_files(
    pattern: str, unreadable: list[tuple[str, str]] | None = None
) -> tuple[list[str], str]:
    """Image files for a glob pattern or a folder (searched recursively; hidden folders and
    files skipped), sorted, and which of the two the pattern was ("folder" or "pattern").
    Folders that cannot be listed (permission denied…) are appended to ``unreadable`` as
    (folder, reason) when it is given."""
    if os.path.isdir(pattern):
        found = []

        def failed(exc: OSError) -> None:
            if unreadable is not None:
                unreadable.append((str(exc.filename), exc.strerror or str(exc)))

        for root, dirs, names in os.walk(pattern, onerror=failed):
            # hidden folders (.pxlang-cache of derived frames, .git...) are not frames
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for n in sorted(names):
                if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith("."):
                    found.append(os.path.join(root, n))
        return found, "folder"
    matches = sorted(glob.glob(pattern, recursive=True))
    return [m for m in matches if os.path.isfile(m)], "pattern"
