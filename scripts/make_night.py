"""Write a synthetic night of raw frames with its ground truth.

    python scripts/make_night.py OUTDIR [--size 1024 | --size 384x256] [--lights 20]
        [--filters Ha,OIII,SII] [--osc] [--seed N] [--layout flat|siril|nested]
        [--bias 5] [--darks 5] [--flats 5] [--exposure 300] [--satellite] [--no-cloudy]
        [--no-trailed] [--meridian-flip]

``--size`` is WIDTHxHEIGHT (or one number for a square). The truth goes to
``OUTDIR/truth.json`` and ``OUTDIR/truth.npz`` (see ``pxlang.synthetic.Truth.from_json``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _size(text: str) -> tuple[int, int]:
    """'1024' -> (1024, 1024); '384x256' (width x height) -> (256, 384) as (H, W)."""
    parts = text.lower().split("x")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"size is N or WIDTHxHEIGHT, got {text!r}") from None
    if len(nums) == 1:
        return nums[0], nums[0]
    if len(nums) == 2:
        return nums[1], nums[0]
    raise argparse.ArgumentTypeError(f"size is N or WIDTHxHEIGHT, got {text!r}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--size", type=_size, default=(256, 384), help="N or WIDTHxHEIGHT")
    ap.add_argument("--lights", type=int, default=8, help="lights per filter")
    ap.add_argument("--filters", default="Ha,OIII", help="comma-separated (mono)")
    ap.add_argument("--osc", action="store_true", help="one-shot colour (RGGB mosaic)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layout", choices=("flat", "siril", "nested"), default="flat")
    ap.add_argument("--bias", type=int, default=5)
    ap.add_argument("--darks", type=int, default=5)
    ap.add_argument("--flats", type=int, default=5, help="flats per filter")
    ap.add_argument("--exposure", type=float, default=300.0, help="light exposure, s")
    ap.add_argument("--satellite", action="store_true", help="add a satellite trail")
    ap.add_argument("--no-cloudy", action="store_true")
    ap.add_argument("--no-trailed", action="store_true")
    ap.add_argument("--meridian-flip", action="store_true")
    args = ap.parse_args(argv)

    from pxlang.synthetic import make_night

    filters = tuple(f.strip() for f in args.filters.split(",") if f.strip())
    try:
        truth = make_night(
            args.outdir,
            size=args.size,
            filters=filters,
            lights_per_filter=args.lights,
            n_bias=args.bias,
            n_darks=args.darks,
            n_flats=args.flats,
            exposure=args.exposure,
            osc=args.osc,
            seed=args.seed,
            layout=args.layout,
            cloudy=not args.no_cloudy,
            trailed=not args.no_trailed,
            satellite=args.satellite,
            meridian_flip=args.meridian_flip,
        )
    except ValueError as exc:
        print(f"make_night: {exc}", file=sys.stderr)
        return 2
    truth.to_json(args.outdir / "truth.json")
    n_files = len(truth.paths["bias"]) + len(truth.paths["dark"])
    n_files += sum(len(v) for v in truth.paths["flat"].values())
    n_files += sum(len(v) for v in truth.paths["light"].values())
    h, w = truth.shape
    bad = [f"{lt.group}#{lt.index}" for lt in truth.lights if lt.bad]
    print(
        f"wrote {n_files} frames of {w}x{h} to {args.outdir} in {truth.seconds:.1f} s "
        f"(groups {', '.join(truth.groups)}; bad lights: {', '.join(bad) or 'none'}); "
        f"truth in {args.outdir / 'truth.json'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
