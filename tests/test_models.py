"""Model registry, default layer rule, weights handling, multi-output extractor."""
from __future__ import annotations

import numpy as np
import pytest

from convnet_search.nets import models
from convnet_search.nets.models import ModelError, WeightsError, get_spec

NINE = ["mobilenet", "efficientnetb0", "densenet121", "xception", "inceptionv3", "resnet50",
        "efficientnetb5", "vgg16", "vgg19"]


def test_registry_has_the_nine_defaults_and_opt_in_modern_models():
    assert models.default_model_ids() == NINE
    opt_in = [m.id for m in models.REGISTRY.values() if not m.default]
    assert {"mobilenetv3large", "efficientnetv2b0", "convnexttiny"} <= set(opt_in)


def test_unknown_model_lists_known_ones():
    with pytest.raises(ModelError, match="unknown model 'alexnet'.*mobilenet.*vgg19"):
        get_spec("alexnet")
    assert get_spec("MobileNet").id == "mobilenet"
    assert get_spec("EfficientNet-B0".replace("-", "")).id == "efficientnetb0"


@pytest.fixture(scope="module")
def vgg16_base():
    base, used = models.build_base(get_spec("vgg16"), "none", seed=0)
    assert used.kind == "random"
    return base


def test_default_layers_rule(vgg16_base):
    names = models.select_default_layers(vgg16_base)
    infos = models.resolve_layers(vgg16_base, names)
    assert len(names) == 8 == len(set(names))
    idx = [i.index for i in infos]
    assert idx == sorted(idx)
    assert names[-1] == "block5_pool"  # the last block's output is always chosen
    assert infos[0].depth < 0.2  # starts early
    for i in infos:
        assert i.output_shape[0] * i.output_shape[1] > 1
        assert i.type in ("Conv2D", "MaxPooling2D")  # VGG convs carry their ReLU
    # cumulative params increase with depth and end at the model's total
    cum = [i.params_cumulative for i in infos]
    assert cum == sorted(cum) and cum[-1] == vgg16_base.count_params()


def test_unknown_layer_names_the_valid_ones(vgg16_base):
    with pytest.raises(ModelError, match=r"unknown layer\(s\) 'nope'.*block1_conv1.*block5_pool"):
        models.resolve_layers(vgg16_base, ["block1_conv1", "nope"])


def test_random_init_is_reproducible():
    spec = get_spec("mobilenet")
    a, _ = models.build_base(spec, "none", seed=3)
    b, _ = models.build_base(spec, "none", seed=3)
    c, _ = models.build_base(spec, "none", seed=4)
    assert models.weights_digest(a) == models.weights_digest(b) != models.weights_digest(c)


def test_auto_falls_back_loudly_and_imagenet_fails_clearly(monkeypatch, tmp_path):
    from convnet_search.nets import weights

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # empty Keras cache
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")  # and no download, even where there is a network
    weights.reset_download_memo()
    spec = get_spec("mobilenet")
    with pytest.warns(RuntimeWarning, match="FALLING BACK TO RANDOM WEIGHTS"):
        _, used = models.build_base(spec, "auto")
    assert used.kind == "random" and "ImageNet weights not found in" in used.detail
    with pytest.raises(WeightsError, match="ImageNet weights for MobileNet not found"):
        models.build_base(spec, "imagenet")
    with pytest.raises(WeightsError, match="not 'auto', 'imagenet', 'none' or an existing"):
        models.build_base(spec, "/no/such/file.h5")
    weights.reset_download_memo()


def test_weights_file_round_trip(tmp_path):
    spec = get_spec("vgg16")
    a, _ = models.build_base(spec, "none", seed=1)
    path = tmp_path / "vgg16.weights.h5"
    a.save_weights(str(path))
    b, used = models.build_base(spec, str(path), seed=99)
    assert used.kind == "file" and models.weights_digest(a) == models.weights_digest(b)
    bad = tmp_path / "bad.weights.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(WeightsError, match="bad.weights.h5: not a readable weights file"):
        models.build_base(spec, str(bad))


def test_multi_output_equals_truncated_models():
    """One forward pass with every layer out == one truncated model per layer (then pooled)."""
    import keras

    spec = get_spec("mobilenet")
    layers = ["conv_pw_1_relu", "conv_pw_6_relu", "conv_pw_13_relu"]
    model, infos, info = models.build_feature_extractor(spec, layers, weights="none", seed=0)
    assert [i.name for i in infos] == layers and info["weights"] == "random"
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(4, 224, 224, 3)).astype(np.float32)
    multi = model.predict(x, verbose=0)
    base, _ = models.build_base(spec, "none", seed=0)
    pre = keras.applications.mobilenet.preprocess_input(x.copy())
    for name, got in zip(layers, multi):
        trunc = keras.Model(base.inputs, base.get_layer(name).output)
        want = trunc.predict(pre, verbose=0).mean(axis=(1, 2))
        assert got.shape == want.shape == (4, base.get_layer(name).output.shape[-1])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_pooling_options_and_flatten_guard():
    spec = get_spec("vgg16")
    m, infos, _ = models.build_feature_extractor(spec, ["block5_pool"], weights="none", pooling="max")
    assert m.outputs[0].shape[-1] == 512
    m, infos, _ = models.build_feature_extractor(spec, ["block5_pool"], weights="none", pooling="flatten")
    assert m.outputs[0].shape[-1] == 7 * 7 * 512 == infos[0].dim("flatten")
    with pytest.raises(ModelError, match="flattened features too large.*block1_conv1"):
        models.build_feature_extractor(spec, ["block1_conv1"], weights="none", pooling="flatten")
    with pytest.raises(ModelError, match="unknown pooling"):
        models.build_feature_extractor(spec, ["block5_pool"], weights="none", pooling="median")


def test_every_pooling_from_one_pass_equals_its_numpy_reference():
    """The extractor's (layer, pooling) outputs equal each pooling's plain NumPy definition applied to
    the truncated model's feature map (odd 7x7 maps included: grid cells share the middle row)."""
    import keras

    from convnet_search.nets.pooling import POOLINGS

    spec = get_spec("mobilenet_025")
    layers = ["conv_pw_6_relu", "conv_pw_13_relu"]  # 14x14 and 7x7 maps
    pools = list(POOLINGS)
    m, infos, _ = models.build_feature_extractor(spec, layers, weights="none", pooling=pools, seed=0)
    x = np.random.default_rng(0).uniform(0, 255, (3, 224, 224, 3)).astype(np.float32)
    outs = m.predict(x, verbose=0)
    assert len(outs) == len(layers) * len(pools)
    assert models.output_keys(infos, pools) == [f"{p}/{n}" for n in layers for p in pools]
    base, _ = models.build_base(spec, "none", seed=0)
    pre = keras.applications.mobilenet.preprocess_input(x.copy())
    got = iter(outs)
    for info in infos:
        fmap = keras.Model(base.inputs, base.get_layer(info.name).output).predict(pre, verbose=0)
        for p in pools:
            out = next(got)
            assert out.shape == (3, info.dim(p))
            np.testing.assert_allclose(out, POOLINGS[p].reference(fmap.astype(np.float64)), rtol=2e-4, atol=1e-5)


def test_grid_bounds_cover_the_map_evenly():
    from convnet_search.nets.pooling import grid_bounds

    assert grid_bounds(7) == [(0, 4), (3, 7)]
    assert grid_bounds(14) == [(0, 7), (7, 14)]
    assert grid_bounds(1) == [(0, 1), (0, 1)]
    for size in range(1, 40):
        cells = grid_bounds(size)
        assert cells[0][0] == 0 and cells[-1][1] == size
        assert all(a < b for a, b in cells)
    # grid3 on a 7×7 last-layer map: three overlapping 3-row/column cells
    assert grid_bounds(7, 3) == [(0, 3), (2, 5), (4, 7)]
    assert grid_bounds(14, 3) == [(0, 5), (4, 10), (9, 14)]


def test_grid3_is_nine_cells_of_the_map():
    from convnet_search.nets.pooling import POOLINGS

    x = np.arange(2 * 7 * 7 * 3, dtype=np.float64).reshape(2, 7, 7, 3)
    got = POOLINGS["grid3"].reference(x)
    assert got.shape == (2, 27) and POOLINGS["grid3"].dim(7, 7, 3) == 27
    np.testing.assert_array_equal(got[:, :3], x[:, 0:3, 0:3].mean(axis=(1, 2)))  # top-left cell
    np.testing.assert_array_equal(got[:, 12:15], x[:, 2:5, 2:5].mean(axis=(1, 2)))  # centre cell


def test_mirror_grid3_pairs_the_side_cells_and_ignores_a_mirror():
    from convnet_search.nets.pooling import POOLINGS, keras_pooling_layer

    rng = np.random.default_rng(0)
    for w in (7, 14, 4):  # odd, even, and a map narrower than 3 cells would like
        x = rng.normal(size=(2, 7, w, 3))
        got = POOLINGS["mgrid3"].reference(x)
        assert got.shape == (2, 18) and POOLINGS["mgrid3"].dim(7, w, 3) == 18
        g = POOLINGS["grid3"].reference(x).reshape(2, 3, 3, 3)  # [B, row, column, C]
        want = np.stack([(g[:, :, 0] + g[:, :, 2]) / 2, g[:, :, 1]], axis=2).reshape(2, 18)
        np.testing.assert_allclose(got, want, rtol=1e-12)
        np.testing.assert_allclose(POOLINGS["mgrid3"].reference(x[:, :, ::-1]), got, rtol=1e-12, atol=1e-12)
        assert not np.allclose(POOLINGS["grid3"].reference(x[:, :, ::-1]), POOLINGS["grid3"].reference(x))
    layer = keras_pooling_layer("mgrid3", "p")
    x = rng.normal(size=(2, 7, 7, 5)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(layer(x)), POOLINGS["mgrid3"].reference(x.astype(np.float64)), rtol=1e-5, atol=1e-6)


def test_pooling_registry_is_the_schema_enum():
    import json
    from pathlib import Path

    from convnet_search.nets.pooling import POOLINGS

    schema = json.loads((Path(__file__).resolve().parents[1] / "docs" / "manifest.schema.json").read_text())
    assert schema["$defs"]["pooling"]["enum"] == list(POOLINGS)


def test_gem_keeps_tiny_and_negative_activations_apart():
    """Untrained networks have activations near 1e-16: GeM must stay scale-equivariant there (a
    1e-6 clamp or a float32 cube flushing to zero made every image's vector equal)."""
    import keras

    from convnet_search.nets.pooling import POOLINGS, keras_pooling_layer

    rng = np.random.default_rng(1)
    maps = rng.uniform(0, 1, (3, 7, 7, 5)) * np.array([1e-16, 1.0, 1e3, 0.0, 1.0])
    maps[:, :, :, 4] -= 0.5  # negative values count as 0
    gem = keras_pooling_layer("gem", "g")
    got = np.asarray(gem(keras.ops.convert_to_tensor(maps.astype(np.float32))))
    want = POOLINGS["gem"].reference(maps)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=0)
    assert len({tuple(np.round(r[:1] / 1e-16, 4)) for r in got}) == 3  # tiny channel: images differ
    assert (got[:, 3] == 0).all()
