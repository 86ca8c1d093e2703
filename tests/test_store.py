"""Atomic writes and stores: a failure mid-write leaves the old file; fingerprints are stable."""
from __future__ import annotations

import numpy as np
import pytest

from convnet_search.io.store import ArrayStore, ShardDir, atomic_path, atomic_write_json, fingerprint


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == '{"v":1}'
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temp left behind


def test_atomic_folder_swap(tmp_path):
    out = tmp_path / "bundle"
    for v in ("1", "2"):
        with atomic_path(out) as tmp:
            tmp.mkdir()
            (tmp / "v").write_text(v)
    assert (out / "v").read_text() == "2" and sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_folder_swap_never_leaves_the_folder_missing(tmp_path, monkeypatch):
    """A bundle swap is one exchange: at no moment between the old and the new folder is the path
    absent (a browser reload or a kill -9 there found no bundle with two renames)."""
    from convnet_search.io import store

    out = tmp_path / "bundle"
    with atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / "v").write_text("1")
    seen = []
    real_replace = store.os.replace

    def watch(src, dst):  # what a reader sees at `out` at each step of a folder swap
        seen.append(out.is_dir())
        real_replace(src, dst)
        seen.append(out.is_dir())

    monkeypatch.setattr(store.os, "replace", watch)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / "v").write_text("2")
    assert (out / "v").read_text() == "2" and sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
    assert all(seen), seen  # with an exchange no os.replace runs at all: seen == []
    assert store.exchange_paths(tmp_path / "bundle", tmp_path / "bundle")  # Linux: the exchange exists


def test_array_store_round_trip_and_identical_bytes(tmp_path):
    arrays = {"a/b/ids": np.arange(6, dtype=np.int32).reshape(2, 3), "x": np.ones((2, 2), np.float32)}
    s1, s2 = ArrayStore(tmp_path / "s1"), ArrayStore(tmp_path / "s2")
    for s in (s1, s2):
        s.write("d", "m", {"fingerprint": "f1"}, arrays)
    assert s1.path("d", "m").read_bytes() == s2.path("d", "m").read_bytes()
    got = s1.load("d", "m")
    assert got.meta["fingerprint"] == "f1" and s1.is_current("d", "m", "f1") and not s1.is_current("d", "m", "f2")
    np.testing.assert_array_equal(got.arrays["a/b/ids"], arrays["a/b/ids"])
    assert list(got.arrays) == list(arrays) and len(got.arrays) == 2 and "x" in got.arrays
    s1.path("d", "m").write_bytes(b"garbage")  # a torn/foreign file is treated as missing
    assert s1.read_meta("d", "m") is None


def test_shards(tmp_path):
    sh = ShardDir(tmp_path / "parts")
    assert not sh.done(0)
    sh.save(0, {"l": np.ones(3)})
    assert sh.done(0) and sh.load(0)["l"].sum() == 3
    sh.remove()
    assert not (tmp_path / "parts").exists()


def test_fingerprint_stable_and_sensitive():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})


def test_load_reads_metadata_only_until_an_array_is_used(tmp_path, monkeypatch):
    import h5py

    s = ArrayStore(tmp_path)
    s.write("d", "m", {"fingerprint": "f"}, {"a": np.arange(3.0), "b": np.ones((2, 2))})
    reads = []
    real = h5py.Dataset.__getitem__
    monkeypatch.setattr(h5py.Dataset, "__getitem__", lambda self, i: reads.append(self.name) or real(self, i))
    got = s.load("d", "m")
    assert got.meta["keys"] == ["a", "b"] and reads == []
    np.testing.assert_array_equal(got.arrays["b"], np.ones((2, 2)))
    np.testing.assert_array_equal(got.arrays["b"], np.ones((2, 2)))  # read once, then kept
    assert reads == ["/arrays/b"]
    with pytest.raises(KeyError):
        got.arrays["c"]
