"""Benchmark: the Python API's search of one new image against 100,000 stored vectors (warm).

Issue 24's goal: ≤ 50 ms per query, excluding the forward pass. A work folder is written with
N seeded feature vectors shaped like pooled CNN features (bench_neighbors.make_features) and a
neighbours store saying which metrics the run has; `Run.search` is then called with an image
array, its forward pass replaced by a fixed query vector (`Run.embed` patched), so the time is
everything else the API does per query: the exact top-k (search/neighbors.py's `top_k_query`) and
the ranked (path, label, distance) hits. `gemv_floor` is one float32 matrix-vector product over the
same prepared matrix, timed interleaved in the same run: the memory-bandwidth floor of any exact
search, so the ratio holds on a busy machine where absolute times do not. The first call reads the features from HDF5 (cold); the
median of the next calls is the warm figure. Results are checked against scipy's brute force.

    PYTHONPATH=. python bench/bench_api_search.py [--n 100000] [--dim 1024] [--repeats 20] [--quick]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.spatial.distance import cdist

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_neighbors import make_features  # noqa: E402

K = 15
METRICS = ("cosine", "euclidean")


def write_run(work: Path, X: np.ndarray) -> None:
    """The stored outputs `open_run` reads: features (with the file list) and neighbours' metadata."""
    from convnet_search.io.store import ArrayStore, atomic_write_json
    from convnet_search.io.workspace import WORK_MARKER, marker_payload

    n = X.shape[0]
    files = [f"class_{i % 100:03d}/img_{i:06d}.jpg" for i in range(n)]
    layer = {"name": "conv_pw_13_relu", "dims": {"avg": X.shape[1]}}
    atomic_write_json(work / WORK_MARKER, marker_payload("work"))
    ArrayStore(work / "features").write("bench", "mobilenet_025", {
        "files": files, "layers": [layer], "poolings": ["avg"], "weights": "random",
        "weights_detail": "random init (seed 0)", "weights_digest": "-"}, {"avg/conv_pw_13_relu": X})
    ids = np.zeros((n, 1), np.int32)
    ArrayStore(work / "neighbors").write("bench", "mobilenet_025", {"params": [list(METRICS), 3.0, 1, []]}, {
        f"avg/conv_pw_13_relu/{m}/{a}": (ids if a == "ids" else ids.astype(np.float32))
        for m in METRICS for a in ("ids", "dists")})


def measure(n: int, dim: int, repeats: int) -> dict:
    import convnet_search as cs

    X = make_features(n, dim, seed=0)
    q = make_features(1, dim, seed=1)[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        write_run(Path(tmp), X)
        run = cs.open_run(tmp)
        run.embed = lambda images, config=None: q[None, :]  # the forward pass is not timed
        image = np.zeros((8, 8, 3), np.uint8)
        for metric in METRICS:
            config = run.select(metric=metric)
            t0 = time.perf_counter()
            hits = run.search(image, config, k=K)
            cold = time.perf_counter() - t0
            times, floor = [], []
            Xa = run._index(config).Xa
            for _ in range(repeats):  # interleaved with the floor: one product streaming the matrix
                t0 = time.perf_counter()
                hits = run.search(image, config, k=K)
                times.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                Xa @ q
                floor.append(time.perf_counter() - t0)
            d = cdist(q[None, :].astype(np.float64), X.astype(np.float64), metric)[0]
            want = list(np.lexsort((np.arange(n), d))[:K])
            rows.append({"metric": metric, "n": n, "dim": dim, "k": K, "cold_ms": round(cold * 1e3, 1),
                         "warm_median_ms": round(statistics.median(times) * 1e3, 2),
                         "warm_min_ms": round(min(times) * 1e3, 2), "repeats": repeats,
                         "gemv_floor_median_ms": round(statistics.median(floor) * 1e3, 2),
                         "exact": [h.id for h in hits] == want, "goal_ms": 50})
    return {"rows": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="N=2,000: checks the harness, not speed")
    args = ap.parse_args(argv)
    out = measure(2000 if args.quick else args.n, args.dim, 3 if args.quick else args.repeats)
    print(json.dumps(out, indent=1))
    return 0 if all(r["exact"] for r in out["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
