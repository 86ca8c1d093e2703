"""browser_features: layouts, round-trip error bounds, the page's distances against brute force, recall,
the budget rule; and the fixture frontend/src/live/features.test.ts reads (Python writes → TS reads)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from convnet_search.search import browser_features as bf

FIXTURE = Path(__file__).resolve().parent.parent / "frontend" / "src" / "live" / "features.fixture.json"
METRICS = ["cosine", "euclidean", "sqeuclidean", "minkowski"]


def features(n=300, dim=48, seed=0) -> np.ndarray:
    """ReLU-like features: non-negative, sparse, a few strong directions (like pooled CNN maps)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 6)) @ rng.normal(size=(6, dim)) + 0.3 * rng.normal(size=(n, dim))
    return np.maximum(z, 0).astype(np.float32)


def stored_coords(f: bf.Decoded) -> np.ndarray:
    """low + step·code, with per-axis terms for pca_u8u4 and per-vector ones otherwise."""
    if f.layout.encoding == "pca_u8u4":
        return f.low[None, :].astype(np.float64) + f.step[None, :].astype(np.float64) * f.code
    return f.low[:, None].astype(np.float64) + f.step[:, None].astype(np.float64) * f.code


def decoded_rows(f: bf.Decoded) -> np.ndarray:
    """The decoded vectors x̂, rebuilt the slow obvious way (the reference for search_distances)."""
    if f.rows is not None:
        return f.rows.astype(np.float64)
    c = stored_coords(f)
    return c if f.basis is None else f.mean + c @ f.basis.astype(np.float64)


def brute(q: np.ndarray, x: np.ndarray, metric: str, p: float = 3.0) -> np.ndarray:
    out = np.empty((len(q), len(x)))
    for i, a in enumerate(q.astype(np.float64)):
        for j, b in enumerate(x.astype(np.float64)):
            if metric == "cosine":
                den = np.linalg.norm(a) * np.linalg.norm(b)
                out[i, j] = min(2, max(0, 1 - a @ b / den)) if den > 0 else 1.0
            elif metric == "minkowski":
                out[i, j] = (np.abs(a - b) ** p).sum() ** (1 / p)
            else:
                sq = ((a - b) ** 2).sum()
                out[i, j] = sq if metric == "sqeuclidean" else np.sqrt(sq)
    return out


@pytest.mark.parametrize("encoding", bf.ENCODINGS)
def test_layout_bytes_match_the_encoded_file_and_decode_reads_it_back(encoding):
    x = features()
    layout = bf.Layout(encoding, *x.shape, 16 if encoding.startswith("pca") else x.shape[1])
    data = bf.encode(x, layout)
    assert len(data) == layout.nbytes
    f = bf.decode(data, layout)
    with pytest.raises(ValueError, match="bytes"):
        bf.decode(data[:-1], layout)
    if encoding == "float32":
        assert np.array_equal(f.rows, x)
    if encoding == "float16":
        assert np.allclose(f.rows, x, rtol=2 ** -11, atol=2 ** -24)


def test_uint8_error_is_at_most_half_a_step_per_coordinate():
    x = features()
    f = bf.decode(bf.encode(x, bf.Layout("uint8", *x.shape, x.shape[1])), bf.Layout("uint8", *x.shape, x.shape[1]))
    err = np.abs(decoded_rows(f) - x)
    assert np.all(err <= f.step[:, None] / 2 * (1 + 1e-5) + 1e-7)
    assert np.allclose(f.low, x.min(axis=1)) and np.allclose(f.low + 255 * f.step, x.max(axis=1), rtol=1e-5)


def test_u8u4_stores_a_quarter_of_the_axes_in_8_bits_the_rest_in_4_with_per_axis_steps():
    x = features(n=400, dim=48)
    layout = bf.Layout("pca_u8u4", 400, 48, 32)
    assert layout.head == 8 and layout.nbytes == 4 * (48 + 32 * 48) + 8 * 32 + 400 * (8 + 12)
    f = bf.decode(bf.encode(x, layout), layout)
    c = (x.astype(np.float64) - f.mean) @ f.basis.T.astype(np.float64)
    err = np.abs(stored_coords(f) - c)
    assert f.code[:, :8].max() == 255 and f.code[:, 8:].max() == 15
    assert np.all(err[:, :8] <= f.step[:8] / 2 * (1 + 1e-4) + 1e-6)  # 8-bit axes: full range, half a step
    lo, hi = np.percentile(c[:, 8:], [0.5, 99.5], axis=0)
    inside = (c[:, 8:] >= lo) & (c[:, 8:] <= hi)
    assert np.all(err[:, 8:][inside] <= np.broadcast_to(f.step[8:] / 2, inside.shape)[inside] * (1 + 1e-4) + 1e-6)
    assert inside.mean() > 0.98  # only the clipped 1 % err more
    with pytest.raises(ValueError, match="multiple of 8"):
        bf.Layout("pca_u8u4", 10, 48, 12)


def test_pca_with_all_axes_is_a_rotation_and_truncation_loses_the_smallest_variance():
    x = features(dim=24)
    mean, basis = bf.principal_axes(x, 24)
    assert np.allclose(basis @ basis.T, np.eye(24), atol=1e-5)
    c = (x - mean) @ basis.T
    assert np.allclose(mean + c @ basis, x, atol=1e-4)
    var = c.var(axis=0)
    assert np.all(np.diff(var) <= 1e-6)  # axes in decreasing variance


def test_pca_with_fewer_rows_than_dims_finds_the_same_subspace_as_the_covariance():
    x = features(n=12, dim=40)
    _, svd_basis = bf.principal_axes(x, 6)  # 12 rows < 40 dims: thin SVD
    centred = x.astype(np.float64) - x.mean(axis=0)
    vecs = np.linalg.eigh(centred.T @ centred)[1][:, ::-1][:, :6].T
    assert np.allclose(svd_basis.T @ svd_basis, vecs.T @ vecs, atol=1e-4)  # same projection
    assert np.allclose(bf.principal_axes(x, 16)[1][12:], 0)  # only 12 rows: the axes beyond are 0


@pytest.mark.parametrize("encoding", bf.ENCODINGS)
@pytest.mark.parametrize("metric", METRICS)
def test_search_distances_equal_brute_force_on_the_decoded_vectors(encoding, metric):
    x = features(n=60, dim=20)
    layout = bf.Layout(encoding, 60, 20, 8 if encoding.startswith("pca") else 20)
    f = bf.decode(bf.encode(x, layout), layout)
    q = features(n=5, dim=20, seed=1)
    got = bf.search_distances(q, f, metric, 3.0)
    if encoding.startswith("pca") and metric == "minkowski":  # in the principal subspace, by definition
        want = brute((q - f.mean) @ f.basis.T.astype(np.float64), stored_coords(f), metric)
    else:
        want = brute(q, decoded_rows(f), metric)
    assert np.allclose(got, want, rtol=1e-5, atol=1e-6)


def test_recall_against_a_brute_force_count():
    rng = np.random.default_rng(3)
    exact, approx = rng.random((7, 40)), rng.random((7, 40))
    approx[:3] = exact[:3]  # three perfect queries
    exclude = np.arange(7)
    want = []
    for i in range(7):
        keep = [j for j in range(40) if j != i]
        top_e = set(sorted(keep, key=lambda j: (exact[i, j], j))[:5])
        top_a = set(sorted(keep, key=lambda j: (approx[i, j], j))[:5])
        want.append(len(top_e & top_a) / 5)
    assert bf.recall_at_k(exact, approx, 5, exclude) == pytest.approx(np.mean(want))
    assert bf.recall_at_k(exact, exact, 5, exclude) == 1.0


def test_measure_recall_is_one_for_lossless_and_drops_with_fewer_axes():
    x = features(n=200, dim=32)
    lossless = bf.Layout("float32", 200, 32, 32)
    assert bf.measure_recall(x, bf.decode(bf.encode(x, lossless), lossless), METRICS) == {m: 1.0 for m in METRICS}
    r = {d: bf.measure_recall(x, bf.decode(bf.encode(x, lo := bf.Layout("pca_uint8", 200, 32, d)), lo), ["cosine"])["cosine"]
         for d in (2, 24)}
    assert r[2] < r[24] <= 1.0


def test_budget_rule_keeps_float32_when_it_fits_else_the_least_lossy_that_fits():
    n, dim = 100_000, 1024
    mb = 1_000_000
    assert bf.choose_layout(1000, 256, 32 * mb).encoding == "float32"
    assert bf.choose_layout(n, 256, 32 * mb - 500_757).encoding == "uint8"  # 25.6 MB + 0.8 MB of per-vector terms
    assert bf.choose_layout(n, 64, 32 * mb).encoding == "float32"  # 25.6 MB
    assert bf.choose_layout(n, 128, 32 * mb).encoding == "float16"  # 51.2 MB as float32
    lo = bf.choose_layout(n, dim, 32 * mb - 6_437_705)  # MobileNet 1.0's model leaves 25.6 MB
    assert lo.encoding == "pca_uint8" and lo.dims % 8 == 0 and lo.nbytes <= 32 * mb - 6_437_705
    assert bf.Layout("pca_uint8", n, dim, lo.dims + 8).nbytes > 32 * mb - 6_437_705  # the most axes that fit
    assert bf.choose_layout(n, dim, 10).dims == bf.PCA_DIMS_STEP  # hopeless budget: the smallest, flagged by bytes
    budget = 32 * mb - 532_952  # alpha 0.25's model
    u8, u4 = bf.pca_layouts(n, dim, budget)
    assert (u8.encoding, u4.encoding) == ("pca_uint8", "pca_u8u4") and u4.dims % bf.U8U4_DIMS_STEP == 0
    assert u8.nbytes <= budget and u4.nbytes <= budget < bf.Layout("pca_u8u4", n, dim, u4.dims + 32).nbytes
    assert (u8.dims, u4.dims) == (288, 448)  # 1.6× the axes in the same bytes
    assert [lo.encoding for lo in bf.pca_layouts(n, dim, 10)] == ["pca_uint8"]  # u8u4 only when it fits
    small = bf.pca_layouts(41, 1024, 41_000)[1]  # the e2e's tiny bundle: below 32 axes, multiples of 8
    assert small.dims % 8 == 0 and small.dims < 32 and small.nbytes <= 41_000


def test_encode_for_browser_keeps_the_pca_encoding_with_the_better_measured_recall():
    x = features(n=400, dim=64)
    budget = 400 * 64  # uint8 does not fit: the two PCA encodings compete
    data, entry = bf.encode_for_browser(x, budget, ["cosine"])
    got = {}
    for lo in bf.pca_layouts(400, 64, budget):
        got[lo.encoding] = bf.measure_recall(x, bf.decode(bf.encode(x, lo), lo), ["cosine"])["cosine"]
    assert entry["encoding"] == max(got, key=lambda e: (got[e], e == "pca_uint8"))
    assert entry["recall"]["cosine"] == got[entry["encoding"]] and entry["bytes"] == len(data)


def test_encode_for_browser_records_encoding_bytes_and_measured_recall():
    x = features(n=120, dim=16)
    data, entry = bf.encode_for_browser(x, budget_bytes=120 * 16 * 2, metrics=METRICS)
    assert entry["encoding"] == "float16" and entry["bytes"] == len(data) == 120 * 16 * 2
    assert entry["recall_queries"] == 120 and entry["recall_k"] == 15
    assert set(entry["recall"]) == set(METRICS) and all(0.9 <= v <= 1 for v in entry["recall"].values())


def test_ts_fixture_bytes_decode_to_its_distances():
    """features.test.ts decodes and searches frontend/src/live/features.fixture.bin and must get the
    distances of features.fixture.json; this checks that Python gets them from the same bytes
    (written by this test when missing, or with FIXTURE_WRITE=1 after a deliberate format change)."""
    import os

    bin_path, json_path = FIXTURE.with_suffix(".bin"), FIXTURE
    if os.environ.get("FIXTURE_WRITE") == "1" or not json_path.exists():
        x, q = features(n=50, dim=12, seed=7), features(n=3, dim=12, seed=8)
        cases, blobs = {}, b""
        for enc in bf.ENCODINGS:
            layout = bf.Layout(enc, 50, 12, {"pca_uint8": 4, "pca_u8u4": 8}.get(enc, 12))
            data = bf.encode(x, layout)
            f = bf.decode(data, layout)
            cases[enc] = {"layout": {"encoding": enc, "n": 50, "dim": 12, "dims": layout.dims},
                          "offset": len(blobs), "bytes": len(data),
                          "distances": {m: bf.search_distances(q, f, m, 3.0).tolist() for m in METRICS}}
            blobs += data + b"\0" * (-len(data) % 8)
        json_path.write_text(json.dumps({"queries": q.tolist(), "p": 3.0, "cases": cases}))
        bin_path.write_bytes(blobs)
    doc, blobs = json.loads(json_path.read_text()), bin_path.read_bytes()
    q = np.asarray(doc["queries"], dtype=np.float32)
    assert set(doc["cases"]) == set(bf.ENCODINGS)
    for case in doc["cases"].values():
        layout = bf.Layout(**case["layout"])
        f = bf.decode(blobs[case["offset"]:case["offset"] + case["bytes"]], layout)
        for m, want in case["distances"].items():
            assert np.allclose(bf.search_distances(q, f, m, doc["p"]), want, rtol=1e-9, atol=1e-12), (layout, m)


def _top_ids_by_full_sort(d, k, exclude=None):
    d = np.array(d, dtype=np.float64)
    if exclude is not None:
        d[np.arange(len(d)), exclude] = np.inf
    return np.lexsort((np.broadcast_to(np.arange(d.shape[1]), d.shape), d), axis=1)[:, :k]


@pytest.mark.parametrize("seed", range(6))
def test_top_ids_equals_a_full_sort_with_ties_nan_and_the_query_left_out(seed):
    rng = np.random.default_rng(seed)
    m, n = 30, 200
    d = rng.integers(0, 6, size=(m, n)).astype(np.float64)  # many exact ties at the k-th value
    d[rng.random((m, n)) < 0.02] = np.nan
    d[:3, :197] = np.nan  # rows with fewer than k numbers
    exclude = rng.integers(0, n, size=m)
    for k in (1, 5, 15, n - 1, n):
        np.testing.assert_array_equal(bf.top_ids(d, k, exclude), _top_ids_by_full_sort(d, k, exclude))
        np.testing.assert_array_equal(bf.top_ids(d, k), _top_ids_by_full_sort(d, k))


@pytest.mark.parametrize("p", [3.0, 1.5, 4.0])
def test_minkowski_kernel_equals_numpy_float32_terms(p):
    rng = np.random.default_rng(1)
    q, x = rng.normal(size=(7, 33)).astype(np.float32), rng.normal(size=(50, 33)).astype(np.float32)
    d = np.abs(x[None, :, :] - q[:, None, :])
    ref = ((d * d * d) if p == 3 else d ** np.float32(p)).sum(axis=2, dtype=np.float64) ** (1 / p)
    # p = 3: the same float32 products; other p: numba's float32 pow may differ from numpy's by an ulp
    np.testing.assert_allclose(bf._minkowski(q, x, p), ref, rtol=1e-12 if p == 3 else 1e-6)


def _small_budget_rows(rng, n, dim=24):
    x = rng.normal(size=(n, dim)).astype(np.float32)
    budget = bf.Layout("uint8", n + 50, dim, dim).nbytes + 1  # uint8 fits, float16 does not
    return x, budget


def test_recall_is_carried_over_after_a_small_growth_and_measured_again_after_more():
    rng = np.random.default_rng(3)
    x, budget = _small_budget_rows(rng, 400)
    _, first = bf.encode_for_browser(x, budget, ["cosine"])
    assert first["encoding"] == "uint8" and first["recall_n"] == 400 and first["recall_queries"] == 400
    grown = np.concatenate([x, rng.normal(size=(20, x.shape[1])).astype(np.float32)])  # +5 %
    data, carried = bf.encode_for_browser(grown, budget, ["cosine"], previous={**first, "recall": {"cosine": 0.5}})
    assert carried["recall"] == {"cosine": 0.5} and carried["recall_n"] == 400  # not measured again
    assert data == bf.encode(grown, bf.Layout("uint8", 420, 24, 24))  # the file is of the new rows
    more = np.concatenate([grown, rng.normal(size=(1, x.shape[1])).astype(np.float32)])  # > 5 %
    _, measured = bf.encode_for_browser(more, budget, ["cosine"], previous={**first, "recall": {"cosine": 0.5}})
    assert measured["recall_n"] == 421 and measured["recall"]["cosine"] > 0.5
    for previous in ({**first, "recall": {"cosine": 0.5, "euclidean": 0.5}},  # other metrics
                     {**first, "recall": {"cosine": 0.5}, "recall_n": 430},  # it shrank since
                     {**first, "recall": {"cosine": 0.5}, "encoding": "float16"},  # another encoding
                     {k: v for k, v in first.items() if k != "recall_n"}):  # a bundle from before recall_n
        _, e = bf.encode_for_browser(grown, budget, ["cosine"], previous=previous)
        assert e["recall_n"] == 420, previous
