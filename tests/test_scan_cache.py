"""The scan cache (datasets._ScanCache) and the large shapes generator (datasets/build.py shapes-large).

A cached re-scan must give exactly what a full scan gives, while decoding and hashing only the
files whose size or mtime changed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

import convnet_search.io.datasets as dsm
from convnet_search.io.datasets import dataset_fingerprint, load_dataset

REPO = Path(__file__).resolve().parent.parent
PAST_NS = (time.time_ns() // 10**9 - 3600) * 10**9  # well outside the racy window


def _png(path: Path, colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (6, 6), colour).save(path)
    os.utime(path, ns=(PAST_NS, PAST_NS))


def _folder(root: Path) -> Path:
    for c, cls in enumerate(("cats", "dogs")):
        for k in range(3):
            _png(root / cls / f"{k}.png", (40 * c, 30 * k, 7))
    (root / "dogs" / "bad.png").write_bytes(b"not an image at all")
    os.utime(root / "dogs" / "bad.png", ns=(PAST_NS, PAST_NS))
    return root


class Counter:
    """Wraps datasets.load_rgb and datasets._file_sha256, recording the files each one reads."""

    def __init__(self, monkeypatch):
        self.decoded: list[str] = []
        self.hashed: list[str] = []
        real_load, real_hash = dsm.load_rgb, dsm._file_sha256

        def load(path, **kw):
            self.decoded.append(Path(path).name)
            return real_load(path, **kw)

        def sha(path):
            self.hashed.append(Path(path).name)
            return real_hash(path)

        monkeypatch.setattr(dsm, "load_rgb", load)
        monkeypatch.setattr(dsm, "_file_sha256", sha)

    def reset(self):
        self.decoded.clear()
        self.hashed.clear()


def _state(ds):
    return ds.id, ds.classes, ds.files, ds.labels.tolist(), ds.skipped


def _scan(root, cache, counter=None):
    if counter:
        counter.reset()
    ds = load_dataset(root, cache_dir=cache)
    return ds, dataset_fingerprint(ds)


def test_second_scan_decodes_and_hashes_nothing_and_gives_the_same_dataset(tmp_path, monkeypatch):
    root, cache = _folder(tmp_path / "photos"), tmp_path / "work" / "scan-cache"
    plain = load_dataset(root)
    plain_fp = dataset_fingerprint(plain)  # no cache: every file decoded and hashed
    counter = Counter(monkeypatch)
    cold, cold_fp = _scan(root, cache, counter)
    assert len(counter.decoded) == 7 and len(counter.hashed) == 6  # the bad file is not hashed
    warm, warm_fp = _scan(root, cache, counter)
    assert counter.decoded == [] and counter.hashed == []
    assert _state(plain) == _state(cold) == _state(warm)
    assert plain_fp == cold_fp == warm_fp
    assert ("dogs/bad.png" in [s.file for s in warm.skipped])
    assert len(list(cache.glob("photos-*.json"))) == 1


def test_a_touched_or_rewritten_file_is_validated_again_alone(tmp_path, monkeypatch):
    root, cache = _folder(tmp_path / "photos"), tmp_path / "cache"
    counter = Counter(monkeypatch)
    _scan(root, cache, counter)
    # Same bytes, new mtime: decoded and hashed again, fingerprint unchanged.
    os.utime(root / "cats" / "1.png", ns=(PAST_NS + 10**9, PAST_NS + 10**9))
    _, fp = _scan(root, cache, counter)
    assert counter.decoded == ["1.png"] and counter.hashed == ["1.png"]
    assert fp == dataset_fingerprint(load_dataset(root))
    # New bytes of the same size, new mtime: the fingerprint follows the content.
    _png(root / "dogs" / "2.png", (255, 0, 255))
    os.utime(root / "dogs" / "2.png", ns=(PAST_NS + 2 * 10**9,) * 2)
    _, fp2 = _scan(root, cache, counter)
    assert counter.decoded == ["2.png"]
    assert fp2 != fp and fp2 == dataset_fingerprint(load_dataset(root))


def test_a_file_that_becomes_corrupt_is_skipped_with_its_reason(tmp_path, monkeypatch):
    root, cache = _folder(tmp_path / "photos"), tmp_path / "cache"
    _scan(root, cache)
    good = (root / "cats" / "0.png").read_bytes()
    (root / "cats" / "0.png").write_bytes(good[: len(good) // 2])  # truncated
    os.utime(root / "cats" / "0.png", ns=(PAST_NS + 10**9,) * 2)
    ds, fp = _scan(root, cache)
    plain = load_dataset(root)
    assert "cats/0.png" not in ds.files
    reasons = {s.file: s.reason for s in ds.skipped}
    assert reasons["cats/0.png"] == {s.file: s.reason for s in plain.skipped}["cats/0.png"]
    assert "truncated" in reasons["cats/0.png"] or "corrupt" in reasons["cats/0.png"]
    assert _state(ds) == _state(plain) and fp == dataset_fingerprint(plain)


@pytest.mark.parametrize("garbage", [
    b"{not json",
    b"[]",
    b'{"files": []}',
    # right header, entries of the wrong shape: dropped one by one
    None,
])
def test_a_corrupt_cache_is_ignored_and_rebuilt(tmp_path, monkeypatch, garbage):
    root, cache = _folder(tmp_path / "photos"), tmp_path / "cache"
    _scan(root, cache)
    (path,) = cache.glob("*.json")
    if garbage is None:
        data = json.loads(path.read_bytes())
        data["files"] = {rel: [1, "x", 3, "", ""] for rel in data["files"]}
        garbage = json.dumps(data).encode()
    path.write_bytes(garbage)
    counter = Counter(monkeypatch)
    ds, fp = _scan(root, cache, counter)
    assert len(counter.decoded) == 7
    plain = load_dataset(root)
    assert _state(ds) == _state(plain) and fp == dataset_fingerprint(plain)
    assert isinstance(json.loads(path.read_bytes())["files"], dict)  # rewritten
    _scan(root, cache, counter)
    assert counter.decoded == []


def test_cache_from_another_limit_is_not_reused(tmp_path, monkeypatch):
    """A verdict depends on max_pixels ("too large"): a different limit validates again."""
    root, cache = _folder(tmp_path / "photos"), tmp_path / "cache"
    _scan(root, cache)
    counter = Counter(monkeypatch)
    ds = load_dataset(root, cache_dir=cache, max_pixels=1000)
    assert len(counter.decoded) == 7 and len(ds) == 6
    counter.reset()
    load_dataset(root, cache_dir=cache, max_pixels=1000)
    assert counter.decoded == []


def test_a_file_replaced_by_one_of_the_same_size_and_mtime_is_validated_again(tmp_path, monkeypatch):
    root, cache = _folder(tmp_path / "photos"), tmp_path / "cache"

    def bmp(path, colour):  # BMP: the size depends on the dimensions only
        Image.new("RGB", (6, 6), colour).save(path, format="BMP")
        os.utime(path, ns=(PAST_NS, PAST_NS))

    bmp(root / "cats" / "z.bmp", (1, 1, 1))
    _, before = _scan(root, cache)
    bmp(tmp_path / "other.bmp", (200, 1, 1))  # same size, same mtime, other pixels (e.g. cp -p)
    os.replace(tmp_path / "other.bmp", root / "cats" / "z.bmp")
    counter = Counter(monkeypatch)
    _, fp = _scan(root, cache, counter)
    assert counter.decoded == ["z.bmp"]
    assert fp != before and fp == dataset_fingerprint(load_dataset(root))


def test_a_file_written_just_now_is_not_cached(tmp_path, monkeypatch):
    """Within the racy window a second same-size write could keep the mtime: validate again."""
    root, cache = _folder(tmp_path / "photos"), tmp_path / "cache"
    Image.new("RGB", (6, 6), (1, 2, 3)).save(root / "cats" / "new.png")  # mtime: now
    counter = Counter(monkeypatch)
    _scan(root, cache, counter)
    _scan(root, cache, counter)
    assert counter.decoded == ["new.png"]


# ---------------------------------------------------------------------------------------------
# datasets/build.py shapes-large
# ---------------------------------------------------------------------------------------------

def _build_module():
    spec = importlib.util.spec_from_file_location("build_datasets", REPO / "datasets/build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return build


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_shapes_large_is_deterministic_for_a_seed_whatever_the_workers(tmp_path):
    build = _build_module()
    build.build_shapes_large(tmp_path / "a", 23, seed=5, jobs=1)
    # The command line, with two worker processes (spawned: they import build.py themselves).
    r = subprocess.run([sys.executable, str(REPO / "datasets/build.py"), "shapes-large", str(tmp_path / "b"),
                        "--images", "23", "--seed", "5", "--jobs", "2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "23 images" in r.stdout
    a = _tree(tmp_path / "a")
    assert a == _tree(tmp_path / "b")
    build.build_shapes_large(tmp_path / "c", 23, seed=6, jobs=1)
    c = _tree(tmp_path / "c")
    assert c.keys() == a.keys() and c != a
    ds = load_dataset(tmp_path / "a")
    assert len(ds) == 23 and ds.classes == sorted(build.SHAPE_CLASSES) and not ds.skipped
    assert [p.name for p in tmp_path.iterdir()] and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_shapes_large_refuses_an_existing_folder(tmp_path):
    (tmp_path / "x").mkdir()
    r = subprocess.run([sys.executable, str(REPO / "datasets/build.py"), "shapes-large", str(tmp_path / "x"),
                        "--images", "3"], capture_output=True, text=True)
    assert r.returncode == 2 and "already exists" in r.stderr and "Traceback" not in r.stderr


def test_shapes_large_extend_equals_building_the_larger_folder_at_once(tmp_path):
    build = _build_module()
    build.build_shapes_large(tmp_path / "grown", 17, seed=5, jobs=1)
    r = subprocess.run([sys.executable, str(REPO / "datasets/build.py"), "shapes-large", str(tmp_path / "grown"),
                        "--images", "23", "--seed", "5", "--extend"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "added 6 images" in r.stdout
    build.build_shapes_large(tmp_path / "whole", 23, seed=5, jobs=1)
    assert _tree(tmp_path / "grown") == _tree(tmp_path / "whole")
    # Fewer images than the folder holds, or no such folder: a message, exit 2.
    r = subprocess.run([sys.executable, str(REPO / "datasets/build.py"), "shapes-large", str(tmp_path / "grown"),
                        "--images", "5", "--extend"], capture_output=True, text=True)
    assert r.returncode == 2 and "fewer than the 23 images" in r.stderr
    r = subprocess.run([sys.executable, str(REPO / "datasets/build.py"), "shapes-large", str(tmp_path / "none"),
                        "--images", "5", "--extend"], capture_output=True, text=True)
    assert r.returncode == 2 and "not a shapes-large folder" in r.stderr


def test_a_file_overwritten_in_place_with_its_mtime_restored_is_validated_again(tmp_path, monkeypatch):
    """Issue 19 row 3: same size, same mtime (`touch -r`, `rsync -t`, `cp -p` onto the file) and
    same inode: only the ctime, which no user tool can set back, says it changed (git's rule)."""
    root, cache = _folder(tmp_path / "photos"), tmp_path / "cache"
    target = root / "cats" / "z.bmp"
    Image.new("RGB", (6, 6), (1, 1, 1)).save(target, format="BMP")
    os.utime(target, ns=(PAST_NS, PAST_NS))
    _, before = _scan(root, cache)
    inode = target.stat().st_ino
    buf = tmp_path / "other.bmp"
    Image.new("RGB", (6, 6), (200, 1, 1)).save(buf, format="BMP")
    with open(target, "r+b") as f:  # in place: the inode stays
        f.write(buf.read_bytes())
    os.utime(target, ns=(PAST_NS, PAST_NS))
    assert target.stat().st_ino == inode and target.stat().st_size == buf.stat().st_size
    counter = Counter(monkeypatch)
    _, fp = _scan(root, cache, counter)
    assert counter.decoded == ["z.bmp"]
    assert fp != before and fp == dataset_fingerprint(load_dataset(root))


def test_the_threaded_scan_gives_what_one_thread_gives(tmp_path, monkeypatch):
    """prefetch validates new files in SCAN_THREADS threads; with or without a cache, the dataset,
    its skip reasons, digests and fingerprint equal a one-thread scan's, and each file is decoded once."""
    root = _folder(tmp_path / "photos")
    assert dsm.SCAN_THREADS >= 1
    monkeypatch.setattr(dsm, "SCAN_THREADS", 1)
    one = [_scan(root, c) for c in (None, tmp_path / "one")]
    monkeypatch.setattr(dsm, "SCAN_THREADS", 3)
    counter = Counter(monkeypatch)
    many = [_scan(root, c, counter) for c in (None, tmp_path / "many")]
    assert len(counter.decoded) == 7  # the last scan (the counter restarts each scan): each file once
    for (a, afp), (b, bfp) in zip(one, many):
        assert _state(a) == _state(b) and afp == bfp and a.digests == b.digests


def test_labels_auto_lists_the_folder_twice_but_decodes_each_file_once(tmp_path, monkeypatch):
    """--labels auto scans the tree, then (class folders found) scans by class: one verdict per file,
    with or without a scan cache, and the same dataset as --labels folders."""
    root = _folder(tmp_path / "photos")
    counter = Counter(monkeypatch)
    for cache in (None, tmp_path / "cache"):
        counter.reset()
        auto = load_dataset(root, labels="auto", cache_dir=cache)
        assert len(counter.decoded) == 7, counter.decoded  # 6 images + the bad file, each once
        assert _state(auto) == _state(load_dataset(root, labels="folders"))
