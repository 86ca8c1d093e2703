"""Update stored top-k neighbours after images were added, removed or re-extracted (no full N² pass).

Adding 100 images to 100,000 must not recompute 10¹⁰ distances. Rows whose features were carried
over bit for bit (shards.row_map) keep their old list; only the distances between them and the
*fresh* rows (new or re-extracted) are computed, and the two are merged. That is exact, not an
approximation, because neighbors.py ranks by distances computed exactly in float64 from the two
vectors alone (the float32 gemm only bounds candidates): d(i, j) does not depend on which other
rows were in the run, so the merge reproduces a full run bit for bit, ties (by smaller id)
included. Rows that lost a neighbour (removed or re-extracted) and rows of a reordered folder are
recomputed in full; so is everything when the merge would not be cheaper.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .neighbors import top_k_query


@dataclass(frozen=True)
class UpdateStats:
    merged: int  # rows whose old list was merged with the fresh rows
    recomputed: int  # rows searched against all rows (fresh rows + rows that lost a neighbour)


def _drop_self(ids: np.ndarray, dists: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """From k+1 results per query row, the k best other than the row itself (= exclude-self order)."""
    keep = ids != rows[:, None]
    # each row has its own id at most once: drop it if present, else drop the last entry
    keep[np.all(keep, axis=1), -1] = False
    return ids[keep].reshape(len(rows), k), dists[keep].reshape(len(rows), k)


def _search_rows(X: np.ndarray, rows: np.ndarray, k: int, metric: str, p: float, L: int | None):
    ids, dists = top_k_query(X[rows], X, k + 1, metric, p=p, minkowski_candidates=L)
    return _drop_self(ids, dists, rows, k)


def _merge(a_ids, a_d, b_ids, b_d, k):
    """Row-wise k smallest of two candidate lists by (distance, id); the lists share no id.

    Also returns the rows whose result is ambiguous: neighbors.py ranks by float64 distances and
    stores float32, so when an entry of the top k has the same float32 distance as an entry of the
    *other* list, a full run may order (or choose) them differently; those rows are recomputed.
    Within one list the order is already the full run's."""
    ids = np.concatenate([a_ids, b_ids], axis=1)
    d = np.concatenate([a_d, b_d], axis=1)
    origin = np.concatenate([np.zeros(a_ids.shape, bool), np.ones(b_ids.shape, bool)], axis=1)
    # by distance, then position in its own list: equal float32 distances within one list keep
    # that list's (float64, id) order; equal ones across lists are flagged below
    pos = np.concatenate([np.broadcast_to(np.arange(a_ids.shape[1]), a_ids.shape),
                          np.broadcast_to(np.arange(b_ids.shape[1]), b_ids.shape)], axis=1)
    order = np.lexsort((pos, d), axis=1)[:, :k]
    d_top = np.take_along_axis(d, order, 1)
    o_top = np.take_along_axis(origin, order, 1)
    # ambiguous: an entry of the top k ties with an entry of the other list (kept or not)
    ambiguous = np.zeros(len(d), dtype=bool)
    for r0 in range(0, len(d), 4096):  # bounded memory: 4096 × k × (k_a + k_b) booleans
        sl = slice(r0, r0 + 4096)
        tie = (d_top[sl, :, None] == d[sl, None, :]) & (o_top[sl, :, None] != origin[sl, None, :])
        ambiguous[sl] = tie.any(axis=(1, 2))
    return np.take_along_axis(ids, order, 1), np.take_along_axis(d, order, 1), ambiguous


def update_neighbors(X: np.ndarray, k: int, metric: str, old_ids: np.ndarray, old_dists: np.ndarray,
                     old_to_new: np.ndarray, *, p: float = 3.0, minkowski_candidates: int | None = None
                     ) -> tuple[np.ndarray, np.ndarray, UpdateStats]:
    """Top-k of every row of X (the new features) from the old rows' stored top-k.

    old_ids/old_dists: the stored result [N_old, k_old] for the old features; old_to_new[o]: the new
    row of old row o when its features are carried over bit for bit, else −1. Returns what
    neighbors.top_k_neighbors(X, k, metric, p=p) returns, and how many rows were merged/recomputed.
    minkowski_candidates: the L the full run used above neighbors.MINKOWSKI_EXACT_MAX rows (its
    result is then a measured-recall approximation, and so is this update's: searched rows use the
    same rule, merged rows re-rank the euclidean top-L of the fresh rows).
    """
    L = minkowski_candidates
    n = X.shape[0]
    k_old = old_ids.shape[1] if old_ids.ndim == 2 else 0
    kept_old = np.flatnonzero(old_to_new >= 0)
    kept_new = old_to_new[kept_old]
    ids = np.empty((n, k), dtype=np.int64)
    dists = np.empty((n, k), dtype=np.float32)
    fresh = np.ones(n, dtype=bool)
    fresh[kept_new] = False
    monotone = bool(np.all(np.diff(kept_new) > 0))  # else old ties (by old id) may not be new ties
    if k_old < k or not monotone or len(kept_old) == 0:
        rows = np.arange(n)
        ids[:], dists[:] = _search_rows(X, rows, k, metric, p, L)
        return ids, dists, UpdateStats(0, n)
    mapped = old_to_new[old_ids[kept_old, :k]]  # k_old ≥ k: the first k of a longer list are the top-k
    lost = np.any(mapped < 0, axis=1)
    merge_new, merge_old = kept_new[~lost], kept_old[~lost]
    recompute = [np.flatnonzero(fresh), kept_new[lost]]
    if len(merge_new):
        fresh_rows = np.flatnonzero(fresh)
        a_ids, a_d = mapped[~lost], old_dists[merge_old, :k]
        if len(fresh_rows):
            f_ids, f_d = top_k_query(X[merge_new], X[fresh_rows], min(k, len(fresh_rows)), metric, p=p,
                                     minkowski_candidates=L)
            a_ids, a_d, ambiguous = _merge(a_ids, a_d, fresh_rows[f_ids], f_d, k)
            recompute.append(merge_new[ambiguous])
            a_ids, a_d, merge_new = a_ids[~ambiguous], a_d[~ambiguous], merge_new[~ambiguous]
        ids[merge_new], dists[merge_new] = a_ids, a_d
    rows = np.sort(np.concatenate(recompute))
    if len(rows):
        ids[rows], dists[rows] = _search_rows(X, rows, k, metric, p, L)
    return ids, dists, UpdateStats(len(merge_new), len(rows))


def place_new_points(coords_old: np.ndarray, old_to_new: np.ndarray, nbr_ids: np.ndarray,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 2-D map for the new rows without a new UMAP layout: carried-over points keep their place,
    each other point goes to the mean of its carried-over neighbours (nbr_ids: the new top-k),
    with a small seeded jitter so duplicates do not stack; a point with none goes to the centre.

    Returns (coords [N, 2] float32, placed: bool [N], True where a point was placed this way).
    The layout is then no longer what a full UMAP run would give; callers record it (docs/bundle.md).
    """
    n = nbr_ids.shape[0]
    coords = np.zeros((n, 2), dtype=np.float32)
    kept_old = np.flatnonzero(old_to_new >= 0)
    has = np.zeros(n, dtype=bool)
    has[old_to_new[kept_old]] = True
    coords[old_to_new[kept_old]] = coords_old[kept_old]
    placed = ~has
    rows = np.flatnonzero(placed)
    if len(rows) == 0:
        return coords, placed
    spread = float(np.std(coords[has])) if has.any() else 1.0
    rng = np.random.default_rng(seed)
    centre = coords[has].mean(axis=0) if has.any() else np.zeros(2, dtype=np.float32)
    for r in rows:
        nb = nbr_ids[r][has[nbr_ids[r]]]
        base = coords[nb].mean(axis=0) if len(nb) else centre
        coords[r] = base + rng.normal(0.0, 0.01 * spread, size=2)
    return coords, placed


# Stages use this to decide between an update and a full run.
MAX_PLACED_FRACTION = 0.05  # beyond it a map is laid out again: placed points are not UMAP's layout


def carried_runs(old_files: list[str], old_arrays, new_files: list[str], new_arrays, keys) -> list[list[int]]:
    """Rows of the new features that equal, bit for bit in every matrix, the old row of the same
    file: [[new_start, old_start, length], …] runs (compact: a few runs after a few insertions).

    Bit equality, not the file name, is what makes the neighbour update exact; the name only pairs
    the rows to compare (a re-extracted shard usually gives the very same bits, and then its rows
    count as carried too)."""
    old_row = {f: i for i, f in enumerate(old_files)}
    pairs = np.array([(j, old_row[f]) for j, f in enumerate(new_files) if f in old_row], dtype=np.int64).reshape(-1, 2)
    if len(pairs):
        same = np.ones(len(pairs), dtype=bool)
        for key in keys:
            a = np.ascontiguousarray(new_arrays[key]).view(np.uint8).reshape(len(new_files), -1)
            b = np.ascontiguousarray(old_arrays[key]).view(np.uint8).reshape(len(old_files), -1)
            for s0 in range(0, len(pairs), 4096):  # bounded memory
                p = pairs[s0:s0 + 4096]
                same[s0:s0 + 4096] &= np.all(a[p[:, 0]] == b[p[:, 1]], axis=1)
        pairs = pairs[same]
    runs: list[list[int]] = []
    for j, o in pairs.tolist():
        if runs and runs[-1][0] + runs[-1][2] == j and runs[-1][1] + runs[-1][2] == o:
            runs[-1][2] += 1
        else:
            runs.append([j, o, 1])
    return runs


def basis_of(features_meta: dict) -> dict:
    """What a stage records about the features it read, so a later run can relate rows."""
    return {"fingerprint": features_meta["fingerprint"]}


def carried_rows(old_basis: dict | None, new_features_meta: dict) -> np.ndarray | None:
    """old row → new row for rows carried over from the features an earlier stage output was
    computed from (−1 elsewhere), or None when the two extractions are not consecutive."""
    prev = new_features_meta.get("previous")
    if not prev or not old_basis or old_basis.get("fingerprint") != prev["fingerprint"]:
        return None
    out = np.full(prev["n"], -1, dtype=np.int64)
    for j, o, length in prev["rows"]:
        out[o:o + length] = np.arange(j, j + length)
    return out


def updated_atlas(avg: np.ndarray, fresh_rows: np.ndarray, fresh, old, new_of_old: np.ndarray, top: int):
    """The channel atlas of a dataset after an update (atlas.py's PartialAtlas), without a full pass.

    avg: [N, C] the channel means of every new row (the stored avg features); fresh_rows: bool [N],
    rows extracted in this run, whose maps `fresh` (a PartialAtlas over them, new ids) holds; old:
    the previous atlas (old ids) and new_of_old[o]: o's new row where its shard was reused (−1
    elsewhere). The top images come from `avg` exactly as a full run selects them (value
    descending, ties by id); their maps come from `fresh` or `old`. Returns (ids [C, t], values,
    maps [C, t, h, w] with NaN where neither has the map, missing: bool [C, t]): those few maps
    (an image newly in a channel's top because a former one left) need a small extra pass.
    """
    c = avg.shape[1]
    t = min(top, avg.shape[0])
    vals = np.ascontiguousarray(avg.T, dtype=np.float32)  # [C, N]
    # value descending, ties by smaller id: every value ≥ the t-th largest (ties included), sorted
    kth = np.partition(vals, vals.shape[1] - t, axis=1)[:, vals.shape[1] - t]
    ids = np.empty((c, t), dtype=np.int64)
    for ch in range(c):
        pool = np.flatnonzero(vals[ch] >= kth[ch])
        ids[ch] = pool[np.lexsort((pool, -vals[ch, pool].astype(np.float64)))[:t]]
    values = np.take_along_axis(vals, ids, 1)
    h, w = fresh.maps.shape[2:] if fresh is not None else old.maps.shape[2:]
    maps = np.full((c, t, h, w), np.nan, dtype=np.float32)
    old_new = np.where(old.ids >= 0, new_of_old[np.maximum(old.ids, 0)], -1) if old is not None else None
    for ch in range(c):
        for r, i in enumerate(ids[ch]):
            src = None
            if fresh_rows[i] and fresh is not None:
                hit = np.flatnonzero(fresh.ids[ch] == i)
                src = fresh.maps[ch, hit[0]] if len(hit) else None
            elif old_new is not None:
                hit = np.flatnonzero(old_new[ch] == i)
                src = old.maps[ch, hit[0]] if len(hit) else None
            if src is not None:
                maps[ch, r] = src
    return ids, values, maps, np.isnan(maps[:, :, 0, 0])
