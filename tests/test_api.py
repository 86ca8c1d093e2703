"""api.py (the Python API) and the `search` / `export` commands on a tiny finished run: listing,
arrays, search by a dataset image (= the stored neighbours exactly) and by a new image (exact,
through the run's reader and weights), exports read back by pandas / numpy, clear errors, and
docs/python.md's examples executed as written."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.distance import cdist

import convnet_search as cs
from convnet_search import cli, pipeline
from test_cli import add_plain_images

CONFIG = ('models = ["mobilenet_025"]\nnum_layers = 2\npooling = ["avg", "max"]\n'
          'metrics = ["cosine", "euclidean"]\nweights = "none"\nbrowser_search = false\nk = 5\nbatch_size = 6\n')
DOCS = Path(__file__).resolve().parents[1] / "docs" / "python.md"


def _new_photo(path: Path) -> Path:
    """A photo that is not in the dataset (another size and pattern)."""
    rng = np.random.default_rng(7)
    img = rng.integers(0, 80, size=(70, 90, 3), dtype=np.uint8)
    img[10:40, 20:60] = (200, 140, 40)
    Image.fromarray(img).save(path, quality=92)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from convnet_search.config import load_config

    root = tmp_path_factory.mktemp("api")
    add_plain_images(root / "photos", 6, ["a", "b", "c"])
    for p in (root / "photos").rglob("*.png"):  # photos older than the scan cache's racy window, as in life
        os.utime(p, (1_700_000_000, 1_700_000_000))
    (root / "c.toml").write_text(CONFIG)
    pipeline.run(load_config(root / "c.toml", {"datasets": [str(root / "photos")], "out": str(root / "bundle"),
                                               "work": str(root / ".convnet-search")}))
    _new_photo(root / "my_photo.jpg")
    return root


@pytest.fixture(scope="module")
def run(tiny):
    return cs.open_run(tiny / ".convnet-search", tiny / "bundle")


def test_import_is_cheap_and_the_api_is_lazy():
    import subprocess
    import sys

    code = ("import sys, convnet_search as cs; assert 'tensorflow' not in sys.modules; "
            "assert 'convnet_search.api' not in sys.modules; cs.open_run; "
            "assert 'convnet_search.api' in sys.modules and 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
    with pytest.raises(AttributeError):
        cs.no_such_name


def test_a_run_lists_its_datasets_models_and_configurations(run):
    assert run.datasets == ["photos"]
    assert run.models("photos") == ["mobilenet_025"]
    configs = run.configurations()
    assert len(configs) == 2 * 2 * 2  # layers × poolings × metrics
    assert {c.metric for c in configs} == {"cosine", "euclidean"}
    best = run.best()
    assert all(run.scores(c).search_score <= run.scores(best).search_score for c in configs)
    assert run.select(metric="euclidean", pooling="max").metric == "euclidean"


def test_arrays_are_the_stored_ones_with_paths_and_label_fields(run, tiny):
    import h5py

    best = run.best()
    info = run.dataset()
    assert info.root == tiny / "photos"
    assert info.paths[0] == "a/plain_00.png" and info.labels == {"class": [p[0] for p in info.paths]}
    with h5py.File(tiny / ".convnet-search/neighbors/photos/mobilenet_025.h5") as f:
        stored = f["arrays"][f"{best.key}/{best.metric}/ids"][()]
    assert np.array_equal(run.neighbors(best)[0], stored)
    assert run.features(best).shape == (18, 256 if best.layer == "conv_pw_13_relu" else 128)
    assert run.map(best).shape == (18, 2)
    assert run.scores(best).numerators.shape == (18,)


def test_search_by_a_dataset_image_is_itself_then_its_stored_neighbours_exactly(run):
    for config in run.configurations():
        ids, dists = run.neighbors(config)
        for i in range(len(ids)):
            hits = run.search(i, config, k=ids.shape[1] + 1)
            assert [h.id for h in hits] == [i, *ids[i]]
            assert [h.distance for h in hits] == [0.0, *map(float, dists[i])]
        # beyond the stored k the same exact kernel continues the list
        more = run.search(3, config, k=12)
        assert [h.id for h in more[1:ids.shape[1] + 1]] == list(ids[3])
        X = run.features(config).astype(np.float64)
        d = cdist(X[3:4], X, "cosine" if config.metric == "cosine" else "euclidean")[0]
        d[3] = -1
        assert [h.id for h in more] == list(np.lexsort((np.arange(len(d)), d))[:12])


def test_a_dataset_file_by_path_or_by_its_bytes_is_that_image(run, tiny, tmp_path):
    best = run.best()
    want = [h.id for h in run.search(4, best)]
    assert [h.id for h in run.search(tiny / "photos/a/plain_04.png", best)] == want
    copy = shutil.copy(tiny / "photos/a/plain_04.png", tmp_path / "elsewhere.png")
    assert [h.id for h in run.search(copy, best)] == want
    # Without the scan cache (which records the folder and the digests) the path still tells
    work = shutil.copytree(tiny / ".convnet-search", tmp_path / "work")
    shutil.rmtree(work / "scan-cache")
    bare = cs.open_run(work)
    assert bare.dataset().root is None
    assert [h.id for h in bare.search(tiny / "photos/a/plain_04.png", best)] == want


def test_search_by_a_new_image_is_exact_with_the_runs_reader_and_weights(run, tiny):
    best = run.best()
    X = run.features(best)
    # The run's own forward pass: a dataset file embedded alone gives its stored row.
    np.testing.assert_allclose(run.embed([tiny / "photos/b/plain_01.png"], best)[0], X[7], rtol=1e-5, atol=1e-6)
    q = run.embed([tiny / "my_photo.jpg"], best)
    hits = run.search(tiny / "my_photo.jpg", best, k=18)
    d = cdist(q.astype(np.float64), X.astype(np.float64), best.metric)[0]
    assert [h.id for h in hits] == list(np.lexsort((np.arange(len(d)), d)))
    np.testing.assert_allclose([h.distance for h in hits], np.sort(d), rtol=1e-6, atol=1e-7)
    rgb = np.asarray(Image.open(tiny / "my_photo.jpg").convert("RGB"))
    assert [h.id for h in run.search(rgb, best, k=18)] == [h.id for h in hits]
    assert hits[0].labels == {"class": hits[0].path.split("/")[0]}


def test_clear_errors(run, tiny, tmp_path):
    with pytest.raises(cs.RunError, match="no such folder"):
        cs.open_run(tmp_path / "missing")
    with pytest.raises(cs.RunError, match=r"model 'resnet50' is not in this run .*mobilenet_025"):
        run.select(model="resnet50")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(cs.RunError, match=re.escape(str(bad))):
        run.search(bad)
    with pytest.raises(cs.RunError, match="uint8 RGB"):
        run.search(np.zeros((4, 4), np.float32))
    with pytest.raises(cs.RunError, match="no such image file"):
        run.search(tmp_path / "nope.jpg")


def test_the_weights_must_be_the_runs(tiny, tmp_path):
    """A network whose weights digest differs from the run's is refused, not silently used."""
    work = shutil.copytree(tiny / ".convnet-search", tmp_path / "work")
    from convnet_search.io.store import ArrayStore

    store = ArrayStore(work / "features")
    stored = store.load("photos", "mobilenet_025")
    meta = {**stored.meta, "weights_detail": "random init (seed 5)"}  # not the seed that made them
    store.write("photos", "mobilenet_025", meta, {k: stored.arrays[k] for k in stored.arrays})
    with pytest.raises(cs.RunError, match="weights digest"):
        cs.open_run(work).search(tiny / "my_photo.jpg")


def test_embed_folder_gives_the_runs_features(run, tiny):
    best = run.select(layer="conv_pw_13_relu", pooling="avg")
    emb = cs.embed_folder(tiny / "photos", model="mobilenet_025", layer="conv_pw_13_relu", pooling="avg",
                          weights="none", batch_size=6)
    assert emb.paths == run.dataset().paths and emb.labels == run.dataset().labels
    np.testing.assert_allclose(emb.features, run.features(best), rtol=1e-5, atol=1e-6)


def test_exports_read_back(run, tiny, tmp_path):
    import pandas as pd

    best = run.best()
    X, info = run.features(best), run.dataset()
    cs.export(run, "parquet", tmp_path / "pq", best)
    df = pd.read_parquet(tmp_path / "pq/embeddings.parquet")
    assert list(df.columns) == ["id", "path", "class", "embedding"]
    assert df["path"].tolist() == info.paths and df["class"].tolist() == info.labels["class"]
    assert np.array_equal(np.stack(df["embedding"].to_numpy()), X)
    import pyarrow.parquet as pq
    assert str(pq.read_schema(tmp_path / "pq/embeddings.parquet").field("embedding").type) == f"fixed_size_list<element: float>[{X.shape[1]}]"

    cs.export(run, "npz", tmp_path / "npz", best)
    with np.load(tmp_path / "npz/embeddings.npz") as z:  # allow_pickle stays False
        assert np.array_equal(z["embeddings"], X)
        assert np.array_equal(z["neighbor_ids"], run.neighbors(best)[0])
    side = json.loads((tmp_path / "npz/embeddings.json").read_text())
    assert side["paths"] == info.paths and side["labels"] == info.labels and side["config"]["metric"] == best.metric

    cs.export(run, "projector", tmp_path / "proj", best)
    tensors = np.loadtxt(tmp_path / "proj/tensors.tsv", delimiter="\t", dtype=np.float32)
    assert np.array_equal(tensors, X)
    meta = (tmp_path / "proj/metadata.tsv").read_text().splitlines()
    assert meta[0] == "path\tclass" and meta[1:] == [f"{p}\t{c}" for p, c in zip(info.paths, info.labels["class"])]
    cfg = (tmp_path / "proj/projector_config.pbtxt").read_text()
    assert 'tensor_path: "tensors.tsv"' in cfg and 'image_path: "sprite.png"' in cfg
    with Image.open(tmp_path / "proj/sprite.png") as im:
        assert im.size == (5 * 64, 5 * 64)  # 18 cells in a 5 × 5 grid of 64 px
        assert im.getpixel((32, 32)) != (238, 238, 238)  # cell 0 holds image 0, not the background


def test_an_export_never_replaces_someone_elses_folder(run, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("keep me")
    with pytest.raises(cs.RunError, match="not a convnet-search export"):
        cs.export(run, "npz", mine)
    assert [p.name for p in mine.iterdir()] == ["thesis.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(cs.RunError, match="not a folder"):
        cs.export(run, "npz", tmp_path / "file")
    # an earlier export is replaced (another format too), and nothing of it is left behind
    cs.export(run, "npz", tmp_path / "e")
    cs.export(run, "parquet", tmp_path / "e")
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == [".convnet-search-export", "embeddings.parquet"]
    (tmp_path / "e/notes.txt").write_text("mine")  # an export someone added a file to is not replaced
    with pytest.raises(cs.RunError, match="notes.txt"):
        cs.export(run, "parquet", tmp_path / "e")
    assert (tmp_path / "e/notes.txt").read_text() == "mine"


def test_cli_search_json_table_and_errors(tiny, capsys, tmp_path):
    work, out = str(tiny / ".convnet-search"), str(tiny / "bundle")
    img = str(tiny / "photos/b/plain_02.png")
    assert cli.main(["search", img, str(tiny / "my_photo.jpg"), "--work", work, "--out", out, "--json", "--k", "4"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in got] == [img, str(tiny / "my_photo.jpg")]
    first = got[0]["results"][0]
    assert (first["path"], first["class"], first["distance"], first["rank"]) == ("b/plain_02.png", "b", 0.0, 1)
    run = cs.open_run(work)
    assert [r["id"] for r in got[1]["results"]] == [h.id for h in run.search(tiny / "my_photo.jpg", k=4)]
    assert cli.main(["search", img, "--work", work, "--model", "mobilenet_025", "--metric", "euclidean",
                     "--pooling", "max", "--k", "3"]) == 0
    table = capsys.readouterr().out
    assert "euclidean" in table and "b/plain_02.png" in table
    assert cli.main(["search", img, "--work", str(tmp_path / "none")]) == cli.EXIT_USAGE
    assert "no such folder" in capsys.readouterr().err
    assert cli.main(["search", img, "--work", work, "--model", "vgg16"]) == cli.EXIT_USAGE
    assert "'vgg16' is not in this run" in capsys.readouterr().err
    (tmp_path / "x.png").write_bytes(b"\x89PNG broken")
    assert cli.main(["search", str(tmp_path / "x.png"), "--work", work]) == cli.EXIT_USAGE
    assert str(tmp_path / "x.png") in capsys.readouterr().err


def test_cli_export_and_help_teach_with_an_example(tiny, capsys, tmp_path):
    work = str(tiny / ".convnet-search")
    assert cli.main(["export", "--format", "npz", "--work", work, "--dest", str(tmp_path / "n")]) == 0
    assert (tmp_path / "n/embeddings.npz").is_file()
    for command in ("search", "export"):
        assert cli.main([command, "--help"]) == 0
        assert f"convnet-search {command} " in capsys.readouterr().out  # an example line


def test_docs_python_examples_run(tiny, tmp_path, monkeypatch):
    """Every ```python block of docs/python.md, in order, in one namespace, in a folder laid out as
    the page says (a finished run, its photos and a new photo)."""
    for name in (".convnet-search", "bundle", "photos"):
        shutil.copytree(tiny / name, tmp_path / name, symlinks=True)
    shutil.copy(tiny / "my_photo.jpg", tmp_path / "my_photo.jpg")
    # The copied work folder's scan cache names the original root: point it at the copy.
    for p in (tmp_path / ".convnet-search/scan-cache").glob("*.json"):
        p.write_text(p.read_text().replace(str(tiny / "photos"), str(tmp_path / "photos")))
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 5
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOCS), "exec"), namespace)
    assert (tmp_path / "exports/projector/projector_config.pbtxt").is_file()


def test_a_bundle_alone_gives_the_same_lists_neighbours_maps_and_labels(run, tiny, tmp_path):
    bundle = cs.open_run(tmp_path / "no-work-folder", tiny / "bundle")
    assert bundle.datasets == run.datasets and bundle.configurations() == run.configurations()
    assert bundle.dataset().paths == run.dataset().paths and bundle.dataset().labels == run.dataset().labels
    for c in run.configurations():
        for got, want in zip(bundle.neighbors(c), run.neighbors(c)):
            assert np.array_equal(got, want)
        assert np.array_equal(bundle.map(c), run.map(c))
        assert bundle.scores(c).search_score == pytest.approx(run.scores(c).search_score, abs=1e-4)
    best = run.best()  # (a bundle's mean scores are rounded: its own best may differ on a near-tie)
    assert [h.id for h in bundle.search(tiny / "photos/c/plain_01.png", best)] == [h.id for h in run.search(13, best, k=6)]
    with pytest.raises(cs.RunError, match="needs the run's work folder"):
        bundle.search(tiny / "my_photo.jpg")
    with pytest.raises(cs.RunError, match="holds no features"):
        bundle.features(run.best())
