"""Progress of the long stages, with a speed and an ETA: rich bars on a terminal, plain lines in logs.

A terminal gets live rich bars. Anything else (a file, a pipe, CI, `docker logs`) gets one plain
line per task every `PLAIN_EVERY_S` seconds and when it ends: rich's columns there would be
redrawn into a file and cut to 80 characters. The plain reporter has the small part of rich's
`Progress` interface the stages use (add_task, update, advance, reset), so a stage does not care
which one it has.
"""
from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

PLAIN_EVERY_S = 10.0  # a log line per task at most this often (and one at the end)


class _SpeedColumn(TextColumn):
    def __init__(self, unit: str) -> None:
        super().__init__("")
        self.unit = unit

    def render(self, task):  # units/s of the current task
        speed = task.finished_speed or task.speed
        return f"{speed:6.1f} {self.unit}/s" if speed else f"       {self.unit}/s"


def progress(console: Console, unit: str = "img", every: float = PLAIN_EVERY_S) -> "Progress | PlainProgress":
    """Bars on a terminal, plain lines (`PlainProgress`) elsewhere; use as a context manager."""
    if console.is_terminal:
        return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TaskProgressColumn(), _SpeedColumn(unit), TimeElapsedColumn(), TextColumn("ETA"),
                        TimeRemainingColumn(), console=console, transient=False)
    return PlainProgress(console, unit, every)


@dataclass
class _Task:
    description: str
    total: float
    completed: float = 0.0
    started: float = field(default_factory=time.monotonic)
    base: float = 0.0  # completed when the clock (re)started: a resumed task's speed counts only new work
    printed: float = 0.0  # monotonic time of the last line (0: none yet)
    ended: bool = False


class PlainProgress:
    """rich.Progress's interface, printed as whole lines (never cut, never redrawn)."""

    def __init__(self, console: Console, unit: str = "img", every: float = PLAIN_EVERY_S) -> None:
        self.console, self.unit, self.every = console, unit, every
        self.tasks: dict[int, _Task] = {}

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            for task_id in self.tasks:
                self._say(task_id, force=True)

    def add_task(self, description: str, total: float | None = None, **_) -> int:
        task_id = len(self.tasks)
        self.tasks[task_id] = _Task(description, float(total or 0))
        return task_id

    def reset(self, task_id: int, total: float | None = None, completed: float = 0, **_) -> None:
        t = self.tasks[task_id]
        t.total = t.total if total is None else float(total)
        t.completed = t.base = float(completed)
        t.started, t.ended = time.monotonic(), False

    def update(self, task_id: int, completed: float | None = None, total: float | None = None,
               description: str | None = None, advance: float | None = None, **_) -> None:
        t = self.tasks[task_id]
        if total is not None:
            t.total = float(total)
        if description is not None:
            t.description = description
        if completed is not None:
            t.completed = float(completed)
        if advance:
            t.completed += advance
        # The "done" line waits for the stage's own final update (it adds the status, e.g.
        # "(extracted)"), or for the end of the block; advancing to the total does not print it.
        self._say(task_id, final=completed is not None or description is not None)

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def _say(self, task_id: int, force: bool = False, final: bool = True) -> None:
        t, now = self.tasks[task_id], time.monotonic()
        done = t.total > 0 and t.completed >= t.total
        if done and not (final or force):
            return
        if t.ended or not (force or done or now - t.printed >= self.every):
            return
        t.printed, t.ended = now, done
        self.console.print(escape(plain_line(t, self.unit, now)), soft_wrap=True, highlight=False)


def plain_line(t: _Task, unit: str, now: float) -> str:
    """"digits · MobileNet: 512/1797 (28%), 41.3 img/s, 0:00:12 elapsed, ETA 0:00:31"."""
    name = Text.from_markup(t.description).plain
    elapsed = now - t.started
    speed = (t.completed - t.base) / elapsed if elapsed > 0 else 0.0
    pct = f" ({100 * t.completed / t.total:.0f}%)" if t.total else ""
    line = f"{name}: {t.completed:.0f}/{t.total:.0f} {unit}{pct}, {_clock(elapsed)} elapsed"
    if speed > 0:
        line += f", {speed:.1f} {unit}/s"
        if t.completed < t.total:
            line += f", ETA {_clock((t.total - t.completed) / speed)}"
    return line if t.completed < t.total else line + ", done"


def _clock(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(seconds)))


class Steps:
    """`on_step(done, total)` for one work item of a stage: the task appears at the first call, so
    an item that is up to date (never calls it) prints nothing."""

    def __init__(self, bar: "Progress | PlainProgress", description: str) -> None:
        self.bar, self.description, self.task = bar, description, None

    def __call__(self, done: int, total: int) -> None:
        if self.task is None:
            self.task = self.bar.add_task(self.description, total=total)
        self.bar.update(self.task, completed=done, total=total)
