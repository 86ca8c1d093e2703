"""Feature visualizations (convnet_search/featviz.py): parametrization, transforms, the optimization."""
from __future__ import annotations

import math

import numpy as np
import pytest

from convnet_search import featviz


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


def test_render_layer_raises_the_channel_and_is_reproducible():
    """A few steps on a random-weights MobileNet raise each image's own channel above where the
    same seed starts (steps=0), and the same seed gives the same pixels."""
    pytest.importorskip("tensorflow")
    import tensorflow as tf
    import keras

    from convnet_search.models import _preprocess_layer, build_base, get_spec

    spec = get_spec("mobilenet_025")
    base, _ = build_base(spec, "none", 0)
    pre = _preprocess_layer(spec)
    layer, chans = "conv_pw_3_relu", [5, 0, 9]
    start = featviz.render_layer(base, pre, layer, chans, spec.input_size, 1, steps=0, tile=32)
    a = featviz.render_layer(base, pre, layer, chans, spec.input_size, 1, steps=12, tile=32)
    b = featviz.render_layer(base, pre, layer, chans, spec.input_size, 1, steps=12, tile=32)
    assert a.shape == (3, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    target = keras.Model(base.inputs, featviz._target_tensor(base, layer))

    def objective(images):
        x = tf.image.resize(images.astype(np.float32), spec.input_size)
        acts = target(pre(x), training=False).numpy().mean(axis=(1, 2))
        return acts[np.arange(len(chans)), chans]

    assert np.all(objective(a) > objective(start))
