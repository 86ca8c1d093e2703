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

    from convnet_search.nets.models import build_base, build_feature_extractor, get_spec
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


def _big_photos(folder, n: int):
    """n phone-sized JPEGs: caltech10 demo photos upscaled to 4000×3000 (bicubic) with seeded
    sensor-like noise (σ 6), quality 90, as e2e/bigphoto.test.mjs makes its photos."""
    from pathlib import Path

    from PIL import Image

    photos = sorted((Path(__file__).resolve().parent.parent / "datasets" / "caltech10" / "images").rglob("*.jpg"))
    rng = np.random.default_rng(11)
    for i in range(n):
        d = folder / f"c{i % 2}"
        d.mkdir(parents=True, exist_ok=True)
        up = Image.open(photos[(i * 37) % len(photos)]).convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC)
        img = np.clip(np.asarray(up, np.float64) + rng.normal(0, 6, (3000, 4000, 3)), 0, 255).round()
        Image.fromarray(img.astype(np.uint8)).save(d / f"big_{i:03d}.jpg", quality=90)


def _full_decode_step1(path, size, digest=None, cache=None, check=False):
    """Step 1 as it was before the DCT-scaled decode (issue 22), for the 'before' variant: every
    image decoded in full, box factor the smallest k (not rounded to even), no cache."""
    from convnet_search.io.images import load_rgb
    from convnet_search.nets.preprocess import _block_means, smallest_area_factor

    rgb = load_rgb(path)
    k = smallest_area_factor(*rgb.shape[:2], size)
    return rgb if k == 1 else _block_means(rgb, k)


def bench_reader(ds, label: str, batch: int, rounds: int) -> dict:
    """The extract stage's batch loop (reader → forward pass → numpy, as extract_features runs it)
    with today's reader (after: DCT-scaled decode of large JPEGs, extractor.decode_step1) and the
    reader before it (before: full decode, smallest box factor), both with the decode pool, against
    the floor: the same forward pass over the same images already decoded and resized (tensors in
    memory). Same model (MobileNet α 0.25, the default 8 layers × default poolings), interleaved
    rounds, fastest of each kept; cpu_percent = process CPU time / wall time of that round."""
    import os

    from convnet_search.nets import extractor
    from convnet_search.nets.models import build_feature_extractor, get_spec
    from convnet_search.runtime import import_tensorflow

    tf = import_tensorflow()
    spec = get_spec("mobilenet_025")
    model, _, _ = build_feature_extractor(spec, None, weights="none", seed=0)
    infer = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    paths = [ds.path(i) for i in range(len(ds))]
    today = extractor.decode_step1

    def loop(step1):
        extractor.decode_step1 = step1
        try:
            for b in extractor.image_batches(paths, spec.input_size, batch):
                [o.numpy() for o in infer(b)]
        finally:
            extractor.decode_step1 = today

    decoded = [tf.constant(b) for b in extractor.image_batches(paths, spec.input_size, batch)]

    def floor(_):
        for b in decoded:
            [o.numpy() for o in infer(b)]

    variants = {"floor_s": (floor, None), "before_s": (loop, _full_decode_step1), "after_s": (loop, today)}
    floor(None)  # trace + warm up
    times = {k: [] for k in variants}
    cpu = {k: [] for k in variants}
    for _ in range(rounds):
        for name, (fn, arg) in variants.items():
            c0, t0 = os.times(), time.perf_counter()
            fn(arg)
            wall = time.perf_counter() - t0
            c1 = os.times()
            times[name].append(wall)
            cpu[name].append((c1.user - c0.user + c1.system - c0.system) / wall)
    best = {k: min(v) for k, v in times.items()}
    at = {k: cpu[k][times[k].index(best[k])] for k in variants}
    return {
        "case": f"extract loop vs forward floor: {label}", "model": spec.id, "images": len(ds), "batch": batch,
        "decode_threads": extractor.DECODE_THREADS, **{k: round(v, 3) for k, v in best.items()},
        "images_per_s_before": round(len(ds) / best["before_s"], 1),
        "images_per_s_after": round(len(ds) / best["after_s"], 1),
        "before_vs_floor": round(best["before_s"] / best["floor_s"], 3),
        "after_vs_floor": round(best["after_s"] / best["floor_s"], 3),
        "speedup_after_vs_before": round(best["before_s"] / best["after_s"], 3),
        "cpu_percent": {k.removesuffix("_s"): round(100 * v) for k, v in at.items()},
        "cpu_count": os.cpu_count(),
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "rounds_s": {k: [round(t, 3) for t in v] for k, v in times.items()},
    }


def reader_rows(quick: bool) -> list[dict]:
    """bench_reader on tinyimagenet20 (1000 real 64 px photos, if present) and on 4000×3000 JPEGs."""
    import tempfile
    from pathlib import Path

    from bench_quality import DATASET, real_dir

    from convnet_search.io.datasets import load_dataset

    rows = []
    real = real_dir() / DATASET
    if real.is_dir():
        ds = load_dataset(real)
        rows.append(bench_reader(ds, f"{DATASET} ({len(ds)} real photos)", 32, 2 if quick else 3))
    else:
        rows.append({"case": "extract loop vs forward floor: tinyimagenet20", "skipped": True,
                     "note": f"{real} not found"})
    with tempfile.TemporaryDirectory() as tmp:
        _big_photos(Path(tmp), 8 if quick else 48)
        ds = load_dataset(Path(tmp), cache_dir=None)
        rows.append(bench_reader(ds, f"4000×3000 JPEGs ({len(ds)})", 16, 2 if quick else 3))
    return rows


def run(quick: bool = False) -> list[dict]:
    if quick:
        return [bench_model("mobilenet", batch=8, rounds=2)]
    return [bench_model("mobilenet", batch=32, rounds=7), bench_model("resnet50", batch=32, rounds=5),
            bench_model("vgg16", batch=16, rounds=5)]


def loop_once(folder: str, before: bool) -> dict:
    """One pass of the extract loop (reader + MobileNet α 0.25 forward, random weights) over every
    image under `folder`, today's reader or the full-decode one (--before). For timing whole
    processes from outside (e.g. /usr/bin/time): the loop's own images/s is printed too."""
    from pathlib import Path

    from convnet_search.nets import extractor
    from convnet_search.nets.models import build_feature_extractor, get_spec
    from convnet_search.runtime import import_tensorflow

    tf = import_tensorflow()
    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not paths:
        raise SystemExit(f"--loop {folder}: no .jpg, .jpeg or .png file under it (make some: --make-photos DIR N)")
    spec = get_spec("mobilenet_025")
    model, _, _ = build_feature_extractor(spec, None, weights="none", seed=0)
    infer = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    if before:
        extractor.decode_step1 = _full_decode_step1
    t0 = time.perf_counter()
    for b in extractor.image_batches(paths, spec.input_size, 16):
        [o.numpy() for o in infer(b)]
    wall = time.perf_counter() - t0
    return {"images": len(paths), "reader": "before" if before else "after", "loop_s": round(wall, 3),
            "images_per_s": round(len(paths) / wall, 1)}


if __name__ == "__main__":
    import json
    import sys

    if "--make-photos" in sys.argv:  # --make-photos DIR N: the reader rows' phone-sized JPEGs
        from pathlib import Path
        _big_photos(Path(sys.argv[sys.argv.index("--make-photos") + 1]), int(sys.argv[sys.argv.index("--make-photos") + 2]))
        sys.exit(0)
    if "--loop" in sys.argv:  # --loop DIR [--before]
        print(json.dumps(loop_once(sys.argv[sys.argv.index("--loop") + 1], "--before" in sys.argv)))
        sys.exit(0)

    # --reader: only the reader rows (extract loop vs the forward floor, before/after the decode pool)
    rows = reader_rows("--quick" in sys.argv) if "--reader" in sys.argv else run(quick="--quick" in sys.argv)
    for row in rows:
        print(json.dumps(row))
