"""stages/progress.py, issue 19 rows 7 and 15 and issue 21 item 5: every long stage shows progress
with an ETA (neighbours and UMAP printed nothing for 9 minutes on 10,000 images), and logs (no
terminal) get whole plain lines instead of rich columns cut to 80 characters."""
from __future__ import annotations

import io
import re

from rich.console import Console

from test_safety import FAST, data, main  # noqa: F401 (fixtures)


def _log_console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=80), buf  # a file: what `2> run.log` gives


def test_plain_lines_in_logs_with_speed_and_eta_never_cut():
    from convnet_search.stages.progress import PlainProgress, Steps, progress

    console, buf = _log_console()
    bar = progress(console, unit="matrices", every=0)
    assert isinstance(bar, PlainProgress)
    name = "neighbours a-dataset-with-a-rather-long-name-from-a-real-photo-archive · mobilenet_025"
    with bar:
        steps = Steps(bar, name)
        for done in range(4):
            steps(done, 3)
        Steps(bar, "never called")  # an item that was up to date prints nothing
    lines = buf.getvalue().splitlines()
    assert all(line.startswith(name + ": ") for line in lines), lines  # whole, not cut at 80
    assert lines[0].startswith(name + ": 0/3 matrices (0%)")
    assert re.search(r": 1/3 matrices \(33%\), 0:00:\d\d elapsed, [\d.]+ matrices/s, ETA 0:\d\d:\d\d$", lines[1])
    assert lines[-1].endswith(", done") and "3/3 matrices (100%)" in lines[-1]
    assert sum(line.endswith("done") for line in lines) == 1


def test_a_terminal_still_gets_rich_bars():
    from rich.progress import Progress

    from convnet_search.stages.progress import progress

    assert isinstance(progress(Console(file=io.StringIO(), force_terminal=True)), Progress)


def test_every_long_stage_reports_progress_in_a_log(tmp_path, data, main):
    code, err = main("--dataset", str(data), "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o"))
    assert code == 0, err
    for stage, unit in (("extract", "img"), ("thumbnails", "img"), ("neighbours", "matrices"),
                        ("umap", "maps")):
        done = [line for line in err.splitlines() if line.startswith(f"{stage} photos") and line.endswith("done")]
        assert len(done) == 1 and f" {unit} (100%)" in done[0], (stage, err[-3000:])


def test_the_done_line_carries_the_status_the_stage_adds_at_the_end():
    """extract advances to the total, then sets "(extracted)": one done line, with the status."""
    from convnet_search.stages.progress import progress

    console, buf = _log_console()
    with progress(console, every=0) as bar:
        task = bar.add_task("extract photos · MobileNet", total=4)
        bar.advance(task, 2)
        bar.advance(task, 2)
        bar.update(task, completed=4, description="extract photos · MobileNet [dim](extracted)[/]")
    done = [line for line in buf.getvalue().splitlines() if line.endswith("done")]
    assert len(done) == 1 and done[0].startswith("extract photos · MobileNet (extracted): 4/4 img (100%)")
