"""The run: check the folders, hold the --work and --out locks, and loop over the stages in order.

datasets -> extract -> thumbnails -> neighbours -> umap -> scores -> curate -> judgements -> featviz -> tfjs ->
bundle: one
module per stage in stages/ (stages/base.py: the contract they follow). Each stage reads the previous
stages' stored outputs (work folder) and writes its own with a fingerprint of its inputs, so unchanged
work is skipped and `--only STAGE` runs one stage alone.

A run of several models publishes the bundle after each one (`publish_passes`): the stages run for
the first model, then the first two, … and the bundle (an atomic swap, complete for the models it
lists, `pending_models` naming the rest) is usable minutes into a long run. Each pass only computes
the one new model's work (the others' outputs are current), and the last pass is the whole run, so
its bundle is the one a single pass would write, byte for byte.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from .config import RunConfig
from .distribute import make_distributor
from .distribute.base import Distributor
from .io.datasets import DatasetChanged, load_dataset
from .io.workspace import (STAGE_DIRS, clear_stages, dataset_folder, out_lock, preflight, prepare_work,
                           remove_stale_bundle_temps, work_lock)
from .nets.models import get_spec
from .stages import (bundle, curate, datasets, extract, featviz, judgements, neighbors, scores, tfjs, thumbnails,
                     umap)
from .stages.base import STAGE_NAMES, RunContext, Stage, plan
from .stages.bundle import OWN_FILES, published_models
from .stages.outputs import ExtractResult, RunReport

# Runs over a folder that changes under them before giving up (each retry lists it again).
CHANGE_ATTEMPTS = 3
STAGES = tuple(m.STAGE for m in (datasets, extract, thumbnails, neighbors, umap, scores, curate, judgements, featviz,
                                 tfjs,
                                    bundle))
assert tuple(s.name for s in STAGES) == STAGE_NAMES  # stages/base.py holds the names for the CLI


def run(cfg: RunConfig, console: Console | None = None, force: bool = False,
        distributor: Distributor | None = None, only: str | None = None) -> RunReport:
    """Check --out/--work (workspace.py), reach the distributor, hold both folders' locks, run
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
        with work_lock(work), out_lock(Path(cfg.out)):
            for gone in remove_stale_bundle_temps(Path(cfg.out)):  # a killed bundle write's leftover
                console.print(f"removed {gone}, left behind by an interrupted run", highlight=False,
                              soft_wrap=True)
            if force:  # only the stage folders: the rest of --work is not ours to delete
                clear_stages(work, next(s.folders for s, how in steps if how == "run") if only else STAGE_DIRS)
            return _run_until_settled(cfg, console, dist, steps, only, force)
    finally:
        if distributor is None:
            dist.close()


def _run_until_settled(cfg: RunConfig, console: Console, dist: Distributor, steps: list[tuple[Stage, str]],
                       only: str | None, force: bool) -> RunReport:
    """The stages, from the top again (folders listed anew) when an image changes or vanishes under
    them: finished shards and sheets are kept (keyed by content), so a retry redoes only what the
    change touched. A folder that keeps changing ends the run with DatasetChanged (one line)."""
    for attempt in range(1, CHANGE_ATTEMPTS + 1):
        try:
            return _run_passes(cfg, console, dist, steps, only, force)
        except DatasetChanged as exc:
            if attempt == CHANGE_ATTEMPTS:
                raise
            console.print(f"{exc}; listing the dataset folders again (finished work is kept)",
                          highlight=False, soft_wrap=True)
    raise AssertionError("unreachable")


def _run_passes(cfg: RunConfig, console: Console, dist: Distributor, steps: list[tuple[Stage, str]],
                only: str | None, force: bool) -> RunReport:
    """The early passes (publish_passes: a bundle after each model), then the whole run."""
    report = RunReport(out=cfg.out, distributor=dist.name)
    last = RunContext(cfg, console, dist, report, only, force)
    early: list[ExtractResult] = []
    for part in ([] if only else publish_passes(cfg, fresh=force)):
        pending = tuple((m, get_spec(m).name) for m in cfg.models if m not in part.models)
        ctx = RunContext(part, console, dist, RunReport(out=cfg.out, distributor=dist.name), pending=pending)
        ctx._weights = {m: last.weights[m] for m in part.models}  # resolved (and warned about) once
        _run_stages(ctx, steps, report.stage_seconds)
        early += ctx.report.extract
        console.print(f"bundle published: {len(part.models)} of {len(cfg.models)} models ready in "
                      f"{cfg.out} (the explorer shows them now; a reload shows more)", highlight=False)
    _run_stages(last, steps, report.stage_seconds)
    report.extract = _merge_extract(early, report.extract)
    return report


def publish_passes(cfg: RunConfig, fresh: bool = False) -> list[RunConfig]:
    """The early passes of a run: cfg with its first 1, 2, … n − 1 models (no feature
    visualizations), minus those the bundle in --out already shows (a resumed run goes on where it
    stopped; an up-to-date one has none). fresh (--force): all of them."""
    shown = () if fresh else published_models(cfg.out)
    passes = []
    for i in range(1, len(cfg.models)):
        models = cfg.models[:i]
        if shown[:i] == models:
            continue
        browser = cfg.browser_search and (cfg.browser_model == "auto" or cfg.browser_model in models)
        # Feature visualizations take minutes per model (docs/models.md): the last pass makes them,
        # so they never delay the first explorer.
        passes.append(replace(cfg, models=models, browser_search=browser, featviz_models=()))
    return passes


def _merge_extract(early: list[ExtractResult], final: list[ExtractResult]) -> list[ExtractResult]:
    """The run's extraction results: the pass that computed each (dataset, model), not the last
    pass's "up to date"."""
    done = {(r.dataset, r.model): r for r in early if r.status != "up to date"}
    return [done.get((r.dataset, r.model), r) if r.status == "up to date" else r for r in final]


def _run_stages(ctx: RunContext, steps: list[tuple[Stage, str]], seconds: dict[str, float]) -> RunReport:
    """Each stage in order: run it (timed into `seconds`, added up over passes), or under --only
    read back what the chosen stage needs."""
    for stage, how in steps:
        t = time.perf_counter()
        (stage.run if how == "run" else stage.load)(ctx)
        if how == "run" or stage.name == "datasets":
            seconds[stage.name] = seconds.get(stage.name, 0.0) + time.perf_counter() - t
    if ctx.only and ctx.only != "bundle":
        ctx.report.bundle_status = f"not written (--only {ctx.only})"
    return ctx.report
