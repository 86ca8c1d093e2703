"""UMAP stage: a reproducible 2-D map of every (dataset, model, layer)."""
from __future__ import annotations

import warnings

import numpy as np

from .config import UmapConfig


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


def umap_2d(features: np.ndarray, cfg: UmapConfig, seed: int) -> np.ndarray:
    """UMAP embedding normalised into the unit square. Deterministic for a given seed.

    With random_state set, umap-learn runs single-threaded and reproducibly; that is the price of
    maps that do not jump between runs.
    """
    from .runtime import import_tensorflow

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
    reducer = umap.UMAP(n_components=2, n_neighbors=min(cfg.n_neighbors, n - 1), min_dist=cfg.min_dist,
                        metric=metric, random_state=seed, init="spectral" if n > 10 else "random",
                        n_jobs=1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")
        emb = reducer.fit_transform(x)
    return normalize_unit_square(emb)
