"""Progress on the terminal: rich bars with images/s and an ETA."""
from __future__ import annotations

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

class _SpeedColumn(TextColumn):
    def __init__(self) -> None:
        super().__init__("")

    def render(self, task):  # images/s of the current task
        speed = task.finished_speed or task.speed
        return f"{speed:6.1f} img/s" if speed else "       img/s"


def progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TaskProgressColumn(), _SpeedColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                    TimeRemainingColumn(), console=console, transient=False)
