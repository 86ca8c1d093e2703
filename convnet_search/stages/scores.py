"""Scores stage: search quality of every stored neighbour list, from the dataset's class labels.

Per (dataset, model) and per `<pooling>/<layer>/<metric>` of the neighbours store:
  `<key>/numerators`  uint8 [N]: each query's search-score numerator (evaluate.py), the bundle's
                      per-query score blocks;
  `<key>/means`       float64 [3]: mean search score, precision@k and mAP@k over the queries, the
                      bundle's summary files (MEANS names them).
Stored in <work>/scores/<dataset>/<model>.h5 with a fingerprint of the neighbours it scored and
the score window; the bundle stage only serializes it. The math is evaluate.py's.
"""
from __future__ import annotations

import hashlib

from typing import TYPE_CHECKING

import numpy as np

from ..io.datasets import Dataset
from ..search.evaluate import score_window, search_score_numerators, summarize
from ..io.store import ArrayStore, StoredArrays, fingerprint
from .base import Stage, loader

if TYPE_CHECKING:
    from .base import RunContext

SCORES_FORMAT = 1  # the bundle fingerprint takes it in from format 2 on (pipeline.bundle_fingerprint)
MEANS = ("search_score", "precision_at_k", "map_at_k")


def score_keys(feats: StoredArrays, metrics: list[str]) -> list[str]:
    """`<pooling>/<layer>/<metric>` of every neighbour list a features store leads to."""
    from ..nets.pooling import feature_keys

    names = feature_keys([layer["name"] for layer in feats.meta["layers"]], feats.meta["poolings"])
    return [f"{name}/{metric}" for name in names for metric in metrics]


def scores_fingerprint(ds: Dataset, nbrs: StoredArrays, k: int) -> str:
    """The neighbours' fingerprint covers the vectors only (a renamed class keeps them), so the
    labels the scores compare are added here."""
    labels = hashlib.sha256(np.asarray(ds.labels, dtype="<i4").tobytes()).hexdigest()
    return fingerprint("scores", SCORES_FORMAT, nbrs.meta["fingerprint"], score_window(len(ds), k),
                       ("labels", labels))


def compute_scores(ids: np.ndarray, labels: np.ndarray, k: int, top: int) -> tuple[np.ndarray, np.ndarray]:
    """(numerators uint8 [N], means float64 [3]) of one neighbour list (k, top: score_window)."""
    q = summarize(ids[:, :k], labels, k, top)
    means = np.array([q.search_score, q.precision_at_k, q.map_at_k], dtype=np.float64)
    return search_score_numerators(ids, labels, top).astype(np.uint8), means


def scores_stage(ds: Dataset, feats: StoredArrays, nbrs: StoredArrays, metrics: list[str], k: int,
                 store: ArrayStore) -> StoredArrays:
    """Score every neighbour list of one (dataset, model), once per fingerprint."""
    fp = scores_fingerprint(ds, nbrs, k)
    model = feats.meta["model"]
    if not store.is_current(ds.id, model, fp):
        k_eff, top = score_window(len(ds), k)
        labels = np.asarray(ds.labels)
        arrays: dict[str, np.ndarray] = {}
        for key in score_keys(feats, metrics):
            numerators, means = compute_scores(nbrs.arrays[f"{key}/ids"], labels, k_eff, top)
            arrays[f"{key}/numerators"], arrays[f"{key}/means"] = numerators, means
        store.write(ds.id, model, {"fingerprint": fp, "k": k_eff, "top": top, "means": list(MEANS)}, arrays)
    return store.load(ds.id, model)


def run(ctx: RunContext) -> None:
    for res, mid in ctx.items():
        res.scores[mid] = scores_stage(res.dataset, res.features[mid], res.neighbors[mid], list(ctx.cfg.metrics),
                                       ctx.cfg.k, ctx.store("scores"))


STAGE = Stage("scores", run, loader("scores", lambda ctx, r, m: scores_fingerprint(
    r.dataset, r.neighbors[m], ctx.cfg.k)), ("datasets", "extract", "neighbors"), ("scores",))
