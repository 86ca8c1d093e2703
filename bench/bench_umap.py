"""UMAP with the neighbours stage's kNN graph (umap-learn's precomputed_knn) vs UMAP's own search.

Data: seeded synthetic features, 20 gaussian clusters in 256-d (non-negative, like pooled ReLU
features), N = 200, 1,000, 10,000 (--quick: 200, 1,000). For each N, in one process:

* ``neighbors_s``: the neighbours stage's exact cosine top-k (k = 15, ``neighbors.top_k_neighbors``),
  which a run computes anyway; the shared path reuses it, so it is not part of ``umap_shared_s``.
* ``umap_own_s``: ``projection.umap_2d`` as before (umap-learn searches neighbours itself: exact
  pairwise distances below 4,096 points, NN-descent above).
* ``umap_shared_s``: ``projection.umap_2d`` given the stored graph.

One untimed warm-up of both paths first compiles umap-learn's numba code (and, when N ≥ 4,096
follows, pynndescent's: a run pays that once per process, not per layer). That once-per-run cost is
measured on its own (not with --quick): one umap_2d call at N = 4,200 in a fresh process per path. Quality of each map: the
kNN-preservation rate (share of each point's 15 exact cosine neighbours that are among its 15
nearest points on the map), the same-cluster rate of the map's 15 nearest points, and sklearn's
trustworthiness (15 neighbours, cosine; only up to N = 2,000: it builds the N×N matrix). Both paths
run with the engine's settings (seed 0, one thread: the price of reproducible maps).

Usage: python bench/bench_umap.py [--quick] [--n 200 1000 ...]
       python bench/bench_umap.py --features WORK/features/<ds>/<model>.h5 --key avg/<layer> [--key …]
       (an engine features file, e.g. real photos; labels = each image's folder; rows printed only)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

SIZES, QUICK_SIZES = (200, 1_000, 10_000), (200, 1_000)
DIM, CLUSTERS, K, SEED = 256, 20, 15, 0
TRUST_MAX_N = 2_000


def make_clusters(n: int, d: int = DIM, clusters: int = CLUSTERS, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """(features float32 [n, d], cluster label [n]): gaussian blobs around gamma-distributed centres."""
    rng = np.random.default_rng(seed)
    centers = rng.gamma(0.6, 1.0, size=(clusters, d))
    labels = rng.integers(0, clusters, size=n)
    x = centers[labels] + rng.normal(0.0, 0.5, size=(n, d))
    return np.maximum(x, 0.0).astype(np.float32), labels


def map_quality(x: np.ndarray, xy: np.ndarray, high_ids: np.ndarray, labels: np.ndarray) -> dict:
    from convnet_search.search.neighbors import top_k_neighbors

    low_ids, _ = top_k_neighbors(xy.astype(np.float64), K, "euclidean")
    kept = np.mean([len(np.intersect1d(a, b)) / K for a, b in zip(high_ids, low_ids)])
    q = {"knn_preserved": round(float(kept), 4),
         "same_cluster": round(float((labels[low_ids] == labels[:, None]).mean()), 4)}
    if len(x) <= TRUST_MAX_N:
        from sklearn.manifold import trustworthiness

        q["trustworthiness"] = round(float(trustworthiness(x, xy, n_neighbors=K, metric="cosine")), 4)
    return q


def bench_size(n: int) -> dict:
    x, labels = make_clusters(n)
    return {"case": f"synthetic N={n:,}", **bench_matrix(x, labels)}


def bench_matrix(x: np.ndarray, labels: np.ndarray) -> dict:
    from convnet_search.config import UmapConfig
    from convnet_search.search.neighbors import top_k_neighbors
    from convnet_search.search.projection import umap_2d

    n = len(x)
    cfg = UmapConfig()  # the run defaults: n_neighbors 15, min_dist 0.1, cosine
    t = time.perf_counter()
    ids, dists = top_k_neighbors(x, K, "cosine")
    t_nbrs = time.perf_counter() - t
    graphs = {"cosine": (ids.astype(np.int32), dists.astype(np.float32))}  # as the stage stores them
    t = time.perf_counter()
    own = umap_2d(x, cfg, SEED)
    t_own = time.perf_counter() - t
    t = time.perf_counter()
    shared = umap_2d(x, cfg, SEED, graphs)
    t_shared = time.perf_counter() - t
    row = {"n": n, "dim": x.shape[1], "neighbors_s": round(t_nbrs, 3),
           "umap_own_s": round(t_own, 3), "umap_shared_s": round(t_shared, 3),
           "speedup": round(t_own / t_shared, 2)}
    for name, xy in (("own", own), ("shared", shared)):
        for key, v in map_quality(x, xy, ids, labels).items():
            row[f"{key}_{name}"] = v
    if n <= 1_000:  # reproducibility of the shared path (a second run at the largest N costs minutes)
        row["shared_byte_identical_rerun"] = umap_2d(x, cfg, SEED, graphs).tobytes() == shared.tobytes()
    return row


def warm_up(largest: int) -> None:
    """Compile umap-learn's numba code for both paths (untimed); with N ≥ 4,096 to come, also its
    NN-descent search (pynndescent), which smaller N never reach."""
    from convnet_search.config import UmapConfig
    from convnet_search.search.neighbors import top_k_neighbors
    from convnet_search.search.projection import umap_2d

    warm, _ = make_clusters(300, seed=1)
    w_ids, w_d = top_k_neighbors(warm, K, "cosine")
    umap_2d(warm, UmapConfig(), SEED)
    umap_2d(warm, UmapConfig(), SEED, {"cosine": (w_ids, w_d)})
    if largest >= 4_096:
        umap_2d(make_clusters(4_200, seed=1)[0], UmapConfig(), SEED)


def bench_features_file(path: Path, key: str) -> dict:
    """One row for a matrix of an engine features file (labels: each image's folder)."""
    import h5py

    with h5py.File(path, "r") as f:
        meta = json.loads(f.attrs["meta"])
        x = f["arrays"][key][()]
    labels = np.array([name.split("/")[0] for name in meta["files"]])
    return {"case": f"{meta.get('dataset', path.stem)} {meta['model']} {key} ({meta.get('weights')})",
            **bench_matrix(x, labels)}


COLD_N = 4_200  # just above umap-learn's 4,096: its own search is NN-descent (pynndescent)


def _cold_child(shared: bool) -> float:
    """Seconds of one umap_2d call in this (fresh) process: numba compilation included."""
    from convnet_search.config import UmapConfig
    from convnet_search.search.neighbors import top_k_neighbors
    from convnet_search.search.projection import umap_2d

    x, _ = make_clusters(COLD_N, seed=1)
    graphs = {"cosine": top_k_neighbors(x, K, "cosine")} if shared else None
    t = time.perf_counter()
    umap_2d(x, UmapConfig(), SEED, graphs)
    return time.perf_counter() - t


def cold_row() -> dict:
    """A run's first layer of N ≥ 4,096: each path in its own fresh process, compilation included."""
    import subprocess

    secs = {}
    for name in ("own", "shared"):
        code = (f"import sys; sys.path.insert(0, {str(BENCH_DIR)!r}); import bench_umap; "
                f"print(bench_umap._cold_child({name == 'shared'}))")
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
        secs[name] = float(out.stdout.strip().splitlines()[-1])
    return {"case": f"first layer, fresh process, N={COLD_N:,}", "n": COLD_N, "dim": DIM,
            "umap_own_s": round(secs["own"], 3), "umap_shared_s": round(secs["shared"], 3),
            "speedup": round(secs["own"] / secs["shared"], 2),
            "note": "one umap_2d call per fresh process: numba compilation (umap-learn, and pynndescent "
                    "on the own path) included; a run pays it once, not per layer"}


def run(quick: bool, sizes: tuple[int, ...] | None = None) -> dict:
    sizes = sizes or (QUICK_SIZES if quick else SIZES)
    rows = []
    if not quick:
        rows.append(cold_row())
        print(json.dumps(rows[-1]), flush=True)
    warm_up(max(sizes))
    for n in sizes:
        rows.append(bench_size(n))
        print(json.dumps(rows[-1]), flush=True)
    meta = {"data": f"{CLUSTERS} gaussian clusters in {DIM}-d, non-negative, seed {SEED}",
            "umap": "n_neighbors 15, min_dist 0.1, cosine, random_state 0, n_jobs 1 (the engine's settings)",
            "note": "umap-learn computes exact pairwise distances itself below 4,096 points and NN-descent "
                    "above; timings are from a shared 2-core machine"}
    return {"rows": rows, "meta": meta}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n", type=int, nargs="+", help="sizes to run (default: 200 1000 10000)")
    ap.add_argument("--features", type=Path, help="an engine features file (work/features/<ds>/<model>.h5): "
                    "measure its matrices instead (labels = each image's folder)")
    ap.add_argument("--key", action="append", help="with --features: <pooling>/<layer> (repeatable)")
    args = ap.parse_args()
    if args.features:
        warm_up(0)
        for key in args.key or []:
            print(json.dumps(bench_features_file(args.features, key)), flush=True)
        return 0
    run(args.quick, tuple(args.n) if args.n else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
