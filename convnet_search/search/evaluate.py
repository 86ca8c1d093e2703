"""Search quality from class labels (pure functions over neighbour id matrices).

Definitions are in docs/bundle.md ("Search quality"):

* **search score** (ConvNet Playground): for query q of class c and results r₀ … r₁₄ (q excluded),
  Σ wᵢ·[class(rᵢ) = c] / Σ wᵢ with wᵢ = (15 − i)/15. Σ wᵢ = 8, so score·120 = Σ_{matching i} (15 − i)
  is an integer 0 … 120: that integer (the "numerator") is what the bundle stores as uint8.
* **precision@k**: fraction of the first k results in class c.
* **average precision@k**: Σ_{i<k, rᵢ relevant} precision@(i+1) / min(k, number of other images of
  class c); 0 when q is the only image of its class. mAP@k is its mean over queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

SCORE_TOP = 15


def score_scale(top: int) -> int:
    """Σ_{i<top} (top − i): the largest numerator, 120 for the usual window of 15."""
    return top * (top + 1) // 2


SCORE_SCALE = score_scale(SCORE_TOP)


def score_window(n_images: int, k: int) -> tuple[int, int]:
    """(neighbours stored, search-score window) for a dataset of n_images and a requested k.

    A query has n_images − 1 possible results, so a small folder shrinks both to that; the score
    window is the usual 15 otherwise (or k, if k is smaller).
    """
    if n_images < 2:
        raise ValueError(f"need at least 2 images to search, got {n_images}")
    k_eff = min(k, n_images - 1)
    return k_eff, min(SCORE_TOP, k_eff)


def _check(neighbor_ids: np.ndarray, labels: np.ndarray, need: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(neighbor_ids)
    lab = np.asarray(labels)
    if ids.ndim != 2:
        raise ValueError(f"neighbor_ids must be a 2-D array [N, k], got shape {ids.shape}")
    if lab.ndim != 1:
        raise ValueError(f"labels must be a 1-D array [N], got shape {lab.shape}")
    if ids.dtype.kind not in "iu":
        raise ValueError(f"neighbor_ids must hold integer ids, got dtype {ids.dtype}")
    if ids.shape[0] != lab.shape[0]:
        raise ValueError(
            f"neighbor_ids has {ids.shape[0]} rows but labels has {lab.shape[0]} entries; "
            "row q must be the neighbours of image q"
        )
    if ids.size and (ids.min() < 0 or ids.max() >= lab.shape[0]):
        raise ValueError(
            f"neighbor ids must lie in 0 … {lab.shape[0] - 1}, got {ids.min()} … {ids.max()}"
        )
    if need is not None and ids.shape[1] < need:
        raise ValueError(f"need at least {need} neighbour columns, got {ids.shape[1]}")
    return ids, lab


def _hits(ids: np.ndarray, lab: np.ndarray, k: int) -> np.ndarray:
    """bool [N, k]: result i of query q has q's class."""
    return lab[ids[:, :k]] == lab[:, None]


def _resolve_k(ids: np.ndarray, k: int | None) -> int:
    if k is None:
        return ids.shape[1]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= ids.shape[1]:
        raise ValueError(f"k must be an integer in 1 … {ids.shape[1]} (the neighbour columns), got {k!r}")
    return int(k)


def search_score_numerators(neighbor_ids: np.ndarray, labels: np.ndarray, top: int = SCORE_TOP) -> np.ndarray:
    """uint8 [N]: Σ_{i<top, class(rᵢ)=class(q)} (top − i), an integer 0 … score_scale(top) (120 for 15)."""
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or not 1 <= top <= SCORE_TOP:
        raise ValueError(f"score window must be an integer in 1 … {SCORE_TOP}, got {top!r}")
    ids, lab = _check(neighbor_ids, labels, need=top)
    weights = np.arange(top, 0, -1, dtype=np.int64)  # top, top − 1, …, 1
    return (_hits(ids, lab, top) @ weights).astype(np.uint8)


def search_scores(neighbor_ids: np.ndarray, labels: np.ndarray, top: int = SCORE_TOP) -> np.ndarray:
    """float64 [N] in [0, 1]: the search score of every query."""
    return search_score_numerators(neighbor_ids, labels, top).astype(np.float64) / score_scale(top)


def precision_at_k(neighbor_ids: np.ndarray, labels: np.ndarray, k: int | None = None) -> np.ndarray:
    """float64 [N]: fraction of the first k results (default: all columns) in the query's class."""
    ids, lab = _check(neighbor_ids, labels)
    k = _resolve_k(ids, k)
    return _hits(ids, lab, k).mean(axis=1)


def average_precision_at_k(neighbor_ids: np.ndarray, labels: np.ndarray, k: int | None = None) -> np.ndarray:
    """float64 [N]: AP over the first k results, normalised by min(k, #other images of q's class).

    Queries alone in their class get 0 (there is nothing to find).
    """
    ids, lab = _check(neighbor_ids, labels)
    k = _resolve_k(ids, k)
    hits = _hits(ids, lab, k)
    ranks = np.arange(1, k + 1, dtype=np.float64)
    prec_at_i = np.cumsum(hits, axis=1) / ranks
    _, inverse, counts = np.unique(lab, return_inverse=True, return_counts=True)
    others = counts[inverse.reshape(-1)] - 1  # images of q's class other than q
    denom = np.minimum(k, others).astype(np.float64)
    total = (prec_at_i * hits).sum(axis=1)
    return np.divide(total, denom, out=np.zeros_like(total), where=denom > 0)


@dataclass(frozen=True)
class QualitySummary:
    search_score: float
    precision_at_k: float
    map_at_k: float


def summarize(neighbor_ids: np.ndarray, labels: np.ndarray, k: int | None = None,
              top: int = SCORE_TOP) -> QualitySummary:
    """Means over all queries: search score (window `top`), precision@k and mAP@k (k defaults to
    all columns)."""
    return QualitySummary(
        search_score=float(search_scores(neighbor_ids, labels, top).mean()),
        precision_at_k=float(precision_at_k(neighbor_ids, labels, k).mean()),
        map_at_k=float(average_precision_at_k(neighbor_ids, labels, k).mean()),
    )


NO_VALUE = 255  # a field's score numerator for a query with no value in it (numerators are ≤ 120)


@dataclass(frozen=True)
class FieldScores:
    """One field's scores of one neighbour list: queries with no value in the field are skipped."""

    numerators: np.ndarray  # uint8 [N]; NO_VALUE for a skipped query
    means: np.ndarray  # float64 [3]: search score, precision@k, mAP@k over the scored queries (NaN: none)
    scored: int  # queries with a value
    skipped: int  # queries without one


def field_scores(neighbor_ids: np.ndarray, codes: np.ndarray, k: int, top: int = SCORE_TOP) -> FieldScores:
    """Scores against one label field (codes int [N], −1 = no value). A result with no value never
    matches; a query with no value is skipped (not counted as 0) and its numerator is NO_VALUE."""
    ids = np.asarray(neighbor_ids)[:, :k]
    codes = np.asarray(codes)
    has = codes >= 0
    # Valueless images get distinct negative labels: never equal to a query's, nor to each other.
    lab = np.where(has, codes, -1 - np.arange(len(codes)))
    numerators = search_score_numerators(ids, lab, top)
    numerators[~has] = NO_VALUE
    if not has.any():
        return FieldScores(numerators, np.full(3, np.nan), 0, len(codes))
    q = np.flatnonzero(has)
    scores = numerators[q].astype(np.float64) / score_scale(top)
    means = np.array([scores.mean(), precision_at_k(ids, lab, k)[q].mean(),
                      average_precision_at_k(ids, lab, k)[q].mean()], dtype=np.float64)
    return FieldScores(numerators, means, int(has.sum()), int((~has).sum()))


def best_scored(scores: Sequence[float | None]) -> int | None:
    """Which configuration a dataset opens on (the explorer's ★, the API's `best`, `curate`'s
    pick): the index of the highest mean search score, the first of equal ones, so stored order
    (model, layer, pooling, metric) breaks ties; None scores (not scored) never win. None when
    nothing is scored."""
    best: int | None = None
    for i, score in enumerate(scores):
        if score is not None and (best is None or score > scores[best]):
            best = i
    return best


__all__ = [
    "best_scored",
    "NO_VALUE",
    "FieldScores",
    "field_scores",
    "SCORE_TOP",
    "SCORE_SCALE",
    "score_scale",
    "score_window",
    "search_score_numerators",
    "search_scores",
    "precision_at_k",
    "average_precision_at_k",
    "QualitySummary",
    "summarize",
]
