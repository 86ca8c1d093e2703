"""A run's decode cache: each large image's box-downscaled pixels, so a run decodes it once for all models.

A 12 MP photo costs ~0.4 s to decode and box-downscale (nets/preprocess.py, step 1) and a
MobileNet forward pass ~3 ms, so a run of nine models that decodes every photo nine times spends
nearly all its time decoding. The first model's reader decodes an image once, box-downscales it
to every network input size of the run, and stores each result here; the later models read it
back (a .npy read: a few ms). Stored pixels are exactly the decoder's, so features are the same
bit for bit with or without the cache. A JPEG over 3,136 px is decoded at 1/2 for every input
size (nets/preprocess.reduce_scale), so one decode fills every size of the run.

Keyed by the image's sha256 (the dataset scan's digest: same bytes, same pixels) and the input
size, under a folder named by DECODE_VERSION (a change to the decoding path starts a new folder).
Only images that step 1 shrinks are stored: a dataset-sized image decodes faster than its cache
file is read. Memory stays one image per decode thread. Disk: ≤ 2× the input per side, uint8; a
4000×3000 photo takes 0.45 MB at 224, 0.74 MB at 299 and 1.44 MB at 456 (2.6 MB for the default
nine models), so a process stops storing once it has written `budget` bytes (BUDGET_BYTES, or
half the free space when smaller): the images past it are decoded by each model as before. The
extraction stage removes the folder when it is done. Files are written atomically, so a killed run leaves only whole entries, which the next
run reuses. An entry that cannot be read is ignored (the image is decoded again).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Bump when the pixels a decode produces change (decoder, step 1 of the resize path).
DECODE_VERSION = 2  # 2: large JPEGs decoded at the DCT scale of the box step (issue 22)
BUDGET_BYTES = 20 * 1024**3  # ~7,700 phone photos for the default nine models


def default_budget(root: Path) -> int:
    """BUDGET_BYTES, or half the free space of the disk holding `root` when that is less."""
    probe = Path(root)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return min(BUDGET_BYTES, shutil.disk_usage(probe).free // 2)
    except OSError:
        return 0


@dataclass(frozen=True)
class DecodeCache:
    """The cache folder and every network input size (h, w) of the run (what a decode fills)."""
    root: Path
    sizes: tuple[tuple[int, int], ...]
    budget: int = BUDGET_BYTES  # bytes this process may write (a soft cap: checked before each file)
    # bytes written by this process so far (a mutable cell, so the dataclass stays frozen and picklable)
    written: list[int] = field(default_factory=lambda: [0], compare=False, repr=False)

    @property
    def folder(self) -> Path:
        return Path(self.root) / f"v{DECODE_VERSION}"

    def path(self, digest: str, size: tuple[int, int]) -> Path:
        return self.folder / f"{size[0]}x{size[1]}" / digest[:2] / f"{digest}.npy"

    def get(self, digest: str, size: tuple[int, int]) -> np.ndarray | None:
        """The stored pixels, or None when absent or unreadable."""
        try:
            a = np.load(self.path(digest, size), allow_pickle=False)
        except (OSError, ValueError):
            return None
        return a if a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3 else None

    def put(self, digest: str, size: tuple[int, int], pixels: np.ndarray) -> None:
        """Store atomically (temp file + rename). A cache is an optimization: a full disk or a
        read-only folder costs speed, never the run, so write errors are dropped."""
        target = self.path(digest, size)
        if self.written[0] + pixels.nbytes > self.budget:
            return
        self.written[0] += pixels.nbytes
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    np.save(f, np.ascontiguousarray(pixels), allow_pickle=False)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError:
            pass

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
