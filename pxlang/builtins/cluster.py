"""cluster(): run the rest of a script on a dask.distributed cluster (``pxlang.run.executor``)."""

from __future__ import annotations

from ..lang.errors import PxRuntimeError
from ..lang.functions import CallContext
from .registry import builtin


@builtin("cluster", category="workflow", example="cluster(workers=1)")
def cluster(ctx: CallContext, workers: int = 2, scheduler: str | None = None) -> str:
    """Run what follows on a dask.distributed cluster: per-frame stages (calibrate,
    cosmetic, measure, register, normalize) as one task per frame, integrate as one task per
    band of rows; the results are the same as on this machine alone. workers: a LocalCluster
    of that many worker processes here (0: back to this machine's own two processes).
    scheduler: the address of a running cluster ("tcp://host:8786") instead; its workers
    must see the input, output and cache folders at the same paths (a shared filesystem).
    The cluster is shut down (or left) when the script ends; the same call twice keeps it. A
    scheduler given on the command line (pxlang run --scheduler) wins over cluster(). Needs
    pip install 'pxlang[dask]'. Returns the scheduler's address ("" on this machine)."""
    from ..run.executor import use_cluster

    if workers < 0:
        raise PxRuntimeError(
            f"cluster(): workers must be 0 or more, got {workers}",
            span=ctx.span,
            hint="workers=0 runs on this machine without a cluster",
        )
    try:
        executor = use_cluster(ctx.options, int(workers), scheduler or None, warn=ctx.warning)
    except PxRuntimeError as exc:
        raise exc.with_span(ctx.span) from None
    return str(getattr(executor, "address", "") or "")
