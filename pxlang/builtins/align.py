"""Light frames brought onto one grid: register (StarAlignment), normalize
(LocalNormalization), drizzle (DrizzleIntegration), debayer. Thin adapters over
``pxlang.process``, with the frame-set helpers of ``lights.py`` (whose docstring lists what
travels in each frame's ``meta``).
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

import numpy as np

from .. import runtrace
from ..image.frameset import FrameSet
from ..image.store import Image
from ..lang.errors import PxProcessError
from ..lang.functions import CallContext
from ..process.normalization import DEFAULT_SCALE as DEFAULT_LN_SCALE
from .common import as_frames, process_error, stage_label
from .lights import (
    _best_index,
    _check_sizes,
    _copy,
    _detect_xy,
    _frame_result_path,
    _image_stars,
    _known_xy,
    _load_result,
    _parallel,
    _read,
    _save_result,
    _sensor_xy,
    _short,
    _solve_cached,
)
from .registry import builtin

# ---------------------------------------------------------------------------- register


def _ref_index(ctx: CallContext, fs: FrameSet, reference: Any, counts: list[int]) -> int | Image:
    if isinstance(reference, Image):
        # best(selection) read from this very set: the frame itself (identity transform)
        if reference.path:
            for i in range(len(fs)):
                p = fs.frames[i].path or (fs._cached_path(i) if fs.parent is not None else None)
                if p and os.path.abspath(p) == os.path.abspath(reference.path):
                    return i
        return reference
    if isinstance(reference, (int, float)) and not isinstance(reference, bool):
        k = int(reference)
        if not 1 <= k <= len(fs):
            raise PxProcessError(
                f"register(): reference={k} but there are {len(fs)} frames (1-based)",
                span=ctx.span,
            )
        return k - 1
    if isinstance(reference, str) and reference != "best":
        from ..image import io

        path = ctx.resolve_path(reference)
        for i in range(len(fs)):
            p = fs.parent.name(i) if fs.parent is not None else fs.name(i)
            if p and os.path.abspath(p) == os.path.abspath(path):
                return i
        return io.load(path)
    best = _best_index(fs)
    return best if best is not None else int(np.argmax(counts))


def _reference_xy(ctx: CallContext, ref: Image, threshold: float) -> np.ndarray:
    """The star positions of a reference image: those measure() found on it when best()
    passed them on (the list its own filter was registered with: every filter then aligns
    on the same stars, and nothing is detected again), else detected."""
    table = ref.stars
    if isinstance(table, dict) and table.get("threshold") == threshold:
        return _sensor_xy(table["table"], float(table.get("factor", 1.0)))
    return _image_stars(ctx, ref, threshold)


def _warm_resampling() -> None:
    """numba started and the resampling kernels loaded here while the workers detect stars:
    this process resamples the frames next (numba's first call alone takes ~0.35 s)."""
    from ..process.interpolation import warp

    tiny = np.zeros((16, 16), np.float32)
    warp(tiny, np.eye(3), separable=True)
    warp(tiny, np.eye(3), separable=False)


@builtin(
    "register",
    category="lights",
    aliases=("align", "staralignment"),
    pixinsight="StarAlignment",
    siril="register",
    example='reg = register(files("lights/"), model="affine")',
)
def register(
    ctx: CallContext,
    frames: FrameSet | list,
    reference: str | int | Image = "best",
    model: str = "similarity",
    interpolation: str = "lanczos3",
    distortion: bool = False,
    drizzle: bool = True,
    clamp: float = 0.3,
    threshold: float = 5.0,
) -> FrameSet | list:
    """Align frames on a reference by their stars (StarAlignment). reference: "best" (the
    frame select() found best, else the one with most stars), a 1-based frame number, a
    file or an image. model: similarity (rotation, scale, shift; mirror images handled) |
    affine | homography | tps (thin-plate splines: images from two different optical
    systems); distortion=true adds the spline correction to any model. interpolation:
    lanczos3 (clamped at `clamp` against ringing; 0 strongest; frames turned by less than
    about 6°, or flipped, are resampled in two 1-D passes, ~1.5 times as fast as the 2-D
    kernel and equal to it for shifts) | bicubic | bilinear.
    drizzle=true keeps each frame's transform for drizzle(). Frames without stars or that
    cannot be matched are left out and named in a warning. A list of images (masters of
    different filters) gives back a list of aligned images. Frames are resampled lazily,
    when something reads them. One-shot-colour frames: register the debayered frames;
    drizzle() then drops the raw mosaics (bayer drizzle)."""
    from ..process import registration as rg

    as_list = isinstance(frames, (list, tuple))
    fs = _copy(as_frames(frames, "register"))
    n = len(fs)
    if model not in rg.MODELS:
        raise PxProcessError(
            f"register(): model must be one of {', '.join(rg.MODELS)}; got {model!r}",
            span=ctx.span,
        )
    if not as_list:
        _check_sizes(ctx, fs, "register")  # mixed sizes: an error naming the odd frames

    from ..run.progress import stage

    keys = [fs.content_key(i) for i in range(n)]
    star_lists = [_known_xy(ctx, fs, i, keys[i], threshold) for i in range(n)]
    # the quicker detection when no list comes from measure() and the reference is one of
    # these frames: all lists are then found the same way
    external = isinstance(reference, Image) or (isinstance(reference, str) and reference != "best")
    fast = not external and all(s is None for s in star_lists)
    if fast:
        star_lists = [_known_xy(ctx, fs, i, keys[i], threshold, fast) for i in range(n)]
    todo = [i for i in range(n) if star_lists[i] is None]
    if todo:  # frames measure() did not see: find their stars
        from ..run.executor import meanwhile

        meanwhile(_warm_resampling)
        with stage(ctx.options, stage_label("stars", fs), len(todo)) as advance:
            found = _parallel(
                lambda k: _detect_xy(ctx, fs, todo[k], keys[todo[k]], threshold, fast),
                len(todo),
                advance,
            )
        for i, xy in zip(todo, found):
            star_lists[i] = xy
    ref = _ref_index(ctx, fs, reference, [len(s) for s in star_lists])
    if isinstance(ref, Image):
        ref_xy, ref_shape = _reference_xy(ctx, ref, threshold), ref.shape[-2:]
        ref_i = None
    else:
        ref_i = ref
        ref_xy = star_lists[ref_i]
        ref_shape = (fs.shape if not as_list else fs.frames[ref_i].data.shape)[-2:]
    if len(ref_xy) < 4:
        what = f" ({_short(fs, ref_i)})" if ref_i is not None else ""
        raise PxProcessError(
            f"register(): the reference{what} has {len(ref_xy)} stars; it needs a good star field",
            span=ctx.span,
            hint="choose another reference, or lower threshold=",
        )

    def solve(i: int, compute: bool = True) -> Any:
        if ref_i is not None and i == ref_i:
            return rg.Transform.identity()
        if fs.is_persistent(i):
            stem = os.path.basename(fs.name(i)).split(".")[0] or f"frame{i + 1}"
            return _solve_cached(ctx, stem, ref_xy, star_lists[i], model, distortion, compute)
        if not compute:
            return None
        if len(star_lists[i]) < 4:
            return f"{len(star_lists[i])} stars found"
        try:
            return rg.solve(ref_xy, star_lists[i], model=model, distortion=distortion)
        except rg.RegistrationError as exc:
            return str(exc)

    results = [solve(i, compute=False) for i in range(n)]  # cached transforms first
    todo = [i for i in range(n) if results[i] is None]
    if todo:
        with stage(ctx.options, stage_label("register", fs), len(todo)) as advance:
            for i, r in zip(todo, _parallel(lambda k: solve(todo[k]), len(todo), advance)):
                results[i] = r
    ok = [i for i, r in enumerate(results) if isinstance(r, rg.Transform)]
    failed = [(i, r) for i, r in enumerate(results) if not isinstance(r, rg.Transform)]
    if failed:
        ctx.warning(
            f"register(): {len(failed)} of {n} frames left out: "
            + "; ".join(f"{_short(fs, i)} ({why})" for i, why in failed[:10])
            + (" …" if len(failed) > 10 else "")
        )
    if not ok:
        raise PxProcessError(
            f"register(): no frame could be aligned ({n} tried): "
            + "; ".join(f"{_short(fs, i)} ({why})" for i, why in failed[:5])
            + (" …" if len(failed) > 5 else ""),
            span=ctx.span,
            hint="is the reference of the same field? lower threshold= for faint stars",
        )
    for i in ok:
        tr = results[i]
        fs.frames[i].meta["registration"] = {
            "matched": tr.matched,
            "rms": tr.rms,
            "model": tr.model,
        }
        if drizzle:
            fs.frames[i].meta["transform"] = tr
    if as_list:
        out = []
        for i in ok:
            img = fs.read(i)
            data = rg.apply(img.data, results[i], ref_shape, interpolation, clamp)
            res = Image(data, img.header.copy() if img.header is not None else None, name=img.name)
            _history(res, results[i], model, interpolation)
            out.append(res)
        return out
    sub = fs._subset(ok)
    # the frames left out travel with the set (path, reason), for the report
    sub.skipped = [
        *getattr(fs, "skipped", []),
        *((fs.name(i), f"register: {why}") for i, why in failed),
    ]
    transforms = [results[i] for i in ok]
    common = f"{ref_shape}|{interpolation}|{clamp}|{model}|register/3"
    frame_keys = []  # each registered frame is named by its own transform
    for tr in transforms:
        digest = hashlib.sha256(np.round(tr.matrix, 9).tobytes())
        if tr.inv_spline is not None:
            digest.update(np.round(tr.inv_spline.src, 6).tobytes())
            digest.update(np.round(tr.inv_spline.disp, 6).tobytes())
        digest.update(f"{tr.model}|{tr.matched}|{tr.rms:.6g}|{common}".encode())
        frame_keys.append(digest.hexdigest())

    def op(img: Image, j: int, _t=transforms) -> Image:
        data = rg.apply(img.data, _t[j], ref_shape, interpolation, clamp, fill=np.nan)
        res = Image(data, img.header.copy() if img.header is not None else None, name=img.name)
        _history(res, _t[j], model, interpolation)
        return res

    from .preprocess import _cache_dir

    out = sub.derive(
        op,
        hashlib.sha256("|".join(frame_keys).encode()).hexdigest(),
        "registered",
        cache_dir=_cache_dir(ctx),
        frame_keys=frame_keys,
    )
    for f, g in zip(out.frames, sub.frames):
        f.meta = dict(g.meta)
        f.meta["reference_shape"] = tuple(ref_shape)
    if tuple(fs.shape[-2:]) != tuple(ref_shape):  # an outside reference of another size
        out._shape = (*fs.shape[:-2], *ref_shape)
    return out


def _history(img: Image, tr: Any, model: str, interpolation: str) -> None:
    if img.header is None:
        return
    img.header.add_history(
        f"StarAlignment: model={model} interpolation={interpolation} "
        f"matched={tr.matched} rms={tr.rms:.3f}px"
    )


# ---------------------------------------------------------------------------- normalize


@builtin(
    # The contract name is `normalize`, but pixelmath.py registers normalize(img)
    # (a range rescale) under the same name; see the report to the lead.
    "localnormalization",
    category="lights",
    aliases=("local_normalization",),
    pixinsight="LocalNormalization",
    example='n = localnormalization(register(files("lights/")), scale=64)',
)
def normalize(
    ctx: CallContext,
    frames: FrameSet | list,
    reference: str | int | Image = "best",
    method: str = "local",
    scale: int = DEFAULT_LN_SCALE,
) -> FrameSet:
    """LocalNormalization: for each registered frame find f' = a·f + O(x, y) that matches the
    reference (a from the same stars' fluxes, O the smooth background, at `scale` pixels, of
    reference − a·frame). scale: 512 by default (PixInsight's LocalNormalization went from
    128 to 1024: a finer model follows the noise); lower it for gradients that change
    within the frame. Pixels are left as they are (as PixInsight's .xnml files):
    integrate(..., normalization="local") and drizzle() apply it. reference: "best", a
    1-based frame number, a file or an image (an integration of the best frames is best)."""
    from ..process import normalization as nz
    from ..run.progress import stage

    if method != "local":
        raise PxProcessError(
            f'normalize(): only method="local" is available; got {method!r}',
            span=ctx.span,
            hint="integrate() does the global normalizations itself (normalization=)",
        )
    fs = _copy(as_frames(frames, "normalize"))
    n = len(fs)
    # The reference's pixels are read only when some frame's model is not cached yet; its
    # identity (content key, or a hash of its pixels) is part of every model's cache name.
    ref_data: list[np.ndarray] = []

    def load_ref() -> np.ndarray:
        if not ref_data:
            if isinstance(reference, Image):
                ref_data.append(reference.data)
            elif isinstance(reference, str) and reference != "best":
                from ..image import io

                ref_data.append(io.load(ctx.resolve_path(reference)).data)
            else:
                ref_data.append(_read(fs, ref_idx).data)
        return ref_data[0]

    ref_idx = None
    if isinstance(reference, Image) or (isinstance(reference, str) and reference != "best"):
        ref_key = hashlib.sha256(np.ascontiguousarray(load_ref()).tobytes()).hexdigest()
    else:
        ref_idx = _best_index(fs) if reference == "best" else int(reference) - 1
        if ref_idx is None:
            ref_idx = 0
        ref_key = fs.content_key(ref_idx)
    ref_shape = tuple(ref_data[0].shape) if ref_data else tuple(fs.shape)
    if ref_shape != tuple(fs.shape):
        raise PxProcessError(
            f"normalize(): the reference is {ref_shape[-1]}x{ref_shape[-2]} but the frames are "
            f"{fs.shape[-1]}x{fs.shape[-2]}",
            span=ctx.span,
            hint="normalize registered frames against a registered reference",
        )
    paths = [_frame_result_path(ctx, fs, i, "normalize", f"{ref_key}|{scale}") for i in range(n)]
    models: list[Any] = [None] * n
    for i, path in enumerate(paths):
        got = _load_result(path)
        if got is not None:
            models[i] = nz.model_from_arrays(got)
    todo = [i for i in range(n) if models[i] is None]
    if todo:
        ref = load_ref()
        try:
            # background and stars of the reference once, not once per frame
            prepared = (
                [nz.prepare_reference(r, scale) for r in ref]
                if ref.ndim == 3
                else nz.prepare_reference(ref, scale)
            )
        except ValueError as exc:
            raise process_error(ctx, "normalize", exc) from exc

        def one(k: int) -> Any:
            i = todo[k]
            data = _read(fs, i).data
            if data.ndim == 3:
                model = nz.ColourNormalization(
                    [nz.local_normalization(r, d, scale) for r, d in zip(prepared, data)]
                )
            else:
                model = nz.local_normalization(prepared, data, scale)
            _save_result(paths[i], nz.model_to_arrays(model))
            return model

        try:
            with stage(ctx.options, stage_label("normalize", fs), len(todo)) as advance:
                for i, m in zip(todo, _parallel(one, len(todo), advance)):
                    models[i] = m
        except ValueError as exc:
            raise process_error(ctx, "normalize", exc) from exc
    for f, m in zip(fs.frames, models):
        f.meta["normalize"] = m
    return fs


# ---------------------------------------------------------------------------- drizzle


@builtin(
    "drizzle",
    category="lights",
    aliases=("drizzleintegration",),
    pixinsight="DrizzleIntegration",
    siril="register -drizzle / stack",
    example='d = drizzle(register(files("lights/")), scale=2, pixfrac=0.9)',
)
def drizzle(
    ctx: CallContext,
    frames: FrameSet,
    scale: float = 2.0,
    pixfrac: float = 0.9,
    kernel: str = "square",
    cfa: str = "auto",
    integration: Image | str | None = None,
) -> Image:
    """DrizzleIntegration: drop each calibrated (unregistered) frame's pixels, shrunk by
    `pixfrac`, onto a grid `scale` times finer than the reference, through its registration
    transform (register(..., drizzle=true)); local normalization (normalize) is applied.
    integration: the master integrate() made of these registered frames (or its file): its
    rejection is applied (pixels it rejected in a frame, cosmic rays, satellite trails, are
    not dropped), with its normalization and weights, as DrizzleIntegration reads the .xdrz
    files ImageIntegration updated; without it, frame weights come from select(). kernel:
    square | point | turbo | gaussian | lanczos3. cfa: "auto" (raw one-shot-colour frames
    with BAYERPAT are drizzled per colour: colour without debayering), a pattern such as
    "RGGB", or "none". Values keep the frames' surface brightness."""
    from ..process.debayer import PATTERNS, cfa_masks, pattern_from_header
    from .preprocess import (
        _cacheable,
        _frame_map_path,
        _load_cached,
        _result_key,
        _result_path,
        _save_cached,
        drizzle_data,
    )

    fs = as_frames(frames, "drizzle")
    n = len(fs)
    missing = [_short(fs, i) for i in range(n) if "transform" not in fs.frames[i].meta]
    if missing:
        raise PxProcessError(
            f"drizzle(): {len(missing)} of {n} frames have no registration transform "
            f"({', '.join(missing[:5])})",
            span=ctx.span,
            hint="drizzle the output of register(frames) (with drizzle=true, the default)",
        )
    source = fs.parent if fs.parent is not None else fs  # the unregistered frames
    ref_shape = tuple(fs.frames[0].meta.get("reference_shape") or fs.shape[-2:])
    # registered after debayering: drizzle the raw mosaics (bayer drizzle) instead
    while source.op_name == "debayered" and source.parent is not None:
        source = source.parent
    pattern = None
    if cfa == "auto":
        pattern = pattern_from_header(source.header(0))
    elif cfa.lower() not in ("none", "", "false"):
        if cfa.upper() not in PATTERNS:
            raise PxProcessError(
                f"drizzle(): cfa must be auto, none or one of {', '.join(PATTERNS)}; got {cfa!r}",
                span=ctx.span,
            )
        pattern = cfa.upper()

    # the integration's drizzle data: per-frame rejection maps, normalization and weights
    ddata = None
    master = None
    map_paths: list[str | None] = [None] * n
    index: list[int | None] = [None] * n
    if integration is not None:
        master = _integration_image(ctx, integration)
        ddata = drizzle_data(ctx, master)
        if ddata is None:
            ctx.warning(
                "drizzle(): the integration given has no drizzle data (rejection maps are "
                "recorded when integrate() stacks registered frames with the cache on, and "
                "live in the cache folder); drizzled without its rejection"
            )
        else:
            outside = []
            for i in range(n):
                j = ddata["frames"].get(fs.content_key(i))
                path = _frame_map_path(ctx, fs, i, ddata["key"]) if j is not None else None
                if path is None or not os.path.exists(path):
                    outside.append(_short(fs, i))
                    continue
                index[i], map_paths[i] = j, path
            if outside:
                ctx.warning(
                    f"drizzle(): {len(outside)} of {n} frames are not in the integration "
                    "given (drizzled without rejection, with their own weight): "
                    + ", ".join(outside[:10])
                    + (" …" if len(outside) > 10 else "")
                )

    key = None
    if _cacheable(ctx, fs):
        params = {
            "scale": float(scale),
            "pixfrac": float(pixfrac),
            "kernel": kernel,
            "cfa": pattern,
            "integration": None if ddata is None else ddata["key"],
            "shape": ref_shape,
        }

        def frame_meta(i: int) -> Any:
            m = fs.frames[i].meta
            return [m["transform"], m.get("normalize"), m.get("weight"), index[i]]

        key = _result_key("drizzle", fs, params, frame_meta)
        hit = _load_cached(_result_path(ctx, "drizzle", key))
        if hit is not None:
            hit.name = "drizzle"
            return hit

    # what computing needs (drizzle, numba): not loaded when the result is cached
    from ..process.drizzle import DrizzleStack, scale_header
    from ..process.integration import read_frame_map

    first = _read(source, 0)
    if first.data.ndim == 3:
        raise PxProcessError(
            "drizzle(): frames are colour (debayered); drizzle the raw CFA frames with cfa=",
            span=ctx.span,
        )
    try:
        stack = DrizzleStack(ref_shape, scale=scale, pixfrac=pixfrac, kernel=kernel, cfa=pattern)
    except ValueError as exc:
        raise process_error(ctx, "drizzle", exc) from exc
    from ..run.progress import stage

    colours = None  # (3, H, W) bool photosite colours of a CFA mosaic
    with stage(ctx.options, stage_label("drizzle", fs), n) as advance:
        for i in range(n):
            meta = fs.frames[i].meta
            tr = meta["transform"]
            data = (first if i == 0 else _read(source, i)).data
            if pattern is not None and (colours is None or colours.shape[1:] != data.shape):
                colours = cfa_masks(data.shape, pattern) > 0
            pm = tr.pixmap(data.shape)
            data = _normalized(meta.get("normalize"), data, pm, colours)
            mask = None
            weight = float(meta.get("weight", 1.0))
            j = index[i]
            if j is not None and ddata is not None:
                # where each frame pixel lands in the reference grid (the maps live there)
                xi = np.clip(np.rint(pm[..., 0]).astype(np.intp), 0, ref_shape[1] - 1)
                yi = np.clip(np.rint(pm[..., 1]).astype(np.intp), 0, ref_shape[0] - 1)
                try:
                    low, high = read_frame_map(map_paths[i], ref_shape[1])
                except (OSError, ValueError) as exc:
                    raise PxProcessError(
                        f"drizzle(): the rejection map of {_short(fs, i)} is unreadable ({exc})",
                        span=ctx.span,
                        hint="delete the cache folder and run again",
                    ) from exc
                rejected = low | high
                if rejected.shape[-2:] != ref_shape:
                    raise PxProcessError(
                        f"drizzle(): the rejection map of {_short(fs, i)} is "
                        f"{rejected.shape[-1]}x{rejected.shape[-2]}, the reference "
                        f"{ref_shape[1]}x{ref_shape[0]}",
                        span=ctx.span,
                    )
                a, b = ddata["scale"][:, j], ddata["offset"][:, j]
                if rejected.ndim == 3 and colours is not None:
                    # each photosite by the rejection of its own colour
                    flagged = np.zeros(data.shape, bool)
                    for k in range(3):
                        flagged |= colours[k] & rejected[k][yi, xi]
                    gain = sum(colours[k] * np.float32(a[k]) for k in range(3))
                    shift = sum(colours[k] * np.float32(b[k]) for k in range(3))
                    data = data * gain + shift
                else:
                    plane = rejected.any(axis=0) if rejected.ndim == 3 else rejected
                    flagged = plane[yi, xi]
                    data = data * np.float32(np.mean(a)) + np.float32(np.mean(b))
                mask = flagged
                weight = float(ddata["weights"][j])
            try:
                stack.add(data, pm, weight=weight, mask=mask)
            except ValueError as exc:
                raise PxProcessError(f"drizzle(): {_short(fs, i)}: {exc}", span=ctx.span) from exc
            advance()
    img, wht = stack.result()
    header = _drizzle_header(source, master if ddata is not None else None, img)
    out = Image(img, header, name="drizzle")
    if header is not None:
        header.remove("PXREJKEY", ignore_missing=True)
        scale_header(header, float(scale))
        header["DRIZSCAL"] = (float(scale), "drizzle scale")
        header["DRIZPIXF"] = (float(pixfrac), "drizzle pixfrac")
        header["NCOMBINE"] = (n, "frames drizzled")
        header.add_history(
            f"DrizzleIntegration: {n} frames scale={scale:g} pixfrac={pixfrac:g} kernel={kernel}"
            + (f" cfa={pattern}" if pattern else "")
        )
        if ddata is not None:
            header.add_history(  # HISTORY lines hold 72 characters
                "DrizzleIntegration: the integration's rejection applied to "
                f"{sum(j is not None for j in index)} frames"
            )
        for key_ in ("BAYERPAT", "XBAYROFF", "YBAYROFF"):
            if pattern and key_ in header:
                del header[key_]
    if key is not None:
        out = _save_cached(_result_path(ctx, "drizzle", key), out)
    return out


def _drizzle_header(source: FrameSet, master: Image | None, img: np.ndarray) -> Any:
    """The drizzled master's header: the integration's when its rejection was applied (a
    Master Light with its exposure, frame count and rejection figures), else the first
    frame's made a Master Light with the frames' exposure; the noise is the drizzled
    image's own."""
    from ..process import normalize_global as ng
    from ..process.integration import set_exposure

    if master is not None and master.header is not None:
        header = master.header.copy()
    else:
        first = source.header(0)
        if first is None:
            return None
        header = first.copy()
        set_exposure(header, source, "drizzled")
    header["IMAGETYP"] = "Master Light"
    noise = ng.noise_estimate(img)
    if np.isfinite(noise):
        header["NOISEEST"] = (float(f"{noise:.6g}"), "noise estimate (sigma, first differences)")
    return header


def _integration_image(ctx: CallContext, integration: Image | str) -> Image:
    """drizzle(integration=): the master, or the file it was saved to."""
    if isinstance(integration, Image):
        return integration
    if isinstance(integration, str):
        from ..image import io

        return io.load(ctx.resolve_path(integration))
    raise PxProcessError(
        "drizzle(): integration= takes the master integrate() made of the registered frames "
        f"(or its file), not {type(integration).__name__}",
        span=ctx.span,
    )


def _normalized(model: Any, data: np.ndarray, pm: np.ndarray, colours: Any) -> np.ndarray:
    """A raw frame with its local normalization applied. The model lives in the registered
    geometry: its offset is evaluated where each frame pixel lands; a colour model (of
    debayered frames) applies to each photosite by its colour."""
    if model is None:
        return data
    if hasattr(model, "offset_at"):
        return model.scale * data + model.offset_at(pm[..., 0], pm[..., 1])
    models = getattr(model, "models", None)
    if models is not None and colours is not None and len(models) == 3:
        out = np.empty(data.shape, np.float32)
        for k, m in enumerate(models):
            sel = colours[k]
            out[sel] = m.scale * data[sel] + m.offset_at(pm[..., 0][sel], pm[..., 1][sel])
        return out
    return data


# ---------------------------------------------------------------------------- debayer


_RAW_EXT = re.compile(r"\.(cr2|cr3|nef|arw|dng|orf|raf|rw2|pef|srw)$", re.IGNORECASE)


@builtin(
    "debayer",
    category="lights",
    aliases=("demosaic",),
    pixinsight="Debayer",
    siril="debayer",
    example='rgb = debayer(L, pattern="RGGB", method="bilinear")',
)
def debayer(
    ctx: CallContext,
    frames: FrameSet | Image | str,
    pattern: str = "auto",
    method: str = "vng",
) -> FrameSet | Image | list:
    """Demosaic one-shot-colour frames into RGB. pattern: "auto" (BAYERPAT with XBAYROFF /
    YBAYROFF from the header) or RGGB | BGGR | GRBG | GBRG. method: vng (variable number of
    gradients: no colour fringes on stars) | bilinear | superpixel (2×2 cell → one pixel,
    half size). A camera raw file or pattern (.CR2, .NEF, .ARW, .DNG…) is read through rawpy
    (pip install 'pxlang[raw]')."""
    from ..process import debayer as db

    if method not in db.METHODS:
        raise PxProcessError(
            f"debayer(): method must be one of {', '.join(db.METHODS)}; got {method!r}",
            span=ctx.span,
        )

    def pat_for(header: Any, what: str) -> str:
        if pattern != "auto":
            try:
                return db.shift_pattern(pattern)
            except ValueError as exc:
                raise process_error(ctx, "debayer", exc) from exc
        found = db.pattern_from_header(header)
        if found is None:
            raise PxProcessError(
                f"debayer(): {what} has no BAYERPAT in its header",
                span=ctx.span,
                hint='give the pattern: debayer(..., pattern="RGGB")',
            )
        return found

    def one(img: Image, what: str) -> Image:
        if img.data.ndim != 2:
            raise PxProcessError(f"debayer(): {what} is already colour", span=ctx.span)
        pat = pat_for(img.header, what)
        data = db.debayer(img.data, pat, method)
        header = img.header.copy() if img.header is not None else None
        if header is not None:
            for key in ("BAYERPAT", "XBAYROFF", "YBAYROFF"):
                if key in header:
                    del header[key]
            header.add_history(f"Debayer: pattern={pat} method={method}")
        return Image(data, header, name=img.name)

    if isinstance(frames, str):
        import glob

        pattern = ctx.resolve_path(frames)
        paths = sorted(glob.glob(pattern))
        runtrace.listed("glob", pattern, paths)
        paths = paths or [pattern]
        out = []
        for p in paths:
            if not _RAW_EXT.search(p):
                raise PxProcessError(
                    f"debayer(): {p} is not a camera raw file; load FITS with files() or load()",
                    span=ctx.span,
                )
            try:
                runtrace.read(p)
                cfa_data, letters, meta = db.read_raw(p)
            except (ImportError, ValueError) as exc:
                raise PxProcessError(f"debayer(): {exc}", span=ctx.span) from exc
            img = Image(
                db.debayer(cfa_data, pattern if pattern != "auto" else letters, method),
                name=os.path.basename(p),
                path=p,
            )
            out.append(img)
        return out[0] if len(out) == 1 else out
    if isinstance(frames, Image):
        return one(frames, frames.name or "the image")
    fs = as_frames(frames, "debayer")

    def op(img: Image, i: int) -> Image:
        return one(img, _short(fs, i))

    from .preprocess import _cache_dir

    key = hashlib.sha256(f"{pattern}|{method}|debayer/1".encode()).hexdigest()
    return fs.derive(op, key, "debayered", cache_dir=_cache_dir(ctx))
