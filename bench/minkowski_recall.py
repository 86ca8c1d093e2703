"""How large L must be: recall@15 of euclidean-top-L candidates + exact minkowski re-rank against
exact minkowski top-15, on 1,000 sampled rows, for L = 15 … 240 (bench/README.md has the figures).

  python bench/minkowski_recall.py features FILE.h5      # every matrix of a stored features file, p 3, 1.5, 4
  python bench/minkowski_recall.py syn N D P[,P...]       # bench_neighbors.make_features(N, D, seed=5)

Candidates here come from float64 numpy distances (the engine uses the float32 gemm); the exact
top-15 is the engine's own exact kernel.
"""
import json
import sys
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_neighbors import make_features  # noqa: E402

from convnet_search.search.neighbors import _minkowski_p, _minkowski_select  # noqa: E402

LS = [15, 30, 60, 120, 240]

def recall_curve(X, p, rows=1000, seed=0, k=15):
    X = np.ascontiguousarray(X, dtype=np.float32)
    n = X.shape[0]
    sample = np.sort(np.random.default_rng(seed).choice(n, min(rows, n), replace=False))
    pf, ip = _minkowski_p(p)
    Q = np.ascontiguousarray(X[sample])
    exact = np.empty((len(sample), k), np.int64)
    _minkowski_select(Q, X, pf, ip, sample.astype(np.int64), k, exact, np.empty((len(sample), k)), 0, len(sample))
    sq = (X.astype(np.float64) ** 2).sum(1)
    d2 = sq[sample, None] + sq[None, :] - 2.0 * (Q @ X.T).astype(np.float64)
    d2[np.arange(len(sample)), sample] = np.inf
    out = {}
    for L in LS:
        if L >= n: continue
        cand = np.argpartition(d2, L, axis=1)[:, :L]
        hits = []
        for r in range(len(sample)):
            c = cand[r]
            dm = (np.abs(X[c].astype(np.float64) - X[sample[r]].astype(np.float64)) ** pf).sum(1)
            top = c[np.lexsort((c, dm))[:k]]
            hits.append(np.intersect1d(top, exact[r]).size / k)
        out[L] = (float(np.mean(hits)), float(np.min(hits)))
    return out

if __name__ == "__main__":
    which = sys.argv[1]
    if which == "features":
        f = h5py.File(sys.argv[2], "r")
        keys = json.loads(f.attrs["meta"])["keys"]
        for key in keys:
            X = f["arrays"][key][()]
            if X.shape[1] > 20000: continue
            for p in (3.0, 1.5, 4.0):
                r = recall_curve(X, p)
                print(key, X.shape, p, {L: round(v[0], 4) for L, v in r.items()}, flush=True)
    else:
        n, d = int(sys.argv[2]), int(sys.argv[3])
        ps = [float(x) for x in sys.argv[4].split(",")]
        X = make_features(n, d, seed=5)
        for p in ps:
            t = time.time(); r = recall_curve(X, p)
            print(n, d, p, {L: (round(v[0], 4), round(v[1], 3)) for L, v in r.items()}, f"{time.time()-t:.0f}s", flush=True)
