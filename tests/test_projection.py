"""UMAP stage: unit-square normalisation (pure) and reproducibility with a fixed seed."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from convnet_search.search.projection import UmapConfig
from convnet_search.search.projection import normalize_unit_square, umap_2d


@given(arrays(np.float64, st.tuples(st.integers(2, 50), st.just(2)),
              elements=st.floats(-1e6, 1e6, allow_nan=False)))
@settings(max_examples=60, deadline=None)
def test_normalize_keeps_aspect_and_fits_unit_square(xy):
    out = normalize_unit_square(xy).astype(np.float64)
    assert out.min() >= -1e-6 and out.max() <= 1 + 1e-6
    span = xy.max(axis=0) - xy.min(axis=0)
    if span.max() > 1e-3:
        # uniform scale: pairwise distances shrink by one common factor
        d_in = np.linalg.norm(xy[0] - xy[1])
        d_out = np.linalg.norm(out[0] - out[1])
        assert np.isclose(d_out, d_in / span.max(), rtol=1e-4, atol=1e-5)


def test_umap_is_reproducible_and_separates_clusters():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 64)) * 10
    x = np.concatenate([c + rng.normal(size=(20, 64)) for c in centers]).astype(np.float32)
    a = umap_2d(x, UmapConfig(), seed=0)
    b = umap_2d(x, UmapConfig(), seed=0)
    assert a.shape == (60, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    # each cluster's centroid is far from the others relative to its spread
    cents = np.stack([a[i * 20:(i + 1) * 20].mean(0) for i in range(3)])
    spread = max(a[i * 20:(i + 1) * 20].std(0).max() for i in range(3))
    gaps = [np.linalg.norm(cents[i] - cents[j]) for i in range(3) for j in range(i + 1, 3)]
    assert min(gaps) > 2 * spread


def test_umap_handles_zero_vectors_under_cosine():
    x = np.random.default_rng(1).random((30, 8)).astype(np.float32)
    x[:5] = 0
    with pytest.warns(RuntimeWarning, match="zero feature vectors"):
        out = umap_2d(x, UmapConfig(metric="cosine"), seed=0)
    assert np.isfinite(out).all()


def test_two_or_three_images_still_get_a_map():
    """A folder of 2-3 images runs (small folders work): distinct points inside the unit square."""
    for n in (2, 3):
        x = np.random.default_rng(n).normal(size=(n, 16)).astype(np.float32)
        xy = umap_2d(x, UmapConfig(), seed=0)
        assert xy.shape == (n, 2) and xy.min() >= 0 and xy.max() <= 1
        assert len({tuple(p) for p in np.round(xy, 6)}) == n


# ---- UMAP reuses the neighbours stage's kNN graph (umap-learn's precomputed_knn) ----------------

def _clusters(n_per: int = 20, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(3, dim)) * 4
    return np.concatenate([c + rng.normal(size=(n_per, dim)) for c in centers]).astype(np.float32)


def _record_umap_knn(monkeypatch) -> list:
    """Patch umap.UMAP so each construction records the precomputed_knn it was given."""
    import umap

    seen: list = []
    real = umap.UMAP

    def recording(*args, **kwargs):
        seen.append(kwargs.get("precomputed_knn"))
        return real(*args, **kwargs)

    monkeypatch.setattr(umap, "UMAP", recording)
    return seen


def _stored_graph(x: np.ndarray, metric: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    from convnet_search.search.neighbors import top_k_neighbors

    ids, dists = top_k_neighbors(x, k, metric)
    return ids.astype(np.int32), dists.astype(np.float32)  # as the neighbours stage stores them


def test_precomputed_graph_is_the_brute_force_cosine_knn_with_self_first(monkeypatch):
    from scipy.spatial.distance import cdist

    x = _clusters()
    seen = _record_umap_knn(monkeypatch)
    umap_2d(x, UmapConfig(n_neighbors=15, metric="cosine"), seed=0,
            graphs={"cosine": _stored_graph(x, "cosine", 20)})
    knn_ids, knn_dists = seen[-1]
    d = cdist(x.astype(np.float64), x.astype(np.float64), "cosine")
    ranked = d.copy()
    np.fill_diagonal(ranked, -np.inf)  # itself first, as umap-learn expects
    ref = np.argsort(ranked, axis=1, kind="stable")[:, :15]
    assert knn_ids.shape == knn_dists.shape == (60, 15)
    np.testing.assert_array_equal(knn_ids, ref)
    np.testing.assert_array_equal(knn_ids[:, 0], np.arange(60))
    assert (knn_dists[:, 0] == 0).all()
    np.testing.assert_allclose(knn_dists[:, 1:], np.take_along_axis(d, ref, axis=1)[:, 1:], rtol=1e-5, atol=1e-7)


def test_precomputed_knn_refuses_too_few_columns():
    ids = np.zeros((5, 3), dtype=np.int32)
    with pytest.raises(ValueError, match="needs 4"):
        from convnet_search.search.projection import precomputed_knn
        precomputed_knn(ids, ids.astype(np.float32), 5)


def test_umap_builds_its_own_graph_when_the_stored_one_does_not_fit(monkeypatch):
    x = _clusters()
    seen = _record_umap_knn(monkeypatch)
    cos = {"cosine": _stored_graph(x, "cosine", 20)}
    umap_2d(x, UmapConfig(metric="manhattan"), seed=0, graphs=cos)  # another metric
    umap_2d(x, UmapConfig(n_neighbors=15), seed=0, graphs={"cosine": _stored_graph(x, "cosine", 13)})  # 13 < 14
    umap_2d(x, UmapConfig(metric="euclidean"), seed=0, graphs=cos)  # no euclidean graph stored
    assert seen == [(None, None, None)] * 3


def test_zero_vectors_fall_back_to_the_stored_euclidean_graph(monkeypatch):
    x = np.random.default_rng(1).random((30, 8)).astype(np.float32)
    x[:5] = 0
    seen = _record_umap_knn(monkeypatch)
    graphs = {"cosine": _stored_graph(x, "cosine", 15), "euclidean": _stored_graph(x, "euclidean", 15)}
    with pytest.warns(RuntimeWarning, match="zero feature vectors"):
        umap_2d(x, UmapConfig(metric="cosine"), seed=0, graphs=graphs)
    np.testing.assert_array_equal(seen[-1][0][:, 1:], graphs["euclidean"][0][:, :14])


def test_shared_graph_metrics_follow_the_config():
    from convnet_search.config import RunConfig
    from convnet_search.stages.umap import shared_graph_metrics

    assert shared_graph_metrics(RunConfig()) == ["cosine", "euclidean"]  # defaults: k 15, n_neighbors 15
    assert shared_graph_metrics(RunConfig(k=14)) == ["cosine", "euclidean"]  # 14 + itself = 15
    assert shared_graph_metrics(RunConfig(k=13)) == []
    assert shared_graph_metrics(RunConfig(metrics=("euclidean", "minkowski"))) == []  # UMAP is cosine
    assert shared_graph_metrics(RunConfig(umap=UmapConfig(metric="l2"))) == ["cosine", "euclidean"]
    assert shared_graph_metrics(RunConfig(umap=UmapConfig(metric="manhattan"))) == []


def test_umap_with_the_stored_graph_is_reproducible_and_as_good(monkeypatch):
    from sklearn.manifold import trustworthiness

    x = _clusters(n_per=40)
    graphs = {"cosine": _stored_graph(x, "cosine", 15)}
    a = umap_2d(x, UmapConfig(), seed=0, graphs=graphs)
    b = umap_2d(x, UmapConfig(), seed=0, graphs=graphs)
    assert a.tobytes() == b.tobytes()
    own = umap_2d(x, UmapConfig(), seed=0)
    t_shared = trustworthiness(x, a, n_neighbors=10, metric="cosine")
    t_own = trustworthiness(x, own, n_neighbors=10, metric="cosine")
    assert t_shared > 0.9 and abs(t_shared - t_own) < 0.02


def _fake_stage_inputs(x: np.ndarray, k: int, nbr_fp: str):
    from convnet_search.io.store import StoredArrays

    feats = StoredArrays({"fingerprint": "f1", "model": "m", "layers": [{"name": "l"}], "poolings": ["avg"]},
                         {"avg/l": x})
    ids, dists = _stored_graph(x, "cosine", k)
    nbrs = StoredArrays({"fingerprint": nbr_fp}, {"avg/l/cosine/ids": ids, "avg/l/cosine/dists": dists})
    return feats, nbrs


def test_umap_stage_reads_the_neighbours_stage_and_fingerprints_it(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from convnet_search.config import RunConfig
    from convnet_search.stages.umap import umap_stage
    from convnet_search.io.store import ArrayStore

    x = _clusters()
    ds = SimpleNamespace(id="d")
    cfg = RunConfig(metrics=("cosine",))
    store = ArrayStore(tmp_path / "umap")
    seen = _record_umap_knn(monkeypatch)
    feats, nbrs = _fake_stage_inputs(x, 15, "n1")
    first = umap_stage(ds, feats, cfg, store, nbrs)
    assert seen[-1][0].shape == (60, 15)  # the stored graph was used
    assert umap_stage(ds, feats, cfg, store, nbrs).meta["fingerprint"] == first.meta["fingerprint"]
    assert len(seen) == 1  # up to date: not recomputed
    feats, nbrs = _fake_stage_inputs(x, 15, "n2")  # another neighbours output: the map is redone
    second = umap_stage(ds, feats, cfg, store, nbrs)
    assert len(seen) == 2 and second.meta["fingerprint"] != first.meta["fingerprint"]
    np.testing.assert_array_equal(second.arrays["avg/l"], first.arrays["avg/l"])  # same graph, same map
    # k too small for n_neighbors 15: today's path, whose fingerprint ignores the neighbours stage
    feats, nbrs = _fake_stage_inputs(x, 5, "n3")
    own = umap_stage(ds, feats, RunConfig(metrics=("cosine",), k=5), store, nbrs)
    assert seen[-1] == (None, None, None)
    feats, nbrs = _fake_stage_inputs(x, 5, "n4")
    assert umap_stage(ds, feats, RunConfig(metrics=("cosine",), k=5), store, nbrs).meta == own.meta
    assert len(seen) == 3
