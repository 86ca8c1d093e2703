"""Semantic-quality benchmark: real ImageNet features vs the same network with random weights.

On ../shared/real/tinyimagenet20 (1000 real photos, 20 ImageNet classes × 50), MobileNet α 0.25
(`mobilenet_025`) with its real ImageNet weights (Keras' own files under
../shared/real/weights/keras_home) and with random weights (seed 0): mean search score, P@15 and
mAP@15 for every default layer × metric × pooling (`convnet_search.nets.models.POOLINGS`, whatever it
holds), the best configuration of each, and the real/random ratio.

Engine code path: features come from `models.build_feature_extractor` (the engine's multi-output
extractor: every pooling of every layer from one forward pass; flatten, which the engine refuses at
early layers, gets a second pass over the layers it accepts), read through the engine's reader
(`extractor.image_batches`: `images.load_rgb` + the one resize path); neighbours from
`neighbors.top_k_neighbors` with the run defaults (`RunConfig`: k, metrics, minkowski p), quality
from `evaluate.summarize` (what the bundle's summary files hold).

The work runs in a child process (`python bench/bench_quality.py --worker`): Keras reads
KERAS_HOME once, at import, and bench/run.py's other sections import it earlier; the child also
gives the ≈ 1 GB of flattened features back to the system when it ends.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from worker_process import run_worker, section_main, worker_args  # bench/ is on sys.path (run.py, or the script's folder)

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
ENV_REAL = "CONVNET_SEARCH_REAL"
MODEL = "mobilenet_025"
DATASET = "tinyimagenet20"
SEED = 0
# (label in the results, --weights value)
KINDS = (("real", "imagenet"), ("random", "none"))
QUICK_PER_CLASS = 10  # --quick: the first 10 images of each class (harness check, not the figures)


def real_dir() -> Path:
    """$CONVNET_SEARCH_REAL, else <repo>/../shared/real."""
    env = os.environ.get(ENV_REAL)
    return Path(env).expanduser() if env else ROOT.parent / "shared" / "real"


def real_weights_env() -> dict[str, str]:
    """The environment of a child process that loads the real ImageNet weights (Keras reads
    KERAS_HOME once, at import)."""
    return {**os.environ, "KERAS_HOME": str(real_dir() / "weights" / "keras_home"),
            "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}


def skip_reason() -> str | None:
    real = real_dir()
    missing = [p for p in (real / DATASET, real / "weights" / "keras_home" / "models") if not p.is_dir()]
    if missing:
        return (f"{missing[0]} not found (real photos and ImageNet weights; set {ENV_REAL} to the "
                "folder holding tinyimagenet20/ and weights/); section 'quality' skipped")
    return None


# ---------------------------------------------------------------------------------------------
# Parent side: run the worker, print its result
# ---------------------------------------------------------------------------------------------

def run(quick: bool) -> dict:
    return run_worker(__file__, "quality", real_weights_env(), quick, skip=skip_reason())


def _cell(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def print_report(console, rows: list[dict], meta: dict) -> None:
    """Three tables (search score with real/random ratio, P@15, mAP@15): layer × metric rows,
    pooling × weights columns; then the best configurations and the headline ratio."""
    from rich.table import Table

    poolings = meta["poolings"]
    by_key = {(r["layer"], r["metric"], r["pooling"]): r for r in rows}
    quantities = (("search_score", "mean search score", True), ("p_at_15", "P@15", False),
                  ("map_at_15", "mAP@15", False))
    for qkey, title, with_ratio in quantities:
        t = Table(title=f"quality: {title} — {meta['model']} on {meta['dataset']} "
                        f"({meta['images']} images, {meta['classes']} classes; chance ≈ {meta['chance']:.3f})",
                  title_justify="left")
        t.add_column("layer", no_wrap=True)
        t.add_column("metric", no_wrap=True)
        for p in poolings:
            t.add_column(f"{p}\nreal", justify="right", no_wrap=True)
            t.add_column(f"{p}\nrand", justify="right", no_wrap=True)
            if with_ratio:
                t.add_column(f"{p}\n×", justify="right", no_wrap=True)
        for layer in meta["layers"]:
            for metric in meta["metrics"]:
                cells = []
                for p in poolings:
                    r = by_key[(layer["name"], metric, p)]
                    if r["na"]:  # "n/a (dim …)" over two cells: "n/a" | "dim …"
                        cells += ["n/a", r["na"][5:-1]] + ([""] if with_ratio else [])
                        continue
                    cells += [_cell(r[f"real_{qkey}"]), _cell(r[f"random_{qkey}"])]
                    if with_ratio:
                        cells.append("—" if r["ratio"] is None else f"{r['ratio']:.1f}")
                t.add_row(layer["name"], metric, *cells)
            if layer is not meta["layers"][-1]:
                t.add_section()
        console.print(t)
    for kind in ("real", "random"):
        b = meta["best"][kind]
        console.print(f"best {kind:6}: {b['layer']} · {b['metric']} · {b['pooling']}: search score "
                      f"{b['search_score']:.3f}, P@15 {b['p_at_15']:.3f}, mAP@15 {b['map_at_15']:.3f}")
    console.print(f"real/random (each at its best configuration): {meta['ratio_best']:.2f}×; "
                  f"random at the real best configuration: {meta['random_at_real_best']:.3f} "
                  f"({meta['ratio_at_real_best']:.2f}×)")
    tm = meta["timing_s"]
    console.print("time: " + "; ".join(
        f"{k}: build {v['build']:.1f}s, forward {v['forward']:.1f}s, neighbours {v['neighbors']:.1f}s, "
        f"evaluate {v['evaluate']:.1f}s" for k, v in tm.items() if isinstance(v, dict))
        + f"; worker total {tm['total']:.1f}s")
    na = sorted({r["na"] for r in rows if r["na"]})
    if na:
        console.print(f"[dim]n/a cells: pooled vectors above pooling.MAX_FLATTEN_DIM = "
                      f"{meta['max_flatten_dim']:,} values, which the engine refuses ({', '.join(na)})[/]")


# ---------------------------------------------------------------------------------------------
# Worker side
# ---------------------------------------------------------------------------------------------

def _log(msg: str) -> None:
    print(f"[quality] {msg}", file=sys.stderr, flush=True)


def _passes(spec, weights: str, seed: int):
    """Extractors to run, as [(model, poolings, layer infos)], plus na[pooling][layer] = the
    dimension the engine refuses there. Every pooling the engine accepts at all default layers
    shares one multi-output extractor (one forward pass); a pooling it refuses at some layers
    (flatten at early ones) gets its own pass over the layers it accepts."""
    from convnet_search.nets.models import build_feature_extractor
    from convnet_search.nets.pooling import MAX_FLATTEN_DIM, POOLINGS

    model, infos, base_info = build_feature_extractor(spec, None, weights=weights, pooling="avg", seed=seed)
    na = {p: {i.name: i.dim(p) for i in infos if i.dim(p) > MAX_FLATTEN_DIM} for p in POOLINGS}
    shared = [p for p in POOLINGS if not na[p]]
    passes = [(*build_feature_extractor(spec, [i.name for i in infos], weights=weights, pooling=shared,
                                        seed=seed)[:2], shared)]
    for p in POOLINGS:
        keep = [i.name for i in infos if i.name not in na[p]]
        if na[p] and keep:
            passes.append((*build_feature_extractor(spec, keep, weights=weights, pooling=p, seed=seed)[:2], [p]))
    return [(m, pools, p_infos) for m, p_infos, pools in passes], infos, na, base_info


def extract_all(ds, spec, weights: str, seed: int, batch_size: int) -> dict:
    """features[pooling][layer] float32 [N, dim] through the engine's reader and extractors."""
    import numpy as np

    from convnet_search.runtime import import_tensorflow

    tf = import_tensorflow()
    from convnet_search.nets.extractor import image_batches
    from convnet_search.nets.models import output_keys

    t0 = time.perf_counter()
    passes, infos, na, base_info = _passes(spec, weights, seed)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    features: dict = {}
    for model, pools, p_infos in passes:
        infer = tf.function(lambda x, model=model: model(x, training=False), reduce_retracing=True)
        keys = output_keys(p_infos, pools)  # "<pooling>/<layer>", the extractor's output order
        parts = {key: [] for key in keys}
        for batch in image_batches([ds.path(i) for i in range(len(ds))], spec.input_size, batch_size):
            outs = infer(batch)
            outs = outs if isinstance(outs, (list, tuple)) else [outs]
            for key, o in zip(keys, outs):
                parts[key].append(o.numpy().astype(np.float32, copy=False))
        for key, v in parts.items():
            pooling, layer = key.split("/", 1)
            features.setdefault(pooling, {})[layer] = np.ascontiguousarray(np.concatenate(v))
    forward_s = time.perf_counter() - t0
    return {"features": features, "infos": infos, "na": na, "base_info": base_info,
            "passes": len(passes), "build_s": build_s, "forward_s": forward_s}


def evaluate_all(features: dict, labels, cfg) -> tuple[dict, float, float]:
    """quality[(pooling, layer, metric)] = QualitySummary, with neighbour and evaluation seconds."""
    from convnet_search.search.evaluate import summarize
    from convnet_search.search.neighbors import top_k_neighbors

    k = min(cfg.k, len(labels) - 1)  # as stages/neighbors.py's neighbors_stage
    out, t_nbr, t_eval = {}, 0.0, 0.0
    for p, by_layer in features.items():
        for layer, x in by_layer.items():
            for metric in cfg.metrics:
                t = time.perf_counter()
                ids, _ = top_k_neighbors(x, k, metric, p=cfg.minkowski_p)
                t_nbr += time.perf_counter() - t
                t = time.perf_counter()
                out[(p, layer, metric)] = summarize(ids, labels, k)  # as bundle.write_bundle
                t_eval += time.perf_counter() - t
    return out, t_nbr, t_eval


def _subset(ds, per_class: int):
    import dataclasses

    import numpy as np

    keep = np.concatenate([np.flatnonzero(ds.labels == c)[:per_class] for c in range(len(ds.classes))])
    keep.sort()
    return dataclasses.replace(ds, files=[ds.files[i] for i in keep], labels=ds.labels[keep])


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def worker(quick: bool) -> dict:
    t_start = time.perf_counter()
    from convnet_search.config import RunConfig
    from convnet_search.io.datasets import load_dataset
    from convnet_search.nets.models import get_spec
    from convnet_search.nets.pooling import MAX_FLATTEN_DIM, POOLINGS

    cfg = RunConfig()  # the run defaults: k, metrics, minkowski p, batch size
    real = real_dir()
    ds = load_dataset(real / DATASET)
    if quick:
        ds = _subset(ds, QUICK_PER_CLASS)
    spec = get_spec(MODEL)
    labels = ds.labels
    n = len(ds)
    counts = [int((labels == c).sum()) for c in range(len(ds.classes))]
    chance = sum(c * (c - 1) for c in counts) / (n * (n - 1))  # P(random other image shares the class)

    results, timing, weights_meta = {}, {}, {}
    infos = na = None
    for kind, weights in KINDS:
        _log(f"{kind} weights ({weights}): {n} images, poolings {', '.join(POOLINGS)}")
        ex = extract_all(ds, spec, weights, SEED, cfg.batch_size)
        infos, na, b = ex["infos"], ex["na"], ex["base_info"]
        if kind == "real" and b["weights"] != "imagenet":
            raise RuntimeError(f"expected ImageNet weights, got {b['weights']}: {b['weights_detail']}")
        weights_meta[kind] = {"option": weights, "kind": b["weights"], "detail": b["weights_detail"],
                              "digest": b["weights_digest"]}
        _log(f"{kind}: build {ex['build_s']:.1f}s, {ex['passes']} forward pass(es) {ex['forward_s']:.1f}s; neighbours …")
        results[kind], t_nbr, t_eval = evaluate_all(ex["features"], labels, cfg)
        timing[kind] = {"build": round(ex["build_s"], 2), "forward": round(ex["forward_s"], 2),
                        "neighbors": round(t_nbr, 2), "evaluate": round(t_eval, 2)}
        del ex  # the flattened features (≈ 1 GB at N = 1000) before the next weights kind
        _log(f"{kind}: neighbours {t_nbr:.1f}s, evaluate {t_eval:.1f}s")

    rows = []
    for i in infos:
        for metric in cfg.metrics:
            for p in POOLINGS:
                row = {"layer": i.name, "depth": i.depth, "metric": metric, "pooling": p, "dim": i.dim(p),
                       "na": None}
                q = {kind: results[kind].get((p, i.name, metric)) for kind, _ in KINDS}
                if q["real"] is None:
                    row["na"] = f"n/a (dim {na[p].get(i.name, i.dim(p)):,})"
                for kind, _ in KINDS:
                    row[f"{kind}_search_score"] = None if q[kind] is None else round(q[kind].search_score, 6)
                    row[f"{kind}_p_at_15"] = None if q[kind] is None else round(q[kind].precision_at_k, 6)
                    row[f"{kind}_map_at_15"] = None if q[kind] is None else round(q[kind].map_at_k, 6)
                row["ratio"] = _ratio(row["real_search_score"], row["random_search_score"])
                row["ratio"] = None if row["ratio"] is None else round(row["ratio"], 3)
                rows.append(row)

    def best(kind: str) -> dict:
        r = max((r for r in rows if r[f"{kind}_search_score"] is not None),
                key=lambda r: r[f"{kind}_search_score"])
        return {"layer": r["layer"], "metric": r["metric"], "pooling": r["pooling"],
                "search_score": r[f"{kind}_search_score"], "p_at_15": r[f"{kind}_p_at_15"],
                "map_at_15": r[f"{kind}_map_at_15"]}

    bests = {kind: best(kind) for kind, _ in KINDS}
    at_real_best = next(r for r in rows if (r["layer"], r["metric"], r["pooling"])
                        == (bests["real"]["layer"], bests["real"]["metric"], bests["real"]["pooling"]))
    timing["total"] = round(time.perf_counter() - t_start, 2)
    meta = {
        "model": MODEL, "dataset": DATASET, "dataset_path": str(real / DATASET), "quick": quick,
        "images": n, "classes": len(ds.classes), "chance": round(chance, 6), "k": min(cfg.k, n - 1),
        "metrics": list(cfg.metrics), "minkowski_p": cfg.minkowski_p, "poolings": list(POOLINGS),
        "max_flatten_dim": MAX_FLATTEN_DIM,
        "layers": [{"name": i.name, "output_shape": list(i.output_shape), "depth": i.depth} for i in infos],
        "weights": weights_meta,
        "best": bests,
        "ratio_best": round(bests["real"]["search_score"] / bests["random"]["search_score"], 3),
        "random_at_real_best": at_real_best["random_search_score"],
        "ratio_at_real_best": at_real_best["ratio"],
        "timing_s": timing,
        "notes": ("search score / P@15 / mAP@15 as in the bundle's summary files (evaluate.summarize); "
                  "ratio = real / random search score of the same configuration; n/a = pooled vector "
                  "larger than pooling.MAX_FLATTEN_DIM (the engine refuses it)"),
    }
    return {"rows": rows, "meta": meta}


def main(argv: list[str] | None = None) -> int:
    args = worker_args(argv, quick_help=f"first {QUICK_PER_CLASS} images of each class", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    for p in (str(ROOT), str(BENCH_DIR)):
        if p not in sys.path:
            sys.path.insert(0, p)
    section_main(args, worker=worker, run=run, skip_reason=skip_reason, report=_report)
    return 0


def _report(result: dict) -> None:
    from rich.console import Console

    print_report(Console(width=200), result["rows"], result["meta"])


if __name__ == "__main__":
    sys.exit(main())
