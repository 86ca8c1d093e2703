"""The preprocessing path for large images (convnet_search/preprocess.py, docs/live-search.md).

Step 1 (k×k box mean by an integer factor down to ≤ 2× the network input) is checked against a
brute-force reference; small images must skip it entirely (bit-identical tensors to the plain
bilinear path); and with the real ImageNet MobileNet α 0.25 the classifier still recognises an
upscaled 4000×3000 parrot through our own decoding + the whole path.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import real_data
from convnet_search.io.images import load_rgb
from convnet_search.nets.preprocess import (DCT_SCALE, LARGE_SIDE, MAX_PRE_SCALE, area_downscale, area_factor,
                                            reduce_plan, reduce_scale, resize_rgb, step1_from)

SIZE = (224, 224)


def _reference(a: np.ndarray, k: int) -> np.ndarray:
    """Brute force: every output pixel is the mean of its (possibly clipped) k×k block, half up."""
    h, w = a.shape[:2]
    oh, ow = -(-h // k), -(-w // k)
    out = np.zeros((oh, ow, 3), np.uint8)
    for i in range(oh):
        for j in range(ow):
            block = a[i * k:(i + 1) * k, j * k:(j + 1) * k].reshape(-1, 3).astype(np.int64)
            n = block.shape[0]
            out[i, j] = [(2 * s + n) // (2 * n) for s in block.sum(axis=0)]
    return out


# (4032, 3024): full blocks only (k = 10 on both sides: 4032 = 403·10 + 2, so not quite); (3001, 4003): partial blocks on both edges; (449, 449): a
# partial edge block of one pixel; (1, 120000): k = 268, past the uint16 row sums (k·255 > 65535).
@pytest.mark.parametrize("hw", [(3000, 4000), (929, 512), (457, 913), (900, 449), (1, 5000), (896, 896),
                                (4032, 3024), (3001, 4003), (449, 449), (1, 120000)])
def test_box_downscale_matches_brute_force_block_mean(hw):
    rng = np.random.default_rng(hw[0] * 7 + hw[1])
    a = rng.integers(0, 256, (*hw, 3), dtype=np.uint8)
    k = area_factor(*hw, SIZE)
    assert k > 1
    got = area_downscale(a, SIZE)
    assert got.dtype == np.uint8
    assert np.array_equal(got, _reference(a, k))


def test_rounding_is_half_up_and_exact():
    # A 2×2 block {0, 0, 0, 1} averages to 0.25 → 0; {0, 1, 0, 1} to 0.5 → 1; {1, 1, 1, 2} to 1.25 → 1.
    a = np.zeros((2 * 2 * 224, 2 * 224 + 1, 3), np.uint8)  # one column over 2× → k = 2
    a[1, 1] = 1
    a[0:2, 3] = 1
    a[0:2, 4:6] = 1
    a[1, 5] = 2
    out = area_downscale(a, SIZE)
    assert out.shape == (448, 225, 3)
    assert out[0, :3, 0].tolist() == [0, 1, 1]


def test_close_to_pillow_reduce():
    # Same block layout as Pillow's Image.reduce (incl. partial edge blocks); Pillow rounds with
    # fixed-point approximations, so values may differ by 1.
    a = np.random.default_rng(1).integers(0, 256, (1001, 1337, 3), dtype=np.uint8)
    k = area_factor(1001, 1337, SIZE)
    pil = np.asarray(Image.fromarray(a).reduce(k))
    ours = area_downscale(a, SIZE)
    assert ours.shape == pil.shape
    assert np.abs(ours.astype(int) - pil).max() <= 1


def test_factor_properties_over_many_sizes():
    rng = np.random.default_rng(2)
    sizes = [(int(h), int(w)) for h, w in rng.integers(1, 9000, (2000, 2))]
    sizes += [(448, 448), (449, 448), (448, 449), (896, 1), (897, 1), (1, 1), (4000, 3000)]
    for ih, iw in [(224, 224), (299, 299), (128, 96)]:
        for h, w in sizes:
            k = area_factor(h, w, (ih, iw))
            oh, ow = -(-h // k), -(-w // k)
            assert k >= 1 and oh <= h and ow <= w, "never upsamples"
            assert oh <= MAX_PRE_SCALE * ih and ow <= MAX_PRE_SCALE * iw, "output ≤ 2× the input"
            # k is the smallest such factor (over LARGE_SIDE, the smallest even one): a smaller
            # one would leave a side over 2×
            large = max(h, w) > LARGE_SIDE and k > 1
            below = k - 2 if large else k - 1
            assert reduce_scale(h, w, (ih, iw)) == (DCT_SCALE if large else 1)
            if large:
                assert k % DCT_SCALE == 0
            if below >= 1:
                assert -(-h // below) > MAX_PRE_SCALE * ih or -(-w // below) > MAX_PRE_SCALE * iw
            else:
                assert h <= MAX_PRE_SCALE * ih and w <= MAX_PRE_SCALE * iw
    assert area_factor(3000, 4000, SIZE) == 10  # the documented phone-photo example: 400×300
    assert area_factor(2400, 3200, SIZE) == 8 and area_factor(4000, 6000, SIZE) == 14
    assert area_factor(3000, 4000, (299, 299)) == 8 and area_factor(3000, 4000, (456, 456)) == 6


def test_aspect_ratio_kept():
    a = np.zeros((3000, 4000, 3), np.uint8)
    out = area_downscale(a, SIZE)
    assert out.shape == (300, 400, 3)
    assert abs(out.shape[1] / out.shape[0] - 4000 / 3000) < 0.01
    tall = area_downscale(np.zeros((5000, 700, 3), np.uint8), SIZE)  # k = 12: 417×59
    assert tall.shape == (417, 59, 3)


def test_a_large_image_has_one_dct_scale_for_every_input_size():
    for size in (SIZE, (299, 299), (456, 456)):
        assert reduce_scale(3000, 4000, size) == 2 and reduce_scale(2000, 3136, size) == 1


def _photo(hw, seed=0):
    """A real photo of the bundled set upscaled to hw, plus sensor-like noise (real AC terms)."""
    src = sorted((Path(__file__).parent.parent / "datasets" / "caltech10" / "images").rglob("*.jpg"))[seed]
    rng = np.random.default_rng(seed)
    up = np.asarray(Image.open(src).convert("RGB").resize(hw[::-1], Image.BICUBIC), dtype=np.int16)
    return np.clip(up + rng.normal(0, 4, up.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("hw", [(3000, 4000), (2400, 3200), (3001, 4003), (4000, 6000)])
def test_dct_scaled_jpeg_is_within_a_few_levels_of_the_full_decode_path(tmp_path, hw):
    """A large JPEG decoded at 1/s and box-downscaled by k/s ≈ the full decode's k×k means, and the
    same shape (what the browser computes from the same file)."""
    from convnet_search.io.images import load_rgb_reduced

    path = tmp_path / "big.jpg"
    Image.fromarray(_photo(hw)).save(path, quality=92)
    decoded = load_rgb_reduced(path, reduce_plan((), SIZE))
    assert decoded.scale == reduce_scale(*hw, SIZE) > 1 and decoded.full == hw
    got = step1_from(decoded, SIZE)
    ref = area_downscale(load_rgb(path), SIZE)
    assert got.shape == ref.shape
    diff = np.abs(got.astype(int) - ref.astype(int))
    # Measured max 1–2 levels on real photos (DCT scaling, then Pillow's reduce rounding within 1
    # of exact means); full-swing edges (255 next to 0) differ more, up to
    # ~15 levels on a few pixels, where subsampled chroma scaled in the DCT differs from chroma
    # upsampled and then averaged.
    assert diff.max() <= 3 and diff.mean() < 0.35, (diff.max(), diff.mean())


def test_reduce_plan_serves_every_size_of_the_run_from_one_decode():
    plan = reduce_plan(((224, 224), (299, 299), (456, 456), (240, 240)), (224, 224))
    assert plan(3000, 4000) == (2, (10, 8, 6))  # 240 → k 9 + 1 = 10, the same as 224
    assert reduce_plan(((224, 224), (299, 299)), (299, 299))(4000, 6000) == (2, (12, 14))
    assert reduce_plan((), (224, 224))(300, 400) == (1, (1,))


@pytest.mark.parametrize("hw", [(64, 64), (96, 96), (224, 224), (448, 448), (300, 448), (448, 17), (1, 1)])
def test_small_images_take_exactly_the_old_path(hw):
    import tensorflow as tf

    a = np.random.default_rng(3).integers(0, 256, (*hw, 3), dtype=np.uint8)
    assert area_downscale(a, SIZE) is a
    old = tf.image.resize(tf.convert_to_tensor(a, tf.float32), SIZE, "bilinear", antialias=False).numpy()
    assert np.array_equal(resize_rgb(a, SIZE), old)


def test_large_fine_pattern_does_not_alias():
    """1-pixel stripes at 4000×3000 are a flat grey to the eye; the path must keep them grey.

    Plain bilinear from 4000 px reads 2 of every ~18 columns and turns them into bold bands.
    """
    import tensorflow as tf

    a = np.zeros((3000, 4000, 3), np.uint8)
    a[:, 1::2] = 255
    a[1::3, :, 1] = 255  # and a second, coarser pattern on one channel
    ours = resize_rgb(a, SIZE)
    old = tf.image.resize(tf.convert_to_tensor(a, tf.float32), SIZE, "bilinear", antialias=False).numpy()
    # Measured: plain bilinear std ≈ 75 / 70 (bold bands); the path ≈ 8 / 5: with an odd k (9) the
    # 1-px stripes leave a faint ±14 ripple (4 or 5 white columns per block) that bilinear halves.
    assert old[:, :, 0].std() > 50 and old[:, :, 1].std() > 50, "plain bilinear aliases (sanity check)"
    assert ours[:, :, 0].std() < 10 and abs(ours[:, :, 0].mean() - 127.5) < 3
    assert ours[:, :, 1].std() < 10 and abs(ours[:, :, 1].mean() - 170) < 3


def test_rejects_non_rgb():
    with pytest.raises(ValueError, match="uint8 RGB"):
        area_downscale(np.zeros((10, 10), np.uint8), SIZE)
    with pytest.raises(ValueError, match="uint8 RGB"):
        area_downscale(np.zeros((10, 10, 3), np.float32), SIZE)


# --- the real ImageNet classifier on a big photo -------------------------------------------------

MACAW = 88  # Keras ImageNet order (samples/imagenet_class_index.json)


@pytest.fixture(scope="module")
def real_classifier():
    h5 = real_data.TOP_H5
    if real_data.missing(h5):
        pytest.skip(real_data.missing(h5))
    import keras

    # The very file `MobileNet(alpha=0.25, weights="imagenet")` loads with KERAS_HOME pointing at
    # keras_home/ (passed by path: KERAS_HOME is read once, when Keras is first imported).
    model = keras.applications.MobileNet(alpha=0.25, weights=str(h5))
    classes = json.loads((real_data.SAMPLES / "imagenet_class_index.json").read_text())
    return model, classes, real_data.SAMPLES


def _top(model, x: np.ndarray) -> tuple[int, float]:
    import keras

    p = model.predict(keras.applications.mobilenet.preprocess_input(x[None].copy()), verbose=0)[0]
    return int(p.argmax()), float(p.max())


@pytest.mark.parametrize("wh", [(4000, 3000), (3000, 4000)])
def test_classifier_still_sees_a_macaw_in_an_upscaled_4000x3000_parrot(real_classifier, tmp_path, wh):
    model, classes, samples = real_classifier
    assert classes[str(MACAW)][1] == "macaw"
    big = tmp_path / "parrot_big.jpg"
    Image.open(samples / "parrot.jpg").convert("RGB").resize(wh, Image.Resampling.BICUBIC).save(big, quality=92)
    rgb = load_rgb(big)  # our own decoding
    assert rgb.shape == (wh[1], wh[0], 3)
    top, p = _top(model, resize_rgb(rgb, SIZE))  # our whole path: box downscale, then bilinear
    assert top == MACAW, f"{wh[0]}×{wh[1]} parrot: top-1 is {classes[str(top)][1]} ({p:.3f}), not macaw"
