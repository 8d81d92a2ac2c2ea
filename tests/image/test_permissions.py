"""Files and folders the user may not read are named as such, not as corrupt or empty.
(CI runs as root, whom permissions do not stop: the refusal is made by patching the
system calls for one path.)"""

from __future__ import annotations

import os

import numpy as np
import pytest
from astropy.io import fits

from pxlang.image import codec
from pxlang.image.frameset import files
from pxlang.lang.errors import PxIOError


def _night(d, n=3):
    for i in range(n):
        h = fits.Header()
        h["IMAGETYP"], h["DATE-OBS"] = "Light", f"2026-01-01T00:0{i}:00"
        fits.writeto(d / f"l{i}.fits", np.full((8, 8), i, np.float32), h)


def test_a_file_that_may_not_be_opened(tmp_path, monkeypatch):
    _night(tmp_path)
    locked = str(tmp_path / "l1.fits")
    real = os.open

    def refuse(path, *a, **k):
        if os.path.abspath(path) == locked:
            raise PermissionError(13, "Permission denied", path)
        return real(path, *a, **k)

    monkeypatch.setattr(codec.os, "open", refuse)
    warns: list[str] = []
    fs = files(str(tmp_path), warn=warns.append)
    assert len(fs) == 2
    assert len(warns) == 1 and "l1.fits" in warns[0] and "permission denied" in warns[0]
    assert "corrupt" not in warns[0]


def test_a_folder_that_may_not_be_listed(tmp_path, monkeypatch):
    (tmp_path / "night").mkdir()
    (tmp_path / "night" / "locked").mkdir()
    _night(tmp_path / "night")
    real = os.scandir
    refused = {str(tmp_path / "night" / "locked")}

    def refuse(path="."):
        if os.path.abspath(path) in refused:
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(os, "scandir", refuse)
    warns: list[str] = []
    fs = files(str(tmp_path / "night"), warn=warns.append)
    assert len(fs) == 3  # the readable frames, and a warning naming the folder
    assert len(warns) == 1 and "locked" in warns[0] and "Permission denied" in warns[0]
    assert any("folder cannot be read" in why for _, why in fs.skipped)
    # the folder given itself: one clear error, not "no image files"
    refused.add(str(tmp_path / "night"))
    with pytest.raises(PxIOError, match="cannot read the folder .*Permission denied"):
        files(str(tmp_path / "night"))
