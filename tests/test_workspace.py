"""io/workspace.py, issue 19 rows 1 and 6: the --out lock (two runs with one --out and different
--work used to both "succeed", the last writer silently winning) and the temporary bundle folders a
killed run leaves beside --out (removed by the next run, only when marked as ours)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from test_safety import FAST, data, main, one_line  # noqa: F401 (fixtures)


def test_out_lock_is_exclusive_and_names_the_folder(tmp_path):
    from convnet_search.io.workspace import BusyError, out_lock, out_lock_path

    out = tmp_path / "site" / "bundle"
    with out_lock(out):
        assert out_lock_path(out) == tmp_path / "site" / ".bundle.convnet-search.lock"
        with pytest.raises(BusyError, match=rf"--out {out} is in use .*pid {os.getpid()} on .*another --out"):
            with out_lock(out):
                pass
    with out_lock(out):  # released on exit
        pass


def test_second_run_on_a_busy_out_fails_at_once_even_with_another_work(tmp_path, data, main):
    """The reproduction: `P --work wA --out shared & P --work wB --out shared`. A run holding the
    --out lock (here this process) makes the second fail before any compute, exit 5."""
    from convnet_search.io.workspace import out_lock

    out = tmp_path / "shared"
    with out_lock(out):
        code, err = main("--dataset", str(data), "--work", str(tmp_path / "wB"), "--out", str(out))
    assert code == 5, err
    assert f"pid {os.getpid()}" in one_line(err, f"--out {out} is in use by another convnet-search run")
    assert not out.exists()


def _marked_temp(parent: Path, name: str) -> Path:
    from convnet_search.io.workspace import BUNDLE_MARKER, marker_payload

    d = parent / name
    (d / "ds").mkdir(parents=True)
    (d / "ds" / "x.bin").write_bytes(b"x" * 1000)
    (d / BUNDLE_MARKER).write_text(json.dumps(marker_payload("bundle")))
    return d


def test_stale_bundle_temps_are_only_our_marked_ones(tmp_path):
    from convnet_search.io.workspace import remove_stale_bundle_temps, stale_bundle_temps

    out = tmp_path / "data"
    ours = _marked_temp(tmp_path, ".data.k2j4_x.tmp")
    old = _marked_temp(tmp_path, ".data.old")
    empty = tmp_path / ".data.abc.tmp"
    empty.mkdir()
    foreign = tmp_path / ".data.zz.tmp"  # same name pattern, no marker: not ours, stays
    foreign.mkdir()
    (foreign / "mine.txt").write_text("user file")
    other = _marked_temp(tmp_path, ".database.q.tmp")  # another folder's temp: not --out's
    (tmp_path / ".data.convnet-search.lock").write_text("")
    assert stale_bundle_temps(out) == sorted([ours, old, empty])
    assert remove_stale_bundle_temps(out) == sorted([ours, old, empty])
    assert not ours.exists() and not old.exists() and not empty.exists()
    assert (foreign / "mine.txt").read_text() == "user file" and other.exists()


def test_bundle_temp_folder_carries_the_marker_from_its_first_file(tmp_path, monkeypatch):
    """So a kill -9 at any point of the bundle write leaves a folder the next run recognises."""
    from convnet_search.io.workspace import BUNDLE_MARKER, stale_bundle_temps
    from convnet_search.stages import bundle

    seen = []

    def boom(root, inp, res):
        seen.append(sorted(p.name for p in root.iterdir()))
        assert stale_bundle_temps(tmp_path / "out") == [root]
        raise RuntimeError("killed here")

    monkeypatch.setattr(bundle, "_write_dataset", boom)
    monkeypatch.setattr(bundle, "build_manifest", lambda inp: {})

    class Inp:
        browser = None
        results = [object()]
    with pytest.raises(RuntimeError, match="killed here"):
        bundle.write_bundle(tmp_path / "out", Inp(), "fp")
    assert seen == [[BUNDLE_MARKER]]


def test_a_run_removes_the_temp_folder_a_killed_bundle_write_left(tmp_path, data, main):
    out = tmp_path / "web" / "data"
    out.parent.mkdir()
    stale = _marked_temp(out.parent, ".data.abcd1234.tmp")
    code, err = main("--dataset", str(data), "--work", str(tmp_path / "w"), "--out", str(out))
    assert code == 0, err
    assert not stale.exists() and "left behind by an interrupted run" in err
    assert sorted(p.name for p in out.parent.iterdir()) == [".data.convnet-search.lock", "data"]
