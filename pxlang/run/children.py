"""What every process a run forks does first: end with the run."""

from __future__ import annotations

import os
import signal
import sys


def die_with_parent(parent: int) -> None:
    """On Linux, SIGTERM when the process that forked this one dies, even by SIGKILL: a
    forked worker would otherwise wait for work forever, owned by init (~150 MB each).
    ``parent`` is the forking process's pid, checked after the request: it may already
    be gone."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL("libc.so.6").prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(1)
