"""Channel atlas and feature visualization cost (issue 11): `bench/run.py --only atlas --merge`.

- Atlas: the extraction stage (`extract.extract_features`, the real code path: reader, one forward
  pass, shards, store) of the same images with `atlas = false` and `atlas = true`, in one process,
  after one discarded warm-up run, in the order on, off, off, on (so drift hits both alike).
  Ratio = total time with / without; the goal is ≤ 1.10.
- Feature visualizations: `featviz.featviz_stage` of the model (all its default layers, 16 channels
  each, the stage's default steps), seconds per model.

On ../shared/real (tinyimagenet20, MobileNet α 0.25 with its ImageNet weights) when present, else
the bundled digits with random weights. Runs in a child process (Keras reads KERAS_HOME at import).
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

from worker_process import run_worker, worker_args  # noqa: E402

MODEL = "mobilenet_025"


def _real():
    sys.path.insert(0, str(BENCH_DIR))
    from bench_quality import DATASET, real_dir

    real = real_dir()
    ok = (real / DATASET).is_dir() and (real / "weights" / "keras_home" / "models").is_dir()
    return (real, DATASET) if ok else (None, None)


def run(quick: bool) -> dict:
    real, _ = _real()
    env = dict(os.environ)
    if real is not None:
        env["KERAS_HOME"] = str(real / "weights" / "keras_home")
    return run_worker(__file__, "atlas", env, quick)


def _log(msg: str) -> None:
    print(f"[atlas] {msg}", file=sys.stderr, flush=True)


def worker(quick: bool) -> dict:
    sys.path.insert(0, str(ROOT))
    from convnet_search.config import RunConfig
    from convnet_search.io.datasets import load_dataset
    from convnet_search.stages.extract import extract_features
    from convnet_search.stages.featviz import STEPS, featviz_stage
    from convnet_search.nets.models import get_spec
    from convnet_search.io.store import ArrayStore

    real, name = _real()
    ds = load_dataset(real / name if real is not None and not quick else "digits")
    weights = "imagenet" if real is not None else "none"
    spec = get_spec(MODEL)
    base = RunConfig(datasets=(str(ds.root),), models=(MODEL,), weights=weights)
    times: dict[str, list[float]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory(prefix="bench-atlas-work-") as tmp:
        for i, kind in enumerate(("warm-up", "on", "off", "off", "on")):
            cfg = dataclasses.replace(base, atlas=kind == "on")
            store = ArrayStore(Path(tmp) / f"features-{i}")
            res = extract_features(ds, spec, cfg, store)
            _log(f"{kind}: {len(ds)} images in {res.seconds:.1f}s")
            if kind != "warm-up":
                times[kind].append(res.seconds)
            if kind == "on":
                on_store = store
        ratio = sum(times["on"]) / sum(times["off"])
        _log(f"atlas extract-time ratio {ratio:.3f}")
        steps = 32 if quick else STEPS
        t = time.perf_counter()
        viz = featviz_stage(on_store.load(ds.id, MODEL), base.seed, Path(tmp) / "work", steps=steps)
        fv_seconds = time.perf_counter() - t
        _log(f"featviz {MODEL}: {len(viz.layers)} layers x 16 channels, {steps} steps: {fv_seconds:.1f}s")
    rows = [
        {"measure": "extract, atlas off (s)", "model": MODEL, "value": round(sum(times["off"]) / 2, 2)},
        {"measure": "extract, atlas on (s)", "model": MODEL, "value": round(sum(times["on"]) / 2, 2)},
        {"measure": "atlas extract-time ratio (goal ≤ 1.10)", "model": MODEL, "value": round(ratio, 3)},
        {"measure": f"featviz ({len(viz.layers)} layers × 16 ch, {steps} steps) (s)", "model": MODEL,
         "value": round(fv_seconds, 1)},
    ]
    meta = {"dataset": ds.id, "images": len(ds), "weights": weights, "runs_s": times,
            "order": "warm-up (discarded), on, off, off, on", "quick": quick}
    return {"rows": rows, "meta": meta}


def main(argv: list[str] | None = None) -> int:
    args = worker_args(argv)
    result = worker(args.quick) if args.worker else run(args.quick)
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
