"""Issue 12, engine part: the engine deletes only what it created (markers in --work/--out, --force
clears only its stage folders), --out/--work never overlap a dataset or each other, a lock keeps two
runs out of one work folder, and read-only / full-disk / Ctrl-C end with one line, not a traceback.

One test (or group) per reproduction of the issue: 1 (--force), 2 (--out replacement),
3 (concurrent runs), 5 (tracebacks). Items 4, 6, 7 and 8 belong to other modules' tests.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import pytest

from test_cli import CLI, ROOT, add_plain_images, run_cli

FAST = ("--models", "mobilenet_025", "--weights", "none", "--no-browser-search",
        "--num-layers", "2")


@pytest.fixture
def data(tmp_path) -> Path:
    root = tmp_path / "photos"
    add_plain_images(root, 6, ["a", "b", "c"])
    return root


@pytest.fixture
def main(capsys, monkeypatch):
    """`convnet-search precompute ...` in this process: (exit code, stderr). Refusals happen before
    TensorFlow is imported, so this takes milliseconds where a subprocess takes seconds."""
    from convnet_search import cli

    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main() replaces it

    def call(*args: str | Path) -> tuple[int, str]:
        code = cli.main(["precompute", *FAST, *map(str, args)])
        return code, capsys.readouterr().err
    return call


def snapshot(folder: Path) -> dict[str, bytes | None]:
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def one_line(stderr: str, needle: str) -> str:
    """The single stderr line containing `needle`; no traceback anywhere."""
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if needle in line]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


# ---------------------------------------------------------------------------------------------
# 1. --force deleted whatever --work pointed at
# ---------------------------------------------------------------------------------------------

def test_force_never_deletes_files_it_did_not_create(tmp_path, data, main):
    user = tmp_path / "U"
    (user / "docs").mkdir(parents=True)
    (user / "thesis.tex").write_text("x")
    before = snapshot(user)
    code, err = main("--dataset", data, "--out", tmp_path / "O", "--work", user, "--force")
    assert code == 2 and "--work" in one_line(err, "refusing") and str(user) in err
    assert snapshot(user) == before  # not even a marker or lock file was added

    images = snapshot(data)
    code, err = main("--dataset", data, "--out", tmp_path / "O", "--work", data, "--force")
    assert code == 2 and "dataset folder" in one_line(err, "--work")
    code, err = main("--dataset", data, "--out", tmp_path / "O", "--work", data / "a" / "cache",
                     "--force")
    assert code == 2 and "is inside the dataset folder" in err
    assert snapshot(data) == images and not (tmp_path / "O").exists()

    # A work folder of ours: --force clears the stage folders and nothing else in it.
    from convnet_search.io.workspace import STAGE_DIRS, WORK_MARKER, clear_stages, prepare_work

    work = tmp_path / "W"
    prepare_work(work)
    for name in STAGE_DIRS:
        (work / name / "d").mkdir(parents=True)
        (work / name / "d" / "m.h5").write_bytes(b"old")
    (work / "mine.txt").write_text("keep")
    clear_stages(work)
    assert sorted(p.name for p in work.iterdir()) == sorted([WORK_MARKER, "mine.txt"])


def test_old_work_folder_without_marker_is_adopted_only_if_all_ours(tmp_path):
    from convnet_search.io.workspace import (WORK_MARKER, WorkspaceError, check_work_target,
                                          prepare_work)

    work = tmp_path / "old"
    for rel in ("features/d/m.h5", "features/d/m.parts-0a1b/shard-00000.npz", "neighbors/d/m.h5",
                "umap/d/.m.h5.x1y2.tmp", "tfjs/mobilenet-00ff.json",
                "tfjs/mobilenet-00ff/model.json"):
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_bytes(b"")
    prepare_work(work)  # only stage outputs: adopted
    assert json.loads((work / WORK_MARKER).read_text())["kind"] == "work"
    (work / WORK_MARKER).unlink()
    (work / "features" / "d" / "holiday.jpg").write_bytes(b"")
    with pytest.raises(WorkspaceError, match="holiday.jpg"):
        check_work_target(work)


# ---------------------------------------------------------------------------------------------
# 2. anything inside --out was deleted once a manifest.json was there
# ---------------------------------------------------------------------------------------------

def test_out_is_replaced_only_when_it_is_a_bundle_of_ours(tmp_path, data, main):
    p = tmp_path / "P"
    p.mkdir()
    (p / "manifest.json").write_text("{}")
    (p / "notes.txt").write_text("hi")
    code, err = main("--dataset", data, "--out", p, "--work", tmp_path / "W")
    assert code == 2 and "refusing to replace" in one_line(err, "--out")
    assert (p / "notes.txt").read_text() == "hi" and not (tmp_path / "W").exists()

    # The dataset stored inside the bundle folder (the default --out is frontend/public/data).
    b = tmp_path / "B"
    photos = b / "myphotos"
    add_plain_images(photos, 6, ["a", "b", "c"])
    before = snapshot(b)
    code, err = main("--dataset", photos, "--out", b, "--work", tmp_path / "W")
    assert code == 2 and "contains the dataset folder" in one_line(err, "--out")
    # The same through a symlink: paths are compared resolved.
    (tmp_path / "link").symlink_to(photos, target_is_directory=True)
    code, err = main("--dataset", tmp_path / "link", "--out", b, "--work", tmp_path / "W")
    assert code == 2 and "contains the dataset folder" in err
    code, err = main("--dataset", data, "--out", tmp_path / "W" / "out", "--work", tmp_path / "W")
    assert code == 2 and "overlap" in err
    assert snapshot(b) == before


def test_bundle_folder_rules(tmp_path):
    from convnet_search.stages.bundle import FINGERPRINT_FILE, check_replaceable
    from convnet_search.io.workspace import BUNDLE_MARKER, WorkspaceError, marker_payload

    old = tmp_path / "old"  # written by the previous version: no marker, only bundle files
    for rel in ("manifest.json", FINGERPRINT_FILE, "datasets/d/index.json",
                "datasets/d/thumbs/0.jpg", "datasets/d/summary/cosine.json",
                "datasets/d/m/l/cosine.knn", "datasets/d/scores/cosine.u8",  # format 2
                "datasets/d/m/l/avg/cosine.knn", "datasets/d/scores/cosine/0.u8",  # format 3
                "tfjs/mobilenet/model.json"):
        (old / rel).parent.mkdir(parents=True, exist_ok=True)
        (old / rel).write_text("{}")
    check_replaceable(old)  # adopted
    (old / "datasets" / "d" / "thumbs" / "holiday.jpg").write_text("")  # not a name we write
    with pytest.raises(WorkspaceError, match="holiday.jpg"):
        check_replaceable(old)

    ours = tmp_path / "ours"
    (ours / "datasets").mkdir(parents=True)
    (ours / BUNDLE_MARKER).write_text(json.dumps(marker_payload("bundle")))
    check_replaceable(ours)
    (ours / "notes.txt").write_text("added by hand")  # a marker does not license deleting this
    with pytest.raises(WorkspaceError, match="notes.txt"):
        check_replaceable(ours)
    (ours / "notes.txt").unlink()
    (ours / BUNDLE_MARKER).write_text(json.dumps({**marker_payload("bundle"), "format": 99}))
    with pytest.raises(WorkspaceError, match="newer convnet-search"):
        check_replaceable(ours)


# ---------------------------------------------------------------------------------------------
# 3. two runs sharing --work crashed (no lock)
# ---------------------------------------------------------------------------------------------

def test_second_run_on_a_busy_work_folder_fails_at_once_and_stale_locks_are_taken_over(
        tmp_path, data):
    from convnet_search.io.workspace import LOCK_FILE

    out, work = tmp_path / "out", tmp_path / "work"
    args = ["precompute", *FAST, "--dataset", str(data), "--out", str(out), "--work", str(work)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0"}
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen([*CLI, *args], cwd=ROOT, env=env, stdout=log, stderr=log)
    lock = work / LOCK_FILE
    deadline = time.time() + 120
    while time.time() < deadline:
        assert first.poll() is None, "first run ended before the second could start"
        try:
            if json.loads(lock.read_text())["pid"] == first.pid:
                break
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    second = run_cli(*args)
    assert first.poll() is None, "first run ended before the second reached its lock"
    assert second.returncode == 5, second.stderr[-3000:]
    assert f"pid {first.pid}" in one_line(second.stderr, "in use by another convnet-search run")
    assert first.wait(timeout=600) == 0, (tmp_path / "first.log").read_text()[-3000:]
    assert (out / "manifest.json").exists() and not list(work.rglob("*.parts-*"))

    # A run killed with SIGKILL leaves its pid in the lock file, but the kernel dropped its flock.
    dead = subprocess.run([sys.executable, "-c", (
        "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
        "fcntl.flock(fd, fcntl.LOCK_EX); "
        "os.write(fd, b'{\"pid\": 1, \"host\": \"h\", \"started\": 0}'); "
        "os.kill(os.getpid(), 9)"), str(lock)])
    assert dead.returncode == -signal.SIGKILL and '"pid": 1' in lock.read_text()
    again = run_cli(*args)
    assert again.returncode == 0 and "bundle up to date" in again.stderr, again.stderr[-3000:]


def test_lock_is_exclusive_within_one_process_too(tmp_path):
    from convnet_search.io.workspace import BusyError, prepare_work, work_lock

    prepare_work(tmp_path / "w")
    with work_lock(tmp_path / "w"):
        with pytest.raises(BusyError, match=f"pid {os.getpid()} on "):
            with work_lock(tmp_path / "w"):
                pass
    with work_lock(tmp_path / "w"):  # released on exit
        pass


# ---------------------------------------------------------------------------------------------
# 5. tracebacks instead of messages: read-only / file --out, unwritable --work, ENOSPC, Ctrl-C
# ---------------------------------------------------------------------------------------------

@contextmanager
def read_only(folder: Path):
    """Make `folder` unwritable, also for root (chmod binds only others; chattr +i binds root)."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    immutable = os.geteuid() == 0 and subprocess.run(
        ["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    try:
        try:
            (folder / ".probe").write_text("x")
        except OSError:
            pass
        else:
            (folder / ".probe").unlink()
            pytest.skip("cannot make a folder read-only here (root without chattr +i)")
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def test_read_only_or_file_out_fails_before_compute(tmp_path, data, main):
    work = tmp_path / "W"
    with read_only(tmp_path / "ro"):
        code, err = main("--dataset", data, "--out", tmp_path / "ro", "--work", work)
        assert code == 4 and "cannot write" in one_line(err, "--out")
        code, err = main("--dataset", data, "--out", tmp_path / "ro" / "sub", "--work", work)
        assert code == 4 and str(tmp_path / "ro") in one_line(err, "--out")
    f = tmp_path / "file"
    f.write_text("mine")
    code, err = main("--dataset", data, "--out", f, "--work", work)
    assert code == 2 and "not a folder" in one_line(err, "--out")
    assert f.read_text() == "mine" and not (work / "features").exists()


def test_unwritable_work_fails_before_compute(tmp_path, data, main):
    with read_only(tmp_path / "ro"):
        code, err = main("--dataset", data, "--out", tmp_path / "O", "--work", tmp_path / "ro")
        assert code == 4 and "cannot write" in one_line(err, "--work")
        code, err = main("--dataset", data, "--out", tmp_path / "O",
                         "--work", tmp_path / "ro" / "w")
        assert code == 4 and "cannot write" in one_line(err, "--work")


def test_low_disk_space_is_reported_up_front(tmp_path, data, main, monkeypatch):
    import shutil

    from convnet_search.io import workspace

    monkeypatch.setattr(workspace.shutil, "disk_usage",
                        lambda p: shutil._ntuple_diskusage(10**12, 10**12 - 5 * 2**20, 5 * 2**20))
    code, err = main("--dataset", data, "--out", tmp_path / "O", "--work", tmp_path / "W")
    assert code == 4 and "only 5 MB free" in one_line(err, "MB free")


def test_disk_full_mid_run_ends_with_one_line(tmp_path, data, main, monkeypatch):
    from convnet_search.io import store

    def full(self, name, obj):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path / name))
    monkeypatch.setattr(store.ShardDir, "write_json", full)  # the first write of the extraction
    code, err = main("--dataset", data, "--out", tmp_path / "O", "--work", tmp_path / "W")
    line = one_line(err, "error")
    assert code == 4 and "no space left" in line and "state.json" in line
    assert "run the same command again to resume" in line


def test_ctrl_c_ends_with_one_line_and_exit_130(tmp_path, data):
    work = tmp_path / "work"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0"}
    proc = subprocess.Popen([*CLI, "precompute", *FAST, "--dataset", str(data),
                             "--out", str(tmp_path / "out"), "--work", str(work)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a shell's background job ignores SIGINT, and children inherit that
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while time.time() < deadline and not list(work.rglob("*.parts-*/state.json")):  # extracting
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "same command again to resume" in one_line(err, "interrupted (Ctrl-C)")


def test_resumed_extraction_reports_speed_of_the_images_it_computed(tmp_path, data):
    from convnet_search.config import RunConfig
    from convnet_search.io.datasets import load_dataset
    from convnet_search.stages.extract import extract_features
    from convnet_search.nets.models import get_spec
    from convnet_search.io.store import ArrayStore

    ds = load_dataset(data)  # 18 images: shards of 4 -> 5 shards
    cfg = RunConfig(models=("mobilenet_025",), num_layers=2, weights="none", shard_size=4,
                    batch_size=4)
    store, spec = ArrayStore(tmp_path / "features"), get_spec("mobilenet_025")
    calls = []

    def interrupt_in_second_shard(n: int) -> None:
        calls.append(n)
        if len(calls) == 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        extract_features(ds, spec, cfg, store, on_progress=interrupt_in_second_shard)
    res = extract_features(ds, spec, cfg, store)
    assert res.status == "resumed" and res.images == 18 and res.computed == 14
    assert res.images_per_s == pytest.approx(14 / res.seconds)


def test_a_work_folder_with_a_scan_cache_but_no_marker_is_still_ours(tmp_path):
    """The scan cache (datasets.load_dataset cache_dir) is the engine's own: a work folder whose marker
    was lost is adopted with it, and --force clears it with the other stage folders."""
    from convnet_search.io.workspace import check_work_target, clear_stages

    work = tmp_path / "w"
    (work / "scan-cache").mkdir(parents=True)
    (work / "scan-cache" / "photos-0123abcd.json").write_text("{}")
    (work / "features" / "photos").mkdir(parents=True)
    (work / "features" / "photos" / "mobilenet.h5").write_bytes(b"")
    check_work_target(work)  # adopted: every entry is one the engine writes
    clear_stages(work)
    assert sorted(p.name for p in work.iterdir()) == []


def test_sigterm_ends_with_one_line_and_exit_143(tmp_path, data):
    """Issue 19 row 8: `kill -TERM` (docker stop) during a run: one line with the resume hint."""
    work = tmp_path / "work"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0"}
    proc = subprocess.Popen([*CLI, "precompute", *FAST, "--dataset", str(data),
                             "--out", str(tmp_path / "out"), "--work", str(work)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list(work.rglob("*.parts-*/state.json")):  # extracting
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    assert "same command again to resume" in one_line(err, "terminated (SIGTERM)")


@pytest.mark.parametrize("bundled", ["digits", "shapes"])
def test_a_folder_named_like_a_bundled_dataset_is_never_silently_replaced(tmp_path, data, main,
                                                                          monkeypatch, bundled):
    """Issue 19 row 4: `cp -r mine digits; P --dataset digits` used the bundled digits."""
    import shutil

    from convnet_search.io.datasets import bundled_name, known_datasets

    assert bundled in known_datasets()
    monkeypatch.chdir(tmp_path)
    shutil.copytree(data, tmp_path / bundled)
    code, err = main("--dataset", bundled, "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o"))
    assert code == 2, err
    line = one_line(err, "both a bundled dataset and a folder here")
    assert f"--dataset ./{bundled}" in line and f"--dataset bundled:{bundled}" in line
    assert not (tmp_path / "w").exists() and not (tmp_path / "o").exists()
    # either explicit choice works, for any bundled name
    assert bundled_name(f"bundled:{bundled}") == bundled and bundled_name(f"./{bundled}") is None
    for name in known_datasets():
        assert bundled_name(f"bundled:{name}") == name
