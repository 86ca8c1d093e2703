"""Incremental neighbours and maps (convnet_search/incremental.py) equal a full run, bit for bit."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from convnet_search.search.incremental import place_new_points, update_neighbors
from convnet_search.search.neighbors import top_k_neighbors

METRICS = ["cosine", "euclidean", "sqeuclidean", "minkowski"]


def _edit(X_old: np.ndarray, rng, n_remove: int, n_insert: int, n_changed: int, integer: bool):
    """New features: some old rows removed, some re-extracted (fresh), some new rows inserted.

    Returns (X_new, old_to_new) with old_to_new[o] = new row of a carried-over old row, else −1."""
    n, d = X_old.shape
    alive = np.ones(n, bool)
    alive[rng.choice(n, n_remove, replace=False)] = False
    rows, origin = [], []
    for o in range(n):
        if rng.random() < n_insert / n:
            rows.append(rng.integers(0, 4, d).astype(np.float32) if integer else rng.random(d, dtype=np.float32))
            origin.append(-1)
        if alive[o]:
            rows.append(X_old[o])
            origin.append(o)
    X = np.stack(rows).astype(np.float32)
    old_to_new = np.full(n, -1, np.int64)
    for new, o in enumerate(origin):
        if o >= 0:
            old_to_new[o] = new
    changed = rng.choice(np.flatnonzero(old_to_new >= 0), n_changed, replace=False)
    old_to_new[changed] = -1  # re-extracted: the same image, features not carried over
    return X, old_to_new


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("integer", [False, True], ids=["floats", "ties"])
def test_update_equals_a_full_run(metric, integer):
    rng = np.random.default_rng(3)
    n, d, k = 400, 12, 9
    X_old = (rng.integers(0, 4, (n, d)) if integer else rng.random((n, d))).astype(np.float32)
    old_ids, old_d = top_k_neighbors(X_old, k, metric)
    X, m = _edit(X_old, rng, n_remove=5, n_insert=20, n_changed=8, integer=integer)
    ids, dists, stats = update_neighbors(X, k, metric, old_ids, old_d, m)
    ref_ids, ref_d = top_k_neighbors(X, k, metric)
    assert np.array_equal(ids, ref_ids)
    assert np.array_equal(dists.view(np.uint32), ref_d.view(np.uint32))  # bit for bit
    assert stats.merged + stats.recomputed == len(X)
    if not integer:
        assert stats.merged > len(X) / 2  # the point: most rows are not searched again


def test_nothing_changed_is_a_pure_remap_and_a_shorter_k_uses_the_head_of_the_list():
    rng = np.random.default_rng(0)
    X = rng.random((120, 8)).astype(np.float32)
    ids, d = top_k_neighbors(X, 10, "cosine")
    same = np.arange(120)
    u_ids, u_d, stats = update_neighbors(X, 6, "cosine", ids, d, same)
    r_ids, r_d = top_k_neighbors(X, 6, "cosine")
    assert np.array_equal(u_ids, r_ids) and np.array_equal(u_d, r_d)
    assert stats.recomputed == 0


def test_reordered_rows_or_a_longer_k_fall_back_to_a_full_search():
    rng = np.random.default_rng(1)
    X = rng.random((60, 5)).astype(np.float32)
    ids, d = top_k_neighbors(X, 4, "euclidean")
    perm = rng.permutation(60)
    Xp = X[perm]
    m = np.empty(60, np.int64)
    m[perm] = np.arange(60)
    u = update_neighbors(Xp, 4, "euclidean", ids, d, m)
    assert u[2].recomputed == 60 and np.array_equal(u[0], top_k_neighbors(Xp, 4, "euclidean")[0])
    u = update_neighbors(X, 7, "euclidean", ids, d, np.arange(60))
    assert u[2].recomputed == 60 and np.array_equal(u[0], top_k_neighbors(X, 7, "euclidean")[0])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(12, 80), k=st.integers(1, 6),
       metric=st.sampled_from(METRICS))
def test_update_equals_a_full_run_property(seed, n, k, metric):
    rng = np.random.default_rng(seed)
    X_old = rng.integers(0, 3, (n, 3)).astype(np.float32)  # many exact ties and duplicates
    old_ids, old_d = top_k_neighbors(X_old, k, metric)
    X, m = _edit(X_old, rng, n_remove=int(rng.integers(0, 4)), n_insert=int(rng.integers(0, 6)),
                 n_changed=int(rng.integers(0, 3)), integer=True)
    if len(X) <= k:
        return
    ids, dists, _ = update_neighbors(X, k, metric, old_ids, old_d, m)
    ref_ids, ref_d = top_k_neighbors(X, k, metric)
    assert np.array_equal(ids, ref_ids) and np.array_equal(dists, ref_d)


def test_new_points_are_placed_among_their_carried_over_neighbours():
    coords_old = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], np.float32)
    m = np.array([0, 1, 3, -1])  # old 2 is new 3; old 3 removed; new row 2 is fresh
    nbrs = np.array([[1, 2], [0, 3], [0, 1], [1, 2]])  # new row 2's neighbours: new 0 and 1
    coords, placed = place_new_points(coords_old, m, nbrs, seed=0)
    assert placed.tolist() == [False, False, True, False]
    assert np.array_equal(coords[[0, 1, 3]], coords_old[[0, 1, 2]])
    assert np.allclose(coords[2], [5, 0], atol=0.5)
    again, _ = place_new_points(coords_old, m, nbrs, seed=0)
    assert np.array_equal(coords, again)  # seeded


# ---------------------------------------------------------------------------------------------
# The stages: adding images re-extracts only nearby shards and updates neighbours exactly
# ---------------------------------------------------------------------------------------------

def _config(path, shard_size=8):
    path.write_text('models = ["mobilenet_025"]\nnum_layers = 2\npooling = ["avg", "max"]\n'
                    'metrics = ["cosine", "euclidean", "sqeuclidean", "minkowski"]\nweights = "none"\n'
                    f'shard_size = {shard_size}\nbatch_size = 4\nbrowser_search = false\nk = 5\n')
    return path


def test_adding_images_updates_every_stage_like_a_cold_run(tmp_path):
    from test_cli import add_plain_images, read_bundle

    from convnet_search import pipeline
    from convnet_search.config import load_config
    from convnet_search.io.store import ArrayStore

    data = tmp_path / "data"
    add_plain_images(data, 40, ["a", "b", "c"])
    cfg = _config(tmp_path / "c.toml")

    def run(work, out):
        return pipeline.run(load_config(cfg, {"datasets": [str(data)], "out": str(out), "work": str(work)}))

    run(tmp_path / "w", tmp_path / "o")
    from PIL import Image

    rng = np.random.default_rng(7)
    for c in ("a", "b", "c"):  # two new photos per class, named after the others
        for i in (90, 91):
            Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(data / c / f"plain_{i}.png")
    from io import StringIO

    from rich.console import Console

    said = StringIO()
    rep = pipeline.run(load_config(cfg, {"datasets": [str(data)], "out": str(tmp_path / "o"),
                                         "work": str(tmp_path / "w")}), Console(file=said, width=200))
    assert "the unchanged shards were reused" in said.getvalue()
    assert "neighbours updated, not recomputed" in said.getvalue()
    assert "6 new images placed on the existing maps" in said.getvalue()
    ext = rep.extract[0]
    assert ext.status == "updated" and ext.images == 126 and ext.computed < 126 / 2, ext
    cold = run(tmp_path / "w2", tmp_path / "o2")
    assert cold.extract[0].status == "extracted"
    for stage in ("features", "neighbors"):
        a = ArrayStore(tmp_path / "w" / stage).load(data.name, "mobilenet_025")
        b = ArrayStore(tmp_path / "w2" / stage).load(data.name, "mobilenet_025")
        assert a.arrays.keys() == b.arrays.keys()
        for key in a.arrays:  # bit for bit
            assert a.arrays[key].tobytes() == b.arrays[key].tobytes(), (stage, key)
    nb = ArrayStore(tmp_path / "w" / "neighbors").read_meta(data.name, "mobilenet_025")
    assert nb["update"]["rows_merged"] > 4 * nb["update"]["rows_searched"]  # re-extracted rows were bit-equal: carried
    maps = ArrayStore(tmp_path / "w" / "umap").read_meta(data.name, "mobilenet_025")
    assert maps["placed"] == 6  # the new points were placed among their neighbours, not laid out again
    a, b = read_bundle(tmp_path / "o"), read_bundle(tmp_path / "o2")
    assert a.keys() == b.keys()
    differ = sorted(k for k in a if a[k] != b[k])
    assert differ and all(k.endswith("umap.f32") for k in differ), differ


def test_minkowski_candidate_rule_is_kept_by_the_update():
    """Above neighbors.MINKOWSKI_EXACT_MAX the full run re-ranks euclidean candidates; the update
    follows the same rule (here forced on a small matrix) and stays close to exact."""
    rng = np.random.default_rng(5)
    X_old = rng.random((500, 16)).astype(np.float32)
    old_ids, old_d = top_k_neighbors(X_old, 10, "minkowski")
    X, m = _edit(X_old, rng, n_remove=3, n_insert=15, n_changed=5, integer=False)
    ids, _, stats = update_neighbors(X, 10, "minkowski", old_ids, old_d, m, minkowski_candidates=40)
    exact = top_k_neighbors(X, 10, "minkowski")[0]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact)])
    assert recall >= 0.97 and stats.merged > 0
