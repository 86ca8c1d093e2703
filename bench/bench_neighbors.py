"""Benchmark: exact top-k (convnet_search.search.neighbors) vs scipy ``cdist`` + ``argsort``.

Full size: N=20,000, D=1024, k=15 under cosine, euclidean, sqeuclidean; minkowski p=3 at N=5,000.
The baseline builds the full distance rows and sorts them. Run over all N query rows it would need
the N×N float64 matrix (3.2 GB at N=20,000) plus an int64 argsort of the same size and several
minutes per metric, so it is timed on a contiguous block of query rows against all N and scaled
linearly to N rows (each row's work is the same: one cdist row + one argsort of N values). Every
row says which rows were measured and the scale factor. Ours is always timed on all N rows. Both
run in the same process, interleaved (baseline, ours, baseline, ours), and each keeps its fastest
round, so the ratio is measured in one run and is robust to other jobs on the machine.

Ours is checked against the baseline on the measured rows: ids equal to a *stable* sort of the
baseline's distances (ties → smaller id), with the query itself excluded.

Two more kinds of row:
* shared euclidean + sqeuclidean: ``top_k_neighbors_multi`` (one gemm pass serves both) against
  two separate calls, interleaved, ids and distances required bit-equal.
* faiss (optional, not a project dependency; skipped with a note when ``import faiss`` fails):
  exact flat indexes ``IndexFlatIP`` on L2-normalised rows (cosine) and ``IndexFlatL2``
  (sqeuclidean), searching k+1 and dropping the query itself, against ours in the same run,
  interleaved; faiss's ids are compared with ours (= the exact reference, ties → smaller id) on
  1,000 sampled rows, and on a small set with exact duplicate rows (ties).
"""

from __future__ import annotations

import gc
import time
import tracemalloc

import numpy as np
from scipy.spatial.distance import cdist

from convnet_search.search.neighbors import top_k_neighbors, top_k_neighbors_multi

K = 15
GEMM_METRICS = ("cosine", "euclidean", "sqeuclidean")


def make_features(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Seeded float32 data shaped like pooled CNN features: non-negative, sparse-ish, clustered."""
    rng = np.random.default_rng(seed)
    n_clusters = max(2, n // 200)
    centers = rng.gamma(0.6, 1.0, size=(n_clusters, d)).astype(np.float32)
    assign = rng.integers(0, n_clusters, size=n)
    X = centers[assign] + rng.normal(0.0, 0.6, size=(n, d)).astype(np.float32)
    np.maximum(X, 0.0, out=X)
    return np.ascontiguousarray(X, dtype=np.float32)


def _baseline_block(X: np.ndarray, rows: slice, metric: str, **kw) -> tuple[float, np.ndarray]:
    """Time cdist(X[rows], X) + argsort; return (seconds, the distance block for checking)."""
    t0 = time.perf_counter()
    D = cdist(X[rows], X, metric, **kw)
    order = np.argsort(D, axis=1)
    t = time.perf_counter() - t0
    del order
    return t, D


def _check(ids: np.ndarray, D: np.ndarray, row0: int) -> int:
    """Number of rows where ours differs from the stable (distance, id) order of the baseline."""
    D = D.copy()
    r = np.arange(D.shape[0])
    D[r, row0 + r] = np.inf  # the query itself is excluded
    ref = np.argsort(D, axis=1, kind="stable")[:, : ids.shape[1]]
    return int((ref != ids[row0 : row0 + D.shape[0]]).any(axis=1).sum())


def _ours_time(X: np.ndarray, metric: str, **kw) -> tuple[float, np.ndarray]:
    gc.collect()
    t0 = time.perf_counter()
    ids, _ = top_k_neighbors(X, K, metric, **kw)
    return time.perf_counter() - t0, ids


def _compare(X: np.ndarray, metric: str, base_rows: int, rounds: int, **kw):
    """Interleave ours and the baseline (B, O, B, O, …) and keep each one's fastest round: on a
    shared 2-core machine other jobs come and go, and the minimum is the least disturbed run."""
    t_ours, t_base = [], []
    for _ in range(rounds):
        tb, D = _baseline_block(X, slice(0, base_rows), metric, **kw)
        t_base.append(tb)
        to, ids = _ours_time(X, metric, **kw)
        t_ours.append(to)
    mism = _check(ids, D, 0)
    del D
    peak, ids2 = _ours_peak(X, metric, **kw)
    assert np.array_equal(ids, ids2)  # deterministic
    return min(t_ours), min(t_base), peak, mism, t_ours, t_base


def _ours_peak(X: np.ndarray, metric: str, **kw) -> tuple[int, np.ndarray]:
    """(tracemalloc peak bytes, ids) of an untimed call, so tracemalloc's bookkeeping does not
    slow the timed ones."""
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    ids, d = top_k_neighbors(X, K, metric, **kw)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del d
    return peak, ids


def _row(metric, n, d, ours_s, base_rows, base_s, peak, mismatches, goal_speedup, extra=""):
    scale = n / base_rows
    base_full = base_s * scale
    nxn = n * n * 8
    speedup = base_full / ours_s
    note = (
        f"baseline timed on query rows 0–{base_rows - 1} of {n} against all {n}, scaled ×{scale:g}"
        if base_rows < n
        else "baseline timed on all rows"
    )
    return {
        "case": f"top-{K} {metric}{extra}",
        "metric": metric,
        "n": n,
        "d": d,
        "k": K,
        "ours_s": round(ours_s, 3),
        "baseline_s": round(base_full, 3),
        "baseline_measured_s": round(base_s, 3),
        "baseline_rows_measured": base_rows,
        "baseline_note": note,
        "speedup": round(speedup, 2),
        "goal_speedup": goal_speedup,
        "ours_peak_bytes": int(peak),
        "nxn_float64_bytes": nxn,
        "peak_vs_nxn": round(peak / nxn, 4),
        "checked_rows": base_rows,
        "mismatched_rows": mismatches,
        "equal": mismatches == 0,
        "pass": (mismatches == 0) and (goal_speedup is None or speedup >= goal_speedup),
    }


def _best_of(rounds: int, *fns):
    """Each fn called `rounds` times, interleaved; (fastest seconds per fn, last result per fn)."""
    times = [[] for _ in fns]
    results = [None] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            gc.collect()
            t0 = time.perf_counter()
            results[i] = fn()
            times[i].append(time.perf_counter() - t0)
    return [min(t) for t in times], results, times


def _shared_row(X: np.ndarray, rounds: int) -> dict:
    """euclidean + sqeuclidean: one shared pass vs two separate calls, results bit-equal."""
    def separate():
        return {m: top_k_neighbors(X, K, m) for m in ("euclidean", "sqeuclidean")}

    def shared():
        return top_k_neighbors_multi(X, K, ["euclidean", "sqeuclidean"])

    (t_sep, t_sh), (sep, sh), times = _best_of(rounds, separate, shared)
    equal = all(np.array_equal(sep[m][i], sh[m][i]) for m in sep for i in (0, 1))
    return {"case": f"top-{K} euclidean+sqeuclidean shared", "metric": "euclidean+sqeuclidean",
            "n": X.shape[0], "d": X.shape[1], "k": K, "ours_s": round(t_sh, 3),
            "separate_s": round(t_sep, 3), "speedup": round(t_sep / t_sh, 2), "equal": equal,
            "pass": equal, "rounds_ours_s": [round(t, 3) for t in times[1]],
            "rounds_separate_s": [round(t, 3) for t in times[0]]}


def _faiss():
    try:
        import faiss  # noqa: PLC0415 - optional, measured only
    except ImportError:
        return None
    return faiss


def _faiss_search(faiss, X: np.ndarray, metric: str) -> np.ndarray:
    """faiss exact flat search of X against itself; top-K ids with the query itself dropped."""
    if metric == "cosine":
        Xn = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-30)
        index = faiss.IndexFlatIP(X.shape[1])
    else:
        Xn = X
        index = faiss.IndexFlatL2(X.shape[1])
    Xn = np.ascontiguousarray(Xn, dtype=np.float32)
    index.add(Xn)
    _, I = index.search(Xn, K + 1)
    return _drop_self(I)


def _drop_self(I: np.ndarray) -> np.ndarray:
    """K ids per row without the row itself (faiss may rank an exact duplicate above it)."""
    out = np.empty((I.shape[0], K), dtype=np.int64)
    for q, row in enumerate(I):
        out[q] = [j for j in row if j != q][:K]
    return out


def _id_mismatches(a: np.ndarray, b: np.ndarray, rows: np.ndarray) -> tuple[int, int]:
    """(rows whose ordered ids differ, rows whose id *sets* differ) among `rows`."""
    ordered = int((a[rows] != b[rows]).any(axis=1).sum())
    sets = sum(set(a[r].tolist()) != set(b[r].tolist()) for r in rows)
    return ordered, int(sets)


def _faiss_rows(X: np.ndarray, rounds: int) -> list[dict]:
    faiss = _faiss()
    if faiss is None:
        return [{"case": "faiss flat", "skipped": True,
                 "note": "faiss not importable (optional, not a project dependency): "
                         "`pip install faiss-cpu` to measure it"}]
    n = X.shape[0]
    sample = np.random.default_rng(7).choice(n, min(1000, n), replace=False)
    ties = make_features(500, 64, seed=3)[np.repeat(np.arange(500), 4)]  # every row 3 duplicates
    rows = []
    for metric in ("cosine", "sqeuclidean"):
        (t_f, t_o), (f_ids, (o_ids, _)), times = _best_of(
            rounds, lambda: _faiss_search(faiss, X, metric), lambda: top_k_neighbors(X, K, metric))
        mism, mism_sets = _id_mismatches(f_ids, o_ids, sample)
        t_mism, t_sets = _id_mismatches(_faiss_search(faiss, ties, metric), top_k_neighbors(ties, K, metric)[0],
                                        np.arange(len(ties)))
        rows.append({
            "case": f"top-{K} {metric} faiss flat", "metric": metric, "n": n, "d": X.shape[1], "k": K,
            "ours_s": round(t_o, 3), "faiss_s": round(t_f, 3), "faiss_vs_ours": round(t_o / t_f, 2),
            "faiss_version": faiss.__version__, "faiss_threads": faiss.omp_get_max_threads(),
            "checked_rows": len(sample), "faiss_mismatched_rows": mism, "faiss_mismatched_sets": mism_sets,
            "ties_rows": len(ties), "ties_faiss_mismatched_rows": t_mism, "ties_faiss_mismatched_sets": t_sets,
            "rounds_ours_s": [round(t, 3) for t in times[1]], "rounds_faiss_s": [round(t, 3) for t in times[0]],
            "note": "faiss_vs_ours = ours_s / faiss_s (> 1: faiss faster); mismatches: faiss ids ≠ ours "
                    "(ours = exact reference, ties → smaller id)", "load_avg_at_end": load_avg(),
        })
    return rows


def run(quick: bool) -> list[dict]:
    n, d, base_rows = (2000, 128, 2000) if quick else (20000, 1024, 1000)
    n_m, base_rows_m = (500, 500) if quick else (5000, 200)

    # JIT warm-up (numba compiles or loads its cache on first use); not part of the timings.
    t0 = time.perf_counter()
    w = make_features(64, 8, seed=1)
    for metric in (*GEMM_METRICS, "minkowski"):
        top_k_neighbors(w, K, metric)
    warm = time.perf_counter() - t0

    rows = []
    X = make_features(n, d)
    rounds = 2
    for metric in GEMM_METRICS:
        ours_s, base_s, peak, mism, t_o, t_b = _compare(X, metric, base_rows, rounds)
        gc.collect()
        # the ≥10× goal is for the full size; --quick only checks the harness and correctness
        r = _row(metric, n, d, ours_s, base_rows, base_s, peak, mism, None if quick else 10.0)
        r["load_avg_at_end"] = load_avg()
        r["rounds_ours_s"], r["rounds_baseline_measured_s"] = [round(t, 3) for t in t_o], [round(t, 3) for t in t_b]
        rows.append(r)
    rows.append(_shared_row(X, rounds))
    rows.extend(_faiss_rows(X, rounds))
    del X
    gc.collect()

    rows.append(_minkowski_candidates_row(n, d, rounds=1))

    Xm = make_features(n_m, d, seed=2)
    ours_s, base_s, peak, mism, t_o, t_b = _compare(Xm, "minkowski", base_rows_m, rounds, p=3)
    r = _row("minkowski", n_m, d, ours_s, base_rows_m, base_s, peak, mism, None, extra=" p=3")
    r["rounds_ours_s"], r["rounds_baseline_measured_s"] = [round(t, 3) for t in t_o], [round(t, 3) for t in t_b]
    rows.append(r)
    for r in rows:
        r["jit_warmup_s"] = round(warm, 2)
        r["load_avg_at_end"] = r.get("load_avg_at_end") or load_avg()
    return rows


def load_avg() -> list[float]:
    """1, 5, 15-minute load average (2 cores: above 2 means other jobs competed for them)."""
    import os

    return [round(x, 2) for x in os.getloadavg()]


def _minkowski_candidates_row(n: int, d: int, rounds: int) -> dict:
    """minkowski p=3 above MINKOWSKI_EXACT_MAX rows: candidates + exact re-rank with its recall@15
    measured on 1,000 sampled rows against exact (what the neighbours stage records), timed; the
    exact path's time is the exact check's own per-row time scaled to n rows."""
    from convnet_search.search import neighbors as nb

    X = make_features(n, d, seed=5)
    times, report = [], {}
    for _ in range(rounds):
        gc.collect()
        report = {}
        t0 = time.perf_counter()
        top_k_neighbors_multi(X, K, ["minkowski"], p=3, report=report)
        times.append(time.perf_counter() - t0)
    how = report["minkowski"]
    t0 = time.perf_counter()
    rec = nb.minkowski_recall(X, np.zeros((n, K), dtype=np.int64), 3.0)  # exact on the sampled rows
    exact_rows_s = time.perf_counter() - t0
    exact_est = exact_rows_s * n / rec["sampled_rows"]
    return {"case": f"top-{K} minkowski p=3 candidates", "metric": "minkowski", "n": n, "d": d, "k": K,
            "ours_s": round(min(times), 3), "exact_estimate_s": round(exact_est, 1),
            "speedup": round(exact_est / min(times), 2), "method": how["method"],
            "candidates": how.get("candidates"), "candidates_tried": how.get("candidates_tried"),
            "recall_at_15": how.get("recall_at_15"), "min_row_recall": how.get("min_row_recall"),
            "sampled_rows": how.get("sampled_rows"), "pass": how.get("recall_at_15", 1.0) >= nb.RECALL_TARGET,
            "note": "ours_s includes the recall measurement (exact top-15 of 1,000 sampled rows); "
                    "exact_estimate_s = that exact per-row time × n", "load_avg_at_end": load_avg()}


if __name__ == "__main__":  # pragma: no cover - convenience
    import json
    import sys

    print(json.dumps(run("--quick" in sys.argv), indent=2))
