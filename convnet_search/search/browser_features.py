"""Browser-search features: the dataset's features as the page downloads them, compressed to fit a
download budget, and the recall that compression costs (docs/live-search.md "Features download").

The page downloads one features file per (dataset, layer, pooling) and searches it with the
uploaded image's exact float32 feature. At 100,000 images × 1,024 floats that file would be 410 MB,
so the bundle picks, per file, the least lossy encoding that fits the budget:

    float32    f32[N·dim]                                             exact
    float16    f16[N·dim]                                             ≈ 3 significant digits
    uint8      f32 low[N] · f32 step[N] · u8 code[N·dim]
    pca_uint8  f32 mean[dim] · f32 basis[dims·dim] · f32 low[N] · f32 step[N] · u8 code[N·dims]
    pca_u8u4   f32 mean[dim] · f32 basis[dims·dim] · f32 low[dims] · f32 step[dims]
               · u8 code[N·head] · u8 nibbles[N·(dims − head)/2]          head = dims/4

uint8: each vector's coordinates c are stored as low + step·code (per-vector affine, 256 levels,
error ≤ step/2 per coordinate). pca_uint8 first projects onto the top `dims` principal axes
(c = basis·(x − mean)) and stores those coordinates the same way. pca_u8u4 keeps about 1.6× as
many axes in the same bytes: per *axis* scales (low, step per principal axis: the axes' variances
differ by orders of magnitude, one step per vector wastes the tail axes' levels), the first quarter
of the axes (the largest variance) in 8 bits, the other three quarters in 4 bits (15 levels over the
axis's 0.5–99.5 percentile range, clipped), two per byte, low nibble first. Measured on real
MobileNet α 0.25 grid2 features (1,024-d) at the 100k budget: recall@15 0.967 vs 0.937 for
pca_uint8; on 512-d features pca_uint8 keeps more (0.992 vs 0.988), so the bundle measures both
and keeps the better (`encode_for_browser`). The page ranks by the metric
between the exact query and the *decoded* vector x̂ (`search_distances`), computed from the codes
without rebuilding x̂: q·x̂ = q·mean + (basis·q)·ĉ and ‖x̂‖ once per vector at load. (Measured on real
features: keeping each vector's exact norm instead, an "unbiased" asymmetric distance, lost recall
— 0.86 vs 0.98 cosine at conv_pw_11 gem —, because the decoded vector's distance to a *near*
query has an error proportional to their difference, the exact-norm one does not.) Minkowski
cannot be written with dot products: under pca_uint8 it is taken in the principal subspace,
‖basis·(q − mean) − ĉ‖ₚ, an approximation whose recall the manifest reports like every other.

All sections are little-endian and 4-byte aligned (the code bytes come last), so the page views
them as typed arrays without copying.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange  # numba: a dependency of umap-learn, used by neighbors.py too

ENCODINGS = ("float32", "float16", "uint8", "pca_uint8", "pca_u8u4")  # least lossy first (the PCA two: measured)
DOWNLOAD_BUDGET_MB = 32.0  # model + one features file, at the default
RECALL_K = 15
RECALL_QUERIES = 1000
PCA_FIT_ROWS = 50_000  # rows the principal axes are fitted on (a seeded sample beyond that)
PCA_DIMS_STEP = 8
U8U4_DIMS_STEP = 32  # head = dims/4 a multiple of 8: both code sections are whole 32-bit words per vector
LEVELS = 255
NIBBLE_LEVELS = 15
NIBBLE_CLIP_PERCENT = 0.5  # 4-bit axes span their 0.5–99.5 percentiles: outliers are clipped


@dataclass(frozen=True)
class Layout:
    """What the page needs to read one features file: the manifest's per-file entry."""
    encoding: str
    n: int
    dim: int  # the model output's dimension (the query's)
    dims: int  # stored coordinates per vector: dim, or the number of principal axes

    def __post_init__(self):
        if self.encoding == "pca_u8u4" and self.dims % 8:
            raise ValueError(f"pca_u8u4 needs a multiple of 8 axes, got {self.dims}")

    @property
    def head(self) -> int:
        """pca_u8u4: the axes stored in 8 bits (the rest in 4)."""
        return self.dims // 4

    @property
    def nbytes(self) -> int:
        n, dim, dims = self.n, self.dim, self.dims
        if self.encoding == "float32":
            return 4 * n * dim
        if self.encoding == "float16":
            return 2 * n * dim
        if self.encoding == "pca_u8u4":
            return 4 * (dim + dims * dim) + 8 * dims + n * (self.head + (dims - self.head) // 2)
        header = 4 * (dim + dims * dim) if self.encoding == "pca_uint8" else 0
        return header + 8 * n + n * dims


@dataclass(frozen=True)
class Decoded:
    """A features file read back: float rows, or quantized codes with their per-vector terms."""
    layout: Layout
    rows: np.ndarray | None = None  # float32 [N, dim] for float32 / float16
    mean: np.ndarray | None = None  # float32 [dim] (pca_uint8)
    basis: np.ndarray | None = None  # float32 [dims, dim] (pca_uint8), orthonormal rows
    low: np.ndarray | None = None  # float32 [N] (per vector), or [dims] (per axis: pca_u8u4)
    step: np.ndarray | None = None  # float32 [N], or [dims]
    code: np.ndarray | None = None  # uint8 [N, dims] (pca_u8u4: the nibbles unpacked)

    def coords(self, rows: slice) -> np.ndarray:
        """float64 stored coordinates low + step·code of `rows` (per-vector or per-axis terms)."""
        code = self.code[rows].astype(np.float64)
        if self.layout.encoding == "pca_u8u4":
            return self.low.astype(np.float64) + self.step.astype(np.float64) * code
        return self.low[rows, None].astype(np.float64) + self.step[rows, None].astype(np.float64) * code


def choose_layout(n: int, dim: int, budget_bytes: int) -> Layout:
    """The least lossy encoding whose file fits `budget_bytes`; pca_uint8 keeps as many axes as fit
    (a multiple of 8, at least 8 even when that is over budget: the manifest shows the bytes)."""
    for enc in ("float32", "float16", "uint8"):
        layout = Layout(enc, n, dim, dim)
        if layout.nbytes <= budget_bytes:
            return layout
    return pca_layouts(n, dim, budget_bytes)[0]


def pca_layouts(n: int, dim: int, budget_bytes: int) -> list[Layout]:
    """pca_uint8 and pca_u8u4 with as many axes as fit (pca_uint8 at least 8 even when that is over
    budget: the manifest shows the bytes; pca_u8u4 only if ≥ 8 fit); encode_for_browser keeps the
    one with the better recall."""
    # header 4·dim·(1 + dims) + 8n + n·dims ≤ budget  →  dims ≤ (budget − 4·dim − 8n) / (n + 4·dim)
    fit = (budget_bytes - 4 * dim - 8 * n) // (n + 4 * dim)
    dims = int(min(dim, max(PCA_DIMS_STEP, fit - fit % PCA_DIMS_STEP)))
    # pca_u8u4: 4·dim·(1 + dims) + 8·dims + n·(dims/4 + 3·dims/8) ≤ budget; only when it fits (the
    # over-budget fallback is pca_uint8's): multiples of 32 axes, of 8 below 32
    fit4 = int(min(dim, (budget_bytes - 4 * dim) // (5 * n / 8 + 4 * dim + 8)))
    dims4 = fit4 - fit4 % (U8U4_DIMS_STEP if fit4 >= U8U4_DIMS_STEP else 8)
    out = [Layout("pca_uint8", n, dim, dims)]
    return out + [Layout("pca_u8u4", n, dim, dims4)] if dims4 >= 8 else out


def _quantize(c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row affine uint8: c ≈ low + step·code, |error| ≤ step/2."""
    low = c.min(axis=1)
    step = (c.max(axis=1) - low) / LEVELS
    safe = np.where(step > 0, step, 1.0)
    code = np.clip(np.rint((c - low[:, None]) / safe[:, None]), 0, LEVELS).astype(np.uint8)
    return low.astype(np.float32), step.astype(np.float32), code


def _quantize_axes(c: np.ndarray, levels: int, clip_percent: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column affine: c[:, r] ≈ low[r] + step[r]·code over the column's clip_percent … 100 −
    clip_percent range (values outside clipped to it)."""
    if clip_percent > 0:
        low, high = np.percentile(c, [clip_percent, 100 - clip_percent], axis=0)
    else:
        low, high = c.min(axis=0), c.max(axis=0)
    step = (high - low) / levels
    safe = np.where(step > 0, step, 1.0)
    code = np.clip(np.rint((c - low) / safe), 0, levels).astype(np.uint8)
    return low.astype(np.float32), step.astype(np.float32), code


def principal_axes(x: np.ndarray, dims: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and the top-`dims` principal axes (rows, orthonormal) of x, fitted on ≤ PCA_FIT_ROWS rows."""
    rows = x if len(x) <= PCA_FIT_ROWS else x[np.sort(np.random.default_rng(seed).choice(len(x), PCA_FIT_ROWS, replace=False))]
    mean = rows.mean(axis=0, dtype=np.float64)
    centred = rows.astype(np.float64) - mean
    if len(rows) < centred.shape[1]:  # fewer rows than dims: the thin SVD is O(rows²·dim), not O(dim³)
        basis = np.linalg.svd(centred, full_matrices=False)[2][:dims]
        basis = np.concatenate([basis, np.zeros((dims - len(basis), centred.shape[1]))]) if len(basis) < dims else basis
    else:
        _, vecs = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
        basis = vecs[:, ::-1][:, :dims].T
    basis *= np.where(basis[np.arange(dims), np.abs(basis).argmax(axis=1)] < 0, -1.0, 1.0)[:, None]  # fixed signs
    return mean.astype(np.float32), np.ascontiguousarray(basis, dtype=np.float32)


def encode(x: np.ndarray, layout: Layout, seed: int = 0) -> bytes:
    """The file bytes of features x [N, dim] under `layout` (see the module docstring)."""
    x = np.asarray(x, dtype=np.float32)
    if x.shape != (layout.n, layout.dim):
        raise ValueError(f"features of shape {x.shape}, layout says {(layout.n, layout.dim)}")
    if layout.encoding == "float32":
        return np.ascontiguousarray(x, dtype="<f4").tobytes()
    if layout.encoding == "float16":
        return np.ascontiguousarray(x, dtype="<f2").tobytes()
    head = b""
    c = x
    if layout.encoding == "pca_u8u4":
        mean, basis = principal_axes(x, layout.dims, seed)
        c = (x.astype(np.float64) - mean) @ basis.astype(np.float64).T
        h = layout.head
        low8, step8, code8 = _quantize_axes(c[:, :h], LEVELS, 0.0)
        low4, step4, code4 = _quantize_axes(c[:, h:], NIBBLE_LEVELS, NIBBLE_CLIP_PERCENT)
        nibbles = code4[:, 0::2] | (code4[:, 1::2] << 4)
        out = (mean.astype("<f4").tobytes() + basis.astype("<f4").tobytes()
               + np.concatenate([low8, low4]).astype("<f4").tobytes() + np.concatenate([step8, step4]).astype("<f4").tobytes()
               + code8.tobytes() + nibbles.astype(np.uint8).tobytes())
        assert len(out) == layout.nbytes
        return out
    if layout.encoding == "pca_uint8":
        mean, basis = principal_axes(x, layout.dims, seed)
        c = (x.astype(np.float64) - mean) @ basis.astype(np.float64).T
        head = mean.astype("<f4").tobytes() + basis.astype("<f4").tobytes()
    elif layout.encoding != "uint8":
        raise ValueError(f"unknown encoding {layout.encoding!r}; known: {', '.join(ENCODINGS)}")
    low, step, code = _quantize(np.asarray(c, dtype=np.float64))
    out = head + low.astype("<f4").tobytes() + step.astype("<f4").tobytes() + code.tobytes()
    assert len(out) == layout.nbytes
    return out


def decode(buf: bytes, layout: Layout) -> Decoded:
    """Reads back what `encode` wrote (the page's worker does the same with typed arrays)."""
    if len(buf) != layout.nbytes:
        raise ValueError(f"{len(buf)} bytes, the {layout.encoding} layout of {layout.n}×{layout.dim} needs {layout.nbytes}")
    n, dim, dims = layout.n, layout.dim, layout.dims
    if layout.encoding in ("float32", "float16"):
        rows = np.frombuffer(buf, dtype="<f4" if layout.encoding == "float32" else "<f2").reshape(n, dim)
        return Decoded(layout, rows=rows.astype(np.float32))
    at = 0

    def take(count: int, dtype: str) -> np.ndarray:
        nonlocal at
        a = np.frombuffer(buf, dtype=dtype, count=count, offset=at)
        at += a.nbytes
        return a

    mean = basis = None
    if layout.encoding in ("pca_uint8", "pca_u8u4"):
        mean = take(dim, "<f4")
        basis = take(dims * dim, "<f4").reshape(dims, dim)
    if layout.encoding == "pca_u8u4":
        h = layout.head
        low, step = take(dims, "<f4"), take(dims, "<f4")
        code8 = take(n * h, "u1").reshape(n, h)
        nibbles = take(n * (dims - h) // 2, "u1").reshape(n, (dims - h) // 2)
        code = np.empty((n, dims), dtype=np.uint8)
        code[:, :h] = code8
        code[:, h::2] = nibbles & 15
        code[:, h + 1::2] = nibbles >> 4
        return Decoded(layout, mean=mean, basis=basis, low=low, step=step, code=code)
    low, step = take(n, "<f4"), take(n, "<f4")
    code = take(n * dims, "u1").reshape(n, dims)
    return Decoded(layout, mean=mean, basis=basis, low=low, step=step, code=code)


BLOCK_ROWS = 8192  # rows decoded at a time: memory stays ~64 MB at 1,024 dims whatever N is


@njit(cache=True, parallel=True)
def _minkowski_into(q, x, p, out):
    """out[i, j] = (Σ float32 |x_j − q_i|^p, summed in float64)^(1/p): float32 terms like the
    page's, one pass over x per query with no [N, dim] temporaries (numpy's took 65 % of the
    bundle stage at 100,000 rows); queries in parallel."""
    cube = p == 3.0
    pf = np.float32(p)
    for i in prange(q.shape[0]):
        for j in range(x.shape[0]):
            acc = 0.0
            for t in range(q.shape[1]):
                d = abs(x[j, t] - q[i, t])
                acc += (d * d * d) if cube else d ** pf
            out[i, j] = acc ** (1.0 / p)


def _minkowski(q: np.ndarray, x: np.ndarray, p: float) -> np.ndarray:
    out = np.empty((len(q), len(x)))
    _minkowski_into(np.ascontiguousarray(q, dtype=np.float32), np.ascontiguousarray(x, dtype=np.float32),
                    float(p), out)
    return out


def exact_distances(q: np.ndarray, x: np.ndarray, metric: str, p: float = 3.0) -> np.ndarray:
    """float64 [m, N] distances of docs/bundle.md between queries q [m, dim] and rows x [N, dim]
    (what metrics.ts computes for float32 / float16 rows)."""
    q = np.asarray(q, dtype=np.float64)
    out = np.empty((len(q), len(x)))
    qn = np.linalg.norm(q, axis=1)
    for s in range(0, len(x), BLOCK_ROWS):
        xb = np.asarray(x[s:s + BLOCK_ROWS], dtype=np.float64)
        if metric == "minkowski":
            out[:, s:s + len(xb)] = _minkowski(q, xb, p)
        else:
            out[:, s:s + len(xb)] = _from_dots(q @ xb.T, qn, np.linalg.norm(xb, axis=1), metric)
    return out


def _from_dots(dot: np.ndarray, qn: np.ndarray, xn: np.ndarray, metric: str) -> np.ndarray:
    if metric == "cosine":
        den = qn[:, None] * xn[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, np.clip(1 - dot / np.where(den > 0, den, 1), 0, 2), 1.0)
    sq = np.maximum(0.0, qn[:, None] ** 2 + xn[None, :] ** 2 - 2 * dot)
    if metric == "sqeuclidean":
        return sq
    if metric == "euclidean":
        return np.sqrt(sq)
    raise ValueError(f"unknown metric {metric!r}")


def search_distances(q: np.ndarray, f: Decoded, metric: str, p: float = 3.0) -> np.ndarray:
    """float64 [m, N]: the distances the page ranks by, from exact queries q [m, dim] to the decoded
    vectors of f (module docstring; twin of frontend/src/live/features.ts searchDistances)."""
    if f.rows is not None:
        return exact_distances(q, f.rows, metric, p)
    q = np.asarray(q, dtype=np.float64)
    qn = np.linalg.norm(q, axis=1)
    pca = f.basis is not None
    if pca:
        basis, mean = f.basis.astype(np.float64), f.mean.astype(np.float64)
        q_axes, q_mean, mean_axes = q @ basis.T, q @ mean, basis @ mean
    out = np.empty((len(q), f.layout.n))
    for s in range(0, f.layout.n, BLOCK_ROWS):
        sl = slice(s, s + BLOCK_ROWS)
        c = f.coords(sl)
        if metric == "minkowski":  # on the decoded vectors; under PCA in the principal subspace
            out[:, sl] = _minkowski(q_axes - mean_axes if pca else q, c, p)
            continue
        if pca:  # x̂ = mean + basisᵀ·c:  q·x̂ = q·mean + (basis·q)·c,  ‖x̂‖² = ‖mean‖² + 2 (basis·mean)·c + ‖c‖²
            dot = q_mean[:, None] + q_axes @ c.T
            xn = np.sqrt(np.maximum(0.0, mean @ mean + 2 * c @ mean_axes + (c * c).sum(axis=1)))
        else:
            dot, xn = q @ c.T, np.linalg.norm(c, axis=1)
        out[:, sl] = _from_dots(dot, qn, xn, metric)
    return out


def top_ids(d: np.ndarray, k: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """[m, k] ids of the k smallest distances per row, ties to the smaller id (as the page);
    `exclude[i]` (the query's own id) is left out of row i."""
    d = np.array(d, dtype=np.float64)
    if exclude is not None:
        d[np.arange(len(d)), exclude] = np.inf
    if k >= d.shape[1]:
        return np.lexsort((np.broadcast_to(np.arange(d.shape[1]), d.shape), d), axis=1)[:, :k]
    # Sorting whole rows cost 29 % of the bundle stage at 100,000 rows: the k-th smallest value
    # (a partition) bounds the candidates, and only they are sorted (value, then id). Every tie
    # at the bound is a candidate, so ties still go to the smaller id.
    kth = np.partition(d, k - 1, axis=1)[:, k - 1]
    out = np.empty((len(d), k), dtype=np.int64)
    for i, row in enumerate(d):
        cand = np.flatnonzero(row <= kth[i])
        if len(cand) < k:  # NaN among the k smallest (NaN compares false): sort the whole row
            cand = np.arange(len(row))
        out[i] = cand[np.lexsort((cand, row[cand]))][:k]
    return out


def recall_at_k(exact_d: np.ndarray, approx_d: np.ndarray, k: int, exclude: np.ndarray | None = None) -> float:
    """Mean over queries of |top-k(approx) ∩ top-k(exact)| / k."""
    a, b = top_ids(exact_d, k, exclude), top_ids(approx_d, k, exclude)
    return float(np.mean([len(np.intersect1d(x, y)) / k for x, y in zip(a, b)]))


def sample_queries(n: int, count: int = RECALL_QUERIES, seed: int = 0) -> np.ndarray:
    """Sorted ids of the rows used as queries: all rows when n ≤ count."""
    if n <= count:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, count, replace=False))


def measure_recall(x: np.ndarray, f: Decoded, metrics: list[str], p: float = 3.0, k: int = RECALL_K,
                   queries: int = RECALL_QUERIES, seed: int = 0, chunk: int = 100) -> dict[str, float]:
    """Recall@k of the page's search on `f` against float32 exact search of x, per metric: each
    sampled dataset row is a query, leave-one-out (its own id is excluded from both top-k, like an
    upload that is not in the dataset). k shrinks to N − 1 for tiny datasets."""
    x = np.asarray(x, dtype=np.float32)
    k = min(k, len(x) - 1)
    if k < 1:
        return {m: 1.0 for m in metrics}
    ids = sample_queries(len(x), queries, seed)
    out = {}
    for metric in metrics:
        hits = 0.0
        for s in range(0, len(ids), chunk):
            part = ids[s:s + chunk]
            q = x[part]
            hits += recall_at_k(exact_distances(q, x, metric, p), search_distances(q, f, metric, p), k, part) * len(part)
        out[metric] = round(hits / len(ids), 4)
    return out


# Recall is measured again when the dataset grew by more than this since it was measured (or
# shrank, or the encoding changed); below it the measured figure is carried over with the N it
# was measured at (`recall_n`): the rule the maps follow (incremental.MAX_PLACED_FRACTION). At
# 100,000 images the measurement is most of an update's bundle time (≈ 90 s for 8 layers), and
# 5 % more rows cannot move a 1,000-query estimate by more than its own noise.
REMEASURE_FRACTION = 0.05


def reusable_layout(previous: dict | None, n: int, metrics: list[str], layouts: list[Layout]) -> Layout | None:
    """The layout of `previous` (a manifest entry from the last bundle) if its measured recall
    still stands for n rows: same encoding and dims among `layouts`, same metrics, measured at
    n0 ≤ n ≤ (1 + REMEASURE_FRACTION)·n0."""
    if not previous or not previous.get("recall_queries") or "recall_n" not in previous:
        return None
    n0 = int(previous["recall_n"])
    if not n0 <= n <= n0 * (1 + REMEASURE_FRACTION) or sorted(previous.get("recall", {})) != sorted(metrics):
        return None
    return next((lo for lo in layouts if (lo.encoding, lo.dims) == (previous.get("encoding"), previous.get("dims"))),
                None)


def encode_for_browser(x: np.ndarray, budget_bytes: int, metrics: list[str], p: float = 3.0,
                       seed: int = 0, previous: dict | None = None) -> tuple[bytes, dict]:
    """The file bytes and the manifest entry (encoding, dims, bytes, measured recall) of one
    (dataset, layer, pooling). float32 is exact by definition: no measurement. previous: this
    file's entry in the last bundle (its recall is carried over: see REMEASURE_FRACTION)."""
    x = np.asarray(x, dtype=np.float32)
    layout = choose_layout(len(x), x.shape[1], budget_bytes)
    k = max(0, min(RECALL_K, len(x) - 1))
    if layout.encoding == "float32":
        data = encode(x, layout, seed)
        return data, {"encoding": "float32", "dims": layout.dims, "bytes": len(data), "recall_k": k,
                      "recall": {m: 1.0 for m in metrics}, "recall_queries": 0}
    # The PCA encodings lose different things (axes vs levels): both are measured, the better kept
    # (mean recall over the run's metrics; a tie keeps pca_uint8).
    layouts = pca_layouts(len(x), x.shape[1], budget_bytes) if layout.encoding == "pca_uint8" else [layout]
    kept = reusable_layout(previous, len(x), metrics, layouts)
    if kept is not None:
        data = encode(x, kept, seed)
        return data, {"encoding": kept.encoding, "dims": kept.dims, "bytes": len(data), "recall_k": k,
                      "recall": dict(previous["recall"]), "recall_queries": int(previous["recall_queries"]),
                      "recall_n": int(previous["recall_n"])}
    best = None
    for lo in layouts:
        data = encode(x, lo, seed)
        recall = measure_recall(x, decode(data, lo), metrics, p, seed=seed)
        score = float(np.mean(list(recall.values()))) if recall else 0.0
        if best is None or score > best[0]:
            best = (score, lo, data, recall)
    _, lo, data, recall = best
    return data, {"encoding": lo.encoding, "dims": lo.dims, "bytes": len(data), "recall_k": k,
                  "recall": recall, "recall_queries": int(len(sample_queries(len(x)))), "recall_n": len(x)}
