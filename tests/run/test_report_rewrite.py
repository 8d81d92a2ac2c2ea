"""A report plot kept from an earlier run is reused only when it is exactly the file the
report wrote: a damaged or replaced PNG is drawn again (also under ``force``), and the
up-to-date record then sees the file as rewritten. Found by a user audit: after
``echo garbage > O/report/master_OIII.png`` the run re-ran but left the garbage in place,
and the next run said it was up to date."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from pxlang.api import run_workflow, stdlib_dir
from pxlang.image.png import decode_png
from pxlang.run import report as rep
from pxlang.synthetic import make_night

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
APPROVE = "FWHM < 6 && Eccentricity <= 0.7"


def _valid_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, data[:20]
    samples, _ = decode_png(data)
    assert samples.ndim in (2, 3) and min(samples.shape[-2:]) > 10  # grey or RGB planes


def _mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.glob("*.png"))}


# ---------------------------------------------------------------------------------------
# `pxlang run preprocess` on a small synthetic night


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    root = tmp_path_factory.mktemp("report_rewrite")
    make_night(
        root / "raw", size=(96, 128), lights_per_filter=3, n_bias=2, n_darks=2, n_flats=2,
        seed=5, cloudy=False, trailed=False,
    )  # fmt: skip
    assert _run(root) is True
    return root


def _run(root: Path, force: bool = False) -> bool:
    script = stdlib_dir() / "preprocess.px"
    return run_workflow(
        script.read_text(encoding="utf-8"),
        params={"input": str(root / "raw"), "output": str(root / "out")},
        path=str(script),
        options={"quiet": True, "cache_dir": str(root / "cache"), "base_dir": str(root)},
        force=force,
    )


@pytest.mark.parametrize("force", [False, True], ids=["rerun", "force"])
def test_a_damaged_plot_is_drawn_again_and_the_next_run_is_up_to_date(night, force):
    plots = night / "out" / "report"
    target = plots / "master_OIII.png"
    _valid_png(target)
    assert _run(night) is False  # nothing changed since the fixture's run (or the last test)
    target.write_bytes(b"garbage\n")  # echo garbage > O/report/master_OIII.png
    before = _mtimes(plots)
    assert _run(night, force=force) is True  # an output changed (or forced): runs again
    _valid_png(target)
    after = _mtimes(plots)
    assert after.keys() == before.keys() and len(after) >= 3
    assert after[target.name] != before[target.name]
    if not force:  # the intact plots are kept as they were, not drawn again
        assert {k: v for k, v in after.items() if k != target.name} == {
            k: v for k, v in before.items() if k != target.name
        }
    assert _run(night) is False  # the record holds the rewritten file: up to date
    _valid_png(target)


def test_a_deleted_plot_is_drawn_again(night):
    target = night / "out" / "report" / "subframes_Ha.png"
    target.unlink()
    assert _run(night) is True
    _valid_png(target)
    assert _run(night) is False


# ---------------------------------------------------------------------------------------
# write_report itself


def _inputs():
    rng = np.random.default_rng(3)
    frames = [
        {
            "path": f"night/Ha_{i:03d}.fits",
            "filter": "Ha",
            "approved": True,
            "reason": None,
            "weight": 10.0,
            "properties": {
                "FWHM": float(3 + rng.normal(0, 0.2)),
                "Eccentricity": float(0.45 + rng.normal(0, 0.03)),
                "SNRWeight": float(10 + rng.normal(0, 1)),
            },
        }
        for i in range(6)
    ]
    img = rng.random((40, 50)).astype(np.float32)
    masters = [{"name": "Ha", "kind": "master", "path": "Ha.fits", "image": img}]
    return frames, masters


def _write(tmp_path: Path, **kwargs):
    frames, masters = _inputs()
    return rep.write_report(
        str(tmp_path), frames=frames, masters=masters, approve=APPROVE, **kwargs
    )


def test_a_plot_replaced_with_the_same_size_and_time_is_drawn_again(tmp_path):
    """Not the stamp alone: the bytes must be those written."""
    first = _write(tmp_path)
    target = Path(first["plots"][-1])
    st = target.stat()
    target.write_bytes(b"\0" * st.st_size)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = _write(tmp_path)
    assert again["drawn"] == [str(target)]
    _valid_png(target)


def test_force_draws_every_plot_again(tmp_path):
    first = _write(tmp_path)
    assert len(first["drawn"]) == 2
    assert _write(tmp_path)["drawn"] == []  # unchanged: reused
    assert _write(tmp_path, force=True)["drawn"] == first["plots"]
    for p in first["plots"]:
        _valid_png(Path(p))
    assert _write(tmp_path)["drawn"] == []  # and reused again afterwards


def test_report_json_keeps_the_hash_of_each_plot_written(tmp_path):
    first = _write(tmp_path)
    doc = json.loads(Path(first["json"]).read_text(encoding="utf-8"))
    assert set(doc["plot_files"]) == set(doc["plot_keys"])
    target = Path(first["plots"][0])
    rel = target.relative_to(tmp_path).as_posix()
    assert doc["plot_files"][rel] == rep._bytes_hash(target.read_bytes())
    # a report.json from before the plots' hashes were kept: every plot is drawn once more
    del doc["plot_files"]
    Path(first["json"]).write_text(json.dumps(doc), encoding="utf-8")
    assert len(_write(tmp_path)["drawn"]) == 2
    assert _write(tmp_path)["drawn"] == []
