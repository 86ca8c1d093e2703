"""Label-free guidance: how good a configuration's neighbour lists look without any labels.

Two numbers per configuration, from the stored top-k neighbour ids alone (no I/O):

* **hubness**: the skewness of the k-occurrence distribution. N_k(x) counts the lists (of the
  other images) that contain x; a strongly right-skewed N_k means a few "hub" images appear in
  almost everyone's results, which makes a poor search (Radovanović et al., JMLR 2010); 0 is a
  symmetric distribution. Across layers it is no ranking: on two labelled photo sets the first
  layers had the least hubness and the worst search (bench/README.md "guidance").
* **agreement**: the mean overlap@k of a configuration's lists with every other configuration's
  lists of the same queries: |A_q ∩ B_q| / k, averaged over queries and over the others. A
  configuration that finds what most others find is less likely to be an outlier; it says
  nothing about *which* notion of "similar" they share. Higher is "more consensual".

How well either tracks the label-based search score is measured, not assumed (bench/bench_guidance.py).
"""
from __future__ import annotations

import numpy as np

__all__ = ["agreement", "hubness", "k_occurrence"]

AGREEMENT_ROWS = 4096  # queries per block at most
# ... and at most this many ids per block ([rows, C·k] int64 plus its argsort: ≈ 100 MB), so a run
# with 288 configurations per metric does not hold GBs at once
AGREEMENT_ELEMENTS = 4_000_000


def k_occurrence(ids: np.ndarray, n: int) -> np.ndarray:
    """int64 [n]: how many lists (rows of ids [N, k]) contain each image."""
    return np.bincount(np.asarray(ids).ravel(), minlength=n)


def hubness(ids: np.ndarray, k: int | None = None) -> float:
    """Skewness of the k-occurrence distribution of ids[:, :k] (0.0 when every N_k is equal)."""
    ids = np.asarray(ids)
    ids = ids if k is None else ids[:, :k]
    nk = k_occurrence(ids, ids.shape[0]).astype(np.float64)
    sd = nk.std()
    if sd == 0:
        return 0.0
    return float(((nk - nk.mean()) ** 3).mean() / sd ** 3)


def agreement(lists: list[np.ndarray], k: int) -> np.ndarray:
    """float64 [C]: for each of C neighbour lists (ids [N, ≥k], the same queries), its mean
    overlap@k with the C − 1 others. One pass over all lists per block of queries: an id's count
    across the C lists of a row, minus its own, summed over its own top-k, is its overlap with the
    others (no C² pairwise loop). Ids within one row of one list are assumed distinct."""
    c = len(lists)
    if c < 2:
        return np.full(c, np.nan)
    n = lists[0].shape[0]
    total = np.zeros(c, dtype=np.float64)
    step = max(1, min(AGREEMENT_ROWS, AGREEMENT_ELEMENTS // (c * k)))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        block = np.stack([np.asarray(x)[lo:hi, :k] for x in lists], axis=1).astype(np.int64)  # [r, C, k]
        rows = hi - lo
        flat = block.reshape(rows, c * k)
        order = np.argsort(flat, axis=1, kind="stable")
        sorted_ = np.take_along_axis(flat, order, axis=1)
        # run lengths of equal ids in each sorted row, scattered back to every member of the run
        starts = np.ones_like(sorted_, dtype=bool)
        starts[:, 1:] = sorted_[:, 1:] != sorted_[:, :-1]
        run_id = np.cumsum(starts, axis=1) - 1
        base = np.arange(rows)[:, None] * (c * k)
        counts = np.bincount((base + run_id).ravel(), minlength=rows * c * k)
        per_sorted = counts[(base + run_id).ravel()].reshape(rows, c * k)
        per_item = np.empty_like(per_sorted)
        np.put_along_axis(per_item, order, per_sorted, axis=1)
        total += (per_item.reshape(rows, c, k) - 1).sum(axis=(0, 2))
    return total / (n * k * (c - 1))
