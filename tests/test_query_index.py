"""search/query_index.py: a prepared database answers exactly what neighbors.top_k_query answers
(ids and distances bit for bit, ties included), for every metric and for duplicate-heavy data
whose candidate lists overflow."""
from __future__ import annotations

import numpy as np
import pytest

from convnet_search.search.neighbors import top_k_query
from convnet_search.search.query_index import QueryIndex


def _data(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.maximum(rng.normal(0.2, 1.0, size=(n, d)), 0).astype(np.float32)


@pytest.mark.parametrize("metric", ["cosine", "euclidean", "sqeuclidean", "minkowski"])
def test_equals_top_k_query(metric):
    X, Q = _data(9000, 48, 0), _data(5, 48, 1)  # more items than one gemm tile of columns
    index = QueryIndex(X, metric, p=3.0)
    for k in (1, 15, 40):
        got, want = index.query(Q, k), top_k_query(Q, X, k, metric, p=3.0)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_ties_and_overflowing_candidate_lists(metric):
    rng = np.random.default_rng(2)
    base = rng.integers(0, 3, size=(4, 16)).astype(np.float32)
    X = np.repeat(base, 200, axis=0)  # 200 exact duplicates of each of 4 rows
    rng.shuffle(X)
    Q = np.vstack([base[:2], _data(2, 16, 3)])
    got, want = QueryIndex(X, metric).query(Q, 100), top_k_query(Q, X, 100, metric)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])


def test_rescaled_magnitudes_and_float64_take_the_kernels_own_path():
    X = _data(300, 8, 4) * np.float32(2.0 ** 30)
    Q = _data(2, 8, 5) * np.float32(2.0 ** 30)
    got, want = QueryIndex(X, "euclidean").query(Q, 7), top_k_query(Q, X, 7, "euclidean")
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    X64 = _data(300, 8, 6).astype(np.float64)
    got, want = QueryIndex(X64, "cosine").query(X64[:3], 5), top_k_query(X64[:3], X64, 5, "cosine")
    assert np.array_equal(got[0], want[0])


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="same number of columns"):
        QueryIndex(_data(10, 4, 0), "cosine").query(_data(1, 5, 0), 3)
