"""Tests of search/curate.py (the curation math against brute-force references) and stages/curate.py."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convnet_search.search import curate


def knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-k euclidean neighbours (query excluded), ties by id."""
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    ids = np.argsort(d, axis=1, kind="stable")[:, :k]
    return ids, np.take_along_axis(d, ids, axis=1)


def brute_ratio(row: np.ndarray) -> float:
    """d1 / (first stored distance larger than d1), 1 when there is none: plain Python."""
    d1 = max(float(row[0]), 0.0)
    larger = [float(v) for v in row if v > max(row[0], 0) * (1 + curate.TIE_RTOL)]
    if not larger:
        return 1.0
    return max(d1 / larger[0], np.finfo(float).tiny)


def brute_nearest(ids: np.ndarray, dists: np.ndarray, i: int) -> list[int]:
    """The neighbours of i at its nearest distance (ties within TIE_RTOL)."""
    return [int(ids[i, j]) for j in range(ids.shape[1]) if dists[i, j] <= max(dists[i, 0], 0) * (1 + curate.TIE_RTOL)]


def brute_joined(ids: np.ndarray, dists: np.ndarray, t: float, i: int, j: int) -> bool:
    """Is (i, ids[i, j]) a joined pair: i passes the ratio test, ids[i, j] is one of i's nearest and i
    one of its nearest (mutual)."""
    r = brute_ratio(dists[i])
    b = int(ids[i, j])
    return r < 1 and r <= t and b in brute_nearest(ids, dists, i) and i in brute_nearest(ids, dists, b)


def brute_groups(ids: np.ndarray, dists: np.ndarray, t: float) -> set[frozenset[int]]:
    """Components by repeated set merging of the ratio-test pairs: the plainest possible reference."""
    sets = [{i} for i in range(len(ids))]
    for i, j in itertools.product(range(len(ids)), range(ids.shape[1])):
        if brute_joined(ids, dists, t, i, j):
            a, b = next(s for s in sets if i in s), next(s for s in sets if ids[i, j] in s)
            if a is not b:
                a |= b
                sets.remove(b)
    return {frozenset(s) for s in sets if len(s) > 1}


@settings(max_examples=60, deadline=None)
@given(n=st.integers(3, 30), k=st.integers(1, 5), seed=st.integers(0, 2**31 - 1), q=st.floats(0.0, 1.0))
def test_groups_equal_brute_force_components(n, k, seed, q):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).round(1)  # rounding makes ties and exact copies
    ids, dists = knn(x, min(k, n - 1))
    t = float(np.quantile([brute_ratio(r) for r in dists], q))
    g = curate.duplicate_groups(ids, dists, t)
    assert {frozenset(m) for m in g.groups()} == brute_groups(ids, dists, t)
    # each group's distances are its joined edges' extremes, groups sorted by the closest pair
    for members, lo, hi in zip(g.groups(), g.min_dist, g.max_dist):
        edges = [dists[i, j] for i in members for j in range(ids.shape[1]) if brute_joined(ids, dists, t, i, j)]
        assert lo == pytest.approx(min(edges), rel=1e-6) and hi == pytest.approx(max(edges), rel=1e-6)
        assert members == sorted(members)
    assert np.all(np.diff(g.min_dist) >= 0)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(3, 40), k=st.integers(1, 6), seed=st.integers(0, 2**31 - 1))
def test_threshold_is_a_ratio_invariant_to_scale(n, k, seed):
    rng = np.random.default_rng(seed)
    _, dists = knn(rng.normal(size=(n, 4)).round(1), min(k, n - 1))
    t = curate.duplicate_threshold(dists)
    assert 0 <= t <= 1
    # a ratio: scaling the distances changes nothing, squaring them (sqeuclidean) squares it
    assert curate.duplicate_threshold(dists * 7) == pytest.approx(t, rel=1e-9)
    assert curate.duplicate_threshold(dists ** 2) == pytest.approx(t ** 2, rel=1e-9)


def test_threshold_finds_planted_copies():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, 16)) * 3  # classes: dense clusters, as a network's features
    x = centres[rng.integers(0, 10, 300)] + rng.normal(size=(300, 16))
    copies = x[:20] + rng.normal(scale=1e-3, size=(20, 16))
    ids, dists = knn(np.vstack([x, copies]), 5)
    t = curate.duplicate_threshold(dists)
    groups = {frozenset(m) for m in curate.duplicate_groups(ids, dists, t).groups()}
    planted = {frozenset({i, 300 + i}) for i in range(20)}
    assert planted <= groups
    # a fence flags the low tail of the ratios: a few chance pairs of the noise pass it too (3 here)
    assert len(groups - planted) <= 0.01 * len(ids)


def test_exact_copies_are_joined_even_in_threes():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 8))
    x = np.vstack([x, x[:1], x[:1], x[5:6]])  # image 0 three times, image 5 twice
    ids, dists = knn(x, 4)
    groups = {frozenset(m) for m in curate.duplicate_groups(ids, dists, curate.duplicate_threshold(dists)).groups()}
    assert frozenset({0, 60, 61}) in groups and frozenset({5, 62}) in groups


def test_threshold_is_tukeys_lower_fence_of_log_ratios():
    d1 = np.array([0.0, 1, 2, 3, 4, 5, 6, 7, 8])
    d2 = np.array([1.0, 2, 2, 9, 5, 5.5, 12, 7.5, 8])  # the last row: no larger distance, ratio 1
    ratios = [brute_ratio(r) for r in np.c_[d1, d2]]
    logs = np.log(ratios)
    q1, q3 = np.percentile(logs, [25, 75])
    want = np.exp(q1 - curate.FENCE_IQR * (q3 - q1))
    assert curate.duplicate_threshold(np.c_[d1, d2]) == pytest.approx(want)
    assert curate.duplicate_threshold(d1[:, None]) == 0.0  # one neighbour: no ratio, no duplicates


def test_uniqueness_ranks_the_far_point_first():
    rng = np.random.default_rng(1)
    x = np.vstack([rng.normal(size=(50, 4)), [[40, 40, 40, 40]]])
    _, dists = knn(x, 5)
    u = curate.uniqueness(dists)
    assert curate.outlier_order(u)[0] == 50
    assert np.median(u) == pytest.approx(1.0)
    ref = dists.mean(1) / np.median(dists.mean(1))
    np.testing.assert_allclose(u, ref, rtol=1e-6)


def brute_probs(all_ids, labels, classes):
    have = [i for i in range(len(labels)) if labels[i] >= 0]
    chance = sum((sum(labels[i] == c for i in have) / len(have)) ** 2 for c in range(classes))
    votes, weights = [], []
    for ids in all_ids:
        v = np.zeros((len(labels), classes))
        for i, row in enumerate(ids):
            got = [labels[j] for j in row if labels[j] >= 0]
            for c in got:
                v[i, c] += 1 / len(got)
        agree = np.mean([v[i, labels[i]] for i in have])
        votes.append(v)
        weights.append(0.0 if chance >= 1 else max(0.0, (agree - chance) / (1 - chance)))
    w = np.array(weights) / sum(weights) if sum(weights) > 0 else np.full(len(votes), 1 / len(votes))
    p = sum(wi * v for wi, v in zip(w, votes))
    for i in range(len(labels)):
        p[i] = p[i] / p[i].sum() if p[i].sum() > 0 else 1 / classes
    return p


@settings(max_examples=40, deadline=None)
@given(n=st.integers(4, 25), classes=st.integers(2, 4), configs=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
def test_label_probabilities_and_suspects_equal_brute_force(n, classes, configs, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(-1, classes, size=n)
    labels[0] = 0  # at least one labelled image
    all_ids = [knn(rng.normal(size=(n, 2)), 3)[0] for _ in range(configs)]
    p = curate.label_probabilities(all_ids, labels, classes)
    np.testing.assert_allclose(p, brute_probs(all_ids, labels, classes), atol=1e-12)
    s = curate.label_suspects(p, labels)
    want = [i for i in range(n) if labels[i] >= 0 and max(p[i][c] for c in range(classes) if c != labels[i]) > p[i][labels[i]]]
    assert sorted(s.ids.tolist()) == want
    for i, g, sug, m in zip(s.ids, s.given, s.suggested, s.margin):
        assert g == labels[i] and sug != g and m == pytest.approx(p[i][sug] - p[i][g], abs=1e-6)
        assert p[i][sug] == pytest.approx(max(p[i][c] for c in range(classes) if c != g))
    assert np.all(np.diff(s.self_confidence) >= -1e-7)


def test_label_mistakes_finds_flipped_labels_in_every_field():
    rng = np.random.default_rng(2)
    centres = rng.normal(scale=10, size=(4, 8))
    y = np.repeat(np.arange(4), 30)
    x = centres[y] + rng.normal(size=(120, 8))
    ids, _ = knn(x, 7)
    flipped = y.copy()
    flipped[[3, 40, 77]] = [1, 2, 0]
    other = np.where(np.arange(120) % 2 == 0, y % 2, -1)  # a second field, half empty
    out = curate.label_mistakes({"class": (flipped, 4), "half": (other, 2)}, [ids])
    assert out["class"].classifier is None  # no vectors: the neighbour votes
    s = out["class"].suspects
    assert set(s.ids.tolist()) == {3, 40, 77}
    assert s.suggested.tolist() == [y[i] for i in s.ids]
    assert len(out["half"].suspects.ids) == 0


def test_label_mistakes_with_vectors_uses_the_best_agreeing_configurations_classifier():
    rng = np.random.default_rng(2)
    centres = rng.normal(scale=10, size=(4, 8))
    y = np.repeat(np.arange(4), 30)
    x = centres[y] + rng.normal(size=(120, 8))
    noise = rng.normal(size=(120, 8))  # a configuration whose neighbours ignore the classes
    flipped = y.copy()
    flipped[[3, 40, 77]] = [1, 2, 0]
    half = np.where(np.arange(120) % 2 == 0, y, -1)  # a second field, half empty, no mistake
    seen = []

    def vectors(i):
        seen.append(i)
        return (noise, x)[i], True

    out = curate.label_mistakes({"class": (flipped, 4), "half": (half, 4)}, [knn(noise, 7)[0], knn(x, 7)[0]], vectors)
    assert out["class"].classifier == 1 and set(seen) == {1}
    s = out["class"].suspects
    assert s.ids[:3].tolist() and set(s.ids[:3].tolist()) == {3, 40, 77}
    assert s.suggested[:3].tolist() == [y[i] for i in s.ids[:3]]
    assert len(out["half"].suspects.ids) == 0


@settings(max_examples=10, deadline=None)
@given(n=st.integers(12, 60), classes=st.integers(2, 4), dim=st.integers(2, 6), cosine=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_classifier_probabilities_are_out_of_fold_logistic_regressions(n, classes, dim, cosine, seed):
    """Against the plainest reference: the same folds, one scikit-learn fit per fold, by hand."""
    import warnings

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    rng = np.random.default_rng(seed)
    labels = rng.integers(-1, classes, size=n)
    labels[:2 * classes] = np.tile(np.arange(classes), 2)  # every label twice at least
    x = rng.normal(size=(n, dim)) + labels[:, None]
    p = curate.classifier_probabilities(x, labels, classes, cosine)
    have = np.flatnonzero(labels >= 0)
    z = x[have] / (np.linalg.norm(x[have], axis=1, keepdims=True) if cosine else np.median(np.linalg.norm(x[have], axis=1)))
    folds = int(np.clip(np.bincount(labels[have]).min(), 2, curate.CV_FOLDS))
    want = np.zeros((len(have), classes))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=0).split(z, labels[have]):
            m = LogisticRegression(max_iter=1000).fit(z[train], labels[have][train])
            want[np.ix_(test, m.classes_)] = m.predict_proba(z[test])
    np.testing.assert_allclose(p[have], want, atol=1e-5)
    np.testing.assert_allclose(p[labels < 0], 1 / classes)


def test_classifier_probabilities_need_two_labels_and_reduce_wide_vectors():
    rng = np.random.default_rng(4)
    assert curate.classifier_probabilities(rng.normal(size=(20, 3)), np.zeros(20, int), 2, True) is None
    assert curate.classifier_probabilities(rng.normal(size=(3, 3)), np.array([0, 1, -1]), 2, True) is None
    y = np.repeat(np.arange(3), 100)
    x = rng.normal(size=(300, curate.CLASSIFIER_DIMS + 200)) + 3 * np.eye(3)[y] @ rng.normal(size=(3, curate.CLASSIFIER_DIMS + 200))
    p = curate.classifier_probabilities(x, y, 3, False)
    assert p.shape == (300, 3) and (p.argmax(1) == y).mean() > 0.95


# --- stages/curate.py: a real (tiny, random-weight) run writes the lists, the bundle and the CLI report
CONFIG = ('models = ["mobilenet_025"]\nnum_layers = 1\npooling = ["avg"]\nmetrics = ["cosine", "euclidean"]\n'
          'weights = "none"\nbrowser_search = false\nk = 5\nbatch_size = 8\natlas = false\nfeatviz_models = []\n')


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    import shutil

    from convnet_search import cli
    from test_cli import add_plain_images

    root = tmp_path_factory.mktemp("curate")
    data = root / "photos"
    add_plain_images(data, 8, ["a", "b", "c"])
    shutil.copy(data / "a" / "plain_00.png", data / "a" / "copy_of_00.png")  # a planted exact copy
    shutil.copy(data / "b" / "plain_01.png", data / "c" / "mislabelled.png")  # and a b image filed under c
    (root / "c.toml").write_text(CONFIG)
    before = sorted((p.relative_to(data), p.read_bytes()) for p in data.rglob("*") if p.is_file())
    assert cli.main(["precompute", "--config", str(root / "c.toml"), "--dataset", str(data),
                     "--work", str(root / "work"), "--out", str(root / "out")]) == 0
    assert sorted((p.relative_to(data), p.read_bytes()) for p in data.rglob("*") if p.is_file()) == before
    return root, data


def test_the_run_groups_the_planted_copy_in_every_configuration(curated):
    import json

    from test_cli import SCHEMA

    import jsonschema

    root, _ = curated
    out = root / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    jsonschema.validate(manifest, SCHEMA)
    ds = manifest["datasets"][0]
    assert ds["curate_fields"] == ["class"]
    files = [n for p in sorted((out / "datasets" / ds["id"] / "names").glob("*.json"), key=lambda p: int(p.stem))
             for n in json.loads(p.read_text())]
    copy, orig = files.index("a/copy_of_00.png"), files.index("a/plain_00.png")
    layer = manifest["models"][0]["layers"][0]["name"]
    for metric in ("cosine", "euclidean"):
        rel = manifest["files"]["curate"].format(dataset=ds["id"], model="mobilenet_025", layer=layer,
                                                 pooling="avg", metric=metric)
        cfg = json.loads((out / rel).read_text())
        assert sorted([copy, orig]) in cfg["groups"], metric
        assert cfg["threshold"] > 0 and len(cfg["outliers"]) == ds["size"]
    labels = json.loads((out / manifest["files"]["curate_labels"].format(dataset=ds["id"])).read_text())
    assert set(labels["fields"]) == {"class"}


def test_cli_curate_prints_groups_as_relative_paths(curated, capsys):
    import csv
    import io
    import json

    from convnet_search import cli
    from convnet_search.api import open_run

    root, data = curated
    assert cli.main(["curate", "--work", str(root / "work"), "--dataset", str(data), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert ["a/copy_of_00.png", "a/plain_00.png"] in report["duplicates"]
    assert report["configuration"]["model"] == "mobilenet_025"
    # a labelled, scored run: curate opens on the API's best (search/evaluate.best_scored)
    assert report["configuration"]["chosen"].startswith("best mean search score")
    best = open_run(root / "work").best()
    assert [report["configuration"][f] for f in ("layer", "pooling", "metric")] == [best.layer, best.pooling,
                                                                                    best.metric]
    assert len(report["outliers"]) == 26 and set(report["label_mistakes"]) == {"class"}
    assert cli.main(["curate", "--work", str(root / "work"), "--dataset", str(data), "--metric", "euclidean",
                     "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    dup = {r["path"] for r in rows if r["kind"] == "duplicate" and r["group"] == "0"}
    assert {"a/copy_of_00.png", "a/plain_00.png"} <= {r["path"] for r in rows if r["kind"] == "duplicate"}
    assert dup and sum(r["kind"] == "outlier" for r in rows) == 26


def test_cli_curate_without_a_run_names_the_work_folder(tmp_path, capsys):
    from convnet_search import cli
    from test_cli import add_plain_images

    add_plain_images(tmp_path / "d", 3, ["a", "b"])
    assert cli.main(["curate", "--work", str(tmp_path / "w"), "--dataset", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "w") in err and "precompute" in err


def test_bundle_files_stay_under_20_kb_at_any_n():
    """Worst case: the longest ids (N = 10,000,000), every list full, big groups, long floats."""
    from convnet_search.io.store import StoredArrays, dumps_json
    from convnet_search.stages import curate as stage

    n, key = 10_000_000, "avg/l/cosine"
    rng = np.random.default_rng(0)
    sizes = np.full(1000, 50)
    members = rng.choice(n, size=sizes.sum(), replace=False).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    cur = StoredArrays({"thresholds": {key: 0.123456789}}, {
        f"{key}/dup_members": members, f"{key}/dup_offsets": offsets,
        f"{key}/dup_min": rng.random(1000).astype(np.float32) / 3, f"{key}/dup_max": rng.random(1000).astype(np.float32) / 3,
        f"{key}/uniqueness": (1 + rng.random(n)).astype(np.float32) / 3})
    config = dumps_json(stage.config_json(cur, key)).encode()
    assert len(config) <= 20_000, len(config)
    k = 100_000
    labels = StoredArrays({"fields": ["class"]}, {
        "class/ids": rng.choice(n, k).astype(np.int32), "class/given": rng.integers(0, 65_000, k).astype(np.int32),
        "class/suggested": rng.integers(0, 65_000, k).astype(np.int32),
        "class/margin": rng.random(k).astype(np.float32) / 3, "class/self_confidence": rng.random(k).astype(np.float32) / 3})
    assert len(dumps_json(stage.labels_json(labels)).encode()) <= 20_000
    got = stage.config_json(cur, key)
    assert got["group_size"][:3] == [50, 50, 50] and all(len(g) == stage.MEMBERS_SHOWN for g in got["groups"])


def test_default_configuration_without_labels_is_the_models_last_layer(tmp_path):
    """The layers in the model's order, not sorted by name (where conv_pw_8 comes after conv_pw_13)."""
    from convnet_search.io.store import ArrayStore
    from convnet_search.stages import curate as stage

    keys = [f"avg/{layer}/cosine" for layer in ("conv_pw_8_relu", "conv_pw_13_relu")]
    ArrayStore(tmp_path / "curate").write("d", "m", {"fingerprint": "x", "thresholds": {k: 0.5 for k in keys}},
                                          {f"{k}/uniqueness": np.ones(3, np.float32) for k in keys})
    config, why = stage.default_config(tmp_path, "d", ["m"], dict.fromkeys(("model", "layer", "pooling", "metric")))
    assert (config.layer, why) == ("conv_pw_13_relu", "no labels: the last layer of the first model")
