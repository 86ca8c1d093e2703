"""UMAP stage: a reproducible 2-D map of every (pooling, layer) feature matrix: <work>/umap/.

The layout itself is search/projection.py; this module reuses the neighbours stage's graph when it
fits, places a few new images on an existing map instead of laying it out again, and stores the maps.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from ..config import RunConfig
from ..io.datasets import Dataset
from ..io.store import ArrayStore, StoredArrays, fingerprint
from ..search.incremental import MAX_PLACED_FRACTION, basis_of, place_new_points
from .base import Stage, loader
from .extract import feature_matrix_keys, vectors_key
from .neighbors import previous_output
from .progress import Steps, progress

if TYPE_CHECKING:
    from .base import RunContext

UMAP_FORMAT = 2  # 2: keys "<pooling>/<layer>"


def shared_graph_metrics(cfg: RunConfig) -> list[str]:
    """The neighbours stage's metrics whose graphs UMAP reuses (empty: UMAP builds its own kNN).

    Reuse needs UMAP's metric among the stored ones and k ≥ n_neighbors − 1 (umap-learn counts the
    point itself as its first neighbour; the stage stores min(k, N − 1), which is then enough for
    min(n_neighbors, N − 1) too). Euclidean comes along for layers where cosine falls back to it
    (zero vectors, projection.umap_2d)."""
    from ..search.projection import SHARED_METRICS

    if SHARED_METRICS.get(cfg.umap.metric) not in cfg.metrics or cfg.k < cfg.umap.n_neighbors - 1:
        return []
    return [m for m in ("cosine", "euclidean") if m in cfg.metrics]


def umap_fingerprint(feats: StoredArrays, cfg: RunConfig, nbrs: StoredArrays | None) -> str:
    shared = shared_graph_metrics(cfg) if nbrs is not None else []
    # The map depends on the stored graph when it reuses one: the neighbours fingerprint says which.
    # The vectors, not the dataset's names and labels: a renamed class folder keeps its maps.
    return fingerprint("umap", UMAP_FORMAT, vectors_key(feats), cfg.umap.__dict__, cfg.seed,
                       *([nbrs.meta["fingerprint"], shared] if shared else []))


def umap_stage(ds: Dataset, feats: StoredArrays, cfg: RunConfig, store: ArrayStore,
               nbrs: StoredArrays | None = None, say: Callable[[str], None] | None = None,
               on_step: Callable[[int, int], None] | None = None) -> StoredArrays:
    """One map per feature matrix; reuses the neighbours stage's graph (nbrs) when it fits.
    on_step(done, total): maps done, called from the first one on when anything is computed."""
    from ..search.projection import umap_2d

    shared = shared_graph_metrics(cfg) if nbrs is not None else []
    fp = umap_fingerprint(feats, cfg, nbrs)
    model = feats.meta["model"]
    if not store.is_current(ds.id, model, fp):
        arrays = {}
        params = [cfg.umap.__dict__, cfg.seed, shared]
        old = previous_output(store, ds.id, model, feats, params) if nbrs is not None else None
        placed_before = (old[0].meta.get("placed") or 0) if old is not None else 0
        fresh = len(ds) - int(np.sum(old[1] >= 0)) if old is not None else 0
        if old is not None and placed_before + fresh > MAX_PLACED_FRACTION * len(ds):
            old = None  # too many points placed by neighbours: lay the map out again
        keys = feature_matrix_keys(feats)
        for done, key in enumerate(keys):
            if on_step:
                on_step(done, len(keys))
            if old is not None:  # a few images added: place them among their neighbours
                graph = nbrs.arrays[f"{key}/{_placement_metric(cfg)}/ids"]
                arrays[key] = place_new_points(old[0].arrays[key], old[1], graph, cfg.seed)[0]
                continue
            graphs = {m: (nbrs.arrays[f"{key}/{m}/ids"], nbrs.arrays[f"{key}/{m}/dists"]) for m in shared}
            arrays[key] = umap_2d(feats.arrays[key], cfg.umap, cfg.seed, graphs)
        if on_step:
            on_step(len(keys), len(keys))
        if old is not None and say:
            say(f"{ds.id} · {model}: {fresh} new images placed on the existing maps by their neighbours "
                f"({placed_before + fresh} so far; the maps are laid out again past "
                f"{MAX_PLACED_FRACTION:.0%} of the images or with --force)")
        store.write(ds.id, model, {"fingerprint": fp, "params": params, "basis": basis_of(feats.meta),
                                   "placed": placed_before + fresh if old is not None else 0}, arrays)
    return store.load(ds.id, model)


def _placement_metric(cfg: RunConfig) -> str:
    """The stored neighbours that place new points on an existing map: UMAP's metric if stored."""
    from ..search.projection import SHARED_METRICS

    m = SHARED_METRICS.get(cfg.umap.metric)
    return m if m in cfg.metrics else cfg.metrics[0]


def run(ctx: RunContext) -> None:
    with progress(ctx.console, unit="maps") as bar:
        for res, mid in ctx.items():
            res.umap[mid] = umap_stage(res.dataset, res.features[mid], ctx.cfg, ctx.store("umap"),
                                       res.neighbors[mid], ctx.console.print,
                                       Steps(bar, f"umap {res.dataset.id} · {mid}"))


STAGE = Stage("umap", run, loader("umap", lambda ctx, r, m: umap_fingerprint(
    r.features[m], ctx.cfg, r.neighbors[m])), ("datasets", "extract", "neighbors"), ("umap",))
