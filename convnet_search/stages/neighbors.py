"""Neighbours stage: exact top-k of every (pooling, layer) feature matrix under every metric.

The kernels are search/neighbors.py (math, no I/O); this module decides what to compute (fingerprint,
incremental update after images were added or removed) and stores it: <work>/neighbors/.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from ..config import RunConfig
from ..distribute.base import Distributor
from ..distribute.local import LocalDistributor
from ..io.datasets import Dataset
from ..io.store import ArrayStore, StoredArrays, fingerprint
from ..search.incremental import basis_of, carried_rows, update_neighbors
from .base import Stage, loader
from .extract import feature_matrix_keys, vectors_key
from .progress import Steps, progress

if TYPE_CHECKING:
    from .base import RunContext

NEIGHBORS_FORMAT = 2  # 2: keys "<pooling>/<layer>/<metric>/ids|dists"


def neighbors_fingerprint(ds: Dataset, feats: StoredArrays, cfg: RunConfig) -> str:
    from ..search.neighbors import minkowski_method

    # The vectors, not the dataset's names and labels: a renamed class folder keeps its neighbours.
    return fingerprint("neighbors", NEIGHBORS_FORMAT, vectors_key(feats), cfg.metrics,
                       cfg.minkowski_p, cfg.k, *minkowski_method(len(ds), cfg.metrics))


def neighbors_stage(ds: Dataset, feats: StoredArrays, cfg: RunConfig, store: ArrayStore,
                    say: Callable[[str], None] | None = None,
                    distributor: Distributor | None = None,
                    on_step: Callable[[int, int], None] | None = None) -> StoredArrays:
    """The stored neighbour lists of every matrix of `feats`, computed (or updated) unless current.
    on_step(done, total): matrices done, called from the first one on when anything is computed."""
    from ..search.evaluate import score_window
    from ..search.neighbors import minkowski_method

    distributor = distributor or LocalDistributor()

    fp = neighbors_fingerprint(ds, feats, cfg)
    model = feats.meta["model"]
    if not store.is_current(ds.id, model, fp):
        arrays: dict[str, np.ndarray] = {}
        how: dict[str, dict] = {}  # per matrix: how minkowski was computed (exact / recall measured)
        k = score_window(len(ds), cfg.k)[0]
        params = [list(cfg.metrics), cfg.minkowski_p, k, list(minkowski_method(len(ds), cfg.metrics))]
        old = previous_output(store, ds.id, model, feats, params)
        merged = recomputed = 0
        keys = feature_matrix_keys(feats)
        for done, key in enumerate(keys):
            if on_step:
                on_step(done, len(keys))
            x = feats.arrays[key]
            if old is not None:  # images added or removed: update the stored lists (incremental.py)
                rule = (old[0].meta.get("minkowski") or {}).get(key) or {}
                for metric in cfg.metrics:
                    ids, dists, st = update_neighbors(x, k, metric, old[0].arrays[f"{key}/{metric}/ids"],
                                                      old[0].arrays[f"{key}/{metric}/dists"], old[1], p=cfg.minkowski_p,
                                                      minkowski_candidates=rule.get("candidates"))
                    arrays[f"{key}/{metric}/ids"], arrays[f"{key}/{metric}/dists"] = ids.astype(np.int32), dists
                    merged, recomputed = merged + st.merged, recomputed + st.recomputed
                continue
            # all metrics of one matrix at once: euclidean and sqeuclidean share one top-k
            # (top_k_neighbors_multi; on Ray as row blocks, merged into the same arrays)
            report: dict = {}
            results = distributor.neighbors(x, k, cfg.metrics, cfg.minkowski_p, report=report)
            how.update({key: report["minkowski"]} if "minkowski" in report else {})
            for metric, (ids, dists) in results.items():
                arrays[f"{key}/{metric}/ids"] = ids.astype(np.int32)
                arrays[f"{key}/{metric}/dists"] = dists.astype(np.float32)
        if on_step:
            on_step(len(keys), len(keys))
        update = {"rows_merged": merged, "rows_searched": recomputed} if old is not None else None
        if update and say:
            say(f"{ds.id} · {model}: neighbours updated, not recomputed: {merged} rows merged with the "
                f"new images, {recomputed} searched again (all configurations)")
        if old is not None:  # the recall measured on the full run still describes the candidate rule
            how = old[0].meta.get("minkowski") or {}
        store.write(ds.id, model, {"fingerprint": fp, "params": params, "basis": basis_of(feats.meta),
                                   "update": update, "minkowski": how}, arrays)
    return store.load(ds.id, model)


def previous_output(store: ArrayStore, dataset: str, model: str, feats: StoredArrays, params: list):
    """(stored output, old row → new row) when a stored output of an earlier extraction can be
    updated instead of recomputed (same parameters, rows related by shards), else None."""
    meta = store.read_meta(dataset, model)
    if not meta or meta.get("params") != params:
        return None
    rows = carried_rows(meta.get("basis"), feats.meta)
    if rows is None or not np.any(rows >= 0):
        return None
    return store.load(dataset, model), rows


def run(ctx: RunContext) -> None:
    with progress(ctx.console, unit="matrices") as bar:
        for res, mid in ctx.items():
            steps = Steps(bar, f"neighbours {res.dataset.id} · {mid}")
            res.neighbors[mid] = neighbors_stage(res.dataset, res.features[mid], ctx.cfg, ctx.store("neighbors"),
                                                 ctx.console.print, ctx.dist, steps)


STAGE = Stage("neighbors", run, loader("neighbors", lambda ctx, r, m: neighbors_fingerprint(
    r.dataset, r.features[m], ctx.cfg)), ("datasets", "extract"), ("neighbors",))
