"""The same workflow on a dask.distributed cluster gives the same masters as on this machine:
per-frame stages run as tasks (one per frame), integration as tasks (one per band of rows).
A real LocalCluster (two worker processes) stands in for a cluster."""

from __future__ import annotations

import collections
import logging
import time

import numpy as np
import psutil
import pytest
from astropy.io import fits

import pxlang
from pxlang import cli
from pxlang.image.frameset import files
from pxlang.lang.errors import PxError
from pxlang.process import calibration, integration
from pxlang.process.integration import read_frame_map
from pxlang.run import executor as ex
from pxlang.synthetic import make_night

MASTERS = (
    "Ha.fits",
    "OIII.fits",
    "masters/bias.fits",
    "masters/superbias.fits",
    "masters/dark.fits",
    "masters/flat_Ha.fits",
    "masters/flat_OIII.fits",
)


class _Done:
    """Counts tasks finished on the scheduler, by task name (a scheduler plugin)."""

    def __init__(self) -> None:
        self.done: collections.Counter[str] = collections.Counter()

    def transition(self, key, start, finish, *args, **kwargs):  # noqa: ANN001
        from dask.utils import key_split

        if finish == "memory":
            self.done[key_split(key)] += 1


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster
    from distributed.diagnostics.plugin import SchedulerPlugin

    class Plugin(_Done, SchedulerPlugin):
        name = "pxlang-test-count"

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # a free port (None would still want 8787, warning if taken)
        silence_logs=logging.ERROR,
    ) as c:
        plugin = Plugin()
        c.scheduler.add_plugin(plugin)
        c.done = plugin.done
        yield c


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """A small two-filter night, processed on this machine (the reference)."""
    root = tmp_path_factory.mktemp("clusternight")
    make_night(
        root / "raw",
        size=(128, 128),
        filters=("Ha", "OIII"),
        lights_per_filter=5,
        n_bias=3,
        n_darks=3,
        n_flats=3,
        cloudy=False,
        trailed=False,
        seed=1,
    )
    args = ["input=" + str(root / "raw"), "output=" + str(root / "local")]
    rc = cli.main(["run", "preprocess", *args, "--cache", str(root / "cache_local"), "--quiet"])
    assert rc == 0
    return root


def _masters_equal(a, b):
    for name in MASTERS:
        x, y = fits.getdata(a / name), fits.getdata(b / name)
        # bit-identical: the same kernels run on the same float32 inputs, and every
        # per-pixel result is independent of how rows are split into bands
        assert np.array_equal(x, y, equal_nan=True), name


def test_preprocess_on_a_scheduler_equals_local(night, cluster, capsys):
    before = cluster.done.copy()
    args = ["input=" + str(night / "raw"), "output=" + str(night / "sched")]
    cache = ["--cache", str(night / "cache_sched")]  # its own cache: everything is recomputed
    where = ["--scheduler", cluster.scheduler_address]
    rc = cli.main(["run", "preprocess", *args, *cache, "--quiet", *where])
    assert rc == 0, capsys.readouterr().err
    _masters_equal(night / "local", night / "sched")
    ran = cluster.done - before
    # per-frame stages and integration bands were tasks on the cluster's workers
    assert ran["run_pickled"] >= 2 * 5 * 3, ran


def test_workers_param_starts_and_stops_a_local_cluster(night, tmp_path, capsys):
    # calibration frames only: the workflow starts its LocalCluster (workers=2), integrates
    # the bias and dark masters there, then stops at the missing lights; the cluster must be
    # shut down on that error path too (the normal end goes through the same `finally`)
    raw = tmp_path / "raw"
    raw.mkdir()
    for f in (night / "raw").glob("*.fits"):
        if fits.getheader(f)["IMAGETYP"].lower().startswith(("bias", "dark")):
            (raw / f.name).symlink_to(f)
    me = psutil.Process()
    children = {p.pid for p in me.children(recursive=True)}
    args = ["input=" + str(raw), "output=" + str(tmp_path / "out"), "workers=2"]
    rc = cli.main(["run", "preprocess", *args, "--cache", str(tmp_path / "cache"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "Light" in err and "Traceback" not in err, err
    for name in ("masters/bias.fits", "masters/dark.fits"):
        x, y = fits.getdata(night / "local" / name), fits.getdata(tmp_path / "out" / name)
        assert np.array_equal(x, y), name
    assert not ex._OPEN  # the run's LocalCluster is closed…
    deadline = time.monotonic() + 10
    while True:  # …and its worker processes are gone
        left = [
            p
            for p in me.children(recursive=True)
            if p.pid not in children and p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        ]
        if not left:
            break
        assert time.monotonic() < deadline, f"worker processes left running: {left}"
        time.sleep(0.1)


@pytest.mark.parametrize("method", ["averaged_sigma", "linear_fit"])
def test_integrate_on_cluster_equals_local(night, cluster, tmp_path, method):
    raw = night / "raw"
    bias = integration.integrate(files(str(raw), IMAGETYP="Bias"))
    lights = files(str(raw), IMAGETYP="Light", FILTER="Ha")
    # derived frames: the cluster's workers calibrate them into the cache folder first
    cal = calibration.calibrate(lights, bias=bias, cache_dir=str(tmp_path / "cache"))
    kw = dict(rejection=method, normalization="additive_scaling", weights="noise")
    kw["memory"] = 64 * 112 * 4 * 5  # several bands locally too
    local_maps = [str(tmp_path / f"local{i}.npy") for i in range(len(cal))]
    cl_maps = [str(tmp_path / f"cl{i}.npy") for i in range(len(cal))]
    here = integration.integrate(cal, maps=True, frame_maps=local_maps, **kw)
    with ex.DaskExecutor(cluster.scheduler_address) as dask_ex:
        assert dask_ex.workers == 2
        there = integration.integrate(cal, maps=True, frame_maps=cl_maps, executor=dask_ex, **kw)
    for a, b in zip(here, there):
        assert np.array_equal(a.data, b.data, equal_nan=True)
    assert here[0].header["PXREJECT"] == method
    for key in ("REJLOPCT", "REJHIPCT", "NOISEEST", "PXPOISK"):
        assert here[0].header.get(key) == there[0].header.get(key), key
    for p, q in zip(local_maps, cl_maps):
        for x, y in zip(read_frame_map(p), read_frame_map(q)):
            assert np.array_equal(x, y)


def test_bad_scheduler_address_is_one_clear_error(night, capsys):
    args = ["run", "preprocess", "input=" + str(night / "raw"), "output=" + str(night / "bad")]
    for address, words in (
        ("tcp://127.0.0.1:1", "cannot reach the dask scheduler at tcp://127.0.0.1:1"),
        ("nonsense", "bad dask scheduler address 'nonsense'"),
    ):
        rc = cli.main([*args, "--quiet", "--scheduler", address])
        err = capsys.readouterr().err
        assert rc == 1
        assert words in err and "Traceback" not in err
        assert not (night / "bad").exists()  # failed before any work


def test_cluster_without_dask_says_how_to_install(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "distributed", None)
    with pytest.raises(PxError, match=r"pip install 'pxlang\[dask\]'") as err:
        pxlang.evaluate("cluster(workers=1)")
    assert err.value.span is not None and err.value.span.line == 1


def test_cluster_arguments(tmp_path):
    with pytest.raises(PxError, match="workers must be 0 or more"):
        pxlang.evaluate("cluster(workers=-1)")
    # workers=0: this machine's processes, no cluster started
    assert pxlang.evaluate("cluster(workers=0)") == ""
    assert not ex._OPEN


def test_scheduler_without_workers_is_an_error(monkeypatch):
    from distributed import LocalCluster

    monkeypatch.setattr(ex, "CONNECT_TIMEOUT", 1.0)
    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as empty:
        with pytest.raises(PxError, match="has no workers"):
            ex.DaskExecutor(empty.scheduler_address)
    assert not ex._OPEN


def _fails(i):
    from pxlang.lang.errors import PxProcessError

    if i == 2:
        raise PxProcessError("frame 3 has no stars", hint="lower threshold=")
    return i * i


def _missing(i):
    open(f"/nonexistent/frame{i}.fits", "rb")


def test_tasks_get_a_portable_context_and_errors_come_back_unchanged(cluster):
    import pickle
    import threading
    import types

    from pxlang.lang.errors import PxProcessError
    from pxlang.lang.functions import CallContext

    ctx = CallContext(
        base_dir="/data",
        warn=lambda message: None,
        names=types.MappingProxyType({"Ha": 1}),  # neither pickles…
        options={"cache_dir": "/shared/cache", "quiet": True, "_lock": threading.Lock()},
    )

    def work(i):
        return (i, ctx.base_dir, ctx.options.get("cache_dir"), ctx.names, sorted(ctx.options))

    assert pickle.loads(ex._dumps(work))(1) == (  # …so a worker gets what it needs
        1,
        "/data",
        "/shared/cache",
        None,
        ["cache_dir", "quiet"],
    )
    with ex.DaskExecutor(cluster.scheduler_address) as dask_ex:
        ticks = []
        assert dask_ex.map(work, 3, lambda k=1: ticks.append(k))[2][0] == 2
        assert len(ticks) == 3
        with pytest.raises(PxProcessError, match="frame 3 has no stars") as err:
            dask_ex.map(_fails, 4)
        assert err.value.hint == "lower threshold="
        # a file a worker cannot read: most likely not on storage the workers share
        with pytest.raises(PxError, match="on a dask worker: .*frame") as err:
            dask_ex.map(_missing, 2)
        assert "shared filesystem" in err.value.hint
