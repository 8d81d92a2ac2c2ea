"""Image files: round trips, normalisation, headers, provenance, atomic writes, bad files."""

from __future__ import annotations

import builtins
import gzip
import hashlib
import os

import numpy as np
import pytest
from astropy.io import fits

from pxlang._version import __version__
from pxlang.image import fits as fits_format
from pxlang.image import io
from pxlang.image.provenance import parse_provenance, provenance_lines
from pxlang.image.store import Image
from pxlang.lang.errors import PxIOError

RNG_SEED = 20261125


def frame(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Random [0, 1] float32 data that also holds the exact ends 0 and 1."""
    data = np.random.default_rng(RNG_SEED + seed).random(shape).astype(np.float32)
    data[..., 0, 0] = 0.0
    data[..., 0, 1] = 1.0
    return data


def smooth(shape: tuple[int, ...]) -> np.ndarray:
    """A smooth gradient (what lossy JPEG keeps well)."""
    h, w = shape[-2:]
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 0.1 + 0.8 * (x + y) / (h + w)
    if len(shape) == 3:
        return np.stack([base, base[::-1], base[:, ::-1]]).astype(np.float32)
    return base.astype(np.float32)


def sha(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


# (extension, bits, exact?) for every format and depth we write
CASES = [
    (".fits", 32),
    (".fits", 16),
    (".fits", 8),
    (".fits.gz", 32),
    (".fits.gz", 16),
    (".xisf", 32),
    (".xisf", 16),
    (".xisf", 8),
    (".tif", 16),
    (".tif", 32),
    (".tif", 8),
    (".png", 8),
    (".png", 16),
]


@pytest.mark.parametrize("colour", [False, True], ids=["mono", "rgb"])
@pytest.mark.parametrize(("ext", "bits"), CASES, ids=[f"{e}-{b}" for e, b in CASES])
def test_round_trip(tmp_path, ext, bits, colour):
    shape = (3, 17, 23) if colour else (17, 23)
    data = frame(shape)
    path = str(tmp_path / f"img{ext}")
    assert io.save(Image(data), path, bits=bits) == path
    img = io.load(path)
    assert img.data.dtype == np.float32
    assert img.shape == shape
    assert io.image_shape(path) == shape
    if bits == 32:
        np.testing.assert_array_equal(img.data, data)
    else:
        top = (1 << bits) - 1
        # the stored integers are exactly the rounded samples, and read back as k / top
        np.testing.assert_array_equal(np.rint(img.data * top), np.rint(data * top))
        assert np.abs(img.data - data).max() <= 0.5 / top + 1e-7
    assert img.data[..., 0, 0].tolist() == ([0.0] * 3 if colour else 0.0)
    assert img.data[..., 0, 1].tolist() == ([1.0] * 3 if colour else 1.0)
    assert img.name == "img"
    assert img.path == path


@pytest.mark.parametrize("colour", [False, True], ids=["mono", "rgb"])
def test_jpeg_round_trip_is_close(tmp_path, colour):
    shape = (3, 32, 48) if colour else (32, 48)
    data = smooth(shape)
    path = str(tmp_path / "prev.jpg")
    io.save(data, path)
    img = io.load(path)
    assert img.shape == shape
    # quality 95, no chroma subsampling: a few levels at worst, under one on average
    assert np.abs(img.data - data).max() < 4 / 255
    assert np.abs(img.data - data).mean() < 1 / 255


def test_previews_clip_and_zero_nan(tmp_path):
    data = np.array([[-0.5, 1.5], [np.nan, 0.5]], dtype=np.float32)
    io.save(data, str(tmp_path / "c.png"))
    got = io.load(str(tmp_path / "c.png")).data
    np.testing.assert_array_equal(got, np.array([[0, 1], [0, 128 / 255]], dtype=np.float32))


def test_float_fits_keeps_values_outside_unit_range_and_nans(tmp_path):
    data = np.array([[-0.25, 3.5], [np.nan, 65535.0]], dtype=np.float32)
    path = str(tmp_path / "f.fits")
    io.save(data, path)
    got = io.load(path).data
    np.testing.assert_array_equal(got, data)  # NaN == NaN via assert_array_equal


# ---------------------------------------------------------------------------------------
# integer FITS normalisation


def write_hdu(path, data, **cards):
    hdu = fits.PrimaryHDU(data)
    for k, v in cards.items():
        hdu.header[k] = v
    hdu.writeto(path)


def test_uint16_with_bzero_normalised(tmp_path):
    path = str(tmp_path / "u16.fits")
    raw = np.array([[0, 1, 32768, 65535]], dtype=np.uint16)
    fits.PrimaryHDU(raw).writeto(path)
    hdr = fits.getheader(path)
    assert (hdr["BITPIX"], hdr["BZERO"]) == (16, 32768)  # the file really is the convention
    got = io.load(path).data
    assert got.tolist() == [[0.0, np.float32(1 / 65535), np.float32(32768 / 65535), 1.0]]
    np.testing.assert_array_equal(io.read_rows(path, 0, 1), got)
    assert io.load(path).header["BITPIX"] == -32 and "BZERO" not in io.load(path).header


def test_uint8_int16_int32_uint32_normalised(tmp_path):
    cases = [
        (np.array([[0, 128, 255]], np.uint8), [0.0, 128 / 255, 1.0], 8),
        (np.array([[0, 32767, -32768]], np.int16), [0.0, 1.0, -32768 / 32767], 16),
        (np.array([[0, 2**31 - 1, -5]], np.int32), [0.0, 1.0, -5 / (2**31 - 1)], 32),
        (np.array([[0, 2**32 - 1, 2**31]], np.uint32), [0.0, 1.0, 2**31 / (2**32 - 1)], 32),
    ]
    for i, (raw, want, bitpix) in enumerate(cases):
        path = str(tmp_path / f"i{i}.fits")
        fits.PrimaryHDU(raw).writeto(path)
        assert fits.getheader(path)["BITPIX"] == bitpix
        got = io.load(path).data
        np.testing.assert_allclose(got[0], np.array(want, dtype=np.float32), rtol=1e-7, atol=0)


def test_bscale_and_blank(tmp_path):
    path = str(tmp_path / "s.fits")
    raw = np.array([[0, 100, -32768, 32767]], dtype=np.int16)
    hdu = fits.PrimaryHDU(raw, do_not_scale_image_data=True)
    hdu.header["BSCALE"] = 2.0
    hdu.header["BZERO"] = 10.0
    hdu.header["BLANK"] = -32768
    hdu.writeto(path)
    got = io.load(path).data[0]
    top = 32767 * 2.0 + 10.0
    np.testing.assert_allclose(got[[0, 1, 3]], [10 / top, 210 / top, 1.0], rtol=1e-6)
    assert np.isnan(got[2])  # BLANK -> no data, and the rest of the frame survives


def test_naxis3_mono_colour_and_extension(tmp_path):
    one = frame((1, 6, 5))
    p1 = str(tmp_path / "one.fits")
    fits.PrimaryHDU(one).writeto(p1)
    assert io.load(p1).shape == (6, 5)
    assert io.image_shape(p1) == (6, 5)
    np.testing.assert_array_equal(io.load(p1).data, one[0])

    rgb = frame((3, 6, 5))
    p3 = str(tmp_path / "rgb.fits")
    fits.PrimaryHDU(rgb).writeto(p3)
    np.testing.assert_array_equal(io.load(p3).data, rgb)

    p4 = str(tmp_path / "four.fits")
    fits.PrimaryHDU(rgb[None]).writeto(p4)  # NAXIS4 = 1 is just a wrapper
    np.testing.assert_array_equal(io.load(p4).data, rgb)

    pe = str(tmp_path / "ext.fits")
    primary = fits.PrimaryHDU()
    primary.header["OBJECT"] = "M42"
    ext = fits.ImageHDU(rgb[0])
    ext.header["EXPTIME"] = 120.0
    fits.HDUList([primary, ext]).writeto(pe)
    img = io.load(pe)
    np.testing.assert_array_equal(img.data, rgb[0])
    assert img.header["OBJECT"] == "M42" and img.header["EXPTIME"] == 120.0
    assert "XTENSION" not in img.header and img.header["SIMPLE"] is True
    assert io.read_header(pe)["XTENSION"] == "IMAGE"  # read_header: the HDU as stored


def test_tile_compressed_fits(tmp_path):
    path = str(tmp_path / "tiles.fits")
    u16 = (np.arange(40 * 30, dtype=np.uint32) * 53 % 65536).astype(np.uint16).reshape(40, 30)
    i16 = (np.arange(40 * 30) - 600).astype(np.int16).reshape(40, 30)
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(u16), fits.CompImageHDU(i16)]).writeto(path)
    got = io.load(path).data  # the first image HDU
    np.testing.assert_allclose(got, u16 / 65535, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(io.read_rows(path, 4, 9), got[4:9])
    p2 = str(tmp_path / "tiles2.fits")
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(i16)]).writeto(p2)
    np.testing.assert_allclose(io.load(p2).data, i16 / 32767, rtol=0, atol=1e-7)


def test_tiff_layouts_from_other_software(tmp_path):
    import tifffile

    rng = np.random.default_rng(5)
    planar = rng.integers(0, 65536, (3, 6, 7)).astype(np.uint16)
    p = str(tmp_path / "planar.tif")
    tifffile.imwrite(p, planar, photometric="rgb", planarconfig="separate", description="cam X")
    img = io.load(p)
    np.testing.assert_array_equal(img.data, planar / np.float32(65535))
    assert "TIFF: cam X" in [str(v) for v in img.header["COMMENT"]]
    rgba = rng.integers(0, 256, (6, 7, 4)).astype(np.uint8)
    p = str(tmp_path / "rgba.tif")
    tifffile.imwrite(p, rgba, photometric="rgb", extrasamples=["unassalpha"])
    np.testing.assert_array_equal(
        io.load(p).data, rgba[..., :3].transpose(2, 0, 1) / np.float32(255)
    )
    assert io.image_shape(p) == (3, 6, 7)
    signed = np.array([[0, 32767, -100]], np.int16)
    p = str(tmp_path / "signed.tif")
    tifffile.imwrite(p, signed, photometric="minisblack")
    np.testing.assert_allclose(io.load(p).data, signed / 32767, rtol=1e-7)


# ---------------------------------------------------------------------------------------
# headers and provenance


def test_header_keywords_travel_and_structure_is_regenerated(tmp_path):
    src = str(tmp_path / "src.fits")
    hdu = fits.PrimaryHDU(np.array([[0, 1000], [65535, 7]], dtype=np.uint16))
    hdu.header["OBJECT"] = ("NGC 7000", "target")
    hdu.header["EXPTIME"] = 300.0
    hdu.header["GAIN"] = 100
    hdu.header["FILTER"] = "Ha"
    hdu.header["COOLED"] = True
    hdu.header.add_history("calibrated elsewhere")
    hdu.writeto(src)
    img = io.load(src)
    for ext in (".fits", ".xisf", ".tif"):
        out = str(tmp_path / f"out{ext}")
        io.save(img, out)
        h = io.load(out).header
        assert h["OBJECT"] == "NGC 7000"
        assert h["EXPTIME"] == 300.0 and h["GAIN"] == 100 and h["COOLED"] is True
        assert h["FILTER"] == "Ha"
        assert "calibrated elsewhere" in [str(v) for v in h["HISTORY"]]
        assert "BZERO" not in h and h["BITPIX"] == -32
    raw = fits.getheader(str(tmp_path / "out.fits"))
    assert raw["BITPIX"] == -32 and "BZERO" not in raw and "BSCALE" not in raw
    assert raw.comments["OBJECT"] == "target"
    assert list(raw.keys())[:5] == ["SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2"]
    # an explicit header replaces the image's
    io.save(img, str(tmp_path / "h.fits"), header={"OBJECT": "other", "NAXIS1": 99})
    h = fits.getheader(str(tmp_path / "h.fits"))
    assert h["OBJECT"] == "other" and h["NAXIS1"] == 2 and "FILTER" not in h


@pytest.mark.parametrize("ext", [".fits", ".xisf", ".tif"])
def test_long_and_hierarch_keywords_travel(tmp_path, ext):
    from astropy.io.fits.verify import VerifyWarning

    h = fits.Header()
    with pytest.warns(VerifyWarning):  # astropy says it makes a HIERARCH card
        h["ESO DET DIT"] = 1.5
    h["NOTES"] = "a long note " * 20
    h["OBJECT"] = "M1"
    path = str(tmp_path / f"h{ext}")
    io.save(Image(np.full((3, 4), 0.5, np.float32), h), path)
    back = io.load(path).header
    assert back["ESO DET DIT"] == 1.5
    assert back["NOTES"] == ("a long note " * 20).rstrip()
    assert back["OBJECT"] == "M1"


def test_uint16_output_is_bitpix16_bzero(tmp_path):
    path = str(tmp_path / "u.fits")
    io.save(np.array([[0.0, 1.0, 0.5]], np.float32), path, bits=16)
    with fits.open(path, do_not_scale_image_data=True) as hdul:
        assert hdul[0].header["BITPIX"] == 16 and hdul[0].header["BZERO"] == 32768
        assert hdul[0].data.tolist() == [[-32768, 32767, 0]]  # 0, 65535, 32768 stored
    with fits.open(path) as hdul:
        assert hdul[0].data.dtype == np.uint16


PROV = {
    "source": "bicolour",
    "text": "R = Ha\nG = (Ha*0.5)+(OIII*~0.5)  # \u00e9t\u00e9 " + "x" * 150,
    "params": {"k": 0.5, "lights": "lights/*.fits"},
}


def _history_of(path: str) -> list[str]:
    fmt = io.format_of(path)
    if fmt in ("fits", "xisf", "tiff"):
        return [str(v) for v in io.read_header(path)["HISTORY"]]
    from PIL import Image as PILImage

    with PILImage.open(path) as im:
        text = im.info.get("Comment") or im.info.get("comment")
    text = text.decode("latin-1") if isinstance(text, bytes) else text
    return text.splitlines()


@pytest.mark.parametrize("ext", [".fits", ".fits.gz", ".xisf", ".tif", ".png", ".jpg"])
def test_provenance_in_every_written_file(tmp_path, ext):
    path = str(tmp_path / f"p{ext}")
    io.save(smooth((8, 8)), path, provenance=PROV)
    lines = _history_of(path)
    assert f"pxlang {__version__}" in lines
    (write,) = parse_provenance(lines)
    assert write["version"] == __version__ and write["source"] == "bicolour"
    assert write["params"] == "k=0.5 lights='lights/*.fits'"
    want = PROV["text"].replace("\u00e9", "\\xe9")  # headers are ASCII: escaped, not lost
    assert write["text"] == want
    if io.format_of(path) in ("fits", "xisf", "tiff"):
        assert io.read_header(path)["PXVERSN"] == __version__


def test_provenance_lines_fit_cards_and_keep_blanks_at_breaks():
    text = "a" * 58 + "  " + "b" * 70 + "   c"
    lines = provenance_lines({"text": text})
    assert all(len(ln) <= 72 for ln in lines)
    assert all(not ln.endswith(" ") for ln in lines)
    assert parse_provenance([ln.rstrip() for ln in lines])[0]["text"] == text


def test_history_accumulates_over_writes(tmp_path):
    a, b = str(tmp_path / "a.fits"), str(tmp_path / "b.fits")
    io.save(frame((4, 4)), a, provenance={"text": "first"})
    io.save(io.load(a), b, provenance={"text": "second"})
    writes = parse_provenance([str(v) for v in io.read_header(b)["HISTORY"]])
    assert [w["text"] for w in writes] == ["first", "second"]


# ---------------------------------------------------------------------------------------
# atomic writes, inputs untouched


@pytest.mark.parametrize("writer", ["_write_fits", "_write_xisf", "_write_tiff"])
def test_failed_write_leaves_nothing(tmp_path, monkeypatch, writer):
    ext = {"_write_fits": ".fits", "_write_xisf": ".xisf", "_write_tiff": ".tif"}[writer]
    existing = str(tmp_path / f"old{ext}")
    io.save(frame((5, 5)), existing)
    before = sha(existing)

    def boom(fh, *args, **kwargs):
        fh.write(b"half a file")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(io, writer, boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        io.save(frame((5, 5)), str(tmp_path / f"new{ext}"))
    with pytest.raises(RuntimeError):
        io.save(frame((5, 5), seed=1), existing)
    assert sorted(os.listdir(tmp_path)) == [f"old{ext}"]  # no new file, no temp left
    assert sha(existing) == before


def test_overwrite_false_refuses_and_keeps_the_file(tmp_path):
    path = str(tmp_path / "k.fits")
    io.save(frame((4, 4)), path)
    before = sha(path)
    with pytest.raises(PxIOError, match="exists"):
        io.save(frame((4, 4), seed=2), path, overwrite=False)
    assert sha(path) == before and os.listdir(tmp_path) == ["k.fits"]
    io.save(frame((4, 4), seed=2), str(tmp_path / "new.fits"), overwrite=False)
    assert io.load(str(tmp_path / "new.fits")).shape == (4, 4)


def test_save_creates_folders_and_rejects_bad_options(tmp_path):
    path = str(tmp_path / "masters" / "bias.fits")
    io.save(frame((4, 4)), path)
    assert os.path.exists(path)
    with pytest.raises(PxIOError, match=r"bits = 32, 16, 8, not 12"):
        io.save(frame((4, 4)), str(tmp_path / "x.fits"), bits=12)
    with pytest.raises(PxIOError, match="compression"):
        io.save(frame((4, 4)), str(tmp_path / "x.fits"), compression="zlib")
    with pytest.raises(PxIOError, match="JPEG"):
        io.save(frame((4, 4)), str(tmp_path / "x.jpg"), bits=16)
    with pytest.raises(PxIOError, match=r"x\.fits"):
        io.save(np.zeros((2, 3, 4, 5)), str(tmp_path / "x.fits"))
    assert sorted(os.listdir(tmp_path)) == ["masters"]


@pytest.mark.parametrize("ext", [".fits", ".fits.gz", ".xisf", ".tif", ".png", ".jpg"])
def test_reading_never_changes_or_opens_the_input_for_writing(tmp_path, monkeypatch, ext):
    path = str(tmp_path / f"in{ext}")
    io.save(smooth((3, 12, 10)), path)
    before, mtime = sha(path), os.stat(path).st_mtime_ns
    opened = []
    real_open = builtins.open

    def spy(file, mode="r", *args, **kwargs):
        opened.append((str(file), mode))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    img = io.load(path)
    img.data[:] = 0.5  # the loaded pixels are ours, not a view of the file
    io.read_rows(path, 2, 5)
    io.read_header(path)
    io.image_shape(path)
    monkeypatch.undo()
    assert not [m for f, m in opened if f == path and set(m) & set("wax+")]
    assert sha(path) == before and os.stat(path).st_mtime_ns == mtime


# ---------------------------------------------------------------------------------------
# read_rows


@pytest.mark.parametrize("ext", [".fits", ".fits.gz", ".xisf", ".tif", ".png"])
@pytest.mark.parametrize("colour", [False, True], ids=["mono", "rgb"])
def test_read_rows_equals_load_slice(tmp_path, ext, colour):
    shape = (3, 40, 9) if colour else (40, 9)
    path = str(tmp_path / f"r{ext}")
    io.save(frame(shape), path, bits=16 if ext != ".tif" else 32)
    full = io.load(path).data
    for r0, r1 in [(0, 1), (5, 17), (39, 40), (0, 40), (7, 7)]:
        band = io.read_rows(path, r0, r1)
        assert band.dtype == np.float32
        np.testing.assert_array_equal(band, full[..., r0:r1, :])


def test_read_rows_uses_a_memory_map_for_plain_fits(tmp_path, monkeypatch):
    path = str(tmp_path / "big.fits")
    raw = (np.arange(64 * 32, dtype=np.uint32) % 65536).astype(np.uint16).reshape(64, 32)
    fits.PrimaryHDU(raw).writeto(path)
    io.image_shape(path)  # layout now known
    monkeypatch.setattr(fits_format, "_open", lambda p: pytest.fail("astropy read pixels"))
    band = io.read_rows(path, 10, 12)
    np.testing.assert_array_equal(band, raw[10:12].astype(np.float32) / 65535)


def test_file_rewritten_in_place_is_not_read_with_a_stale_layout(tmp_path):
    path = str(tmp_path / "same.fits")
    fits.PrimaryHDU(np.array([[0, 65535]], np.uint16)).writeto(path)  # BZERO 32768
    assert io.load(path).data.tolist() == [[0.0, 1.0]]
    key = os.path.abspath(path)
    _, signature, layout = fits_format._LAYOUTS[key]
    fits.PrimaryHDU(np.array([[0, 32767]], np.int16)).writeto(path, overwrite=True)  # no BZERO
    assert os.path.getsize(path) == layout.offset + 2880  # same size: only the header differs
    # what a same-tick rewrite looks like: size, inode and times all unchanged
    st = os.stat(path)
    fits_format._LAYOUTS[key] = (
        (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino),
        signature,
        layout,
    )
    assert io.load(path).data.tolist() == [[0.0, 1.0]]  # 32767 / 32767, read with the new header
    assert io.read_header(path).get("BZERO") is None


# ---------------------------------------------------------------------------------------
# bad files


def _expect_error(path: str, *patterns: str) -> PxIOError:
    with pytest.raises(PxIOError) as info:
        io.load(path)
    msg = str(info.value)
    assert path in msg
    for pat in patterns:
        assert pat in msg, msg
    return info.value


@pytest.mark.parametrize("ext", [".fits", ".xisf", ".tif", ".png", ".jpg", ".fits.gz"])
def test_missing_empty_and_garbage_files(tmp_path, ext):
    _expect_error(str(tmp_path / f"nothere{ext}"), "no such file")
    empty = str(tmp_path / f"empty{ext}")
    open(empty, "wb").close()
    _expect_error(empty, "empty")
    junk = str(tmp_path / f"junk{ext}")
    with open(junk, "wb") as fh:
        fh.write(b"this is not an image at all\n" * 200)
    err = _expect_error(junk)
    if ext == ".fits":  # said plainly, not astropy's advice to force the file open
        assert "not a FITS file: it does not begin with a FITS header" in err.message
        assert "ignore_missing_simple" not in err.message


def test_unknown_extension_named():
    with pytest.raises(PxIOError, match=r"notes\.txt.*'\.txt'"):
        io.format_of("notes.txt")
    with pytest.raises(PxIOError, match="notes.txt"):
        io.load("notes.txt")
    assert io.format_of("A.FIT") == "fits" and io.format_of("x.Fits.GZ") == "fits"


@pytest.mark.parametrize("ext", [".fits", ".xisf", ".tif", ".png", ".fits.gz"])
def test_truncated_files(tmp_path, ext):
    path = str(tmp_path / f"t{ext}")
    io.save(frame((64, 64)), path, bits=16)
    with open(path, "rb") as fh:
        whole = fh.read()
    with open(path, "wb") as fh:
        fh.write(whole[: len(whole) - 3000])
    err = _expect_error(path)
    if ext in (".fits", ".xisf"):
        assert "truncated" in str(err)
        # found where the header is read, as files() checks a night: the file is left out
        # instead of stopping the run when its pixels are read
        with pytest.raises(PxIOError, match="truncated"):
            io.read_header(path)


def test_fits_truncated_data_named_as_truncated(tmp_path):
    path = str(tmp_path / "cut.fits")
    fits.PrimaryHDU(frame((100, 100))).writeto(path)
    with open(path, "r+b") as fh:
        fh.truncate(2880 + 100 * 100 * 2)
    _expect_error(path, "truncated", "promises")
    with pytest.raises(PxIOError, match="truncated"):
        io.read_rows(path, 0, 2)


def test_wrong_shapes(tmp_path):
    p = str(tmp_path / "cube.fits")
    fits.PrimaryHDU(np.zeros((4, 5, 6), np.float32)).writeto(p)
    _expect_error(p, "NAXIS3 = 4")
    p = str(tmp_path / "line.fits")
    fits.PrimaryHDU(np.zeros(6, np.float32)).writeto(p)
    _expect_error(p, "1-D")
    p = str(tmp_path / "noimg.fits")
    fits.PrimaryHDU().writeto(p)
    _expect_error(p, "no image data")
    p = str(tmp_path / "cube.tif")
    import tifffile

    tifffile.imwrite(p, np.zeros((5, 4, 6, 7), np.uint16), photometric="minisblack")
    _expect_error(p, "not a mono or RGB image")


@pytest.mark.parametrize("ext", [".fits", ".xisf", ".tif"])
def test_all_nan_rejected_partial_nan_kept(tmp_path, ext):
    path = str(tmp_path / f"nan{ext}")
    io.save(np.full((4, 4), np.nan, np.float32), path, bits=32)
    _expect_error(path, "NaN")
    data = frame((4, 4))
    data[1, 2] = np.nan
    io.save(data, path, bits=32)
    got = io.load(path).data
    assert np.isnan(got[1, 2]) and np.isnan(got).sum() == 1


def test_corrupt_gzip(tmp_path):
    path = str(tmp_path / "z.fits.gz")
    with gzip.open(path, "wb") as fh:
        fh.write(b"SIMPLE  =  garbage" * 500)
    _expect_error(path)


def test_error_message_has_a_hint_for_missing_files(tmp_path):
    err = _expect_error(str(tmp_path / "Ha.fits"), "cannot read")
    assert err.hint


def test_quick_header_reader_agrees_with_astropy(tmp_path):
    """The direct primary-header read gives what astropy's full reader gives; files it does
    not handle (image in an extension, long headers) still come through astropy."""
    pf = fits_format
    data = np.arange(12, dtype=np.float32).reshape(3, 4)
    hdr = fits.Header()
    for k in range(60):  # more than one 2880-byte block of cards
        hdr[f"KEY{k}"] = (k, "a card")
    hdr["FILTER"] = "Ha"
    prim = tmp_path / "primary.fits"
    fits.PrimaryHDU(data, hdr).writeto(prim)
    ext = tmp_path / "ext.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, hdr)]).writeto(ext)
    for path in (prim, ext):
        size = path.stat().st_size
        quick = pf._parse_layout(str(path), size)
        header, extra, index, offset = pf._layout_by_astropy(str(path), fits, False)
        assert quick.offset == offset and quick.index == index
        assert list(quick.header.items()) == list(header.items())
        assert quick.header["FILTER"] == "Ha" and quick.file_shape == (3, 4)
    assert pf._primary_header(str(ext))[0]["NAXIS"] == 0  # → astropy finds the extension


def test_fits_header_text_outside_printable_ascii_is_written_as_question_marks(tmp_path):
    """A header read from a damaged or foreign file may hold bytes 0x80-0xFF (read as
    Latin-1) or control characters; FITS allows printable ASCII only: each becomes '?'
    when the header is written again (it raised UnicodeEncodeError, found by the fuzz test)."""
    src = tmp_path / "src.fits"
    hdr = fits.Header()
    hdr["OBJECT"] = "M42"
    hdr.add_history("cafe X tab here")
    fits.writeto(src, np.zeros((4, 5), np.float32), hdr)
    raw = bytearray(src.read_bytes())
    at = raw.index(b"cafe X tab here")
    raw[at + 3] = 0xE9  # é in Latin-1
    raw[at + 5] = 0x80
    raw[at + 10] = 0x09  # a tab
    src.write_bytes(bytes(raw))
    out = tmp_path / "o.fits"
    io.save(io.load(str(src)), str(out))
    assert out.stat().st_size % 2880 == 0
    back = io.read_header(str(out))
    assert "caf? ? tab?here" in [str(h) for h in back["HISTORY"]]
    assert back["OBJECT"] == "M42"
