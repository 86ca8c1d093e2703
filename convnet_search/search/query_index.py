"""A prepared database for exact top-k of a few new query vectors at a time (the API's search).

`neighbors.top_k_query` prepares the database on every call: the row norms of X and, for cosine,
a normalised float32 copy of X — at 100,000 × 1,024 that is a 400 MB copy and most of the time of
a one-image query. `QueryIndex` does that once per matrix and keeps it; each query then runs the
same steps as `top_k_query`: a float32 gemm against the prepared X, the same proven error bound
(`neighbors._Bounds`), the same candidate selection (`_tile_select`) and the same exact float64
re-rank (`_finish_rows`), so its results equal `top_k_query`'s (ids and distances, ties included;
tested in tests/test_query_index.py). Minkowski, and data whose magnitudes need the kernels'
power-of-two rescaling, go to `top_k_query` itself.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from . import neighbors as nb
from .metrics import DEFAULT_MINKOWSKI_P, METRICS, resolve_metric

# Query rows per X·Qᵀ product: bounds its [N, rows] float32 result to 64 MB.
_BLOCK_FLOATS = 16 * 1024 * 1024


@njit(cache=True)
def _row_sqnorms_serial(Q):
    """neighbors._row_sqnorms without threads (the same sequential sums, so the same bits): a few
    query rows do not pay for waking a thread pool, which on a busy machine costs more than the sum."""
    out = np.empty(Q.shape[0], dtype=np.float64)
    for i in range(Q.shape[0]):
        out[i] = nb._row_sqnorm(Q, i)
    return out


@njit(cache=True)
def _finish_serial(Q, X, qnorm, xnorm, code, q_rows, top, keep_j, keep_lo, n_keep, overflow, out_ids, out_d):
    """neighbors._finish_rows (without its euclidean twin) in one thread: the same exact float64
    distances of the same candidates, sorted by (distance, id)."""
    k = top.shape[1]
    for r in range(top.shape[0]):
        if overflow[r]:
            continue
        n = nb._compact(keep_j[r], keep_lo[r], n_keep[r], top[r, k - 1])
        cand = np.sort(keep_j[r, :n])
        dist = np.empty(n, dtype=np.float64)
        i = q_rows[r]
        for c in range(n):
            dist[c] = nb._exact_distance(Q, X, i, cand[c], qnorm, xnorm, code)
        nb._take_k_sorted(cand, dist, k, out_ids, out_d, i)


class QueryIndex:
    """X [N, D] prepared for exact top-k queries under one metric (read-only: X is not copied
    unless the metric needs a normalised copy)."""

    def __init__(self, X: np.ndarray, metric: str, p: float = DEFAULT_MINKOWSKI_P):
        self.X = nb._as_matrix(X, "X")
        self.metric, self.p = resolve_metric(metric), p
        self.code = nb._CODES[self.metric]
        self._gemm = METRICS[self.metric].kernel != "minkowski" and self.X.dtype == np.float32
        if not self._gemm:
            return
        self.xnorm = nb._row_norms(self.X)
        n = self.X.shape[0]
        if self.code == nb._COSINE:
            inv = np.divide(1.0, self.xnorm, out=np.zeros_like(self.xnorm), where=self.xnorm > 0)
            self.Xa, self.xsq = nb._scaled_f32(self.X, inv), np.zeros(1)
            self.maxabs = 0.0
        else:
            self.Xa, self.xsq = self.X, self.xnorm ** 2
            self.maxabs = max(float(self.X.max()), -float(self.X.min())) if n else 0.0

    def query(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids int64 [M, k], distances float32 [M, k]) of each query row's k nearest rows of X,
        sorted by (distance, id); nothing excluded. Equal to top_k_query(Q, self.X, k, metric)."""
        Q = nb._as_matrix(Q, "Q")
        if Q.shape[1] != self.X.shape[1]:
            raise ValueError(f"Q and X must have the same number of columns, got {Q.shape[1]} and {self.X.shape[1]}")
        if not self._gemm or Q.dtype != np.float32 or not self._unscaled(Q):
            return nb.top_k_query(Q, self.X, k, self.metric, p=self.p)
        k = nb._check_k(k, self.X.shape[0], f"the {self.X.shape[0]} rows of X")
        return self._gemm_query(Q, k)

    def _unscaled(self, Q: np.ndarray) -> bool:
        """True when neighbors._gemm_operands would use the values as they are (scale 1)."""
        if self.code == nb._COSINE:
            return True
        maxabs = max(self.maxabs, float(Q.max()), -float(Q.min()))
        return maxabs == 0 or 2.0 ** -20 <= maxabs <= 2.0 ** 20

    def _gemm_query(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        M, N, D = Q.shape[0], self.X.shape[0], Q.shape[1]
        qnorm = np.sqrt(_row_sqnorms_serial(Q))
        if self.code == nb._COSINE:
            Qa = nb._scaled_f32(Q, np.divide(1.0, qnorm, out=np.zeros_like(qnorm), where=qnorm > 0))
            qsq = np.zeros(1)
        else:
            Qa, qsq = Q, qnorm ** 2
        bounds = nb._Bounds.of(self.code, qsq, self.xsq, M, N, nb._gemm_error_coef(D, False), nb._gemm_error_abs(D))
        self_ids = np.full(M, -1)
        out_ids = np.empty((M, k), dtype=np.int64)
        out_d = np.empty((M, k), dtype=np.float64)

        def finish(rows, st: nb._Candidates) -> None:
            _finish_serial(Q, self.X, qnorm, self.xnorm, self.code, rows, st.top, st.keep_j, st.keep_lo,
                           st.n_keep, st.overflow, out_ids, out_d)

        state = nb._Candidates(M, k, cap=max(2 * k, 64))
        self._tiles(Qa, bounds, self_ids, state)
        finish(np.arange(M), state)
        for r in np.flatnonzero(state.overflow):  # many near-ties: again with room for every item
            sub = nb._Candidates(1, k, cap=N)
            self._tiles(np.ascontiguousarray(Qa[r:r + 1]), bounds.rows([r]), self_ids[r:r + 1], sub)
            finish(np.array([r]), sub)
        return out_ids, nb._to_f32(out_d)

    def _tiles(self, Qa: np.ndarray, bounds, self_ids: np.ndarray, state) -> None:
        """Every query row against all of X: X·qᵀ as one BLAS call per block of query rows (for
        one query that is a matrix-vector product, which streams X once; 1 × 8192 gemm tiles of
        Xᵀ measured 4× slower), then the selection over the whole row."""
        rows = max(1, _BLOCK_FLOATS // max(1, self.Xa.shape[0]))
        for r0 in range(0, Qa.shape[0], rows):
            r1 = min(Qa.shape[0], r0 + rows)
            G = np.ascontiguousarray((self.Xa @ Qa[r0:r1].T).T)  # [r1 − r0, N] float32
            state.feed(G, 0, bounds, r0, r1, self_ids)
