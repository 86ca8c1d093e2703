"""The run: check the folders, hold the work folder's lock, and loop over the stages in order.

datasets -> extract -> thumbnails -> neighbours -> umap -> scores -> judgements -> featviz -> tfjs -> bundle: one
module per stage in stages/ (stages/base.py: the contract they follow). Each stage reads the previous
stages' stored outputs (work folder) and writes its own with a fingerprint of its inputs, so unchanged
work is skipped and `--only STAGE` runs one stage alone.
"""
from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from .config import RunConfig
from .distribute import make_distributor
from .distribute.base import Distributor
from .io.datasets import load_dataset
from .io.workspace import STAGE_DIRS, clear_stages, dataset_folder, preflight, prepare_work, work_lock
from .stages import bundle, datasets, extract, featviz, judgements, neighbors, scores, tfjs, thumbnails, umap
from .stages.base import STAGE_NAMES, RunContext, Stage, plan
from .stages.outputs import RunReport
from .stages.bundle import OWN_FILES

STAGES = tuple(m.STAGE for m in (datasets, extract, thumbnails, neighbors, umap, scores, judgements, featviz, tfjs,
                                    bundle))
assert tuple(s.name for s in STAGES) == STAGE_NAMES  # stages/base.py holds the names for the CLI


def run(cfg: RunConfig, console: Console | None = None, force: bool = False,
        distributor: Distributor | None = None, only: str | None = None) -> RunReport:
    """Check --out/--work (workspace.py), reach the distributor, hold the work folder's lock, run
    the stages (all, or with `only` that one: stages.plan).

    force: discard the stored outputs first (every stage's, or with `only` that stage's).
    Raises workspace.WorkspaceError (and its StorageError/BusyError) and distribute.base.ClusterError
    before anything is written, StageInputMissing when `only`'s inputs are not stored.
    distributor: made from cfg (and closed) when not given.
    """
    console = console or Console(stderr=True)
    steps = plan(STAGES, only)  # an unknown stage name fails here, before anything else
    work = Path(cfg.work)
    folders = {name: dataset_folder(name) for name in cfg.datasets}
    for name, folder in folders.items():
        if not folder.is_dir():
            load_dataset(name, follow_links=cfg.follow_links)  # its usual error, before any folder is created
    preflight(Path(cfg.out), work, folders.values(), OWN_FILES)
    dist = distributor or make_distributor(cfg)
    try:
        dist.connect()  # an unreachable cluster fails here, with nothing written
        prepare_work(work)
        with work_lock(work):
            if force:  # only the stage folders: the rest of --work is not ours to delete
                clear_stages(work, next(s.folders for s, how in steps if how == "run") if only else STAGE_DIRS)
            ctx = RunContext(cfg, console, dist, RunReport(out=cfg.out, distributor=dist.name), only, force)
            return _run_stages(ctx, steps)
    finally:
        if distributor is None:
            dist.close()


def _run_stages(ctx: RunContext, steps: list[tuple[Stage, str]]) -> RunReport:
    """Each stage in order: run it (timed for the summary table), or under --only read back what
    the chosen stage needs."""
    for stage, how in steps:
        t = time.perf_counter()
        (stage.run if how == "run" else stage.load)(ctx)
        if how == "run" or stage.name == "datasets":
            ctx.report.stage_seconds[stage.name] = time.perf_counter() - t
    if ctx.only and ctx.only != "bundle":
        ctx.report.bundle_status = f"not written (--only {ctx.only})"
    return ctx.report
