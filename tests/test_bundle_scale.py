"""Bundle at scale without building big bundles: manifest size independent of N, uint32 ids."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from convnet_search.bundle import (LEGACY_THUMBS_MAX, BundleError, BundleInputs, DatasetResults, _id_dtype,
                                   build_manifest, knn_blob)
from convnet_search.datasets import Dataset
from convnet_search.store import StoredArrays, dumps_json

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

    from convnet_search.bundle import metric_entries, previous_browser_entries

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
