"""The stage contract: what every step of a run is, and the order they run in.

A stage brings its stored output (work folder) up to date for each of its work items (a dataset,
a dataset × model, a model): fingerprint of the inputs → is the stored output current? → if not,
compute → write atomically. `pipeline.run` is a loop over the stages in STAGE_NAMES order; with
`--only STAGE` it runs that one and only reads back what it needs from the stages before it.

Kept free of heavy imports: the CLI reads STAGE_NAMES to validate `--only` before loading numpy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from ..pipeline import RunContext

# Run order. "datasets" (list the folders, fingerprint them) runs in every run, --only or not:
# every other stage's fingerprint starts from it.
STAGE_NAMES = ("datasets", "extract", "thumbnails", "neighbors", "umap", "scores", "featviz", "tfjs",
               "bundle")


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
