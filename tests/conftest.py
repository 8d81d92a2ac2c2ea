"""Session set-up shared by every test."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Mapping

import pytest


@pytest.fixture(scope="session", autouse=True)
def kernel_library():
    """The kernel library built once before the tests, as a user's first ``pxlang run``
    builds it (``pxlang.process.jit``): every test, and every ``pxlang`` process the tests
    start, loads it instead of one of them paying for the build in its own time limit.
    Where it cannot be built (or ``PXLANG_AOT=0``), numba compiles as it would for a user;
    tests/process/test_jit.py fails then."""
    from pxlang.process import jit

    jit.ensure_library()
    yield


_MODULES = "--- modules ---"


@pytest.fixture
def modules_after() -> Callable[..., set[str]]:
    """``modules_after(code, env=None)``: the modules a fresh interpreter holds after running
    ``code`` (which may assert): what a process importing pxlang pays for, in time and memory."""

    def run(code: str, env: Mapping[str, str] | None = None) -> set[str]:
        tail = f"\nimport sys as _sys\nprint({_MODULES!r}, *_sys.modules, sep=chr(10))\n"
        out = subprocess.run(
            [sys.executable, "-c", code + tail], capture_output=True, text=True, env=env
        )
        assert out.returncode == 0, out.stderr
        return set(out.stdout.split(_MODULES, 1)[1].split())

    return run
