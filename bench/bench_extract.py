"""Extraction benchmark: all chosen layers in one pass vs a plain forward pass vs one truncated
model per layer (what ConvNet Playground did), measured in the same process, interleaved.

Every variant runs as a `tf.function` on the same random batch; each round times the three
variants back to back (A, B, C, A, B, C, …) so machine drift hits them alike; each variant's
fastest round is reported (the least disturbed one on a shared machine, as in bench_neighbors),
every round is listed.
"""
from __future__ import annotations

import time

import numpy as np


def _timed(fn, x) -> float:
    t = time.perf_counter()
    out = fn(x)
    for o in (out if isinstance(out, (list, tuple)) else [out]):
        o.numpy()  # wait for the result
    return time.perf_counter() - t


def _conv_macs(layer) -> int:
    """Multiply-accumulates of one convolution layer (0 for every other layer type)."""
    kind = type(layer).__name__
    if kind not in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D"):
        return 0
    _, h, w, c_out = layer.output.shape
    c_in = layer.input.shape[-1]
    kh, kw = layer.kernel_size
    if kind == "Conv2D":
        return h * w * kh * kw * c_in * c_out
    if kind == "DepthwiseConv2D":
        return h * w * kh * kw * c_in * layer.depth_multiplier
    return h * w * (kh * kw * c_in + c_in * c_out)


def flops_bound_speedup(base, layer_names: list[str]) -> float:
    """The most one pass can save over one truncated model per layer, counting convolutions only.

    The truncated model for layer j costs the convolutions up to it (a fraction f_j of the full
    network); one pass costs f = 1. So per-layer models / one pass = Σ_j f_j, which depends only on
    where the chosen layers sit, not on the implementation. (Keras lists layers in topological
    order, so every layer before a chosen one is an ancestor of it in these CNNs.)
    """
    cumulative, total = {}, 0
    for layer in base.layers:
        total += _conv_macs(layer)
        cumulative[layer.name] = total
    return sum(cumulative[n] for n in layer_names) / total


def bench_model(model_id: str, batch: int, rounds: int) -> dict:
    from convnet_search.runtime import import_tensorflow

    tf = import_tensorflow()  # first: the quiet import (keras would load TensorFlow noisily)
    import keras

    from convnet_search.models import build_base, build_feature_extractor, get_spec
    spec = get_spec(model_id)
    multi, infos, _ = build_feature_extractor(spec, None, weights="none", seed=0)
    names = [i.name for i in infos]
    # Plain forward pass: the headless base model alone (same preprocessing, last map pooled).
    base, _ = build_base(spec, "none", seed=0)
    inp = keras.Input((*spec.input_size, 3))
    last = keras.Model(inp, keras.layers.GlobalAveragePooling2D()(base(multi.get_layer("preprocess")(inp))))
    # One truncated model per layer, each run separately (the per-layer `predict` approach).
    taps = multi.get_layer(f"{spec.id}_taps")
    pre = multi.get_layer("preprocess")
    truncated = []
    for j in range(len(names)):
        inp = keras.Input((*spec.input_size, 3))
        sub = keras.Model(taps.inputs, taps.outputs[j])
        truncated.append(keras.Model(inp, keras.layers.GlobalAveragePooling2D()(sub(pre(inp)))))
    f_multi = tf.function(lambda x: multi(x, training=False))
    f_last = tf.function(lambda x: last(x, training=False))
    f_trunc = [tf.function(lambda x, m=m: m(x, training=False)) for m in truncated]

    def run_trunc(x):
        return [f(x) for f in f_trunc]

    x = tf.constant(np.random.default_rng(0).uniform(0, 255, (batch, *spec.input_size, 3)).astype(np.float32))
    for fn in (f_multi, f_last, run_trunc):  # trace + warm up
        _timed(fn, x)
    t_multi, t_last, t_trunc = [], [], []
    for _ in range(rounds):
        t_last.append(_timed(f_last, x))
        t_multi.append(_timed(f_multi, x))
        t_trunc.append(_timed(run_trunc, x))
    m_multi, m_last, m_trunc = (min(t) for t in (t_multi, t_last, t_trunc))
    return {
        "section": "extract", "model": spec.name, "layers": len(names), "batch": batch, "rounds": rounds,
        "plain_forward_s": round(m_last, 4), "all_layers_one_pass_s": round(m_multi, 4),
        "one_model_per_layer_s": round(m_trunc, 4),
        "images_per_s_all_layers": round(batch / m_multi, 2),
        "cost_vs_plain_forward": round(m_multi / m_last, 3),
        "speedup_vs_per_layer_models": round(m_trunc / m_multi, 2),
        "speedup_bound_conv_flops": round(flops_bound_speedup(base, names), 2),
        "rounds_s": {"plain_forward": [round(t, 4) for t in t_last], "all_layers_one_pass": [round(t, 4) for t in t_multi],
                     "one_model_per_layer": [round(t, 4) for t in t_trunc]},
        "goal": "cost_vs_plain_forward <= 1.05 and speedup_vs_per_layer_models >= 5",
        "meets_goal": bool(m_multi / m_last <= 1.05 and m_trunc / m_multi >= 5),
    }


def run(quick: bool = False) -> list[dict]:
    if quick:
        return [bench_model("mobilenet", batch=8, rounds=2)]
    return [bench_model("mobilenet", batch=32, rounds=7), bench_model("resnet50", batch=32, rounds=5),
            bench_model("vgg16", batch=16, rounds=5)]


if __name__ == "__main__":
    import json
    import sys

    for row in run(quick="--quick" in sys.argv):
        print(json.dumps(row))
