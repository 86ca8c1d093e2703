"""Scores stage: search quality of every stored neighbour list, per label field of the dataset.

Per (dataset, model), per label field (io/labels.py: the class folders' "class", or a labels
file's columns; none for an unlabelled dataset) and per `<pooling>/<layer>/<metric>`:
  `<field>/<key>/numerators`  uint8 [N]: each query's search-score numerator (evaluate.py), 255
                              for a query with no value in the field; the bundle's score blocks;
  `<field>/<key>/means`       float64 [3]: mean search score, precision@k and mAP@k over the
                              queries with a value, the bundle's summary files (MEANS names them).
meta["queries"][field] = [scored, skipped] query counts.
Stored in <work>/scores/<dataset>/<model>.h5 with a fingerprint of the neighbours it scored and
the score window; the bundle stage only serializes it. The math is evaluate.py's.
"""
from __future__ import annotations


from typing import TYPE_CHECKING

import numpy as np

from ..io.datasets import Dataset
from ..io.labels import labels_fingerprint
from ..search.evaluate import field_scores, score_window
from ..io.store import ArrayStore, StoredArrays, fingerprint
from .base import Stage, loader

if TYPE_CHECKING:
    from .base import RunContext

SCORES_FORMAT = 2  # 2: per label field; the bundle fingerprint takes it in from format 2 on (pipeline.bundle_fingerprint)
MEANS = ("search_score", "precision_at_k", "map_at_k")


def score_keys(feats: StoredArrays, metrics: list[str]) -> list[str]:
    """`<pooling>/<layer>/<metric>` of every neighbour list a features store leads to."""
    from ..nets.pooling import feature_keys

    names = feature_keys([layer["name"] for layer in feats.meta["layers"]], feats.meta["poolings"])
    return [f"{name}/{metric}" for name in names for metric in metrics]


def scores_fingerprint(ds: Dataset, nbrs: StoredArrays, k: int) -> str:
    """The neighbours' fingerprint covers the features and the images; the label fields (which
    the features do not depend on) are added here."""
    return fingerprint("scores", SCORES_FORMAT, nbrs.meta["fingerprint"], score_window(len(ds), k),
                       labels_fingerprint(ds.labels_mode, ds.fields))


def scores_stage(ds: Dataset, feats: StoredArrays, nbrs: StoredArrays, metrics: list[str], k: int,
                 store: ArrayStore) -> StoredArrays:
    """Score every neighbour list of one (dataset, model), once per fingerprint."""
    fp = scores_fingerprint(ds, nbrs, k)
    model = feats.meta["model"]
    if not store.is_current(ds.id, model, fp):
        k_eff, top = score_window(len(ds), k)
        arrays: dict[str, np.ndarray] = {}
        queries: dict[str, list[int]] = {}
        for fld in ds.fields:
            for key in score_keys(feats, metrics):
                fs = field_scores(nbrs.arrays[f"{key}/ids"], fld.codes, k_eff, top)
                arrays[f"{fld.id}/{key}/numerators"], arrays[f"{fld.id}/{key}/means"] = fs.numerators, fs.means
                queries[fld.id] = [fs.scored, fs.skipped]
        store.write(ds.id, model, {"fingerprint": fp, "k": k_eff, "top": top, "means": list(MEANS),
                                   "fields": [f.id for f in ds.fields], "queries": queries}, arrays)
    return store.load(ds.id, model)


def run(ctx: RunContext) -> None:
    for res, mid in ctx.items():
        res.scores[mid] = scores_stage(res.dataset, res.features[mid], res.neighbors[mid], list(ctx.cfg.metrics),
                                       ctx.cfg.k, ctx.store("scores"))


STAGE = Stage("scores", run, loader("scores", lambda ctx, r, m: scores_fingerprint(
    r.dataset, r.neighbors[m], ctx.cfg.k)), ("datasets", "extract", "neighbors"), ("scores",))
