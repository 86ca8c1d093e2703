"""The stage contract: what every step of a run is, the order they run in, what they share.

Each stage module (stages/<name>.py) defines its STAGE. A stage brings its stored output (work
folder) up to date for each of its work items (a dataset, a dataset × model, a model): fingerprint
of the inputs → is the stored output current? → if not, compute → write atomically.
`pipeline.run` is a loop over the stages in STAGE_NAMES order; with `--only STAGE` it runs that
one and only reads back what it needs from the stages before it.

Kept free of heavy imports: the CLI reads STAGE_NAMES to validate `--only` before loading numpy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # types only: the stage modules import this one, and the CLI imports it before numpy
    from rich.console import Console

    from ..config import RunConfig
    from ..distribute.base import Distributor
    from ..io.store import ArrayStore
    from ..nets.weights import ResolvedWeights
    from .outputs import BrowserSearch, DatasetResults, FeatvizResult, RunReport

# Run order. "datasets" (list the folders, fingerprint them) runs in every run, --only or not:
# every other stage's fingerprint starts from it.
STAGE_NAMES = ("datasets", "extract", "thumbnails", "neighbors", "umap", "scores", "curate", "judgements",
               "featviz", "tfjs", "bundle")


class StageInputMissing(ValueError):
    """--only STAGE: a stage it reads from has no current stored output (a usage error, exit 2)."""

    def __init__(self, stage: str, needed: str, what: str):
        super().__init__(f"--only {stage}: the {needed} stage's output for {what} is missing or out of "
                         f"date in the work folder; run `--only {needed}` (or a run without --only) first")
        self.stage, self.needed = stage, needed


@dataclass(frozen=True)
class Stage:
    """One step of a run.

    run:  for each work item, fingerprint → is-current → compute → write atomically (a stopped run
          resumes), then record the stored output in the RunContext and say what it did.
    load: the same fingerprint and is-current check without computing: record the stored output,
          or raise StageInputMissing(ctx.only, name, item) (a later stage runs alone with --only).
    needs: the stages whose outputs `run` reads (loaded first under --only).
    folders: its folders in the work folder (what `--force --only NAME` deletes).
    """
    name: str
    run: Callable[["RunContext"], None]
    load: Callable[["RunContext"], None]
    needs: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()


def plan(stages: tuple[Stage, ...], only: str | None) -> list[tuple[Stage, str]]:
    """[(stage, "run" | "load")] in run order: every stage runs, or with `only` that stage runs
    and the stages it needs (transitively) are loaded; the others are not touched."""
    if only is None:
        return [(s, "run") for s in stages]
    by_name = {s.name: s for s in stages}
    if only not in by_name:
        raise ValueError(f"unknown stage {only!r}; stages: {', '.join(by_name)}")
    needed, todo = set(), list(by_name[only].needs)
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo += by_name[name].needs
    return [(s, "run" if s.name == only else "load") for s in stages if s.name == only or s.name in needed]


@dataclass
class RunContext:
    """What the stages of one run share: the config, where they write, and each stage's outputs as
    they are computed (or, under --only, read back from the work folder)."""
    cfg: RunConfig
    console: Console
    dist: Distributor
    report: RunReport
    only: str | None = None
    force: bool = False
    results: list[DatasetResults] = field(default_factory=list)  # per dataset, filled stage by stage
    ds_fps: dict[str, str] = field(default_factory=dict)
    featviz: dict[str, FeatvizResult] = field(default_factory=dict)  # model -> its visualizations
    browser: BrowserSearch | None = None
    # (id, name) of the run's models not in cfg.models yet: a pass publishing the bundle early
    pending: tuple[tuple[str, str], ...] = ()
    _weights: dict[str, ResolvedWeights] | None = None

    @property
    def work(self) -> Path:
        return Path(self.cfg.work)

    def store(self, folder: str) -> ArrayStore:
        from ..io.store import ArrayStore

        return ArrayStore(self.work / folder)

    @property
    def weights(self) -> dict[str, ResolvedWeights]:
        """Resolved once per model, before the first fingerprint that needs them: a missing
        --weights imagenet file fails before hours of work; "auto" warns here if it falls back."""
        if self._weights is None:
            from ..nets.models import get_spec
            from ..nets.weights import resolve_weights

            cfg = self.cfg
            self._weights = {m: resolve_weights(get_spec(m), cfg.weights, cfg.seed, cfg.weights_cache)
                             for m in cfg.models}
        return self._weights

    def items(self) -> list[tuple[DatasetResults, str]]:
        """The (dataset, model) work items of the per-model stages, in run order."""
        return [(r, m) for r in self.results for m in self.cfg.models]

    def missing(self, stage: str, what: str) -> StageInputMissing:
        return StageInputMissing(self.only or "?", stage, what)


def loader(stage: str, fp: Callable[[RunContext, DatasetResults, str], str]):
    """`load` of a stage storing one ArrayStore file per (dataset, model): fp gives the fingerprint
    its `run` would compute (from the outputs loaded before it). Folder and DatasetResults field:
    the stage name."""
    def load(ctx: RunContext) -> None:
        store = ctx.store(stage)
        for res, mid in ctx.items():
            if not store.is_current(res.dataset.id, mid, fp(ctx, res, mid)):
                raise ctx.missing(stage, f"{res.dataset.id} · {mid}")
            getattr(res, stage)[mid] = store.load(res.dataset.id, mid)
    return load
