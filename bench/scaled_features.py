"""Writes a derived bundle's browser-search features: N vectors grown from a base bundle's float32
ones, encoded under a download budget by the engine's own encoder (convnet_search/browser_features),
with the manifest's `browser_search.features` entries (encoding, bytes, measured recall@15).

    python bench/scaled_features.py BASE OUT --dataset-in ID --dataset-out ID --n N [--budget-mb 32]
        [--outputs LAYER/POOLING ...] [--metrics cosine ...]

OUT must already hold the derived bundle's manifest (frontend/e2e/scaled-bundle.mjs writes it).
The first rows are the base dataset's real vectors (so an upload of a base photo finds itself);
the others are synthetic (`synthetic`). Used by bench/bench_live_scale.mjs and
frontend/e2e/live-compressed.test.mjs. Not part of the engine.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from convnet_search.search import browser_features as bf  # noqa: E402
from convnet_search.stages.bundle import read_index  # noqa: E402


def synthetic(x: np.ndarray, labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """n vectors like x: each a convex mix of two real vectors of the same class (weight of the
    second ~ U(0, 0.5)) times per-coordinate log-normal noise (σ = 0.1). This keeps what the
    encodings are sensitive to (non-negativity, sparsity, per-vector scale, the principal spectrum)
    and makes neighbourhoods n/len(x) times denser, so the top 15 is decided by finer differences
    than among the real photos: a harder case for lossy codes."""
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(x), n)
    by_class = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
    j = np.array([rng.choice(by_class[labels[a]]) for a in i])
    w = rng.uniform(0, 0.5, n).astype(np.float32)[:, None]
    out = (1 - w) * x[i] + w * x[j]
    out *= np.exp(rng.normal(0, 0.1, out.shape)).astype(np.float32)
    return out.astype(np.float32)


def grown(x: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """The real rows first, then synthetic ones up to n."""
    if n <= len(x):
        return x[:n]
    return np.concatenate([x, synthetic(x, labels, n - len(x))])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--dataset-in", required=True)
    ap.add_argument("--dataset-out", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--budget-mb", type=float, default=bf.DOWNLOAD_BUDGET_MB)
    ap.add_argument("--outputs", nargs="*", help="LAYER/POOLING to write (default: all)")
    ap.add_argument("--metrics", nargs="*", help="recall metrics (default: the manifest's)")
    a = ap.parse_args(argv)
    base = json.loads((a.base / "manifest.json").read_text())
    manifest = json.loads((a.out / "manifest.json").read_text())
    bs = base["browser_search"]
    labels = read_index(a.base, base, a.dataset_in)[1].astype(np.int64)
    metrics = a.metrics or [m["id"] for m in base["metrics"]]
    p = next((m["p"] for m in base["metrics"] if m["id"] == "minkowski"), None) or 3.0
    budget = int(a.budget_mb * 1e6)
    entries = []
    for o in bs["outputs"]:
        if a.outputs and f"{o['layer']}/{o['pooling']}" not in a.outputs:
            continue
        stored = next((e for e in bs.get("features", []) if e["dataset"] == a.dataset_in and e["layer"] == o["layer"]
                       and e["pooling"] == o["pooling"]), {"encoding": "float32"})
        if stored["encoding"] != "float32":
            raise SystemExit(f"{a.base}: {o['layer']}/{o['pooling']} is {stored['encoding']}; the base needs float32 features")
        rel = base["files"]["browser_features"].format(dataset=a.dataset_in, layer=o["layer"], pooling=o["pooling"],
                                                       encoding="float32")
        x = grown(np.fromfile(a.base / rel, dtype="<f4").reshape(-1, o["dim"]), labels, a.n)
        t = time.perf_counter()
        data, entry = bf.encode_for_browser(x, budget - bs["model_bytes"], metrics, p)
        out_rel = manifest["files"]["browser_features"].format(dataset=a.dataset_out, layer=o["layer"],
                                                               pooling=o["pooling"], encoding=entry["encoding"])
        (a.out / out_rel).parent.mkdir(parents=True, exist_ok=True)
        (a.out / out_rel).write_bytes(data)
        entries.append({"dataset": a.dataset_out, "layer": o["layer"], "pooling": o["pooling"], **entry})
        print(json.dumps({**entries[-1], "seconds": round(time.perf_counter() - t, 1)}), flush=True)
    manifest["browser_search"] = {**bs, "datasets": [a.dataset_out], "features_budget_bytes": budget, "features": entries}
    (a.out / "manifest.json").write_text(json.dumps(manifest))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
