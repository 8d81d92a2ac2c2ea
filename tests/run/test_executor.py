"""The local executor: per-frame work on forked processes, and what the parent does meanwhile."""

from __future__ import annotations

import os

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
