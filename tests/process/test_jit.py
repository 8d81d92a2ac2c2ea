"""The kernel library (pxlang.process.jit): the kernels compiled ahead of time give exactly
what numba's just-in-time kernels give, a process using it never imports numba, other
argument types and a library that cannot be built fall back to numba."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from pxlang.process import debayer, interpolation, jit, pixel_kernels, rejection, stars


@pytest.fixture(scope="module")
def library():
    """The library as a first run builds it (tests/conftest.py built it already)."""
    mp = pytest.MonkeyPatch()
    mp.delenv("PXLANG_AOT", raising=False)
    jit._forget()
    if not jit.ensure_library():
        pytest.fail(f"the kernel library could not be built in {jit.kernel_dir()}")
    yield jit.library_path()
    mp.undo()
    jit._forget()


@contextlib.contextmanager
def just_in_time():
    """Every kernel from numba for the block (as without a library)."""
    saved = dict(jit._LIBRARY)
    jit._forget()
    jit._LIBRARY.update(module=None, exports={})
    try:
        yield
    finally:
        jit._forget()
        jit._LIBRARY.update(saved)


def both(fn, *args, **kw):
    """fn's result from the library's kernels, then from numba's."""
    assert jit.loaded()
    ahead = fn(*args, **kw)
    with just_in_time():
        assert not jit.loaded()
        later = fn(*args, **kw)
    return ahead, later


def assert_identical(a, b):
    if isinstance(a, tuple | list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_identical(x, y)
        return
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), strict=True)


def test_library_is_named_by_sources_and_holds_every_export(library):
    assert library.exists()
    assert library.name.startswith(jit.library_name())
    table = json.loads(jit._beside(library, ".json").read_text())
    declared = {k.key: len(k.export) for k in jit.import_kernels() if k.export}
    assert {key: len(v) for key, v in table["exports"].items()} == declared
    assert "pxlang.process.rejection_kernels._band_kernel" in declared
    # every symbol of the table is a function of the loaded module
    mod = jit.library()
    assert all(callable(getattr(mod, s)) for v in table["exports"].values() for s, _ in v)


def test_pixel_kernels_identical(library):
    rng = np.random.default_rng(3)
    x = rng.normal(100, 10, (203, 157)).astype(np.float32)
    x[50, 60] = 5000  # a hot pixel
    x[7, 8] = -300  # a cold one
    for axis, step in ((0, 1), (1, 2), (0, 8)):
        assert_identical(*both(pixel_kernels.atrous_b3, x.astype(np.float64), axis, step))
    assert_identical(*both(pixel_kernels.first_starlet_layer, x))
    for stride in (1, 5, 17):
        assert_identical(*both(pixel_kernels.first_starlet_layer_sampled, x, stride))
    for step in (1, 2):
        assert_identical(*both(pixel_kernels.neighbour_deviation, x, step))
        masks = both(pixel_kernels.defect_masks, x, step, 3.0, 0.0, True, True)
        assert masks[0][0][50, 60] and masks[0][1][7, 8]
        assert_identical(*masks)


def test_warps_identical(library):
    rng = np.random.default_rng(4)
    img = rng.gamma(2.0, 50.0, (120, 131)).astype(np.float32)
    rot = np.array([[0.998, -0.05, 3.3], [0.05, 0.998, -2.1], [0, 0, 1]])
    flip = np.array([[-1.0, 0, 130.4], [0, -1.0, 119.2], [0, 0, 1]])
    for m in (rot, flip):
        for sep in (True, False):
            assert_identical(*both(interpolation.warp, img, matrix=m, separable=sep))
    yy, xx = np.mgrid[0:120, 0:131].astype(np.float64)
    coords = (xx + 0.3 * np.sin(yy / 9), yy - 0.2)
    assert_identical(*both(interpolation.warp, img, coords=coords))
    assert_identical(*both(interpolation.warp, img - 80, matrix=rot, clamp=0.3))


def test_vng_identical(library):
    cfa = np.random.default_rng(8).gamma(3.0, 30.0, (64, 70)).astype(np.float32)
    for pattern in ("RGGB", "GBRG"):
        assert_identical(*both(debayer.vng, cfa, pattern))


def test_psf_fit_identical(library):
    rng = np.random.default_rng(5)
    s = 15
    yy, xx = np.mgrid[-7:8, -7:8]
    stamps = np.stack(
        [
            1000 * np.exp(-((xx - dx) ** 2 + (yy - dy) ** 2) / (2 * 1.6**2)) + 20
            for dx, dy in rng.uniform(-1, 1, (12, 2))
        ]
    ) + rng.normal(0, 3, (12, s, s))
    gauss = np.tile([20.0, 1000.0, 0.0, 0.0, 0.3, 0.3, 0.0], (12, 1))
    moffat = np.tile([20.0, 1000.0, 0.0, 0.0, 0.2, 0.2, 0.0, 2.0], (12, 1))
    for init, kind in ((gauss, "gaussian"), (moffat, "moffat")):
        ahead, later = both(stars.fit_psf, stamps, init, kind)
        assert_identical(ahead, later)
        assert ahead[1].all()


@pytest.mark.parametrize(
    "method",
    ["none", "minmax", "percentile", "sigma", "averaged_sigma", "winsorized", "linear_fit", "esd"],
)
def test_rejection_identical_on_threads(library, method, monkeypatch):
    rng = np.random.default_rng(6)
    band = rng.normal(1000, 20, (17, 23, 301)).astype(np.float32)
    band[3, 5, 7] = 9000  # a cosmic ray
    band[5, 2, :] = np.nan  # a missing row
    w = rng.uniform(0.5, 2, 17).astype(np.float32)
    masks = tuple(np.zeros(band.shape, bool) for _ in range(2))

    def run(**kw):
        return rejection.integrate_band(band, method=method, weights=w, **kw)

    one = []
    for n in (1, 3):  # the library's kernel split over Python threads gives the same
        monkeypatch.setattr(jit, "_THREADS", [n])
        one.append(run())
    assert_identical(one[0], one[1])
    with just_in_time():
        assert_identical(one[0], run())
    ahead, later = both(run, frame_masks=masks)
    assert_identical(ahead, later)


def test_split_calls_each_slice_once_on_threads(library):
    seen = []
    k = jit._KERNELS["pxlang.process.rejection_kernels._band_kernel"]
    fn = k.implementation

    def spy(args):
        compiled = fn(args)

        def call(*a):
            seen.append(a[-3:])
            return compiled(*a)

        return call

    band = np.ones((4, 2, 600), np.float32)
    old = k.implementation
    k.implementation = spy
    try:
        jit.split(
            k, band, *(np.ones(4, np.float32),) * 3, False, False,
            rejection.sorting_network(4), 0, 0.0, 0.0, 1.0, 0.0, np.zeros((1, 1)), 0,
            np.empty((2, 600), np.float32), *(np.empty((2, 600), np.int32),) * 3,
            np.zeros((1, 1, 1), bool), np.zeros((1, 1, 1), bool), False, nthreads=3,
        )  # fmt: skip
    finally:
        k.implementation = old
    assert sorted(seen) == [(0, 1, 3), (1, 2, 3), (2, 3, 3)]


def test_split_threads_are_kept_and_a_forked_child_gets_its_own(library):
    """split() keeps its threads between calls; a child forked after (a run's worker) has
    none of them running: work given to its copy of the parent's pool would wait forever
    (checked: a submit to it times out), so the child starts from no pool."""
    import multiprocessing

    x = np.random.default_rng(3).normal(size=(64, 80))
    ref = pixel_kernels.atrous_b3(x, 1, 2)
    jit.split(pixel_kernels._atrous_b3, x, 1, 2, np.empty_like(x), nthreads=2)
    pool = jit._pool(2)
    jit.split(pixel_kernels._atrous_b3, x, 1, 2, np.empty_like(x), nthreads=2)
    assert jit._pool(2) is pool  # kept
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as children:
        got = children.apply_async(_split_in_child, (x,)).get(timeout=60)
    assert np.array_equal(got, ref)


def _split_in_child(x: np.ndarray) -> np.ndarray:
    assert jit._POOL is None  # forgotten at the fork
    out = np.empty_like(x)
    jit.split(pixel_kernels._atrous_b3, x, 1, 2, out, nthreads=2)
    return out


def test_undeclared_types_fall_back_to_numba(library):
    x = np.random.default_rng(7).normal(size=(40, 50)).astype(np.float32)
    k = pixel_kernels._first_starlet_layer_at
    out = np.empty((x.size + 4) // 5, np.float32)
    assert k.ahead_of_time((x, 5, out))
    assert not k.ahead_of_time((x.astype(np.float64), 5, out))  # another dtype
    assert not k.ahead_of_time((x[:, ::2], 5, out))  # not C-contiguous
    ro = x.copy()
    ro.flags.writeable = False
    assert not k.ahead_of_time((ro, 5, out))  # read-only: numba types it apart
    assert not k.ahead_of_time((x, 5.0, out))  # a float for an integer
    assert not k.ahead_of_time((x, 5))  # an argument missing
    # the fallback computes the same values
    got = pixel_kernels.first_starlet_layer_sampled(x[:, ::2], 3)
    ref = pixel_kernels.first_starlet_layer_sampled(np.ascontiguousarray(x[:, ::2]), 3)
    assert_identical(got, ref)


def test_a_process_with_the_library_never_imports_numba(library, modules_after):
    code = textwrap.dedent(
        """
        import numpy as np
        from pxlang.process import interpolation, jit, pixel_kernels, rejection
        assert jit.loaded()
        x = np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32)
        pixel_kernels.defect_masks(x, 1, 3.0, 0.0, True, True)
        pixel_kernels.atrous_b3(x.astype(np.float64), 0, 1)
        interpolation.warp(x, matrix=np.array([[1, 0, 0.5], [0, 1, 0.25], [0, 0, 1.0]]))
        rejection.integrate_band(np.stack([x] * 5), method="winsorized")
        """
    )
    env = dict(os.environ, PXLANG_KERNEL_DIR=str(library.parent))
    assert not {"numba", "llvmlite"} & modules_after(code, env)
    env["PXLANG_AOT"] = "0"  # turned off: numba compiles
    off = code.replace("assert jit.loaded()", "assert not jit.loaded()")
    assert {"numba", "llvmlite"} <= modules_after(off, env)


def test_library_name_follows_the_kernel_sources(monkeypatch):
    name = jit.library_name()
    real = type(jit.Path("x")).read_bytes

    def edited(self):
        data = real(self)
        return data + b"\n# edited" if self.name == "pixel_kernels.py" else data

    jit.library_name.cache_clear()
    monkeypatch.setattr(type(jit.Path("x")), "read_bytes", edited)
    try:
        assert jit.library_name() != name
    finally:
        monkeypatch.undo()
        jit.library_name.cache_clear()
    assert jit.library_name() == name


def test_a_library_that_cannot_be_built_leaves_numba_to_compile(tmp_path, monkeypatch):
    monkeypatch.setenv("PXLANG_KERNEL_DIR", str(tmp_path))
    monkeypatch.delenv("PXLANG_AOT", raising=False)

    def no_compiler(directory):
        raise RuntimeError("error: command 'gcc' failed: No such file or directory")

    monkeypatch.setattr(jit, "_build_apart", no_compiler)
    said = []
    jit._forget()
    try:
        assert jit.ensure_library(said.append) is False
        assert any("numba compiles them" in s and "gcc" in s for s in said)
        failed = jit._beside(jit.library_path(), ".failed")
        assert failed.exists()
        # not tried again at the next run; the kernels still compute (numba)
        said.clear()
        jit._forget()
        assert jit.ensure_library(said.append) is False and said == []
        x = np.arange(30.0).reshape(5, 6)
        assert_identical(pixel_kernels.atrous_b3(x, 0, 1), pixel_kernels.atrous_b3(x, 0, 1))
    finally:
        jit._forget()


def test_build_on_first_use_builds_once_in_another_process(tmp_path, monkeypatch):
    monkeypatch.setenv("PXLANG_KERNEL_DIR", str(tmp_path))
    monkeypatch.delenv("PXLANG_AOT", raising=False)
    calls = []

    def fake_build(directory):
        calls.append(directory)

    monkeypatch.setattr(jit, "_build_apart", fake_build)
    monkeypatch.setattr(jit, "BUILD", {"on_first_use": False, "say": None})
    jit._forget()
    try:
        jit.build_on_first_use()
        x = np.zeros((8, 8))
        pixel_kernels.atrous_b3(x, 0, 1)  # first kernel: the build is asked for
        pixel_kernels.atrous_b3(x, 1, 1)
        assert calls == [tmp_path]  # once a process, even when it produced nothing
    finally:
        jit._forget()


def test_the_build_process_imports_this_pxlang(tmp_path, monkeypatch):
    """The child that builds the library imports the pxlang of the process asking for it
    (not another one on its path: a checkout run with sys.path, an installed copy), and
    refuses to build under another library name than the one asked for."""
    import pxlang

    seen = {}

    def run(cmd, **kw):
        seen.update(cmd=cmd, **kw)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", run)
    jit._build_apart(tmp_path)
    root = os.path.dirname(os.path.dirname(os.path.abspath(pxlang.__file__)))
    assert seen["cmd"][-2:] == [str(tmp_path), jit.library_name()]
    assert seen["cwd"] == root
    assert seen["env"]["PYTHONPATH"].split(os.pathsep)[0] == root
    monkeypatch.undo()
    wrong = subprocess.run(
        [sys.executable, "-m", "pxlang.process.jit", str(tmp_path), "pxkernels_not_this_one"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert wrong.returncode != 0 and "another pxlang" in wrong.stderr
    assert not list(tmp_path.iterdir())  # nothing built
