"""Bundle at scale without building big bundles: manifest size independent of N, uint32 ids."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from convnet_search.stages.outputs import DatasetResults
from convnet_search.stages.bundle import (LEGACY_THUMBS_MAX, BundleError, BundleInputs, _id_dtype,
                                   build_manifest, knn_blob)
from convnet_search.io.datasets import Dataset
from convnet_search.io.store import StoredArrays, dumps_json

SCHEMA = json.loads((Path(__file__).parents[1] / "docs" / "manifest.schema.json").read_text())


def _inputs(n: int) -> BundleInputs:
    layer = {"name": "conv1", "index": 1, "type": "Conv2D", "output_shape": [2, 2, 4], "dims": {"avg": 4},
             "params_cumulative": 10, "depth": 1.0}
    meta = {"name": "Toy", "params": 10, "layer_count": 2, "input_size": [8, 8], "weights": "random",
            "weights_detail": "random", "layers": [layer]}
    ds = Dataset("toy", "Toy", "d", "s", Path("/nowhere"), ["a", "b"], [f"a/{i}.png" for i in range(n)],
                 np.arange(n) % 2)
    return BundleInputs([DatasetResults(ds, {"toy": StoredArrays(meta, {})}, {}, {})], ["toy"], ["cosine"],
                        3.0, 15, ("avg",))


def test_manifest_size_does_not_grow_with_n():
    import jsonschema

    small, large = (dumps_json(build_manifest(_inputs(n))) for n in (100, 2000))
    jsonschema.validate(json.loads(large), SCHEMA)
    assert small.replace('"size":100,', '"size":2000,') == large  # only the size digits differ
    assert len(large) - len(small) == 1


def test_manifest_drops_per_image_thumbnails_above_the_legacy_limit():
    over = build_manifest(_inputs(LEGACY_THUMBS_MAX + 1))
    assert "thumbnail" not in over["files"] and "thumb_sheet" in over["files"]
    assert "thumbnail" in build_manifest(_inputs(LEGACY_THUMBS_MAX))["files"]


def test_id_dtype_switches_to_uint32_above_65535():
    assert _id_dtype(65535) == np.dtype("<u2") and _id_dtype(65536) == np.dtype("<u4")
    assert build_manifest(_inputs(70_000))["datasets"][0]["id_dtype"] == "uint32"


@pytest.mark.parametrize("n", [65535, 70_000])
def test_knn_blob_round_trips_ids_past_uint16(n):
    k = 2
    rng = np.random.default_rng(0)
    ids = rng.integers(0, n, size=(n, k + 1)).astype(np.int32)
    ids[-1] = [n - 1, n - 2, 0]  # the largest ids survive the narrowing
    dists = np.sort(rng.random((n, k + 1)), axis=1).astype(np.float32)
    blob = knn_blob(ids, dists, k, n)
    dt = _id_dtype(n)
    assert len(blob) == n * k * (4 + dt.itemsize)
    back_d = np.frombuffer(blob, "<f4", n * k).reshape(n, k)
    back_i = np.frombuffer(blob, dt, n * k, offset=n * k * 4).reshape(n, k)
    assert (back_i == ids[:, :k]).all() and (back_d == dists[:, :k]).all()
    assert back_i.max() == n - 1


def test_knn_blob_refuses_ids_out_of_range():
    with pytest.raises(BundleError):
        knn_blob(np.array([[5]]), np.array([[0.0]]), 1, 5)


def test_previous_browser_entries_come_from_the_replaced_bundle_of_the_same_model_and_metrics(tmp_path):
    import json
    from types import SimpleNamespace

    from convnet_search.stages.bundle import metric_entries, previous_browser_entries

    inp = SimpleNamespace(browser=SimpleNamespace(model="mobilenet_025"), metrics=["cosine", "minkowski"],
                          minkowski_p=3.0)
    entry = {"dataset": "d", "layer": "l", "pooling": "avg", "encoding": "uint8", "dims": 4, "recall_n": 9}
    manifest = {"metrics": metric_entries(inp.metrics, 3.0),
                "browser_search": {"model": "mobilenet_025", "features": [entry]}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert previous_browser_entries(tmp_path, inp) == {("d", "l", "avg"): entry}
    assert previous_browser_entries(tmp_path, SimpleNamespace(**{**vars(inp), "minkowski_p": 4.0})) == {}
    assert previous_browser_entries(tmp_path, SimpleNamespace(**{**vars(inp), "browser": SimpleNamespace(model="x")})) == {}
    assert previous_browser_entries(tmp_path / "missing", inp) == {}
    (tmp_path / "manifest.json").write_text("{not json")
    assert previous_browser_entries(tmp_path, inp) == {}


def test_label_dtype_is_the_narrowest_for_the_class_count():
    from convnet_search.stages.bundle import label_dtype

    assert [label_dtype(c).name for c in (1, 256, 257, 65536, 65537)] == ["uint8", "uint8", "uint16", "uint16", "uint32"]
    assert build_manifest(_inputs(10))["datasets"][0]["label_dtype"] == "uint8"


@pytest.mark.parametrize("n, classes", [(1, 2), (32, 2), (33, 300), (600, 70_000)])
def test_labels_and_names_pages_round_trip_across_page_boundaries(tmp_path, n, classes):
    from convnet_search.stages.bundle import NAMES_PAGE, _write_index, read_index

    assert NAMES_PAGE == 32
    labels = (np.arange(n) * 7919) % classes
    labels[-1] = classes - 1  # the largest class index survives the narrowing
    files = [f"c{lab}/ü {i}.png" for i, lab in enumerate(labels)]  # non-ASCII names stay UTF-8 text
    ds = Dataset("toy", "Toy", "d", "s", Path("/nowhere"), [f"c{c}" for c in range(classes)], files, labels)
    _write_index(tmp_path, ds)
    dtype = "uint8" if classes <= 256 else "uint16" if classes <= 65536 else "uint32"
    manifest = {"files": {"labels": "datasets/{dataset}/labels.bin", "names": "datasets/{dataset}/names/{page}.json"},
                "datasets": [{"id": "toy", "size": n, "names_page": NAMES_PAGE, "label_dtype": dtype}]}
    names, back = read_index(tmp_path, manifest, "toy")
    assert names == files and back.tolist() == labels.tolist()
    raw = (tmp_path / "datasets/toy/labels.bin").read_bytes()
    assert len(raw) == n * np.dtype(dtype).itemsize
    assert np.frombuffer(raw, "<" + {"uint8": "u1", "uint16": "u2", "uint32": "u4"}[dtype]).tolist() == labels.tolist()
    pages = sorted((tmp_path / "datasets/toy/names").iterdir())
    assert len(pages) == -(-n // NAMES_PAGE)
    assert [len(json.loads(p.read_text(encoding="utf-8"))) for p in sorted(pages, key=lambda p: int(p.stem))][-1] == n - (len(pages) - 1) * NAMES_PAGE


def test_labels_outside_the_classes_are_refused(tmp_path):
    from convnet_search.stages.bundle import _write_index

    ds = Dataset("toy", "Toy", "d", "s", Path("/nowhere"), ["a", "b"], ["a/0.png", "b/1.png"], np.array([0, 2]))
    with pytest.raises(BundleError, match="labels"):
        _write_index(tmp_path, ds)
