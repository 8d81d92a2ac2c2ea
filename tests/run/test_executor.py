"""The local executor: per-frame work on forked processes, and what the parent does meanwhile."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pxlang.run import executor as ex


def test_map_runs_on_forked_workers_in_order():
    parent = os.getpid()
    got = ex.LocalExecutor(2).map(lambda i: (i * i, os.getpid()), 6)
    assert [v for v, _ in got] == [0, 1, 4, 9, 16, 25]
    assert all(pid != parent for _, pid in got)


def test_meanwhile_runs_here_once_the_workers_are_forked():
    parent = os.getpid()
    ran = []
    ex.meanwhile(lambda: ran.append(os.getpid()))
    # a worker sees nothing of the job: it was forked before the job ran
    got = ex.LocalExecutor(2).map(lambda i: len(ran), 4)
    assert ran == [parent] and got == [0, 0, 0, 0]
    ex.LocalExecutor(2).map(lambda i: i, 2)
    assert ran == [parent]  # once


def test_meanwhile_is_dropped_without_workers():
    ran = []
    ex.meanwhile(lambda: ran.append(1))
    assert ex.LocalExecutor(2).map(lambda i: i, 1) == [0]  # one item: no fork
    ex.LocalExecutor(2).map(lambda i: i, 3)
    assert ran == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_workers_end_when_their_run_is_killed(tmp_path):
    """A run killed by SIGKILL cannot stop its forked workers; they must not stay behind,
    waiting for work forever under init (~150 MB each in a real run)."""
    marker = f"pxlang-killed-run-{os.getpid()}"
    code = (
        "import sys, time\n"
        "from pxlang.run import executor as ex\n"
        "ex.LocalExecutor(2).map(lambda i: time.sleep(60), 4)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, marker])
    deadline = time.monotonic() + 30
    while len(_running(marker)) < 3 and time.monotonic() < deadline:  # the run + 2 workers
        time.sleep(0.05)
    assert len(_running(marker)) == 3
    proc.kill()
    proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _running(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = _running(marker)
    for pid in left:  # do not leave them to the next test either
        os.kill(pid, signal.SIGKILL)
    assert left == []


def _running(marker: str) -> list[int]:
    """Pids whose command line holds ``marker`` (forked workers keep their parent's)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if marker.encode() in (d / "cmdline").read_bytes():
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


def test_numba_threads_start_from_the_thread_that_forks(tmp_path):
    # integrate() computes derived frames (registered: resampled by a parallel kernel) on
    # two threads; numba's thread pool must still be started by the run's own thread, or
    # TBB warns at every later fork of workers ("may be in an invalid state in the child")
    code = f"""
import sys, threading
import numba.np.ufunc.parallel as par
first = []
launch = par._launch_threads
def spy():
    if not first:
        first.append(threading.current_thread().name)
    return launch()
par._launch_threads = spy
import pxlang
from pxlang.synthetic import make_night
make_night(r"{tmp_path}/n", size=(128, 128), filters=("Ha",), lights_per_filter=3, n_bias=1,
           n_darks=1, n_flats=1, cloudy=False, trailed=False)
# star lists from measure(): register() detects nothing, resamples nothing itself
pxlang.evaluate('integrate(register(select(measure(files("{tmp_path.as_posix()}/n", '
                'IMAGETYP="Light")))), rejection="none")',
                options={{"cache_dir": r"{tmp_path}/c", "quiet": True}})
print(first)
"""
    # numba's kernels, not the kernel library's (which never start numba's pool)
    env = {**os.environ, "NUMBA_NUM_THREADS": "2", "PXLANG_AOT": "0"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[-2] == "['MainThread']"
    assert "Numba:" not in r.stderr
