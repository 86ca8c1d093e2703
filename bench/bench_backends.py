"""Inference backends for extraction (issue 22): TensorFlow float32 (what extraction runs) against
OpenVINO float32 and OpenVINO bf16 on the same batches, in one run.

Per model: seconds for the same decoded batches (fastest of 3 passes after a warm-up, batch 32,
2 threads), the speedup over TensorFlow float32, and per-image feature cosine to TensorFlow float32
at every default layer (avg pooling), reported as the minimum per layer and overall. The quality
guard of the issue is per-image cosine ≥ 0.999 on **real** weights: only MobileNet α 0.25 has them
here (../shared/real), so its row decides; the others run on random weights (speed only: random
weights hide precision loss, their cosines say little). The model goes Keras → SavedModel →
`openvino.convert_model`.

OpenVINO is not a project dependency: `pip install openvino==2026.4.0` to run this section
(`make bench-scale` skips it with this reason otherwise).
"""
from __future__ import annotations

import json
import sys
import tempfile
import time

import numpy as np

from bench_quality import DATASET, real_dir, real_weights_env
from worker_process import run_worker, section_main, worker_args

MODELS = (("mobilenet_025", "imagenet", 256), ("mobilenet", "none", 128), ("resnet50", "none", 128))
GUARD = 0.999


def skip_reason() -> str | None:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return "openvino not importable (not a project dependency): `pip install openvino==2026.4.0`; section 'backends' skipped"
    if not (real_dir() / DATASET).is_dir():
        return f"{real_dir() / DATASET} not found (real photos); section 'backends' skipped"
    return None


def run(quick: bool) -> dict:
    return run_worker(__file__, "backends", real_weights_env(), quick, skip=skip_reason())


def _cosines(ref: list, got: list) -> np.ndarray:
    a, b = np.concatenate(ref).astype(np.float64), np.concatenate(got).astype(np.float64)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.where(den > 0, (a * b).sum(1) / np.maximum(den, 1e-300), np.nan)


def conv_flops(base) -> int:
    """Multiply-adds × 2 of one image through the Keras model's Conv2D, DepthwiseConv2D and Dense
    layers (what dominates: batch norm, activations and pooling are left out)."""
    import keras

    total = 0
    for layer in base.layers:
        if isinstance(layer, keras.layers.Model if hasattr(keras.layers, "Model") else keras.Model):
            total += conv_flops(layer) // 2
            continue
        out = getattr(layer, "output", None)
        if out is None or not hasattr(layer, "kernel"):
            continue
        shape = tuple(out.shape[1:])
        k = tuple(layer.kernel.shape)
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            total += shape[0] * shape[1] * k[0] * k[1] * k[2] * k[3]
        elif isinstance(layer, keras.layers.Conv2D):
            total += shape[0] * shape[1] * k[0] * k[1] * k[2] * k[3] // getattr(layer, "groups", 1)
        elif isinstance(layer, keras.layers.Dense):
            total += int(np.prod(shape[:-1] or (1,))) * k[0] * k[1]
    return 2 * total


def peak_gflops() -> dict:
    """This CPU's nominal peak: cores × clock × FLOP per cycle per core. Zen 4 (family 25, model
    ≥ 16) runs AVX-512 on two 256-bit FMA pipes: 32 float32 FLOP/cycle/core, 64 in bf16
    (VDPBF16PS); the clock is /proc/cpuinfo's (nominal: boost may run above it)."""
    import os

    mhz, family, model = 0.0, 0, 0
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "cpu MHz" and not mhz:
                mhz = float(value)
            elif key == "cpu family" and not family:
                family = int(value)
            elif key == "model" and not model:
                model = int(value)
    except (OSError, ValueError):
        pass
    cores = len(os.sched_getaffinity(0))
    f32 = 32 if (family, model >= 16) == (25, True) else None
    return {"cores": cores, "mhz": mhz, "cpu_family": family, "cpu_model": model,
            "float32_gflops": round(cores * mhz / 1000 * f32, 1) if f32 else None,
            "bf16_gflops": round(cores * mhz / 1000 * 2 * f32, 1) if f32 else None}


def _fastest(fn, rounds: int = 3) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_model(model_id: str, weights: str, n: int) -> dict:
    import openvino as ov

    from convnet_search.nets.extractor import image_batches
    from convnet_search.nets.models import build_feature_extractor, get_spec, output_keys
    from convnet_search.runtime import import_tensorflow

    tf = import_tensorflow()
    spec = get_spec(model_id)
    model, infos, base = build_feature_extractor(spec, None, weights=weights, pooling=["avg"])
    keys = output_keys(infos, ["avg"])
    paths = sorted((real_dir() / DATASET).rglob("*.JPEG"))[:n]
    batches = [b.numpy() for b in image_batches(paths, spec.input_size, 32)]
    forward = tf.function(lambda x: model(x, training=False))
    ref = [[np.asarray(o) for o in forward(tf.constant(b))] for b in batches]
    flops = conv_flops(model)
    row = {"model": model_id, "weights": str(base.get("weights")), "images": len(paths),
           "gflop_per_image": round(flops / 1e9, 3),
           "tf_f32_s": round(_fastest(lambda: [[o.numpy() for o in forward(tf.constant(b))] for b in batches]), 3)}
    row["tf_f32_gflops"] = round(flops * len(paths) / row["tf_f32_s"] / 1e9, 1)
    with tempfile.TemporaryDirectory() as tmp:
        model.export(f"{tmp}/saved", verbose=False)
        converted = ov.convert_model(f"{tmp}/saved")
    core = ov.Core()
    for precision in ("f32", "bf16"):
        compiled = core.compile_model(converted, "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                         "INFERENCE_NUM_THREADS": 2})
        outs = [[np.asarray(v) for v in compiled(b).values()] for b in batches]
        seconds = _fastest(lambda: [compiled(b) for b in batches])
        per_layer = {k: float(np.nanmin(_cosines([r[i] for r in ref], [o[i] for o in outs])))
                     for i, k in enumerate(keys)}
        row[f"ov_{precision}_s"] = round(seconds, 3)
        row[f"ov_{precision}_speedup"] = round(row["tf_f32_s"] / seconds, 2)
        row[f"ov_{precision}_gflops"] = round(flops * len(paths) / seconds / 1e9, 1)
        row[f"ov_{precision}_min_cosine"] = round(min(per_layer.values()), 5)
        row[f"ov_{precision}_per_layer"] = {k: round(v, 5) for k, v in per_layer.items()}
        if weights == "imagenet":
            row[f"ov_{precision}_passes_guard"] = bool(min(per_layer.values()) >= GUARD)
    return row


def worker(quick: bool) -> dict:
    todo = MODELS[:1] if quick else MODELS
    rows = [bench_model(m, w, 32 if quick else n) for m, w, n in todo]
    return {"rows": rows, "meta": {"guard": f"per-image cosine ≥ {GUARD} to TF float32, real weights",
                                   "cpu_capabilities": _capabilities(), "peak": peak_gflops(),
                                   "flops": "conv_flops: 2 × multiply-adds of Conv2D, DepthwiseConv2D, Dense"}}


def _capabilities() -> list[str]:
    import openvino as ov

    return list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def main(argv: list[str] | None = None) -> int:
    args = worker_args(argv, "32 images, MobileNet α 0.25 only", description=__doc__)
    section_main(args, worker=worker, run=run, skip_reason=skip_reason,
                 report=lambda result: print(json.dumps(result, indent=1)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
