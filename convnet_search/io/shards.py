"""Content-defined extraction shards: adding images to a large folder re-extracts only nearby shards.

Shards used to be fixed slices (rows 0–255, 256–511, …): one image inserted near the start of a
100,000-image folder shifted every later slice, so every shard changed and everything was
extracted again. Here a shard ends after image i when the content digest of image i says so (like
rsync's or restic's content-defined chunking, with the image as the unit): whether a cut falls
after an image depends only on that image's bytes, so inserting or removing images changes only
the shards around them. A shard's key hashes the extraction configuration and its images'
digests in order; an unchanged key means the same images through the same model in the same
batches, so its stored rows can be reused bit for bit, and a cold run on the final folder
computes exactly the same shards.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence



@dataclass(frozen=True)
class Shard:
    start: int  # first row (dataset position)
    stop: int  # one past the last row
    key: str  # sha256 over the extraction configuration and the shard's image digests, in order

    def __len__(self) -> int:
        return self.stop - self.start


def _cuts_after(digest: str, size: int, length: int) -> bool:
    """Whether a shard of `length` images ending with this image ends here.

    1 in `size` digests cut (expected length `size`). A shard past 2·size cuts at the next
    1-in-(size/16) digest, and at 4·size regardless: memory stays bounded, and since the later
    cuts also depend on content, an edit's effect ends within a shard or two."""
    h = int(digest[:15], 16)
    return (h % size == size - 1 or length >= 4 * size
            or (length >= 2 * size and (h // size) % max(1, size // 16) == 0))


def plan_shards(digests: Sequence[str], size: int, config_key: str) -> list[Shard]:
    """Split images (their content digests, dataset order) into shards of about `size` images.

    Cuts fall after images whose digest says so (expected shard length `size`, at most 4·size;
    see _cuts_after).
    """
    if size < 1:
        raise ValueError(f"shard size must be ≥ 1, got {size}")
    shards: list[Shard] = []
    start = 0
    h = hashlib.sha256(config_key.encode())
    for i, digest in enumerate(digests):
        h.update(digest.encode() + b"\n")
        if _cuts_after(digest, size, i + 1 - start) or i + 1 == len(digests):
            shards.append(Shard(start, i + 1, h.hexdigest()))
            start = i + 1
            h = hashlib.sha256(config_key.encode())
    return shards


def shards_to_meta(shards: Sequence[Shard]) -> list[list]:
    """JSON form stored in a features file's metadata: [[key, start, stop], …]."""
    return [[s.key, s.start, s.stop] for s in shards]


def shards_from_meta(items: Sequence[Sequence]) -> list[Shard]:
    return [Shard(int(a), int(b), str(k)) for k, a, b in items]


def reusable_rows(old: Sequence[Shard], new: Sequence[Shard]) -> dict[int, Shard]:
    """{index in `new`: the old shard with the same key}: shards whose stored rows can be copied."""
    by_key = {s.key: s for s in old}
    return {i: by_key[s.key] for i, s in enumerate(new) if s.key in by_key}
