"""UMAP math: a reproducible 2-D layout of one feature matrix, reusing a stored kNN graph when given."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class UmapConfig:
    """umap-learn's parameters that the run sets (TOML [umap]; config.py validates them)."""
    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: str = "cosine"


def normalize_unit_square(xy: np.ndarray) -> np.ndarray:
    """Scale uniformly (aspect kept) and centre into [0, 1]^2; float32 [N, 2]."""
    xy = np.asarray(xy, dtype=np.float64)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = float((hi - lo).max())
    if not np.isfinite(span) or span == 0:
        return np.full(xy.shape, 0.5, dtype=np.float32)
    out = (xy - lo) / span + (1 - (hi - lo) / span) / 2
    return out.astype(np.float32)


def _pca_2d(x: np.ndarray) -> np.ndarray:
    """The first two principal components (zeros where there are fewer): a map for 2-3 images."""
    centred = np.asarray(x, dtype=np.float64) - x.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    xy = np.zeros((len(x), 2))
    cols = min(2, len(s))
    xy[:, :cols] = u[:, :cols] * s[:cols]
    return xy


# UMAP metric name -> the neighbours stage's metric id with the same distance (umap-learn's "l2" is
# euclidean). Only these can share a graph: umap-learn's minkowski would need p passed along, and
# sqeuclidean is not one of UMAP_METRICS.
SHARED_METRICS = {"cosine": "cosine", "euclidean": "euclidean", "l2": "euclidean"}

# (ids, dists) of the neighbours stage for one feature matrix, keyed by metric id: row q lists the
# stored nearest rows other than q by ascending (distance, id) (neighbors.top_k_neighbors).
Graphs = dict[str, tuple[np.ndarray, np.ndarray]]


def precomputed_knn(ids: np.ndarray, dists: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """umap-learn's (knn_indices, knn_dists) from stored neighbours that exclude the row itself.

    umap-learn wants n_neighbors columns *including* the point itself, first, at distance 0; so
    each row is [q, its first n_neighbors − 1 stored neighbours]. Exactly n_neighbors columns:
    umap-learn 0.5 prunes wider arrays only for N ≥ 4096.
    """
    ids, dists = np.asarray(ids), np.asarray(dists)
    n, k = ids.shape
    if k < n_neighbors - 1:
        raise ValueError(f"{k} stored neighbours per row; UMAP with n_neighbors={n_neighbors} needs "
                         f"{n_neighbors - 1}")
    knn_ids = np.empty((n, n_neighbors), dtype=np.int64)
    knn_dists = np.zeros((n, n_neighbors), dtype=np.float32)
    knn_ids[:, 0] = np.arange(n)
    knn_ids[:, 1:] = ids[:, :n_neighbors - 1]
    knn_dists[:, 1:] = dists[:, :n_neighbors - 1]
    return knn_ids, knn_dists


def graph_for(metric: str, graphs: Graphs | None, n_neighbors: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The stored graph UMAP can use under `metric` with n_neighbors, or None (UMAP builds its own)."""
    shared = SHARED_METRICS.get(metric)
    if not graphs or shared not in graphs:
        return None
    ids, dists = graphs[shared]
    if ids.shape[1] < n_neighbors - 1:
        return None
    return precomputed_knn(ids, dists, n_neighbors)


def umap_2d(features: np.ndarray, cfg: UmapConfig, seed: int, graphs: Graphs | None = None) -> np.ndarray:
    """UMAP embedding normalised into the unit square. Deterministic for a given seed.

    With random_state set, umap-learn runs single-threaded and reproducibly; that is the price of
    maps that do not jump between runs. graphs: the neighbours stage's exact kNN of these features
    (metric id -> (ids, dists)); when one matches UMAP's metric and is wide enough, UMAP uses it
    (umap-learn's precomputed_knn) instead of searching neighbours again.
    """
    from ..runtime import import_tensorflow

    import_tensorflow()  # umap-learn imports TF when present; keep its chatter quiet
    import umap  # lazy: numba compilation costs seconds

    x = np.asarray(features, dtype=np.float32)
    n = x.shape[0]
    if n < 4:  # UMAP's spectral/random init needs a few points; a tiny folder still gets a map
        return normalize_unit_square(_pca_2d(x))
    metric = cfg.metric
    if metric == "cosine" and np.any(np.linalg.norm(x, axis=1) == 0):
        # cosine is undefined for all-zero vectors (dead ReLU layers of random nets): say so, use euclidean
        warnings.warn("zero feature vectors present; UMAP uses euclidean for this layer", RuntimeWarning,
                      stacklevel=2)
        metric = "euclidean"
    n_neighbors = min(cfg.n_neighbors, n - 1)
    knn = graph_for(metric, graphs, n_neighbors)
    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=cfg.min_dist,
                        metric=metric, random_state=seed, init="spectral" if n > 10 else "random",
                        n_jobs=1, precomputed_knn=knn if knn is not None else (None, None, None))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")
        # no search index with a precomputed graph: only transform() of new points needs one
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        emb = reducer.fit_transform(x)
    return normalize_unit_square(emb)
