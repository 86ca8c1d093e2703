"""convnet_search.io.images: every odd real-world file decodes correctly or fails with a clear reason."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra import numpy as hnp
from PIL import Image, ImageFile

from convnet_search.io.images import DEFAULT_MAX_PIXELS, ImageError, load_rgb, thumbnail_jpeg
from odd_images import GREY16_SHAPE, bomb_png, grey16_gradient, make_odd_image_folder, png_bytes


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    return make_odd_image_folder(tmp_path_factory.mktemp("odd") / "root")


def _reason(path: Path, **kw) -> str:
    with pytest.raises(ImageError) as ei:
        load_rgb(path, **kw)
    assert ei.value.path == Path(path)
    assert str(ei.value) == f"{path}: {ei.value.reason}"
    return ei.value.reason


# --- every file of the odd folder --------------------------------------------------------------

def test_every_valid_odd_file_decodes_to_rgb_uint8_of_the_expected_shape(odd):
    assert len(odd.expected_hw) == 11
    for rel, hw in odd.expected_hw.items():
        a = load_rgb(odd.root / rel)
        assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3, rel
        assert a.shape[:2] == hw, rel
        assert a.flags.c_contiguous and a.flags.writeable, rel


def test_every_bad_odd_file_is_rejected_with_its_reason(odd):
    assert len(odd.bad) == 5
    for rel, expected in odd.bad.items():
        if rel == "stray.png":
            continue  # a valid image: only the dataset layout makes it bad
        assert expected in _reason(odd.root / rel), rel


def test_cmyk_jpeg_becomes_the_right_rgb_colour(odd):
    a = load_rgb(odd.root / "colour/cmyk.jpg").astype(int)
    # CMYK (255, 0, 0, 0) is pure cyan; JPEG is lossy, so allow a little.
    assert np.abs(a - np.array([0, 255, 255])).max() <= 6


def test_16bit_grey_png_is_scaled_to_8_bits_not_clipped(odd):
    src = grey16_gradient()
    a = load_rgb(odd.root / "grey/gradient16.png")
    assert a.shape == (*GREY16_SHAPE, 3)
    expected = np.rint(src / 257.0).astype(np.uint8)  # 65535 / 255 = 257 exactly
    assert np.array_equal(a[:, :, 0], expected)
    assert np.array_equal(a[:, :, 0], a[:, :, 1]) and np.array_equal(a[:, :, 1], a[:, :, 2])
    assert a[0, 0, 0] == 0 and a[0, -1, 0] == 255
    assert np.all(np.diff(a[0, :, 0].astype(int)) >= 0)  # a ramp stays a ramp (clipping/wrapping would not)
    assert len(np.unique(a[0, :, 0])) == 256  # the whole 8-bit range is used


def test_big_endian_16bit_tiff_and_32bit_int_are_scaled_like_16bit(tmp_path):
    src = grey16_gradient()
    Image.fromarray(src.astype(">u2")).save(tmp_path / "b16.tif")
    with Image.open(tmp_path / "b16.tif") as im:
        assert im.mode == "I;16B"
    assert np.array_equal(load_rgb(tmp_path / "b16.tif")[:, :, 0], np.rint(src / 257.0).astype(np.uint8))
    Image.fromarray(src.astype(np.int32)).save(tmp_path / "i32.tif")
    with Image.open(tmp_path / "i32.tif") as im:
        assert im.mode == "I"
    assert np.array_equal(load_rgb(tmp_path / "i32.tif")[:, :, 0], np.rint(src / 257.0).astype(np.uint8))


def test_32bit_int_outside_16bit_range_is_stretched_min_to_max(tmp_path):
    Image.fromarray(np.array([[-1000, 0, 99000]], dtype=np.int32)).save(tmp_path / "i.tif")
    expected = np.rint((np.array([-1000, 0, 99000]) + 1000) * 255 / 100000).astype(np.uint8)
    assert load_rgb(tmp_path / "i.tif")[0, :, 0].tolist() == expected.tolist()


def test_float_images_scale_from_unit_range_or_stretch(tmp_path):
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)).save(tmp_path / "unit.tif")
    assert load_rgb(tmp_path / "unit.tif")[0, :, 0].tolist() == [0, 128, 255]
    Image.fromarray(np.array([[-2.0, 0.0, 2.0, np.nan]], dtype=np.float32)).save(tmp_path / "wide.tif")
    assert load_rgb(tmp_path / "wide.tif")[0, :, 0].tolist() == [0, 128, 255, 0]


@settings(max_examples=25, deadline=None)
@given(hnp.arrays(np.uint16, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=9)))
def test_any_16bit_grey_png_scales_by_257(tmp_path_factory, a):
    p = tmp_path_factory.mktemp("h") / "x.png"
    Image.fromarray(a).save(p)
    assert np.array_equal(load_rgb(p)[:, :, 0], np.rint(a / 257.0).astype(np.uint8))


def test_exif_orientation_6_is_applied(odd):
    a = load_rgb(odd.root / "colour/exif_rotated.jpg")
    assert a.shape == (40, 20, 3)  # stored 40 wide × 20 high
    # Stored left half black / right half white; turned 90° clockwise: top black, bottom white.
    assert a[:15].mean() < 20 and a[25:].mean() > 235


def test_broken_exif_block_keeps_the_pixels(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 10, 10)).save(buf, format="JPEG", exif=b"Exif\x00\x00II*\x00garbage")
    (tmp_path / "x.jpg").write_bytes(buf.getvalue())
    assert load_rgb(tmp_path / "x.jpg").shape == (6, 8, 3)


def _photo(w: int, h: int) -> Image.Image:
    y, x = np.mgrid[0:h, 0:w]
    return Image.fromarray(np.stack([x * 255 // w, y * 255 // h, (x + y) % 256], -1).astype(np.uint8))


def test_draft_decodes_a_large_jpeg_at_a_reduced_scale_that_keeps_the_requested_size(tmp_path):
    _photo(1600, 1200).save(tmp_path / "p.jpg", quality=92)
    full, small = load_rgb(tmp_path / "p.jpg"), load_rgb(tmp_path / "p.jpg", draft=150)
    assert full.shape == (1200, 1600, 3) and small.shape == (150, 200, 3)  # 1/8: both sides still ≥ 150
    assert load_rgb(tmp_path / "p.jpg", draft=192).shape == (300, 400, 3)  # 1/8 would give 150 < 192: 1/4
    # the same picture: the full decode box-averaged 8 × 8 is what the DCT-scaled decode gives
    boxed = full.reshape(150, 8, 200, 8, 3).mean(axis=(1, 3))
    assert np.abs(boxed - small).mean() < 2.0


def test_draft_keeps_every_check_and_leaves_other_formats_and_small_files_alone(odd, tmp_path):
    a = load_rgb(odd.root / "colour/exif_rotated.jpg", draft=8)  # stored 40×20 → 1/2: 20×10, shown upright
    assert a.shape == (20, 10, 3)
    _photo(400, 300).save(tmp_path / "p.png")
    assert load_rgb(tmp_path / "p.png", draft=16).shape == (300, 400, 3)  # not a JPEG: full decode
    _photo(300, 200).save(tmp_path / "s.jpg")
    assert load_rgb(tmp_path / "s.jpg", draft=192).shape == (200, 300, 3)  # no scale keeps 192 px
    buf = io.BytesIO()
    _photo(1600, 1200).save(buf, format="JPEG", quality=92)
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    assert _reason(tmp_path / "cut.jpg", draft=192).startswith("truncated or corrupt image data")
    assert "too large" in _reason(tmp_path / "p.png", draft=16, max_pixels=1000)


def _exif_rotated(path, w, h, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    _photo(w, h).save(path, quality=92, exif=exif.tobytes())


def test_reduced_decode_uses_the_asked_scale_only_where_its_grid_fits(tmp_path):
    from convnet_search.io.images import load_rgb_reduced

    _photo(1600, 1200).save(tmp_path / "p.jpg", quality=92)
    asked = []
    d = load_rgb_reduced(tmp_path / "p.jpg", lambda h, w: asked.append((h, w)) or (4, (4, 8, 12)))
    assert asked == [(1200, 1600)] and d.scale == 4 and d.full == (1200, 1600)
    assert {k: a.shape for k, a in d.boxed.items()} == {4: (300, 400, 3), 8: (150, 200, 3), 12: (100, 134, 3)}
    full = load_rgb(tmp_path / "p.jpg")
    # the block means of the full decode, within a few levels (DCT scaling, then Pillow's reduce;
    # this picture wraps 255 → 0 along diagonals, where chroma differs most)
    diff = np.abs(d.boxed[8].astype(int) - full.reshape(150, 8, 200, 8, 3).mean(axis=(1, 3)))
    assert diff.mean() < 0.6 and diff.max() < 8, (diff.mean(), diff.max())
    d = load_rgb_reduced(tmp_path / "p.jpg", lambda h, w: (1, (8,)))
    assert d.scale == 1 and np.array_equal(d.boxed[1], full)
    # Rotated 90° (EXIF 6), sides multiples of 8: the 1/8 grid lands on the full decode's; upright sizes.
    _exif_rotated(tmp_path / "r.jpg", 1600, 1200, 6)
    asked.clear()
    d = load_rgb_reduced(tmp_path / "r.jpg", lambda h, w: asked.append((h, w)) or (8, (8,)))
    assert asked == [(1600, 1200)] and d.scale == 8 and d.full == (1600, 1200) and d.boxed[8].shape == (200, 150, 3)
    upright = load_rgb(tmp_path / "r.jpg")
    diff = np.abs(d.boxed[8].astype(int) - upright.reshape(200, 8, 150, 8, 3).mean(axis=(1, 3)))
    assert diff.mean() < 0.6 and diff.max() < 8, (diff.mean(), diff.max())
    # Rotated, 1601 wide: the partial 1/8 column would end up on the left → decoded in full.
    _exif_rotated(tmp_path / "odd.jpg", 1601, 1200, 6)
    d = load_rgb_reduced(tmp_path / "odd.jpg", lambda h, w: (8, (8,)))
    assert d.scale == 1 and d.boxed[1].shape == (1601, 1200, 3) == (*d.full, 3)
    # Not rotated, 1601 wide: fine (partial blocks stay right and bottom, as in the box step).
    _photo(1601, 1203).save(tmp_path / "o.jpg", quality=92)
    d = load_rgb_reduced(tmp_path / "o.jpg", lambda h, w: (8, (16,)))
    assert d.scale == 8 and d.boxed[16].shape == (76, 101, 3) and d.full == (1203, 1601)
    # Grey JPEGs come out RGB; other formats decode in full; the checks are load_rgb's.
    Image.fromarray(np.full((1200, 1600), 77, np.uint8)).save(tmp_path / "g.jpg")
    assert load_rgb_reduced(tmp_path / "g.jpg", lambda h, w: (8, (8,))).boxed[8][0, 0].tolist() == [77, 77, 77]
    _photo(1600, 1200).save(tmp_path / "p.png")
    assert load_rgb_reduced(tmp_path / "p.png", lambda h, w: (8, (8,))).scale == 1
    buf = io.BytesIO()
    _photo(1600, 1200).save(buf, format="JPEG", quality=92)
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_rgb_reduced(tmp_path / "cut.jpg", lambda h, w: (8, (8,)))


def test_animated_files_give_their_first_frame(odd, tmp_path):
    assert load_rgb(odd.root / "colour/animated.gif")[0, 0].tolist() == [255, 0, 0]
    frames = [Image.new("RGB", (10, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.webp", save_all=True, append_images=frames[1:], lossless=True, duration=50)
    frames[0].save(tmp_path / "a.png", save_all=True, append_images=frames[1:], duration=50)  # APNG
    for name in ("a.webp", "a.png"):
        with Image.open(tmp_path / name) as im:
            assert im.n_frames == 2, name
        assert load_rgb(tmp_path / name)[0, 0].tolist() == [255, 0, 0], name


def test_alpha_is_composited_on_white(odd, tmp_path):
    a = load_rgb(odd.root / "colour/rgba.png")
    assert a[0, 0].tolist() == [255, 255, 255]  # fully transparent → white, whatever its colour
    assert a[0, -1].tolist() == [255, 0, 0]  # opaque red stays red
    Image.new("RGBA", (2, 2), (0, 0, 0, 128)).save(tmp_path / "half.png")
    assert load_rgb(tmp_path / "half.png")[0, 0].tolist() == [127, 127, 127]  # 255·(127/255), rounded
    Image.new("LA", (2, 2), (0, 0)).save(tmp_path / "la.png")
    assert load_rgb(tmp_path / "la.png")[0, 0].tolist() == [255, 255, 255]


def test_palette_with_transparency_and_1bit(odd, tmp_path):
    a = load_rgb(odd.root / "colour/palette.png")
    assert a[0, 0].tolist() == [0, 200, 0] and a[0, -1].tolist() == [255, 255, 255]
    img = Image.new("1", (4, 3), 0)
    img.putpixel((1, 1), 1)
    img.save(tmp_path / "bits.png")
    b = load_rgb(tmp_path / "bits.png")
    assert b.shape == (3, 4, 3) and b[1, 1].tolist() == [255, 255, 255] and b[0, 0].tolist() == [0, 0, 0]


def test_one_pixel_image_is_valid(odd):
    assert load_rgb(odd.root / "grey/one_pixel.png").tolist() == [[[10, 20, 30]]]


def test_unicode_file_name(odd):
    assert load_rgb(odd.root / "ünicode/café_日本.png")[0, 0].tolist() == [1, 2, 3]


def test_formats_bmp_tiff_webp_round_trip_exactly(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    for name, kw in (("x.bmp", {}), ("x.tif", {}), ("x.webp", {"lossless": True}), ("x.png", {})):
        Image.fromarray(a).save(tmp_path / name, **kw)
        assert np.array_equal(load_rgb(tmp_path / name), a), name


# --- rejections ------------------------------------------------------------------------------

def test_empty_file(tmp_path):
    (tmp_path / "e.png").write_bytes(b"")
    assert _reason(tmp_path / "e.png") == "empty file (0 bytes)"


def test_truncated_png_and_broken_header(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(buf, format="PNG")
    data = buf.getvalue()
    (tmp_path / "half.png").write_bytes(data[: len(data) // 2])
    assert _reason(tmp_path / "half.png").startswith("truncated or corrupt image data: ")
    (tmp_path / "head.png").write_bytes(data[:20])  # signature, then the header stops
    assert _reason(tmp_path / "head.png").startswith("truncated or corrupt image data")


def test_truncated_files_are_not_loaded_partially():
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_text_file_named_jpg(odd):
    assert _reason(odd.root / "broken/notes.jpg").startswith("not an image (unrecognised format")


def test_unsupported_format_is_not_decoded(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "x.pcx")  # Pillow could read it; we do not offer it
    assert "not an image" in _reason(tmp_path / "x.pcx")


def test_zero_size_image(tmp_path):
    (tmp_path / "z.png").write_bytes(png_bytes(0, 5, 8, 0, b""))
    assert _reason(tmp_path / "z.png") == "zero-size image (0×5)"


def test_decompression_bomb_is_rejected_fast_from_its_header(odd):
    size = (odd.root / "broken/bomb.png").stat().st_size
    assert size < 100_000  # a tiny file …
    t = time.perf_counter()
    reason = _reason(odd.root / "broken/bomb.png")
    assert time.perf_counter() - t < 1.0  # … rejected without decoding 400 Mpx
    assert reason == "too large: 20000×20000 pixels > limit 40,000,000"


def test_limit_between_ours_and_pillows_and_the_pillow_warning_band(tmp_path):
    # 7000² = 49 Mpx: over our 40 Mpx, under Pillow's ~89 Mpx (our own header check).
    (tmp_path / "mid.png").write_bytes(bomb_png(7000))
    assert _reason(tmp_path / "mid.png") == "too large: 7000×7000 pixels > limit 40,000,000"
    # 10000² = 100 Mpx: Pillow only *warns* (DecompressionBombWarning); still rejected.
    (tmp_path / "warn.png").write_bytes(bomb_png(10000))
    assert _reason(tmp_path / "warn.png") == "too large: 10000×10000 pixels > limit 40,000,000"
    # With our limit raised above it, Pillow's own limit (~89 Mpx) is what the reason names.
    assert _reason(tmp_path / "warn.png", max_pixels=200_000_000) == (
        f"too large: 10000×10000 pixels > Pillow's limit {Image.MAX_IMAGE_PIXELS:,}")


def test_max_pixels_is_inclusive(tmp_path):
    Image.new("RGB", (20, 20)).save(tmp_path / "x.png")
    assert load_rgb(tmp_path / "x.png", max_pixels=400).shape == (20, 20, 3)
    assert _reason(tmp_path / "x.png", max_pixels=399) == "too large: 20×20 pixels > limit 399"
    assert DEFAULT_MAX_PIXELS == 40_000_000


def test_missing_file_and_folder(tmp_path):
    assert _reason(tmp_path / "nope.jpg").startswith("cannot read file")
    (tmp_path / "d.jpg").mkdir()
    assert _reason(tmp_path / "d.jpg") == "not a regular file"


# --- thumbnails --------------------------------------------------------------------------------

def test_thumbnail_is_a_deterministic_jpeg_with_longest_side_128():
    a = np.random.default_rng(2).integers(0, 256, (300, 200, 3), dtype=np.uint8)
    data = thumbnail_jpeg(a)
    assert data == thumbnail_jpeg(a.copy())
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "JPEG" and im.mode == "RGB" and im.size == (85, 128)
        assert not im.info.get("exif")


def test_thumbnail_never_enlarges_and_handles_one_pixel():
    with Image.open(io.BytesIO(thumbnail_jpeg(np.zeros((1, 1, 3), np.uint8)))) as im:
        assert im.size == (1, 1)
    with Image.open(io.BytesIO(thumbnail_jpeg(np.zeros((64, 64, 3), np.uint8), max_side=128))) as im:
        assert im.size == (64, 64)
    with Image.open(io.BytesIO(thumbnail_jpeg(np.zeros((1000, 3, 3), np.uint8), max_side=50))) as im:
        assert im.size == (1, 50)


def test_thumbnail_keeps_the_picture():
    a = np.zeros((256, 256, 3), np.uint8)
    a[:, 128:] = (255, 0, 0)
    with Image.open(io.BytesIO(thumbnail_jpeg(a))) as im:
        t = np.asarray(im).astype(int)
    assert t[64, 20].max() < 15 and np.abs(t[64, 108] - [255, 0, 0]).max() < 15


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8),
                                 np.zeros((4, 4, 3), np.float32), np.zeros((0, 4, 3), np.uint8)])
def test_thumbnail_rejects_wrong_arrays(bad):
    with pytest.raises(ValueError):
        thumbnail_jpeg(bad)


def test_no_tensorflow_import():
    code = ("import sys, convnet_search.io.images, convnet_search.io.datasets; "
            "bad = [m for m in ('tensorflow', 'keras') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    assert r.returncode == 0, r.stdout + r.stderr
