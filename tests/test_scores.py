"""scores.py: the scores stage against a brute-force reference of docs/bundle.md's definitions,
stored once per fingerprint."""
from __future__ import annotations

import numpy as np
import pytest

from convnet_search.io.labels import LabelField
from convnet_search.search.evaluate import NO_VALUE, field_scores
from convnet_search.stages.scores import MEANS, score_keys, scores_stage
from convnet_search.io.store import ArrayStore, StoredArrays


def _reference(ids: np.ndarray, labels: np.ndarray, k: int, top: int):
    """Loops over the documented definitions: numerator Σ (top − i) over matching results i < top;
    precision@k; AP@k normalised by min(k, other images of the class)."""
    nums, prec, ap = [], [], []
    for q, row in enumerate(ids):
        hit = [labels[r] == labels[q] for r in row]
        nums.append(sum(top - i for i in range(top) if hit[i]))
        prec.append(sum(hit[:k]) / k)
        others = int(np.sum(labels == labels[q])) - 1
        found, total = 0, 0.0
        for i in range(k):
            if hit[i]:
                found += 1
                total += found / (i + 1)
        ap.append(total / min(k, others) if others else 0.0)
    scale = top * (top + 1) / 2
    return np.array(nums), [np.mean(nums) / scale, np.mean(prec), np.mean(ap)]


def _stage_inputs(rng, n=30, k=6, classes=3):
    labels = rng.integers(0, classes, n)
    meta = {"model": "toy", "layers": [{"name": "l1"}, {"name": "l2"}], "poolings": ["avg", "max"]}
    arrays = {}
    for key in score_keys(StoredArrays(meta, {}), ["cosine", "euclidean"]):
        arrays[f"{key}/ids"] = np.stack([rng.permutation(np.delete(np.arange(n), q))[:k] for q in range(n)])
    fields = [LabelField("class", "class", [str(c) for c in range(classes)], labels.astype(np.int32))]
    ds = type("DS", (), {"id": "d", "labels": labels, "labels_mode": "folders", "fields": fields,
                         "__len__": lambda self: n})()
    return ds, StoredArrays(meta, {}), StoredArrays({"fingerprint": "nb"}, arrays)


def test_scores_equal_a_brute_force_reference(tmp_path):
    rng = np.random.default_rng(3)
    ds, feats, nbrs = _stage_inputs(rng)
    out = scores_stage(ds, feats, nbrs, ["cosine", "euclidean"], 6, ArrayStore(tmp_path))
    assert out.meta["k"] == 6 and out.meta["top"] == 6 and out.meta["means"] == list(MEANS)
    assert len(out.arrays) == 2 * 2 * 2 * 2  # (pooling, layer, metric) x (numerators, means), one field
    assert out.meta["fields"] == ["class"] and out.meta["queries"] == {"class": [30, 0]}
    for key in score_keys(feats, ["cosine", "euclidean"]):
        nums, means = _reference(nbrs.arrays[f"{key}/ids"], ds.labels, 6, 6)
        assert out.arrays[f"class/{key}/numerators"].dtype == np.uint8
        np.testing.assert_array_equal(out.arrays[f"class/{key}/numerators"], nums)
        np.testing.assert_allclose(out.arrays[f"class/{key}/means"], means, rtol=1e-12)


def test_a_small_dataset_is_scored_over_its_shrunk_window():
    rng = np.random.default_rng(4)
    labels = np.array([0, 0, 1, 1, 0])
    ids = np.stack([rng.permutation(np.delete(np.arange(5), q)) for q in range(5)])  # k = 4 = N − 1
    fs = field_scores(ids, labels, 4, 4)
    nums, means = fs.numerators, fs.means
    ref_nums, ref_means = _reference(ids, labels, 4, 4)
    np.testing.assert_array_equal(nums, ref_nums)
    np.testing.assert_allclose(means, ref_means)


def test_written_once_per_fingerprint(tmp_path):
    rng = np.random.default_rng(5)
    ds, feats, nbrs = _stage_inputs(rng)
    store = ArrayStore(tmp_path)
    first = scores_stage(ds, feats, nbrs, ["cosine", "euclidean"], 6, store)
    stamp = store.path("d", "toy").stat().st_ino  # a write is a new file moved into place
    assert scores_stage(ds, feats, nbrs, ["cosine", "euclidean"], 6, store).meta == first.meta
    assert store.path("d", "toy").stat().st_ino == stamp  # current: not written again
    nbrs.meta["fingerprint"] = "other neighbours"
    again = scores_stage(ds, feats, nbrs, ["cosine", "euclidean"], 6, store)
    assert again.meta["fingerprint"] != first.meta["fingerprint"]
    assert store.path("d", "toy").stat().st_ino != stamp


def test_queries_with_no_value_are_skipped_and_counted_not_scored_as_zero():
    rng = np.random.default_rng(6)
    n, k = 40, 8
    codes = rng.integers(0, 3, n).astype(np.int32)
    codes[::4] = -1  # a quarter of the images have no value in this field
    ids = np.stack([rng.permutation(np.delete(np.arange(n), q))[:k] for q in range(n)])
    fs = field_scores(ids, codes, k, k)
    has = codes >= 0
    assert (fs.scored, fs.skipped) == (30, 10)
    assert (fs.numerators[~has] == NO_VALUE).all()
    # reference: valueless images get unique labels (never a match), means over labelled queries only
    lab = np.where(has, codes, 100 + np.arange(n))
    nums, _ = _reference(ids, lab, k, k)
    np.testing.assert_array_equal(fs.numerators[has], nums[has])
    scale = k * (k + 1) / 2
    assert fs.means[0] == pytest.approx(np.mean(nums[has]) / scale, rel=1e-12)


def test_a_dataset_without_fields_stores_no_scores(tmp_path):
    rng = np.random.default_rng(7)
    ds, feats, nbrs = _stage_inputs(rng)
    ds.fields, ds.labels_mode = [], "none"
    out = scores_stage(ds, feats, nbrs, ["cosine"], 6, ArrayStore(tmp_path))
    assert out.arrays == {} and out.meta["fields"] == []


def test_a_changed_labels_file_rescoring_without_new_neighbours(tmp_path):
    rng = np.random.default_rng(8)
    ds, feats, nbrs = _stage_inputs(rng)
    store = ArrayStore(tmp_path)
    first = scores_stage(ds, feats, nbrs, ["cosine"], 6, store)
    codes = ds.fields[0].codes.copy()
    codes[0] = (codes[0] + 1) % 3
    ds.fields = [LabelField("class", "class", ["0", "1", "2"], codes)]
    again = scores_stage(ds, feats, nbrs, ["cosine"], 6, store)
    assert again.meta["fingerprint"] != first.meta["fingerprint"]
