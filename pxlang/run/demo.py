"""``pxlang demo [DIR]``: a small synthetic night (bias, darks, flats, Ha and OIII lights with
stars, nebula, hot pixels, cosmic rays, a cloudy and a trailed frame) made on the fly, run
through the stock workflows ``preprocess`` and ``combine``; prints where the results are."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def run_demo(folder: str, *, quiet: bool = False, seed: int = 0, force: bool = False) -> int:
    from ..api import run_workflow, stdlib_dir

    root = Path(folder).resolve()
    raw, out = root / "raw", root / "out"
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    if not any(raw.glob("*.fits")):
        from ..synthetic import make_night

        say(f"making a synthetic night in {raw} …")
        truth = make_night(raw, seed=seed)
        truth.to_json(root / "truth.json")  # ground truth, kept out of the raw folder
    options = {"quiet": quiet, "base_dir": os.getcwd(), "cache_dir": str(root / "cache")}
    for name, params in (
        ("preprocess", {"input": str(raw), "output": str(out)}),
        ("combine", {"input": str(out), "palette": "HOO"}),
    ):
        script = stdlib_dir() / f"{name}.px"
        say(f"running {name} …")
        run_workflow(
            script.read_text(encoding="utf-8"),
            params=params,
            path=str(script),
            options=options,
            force=force,
        )
    elapsed = time.perf_counter() - t0
    print(f"masters:      {out}  ({', '.join(sorted(p.name for p in out.glob('*.fits')))})")
    print(f"report:       {out / 'report.json'}")
    print(f"colour image: {out / 'colour_HOO.png'}  (and .fits)")
    print(f"done in {elapsed:.1f} s")
    return 0
