"""Content-defined shards (convnet_search/shards.py): an edit changes only the shards around it."""
from __future__ import annotations

import hashlib

import numpy as np
from hypothesis import given, settings, strategies as st

from convnet_search.io.shards import plan_shards, reusable_rows, shards_from_meta, shards_to_meta


def _digests(n: int, salt: str = "") -> list[str]:
    return [hashlib.sha256(f"{salt}{i}".encode()).hexdigest() for i in range(n)]


def test_shards_cover_every_row_once_in_order_and_are_bounded():
    d = _digests(5000)
    shards = plan_shards(d, 64, "cfg")
    assert shards[0].start == 0 and shards[-1].stop == 5000
    assert all(a.stop == b.start for a, b in zip(shards, shards[1:]))
    assert max(len(s) for s in shards) <= 256 and min(len(s) for s in shards) >= 1
    assert 5000 / len(shards) > 30  # about `size` on average, not tiny shards
    assert plan_shards(d, 64, "cfg") == shards  # deterministic
    assert {s.key for s in plan_shards(d, 64, "other model")}.isdisjoint({s.key for s in shards})


def test_inserting_images_changes_only_the_shards_around_them():
    old = _digests(10_000)
    new = list(old)
    for pos in sorted((137, 2_500, 7_777), reverse=True):  # three new photos, in the middle
        new[pos:pos] = _digests(1, salt=f"new{pos}")
    a, b = plan_shards(old, 256, "cfg"), plan_shards(new, 256, "cfg")
    reused = reusable_rows(a, b)
    fresh_rows = sum(len(s) for i, s in enumerate(b) if i not in reused)
    assert len(b) - len(reused) <= 6  # ≤ 2 shards per insertion
    assert fresh_rows < 6 * 1024
    for i, o in reused.items():  # a reused shard holds the same images
        assert old[o.start:o.stop] == new[b[i].start:b[i].stop]


def test_the_same_images_give_the_same_shards_whatever_came_before():
    """A cold plan of the final folder equals the plan after an edit: reuse is exact."""
    base = _digests(3000)
    grown = base + _digests(100, salt="extra")
    assert plan_shards(grown, 100, "c")[:5] == plan_shards(base, 100, "c")[:5]


def test_meta_round_trip_and_duplicate_shards():
    d = _digests(300)
    shards = plan_shards(d + d, 50, "cfg")  # the same 300 images twice
    assert shards_from_meta(shards_to_meta(shards)) == shards
    assert len(reusable_rows(shards, shards)) == len(shards)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 400), size=st.integers(1, 40), seed=st.integers(0, 10_000))
def test_reused_shards_hold_the_same_images(n, size, seed):
    rng = np.random.default_rng(seed)
    old = _digests(n, salt=str(seed))
    new = [x for x in old if rng.random() > 0.05]
    for _ in range(rng.integers(0, 5)):
        new.insert(int(rng.integers(0, len(new) + 1)), _digests(1, salt=f"{seed}-{rng.random()}")[0])
    a, b = plan_shards(old, size, "k"), plan_shards(new, size, "k")
    assert sum(len(s) for s in b) == len(new)
    for i, o in reusable_rows(a, b).items():
        assert old[o.start:o.stop] == new[b[i].start:b[i].stop]
