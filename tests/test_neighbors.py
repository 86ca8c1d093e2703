"""Exact top-k: equal to a brute-force scipy reference (ties included), per metric and block size."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.spatial.distance import cdist

from convnet_search.search.neighbors import (
    METRICS,
    Metric,
    resolve_metric,
    top_k_neighbors,
    top_k_neighbors_multi,
    top_k_query,
    validate_minkowski_p,
)

ALL = ["cosine", "euclidean", "sqeuclidean", "minkowski"]


def reference(Q, X, k, metric, p=3.0, exclude_self=False):
    """Brute force: full float64 cdist, then a stable sort by (distance, id)."""
    Q64, X64 = np.asarray(Q, np.float64), np.asarray(X, np.float64)
    kw = {"p": p} if metric == "minkowski" else {}
    with np.errstate(invalid="ignore", divide="ignore"):
        D = cdist(Q64, X64, metric, **kw)
    if metric == "cosine":  # docs/bundle.md: a zero vector has distance 1 to everything
        D[np.linalg.norm(Q64, axis=1) == 0, :] = 1.0
        D[:, np.linalg.norm(X64, axis=1) == 0] = 1.0
    if exclude_self:
        np.fill_diagonal(D, np.inf)
    ids = np.empty((len(Q64), k), dtype=np.int64)
    for q in range(len(Q64)):
        ids[q] = np.lexsort((np.arange(len(X64)), D[q]))[:k]
    return ids, np.take_along_axis(D, ids, axis=1)


def assert_equal_reference(X, k, metric, p=3.0, block_rows=None):
    ids, d = top_k_neighbors(X, k, metric, p=p, block_rows=block_rows)
    rids, rd = reference(X, X, k, metric, p=p, exclude_self=True)
    assert ids.dtype == np.int64 and d.dtype == np.float32 and ids.shape == d.shape == (len(X), k)
    np.testing.assert_array_equal(ids, rids)
    np.testing.assert_allclose(d, rd, rtol=1e-6, atol=1e-6)


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(1234)


@pytest.mark.parametrize("metric", ALL)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block_rows", [None, 7, 64])
def test_random_data_equals_reference(metric, dtype, block_rows, rng):
    X = rng.normal(size=(150, 24)).astype(dtype)
    assert_equal_reference(X, 15, metric, block_rows=block_rows)


@pytest.mark.parametrize("metric", ALL)
def test_clustered_nonnegative_data_like_cnn_features(metric, rng):
    centers = rng.gamma(1.0, size=(6, 64))
    X = np.maximum(centers[rng.integers(0, 6, 240)] + rng.normal(0, 0.5, (240, 64)), 0).astype(np.float32)
    assert_equal_reference(X, 15, metric, block_rows=50)


@pytest.mark.parametrize("metric", ALL)
@pytest.mark.parametrize("block_rows", [5, 1000])
def test_duplicate_rows_ties_broken_by_smaller_id(metric, block_rows, rng):
    base = rng.normal(size=(20, 6))
    X = base[rng.permutation(np.repeat(np.arange(20), 6))]  # every row has 5 exact duplicates
    assert_equal_reference(X, 15, metric, block_rows=block_rows)
    ids, d = top_k_neighbors(X, 5, metric, block_rows=block_rows)
    # the 5 nearest of each row are its duplicates, at distance 0 (cosine: 0 up to float64
    # rounding of x·x / ‖x‖², exactly as scipy computes it), in ascending id order
    assert np.all(d == 0) if metric != "cosine" else np.all(d < 1e-12)
    assert np.all(np.diff(ids, axis=1) > 0)


@pytest.mark.parametrize("metric", ALL)
def test_integer_vectors_with_exact_distance_ties(metric, rng):
    # small integer coordinates: many pairs share exactly the same distance
    X = rng.integers(-2, 3, size=(200, 4)).astype(np.float32)
    assert_equal_reference(X, 15, metric, block_rows=33)
    ids, d = top_k_neighbors(X, 15, metric)
    assert len(np.unique(d)) < d.size / 10  # the data really is full of ties


def test_zero_vector_has_cosine_distance_one_to_everything():
    X = np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0], [0, 0, 0], [-1, 0, 0]], dtype=np.float32)
    ids, d = top_k_neighbors(X, 4, "cosine")
    np.testing.assert_array_equal(ids[0], [1, 2, 3, 4])
    np.testing.assert_array_equal(d[0], [1, 1, 1, 1])
    np.testing.assert_array_equal(ids[1], [0, 2, 3, 4])  # 0, 2, 3 all at distance 1 → by id
    np.testing.assert_allclose(d[1], [1, 1, 1, 2])
    assert_equal_reference(X, 4, "cosine")


def test_minkowski_p3_differs_from_euclidean():
    # From the origin, a=(2,2) is at L2 2.83 and L3 16^(1/3) = 2.52; c=(2.6,0) is at 2.6 under both.
    # So euclidean ranks c first and minkowski p=3 ranks a first.
    X = np.array([[0, 0], [2, 2], [2.6, 0], [10, 10]], dtype=np.float64)
    ide, de = top_k_neighbors(X, 2, "euclidean")
    idm, dm = top_k_neighbors(X, 2, "minkowski", p=3)
    np.testing.assert_array_equal(ide[0], [2, 1])
    np.testing.assert_array_equal(idm[0], [1, 2])
    np.testing.assert_allclose(dm[0], [16 ** (1 / 3), 2.6], rtol=1e-6)
    # and on random data the distances differ from euclidean and match cdist's p=3
    X = np.random.default_rng(5).normal(size=(60, 10))
    assert not np.allclose(top_k_neighbors(X, 15, "minkowski", p=3)[1], top_k_neighbors(X, 15, "euclidean")[1])


@pytest.mark.parametrize("p", [1, 1.5, 3, 4, 2.5, 7])
def test_minkowski_other_p_equals_reference(p, rng):
    X = rng.normal(size=(80, 9))
    assert_equal_reference(X, 10, "minkowski", p=p, block_rows=16)


@pytest.mark.parametrize("bad", [2, 2.0, 0.5, 0, -1, float("inf"), float("nan"), "x", None, True])
def test_minkowski_p_validation(bad):
    with pytest.raises(ValueError, match="p"):
        validate_minkowski_p(bad)
    with pytest.raises(ValueError):
        top_k_neighbors(np.eye(4), 2, "minkowski", p=bad)


def test_p2_message_points_to_euclidean():
    with pytest.raises(ValueError, match="p=2 is euclidean; use metric 'euclidean'"):
        validate_minkowski_p(2)
    assert validate_minkowski_p(3) == 3.0


def test_query_against_database_equals_reference(rng):
    X = rng.normal(size=(120, 16)).astype(np.float32)
    Q = np.vstack([rng.normal(size=(10, 16)), X[:3]]).astype(np.float32)
    for metric in ALL:
        ids, d = top_k_query(Q, X, 20, metric, block_rows=4)
        rids, rd = reference(Q, X, 20, metric)
        np.testing.assert_array_equal(ids, rids)
        np.testing.assert_allclose(d, rd, rtol=1e-6, atol=1e-6)
    # a query equal to a database row is not excluded: it finds itself at distance 0
    ids, d = top_k_query(X[:3], X, 1, "euclidean")
    np.testing.assert_array_equal(ids[:, 0], [0, 1, 2])
    np.testing.assert_array_equal(d[:, 0], [0, 0, 0])
    # mixed dtypes are accepted
    ids64, _ = top_k_query(Q.astype(np.float64), X, 20, "cosine")
    np.testing.assert_array_equal(ids64, top_k_query(Q, X, 20, "cosine")[0])


def test_registry_and_aliases():
    assert list(METRICS) == ALL
    assert all(isinstance(m, Metric) and m.id == key for key, m in METRICS.items())
    for name, want in [
        ("cos", "cosine"), ("COSINE", "cosine"), ("l2", "euclidean"), ("euclidean", "euclidean"),
        ("squared_euclidean", "sqeuclidean"), ("sq-euclidean", "sqeuclidean"), ("sqeuclidean", "sqeuclidean"),
        ("lp", "minkowski"), ("minkowski", "minkowski"),
    ]:
        assert resolve_metric(name) == want
    aliases = [a for m in METRICS.values() for a in (m.id, *m.aliases)]
    assert len(aliases) == len(set(aliases))
    # aliases work in the top-k functions too
    X = np.random.default_rng(0).normal(size=(20, 3))
    np.testing.assert_array_equal(top_k_neighbors(X, 3, "l2")[0], top_k_neighbors(X, 3, "euclidean")[0])


def test_unknown_metric_lists_valid_names():
    with pytest.raises(ValueError) as err:
        resolve_metric("manhattan")
    msg = str(err.value)
    assert "manhattan" in msg and all(m in msg for m in ALL)
    with pytest.raises(ValueError, match="unknown metric"):
        top_k_neighbors(np.eye(5), 2, "hamming")


@pytest.mark.parametrize("k", [0, -1, 5, 6, 2.5, True])
def test_k_out_of_range(k):
    with pytest.raises(ValueError, match="k"):
        top_k_neighbors(np.eye(5), k, "cosine")


def test_k_equals_n_minus_one_lists_everyone_else():
    X = np.random.default_rng(3).normal(size=(7, 3))
    ids, _ = top_k_neighbors(X, 6, "euclidean")
    for q in range(7):
        assert sorted(ids[q]) == [j for j in range(7) if j != q]


@pytest.mark.parametrize(
    "X, match",
    [
        (np.zeros(5), "2-D"),
        (np.zeros((2, 3, 4)), "2-D"),
        (np.zeros((0, 3)), "at least one row"),
        (np.array([[1.0, np.nan], [0.0, 1.0], [1.0, 1.0]]), "NaN or infinite"),
        (np.array([[1.0, np.inf], [0.0, 1.0], [1.0, 1.0]]), "NaN or infinite"),
        (np.array([["a", "b"], ["c", "d"]]), "real numbers"),
    ],
)
def test_input_validation(X, match):
    with pytest.raises(ValueError, match=match):
        top_k_neighbors(X, 1, "euclidean")


def test_query_dimension_mismatch():
    with pytest.raises(ValueError, match="same number of columns"):
        top_k_query(np.zeros((2, 3)), np.zeros((5, 4)), 1, "cosine")


def test_integer_input_is_accepted():
    X = np.array([[0, 0], [1, 0], [3, 0], [7, 0]], dtype=np.int32)
    ids, d = top_k_neighbors(X, 1, "sqeuclidean")
    np.testing.assert_array_equal(ids[:, 0], [1, 0, 1, 2])
    np.testing.assert_array_equal(d[:, 0], [1, 1, 4, 16])


def test_bad_block_rows():
    with pytest.raises(ValueError, match="block_rows"):
        top_k_neighbors(np.eye(4), 1, "cosine", block_rows=0)


# ---- euclidean and squared euclidean share one top-k ----------------------------------------

def _assert_shared_equals_separate(X, k, block_rows=None):
    got = top_k_neighbors_multi(X, k, ["sqeuclidean", "l2", "cosine"], block_rows=block_rows)
    assert list(got) == ["sqeuclidean", "l2", "cosine"]  # keyed and ordered as asked
    for name, metric in [("sqeuclidean", "sqeuclidean"), ("l2", "euclidean"), ("cosine", "cosine")]:
        ids, d = top_k_neighbors(X, k, metric, block_rows=block_rows)
        np.testing.assert_array_equal(got[name][0], ids)
        np.testing.assert_array_equal(got[name][1], d)  # bit-equal, not merely close
    sq = got["sqeuclidean"][1].astype(np.float64)
    # atol: a distance below sqrt(float32's smallest normal) (1e-19) is kept as float32 while its
    # square underflows when stored (hypothesis found 8.5e-26 whose stored square is 0)
    np.testing.assert_allclose(got["l2"][1], np.sqrt(sq), rtol=1e-6, atol=np.sqrt(np.finfo(np.float32).tiny))


@pytest.mark.parametrize("block_rows", [None, 7])
def test_shared_euclidean_equals_separate_on_data_with_ties(block_rows, rng):
    dup = rng.normal(size=(20, 6))[rng.permutation(np.repeat(np.arange(20), 4))]  # exact duplicates
    ints = rng.integers(-2, 3, size=(150, 4)).astype(np.float32)  # many exactly equal distances
    for X in (dup, ints, rng.normal(size=(90, 12)).astype(np.float32)):
        _assert_shared_equals_separate(X, 15, block_rows)
        assert_equal_reference(X, 15, "euclidean", block_rows=block_rows)


def test_shared_euclidean_breaks_sqrt_rounding_ties_by_smaller_id():
    # From the origin, row 1 is at squared distance 1 + 2⁻⁵² and row 2 at exactly 1: different
    # squared distances, but both square roots round to 1.0, a tie that euclidean must give to the
    # smaller id (as scipy does). Taking sqrt of the squared top-k would list row 2 first.
    X = np.array([[0.0, 0.0], [1.0, 2.0**-26], [1.0, 0.0], [5.0, 5.0]])
    got = top_k_neighbors_multi(X, 1, ["euclidean", "sqeuclidean"])
    assert got["sqeuclidean"][0][0, 0] == 2
    assert got["euclidean"][0][0, 0] == 1
    _assert_shared_equals_separate(X, 2)
    assert_equal_reference(X, 1, "euclidean")


def test_shared_computation_runs_one_gemm_pass_for_both(monkeypatch, rng):
    import convnet_search.search.neighbors as nb

    calls = []
    real = nb._run_gemm
    monkeypatch.setattr(nb, "_run_gemm", lambda *a, **kw: calls.append(a[3]) or real(*a, **kw))
    X = rng.normal(size=(50, 8)).astype(np.float32)
    top_k_neighbors_multi(X, 5, ["euclidean", "sqeuclidean", "cosine", "minkowski"])
    assert sorted(calls) == [0, 2]  # one cosine pass, one shared (sq)euclidean pass (code 2)
    calls.clear()
    top_k_neighbors_multi(X, 5, ["euclidean"])  # alone: its own pass, as before
    assert calls == [1]


def test_neighbors_stage_computes_euclidean_and_sqeuclidean_in_one_pass(monkeypatch, tmp_path, rng):
    from types import SimpleNamespace

    import convnet_search.search.neighbors as nb
    from convnet_search.stages.neighbors import neighbors_stage
    from convnet_search.io.store import ArrayStore

    calls = []
    real = nb._run_gemm
    monkeypatch.setattr(nb, "_run_gemm", lambda *a, **kw: calls.append(a[3]) or real(*a, **kw))
    x = rng.integers(-2, 3, size=(40, 5)).astype(np.float32)
    feats = SimpleNamespace(meta={"fingerprint": "f", "model": "m", "layers": [{"name": "l"}], "poolings": ["avg"]},
                            arrays={"avg/l": x})
    ds = type("DS", (), {"id": "d", "__len__": lambda self: 40})()
    cfg = SimpleNamespace(metrics=("cosine", "euclidean", "sqeuclidean"), minkowski_p=3.0, k=10)
    out = neighbors_stage(ds, feats, cfg, ArrayStore(tmp_path)).arrays
    assert sorted(calls) == [0, 2]
    for metric in cfg.metrics:
        ids, d = top_k_neighbors(x, 10, metric)
        np.testing.assert_array_equal(out[f"avg/l/{metric}/ids"], ids)
        np.testing.assert_array_equal(out[f"avg/l/{metric}/dists"], d)


# ---- properties ------------------------------------------------------------------------------

def _matrices(elements):
    return st.integers(3, 40).flatmap(
        lambda n: st.integers(1, 6).flatmap(lambda d: hnp.arrays(np.float64, (n, d), elements=elements))
    )


# Small integers: every distance is computed exactly (or by one correctly rounded final step), so
# mathematically equal distances are bit-equal in both implementations and must tie-break by id.
int_matrices = _matrices(st.integers(-3, 3).map(float))
# General floats with a few repeated values (duplicates, partial ties).
float_matrices = _matrices(
    st.one_of(
        st.sampled_from([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0]),
        st.floats(-100, 100, allow_nan=False, allow_infinity=False, width=32),
    )
)


def _check_invariants(ids, d, n, k):
    for q in range(n):
        assert len(set(ids[q].tolist())) == k  # ids unique
        assert q not in ids[q]  # self excluded
    assert np.all(np.diff(d, axis=1) >= 0)  # non-decreasing
    assert np.all(d >= 0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(X=int_matrices, metric=st.sampled_from(ALL), data=st.data())
def test_property_integer_data_equals_reference_exactly(X, metric, data):
    n = X.shape[0]
    k = data.draw(st.integers(1, n - 1), label="k")
    block_rows = data.draw(st.sampled_from([None, 1, 3, 17]), label="block_rows")
    ids, d = top_k_neighbors(X, k, metric, block_rows=block_rows)
    _check_invariants(ids, d, n, k)
    rids, rd = reference(X, X, k, metric, exclude_self=True)
    np.testing.assert_array_equal(ids, rids)
    np.testing.assert_allclose(d, rd, rtol=1e-6, atol=1e-7)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(X=st.one_of(int_matrices, float_matrices), data=st.data())
def test_property_shared_euclidean_equals_separate(X, data):
    k = data.draw(st.integers(1, X.shape[0] - 1), label="k")
    _assert_shared_equals_separate(X, k, data.draw(st.sampled_from([None, 1, 3]), label="block_rows"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(X=float_matrices, metric=st.sampled_from(ALL), data=st.data())
def test_property_float_data_equals_reference_up_to_rounding_ties(X, metric, data):
    """Equal to the reference, except that two distances that are mathematically equal but summed
    in a different order (e.g. permuted coordinates) can differ in the last bit, in scipy as in any
    implementation; such a 1-ulp "tie" may then be ordered either way."""
    n = X.shape[0]
    k = data.draw(st.integers(1, n - 1), label="k")
    block_rows = data.draw(st.sampled_from([None, 1, 3, 17]), label="block_rows")
    ids, d = top_k_neighbors(X, k, metric, block_rows=block_rows)
    _check_invariants(ids, d, n, k)
    _, rd = reference(X, X, k, metric, exclude_self=True)
    np.testing.assert_allclose(d, rd, rtol=1e-5, atol=1e-6)
    full = reference(X, X, n - 1, metric, exclude_self=True)
    tol = 1e-12
    for q in range(n):
        D = dict(zip(full[0][q].tolist(), full[1][q].tolist()))
        ours = [D[j] for j in ids[q]]
        kth = rd[q, -1]
        assert abs(ours[-1] - kth) <= tol * max(1.0, kth)
        # everything clearly nearer than the k-th is present
        must = {j for j, v in D.items() if v < kth - tol * max(1.0, kth)}
        assert must <= set(ids[q].tolist())
        # ascending by reference distance, up to rounding ties
        assert all(b >= a - tol * max(1.0, a) for a, b in zip(ours, ours[1:]))


@pytest.mark.parametrize("scale", [2.0**-100, 2.0**-40, 2.0**40, 2.0**100])
@pytest.mark.parametrize("metric", ["cosine", "euclidean", "sqeuclidean"])
def test_extreme_magnitudes_equal_reference(scale, metric, rng):
    # float32 squares of 2^100 overflow and of 2^-100 underflow: the gemm stage must still be
    # exact. Power-of-two scales keep the integer data's exact ties exact in float64.
    X = rng.integers(-3, 4, size=(60, 5)) * scale
    ids, d = top_k_neighbors(X, 10, metric, block_rows=25)
    rids, rd = reference(X, X, 10, metric, exclude_self=True)
    np.testing.assert_array_equal(ids, rids)
    with np.errstate(over="ignore"):  # float32 output: squared distances of 2^100 data are inf
        np.testing.assert_allclose(d, rd.astype(np.float32), rtol=1e-6)


# ---- row blocks and minkowski candidates ------------------------------------------------------

@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(X=st.one_of(int_matrices, float_matrices), data=st.data())
def test_property_row_blocks_concatenate_to_the_whole(X, data):
    """top_k_rows over any split of the rows equals top_k_neighbors_multi (what a distributor
    relies on), for every metric; minkowski exact (no candidates given)."""
    from convnet_search.search.neighbors import top_k_rows

    n = X.shape[0]
    k = data.draw(st.integers(1, n - 1), label="k")
    cuts = sorted(set(data.draw(st.lists(st.integers(1, n - 1), max_size=3), label="cuts")))
    bounds = [0, *cuts, n]
    whole = top_k_neighbors_multi(X, k, ALL)
    parts = [top_k_rows(X, k, ALL, a, b) for a, b in zip(bounds, bounds[1:])]
    for m in ALL:
        np.testing.assert_array_equal(np.concatenate([p[m][0] for p in parts]), whole[m][0])
        np.testing.assert_array_equal(np.concatenate([p[m][1] for p in parts]), whole[m][1])


def test_top_k_rows_rejects_bad_ranges():
    from convnet_search.search.neighbors import top_k_rows

    for a, b in [(-1, 3), (3, 3), (0, 11), (5, 2)]:
        with pytest.raises(ValueError, match="row0"):
            top_k_rows(np.eye(10), 2, ["cosine"], a, b)


def _candidate_reference(X, k, p, L):
    """Brute force of the candidate path: every row's L nearest by squared euclidean distance
    (plus every tie at the L-th value), then a stable (minkowski distance, id) sort of those."""
    D2 = cdist(X, X, "sqeuclidean")
    Dm = cdist(X, X, "minkowski", p=p)
    ids, ds = [], []
    for q in range(len(X)):
        d2 = D2[q].copy()
        d2[q] = np.inf
        cand = np.flatnonzero(d2 <= np.sort(d2)[L - 1])
        order = cand[np.lexsort((cand, Dm[q, cand]))][:k]
        ids.append(order)
        ds.append(Dm[q, order])
    return np.array(ids), np.array(ds)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(X=int_matrices, data=st.data())
def test_property_minkowski_candidates_equal_brute_force_rerank(X, data):
    """Small integers: the float32 gemm distances are exact, so the candidate set is exactly the
    brute-force one (ties at the L-th kept) and the result must equal its exact re-rank."""
    import convnet_search.search.neighbors as nb

    n = X.shape[0]
    k = data.draw(st.integers(1, n - 1), label="k")
    L = data.draw(st.integers(k, max(k, n - 2)), label="L")
    # integer p: sums of small integers are exact, so equal distances tie exactly (a fractional p
    # rounds, and permuted coordinates may then differ by an ulp: the module docstring's caveat)
    p = data.draw(st.sampled_from([1.0, 3.0, 4.0]), label="p")
    block_rows = data.draw(st.sampled_from([None, 1, 3]), label="block_rows")
    ids, d = nb._run_minkowski(nb._as_matrix(X, "X"), nb._as_matrix(X, "X"), k, p, block_rows, 0, L)
    rids, rd = _candidate_reference(X, k, p, L)
    np.testing.assert_array_equal(ids, rids)
    np.testing.assert_allclose(d, rd, rtol=1e-6, atol=1e-7)
    if L >= n - 1:  # every other row is a candidate: exact
        np.testing.assert_array_equal(ids, reference(X, X, k, "minkowski", p=p, exclude_self=True)[0])


def test_minkowski_recall_equals_brute_force(rng):
    from convnet_search.search.neighbors import minkowski_recall

    X = rng.normal(size=(120, 6))
    exact = reference(X, X, 15, "minkowski", exclude_self=True)[0]
    assert minkowski_recall(X, exact, 3.0, rows=50) == {"recall_at_15": 1.0, "min_row_recall": 1.0,
                                                        "sampled_rows": 50}
    worse = exact.copy()
    worse[:, 10:] = (exact[:, 10:] + 1) % 120  # replace the last 5 ids of every row
    got = minkowski_recall(X, worse, 3.0, rows=120)  # all rows: no sampling
    want = np.mean([np.intersect1d(worse[q], exact[q]).size / 15 for q in range(120)])
    assert got["sampled_rows"] == 120 and got["recall_at_15"] == pytest.approx(want)


def test_minkowski_above_exact_max_uses_candidates_and_reaches_target_recall(monkeypatch):
    """Above MINKOWSKI_EXACT_MAX: candidates, L doubled until recall@15 ≥ 0.99 (forced to start
    at L = k, which misses neighbours on this data), the report says so, and the recall it
    records is the real recall of the returned ids against brute force on every row."""
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent / "bench"))
    from bench_neighbors import make_features

    import convnet_search.search.neighbors as nb

    X = make_features(600, 32, seed=4)
    monkeypatch.setattr(nb, "MINKOWSKI_EXACT_MAX", 100)
    monkeypatch.setattr(nb, "RECALL_ROWS", 600)  # every row: the recorded recall is the true one
    monkeypatch.setattr(nb, "minkowski_candidates", lambda k: k)
    report: dict = {}
    ids, _ = top_k_neighbors_multi(X, 15, ["minkowski", "cosine"], report=report)["minkowski"]
    how = report["minkowski"]
    assert how["method"] == "candidates" and how["candidates"] == how["candidates_tried"][-1]
    assert len(how["candidates_tried"]) >= 2  # L = 15 was not enough here
    exact = reference(X, X, 15, "minkowski", exclude_self=True)[0]
    true_recall = np.mean([np.intersect1d(ids[q], exact[q]).size / 15 for q in range(600)])
    assert how["recall_at_15"] == pytest.approx(true_recall) and true_recall >= 0.99
    # at or below the limit: exact, said so
    report.clear()
    top_k_neighbors_multi(X[:100], 15, ["minkowski"], report=report)
    assert report["minkowski"] == {"method": "exact"}


def test_neighbors_stage_records_minkowski_recall_for_the_manifest(monkeypatch, tmp_path, rng):
    from types import SimpleNamespace

    import convnet_search.search.neighbors as nb
    from convnet_search.stages.bundle import minkowski_recall_entry
    from convnet_search.stages.neighbors import neighbors_stage
    from convnet_search.io.store import ArrayStore

    x = rng.normal(size=(150, 6)).astype(np.float32)
    feats = SimpleNamespace(meta={"fingerprint": "f", "model": "m", "layers": [{"name": "l"}], "poolings": ["avg", "max"]},
                            arrays={"avg/l": x, "max/l": x[::-1].copy()})
    ds = type("DS", (), {"id": "d", "__len__": lambda self: 150})()
    cfg = SimpleNamespace(metrics=("cosine", "minkowski"), minkowski_p=3.0, k=10)
    exact = neighbors_stage(ds, feats, cfg, ArrayStore(tmp_path / "a"))
    assert exact.meta["minkowski"] == {"avg/l": {"method": "exact"}, "max/l": {"method": "exact"}}
    assert minkowski_recall_entry(SimpleNamespace(neighbors={"m": exact}), ["m"]) is None

    monkeypatch.setattr(nb, "MINKOWSKI_EXACT_MAX", 100)
    approx = neighbors_stage(ds, feats, cfg, ArrayStore(tmp_path / "b"))
    assert approx.meta["fingerprint"] != exact.meta["fingerprint"]  # the method is part of it
    how = approx.meta["minkowski"]
    assert {h["method"] for h in how.values()} == {"candidates"}
    entry = minkowski_recall_entry(SimpleNamespace(neighbors={"m": approx}), ["m"])
    assert entry == {"recall_at_15": min(h["recall_at_15"] for h in how.values()),
                     "min_row_recall": min(h["min_row_recall"] for h in how.values()),
                     "sampled_rows": 150, "candidates": max(h["candidates"] for h in how.values()),
                     "matrices": 2}
    assert entry["recall_at_15"] >= nb.RECALL_TARGET


# ---- gemm tiles: symmetric pass, threads, candidate overflow ----------------------------------

def _count_overflow_recomputes(monkeypatch):
    """Spy: how many rows _run_gemm recomputed because their candidate list overflowed."""
    import convnet_search.search.neighbors as nb

    rows = []
    real = nb._Candidates.__init__

    def init(self, n, k, cap):
        if cap > max(4 * k, 64):  # the recompute state has room for every item
            rows.append(n)
        real(self, n, k, cap)

    monkeypatch.setattr(nb._Candidates, "__init__", init)
    return rows


@pytest.mark.parametrize("metric", ["cosine", "sqeuclidean", "euclidean"])
def test_rows_with_more_ties_than_the_candidate_list_are_recomputed_exactly(metric, monkeypatch, rng):
    # 150 copies of one vector: each copy has 149 neighbours at distance 0, more than the
    # candidate list holds (64), so those rows overflow and are recomputed with room for all.
    X = np.vstack([np.repeat(rng.normal(size=(1, 5)), 150, axis=0), rng.normal(size=(90, 5))])
    X = X[rng.permutation(len(X))]
    recomputed = _count_overflow_recomputes(monkeypatch)
    assert_equal_reference(X, 10, metric, block_rows=32)
    assert sum(recomputed) >= 150


@pytest.mark.parametrize("metric", ["cosine", "sqeuclidean"])
def test_symmetric_pass_equals_query_rows_and_any_thread_count(metric, monkeypatch, rng):
    # all rows (one symmetric gemm, each tile fed to two row blocks) against row ranges (query
    # tiles, as Ray's row blocks run them), and with more threads than row blocks can keep busy
    import convnet_search.search.neighbors as nb
    from convnet_search.search.neighbors import top_k_rows

    X = np.maximum(rng.normal(size=(301, 24)), 0).astype(np.float32)
    whole = top_k_rows(X, 12, [metric], 0, 301, block_rows=16)[metric]
    halves = [top_k_rows(X, 12, [metric], a, b, block_rows=16)[metric] for a, b in ((0, 150), (150, 301))]
    for j in range(2):
        np.testing.assert_array_equal(whole[j], np.concatenate([h[j] for h in halves]))
    for n_threads in (1, 3, 7):
        monkeypatch.setattr(nb, "_threads", lambda n=n_threads: n)
        got = top_k_rows(X, 12, [metric], 0, 301, block_rows=16)[metric]
        np.testing.assert_array_equal(got[0], whole[0])
        np.testing.assert_array_equal(got[1], whole[1])
    np.testing.assert_array_equal(whole[0], reference(X, X, 12, metric, exclude_self=True)[0])
