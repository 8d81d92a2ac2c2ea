"""Per-frame work of measure/register/normalize is done once: stars are detected once per
frame and reused by register(); results are cached by the frame's content key, so that an
unchanged re-run computes nothing per frame and a changed frame is the only one redone."""

import os
import shutil

import numpy as np
import pytest

from pxlang.builtins import align as A
from pxlang.builtins import lights as L
from pxlang.image.frameset import files
from pxlang.lang.functions import CallContext
from pxlang.process import normalization as nz
from pxlang.process import registration as rg
from pxlang.process import stars as st
from pxlang.synthetic.night import make_night


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    d = tmp_path_factory.mktemp("cachenight")
    make_night(
        d,
        size=(256, 256),
        filters=("Ha",),
        lights_per_filter=6,
        n_bias=1,
        n_darks=1,
        n_flats=1,
    )
    return d


def ctx_for(cache, options=None):
    return CallContext(
        base_dir=str(cache),
        warn=lambda msg: None,
        options={"cache_dir": str(cache), "quiet": True, **(options or {})},
    )


def lights(d):
    return files(os.path.join(d, "*.fits"), IMAGETYP="light")


class Counts:
    """Counts calls of the expensive per-frame functions (in this process)."""

    def __init__(self, monkeypatch):
        self.n = {"find_stars": 0, "detect": 0, "solve": 0, "local_normalization": 0}
        for mod, name in (
            (st, "find_stars"),
            (st, "detect"),
            (rg, "solve"),
            (nz, "local_normalization"),
        ):
            monkeypatch.setattr(mod, name, self._wrap(name, getattr(mod, name)))

    def _wrap(self, name, fn):
        def counted(*args, **kwargs):
            self.n[name] += 1
            return fn(*args, **kwargs)

        return counted


def workflow(ctx, d):
    measured = L.measure(ctx, lights(d))
    good = L.select(ctx, measured, approve="FWHM < 8", min_signal=0)
    reg = A.register(ctx, good)
    return measured, reg, A.normalize(ctx, reg, scale=64)


def test_stars_detected_once_then_nothing_recomputed(night, tmp_path, monkeypatch):
    monkeypatch.setattr(L, "WORKERS", 1)  # count in this process
    counts = Counts(monkeypatch)
    measured, reg, normed = workflow(ctx_for(tmp_path / "c"), night)
    n = len(measured)
    # measure finds every frame's stars; register reuses them; normalize finds the
    # reference's stars once (not once per frame)
    assert counts.n["find_stars"] == n
    assert counts.n["detect"] == n + 1
    assert counts.n["solve"] == len(reg) - 1  # the reference is the identity
    assert counts.n["local_normalization"] == len(reg)
    table = measured.frames[0].meta["star_table"]["table"]
    assert len(table) == measured.frames[0].meta["Stars"]

    # unchanged re-run, new context (as a new process would be): nothing per frame
    counts.n = dict.fromkeys(counts.n, 0)
    measured2, reg2, normed2 = workflow(ctx_for(tmp_path / "c"), night)
    assert counts.n == dict.fromkeys(counts.n, 0)
    for f, g in zip(measured.frames, measured2.frames):
        assert f.meta["measure"] == pytest.approx(g.meta["measure"], nan_ok=True)
        t1, t2 = f.meta["star_table"]["table"], g.meta["star_table"]["table"]
        np.testing.assert_array_equal(t1.xy(), t2.xy())
    for f, g in zip(reg.frames, reg2.frames):
        np.testing.assert_array_equal(f.meta["transform"].matrix, g.meta["transform"].matrix)
        assert f.meta["registration"] == g.meta["registration"]
    for f, g in zip(normed.frames, normed2.frames):
        m1, m2 = f.meta["normalize"], g.meta["normalize"]
        assert m1.scale == m2.scale and m1.stars_used == m2.stars_used
        np.testing.assert_array_equal(m1.grid, m2.grid)
    # the registered frames are the same files
    assert reg.content_key(1) == reg2.content_key(1)


def test_cache_written_by_forked_workers_and_changed_frame_redone(night, tmp_path, monkeypatch):
    d = tmp_path / "night"
    shutil.copytree(night, d, ignore=shutil.ignore_patterns("cache*"))
    workflow(ctx_for(tmp_path / "c"), d)  # both cores: the workers write the cache
    monkeypatch.setattr(L, "WORKERS", 1)
    counts = Counts(monkeypatch)
    measured, reg, _ = workflow(ctx_for(tmp_path / "c"), d)
    assert counts.n == dict.fromkeys(counts.n, 0)

    # change one light: only it is measured again
    from pxlang.image import io

    changed = measured.paths[2]
    img = io.load(changed)
    img.data = img.data * np.float32(1.01)
    io.save(img, changed, header=img.header, bits=16)
    measured2 = L.measure(ctx_for(tmp_path / "c"), lights(d))
    assert counts.n["find_stars"] == 1
    assert measured2.paths == measured.paths
    assert measured2.frames[2].meta["Median"] == pytest.approx(
        1.01 * measured.frames[2].meta["Median"], rel=1e-3
    )
    assert measured2.frames[3].meta["measure"] == measured.frames[3].meta["measure"]


def test_register_alone_detects_and_caches(night, tmp_path, monkeypatch):
    monkeypatch.setattr(L, "WORKERS", 1)
    counts = Counts(monkeypatch)
    fs = lights(night)
    reg = A.register(ctx_for(tmp_path / "c"), fs)
    assert counts.n["find_stars"] == len(fs)  # no measure() before: register finds them
    counts.n = dict.fromkeys(counts.n, 0)
    reg2 = A.register(ctx_for(tmp_path / "c"), fs)
    assert counts.n == dict.fromkeys(counts.n, 0)
    for f, g in zip(reg.frames, reg2.frames):
        np.testing.assert_array_equal(f.meta["transform"].matrix, g.meta["transform"].matrix)


def test_corrupt_cache_file_is_recomputed(night, tmp_path, monkeypatch):
    monkeypatch.setattr(L, "WORKERS", 1)
    ctx = ctx_for(tmp_path / "c")
    first = L.measure(ctx, lights(night))
    frames_dir = tmp_path / "c" / "frames"
    cached = sorted(frames_dir.glob("*.measure.npz"))
    assert len(cached) == len(first)
    cached[0].write_bytes(b"not a zip file")
    counts = Counts(monkeypatch)
    again = L.measure(ctx, lights(night))
    assert counts.n["find_stars"] == 1
    assert again.frames[0].meta["FWHM"] == pytest.approx(first.frames[0].meta["FWHM"])
    assert not list(frames_dir.glob("*.tmp"))


def test_in_memory_frames_are_not_cached_on_disk(night, tmp_path, monkeypatch):
    monkeypatch.setattr(L, "WORKERS", 1)
    fs = lights(night)
    images = [fs.read(i) for i in range(3)]
    for img in images:
        img.path = None
    ctx = ctx_for(tmp_path / "c")
    m = L.measure(ctx, images)
    assert len(m) == 3 and m.frames[0].meta["Stars"] > 10
    assert not (tmp_path / "c").exists()


def test_progress_lines_unless_quiet(night, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(L, "WORKERS", 1)
    fs = lights(night)
    ctx = CallContext(
        base_dir=str(tmp_path), warn=lambda m: None, options={"cache_dir": str(tmp_path / "c")}
    )
    L.measure(ctx, fs)
    err = capsys.readouterr().err
    # the line says what is measured: the frames' kind and filter
    label = f"measure light {fs.header(0)['FILTER']}"
    assert f"{label}: {len(fs)} to do" in err and f"{label}: {len(fs)}/{len(fs)} done" in err
    L.measure(ctx_for(tmp_path / "c"), fs)
    assert capsys.readouterr().err == ""


def test_adding_a_light_redoes_that_light_only(night, tmp_path, monkeypatch):
    from pxlang.image import io

    monkeypatch.setattr(L, "WORKERS", 1)
    d = tmp_path / "night"
    shutil.copytree(night, d, ignore=shutil.ignore_patterns("cache*"))
    _, reg, normed = workflow(ctx_for(tmp_path / "c"), d)
    best = next(i for i, f in enumerate(reg.frames) if f.meta["best"])
    # a new light: a noisier copy of one (a lower weight: the best frame stays the best)
    img = io.load(lights(d).paths[0])
    rng = np.random.default_rng(3)
    noise = rng.normal(0, 3 * float(np.std(img.data[:32, :32])), img.data.shape)
    img.data = (img.data + noise).astype(np.float32)
    img.header["DATE-OBS"] = "2099-01-01T00:00:00"  # sorts last
    io.save(img, str(d / "zz_new_light.fits"), header=img.header, bits=16)
    counts = Counts(monkeypatch)
    _, reg2, normed2 = workflow(ctx_for(tmp_path / "c"), d)
    assert len(reg2) == len(reg) + 1
    assert counts.n["find_stars"] == 1 and counts.n["solve"] == 1
    assert counts.n["local_normalization"] == 1
    assert reg2.frames[best].meta["best"]
    # the registered frames already made keep their cached files (named per frame)
    for i in range(len(reg)):
        assert reg2.content_key(i) == reg.content_key(i)


def test_reference_image_of_the_set_is_that_frame_and_others_are_cached(
    night, tmp_path, monkeypatch
):
    from pxlang.builtins.workflow import best
    from pxlang.image import io

    monkeypatch.setattr(L, "WORKERS", 1)
    ctx = ctx_for(tmp_path / "c")
    good = L.select(ctx, L.measure(ctx, lights(night)), approve="FWHM < 8", min_signal=0)
    ref = best(good)  # as the stock workflow passes it: an image read from the set
    reg = A.register(ctx, good, reference=ref)
    i = next(k for k, f in enumerate(reg.frames) if f.meta["best"])
    assert reg.frames[i].meta["transform"].rms == 0.0  # the identity, not a self-match
    np.testing.assert_array_equal(reg.read(i).data, good.read(i).data)
    # a reference image from elsewhere (another filter's best frame): its stars are found
    # once, then read from the cache like the transforms
    other = io.save(ref, str(tmp_path / "other_ref.fits"))
    counts = Counts(monkeypatch)
    A.register(ctx, good, reference=io.load(other))
    assert counts.n["find_stars"] == 1 and counts.n["solve"] == len(good)
    counts.n = dict.fromkeys(counts.n, 0)
    A.register(ctx_for(tmp_path / "c"), good, reference=io.load(other))
    assert counts.n == dict.fromkeys(counts.n, 0)
