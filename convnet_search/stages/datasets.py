"""Datasets stage: list every dataset folder (io/datasets.py) and fingerprint it; runs in every run,
--only or not, since every other stage's fingerprint starts from it."""
from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console

from ..io.datasets import Dataset, DatasetError, dataset_fingerprint, load_dataset
from ..search.evaluate import SCORE_TOP, score_window
from .base import Stage
from .outputs import DatasetResults

if TYPE_CHECKING:
    from .base import RunContext

def _note_small_dataset(ds: Dataset, k: int, console: Console) -> None:
    """A folder of n ≥ 2 images runs with k and the score window shrunk to n − 1 (one line says so)."""
    if len(ds) < 2:
        raise DatasetError(f"dataset {ds.id!r} ({ds.root}) has {len(ds)} usable image; "
                           "searching needs at least 2")
    k_eff, top = score_window(len(ds), k)
    if k_eff < k or top < min(SCORE_TOP, k):
        console.print(f"note: dataset {ds.id!r} has {len(ds)} usable images: each query has "
                      f"{k_eff} results (k={k} requested) and the search score uses the top {top}.")


def run(ctx: RunContext) -> None:
    cfg = ctx.cfg
    # <work>/scan-cache: unchanged images are neither decoded nor hashed again (datasets._ScanCache)
    datasets = [load_dataset(name, follow_links=cfg.follow_links, cache_dir=ctx.work / "scan-cache",
                             labels=cfg.labels) for name in cfg.datasets]
    ids = [d.id for d in datasets]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise ValueError(f"two datasets share the id(s) {', '.join(sorted(dupes))}; rename a folder")
    for ds in datasets:
        _note_small_dataset(ds, cfg.k, ctx.console)
        if ds.labels_note:  # which labels mode `auto` chose, or what a labels file gave
            ctx.console.print(f"note: dataset {ds.id!r}: {ds.labels_note}", markup=False)
    ctx.ds_fps = {d.id: dataset_fingerprint(d) for d in datasets}
    ctx.results = [DatasetResults(d, {}, {}, {}) for d in datasets]
    ctx.report.datasets = datasets


STAGE = Stage("datasets", run, run, (), ("scan-cache",))
