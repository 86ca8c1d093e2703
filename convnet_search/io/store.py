"""On-disk stage outputs: atomic writes, the HDF5 feature store, resumable shards.

Every file is written to a temporary name in the same folder and moved into place with
os.replace, so a run killed at any moment (even SIGKILL) leaves either the old file or the new one,
never a torn one. Each stage output carries the fingerprint of its inputs; a stage whose output
fingerprint matches is skipped.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np


def fingerprint(*parts: Any) -> str:
    """Stable sha256 of JSON-serialisable parts (dict keys sorted)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def exchange_paths(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE): a reader, or a run killed at
    any moment, sees either the old folder or the new one at each path, never none. False where the
    system or file system cannot (the caller then renames in two steps)."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


@contextmanager
def atomic_path(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path beside `path`; on success move it into place (file or folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        yield tmp
        if path.is_dir() and not path.is_symlink():
            if exchange_paths(tmp, path):  # one atomic step: `path` is never missing (tmp now holds the old)
                return
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def dumps_json(obj: Any) -> str:
    """Deterministic, compact JSON (the bundle must be byte-identical across runs)."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, dumps_json(obj).encode("utf-8"))


# ---------------------------------------------------------------------------------------------
# HDF5 stores: one file per (dataset, model) and stage, arrays per key, JSON metadata attribute.
# ---------------------------------------------------------------------------------------------

@dataclass
class StoredArrays:
    meta: dict[str, Any]
    arrays: Mapping[str, np.ndarray]  # a LazyArrays when loaded from a store


class LazyArrays(Mapping):
    """The arrays of one store file, each read from HDF5 on first access (then kept).

    Loading a stage output reads only its metadata, so a run with nothing to do (every fingerprint
    current, the bundle up to date) reads no array at all. The file is opened per first access: it
    is never rewritten under a loaded object within a run (the work lock; a stage writes a new file
    and loads it again)."""

    def __init__(self, path: Path, keys: list[str]):
        self.path = Path(path)
        self._keys = list(keys)
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._cache:
            if key not in self._keys:
                raise KeyError(key)
            import h5py

            with h5py.File(self.path, "r") as f:
                self._cache[key] = f["arrays"][key][()]
        return self._cache[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __repr__(self) -> str:
        return f"LazyArrays({str(self.path)!r}, {len(self._keys)} keys, {len(self._cache)} read)"


class ArrayStore:
    """A folder of HDF5 files `<root>/<dataset>/<model>.h5`, each {key: array} + meta (with fingerprint)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, dataset: str, model: str) -> Path:
        return self.root / dataset / f"{model}.h5"

    def read_meta(self, dataset: str, model: str) -> dict[str, Any] | None:
        import h5py

        p = self.path(dataset, model)
        if not p.exists():
            return None
        try:
            with h5py.File(p, "r") as f:
                return json.loads(f.attrs["meta"])
        except (OSError, KeyError, ValueError):
            return None  # unreadable (e.g. from an older layout): treated as missing, recomputed

    def is_current(self, dataset: str, model: str, fp: str) -> bool:
        meta = self.read_meta(dataset, model)
        return meta is not None and meta.get("fingerprint") == fp

    def load(self, dataset: str, model: str) -> StoredArrays:
        import h5py

        p = self.path(dataset, model)
        with h5py.File(p, "r") as f:
            meta = json.loads(f.attrs["meta"])
        return StoredArrays(meta, LazyArrays(p, meta["keys"]))

    def write(self, dataset: str, model: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        import h5py

        meta = {**meta, "keys": list(arrays)}
        with atomic_path(self.path(dataset, model)) as tmp:
            # track_times=False: identical inputs give identical files
            with h5py.File(tmp, "w", track_order=True) as f:
                f.attrs["meta"] = json.dumps(meta, sort_keys=True)
                g = f.create_group("arrays", track_order=True)
                for key, arr in arrays.items():
                    g.create_dataset(key, data=arr, track_times=False)


# ---------------------------------------------------------------------------------------------
# Resumable shards (img2dataset-style): one .npz per shard, present = done.
# ---------------------------------------------------------------------------------------------

class ShardDir:
    def __init__(self, path: Path):
        self.path = Path(path)

    def shard_path(self, index: int | str) -> Path:
        """A shard by position (int) or by content key (hex str, extract's content-defined shards)."""
        return self.path / (f"shard-{index:05d}.npz" if isinstance(index, int) else f"shard-{index}.npz")

    def done(self, index: int | str) -> bool:
        return self.shard_path(index).exists()

    def save(self, index: int | str, arrays: dict[str, np.ndarray]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.shard_path(index), suffix=".npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())

    def load(self, index: int | str) -> dict[str, np.ndarray]:
        with np.load(self.shard_path(index)) as z:
            return {k: z[k] for k in z.files}

    def read_json(self, name: str) -> Any:
        p = self.path / name
        return json.loads(p.read_text()) if p.exists() else None

    def write_json(self, name: str, obj: Any) -> None:
        atomic_write_json(self.path / name, obj)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
