"""Scripts: assignments, functions, imports, loops, conditions, params, image arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

import pxlang
from pxlang.lang.errors import PxError, PxNameError, PxRuntimeError, PxTypeError


def run(text, **images):
    return pxlang.evaluate(text, images=images)


def test_numbers_strings_lists():
    assert run("x = 2\ny = x * 3 + 1\ny") == 7.0
    assert run('a = "raw/" + "Ha"\na') == "raw/Ha"
    assert run("xs = [1, 2, 3]\nxs[1] + xs[-1]") == 5.0
    assert run("[1, 2] + [3]") == [1.0, 2.0, 3.0]


def test_scalar_arithmetic_is_not_truncated_in_scripts():
    assert run("n = 5\nn * 2") == 10.0


def test_image_arithmetic_truncates_by_default():
    ha = np.array([[0.2, 0.8]], np.float32)
    out = run("Ha * 2", Ha=ha)
    np.testing.assert_allclose(out, [[0.4, 1.0]], rtol=1e-6)


def test_user_functions_one_line_and_block_with_defaults():
    text = "def f(a, b=2) = a*b\ndef g(a) {\n  t = a + 1\n  t * 10\n}\nf(3) + g(1) + f(1, b=5)"
    assert run(text) == 6 + 20 + 5


def test_recursion_is_limited():
    with pytest.raises(PxRuntimeError, match="nest deeper"):
        run("def f(n) = f(n + 1)\nf(0)")


def test_channel_form_builds_rgb_from_three_expressions():
    ha = np.full((2, 3), 0.6, np.float32)
    o3 = np.full((2, 3), 0.2, np.float32)
    out = run("hoo = { R = Ha; G = (Ha*0.5)+(OIII*~0.5); B = OIII }\nhoo", Ha=ha, OIII=o3)
    assert out.shape == (3, 2, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0, 0], [0.6, 0.4, 0.2], rtol=1e-6)


def test_palette_function_with_channel_form():
    ha = np.full((2, 2), 0.5, np.float32)
    o3 = np.full((2, 2), 0.1, np.float32)
    text = (
        "def bicolour(ha, o3, k=0.5) = { R = ha; G = (ha*k)+(o3*~k); B = o3 }\n"
        "bicolour(Ha, OIII, k=1.0)"
    )
    out = run(text, Ha=ha, OIII=o3)
    np.testing.assert_allclose(out[1], 0.5)


def test_for_and_if():
    text = "s = 0\nfor v in [1, 2, 3, 4] {\n  if v % 2 == 0 { s = s + v } else { s = s - 1 }\n}\ns"
    assert run(text) == 6 - 2


def test_if_on_image_statistics():
    ha = np.full((2, 2), 0.3, np.float32)
    assert run('if mean(Ha) > 0.2 { r = "bright" } else { r = "dark" }\nr', Ha=ha) == "bright"


def test_if_needs_a_number():
    ha = np.full((2, 2), 0.3, np.float32)
    with pytest.raises(PxTypeError, match="'if' needs a number"):
        run("if Ha > 0.2 { r = 1 }", Ha=ha)


def test_params_defaults_and_overrides():
    text = 'param k = 0.5\nparam name = "x"\nk * 2'
    assert pxlang.evaluate(text) == 1.0
    assert (
        pxlang.evaluate(text, params={"k": "2"}) == 4.0
    )  # command-line strings take the default's type
    with pytest.raises(PxNameError, match="no parameter 'kk'") as exc:
        pxlang.evaluate(text, params={"kk": "1"})
    assert "'k'" in exc.value.hint


def test_a_number_given_for_a_param_without_default_keeps_its_text(tmp_path, capsys):
    """A folder named 20240915 or 2025 (a night's date) is a number on the command line and
    a folder where a string is wanted: in path(), files(), string concatenation, print."""
    text = "param input\nparam k\n[path(input, 'masters'), 'night_' + input, k * 2, input + 1]"
    got = pxlang.evaluate(text, params={"input": "20240915", "k": "0.25"})
    assert got == ["20240915/masters", "night_20240915", 0.5, 20240916.0]
    (tmp_path / "2025").mkdir()
    pxlang.save(np.zeros((4, 4), np.float32), str(tmp_path / "2025" / "a.fits"))
    script = tmp_path / "s.px"
    script.write_text("param input\ncount(files(input))\n")
    assert pxlang.run_file(str(script), input="2025") == 1.0
    script.write_text('param input\nwarning("in", input)\n')
    pxlang.run_file(str(script), input="20240915")
    assert capsys.readouterr().err.splitlines()[-1] == "warning: in 20240915"  # not 2.02409e+07


def test_required_param():
    with pytest.raises(PxRuntimeError, match="parameter 'input' has no default"):
        pxlang.evaluate("param input\ninput")


def test_import_local_module_and_stdlib_lookup(tmp_path):
    (tmp_path / "mymod.px").write_text("def twice(x) = x * 2\nk = 21\n")
    script = tmp_path / "main.px"
    script.write_text("import mymod\ntwice(k)\n")
    assert pxlang.run_file(str(script)) == 42.0
    script.write_text("from mymod import twice\ntwice(4)\n")
    assert pxlang.run_file(str(script)) == 8.0


def test_statistics_of_colour_images_are_per_channel():
    rgb = np.stack([np.full((2, 2), v, np.float32) for v in (0.1, 0.2, 0.3)])
    out = run("mean(RGB)", RGB=rgb)
    np.testing.assert_allclose(out, [0.1, 0.2, 0.3], rtol=1e-6)
    sub = run("RGB - mean(RGB) + 0.5", RGB=rgb)
    np.testing.assert_allclose(sub, 0.5, rtol=1e-6)


def test_errors_have_positions():
    with pytest.raises(PxError) as exc:
        pxlang.evaluate('x = 1\ny = x + "a"\n', path="t.px")
    assert exc.value.line == 2 and "t.px:2:" in exc.value.render()


def test_images_of_different_sizes_are_an_error():
    with pytest.raises(PxTypeError, match="different sizes"):
        run("A + B", A=np.zeros((2, 2), np.float32), B=np.zeros((3, 2), np.float32))


def test_load_save_roundtrip_with_provenance(tmp_path):
    from astropy.io import fits

    data = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    fits.PrimaryHDU(data).writeto(tmp_path / "Ha.fits")
    script = tmp_path / "s.px"
    script.write_text('param k = 0.5\nHa = load("Ha.fits")\nsave(Ha * k, "out.fits")\n')
    pxlang.run_file(str(script), k="0.25")
    out = fits.getdata(tmp_path / "out.fits")
    np.testing.assert_allclose(out, data * 0.25, rtol=1e-6)
    header = repr(fits.getheader(tmp_path / "out.fits"))
    assert "pxlang" in header and "Ha * k" in header and "k='0.25'" in header


def test_save_refuses_to_overwrite_an_input(tmp_path):
    from astropy.io import fits

    fits.PrimaryHDU(np.zeros((2, 2), np.float32)).writeto(tmp_path / "Ha.fits")
    before = (tmp_path / "Ha.fits").read_bytes()
    (tmp_path / "s.px").write_text('Ha = load("Ha.fits")\nsave(Ha + 0.1, "Ha.fits")\n')
    with pytest.raises(PxError, match="never overwritten"):
        pxlang.run_file(str(tmp_path / "s.px"))
    assert (tmp_path / "Ha.fits").read_bytes() == before


def test_closed_world_no_attribute_or_python_access():
    for text in ("__import__('os')", "x = ().__class__", 'eval("1")', 'open("/etc/passwd")'):
        with pytest.raises(PxError):
            pxlang.evaluate(text)


def test_combine_three_forms():
    a = np.full((4, 5), 0.3, np.float32)
    b = np.full((4, 5), 0.5, np.float32)
    rgb = run("combine(R=A, G=B, B=A)", A=a, B=b)
    np.testing.assert_allclose(np.asarray(rgb)[:, 0, 0], [0.3, 0.5, 0.3], rtol=1e-6)
    screen = run("combine(A, B, op_screen())", A=a, B=b)
    np.testing.assert_allclose(np.asarray(screen), 1 - 0.7 * 0.5, rtol=1e-6)
    lrgb = run("combine(L=A, rgb=combine(R=A, G=B, B=A))", A=a, B=b)
    assert np.asarray(lrgb).shape == (3, 4, 5)
    with pytest.raises(PxError, match="needs all three"):
        run("combine(R=A, G=B)", A=a, B=b)


def test_pixelmath_strings_in_a_script_with_functions_and_imports():
    ha = np.full((2, 3), 0.25, np.float32)
    out = run('import palettes\ndef f(a) = a\npixelmath("Ha*2")', Ha=ha)
    np.testing.assert_allclose(np.asarray(out), 0.5)
