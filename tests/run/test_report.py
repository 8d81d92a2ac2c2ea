"""The run report: report.json round-trips what it is given, the plots show what they must."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from pxlang.image.png import decode_png
from pxlang.run import report as rep

APPROVE = "FWHM < 6 && Eccentricity <= 0.7"


def frame_list(n=8, filt="Ha", rejected=(3,), seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        props = {
            "FWHM": float(3 + rng.normal(0, 0.2)),
            "Eccentricity": float(0.45 + rng.normal(0, 0.03)),
            "SNRWeight": float(10 + rng.normal(0, 1)),
            "Noise": 1e-3,
            "Stars": 250 + i,
            "Median": 0.02,
            "PSFSignalWeight": 5.0,
        }
        bad = i in rejected
        if bad:
            props["FWHM"] = 7.9
        out.append(
            {
                "path": f"night/{filt}_{i:03d}.fits",
                "filter": filt,
                "approved": not bad,
                "reason": "FWHM 7.9 > 6" if bad else None,
                "weight": None if bad else props["SNRWeight"],
                "properties": props,
            }
        )
    return out


def png(path):
    with open(path, "rb") as fh:
        data = fh.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    samples, text = decode_png(data)
    return samples, text


def reddish(samples):
    """Pixels of the rejected markers' pure red (anti-aliased edges excluded)."""
    r, g, b = (samples[c].astype(int) for c in range(3))
    return int(np.count_nonzero((r > 200) & (g < 70) & (b < 70)))


# ---------------------------------------------------------------------------------------
# thresholds


def test_thresholds_of_the_default_approval():
    assert rep.approval_thresholds(APPROVE) == {"FWHM": 6.0, "Eccentricity": 0.7}


@pytest.mark.parametrize(
    "expr, upper, lower",
    [
        ("(FWHM<4.5) && 0.8 >= Eccentricity", {"FWHM": 4.5, "Eccentricity": 0.8}, {}),
        ("FWHM < 6 && FWHM < 5 && SNRWeight > 2e1", {"FWHM": 5.0}, {"SNRWeight": 20.0}),
        ("FWHM < 1.5*FWHMMedian && Eccentricity < .6", {"Eccentricity": 0.6}, {}),
        ("FWHM < 6 || Eccentricity < 0.7", {}, {}),  # no simple cut
        ("FWHM < 6 && (Eccentricity < 0.7 || Stars > 9)", {"FWHM": 6.0}, {}),
        ("", {}, {}),
        (None, {}, {}),
    ],
)
def test_threshold_parsing(expr, upper, lower):
    assert rep.approval_thresholds(expr) == upper
    assert rep.approval_thresholds(expr, lower=True) == lower


# ---------------------------------------------------------------------------------------
# report.json


def test_json_round_trips_the_data(tmp_path):
    frames = frame_list() + frame_list(4, "OIII", rejected=(), seed=1)
    frames[5]["properties"]["Noise"] = float("nan")
    frames[6]["properties"]["Noise"] = np.float32(np.inf)
    frames[7]["properties"]["Stars"] = np.int64(42)
    masters = [
        {
            "name": "Ha",
            "kind": "light",
            "path": "out/Ha.fits",
            "frames": 7,
            "rejection": {"low": 0.25, "high": 1.5},
            "noise": np.float32(2.5e-4),
            "image": np.full((40, 60), 0.1, np.float32),
        },
        {
            "name": "bias",
            "kind": "bias",
            "path": "out/masters/bias.fits",
            "frames": 5,
            "rejection": None,
            "noise": float("nan"),
        },
    ]
    extra = {"drizzle": 0, "seconds": 12.5, "bad": float("-inf"), "shifts": np.array([0.5, 1.0])}
    result = rep.write_report(
        str(tmp_path),
        frames=frames,
        masters=masters,
        reference="night/Ha_002.fits",
        approve=APPROVE,
        weight="SNRWeight",
        extra=extra,
    )
    assert result["json"] == str(tmp_path / "report.json")
    text = (tmp_path / "report.json").read_text(encoding="utf-8")
    assert "NaN" not in text and "Infinity" not in text  # strict JSON
    doc = json.loads(text)

    assert doc["pxlang"] == rep.__version__
    assert doc["date"][:2] == "20"
    assert (doc["reference"], doc["approve"], doc["weight"]) == (
        "night/Ha_002.fits",
        APPROVE,
        "SNRWeight",
    )
    assert len(doc["frames"]) == len(frames)
    for got, given in zip(doc["frames"], frames):
        for key in ("path", "filter", "approved", "reason", "weight"):
            assert got[key] == given[key]
        for key, value in given["properties"].items():
            value = float(value)
            assert got["properties"][key] == (value if math.isfinite(value) else None)
    assert doc["frames"][3]["approved"] is False
    assert doc["frames"][3]["reason"] == "FWHM 7.9 > 6"
    assert doc["frames"][7]["properties"]["Stars"] == 42

    ha, bias = doc["masters"]
    assert "image" not in ha  # arrays stay out of the JSON
    assert ha["rejection"] == {"low": 0.25, "high": 1.5}
    assert ha["noise"] == pytest.approx(2.5e-4, rel=1e-6)
    assert ha["preview"] == "report/master_Ha.png"
    assert "preview" not in bias  # no image given, no preview
    assert bias["noise"] is None and bias["rejection"] is None
    assert doc["extra"] == {"drizzle": 0, "seconds": 12.5, "bad": None, "shifts": [0.5, 1.0]}

    assert doc["summary"]["Ha"]["frames"] == 8
    assert doc["summary"]["Ha"]["rejected"] == 1
    assert doc["summary"]["OIII"]["approved"] == 4
    ok_fwhm = [f["properties"]["FWHM"] for f in frames[:8] if f["approved"]]
    assert doc["summary"]["Ha"]["FWHMMedian"] == pytest.approx(float(np.median(ok_fwhm)))
    # the caller's dicts are not changed (the image is still there)
    assert isinstance(masters[0]["image"], np.ndarray)

    names = sorted(os.path.basename(p) for p in result["plots"])
    assert names == ["master_Ha.png", "subframes_Ha.png", "subframes_OIII.png"]
    assert doc["plots"]["subframes"] == {
        "Ha": "report/subframes_Ha.png",
        "OIII": "report/subframes_OIII.png",
    }


# ---------------------------------------------------------------------------------------
# subframe plots


def test_subframe_plot_is_a_sane_png(tmp_path):
    result = rep.write_report(str(tmp_path), frames=frame_list(), masters=[], approve=APPROVE)
    (path,) = result["plots"]
    samples, text = png(path)
    assert samples.ndim == 3 and samples.shape[0] == 3
    h, w = samples.shape[1:]
    assert 500 <= h <= 1400 and 600 <= w <= 1400
    assert "pxlang" in text.get("Software", "")
    # not blank: the white page carries a fair amount of ink (axes, text, markers)
    dark = np.count_nonzero(samples.min(axis=0) < 128)
    assert dark > 0.01 * h * w


def test_rejected_frames_are_drawn_as_red_crosses(tmp_path):
    clean = rep.write_report(
        str(tmp_path / "a"), frames=frame_list(rejected=()), masters=[], approve=APPROVE
    )
    two = rep.write_report(
        str(tmp_path / "b"), frames=frame_list(rejected=(2, 5)), masters=[], approve=APPROVE
    )
    red_none = reddish(png(clean["plots"][0])[0])
    red_two = reddish(png(two["plots"][0])[0])
    assert red_none == 0
    # two crosses in three panels plus the legend's: many pure-red pixels
    assert red_two > 7 * 40
    # more rejected frames, more red
    four = rep.write_report(
        str(tmp_path / "c"), frames=frame_list(rejected=(1, 2, 5, 6)), masters=[], approve=APPROVE
    )
    assert reddish(png(four["plots"][0])[0]) > 1.4 * red_two


def test_thresholds_and_reference_are_drawn(tmp_path):
    """The limit lines (purple) and the reference marker (green) appear only when known."""

    def colour_count(samples, rgb):
        diff = np.abs(samples.astype(int) - np.array(rgb)[:, None, None]).max(axis=0)
        return int(np.count_nonzero(diff < 40))

    purple, green = (0x7A, 0x3F, 0xB0), (0x2A, 0x9D, 0x4B)
    plain = rep.write_report(str(tmp_path / "a"), frames=frame_list(), masters=[])
    marked = rep.write_report(
        str(tmp_path / "b"),
        frames=frame_list(),
        masters=[],
        approve=APPROVE,
        reference="night/Ha_004.fits",
    )
    a, b = png(plain["plots"][0])[0], png(marked["plots"][0])[0]
    assert colour_count(a, purple) == 0 and colour_count(a, green) == 0
    assert colour_count(b, purple) > 300  # two dashed lines across the panels
    assert colour_count(b, green) > 200  # a dotted line through three panels and stars


def test_frames_without_properties_do_not_crash(tmp_path):
    frames = frame_list(5)
    frames[0]["properties"] = None
    frames[1]["properties"] = {}
    frames[2]["properties"] = {"FWHM": None, "Eccentricity": float("nan"), "SNRWeight": "n/a"}
    frames[4] = {
        "path": "night/Ha_004.fits",
        "filter": "Ha",
        "approved": False,
        "reason": "no stars found",
        "weight": None,
    }  # no "properties" at all
    frames.append(
        {"path": "x.fits", "filter": None, "approved": False, "reason": None, "weight": None}
    )
    result = rep.write_report(str(tmp_path), frames=frames, masters=[], approve=APPROVE)
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["frames"][0]["properties"] is None
    assert doc["frames"][2]["properties"] == {
        "FWHM": None,
        "Eccentricity": None,
        "SNRWeight": "n/a",
    }
    assert doc["summary"]["unknown"]["frames"] == 1
    assert len(result["plots"]) == 2
    for p in result["plots"]:
        png(p)
    # the unmeasured rejected frame is still drawn (on the panels' floor)
    assert reddish(png(result["plots"][0])[0]) > 3 * 40

    # a filter where nothing could be measured at all
    none = [
        dict(f, properties=None, approved=False, reason="no stars found") for f in frame_list(3)
    ]
    only = rep.write_report(str(tmp_path / "n"), frames=none, masters=[])
    png(only["plots"][0])


def test_many_rejected_frames_listed_briefly(tmp_path):
    """Reasons are listed under the panels, at most MAX_LISTED of them plus a count."""

    def height(rejected):
        frames = frame_list(30, rejected=rejected)
        out = rep.write_report(str(tmp_path / str(len(rejected))), frames=frames, masters=[])
        return png(out["plots"][0])[0].shape[1]

    few, limit, many = height((1, 4)), height(tuple(range(11))), height(tuple(range(0, 30, 2)))
    assert few < limit  # each listed reason takes a line
    assert many == limit  # ten reasons and "… and N more", not fifteen lines


def test_frames_sorted_by_date_when_given(tmp_path):
    frames = frame_list(4, rejected=())
    for f, d in zip(
        frames,
        [
            "2026-09-15T23:00:00",
            "2026-09-15T21:00:00",
            "2026-09-15T22:00:00",
            "2026-09-15T20:00:00",
        ],
    ):
        f["date"] = d
    ordered = rep._time_order(frames)
    assert [f["path"][-8:-5] for f in ordered] == ["003", "001", "002", "000"]
    frames[0]["date"] = None  # not every frame dated: order as given
    assert rep._time_order(frames) == frames


# ---------------------------------------------------------------------------------------
# master previews


@pytest.fixture(scope="module")
def night_sky(tmp_path_factory):
    from pxlang.synthetic import make_night

    truth = make_night(
        tmp_path_factory.mktemp("night"),
        size=(160, 240),
        lights_per_filter=1,
        n_bias=1,
        n_darks=1,
        n_flats=1,
        cloudy=False,
        trailed=False,
        seed=4,
    )
    return truth.sky["Ha"]


def test_master_preview_is_stretched(tmp_path, night_sky):
    rng = np.random.default_rng(7)
    sky = (night_sky + rng.normal(0, 3e-4, night_sky.shape)).astype(np.float32)
    assert np.median(sky) < 0.05  # linear: an unstretched preview would be almost black
    result = rep.write_report(
        str(tmp_path),
        frames=[],
        masters=[{"name": "Ha", "kind": "light", "path": "Ha.fits", "frames": 1, "image": sky}],
    )
    (path,) = result["plots"]
    assert os.path.basename(path) == "master_Ha.png"
    samples, _ = png(path)
    assert samples.dtype == np.uint8 and samples.shape == sky.shape
    med = np.median(samples) / 255.0
    assert 0.1 < med < 0.4  # the STF puts the background near 0.25
    # a stretch keeps the order of brightness: brighter sky, brighter preview
    rank = lambda a: np.argsort(np.argsort(a.ravel()))  # noqa: E731
    corr = np.corrcoef(rank(sky), rank(samples.astype(np.float32)))[0, 1]
    assert corr > 0.95
    # stars are bright, not clipped to the background
    assert samples.max() > 240


def test_big_master_is_downsampled(tmp_path):
    rng = np.random.default_rng(3)
    big = (0.02 + 0.001 * rng.standard_normal((1300, 2500))).astype(np.float32)
    big[600:700, 1200:1300] = 0.5  # a bright square survives the block averaging
    big[:30] = np.nan  # undefined rows (a drizzle edge) come out black
    big[31, ::2] = np.nan  # a block with some NaN is the mean of the rest
    samples = rep.preview_samples(big)
    assert samples.shape == (1300 // 3, 2500 // 3)
    assert samples[210:225, 405:425].min() > 200
    assert np.all(samples[:10] == 0)
    assert 0.1 < np.median(samples[10]) / 255 < 0.4
    assert 0.1 < np.median(samples) / 255 < 0.4


def test_colour_master_preview_is_rgb_and_neutral(tmp_path):
    rng = np.random.default_rng(5)
    base = (0.03 + 0.002 * rng.standard_normal((120, 150))).astype(np.float32)
    rgb = np.stack([base, 0.5 * base, 0.3 * base])  # a strong linear colour cast
    result = rep.write_report(
        str(tmp_path),
        frames=[],
        masters=[{"name": "RGB", "kind": "light", "path": "RGB.fits", "frames": 3, "image": rgb}],
    )
    samples, _ = png(result["plots"][0])
    assert samples.shape == (3, 120, 150)
    meds = [np.median(samples[c]) / 255 for c in range(3)]
    assert max(meds) - min(meds) < 0.03  # each channel stretched on its own


def test_preview_of_out_of_range_and_nan_data():
    rng = np.random.default_rng(2)
    adu = (600 + 20 * rng.standard_normal((64, 80))).astype(np.float32)  # in ADU, not 0..1
    adu[:4] = np.nan
    samples = rep.preview_samples(adu)
    assert samples.shape == (64, 80)
    assert np.all(samples[:4] == 0)
    assert 0.1 < np.median(samples[4:]) / 255 < 0.4
    with pytest.raises(ValueError, match="shape"):
        rep.preview_samples(np.zeros((2, 5, 5), np.float32))


# ---------------------------------------------------------------------------------------
# atomic writing


def test_no_partial_report_when_a_plot_fails(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("plot failed")

    frames = frame_list()
    masters = [
        {
            "name": "Ha",
            "kind": "light",
            "path": "Ha.fits",
            "frames": 7,
            "image": np.full((20, 30), 0.1, np.float32),
        }
    ]
    monkeypatch.setattr(rep, "master_png", boom)
    with pytest.raises(RuntimeError, match="plot failed"):
        rep.write_report(str(tmp_path), frames=frames, masters=masters, approve=APPROVE)
    assert not (tmp_path / "report.json").exists()
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    monkeypatch.undo()

    # an earlier complete report stays as it was when a later one fails
    rep.write_report(str(tmp_path), frames=frames, masters=masters, approve=APPROVE)
    before = (tmp_path / "report.json").read_bytes()
    monkeypatch.setattr(rep, "subframes_png", boom)
    with pytest.raises(RuntimeError):
        rep.write_report(str(tmp_path), frames=frame_list(3), masters=[], approve="FWHM < 3")
    assert (tmp_path / "report.json").read_bytes() == before


def test_write_failure_leaves_no_temp_file(tmp_path, monkeypatch):
    def fail_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rep.os, "replace", fail_replace)
    with pytest.raises(OSError, match="No space"):
        rep.write_report(str(tmp_path), frames=frame_list(2), masters=[])
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_names_are_safe_and_distinct(tmp_path):
    frames = frame_list(2, filt="H/a") + frame_list(2, filt="H a")
    img = np.full((10, 10), 0.1, np.float32)
    masters = [
        {"name": "dark_300s", "kind": "dark", "path": "d.fits", "frames": 5, "image": img},
        {"name": "../evil", "kind": "dark", "path": "e.fits", "frames": 5, "image": img},
    ]
    result = rep.write_report(str(tmp_path), frames=frames, masters=masters)
    names = [os.path.basename(p) for p in result["plots"]]
    assert len(set(names)) == 4
    assert "master_dark_300s.png" in names
    for p in result["plots"]:
        assert os.path.dirname(p) == str(tmp_path / "report")


def test_unchanged_inputs_draw_nothing_again(tmp_path):
    """A re-run with the same frames and masters redraws no plot and leaves report.json as
    it was; a change redraws only the plot it concerns."""
    frames = frame_list(filt="Ha") + frame_list(filt="OIII", seed=1)
    img = np.random.default_rng(0).random((40, 50)).astype(np.float32)
    masters = [{"name": "Ha", "kind": "master", "path": "Ha.fits", "image": img}]
    first = rep.write_report(str(tmp_path), frames=frames, masters=masters, approve=APPROVE)
    assert len(first["drawn"]) == 3
    stamp = {p: os.stat(p).st_mtime_ns for p in [*first["plots"], first["json"]]}
    again = rep.write_report(str(tmp_path), frames=frames, masters=masters, approve=APPROVE)
    assert again["drawn"] == []
    assert {p: os.stat(p).st_mtime_ns for p in stamp} == stamp
    frames[0]["properties"]["FWHM"] = 4.2  # one Ha frame measured differently
    third = rep.write_report(str(tmp_path), frames=frames, masters=masters, approve=APPROVE)
    assert [os.path.basename(p) for p in third["drawn"]] == ["subframes_Ha.png"]
    assert os.stat(first["json"]).st_mtime_ns != stamp[first["json"]]


def test_a_master_file_is_previewed_as_its_pixels_and_redrawn_only_when_they_change(tmp_path):
    """A master given as a file path (what the report built-in passes, so that the masters
    are not all in memory at once) gives the preview of its pixels, and a file rewritten
    with the same pixels (a new header) keeps the preview drawn before."""
    from astropy.io.fits import Header

    from pxlang.image import io as image_io
    from pxlang.image.store import Image

    img = np.random.default_rng(3).random((40, 50)).astype(np.float32)
    path = str(tmp_path / "Ha.fits")
    image_io.save(Image(img), path)
    by_array = rep.write_report(
        str(tmp_path / "a"), frames=[], masters=[{"name": "Ha", "path": path, "image": img}]
    )
    by_file = rep.write_report(
        str(tmp_path / "f"), frames=[], masters=[{"name": "Ha", "path": path, "image": path}]
    )
    assert [os.path.basename(p) for p in by_file["drawn"]] == ["master_Ha.png"]
    assert Path(by_file["plots"][0]).read_bytes() == Path(by_array["plots"][0]).read_bytes()
    image_io.save(Image(img, Header({"OBJECT": "again"})), path)
    again = rep.write_report(
        str(tmp_path / "f"), frames=[], masters=[{"name": "Ha", "path": path, "image": path}]
    )
    assert again["drawn"] == []
    img[5, 5] += 0.5
    image_io.save(Image(img), path)
    changed = rep.write_report(
        str(tmp_path / "f"), frames=[], masters=[{"name": "Ha", "path": path, "image": path}]
    )
    assert [os.path.basename(p) for p in changed["drawn"]] == ["master_Ha.png"]
    # a master in another format is hashed by its pixels as loaded
    xisf = str(tmp_path / "Ha.xisf")
    image_io.save(Image(img), xisf)
    out = str(tmp_path / "x")
    first = rep.write_report(out, frames=[], masters=[{"name": "Ha", "image": xisf}])
    assert Path(first["plots"][0]).read_bytes() == Path(changed["plots"][0]).read_bytes()
    image_io.save(Image(img, Header({"OBJECT": "again"})), xisf)
    assert rep.write_report(out, frames=[], masters=[{"name": "Ha", "image": xisf}])["drawn"] == []
    img[6, 6] += 0.5
    image_io.save(Image(img), xisf)
    assert rep.write_report(out, frames=[], masters=[{"name": "Ha", "image": xisf}])["drawn"]


def test_left_out_frames_counted_apart_from_unreadable_files(tmp_path):
    skipped = [
        {"path": "a.fits", "reason": "the file is truncated"},
        {"path": "b.fits", "reason": "measure: no stars found"},
        {"path": "c.fits", "reason": "register: no consistent star pattern match"},
    ]
    rep.write_report(str(tmp_path), frames=frame_list(), masters=[], skipped=skipped)
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["counts"]["unreadable"] == 1
    assert doc["counts"]["left_out"] == 3


@pytest.mark.parametrize("n_plots, n_previews", [(0, 2), (2, 0), (1, 1), (2, 7), (4, 4), (5, 0)])
def test_drawings_split_between_two_processes_come_back_in_order(n_plots, n_previews, monkeypatch):
    monkeypatch.setattr(rep, "subframes_png", lambda k: f"plot {k}".encode())
    draws = [rep._matplotlib_job("subframes_png", k) for k in range(n_plots)]
    draws += [lambda k=k: f"preview {k}".encode() for k in range(n_previews)]
    ticks = []
    got = rep._draw_all(draws, lambda n=1: ticks.append(n))
    assert got == [d() for d in draws]
    assert sum(ticks) == len(draws)


def test_plots_by_the_warm_plotting_process_are_the_same(tmp_path, monkeypatch):
    from pxlang.run import plotter

    frames = frame_list(8) + frame_list(5, filt="OIII", rejected=())
    masters = [{"name": "Ha", "kind": "light", "path": "Ha.fits", "frames": 7}]
    masters[0]["image"] = np.full((20, 30), 0.1, np.float32)
    cold = rep.write_report(str(tmp_path / "cold"), frames=frames, masters=list(masters))
    plotter.start()
    try:
        child = plotter._plotter.proc
        assert child.is_alive()

        def here(*args, **kwargs):
            raise AssertionError("drawn in this process, not by the plotter")

        monkeypatch.setattr(rep, "subframes_png", here)  # the forked plotter has the real one
        masters[0]["image"] = np.full((20, 30), 0.1, np.float32)
        warm = rep.write_report(str(tmp_path / "warm"), frames=frames, masters=masters)
    finally:
        plotter.stop()
    assert not child.is_alive()
    assert len(warm["drawn"]) == len(cold["drawn"]) == 3
    for a, b in zip(sorted(cold["drawn"]), sorted(warm["drawn"]), strict=True):
        assert Path(a).read_bytes() == Path(b).read_bytes()


def test_a_dead_plotting_process_means_drawing_here(tmp_path):
    from pxlang.run import plotter

    plotter.start()
    try:
        plotter._plotter.proc.kill()
        plotter._plotter.proc.join()
        out = rep.write_report(str(tmp_path), frames=frame_list(6), masters=[])
    finally:
        plotter.stop()
    assert len(out["drawn"]) == 1
    samples, _ = png(out["drawn"][0])
    assert samples.shape[0] == 3 and reddish(samples) > 0


def test_a_run_calling_report_warms_a_plotter_and_stops_it(tmp_path, monkeypatch):
    import pxlang
    from pxlang.run import plotter

    seen = []
    real_start = plotter.start
    monkeypatch.setattr(plotter, "start", lambda: seen.append(real_start()) or None)
    pxlang.evaluate(f'report("{tmp_path.as_posix()}/out")')
    assert len(seen) == 1 and plotter._plotter is None  # stopped when the run ended
    pxlang.evaluate("1 + 1")
    assert len(seen) == 1  # a script without report() starts none


def test_the_plotting_process_ends_when_its_run_is_killed():
    # a run killed with SIGKILL (no cleanup at all) leaves no plotting process behind
    import subprocess
    import sys
    import time

    code = (
        "import os, signal\n"
        "from pxlang.run import plotter\n"
        "plotter.start()\n"
        "print(plotter._plotter.proc.pid, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    pid = int(r.stdout.split()[0])

    def alive() -> bool:
        try:
            with open(f"/proc/{pid}/status") as fh:
                return "zombie" not in fh.read()
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 20
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive()


# ---------------------------------------------------------------------------- drawn ahead


def test_a_plot_drawn_ahead_answers_its_request_and_only_it():
    from pxlang.run import plotter

    frames = frame_list(8)
    req = rep._subframes_request("Ha", frames, frames[0]["path"], APPROVE)
    other = rep._subframes_request("Ha", frames, None, "FWHM < 5")
    plotter.start()
    try:
        plotter.ahead(req)
        assert plotter.stats() == {"drawn": 1, "served_ahead": 0}  # drawn, not yet asked
        got = plotter.submit([req, other])()
        assert plotter.stats() == {"drawn": 2, "served_ahead": 1}
    finally:
        plotter.stop()
    name, args, kwargs = req
    assert got[0] == rep.subframes_png(*args, **kwargs)
    assert got[1] == rep.subframes_png(*other[1], **other[2]) != got[0]


def test_the_reference_goes_only_to_the_plot_of_its_filter():
    # a plot drawn ahead before the run's reference was known (the second filter's) is the
    # same request as the report's, which knows the reference (a frame of the first filter)
    ha, oiii = frame_list(6), frame_list(5, filt="OIII", rejected=())
    ref = ha[2]["path"]
    assert rep._subframes_request("Ha", ha, ref, APPROVE)[2]["reference"] == ref
    assert rep._subframes_request("OIII", oiii, ref, APPROVE) == rep._subframes_request(
        "OIII", oiii, None, APPROVE
    )


def test_a_run_draws_its_report_ahead(tmp_path, monkeypatch):
    # select() hands the report's subframe plots to the plotting process as the run goes:
    # at the report, each is one drawn ahead
    import pxlang
    from pxlang.run import plotter
    from pxlang.synthetic import make_night

    night = tmp_path / "night"
    make_night(night, size=(192, 192), lights_per_filter=4, n_bias=1, n_darks=1, n_flats=1,
               cloudy=False, trailed=False)  # fmt: skip
    seen = {}
    real_stop = plotter.stop

    def stop():
        seen.update(plotter.stats() or {})
        real_stop()

    monkeypatch.setattr(plotter, "stop", stop)
    out = (tmp_path / "out").as_posix()
    lights = f'files("{night.as_posix()}", IMAGETYP="Light", FILTER='
    script = (
        f'm1 = measure({lights}"Ha"))\n'
        f's1 = select(m1, approve="{APPROVE}")\n'
        f'm2 = measure({lights}"OIII"))\n'
        f's2 = select(m2, approve="{APPROVE}")\n'
        f"ref = best(s1)\n"
        f'ha = save(integrate(register(s1, reference=ref)), "{out}/Ha.fits")\n'
        f'oiii = save(integrate(register(s2, reference=ref)), "{out}/OIII.fits")\n'
        f'report("{out}", measured=[m1, m2], selected=[s1, s2], masters=[ha, oiii],\n'
        f'       approve="{APPROVE}")\n'
    )
    pxlang.evaluate(script, options={"cache_dir": str(tmp_path / "cache"), "quiet": True})
    assert seen == {"drawn": 2, "served_ahead": 2}  # the two filters' subframe plots
    assert len(list((tmp_path / "out" / "report").glob("*.png"))) == 4  # and two previews


def test_the_run_end_does_not_wait_for_a_plot_nobody_asked_for(monkeypatch):
    # a plot drawn ahead that the report did not need (kept from an earlier run) is still
    # being drawn when the run ends: the plotting process and its child go, at once
    import time

    from pxlang.run import plotter

    def slow(*args, **kwargs):
        time.sleep(30)
        return b"png"

    monkeypatch.setattr(rep, "subframes_png", slow)  # forked with the plotting process
    plotter.start()
    proc = plotter._plotter.proc
    plotter.ahead(("subframes_png", ("Ha", []), {}))
    time.sleep(0.5)  # drawing now, in its child
    t = time.monotonic()
    plotter.stop()
    assert time.monotonic() - t < 1.5
    assert not proc.is_alive()
