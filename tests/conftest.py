"""Session set-up shared by every test."""

from __future__ import annotations

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
