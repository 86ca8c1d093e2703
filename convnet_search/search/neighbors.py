"""Exact top-k nearest neighbours under cosine, euclidean, squared euclidean and minkowski(p).

Results are *exact*: row q lists the k nearest rows other than q, by ascending distance, ties
broken by the smaller id, and equals a brute-force float64 reference (``scipy.spatial.distance.cdist``
then a stable sort by (distance, id)), ties included (duplicates, integer-valued data). The one
caveat is inherent to floating point: two distances that are mathematically equal but summed in a
different order (e.g. permuted coordinates) may differ in the last bit, in scipy as here, and such a
1-ulp pair may then be ordered differently. Memory stays O(N·k + block): the N×N distance matrix is
never built.

How (docs/bundle.md defines the distances):

* cosine / euclidean / sqeuclidean: float32 BLAS gemm tiles give approximate distances d̃ with a
  *proven* error bound ε (see ``_gemm_error_coef``). Since |d̃ − d| ≤ ε, the true k-th distance is
  at most U = k-th smallest (d̃ + ε), and every member of the true top-k satisfies d̃ − ε ≤ U.
  Each tile is read while it is in cache by ``_tile_select``, which keeps per row the running U
  and the few pairs that can still qualify; those candidates (usually k plus a handful; every
  tied point when there are ties) are re-ranked with exact float64 distances computed from
  differences, the way scipy does, and sorted by (distance, id). No guessing of a margin: ties
  and near-ties at the boundary simply make the candidate set larger (a row with more than its
  list holds is recomputed with room for all). For all rows of X the Gram matrix is symmetric,
  so each tile (I, J), I ≤ J, is computed once and feeds row blocks I and J: half the gemm of a
  query-against-database search such as faiss's flat indexes. Euclidean's bounds are the squared
  ones, so ``top_k_neighbors_multi`` serves euclidean and sqeuclidean from one pass.
* minkowski(p): no gemm identity exists, so a numba kernel computes exact float64 distances from
  each query to all rows (one row buffer per thread) and selects by (distance, id).
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from .metrics import DEFAULT_MINKOWSKI_P, METRICS, Metric, resolve_metric, validate_minkowski_p

try:  # numba is a dependency of umap-learn; the import is cheap compared to TensorFlow.
    from numba import njit, prange
except ImportError as exc:  # pragma: no cover - the pinned install always has numba
    raise ImportError("convnet_search.search.neighbors needs numba (installed with umap-learn)") from exc



# Codes used inside the numba kernels (metrics.METRICS says which kernel each metric uses).
_COSINE, _EUCLIDEAN, _SQEUCLIDEAN, _MINKOWSKI = 0, 1, 2, 3
_CODES = {"cosine": _COSINE, "euclidean": _EUCLIDEAN, "sqeuclidean": _SQEUCLIDEAN, "minkowski": _MINKOWSKI}
assert set(_CODES) == set(METRICS), "every registered metric needs a kernel code here"

# Exact minkowski hands its query rows to one parallel call in blocks of _BLOCK_BYTES / (4·N) rows
# (no B × N matrix is built; block_rows overrides it, as tests do to cross block boundaries).
_BLOCK_BYTES = 128 * 1024 * 1024


# --------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------


def _as_matrix(X: np.ndarray, what: str) -> np.ndarray:
    """A C-contiguous float32/float64 2-D finite array, or a clear ValueError naming `what`."""
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (rows = items, columns = features), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{what} must have at least one row and one column, got shape {arr.shape}")
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise ValueError(f"{what} must hold real numbers, got dtype {arr.dtype}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)  # ints, float16: exact in float64
    arr = np.ascontiguousarray(arr)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise ValueError(f"{what} contains NaN or infinite values (in {bad} row(s))")
    return arr


def _check_k(k: int, limit: int, what: str) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"k must be an integer, got {k!r}")
    k = int(k)
    if not 1 <= k <= limit:
        raise ValueError(f"k must satisfy 1 <= k <= {limit} ({what}), got k={k}")
    return k


def _block_rows(n_cols: int, block_rows: int | None) -> int:
    if block_rows is None:
        return max(1, min(4096, _BLOCK_BYTES // (4 * max(n_cols, 1))))
    if isinstance(block_rows, bool) or not isinstance(block_rows, (int, np.integer)) or block_rows < 1:
        raise ValueError(f"block_rows must be a positive integer, got {block_rows!r}")
    return int(block_rows)


# --------------------------------------------------------------------------------------------
# numba kernels (fastmath off: results must not depend on reassociation)
# --------------------------------------------------------------------------------------------


@njit(cache=True)
def _exact_distance(Q, X, i, j, qnorm, xnorm, code):
    """Exact float64 distance between Q[i] and X[j], sequential summation of differences.

    Cosine mirrors scipy's cdist (dot / (‖u‖‖v‖), clipped to [-1, 1], sequential dot) so equal
    inputs give bit-equal results; a zero vector has distance 1.
    """
    d = Q.shape[1]
    if code == _COSINE:
        if qnorm[i] == 0.0 or xnorm[j] == 0.0:
            return 1.0
        dot = 0.0
        for t in range(d):
            dot += np.float64(Q[i, t]) * np.float64(X[j, t])
        c = dot / (qnorm[i] * xnorm[j])
        if c > 1.0:
            c = 1.0
        elif c < -1.0:
            c = -1.0
        return 1.0 - c
    s = 0.0
    for t in range(d):
        diff = np.float64(Q[i, t]) - np.float64(X[j, t])
        s += diff * diff
    if code == _EUCLIDEAN:
        return math.sqrt(s)
    return s


@njit(cache=True)
def _row_sqnorm(X, i):
    """‖X[i]‖₂² in float64 with sequential summation: the one definition the threaded
    `_row_sqnorms` and query_index's serial twin share, so both give the same bits."""
    s = 0.0
    for t in range(X.shape[1]):
        v = np.float64(X[i, t])
        s += v * v
    return s


@njit(cache=True, parallel=True)
def _row_sqnorms(X):
    """‖x‖₂² of every row in float64 with sequential summation."""
    out = np.empty(X.shape[0], dtype=np.float64)
    for i in prange(X.shape[0]):
        out[i] = _row_sqnorm(X, i)
    return out


def _row_norms(X):
    """‖x‖₂ in float64 with sequential summation (as scipy's cosine does)."""
    return np.sqrt(_row_sqnorms(X))


@njit(cache=True)
def _take_k_sorted(cand, dist, k, out_ids, out_d, row):
    """Write the k smallest (dist, id) of the candidates (ids ascending in `cand`) into row."""
    order = np.argsort(dist, kind="mergesort")  # stable: equal distances keep ascending ids
    for r in range(k):
        out_ids[row, r] = cand[order[r]]
        out_d[row, r] = dist[order[r]]


@njit(cache=True)
def _kth_smallest(values, k):
    """k-th smallest of values (k ≥ 1), with a small sorted buffer: after the first few elements
    almost every value is rejected by one comparison, so this is one cheap pass (and compiles
    much faster than np.partition)."""
    top = np.full(k, np.inf)
    for v in values:
        _keep_smallest(top, v)
    return top[k - 1]


@njit(cache=True, inline="always")
def _keep_smallest(top, v):
    """Insert v into `top`, the ascending k smallest values so far, if it is smaller than the last."""
    k = top.shape[0]
    if v < top[k - 1]:
        pos = k - 1
        while pos > 0 and top[pos - 1] > v:
            top[pos] = top[pos - 1]
            pos -= 1
        top[pos] = v


@njit(cache=True, nogil=True)
def _tile_select(G, gm, c0, xlo, xhi, c_lo, c_hi, self_ids, top, keep_j, keep_lo, n_keep, overflow):
    """Feed one gemm tile into the running candidate state of its B query rows.

    G[b, t] is the float32 gemm value of query row b and column item j = c0 + t. Per pair, the
    approximate distance d̃ and its proven error bound ε (see _gemm_error_coef) give
      lo = d̃ − ε = c_lo[b] + xlo[j] − gm·g,   hi = d̃ + ε = c_hi[b] + xhi[j] − gm·g
    (cosine: d̃ = 1 − g, gm = 1, xlo = xhi = 0; (sq)euclidean: d̃ = ‖q‖² + ‖x‖² − 2g, gm = 2; the
    constants fold ε in, so one multiply-add and one compare reject almost every pair).
    Per row the state is `top`, the k smallest upper bounds so far (its last entry U only falls),
    and a list of (j, lo) with lo ≤ U when seen. The final candidates, lo ≤ U_final, provably hold
    the exact top-k and every tie at its boundary; they do not depend on the order tiles arrive.
    When the list is full it is compacted (entries with lo > U can never qualify again); if that
    frees too little (many near-ties), the row is flagged in `overflow` and recomputed alone.
    """
    B, T = G.shape
    k = top.shape[1]
    cap = keep_j.shape[1]
    for b in range(B):
        if overflow[b]:
            continue
        row_top = top[b]
        U = row_top[k - 1]
        n = n_keep[b]
        lo0, hi0, selfj = c_lo[b], c_hi[b], self_ids[b]
        for t in range(T):
            j = c0 + t
            g = gm * np.float64(G[b, t])
            lo = lo0 + xlo[j] - g
            if lo > U or j == selfj:
                continue
            hi = hi0 + xhi[j] - g
            if hi < U:
                _keep_smallest(row_top, hi)
                U = row_top[k - 1]
            if n == cap:
                n = _compact(keep_j[b], keep_lo[b], n, U)
                if 4 * n > 3 * cap:
                    overflow[b] = True
                    break
            keep_j[b, n] = j
            keep_lo[b, n] = lo
            n += 1
        n_keep[b] = n


@njit(cache=True, inline="always")
def _compact(ids, lows, n, U):
    """Keep the first n entries with low bound ≤ U, in order; returns how many remain."""
    m = 0
    for c in range(n):
        if lows[c] <= U:
            ids[m] = ids[c]
            lows[m] = lows[c]
            m += 1
    return m


@njit(cache=True, parallel=True)
def _finish_rows(Q, X, qnorm, xnorm, code, q_rows, top, keep_j, keep_lo, n_keep, overflow, out_ids, out_d,
                 sqrt_ids, sqrt_d):
    """Exact re-rank of each state row's candidates (lo ≤ U) into out row q_rows[r] by (distance, id).

    When sqrt_ids has rows (code sqeuclidean only), the euclidean top-k is written there too,
    from the same candidates: euclidean's bounds are the squared ones, so its candidate set is
    identical, and sqrt of the exact float64 squared distance is bit-equal to euclidean's exact
    distance. Only the tiny candidate sort is repeated, because distinct squared distances can
    round to the same sqrt, and such a tie must then go to the smaller id as it does alone.
    Overflowed rows are skipped (their caller recomputes them)."""
    k = top.shape[1]
    for r in prange(top.shape[0]):
        if overflow[r]:
            continue
        n = _compact(keep_j[r], keep_lo[r], n_keep[r], top[r, k - 1])
        cand = np.sort(keep_j[r, :n])  # ascending ids: the stable sort then breaks ties by id
        dist = np.empty(n, dtype=np.float64)
        i = q_rows[r]
        for c in range(n):
            dist[c] = _exact_distance(Q, X, i, cand[c], qnorm, xnorm, code)
        _take_k_sorted(cand, dist, k, out_ids, out_d, i)
        if sqrt_ids.shape[0] > 0:
            _take_k_sorted(cand, np.sqrt(dist), k, sqrt_ids, sqrt_d, i)


@njit(cache=True)
def _minkowski_sum(Q, X, i, j, p, ip):
    """Σ|q−x|^p in float64. Four independent accumulators (deterministic, no fastmath) hide the
    add latency; integer p uses repeated multiplication instead of pow."""
    d = Q.shape[1]
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    t = 0
    if ip == 3:
        while t + 4 <= d:
            a0 = abs(np.float64(Q[i, t]) - np.float64(X[j, t]))
            a1 = abs(np.float64(Q[i, t + 1]) - np.float64(X[j, t + 1]))
            a2 = abs(np.float64(Q[i, t + 2]) - np.float64(X[j, t + 2]))
            a3 = abs(np.float64(Q[i, t + 3]) - np.float64(X[j, t + 3]))
            s0 += a0 * a0 * a0
            s1 += a1 * a1 * a1
            s2 += a2 * a2 * a2
            s3 += a3 * a3 * a3
            t += 4
        while t < d:
            a0 = abs(np.float64(Q[i, t]) - np.float64(X[j, t]))
            s0 += a0 * a0 * a0
            t += 1
    else:
        while t < d:
            a = abs(np.float64(Q[i, t]) - np.float64(X[j, t]))
            if ip > 0:
                v = a
                for _ in range(ip - 1):
                    v *= a
            else:
                v = a**p
            if (t & 3) == 0:
                s0 += v
            elif (t & 3) == 1:
                s1 += v
            elif (t & 3) == 2:
                s2 += v
            else:
                s3 += v
            t += 1
    return (s0 + s1) + (s2 + s3)


@njit(cache=True)
def _select_row(dist_all, selfj, k, out_ids, out_d, row):
    """Top-k of one row of exact distances (selfj ≥ 0 excluded) by (distance, id)."""
    if selfj >= 0:
        dist_all[selfj] = np.inf
    U = _kth_smallest(dist_all, k)
    count = 0
    for j in range(dist_all.shape[0]):
        if dist_all[j] <= U and j != selfj:
            count += 1
    cand = np.empty(count, dtype=np.int64)
    dist = np.empty(count, dtype=np.float64)
    c = 0
    for j in range(dist_all.shape[0]):
        if dist_all[j] <= U and j != selfj:
            cand[c] = j
            dist[c] = dist_all[j]
            c += 1
    _take_k_sorted(cand, dist, k, out_ids, out_d, row)


@njit(cache=True, parallel=True)
def _minkowski_select(Q, X, p, ip, self_ids, k, out_ids, out_d, row0, row1):
    """Exact minkowski top-k for query rows row0…row1−1 against all of X (self_ids[i] ≥ 0: the
    item query i is, excluded)."""
    N = X.shape[0]
    inv_p = 1.0 / p
    for i in prange(row0, row1):
        dist_all = np.empty(N, dtype=np.float64)
        for j in range(N):
            dist_all[j] = _minkowski_sum(Q, X, i, j, p, ip) ** inv_p
        _select_row(dist_all, self_ids[i], k, out_ids, out_d, i)


@njit(cache=True, parallel=True)
def _finish_minkowski(Q, X, p, ip, q_rows, top, keep_j, keep_lo, n_keep, overflow, k, out_ids, out_d):
    """Minkowski top-k of each state row from its euclidean candidates (lo ≤ U of a squared
    euclidean candidate search for the L nearest, so a superset of the exact euclidean top-L and
    its ties), re-ranked by exact float64 minkowski distance: the same `_minkowski_sum` as the
    exact path, so a true neighbour found gets a bit-equal distance and the same (distance, id)
    order. Overflowed rows are skipped (their caller recomputes them)."""
    L = top.shape[1]
    inv_p = 1.0 / p
    for r in prange(top.shape[0]):
        if overflow[r]:
            continue
        n = _compact(keep_j[r], keep_lo[r], n_keep[r], top[r, L - 1])
        cand = np.sort(keep_j[r, :n])
        dist = np.empty(n, dtype=np.float64)
        i = q_rows[r]
        for c in range(n):
            dist[c] = _minkowski_sum(Q, X, i, cand[c], p, ip) ** inv_p
        _take_k_sorted(cand, dist, k, out_ids, out_d, i)


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------

_U32 = 2.0**-24  # unit roundoff of float32


_ETA32 = 2.0**-149  # smallest float32 subnormal: absolute error of underflow


def _gemm_error_abs(dim: int) -> float:
    """Absolute term of the bound: products and norms that underflow in float32 lose up to η each
    (and rounding float64 input to float32 loses up to η per element, ≤ η√D(1 + ‖x‖²/2) in a dot)."""
    return 4.0 * _ETA32 * (dim + math.sqrt(dim) + 8.0)


def _gemm_error_coef(dim: int, converted: bool) -> float:
    """Coefficient c of the bound |d̃ − d| ≤ c·(‖q‖² + ‖x‖²) + eabs (cosine: ≤ c + eabs).

    A float32 dot product of length D, summed in any order (BLAS blocking, FMA), errs by at most
    γ_D·Σ|qᵢxᵢ| ≤ γ_D‖q‖‖x‖ with γ_D = D·u/(1 − D·u) (Higham, Accuracy and Stability, §3.1).
    Rounding float64 input to float32, the float32 norms / normalisation, and the two additions
    that form d̃ add a few u more. The factor 2 is headroom for the float32 rounding of the
    comparison values themselves; the bound is rigorous, not a guess, so the candidate set
    always contains the true top-k.
    """
    n = dim + (3 if converted else 0) + 2
    gamma = n * _U32 / (1.0 - n * _U32)
    return 2.0 * (gamma + 10.0 * _U32) + 4.0 * _ETA32 * math.sqrt(dim)


def _to_f32(d: np.ndarray) -> np.ndarray:
    """Distances are stored as float32; beyond its range (≈3.4e38) they become inf, on purpose."""
    with np.errstate(over="ignore"):
        return d.astype(np.float32)


def _scaled_f32(X: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """float32 copy of X with row i multiplied by factors[i] (in float64), in row chunks so no
    full-size float64 temporary is made."""
    out = np.empty(X.shape, dtype=np.float32)
    step = max(1, (8 * 1024 * 1024) // (8 * X.shape[1]))
    for r0 in range(0, X.shape[0], step):
        r1 = min(X.shape[0], r0 + step)
        out[r0:r1] = X[r0:r1] * factors[r0:r1, None]
    return out


def _run(Q: np.ndarray, X: np.ndarray, k: int, metric: str, p: float, block_rows: int | None,
         self_offset: int, candidates: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ids, dists) of query rows Q against X; self_offset ≥ 0: Q[i] is item self_offset + i of X
    and is excluded. `candidates` (minkowski only): None exact, else L for _minkowski_rerank."""
    mid = resolve_metric(metric)
    if METRICS[mid].kernel == "minkowski":
        return _run_minkowski(Q, X, k, p, block_rows, self_offset, candidates)
    return _run_gemm(Q, X, k, _CODES[mid], block_rows, self_offset, also_euclidean=False)[0]


def _minkowski_p(p: float) -> tuple[float, int]:
    pf = validate_minkowski_p(p)
    return pf, (int(pf) if pf == int(pf) and pf <= 64 else 0)


def _run_minkowski(Q, X, k, p, block_rows, self_offset, candidates=None):
    pf, ip = _minkowski_p(p)
    M, N = Q.shape[0], X.shape[0]
    out_ids = np.empty((M, k), dtype=np.int64)
    out_d = np.empty((M, k), dtype=np.float64)
    B = _block_rows(N, block_rows)
    if candidates is None or candidates >= N - (1 if self_offset >= 0 else 0):
        # Exact. It needs no B×N block (one row buffer per thread); blocks only bound the work
        # handed to one parallel call.
        self_ids = np.arange(self_offset, self_offset + M) if self_offset >= 0 else np.full(M, -1)
        for r0 in range(0, M, B):
            _minkowski_select(Q, X, pf, ip, self_ids, k, out_ids, out_d, r0, min(M, r0 + B))
        return out_ids, _to_f32(out_d)
    L = max(k, int(candidates))

    def finish(rows, st: _Candidates, qnorm, xnorm) -> None:
        _finish_minkowski(Q, X, pf, ip, rows, st.top, st.keep_j, st.keep_lo, st.n_keep, st.overflow, k, out_ids, out_d)

    _candidate_search(Q, X, L, _SQEUCLIDEAN, block_rows, self_offset, finish)
    return out_ids, _to_f32(out_d)


def _gemm_operands(Q, X, qnorm, xnorm, code):
    """(Qa, Xa, qsq, xsq, converted): the float32 gemm operands and squared norms for _Bounds."""
    M, N = Q.shape[0], X.shape[0]
    converted = Q.dtype != np.float32 or X.dtype != np.float32
    if code == _COSINE:
        # Normalised float32 copies: the gemm then gives cosines directly. Zero rows stay zero,
        # so d̃ = 1, which is also their exact distance.
        Xa = _scaled_f32(X, np.divide(1.0, xnorm, out=np.zeros_like(xnorm), where=xnorm > 0))
        Qa = Xa if Q is X else _scaled_f32(Q, np.divide(1.0, qnorm, out=np.zeros_like(qnorm), where=qnorm > 0))
        return Qa, Xa, np.zeros(1), np.zeros(1), converted  # squared norms unused for cosine
    # Extreme magnitudes are scaled by a power of two (exact) so the largest |value| is in
    # [0.5, 1): float32 squares then cannot overflow, and tiny data does not drown in the
    # bound's underflow term. Ordinary magnitudes are used as they are (no copy of X).
    maxabs = max(float(Q.max()), -float(Q.min()), float(X.max()), -float(X.min()))
    scale = 1.0
    if maxabs > 0 and not 2.0**-20 <= maxabs <= 2.0**20:
        scale = 2.0 ** -math.frexp(maxabs)[1]
    if scale == 1.0 and X.dtype == np.float32:
        Xa = X
    else:
        Xa = _scaled_f32(X, np.full(N, scale))
        converted = True
    Qa = Xa if Q is X else _scaled_f32(Q, np.full(M, scale))
    return Qa, Xa, (qnorm * scale) ** 2, (xnorm * scale) ** 2, converted


# Gemm tiles are _TILE × _TILE (1 MB of float32 at 512): small enough to stay in a core's cache
# between the gemm that writes a tile and the selection that reads it, large enough for the gemm
# to run near peak (bench/README.md "faiss flat": 1,024 and 2,048 were slower at D = 256).
_TILE = 512


@dataclass(frozen=True)
class _Bounds:
    """_tile_select's per-row constants: lo = c_lo[q] + xlo[j] − gm·g, hi = c_hi[q] + xhi[j] − gm·g."""

    gm: float
    c_lo: np.ndarray  # per query row
    c_hi: np.ndarray
    xlo: np.ndarray  # per column item
    xhi: np.ndarray

    @staticmethod
    def of(code: int, qsq: np.ndarray, xsq: np.ndarray, m: int, n: int, coef: float, eabs: float) -> "_Bounds":
        # Folding ε into the constants reorders float64 roundings (~1e-16 relative), far inside
        # the bound's factor-2 headroom (≥ D·6e-8 relative), so the bound stays rigorous.
        if code == _COSINE:  # d̃ = 1 − g, ε = coef + eabs
            zeros = np.zeros(n)
            return _Bounds(1.0, np.full(m, 1.0 - coef - eabs), np.full(m, 1.0 + coef + eabs), zeros, zeros)
        # d̃ = ‖q‖² + ‖x‖² − 2g, ε = coef · (‖q‖² + ‖x‖²) + eabs
        return _Bounds(2.0, qsq * (1.0 - coef) - eabs, qsq * (1.0 + coef) + eabs, xsq * (1.0 - coef), xsq * (1.0 + coef))

    def rows(self, idx) -> "_Bounds":
        return _Bounds(self.gm, self.c_lo[idx], self.c_hi[idx], self.xlo, self.xhi)


class _Candidates:
    """Running candidate state of a set of query rows (see _tile_select): rows · (8k + 12·cap) bytes."""

    def __init__(self, rows: int, k: int, cap: int):
        self.top = np.full((rows, k), np.inf)
        self.keep_j = np.empty((rows, cap), dtype=np.int32)  # ids < 2³¹
        self.keep_lo = np.empty((rows, cap), dtype=np.float64)
        self.n_keep = np.zeros(rows, dtype=np.int64)
        self.overflow = np.zeros(rows, dtype=bool)

    def feed(self, G, c0: int, bounds: _Bounds, r0: int, r1: int, self_ids: np.ndarray) -> None:
        """G: gemm tile of state rows r0…r1−1 against column items c0…c0+G.shape[1]−1."""
        _tile_select(G, bounds.gm, c0, bounds.xlo, bounds.xhi, bounds.c_lo[r0:r1], bounds.c_hi[r0:r1],
                     self_ids[r0:r1], self.top[r0:r1], self.keep_j[r0:r1], self.keep_lo[r0:r1],
                     self.n_keep[r0:r1], self.overflow[r0:r1])


def _threads() -> int:
    """The thread budget numba is given (the Ray distributor sets it per worker)."""
    import numba  # noqa: PLC0415

    return max(1, numba.get_num_threads())


def _in_threads(work: Callable[[int], None], n_threads: int) -> None:
    """work(t) for t in range(n_threads), each in its own thread with single-threaded BLAS: the
    threads run gemm tiles and nogil kernels side by side instead of alternating two thread pools
    (BLAS's, numba's) that spin-wait for each other on every small call."""
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(n_threads) as pool:
        for f in [pool.submit(work, t) for t in range(n_threads)]:
            f.result()


def _query_tiles(Qa, Xa, bounds: _Bounds, self_ids, state: _Candidates, tile: int) -> None:
    """Every row of Qa against every row of Xa, in tile × tile gemm blocks; threads take row blocks."""
    M, N = Qa.shape[0], Xa.shape[0]
    n_threads = _threads()

    def work(t: int) -> None:
        G = np.empty((tile, tile), dtype=np.float32)
        for r0 in range(t * tile, M, n_threads * tile):
            r1 = min(M, r0 + tile)
            for c0 in range(0, N, tile):
                g = G[: r1 - r0, : min(N, c0 + tile) - c0]
                np.matmul(Qa[r0:r1], Xa[c0 : c0 + g.shape[1]].T, out=g)
                state.feed(g, c0, bounds, r0, r1, self_ids)

    _in_threads(work, n_threads)


def _symmetric_tiles(Xa, bounds: _Bounds, state: _Candidates, tile: int) -> None:
    """Every row of Xa against every other, computing each gemm tile (I, J) with I ≤ J once and
    feeding it to row block I and, transposed, to row block J: half the gemm of _query_tiles (the
    Gram matrix is symmetric), which is most of the time. A lock per row block keeps two threads
    from updating the same rows at once; the result does not depend on the order tiles arrive."""
    N = Xa.shape[0]
    blocks = [(s, min(N, s + tile)) for s in range(0, N, tile)]
    tiles = [(a, b) for a in range(len(blocks)) for b in range(a, len(blocks))]
    locks = [threading.Lock() for _ in blocks]
    self_ids = np.arange(N)
    n_threads = _threads()

    def feed(g, block: int, c0: int) -> None:
        with locks[block]:
            state.feed(g, c0, bounds, *blocks[block], self_ids)

    def work(t: int) -> None:
        G = np.empty((tile, tile), dtype=np.float32)
        GT = np.empty((tile, tile), dtype=np.float32)
        for a, b in tiles[t::n_threads]:
            (i0, i1), (j0, j1) = blocks[a], blocks[b]
            g = G[: i1 - i0, : j1 - j0]
            np.matmul(Xa[i0:i1], Xa[j0:j1].T, out=g)
            feed(g, a, j0)
            if a != b:
                gt = GT[: j1 - j0, : i1 - i0]
                np.copyto(gt, g.T)
                feed(gt, b, i0)

    _in_threads(work, n_threads)


def _tile(block_rows: int | None) -> int:
    return _TILE if block_rows is None else _block_rows(0, block_rows)


def _candidate_search(Q, X, k, code, block_rows, self_offset, finish) -> None:
    """The k-candidate search of every query row under gemm metric `code`, then
    finish(q_rows, state, qnorm, xnorm) to re-rank state rows into output rows q_rows. Q is X: all
    rows of X, each excluding itself, with the symmetric gemm; else rows of Q (Q[i] is item
    self_offset + i of X when self_offset ≥ 0, excluded)."""
    M, N = Q.shape[0], X.shape[0]
    qnorm = _row_norms(Q)
    xnorm = _row_norms(X) if Q is not X else qnorm
    Qa, Xa, qsq, xsq, converted = _gemm_operands(Q, X, qnorm, xnorm, code)
    bounds = _Bounds.of(code, qsq, xsq, M, N,
                        _gemm_error_coef(Q.shape[1], converted), _gemm_error_abs(Q.shape[1]))
    self_ids = np.arange(self_offset, self_offset + M) if self_offset >= 0 else np.full(M, -1)
    tile = _tile(block_rows)
    state = _Candidates(M, k, cap=max(2 * k, 64))
    if Q is X:
        _symmetric_tiles(Xa, bounds, state, tile)
    else:
        _query_tiles(Qa, Xa, bounds, self_ids, state, tile)
    finish(np.arange(M), state, qnorm, xnorm)
    # Rows with very many near-ties (duplicates) overflowed their candidate list: recompute them
    # with room for every item (a few at a time: that state is rows × N).
    over = np.flatnonzero(state.overflow)
    step = max(1, (64 * 1024 * 1024) // (12 * N))
    for s in range(0, len(over), step):
        rows = over[s : s + step]
        sub = _Candidates(len(rows), k, cap=N)
        _query_tiles(np.ascontiguousarray(Qa[rows]), Xa, bounds.rows(rows), self_ids[rows], sub, tile)
        finish(rows, sub, qnorm, xnorm)


def _run_gemm(Q, X, k, code, block_rows, self_offset, also_euclidean):
    """[(ids, dists)] for `code` (rows as _candidate_search); with also_euclidean (code
    sqeuclidean) a second pair for euclidean from the same gemm and candidates (see _finish_rows)."""
    M = Q.shape[0]
    out_ids = np.empty((M, k), dtype=np.int64)
    out_d = np.empty((M, k), dtype=np.float64)
    rows2 = M if also_euclidean else 0
    sqrt_ids, sqrt_d = np.empty((rows2, k), dtype=np.int64), np.empty((rows2, k), dtype=np.float64)

    def finish(rows, st: _Candidates, qnorm, xnorm) -> None:
        _finish_rows(Q, X, qnorm, xnorm, code, rows, st.top, st.keep_j, st.keep_lo, st.n_keep, st.overflow,
                     out_ids, out_d, sqrt_ids, sqrt_d)

    _candidate_search(Q, X, k, code, block_rows, self_offset, finish)
    pairs = [(out_ids, _to_f32(out_d))]
    return pairs + [(sqrt_ids, _to_f32(sqrt_d))] if also_euclidean else pairs


# --------------------------------------------------------------------------------------------
# Minkowski above MINKOWSKI_EXACT_MAX rows: candidates + exact re-rank, recall measured
# --------------------------------------------------------------------------------------------

# Exact minkowski costs N²·D (8.6 s at N = 5,000, D = 1024; an hour per matrix at 100k). Up to this
# many rows it stays exact; above, each row's candidates are every item that can be among its L
# nearest by euclidean distance (the gemm metrics' tiles and error bound: a superset of the exact
# euclidean top-L and its ties), re-ranked by exact minkowski distance, and recall@15 against exact
# top-15 is measured on RECALL_ROWS sampled rows; L doubles until that recall reaches RECALL_TARGET.
MINKOWSKI_EXACT_MAX = 5000
RECALL_TARGET = 0.99
RECALL_ROWS = 1000
RECALL_TOP = 15
RECALL_SEED = 0


def minkowski_method(n: int, metrics) -> tuple:
    """What decides how minkowski is computed for n rows (part of the neighbours fingerprint):
    () when exact, else the candidate rule's constants."""
    if n <= MINKOWSKI_EXACT_MAX or not any(METRICS[resolve_metric(m)].kernel == "minkowski" for m in metrics):
        return ()
    # "-bounds": candidates from the error-bounded tile search (before: the float32 top-L)
    return ("minkowski-candidates-bounds", MINKOWSKI_EXACT_MAX, RECALL_TARGET, RECALL_ROWS, RECALL_SEED)


def minkowski_candidates(k: int) -> int:
    """First L tried for a top-k (bench/README.md `minkowski candidates` has the measurements)."""
    return max(4 * k, 64)


def minkowski_recall(X: np.ndarray, ids: np.ndarray, p: float, *, rows: int = RECALL_ROWS,
                     top: int = RECALL_TOP, seed: int = RECALL_SEED) -> dict:
    """recall@top of `ids` (top-k of every row of X, self excluded) against the exact minkowski
    top-`top`, on `rows` rows sampled with a fixed seed: the share of the exact top ids found.

    {"recall_at_15": mean over sampled rows, "min_row_recall": the worst row, "sampled_rows": n}."""
    X = _as_matrix(X, "X")
    pf, ip = _minkowski_p(p)
    n = X.shape[0]
    t = min(top, ids.shape[1], n - 1)
    sample = np.sort(np.random.default_rng(seed).choice(n, min(rows, n), replace=False))
    Q = np.ascontiguousarray(X[sample])
    exact = np.empty((len(sample), t), dtype=np.int64)
    _minkowski_select(Q, X, pf, ip, sample.astype(np.int64), t, exact, np.empty((len(sample), t)), 0, len(sample))
    found = np.array([np.intersect1d(exact[r], ids[q, :t]).size for r, q in enumerate(sample)]) / t
    return {f"recall_at_{top}": float(found.mean()), "min_row_recall": float(found.min()),
            "sampled_rows": int(len(sample))}


# rows(metrics, L) -> {metric: (ids, dists)} of every row: how a caller gets all rows computed
# (here: in this process; distribute/ray.py: as row blocks on a cluster).
RowsFn = Callable[[list, "int | None"], dict]


def _minkowski_all_rows(X, k, p, rows: RowsFn, report):
    """Minkowski top-k of every row: exact up to MINKOWSKI_EXACT_MAX rows, else candidates with L
    doubled until the measured recall reaches RECALL_TARGET (L ≥ N − 1 is exact); `report` gets
    how (the neighbours stage stores it, the bundle manifest shows it)."""
    n = X.shape[0]
    if n <= MINKOWSKI_EXACT_MAX:
        report.update(method="exact")
        return rows(["minkowski"], None)["minkowski"]
    L = minkowski_candidates(k)
    tried = []
    while True:
        ids, d = rows(["minkowski"], L)["minkowski"]
        if L >= n - 1:
            report.update(method="exact", candidates_tried=tried)
            return ids, d
        rec = minkowski_recall(X, ids, p)
        tried.append(L)
        if rec[f"recall_at_{RECALL_TOP}"] >= RECALL_TARGET:
            report.update(method="candidates", candidates=L, candidates_tried=tried, **rec)
            return ids, d
        L *= 2


def top_k_rows(X: np.ndarray, k: int, metrics, row0: int, row1: int, *, p: float = DEFAULT_MINKOWSKI_P,
               block_rows: int | None = None, minkowski_candidates: int | None = None
               ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Rows row0…row1−1 of top_k_neighbors_multi (for work split over processes or machines):
    {name as given: (ids [row1−row0, k], dists)}, each row excluding itself. Minkowski is exact
    unless `minkowski_candidates` (L) is given; then measure the whole result's recall with
    `minkowski_recall` and retry with a larger L if it falls short (`_minkowski_all_rows` does
    this in one process)."""
    X = _as_matrix(X, "X")
    k = _check_k(k, X.shape[0] - 1, f"the {X.shape[0]} rows minus the query itself")
    if not 0 <= row0 < row1 <= X.shape[0]:
        raise ValueError(f"need 0 <= row0 < row1 <= {X.shape[0]}, got rows [{row0}, {row1})")
    Q = X[row0:row1] if (row0, row1) != (0, X.shape[0]) else X
    ids = {name: resolve_metric(name) for name in metrics}
    wanted = set(ids.values())
    done: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if {"euclidean", "sqeuclidean"} <= wanted:
        done["sqeuclidean"], done["euclidean"] = _run_gemm(Q, X, k, _SQEUCLIDEAN, block_rows, row0, True)
    for mid in sorted(wanted - done.keys(), key=list(METRICS).index):
        done[mid] = _run(Q, X, k, mid, p, block_rows, row0,
                         minkowski_candidates if METRICS[mid].kernel == "minkowski" else None)
    return {name: done[mid] for name, mid in ids.items()}


def top_k_neighbors(X: np.ndarray, k: int, metric: str, *, p: float = DEFAULT_MINKOWSKI_P,
                    block_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k neighbours of every row of X among the other rows of X.

    Returns (ids int64 [N, k], distances float32 [N, k]); row q excludes q itself, is sorted by
    ascending distance, ties broken by the smaller id. `p` is used by minkowski only (exact up to
    MINKOWSKI_EXACT_MAX rows, see top_k_neighbors_multi).
    """
    return top_k_neighbors_multi(X, k, [metric], p=p, block_rows=block_rows)[metric]


def top_k_query(Q: np.ndarray, X: np.ndarray, k: int, metric: str, *, p: float = DEFAULT_MINKOWSKI_P,
                block_rows: int | None = None, minkowski_candidates: int | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """Top-k rows of X for each row of Q (nothing excluded). Same ordering rules; exact, except
    minkowski given `minkowski_candidates` (L: euclidean top-L candidates re-ranked, as for large N)."""
    Q = _as_matrix(Q, "Q")
    X = _as_matrix(X, "X")
    if Q.shape[1] != X.shape[1]:
        raise ValueError(f"Q and X must have the same number of columns, got {Q.shape[1]} and {X.shape[1]}")
    k = _check_k(k, X.shape[0], f"the {X.shape[0]} rows of X")
    if Q.dtype != X.dtype:  # one dtype for the kernels (float32 ⊂ float64 exactly)
        Q, X = Q.astype(np.float64), X.astype(np.float64)
    return _run(Q, X, k, metric, p, block_rows, -1, minkowski_candidates)


def top_k_neighbors_multi(X: np.ndarray, k: int, metrics, *, p: float = DEFAULT_MINKOWSKI_P,
                          block_rows: int | None = None, report: dict | None = None,
                          rows: RowsFn | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """top_k_neighbors of X under several metrics, sharing work: {name as given: (ids, dists)}.

    Metrics of the same `Metric.order` rank identically: euclidean and squared euclidean (sqrt is
    monotone), so when both are asked one gemm + candidate pass serves both; results equal separate
    top_k_neighbors calls exactly. The gemm metrics are always exact; minkowski is exact up to
    MINKOWSKI_EXACT_MAX rows and above that candidates + exact re-rank with measured recall
    (`_minkowski_all_rows`); `report`, if given, receives {"minkowski": how it was computed}.
    rows: who computes all rows for (metrics, L) (default: top_k_rows here, in one call); a
    row's result depends only on X, so row blocks computed anywhere concatenate to the same arrays.
    """
    X = _as_matrix(X, "X")
    k = _check_k(k, X.shape[0] - 1, f"the {X.shape[0]} rows minus the query itself")
    rows = rows or (lambda ms, L: top_k_rows(X, k, ms, 0, X.shape[0], p=p, block_rows=block_rows,
                                             minkowski_candidates=L))
    ids = {name: resolve_metric(name) for name in metrics}
    minkowski = [n for n, mid in ids.items() if METRICS[mid].kernel == "minkowski"]
    out = rows([n for n in ids if n not in minkowski], None) if len(minkowski) < len(ids) else {}
    if minkowski:
        how: dict = {}
        pair = _minkowski_all_rows(X, k, p, rows, how)
        out.update({n: pair for n in minkowski})
        if report is not None:
            report["minkowski"] = how
    return {name: out[name] for name in ids}


__all__ = [
    "top_k_neighbors_multi",
    "top_k_rows",
    "minkowski_recall",
    "minkowski_method",
    "MINKOWSKI_EXACT_MAX",
    "Metric",
    "METRICS",
    "DEFAULT_MINKOWSKI_P",
    "resolve_metric",
    "validate_minkowski_p",
    "top_k_neighbors",
    "top_k_query",
]
