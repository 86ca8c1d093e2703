"""Feature visualizations (convnet_search/featviz.py): parametrization, transforms, the optimization."""
from __future__ import annotations

import math

import numpy as np
import pytest

from convnet_search.stages import featviz

import real_data


def test_spectrum_scale_is_one_over_f_with_a_capped_dc_term():
    s = featviz.spectrum_scale(8, 8)
    f = featviz.rfft2d_freqs(8, 8)
    assert s.shape == (8, 5) == f.shape
    assert f[0, 0] == 0 and s[0, 0] == pytest.approx(8 * 8)  # DC: 1/(1/8) · sqrt(64)
    assert s[0, 1] == pytest.approx(8 / (1 / 8))
    assert s[4, 4] == pytest.approx(8 / math.hypot(0.5, 0.5))


def test_random_transforms_map_the_view_centre_near_the_tile_centre():
    rng = np.random.default_rng(0)
    rows = featviz.random_transforms(rng, 200, 128, (224, 224))
    centre = np.array([223 / 2, 223 / 2, 1.0])
    x = rows[:, 0:3] @ centre
    y = rows[:, 3:6] @ centre
    assert np.all(np.abs(x - 127 / 2) <= featviz.JITTER + 1e-4)
    assert np.all(np.abs(y - 127 / 2) <= featviz.JITTER + 1e-4)
    det = rows[:, 0] * rows[:, 4] - rows[:, 1] * rows[:, 3]  # area scale: (k_base / scale)²
    k_base = (128 + featviz.VIEW_MARGIN) / 224
    assert np.all((det >= (k_base / max(featviz.SCALES)) ** 2 - 1e-6) & (det <= (k_base / min(featviz.SCALES)) ** 2 + 1e-6))
    again = featviz.random_transforms(np.random.default_rng(0), 200, 128, (224, 224))
    assert np.array_equal(rows, again)


def test_tile_grid_and_channel_choice():
    tiles = np.stack([np.full((2, 2, 3), i, np.uint8) for i in range(6)])
    grid = featviz.tile_grid(tiles)
    assert grid.shape == (4, 8, 3)  # 2 rows of 4
    assert grid[0, 6, 0] == 3 and grid[2, 2, 0] == 5 and grid[3, 7, 0] == 0
    assert featviz.tile_grid(tiles[:3]).shape == (2, 6, 3)
    assert featviz.most_selective(np.array([1.0, 3.0, 3.0, 0.5]), 3) == [1, 2, 0]


def _setup(weights: str, cache_dir=None):
    import keras

    from convnet_search.nets.models import _preprocess_layer, build_base, get_spec

    spec = get_spec("mobilenet_025")
    base, _ = build_base(spec, weights, 0, cache_dir)
    return spec, base, _preprocess_layer(spec), keras


def test_render_layer_is_reproducible_and_moves_at_any_activation_scale():
    """Random weights (activations near 1e-6 at this layer): the objective's scale normalization
    lets Adam move the image at all; the same seed gives the same pixels."""
    pytest.importorskip("tensorflow")
    spec, base, pre, _ = _setup("none")
    args = (base, pre, "conv_pw_3_relu", [5, 0, 9], spec.input_size, 1)
    start = featviz.render_layer(*args, steps=0, tile=48)
    a = featviz.render_layer(*args, steps=10, tile=48)
    assert a.shape == (3, 48, 48, 3) and a.dtype == np.uint8
    assert np.array_equal(a, featviz.render_layer(*args, steps=10, tile=48))
    assert np.abs(a.astype(int) - start).mean() > 2  # 9.4 measured


@pytest.mark.skipif(real_data.missing(real_data.NOTOP_H5) is not None, reason="real weights absent")
def test_render_layer_raises_each_channel_on_real_weights():
    """On MobileNet 0.25's ImageNet weights, 20 steps raise each image's own channel, measured as
    the optimizer sees it: the mean over 16 fixed random transforms."""
    pytest.importorskip("tensorflow")
    import tensorflow as tf

    spec, base, pre, keras = _setup("imagenet", real_data.KERAS_HOME / "models")
    layer, chans, tile = "conv_pw_3_relu", [5, 0, 9], 64
    start = featviz.render_layer(base, pre, layer, chans, spec.input_size, 1, steps=0, tile=tile)
    a = featviz.render_layer(base, pre, layer, chans, spec.input_size, 1, steps=20, tile=tile)
    target = keras.Model(base.inputs, featviz._target_tensor(base, layer))
    rng = np.random.default_rng(123)
    views = [featviz.random_transforms(rng, len(chans), tile, spec.input_size) for _ in range(16)]

    def objective(images):
        out = []
        for t in views:
            view = tf.raw_ops.ImageProjectiveTransformV3(
                images=tf.constant(images.astype(np.float32) / 255), transforms=t,
                output_shape=tf.constant(spec.input_size), fill_value=0.5, interpolation="BILINEAR",
                fill_mode="CONSTANT")
            acts = target(pre(view * 255.0), training=False).numpy().mean(axis=(1, 2))
            out.append(acts[np.arange(len(chans)), chans])
        return np.mean(out, axis=0)

    assert np.all(objective(a) > objective(start))
