"""Exact top-k nearest neighbours under cosine, euclidean, squared euclidean and minkowski(p).

Results are *exact*: row q lists the k nearest rows other than q, by ascending distance, ties
broken by the smaller id, and equals a brute-force float64 reference (``scipy.spatial.distance.cdist``
then a stable sort by (distance, id)), ties included (duplicates, integer-valued data). The one
caveat is inherent to floating point: two distances that are mathematically equal but summed in a
different order (e.g. permuted coordinates) may differ in the last bit, in scipy as here, and such a
1-ulp pair may then be ordered differently. Memory stays O(N·k + block): the N×N distance matrix is
never built.

How (docs/bundle.md defines the distances):

* cosine / euclidean / sqeuclidean: a float32 BLAS gemm on a block of query rows gives approximate
  distances d̃ with a *proven* error bound ε (see ``_gemm_error_coef``). Since |d̃ − d| ≤ ε, the true
  k-th distance is at most U = k-th smallest (d̃ + ε), and every member of the true top-k satisfies
  d̃ − ε ≤ U. Those candidates (usually k plus a handful; every tied point when there are ties)
  are re-ranked with exact float64 distances computed from differences, the way scipy does, and
  sorted by (distance, id). No guessing of a margin, no fallback path: ties and near-ties at the
  boundary simply make the candidate set larger. Euclidean's bounds are the squared ones, so
  ``top_k_neighbors_multi`` serves euclidean and sqeuclidean from one gemm + candidate pass.
* minkowski(p): no gemm identity exists, so a numba kernel computes exact float64 distances from
  each query to all rows (one row buffer per thread) and selects by (distance, id).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

try:  # numba is a dependency of umap-learn; the import is cheap compared to TensorFlow.
    from numba import njit, prange
except ImportError as exc:  # pragma: no cover - the pinned install always has numba
    raise ImportError("convnet_search.neighbors needs numba (installed with umap-learn)") from exc


# --------------------------------------------------------------------------------------------
# Metric registry
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    id: str
    label: str
    description: str
    aliases: tuple[str, ...]


METRICS: dict[str, Metric] = {
    m.id: m
    for m in (
        Metric(
            "cosine",
            "Cosine",
            "1 − x·y / (‖x‖‖y‖); a zero vector has distance 1 to everything. Range 0 … 2.",
            ("cos", "angular_distance", "cosine_distance"),
        ),
        Metric(
            "euclidean",
            "Euclidean",
            "‖x − y‖₂, the straight-line distance.",
            ("l2", "euclid", "euclidean_distance"),
        ),
        Metric(
            "sqeuclidean",
            "Squared euclidean",
            "‖x − y‖₂²; same ranking as euclidean, different distance values.",
            ("squared_euclidean", "sq_euclidean", "sqeuclid", "l2_squared", "sql2"),
        ),
        Metric(
            "minkowski",
            "Minkowski",
            "(Σ |xᵢ − yᵢ|ᵖ)^(1/p) with a configurable p ≥ 1 (default 3; p = 2 would be euclidean).",
            ("lp", "minkowski_p"),
        ),
    )
}

_ALIASES: dict[str, str] = {}
for _m in METRICS.values():
    _ALIASES[_m.id] = _m.id
    for _a in _m.aliases:
        _ALIASES[_a] = _m.id

DEFAULT_MINKOWSKI_P = 3.0

# Codes used inside the numba kernels.
_COSINE, _EUCLIDEAN, _SQEUCLIDEAN, _MINKOWSKI = 0, 1, 2, 3
_CODES = {"cosine": _COSINE, "euclidean": _EUCLIDEAN, "sqeuclidean": _SQEUCLIDEAN, "minkowski": _MINKOWSKI}

# Default budget for one block's float32 distance matrix (several live at once briefly). The gemm
# is most of the time and narrow blocks slow it down: at N = 20,000, D = 1024 cosine took 15 s with
# 32 MB blocks (409 rows) and 9 s with 128 MB (1,638 rows), as fast as faiss's IndexFlatIP (9.2 s)
# in the same run (bench/README.md).
_BLOCK_BYTES = 128 * 1024 * 1024


def resolve_metric(name: str) -> str:
    """Canonical metric id for a name or alias (case-insensitive, '-' and ' ' read as '_')."""
    if not isinstance(name, str):
        raise ValueError(f"metric must be a string, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    try:
        return _ALIASES[key]
    except KeyError:
        valid = ", ".join(
            f"{m.id} (aliases: {', '.join(m.aliases)})" for m in METRICS.values()
        )
        raise ValueError(f"unknown metric {name!r}; valid metrics: {valid}") from None


def validate_minkowski_p(p: float) -> float:
    """p as a float; finite, ≥ 1 (a metric), and not 2 (that is euclidean: never silently 2)."""
    try:
        pf = float(p)
    except (TypeError, ValueError):
        raise ValueError(f"minkowski p must be a number, got {p!r}") from None
    if isinstance(p, bool) or not math.isfinite(pf):
        raise ValueError(f"minkowski p must be a finite number, got {p!r}")
    if pf < 1.0:
        raise ValueError(f"minkowski p must be >= 1 (p < 1 is not a metric), got {pf:g}")
    if pf == 2.0:
        raise ValueError("p=2 is euclidean; use metric 'euclidean'")
    return pf


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


@njit(cache=True, parallel=True)
def _row_norms(X):
    """‖x‖₂ in float64 with sequential summation (as scipy's cosine does)."""
    n, d = X.shape
    out = np.empty(n, dtype=np.float64)
    for i in prange(n):
        s = 0.0
        for t in range(d):
            v = np.float64(X[i, t])
            s += v * v
        out[i] = math.sqrt(s)
    return out


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
        if v < top[k - 1]:
            pos = k - 1
            while pos > 0 and top[pos - 1] > v:
                top[pos] = top[pos - 1]
                pos -= 1
            top[pos] = v
    return top[k - 1]


@njit(cache=True, inline="always")
def _approx_bounds(G, b, j, qsq_i, xsq, coef, eabs, code):
    """(d̃ − ε, d̃ + ε) for one pair; see _gemm_select."""
    g = np.float64(G[b, j])
    if code == _COSINE:
        dt = 1.0 - g
        e = coef + eabs
    else:
        dt = qsq_i + xsq[j] - 2.0 * g
        e = coef * (qsq_i + xsq[j]) + eabs
    return dt - e, dt + e


@njit(cache=True, parallel=True)
def _gemm_select(G, qsq, xsq, coef, eabs, code, Q, X, qnorm, xnorm, self_offset, k, out_ids, out_d, row0,
                 sqrt_ids, sqrt_d):
    """Select and exactly re-rank the top-k of each row of a block of approximate distances.

    G is the float32 gemm block (B×N): dot products of normalised rows (cosine) or of raw rows.
    Approximate distance d̃ and its error bound ε per pair:
      cosine:      d̃ = 1 − g,              ε = coef + eabs
      (sq)euclid:  d̃ = ‖q‖² + ‖x‖² − 2g,   ε = coef · (‖q‖² + ‖x‖²) + eabs
    (for (sq)euclid, G, qsq and xsq are of the rows scaled by a power of two; see _run)
    Candidates are all j with d̃ − ε ≤ U, U = k-th smallest of d̃ + ε (self excluded when
    self_offset ≥ 0: query row i is item self_offset + i). This set provably contains the exact
    top-k including every tie at the boundary.

    When sqrt_ids has rows (code sqeuclidean only), the euclidean top-k is written there too,
    from the same candidates: euclidean's bounds are the squared ones, so its candidate set is
    identical, and sqrt of the exact float64 squared distance is bit-equal to euclidean's exact
    distance. Only the tiny candidate sort is repeated, because distinct squared distances can
    round to the same sqrt, and such a tie must then go to the smaller id as it does alone.
    """
    B, N = G.shape
    for b in prange(B):
        i = row0 + b  # row in Q
        selfj = self_offset + i if self_offset >= 0 else -1
        qsq_i = qsq[i] if code != _COSINE else 0.0
        # Pass 1: U = k-th smallest upper bound.
        hi_all = np.empty(N, dtype=np.float64)
        for j in range(N):
            lo, hi_all[j] = _approx_bounds(G, b, j, qsq_i, xsq, coef, eabs, code)
        if selfj >= 0:
            hi_all[selfj] = np.inf
        U = _kth_smallest(hi_all, k)
        # Pass 2: count candidates; pass 3: collect them with exact distances (ids ascending).
        count = 0
        for j in range(N):
            if j != selfj:
                lo, hi = _approx_bounds(G, b, j, qsq_i, xsq, coef, eabs, code)
                if lo <= U:
                    count += 1
        cand = np.empty(count, dtype=np.int64)
        dist = np.empty(count, dtype=np.float64)
        c = 0
        for j in range(N):
            if j != selfj:
                lo, hi = _approx_bounds(G, b, j, qsq_i, xsq, coef, eabs, code)
                if lo <= U:
                    cand[c] = j
                    dist[c] = _exact_distance(Q, X, i, j, qnorm, xnorm, code)
                    c += 1
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
    elif ip > 0:
        while t < d:
            a = abs(np.float64(Q[i, t]) - np.float64(X[j, t]))
            v = a
            for _ in range(ip - 1):
                v *= a
            if (t & 3) == 0:
                s0 += v
            elif (t & 3) == 1:
                s1 += v
            elif (t & 3) == 2:
                s2 += v
            else:
                s3 += v
            t += 1
    else:
        while t < d:
            a = abs(np.float64(Q[i, t]) - np.float64(X[j, t]))
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


@njit(cache=True, parallel=True)
def _minkowski_select(Q, X, p, ip, self_offset, k, out_ids, out_d, row0, row1):
    """Exact minkowski top-k for query rows row0…row1−1 against all of X."""
    N = X.shape[0]
    inv_p = 1.0 / p
    for i in prange(row0, row1):
        selfj = self_offset + i if self_offset >= 0 else -1
        dist_all = np.empty(N, dtype=np.float64)
        for j in range(N):
            dist_all[j] = _minkowski_sum(Q, X, i, j, p, ip) ** inv_p
        if selfj >= 0:
            dist_all[selfj] = np.inf
        U = _kth_smallest(dist_all, k)
        count = 0
        for j in range(N):
            if dist_all[j] <= U and j != selfj:
                count += 1
        cand = np.empty(count, dtype=np.int64)
        dist = np.empty(count, dtype=np.float64)
        c = 0
        for j in range(N):
            if dist_all[j] <= U and j != selfj:
                cand[c] = j
                dist[c] = dist_all[j]
                c += 1
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
         exclude_self: bool, row0: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """row0: with exclude_self, query row i of Q is item row0 + i of X (Q = X[row0:...])."""
    code = _CODES[resolve_metric(metric)]
    if code == _MINKOWSKI:
        return _run_minkowski(Q, X, k, p, block_rows, exclude_self, row0)
    return _run_gemm(Q, X, k, code, block_rows, exclude_self, also_euclidean=False, row0=row0)[0]


def _run_minkowski(Q, X, k, p, block_rows, exclude_self, row0=0):
    pf = validate_minkowski_p(p)
    ip = int(pf) if pf == int(pf) and pf <= 64 else 0
    M = Q.shape[0]
    out_ids = np.empty((M, k), dtype=np.int64)
    out_d = np.empty((M, k), dtype=np.float64)
    # Minkowski needs no B×N block (one row buffer per thread); blocks only bound the work
    # handed to one parallel call.
    B = _block_rows(X.shape[0], block_rows)
    for r0 in range(0, M, B):
        _minkowski_select(Q, X, pf, ip, row0 if exclude_self else -1, k, out_ids, out_d, r0, min(M, r0 + B))
    return out_ids, _to_f32(out_d)


def _gemm_operands(Q, X, qnorm, xnorm, code):
    """(Qa, Xa, qsq, xsq, converted): the float32 gemm operands and squared norms for _gemm_select."""
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


def _run_gemm(Q, X, k, code, block_rows, exclude_self, also_euclidean, row0=0):
    """[(ids, dists)] for `code`; with also_euclidean (code sqeuclidean) a second pair for
    euclidean from the same gemm and candidates (see _gemm_select)."""
    M, N = Q.shape[0], X.shape[0]
    out_ids = np.empty((M, k), dtype=np.int64)
    out_d = np.empty((M, k), dtype=np.float64)
    rows2 = M if also_euclidean else 0
    sqrt_ids, sqrt_d = np.empty((rows2, k), dtype=np.int64), np.empty((rows2, k), dtype=np.float64)
    qnorm = _row_norms(Q)
    xnorm = _row_norms(X) if Q is not X else qnorm
    Qa, Xa, qsq, xsq, converted = _gemm_operands(Q, X, qnorm, xnorm, code)
    coef = _gemm_error_coef(Q.shape[1], converted)
    eabs = _gemm_error_abs(Q.shape[1])
    B = _block_rows(N, block_rows)
    G = np.empty((min(B, M), N), dtype=np.float32)
    for r0 in range(0, M, B):
        r1 = min(M, r0 + B)
        g = G[: r1 - r0]
        np.matmul(Qa[r0:r1], Xa.T, out=g)
        _gemm_select(g, qsq, xsq, coef, eabs, code, Q, X, qnorm, xnorm, row0 if exclude_self else -1, k,
                     out_ids, out_d, r0, sqrt_ids, sqrt_d)
    pairs = [(out_ids, _to_f32(out_d))]
    return pairs + [(sqrt_ids, _to_f32(sqrt_d))] if also_euclidean else pairs


def top_k_neighbors(X: np.ndarray, k: int, metric: str, *, p: float = DEFAULT_MINKOWSKI_P,
                    block_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k neighbours of every row of X among the other rows of X.

    Returns (ids int64 [N, k], distances float32 [N, k]); row q excludes q itself, is sorted by
    ascending distance, ties broken by the smaller id. `p` is used by minkowski only.
    """
    X = _as_matrix(X, "X")
    k = _check_k(k, X.shape[0] - 1, f"the {X.shape[0]} rows minus the query itself")
    return _run(X, X, k, metric, p, block_rows, exclude_self=True)


def top_k_query(Q: np.ndarray, X: np.ndarray, k: int, metric: str, *, p: float = DEFAULT_MINKOWSKI_P,
                block_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k rows of X for each row of Q (nothing excluded). Same ordering rules."""
    Q = _as_matrix(Q, "Q")
    X = _as_matrix(X, "X")
    if Q.shape[1] != X.shape[1]:
        raise ValueError(f"Q and X must have the same number of columns, got {Q.shape[1]} and {X.shape[1]}")
    k = _check_k(k, X.shape[0], f"the {X.shape[0]} rows of X")
    if Q.dtype != X.dtype:  # one dtype for the kernels (float32 ⊂ float64 exactly)
        Q, X = Q.astype(np.float64), X.astype(np.float64)
    return _run(Q, X, k, metric, p, block_rows, exclude_self=False)


def top_k_neighbors_multi(X: np.ndarray, k: int, metrics, *, p: float = DEFAULT_MINKOWSKI_P,
                          block_rows: int | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """top_k_neighbors of X under several metrics, sharing work: {name as given: (ids, dists)}.

    Euclidean and squared euclidean rank identically (sqrt is monotone), so when both are asked
    one gemm + candidate pass serves both; results equal separate top_k_neighbors calls exactly.
    """
    X = _as_matrix(X, "X")
    return top_k_neighbors_rows(X, k, metrics, 0, X.shape[0], p=p, block_rows=block_rows)


def top_k_neighbors_rows(X: np.ndarray, k: int, metrics, start: int, stop: int, *,
                         p: float = DEFAULT_MINKOWSKI_P, block_rows: int | None = None
                         ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Rows [start, stop) of top_k_neighbors_multi(X, ...): those queries among all rows of X.

    The same arrays as those rows of the full call, byte for byte: a row's result depends only on
    X (the approximate gemm only picks candidates, which are then ranked exactly), so row blocks
    computed anywhere (distributor.RayDistributor) concatenate to the full result.
    """
    X = _as_matrix(X, "X")
    n = X.shape[0]
    k = _check_k(k, n - 1, f"the {n} rows minus the query itself")
    if not 0 <= start < stop <= n:
        raise ValueError(f"rows [{start}, {stop}) are not a non-empty range of the {n} rows")
    Q = X if (start, stop) == (0, n) else X[start:stop]  # a view: no copy of the block
    ids = {name: resolve_metric(name) for name in metrics}
    wanted = set(ids.values())
    done: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if {"euclidean", "sqeuclidean"} <= wanted:
        done["sqeuclidean"], done["euclidean"] = _run_gemm(Q, X, k, _SQEUCLIDEAN, block_rows, True, True,
                                                           row0=start)
    for mid in sorted(wanted - done.keys(), key=list(METRICS).index):
        done[mid] = _run(Q, X, k, mid, p, block_rows, exclude_self=True, row0=start)
    return {name: done[mid] for name, mid in ids.items()}


__all__ = [
    "top_k_neighbors_multi",
    "top_k_neighbors_rows",
    "Metric",
    "METRICS",
    "DEFAULT_MINKOWSKI_P",
    "resolve_metric",
    "validate_minkowski_p",
    "top_k_neighbors",
    "top_k_query",
]
