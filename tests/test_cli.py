"""The `convnet-search` CLI end to end on tiny data (weights none): odd images, resume after kill -9,
up-to-date skipping, the bundle against docs/bundle.md and its JSON Schema."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convnet_search.stages.bundle import read_index
from convnet_search.search.browser_features import Layout
from odd_images import make_odd_image_folder

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "docs" / "manifest.schema.json").read_text())
CLI = [sys.executable, "-m", "convnet_search.cli"]


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def add_plain_images(root: Path, per_class: int, classes: list[str], seed: int = 0) -> None:
    """Simple valid images (a shape per class) so a dataset has more than k usable files."""
    rng = np.random.default_rng(seed)
    for c_i, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 60, size=(48, 48, 3), dtype=np.uint8)
            img[8 + 4 * c_i: 30 + 4 * c_i, 10:38] = rng.integers(120, 255, size=3, dtype=np.uint8)
            Image.fromarray(img).save(root / c / f"plain_{i:02d}.png")


def read_bundle(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def read_knn(out: Path, manifest: dict, ds: dict, model: str, layer: str, pooling: str, metric: str):
    """(distances, ids) of one .knn file, both [N, k], after checking its size (docs/bundle.md)."""
    n, k = ds["size"], ds["k"]
    id_dtype = {"uint16": "<u2", "uint32": "<u4"}[ds["id_dtype"]]
    raw = (out / manifest["files"]["neighbors"].format(dataset=ds["id"], model=model, layer=layer,
                                                       pooling=pooling, metric=metric)).read_bytes()
    assert len(raw) == n * k * (4 + np.dtype(id_dtype).itemsize)
    return (np.frombuffer(raw, "<f4", n * k).reshape(n, k),
            np.frombuffer(raw, id_dtype, n * k, n * k * 4).reshape(n, k).astype(np.int64))


def read_query_scores(out: Path, manifest: dict, ds: dict, metric: str, field: str = "class") -> np.ndarray:
    """uint8 [N, pooling, configuration] from the per-query score blocks, each block checked."""
    n, block = ds["size"], ds["scores_block"]
    per_query = len(manifest["poolings"]) * sum(len(m["layers"]) for m in manifest["models"])
    assert block * per_query <= 4096 or block == 1  # one block is a few KB whatever N is
    rows = []
    for b, start in enumerate(range(0, n, block)):
        raw = np.fromfile(out / manifest["files"]["scores"].format(dataset=ds["id"], metric=metric, block=b, field=field), np.uint8)
        assert raw.size == min(block, n - start) * per_query
        rows.append(raw.reshape(-1, len(manifest["poolings"]), per_query // len(manifest["poolings"])))
    return np.concatenate(rows)


def check_bundle(out: Path) -> dict:
    """Every file the manifest promises exists with the documented size; returns the manifest."""
    import jsonschema

    manifest = json.loads((out / "manifest.json").read_text())
    jsonschema.validate(manifest, SCHEMA)
    f = manifest["files"]
    for ds in manifest["datasets"]:
        n, d, k = ds["size"], ds["id"], ds["k"]
        assert k == min(manifest["k"], n - 1)
        top = ds["score"]["top"]
        assert top == min(15, k) and ds["score"]["scale"] == top * (top + 1) // 2
        names, labels = read_index(out, manifest, d)
        assert len(names) == len(labels) == n and labels.max() < len(ds["classes"])
        assert (out / f["labels"].format(dataset=d)).stat().st_size == n * np.dtype(ds["label_dtype"]).itemsize
        assert not (out / f["names"].format(dataset=d, page=-(-n // ds["names_page"]))).exists()
        for level in manifest["thumbnails"]["levels"]:  # sprite sheets: ⌈N / grid²⌉ per level
            per = manifest["thumbnails"]["grid"] ** 2
            last = out / f["thumb_sheet"].format(dataset=d, level=level["id"], sheet=(n - 1) // per)
            assert last.stat().st_size > 0
            assert not (out / f["thumb_sheet"].format(dataset=d, level=level["id"], sheet=(n - 1) // per + 1)).exists()
        if "thumbnail" in f:  # transitional per-image files (small bundles only)
            assert (out / f["thumbnail"].format(dataset=d, id=n - 1)).stat().st_size > 0
        n_configs = sum(len(m["layers"]) for m in manifest["models"])
        poolings = [p["id"] for p in manifest["poolings"]]
        for metric in manifest["metrics"]:
            m_id = metric["id"]
            assert (out / f["guidance"].format(dataset=d, metric=m_id)).stat().st_size > 0
            for fld in ds["fields"]:
                scores = read_query_scores(out, manifest, ds, m_id, fld["id"])
                assert scores.shape == (n, len(poolings), n_configs)
                assert scores[scores != 255].max(initial=0) <= ds["score"]["scale"]
                summary = json.loads((out / f["summary"].format(dataset=d, metric=m_id, field=fld["id"])).read_text())
                assert summary["dataset"] == d and summary["metric"] == m_id and summary["poolings"] == poolings
                for per_pooling in summary["search_score"]:
                    assert [len(row) for row in per_pooling] == [len(m["layers"]) for m in manifest["models"]]
            for model in manifest["models"]:
                for layer in model["layers"]:
                    assert set(layer["dims"]) == set(poolings)
                    for pooling in poolings:
                        dist, ids = read_knn(out, manifest, ds, model["id"], layer["name"], pooling, m_id)
                        assert (np.diff(dist, axis=1) >= 0).all()
                        assert (ids != np.arange(n)[:, None]).all() and ids.max() < n
        for model in manifest["models"]:
            for layer in model["layers"]:
                for pooling in poolings:
                    xy = np.fromfile(out / f["umap"].format(dataset=d, model=model["id"], layer=layer["name"],
                                                            pooling=pooling), "<f4")
                    assert xy.size == 2 * n and xy.min() >= 0 and xy.max() <= 1
    bs = manifest["browser_search"]
    if bs is not None:  # the TF.js model is there, its hash is the files', and features are N x dim
        import hashlib

        model_json = out / bs["model_url"]
        shards = [p for g in json.loads(model_json.read_text())["weightsManifest"] for p in g["paths"]]
        h = hashlib.sha256()
        for name in [model_json.name, *shards]:  # docs/bundle.md: name, NUL, bytes; model.json first
            h.update(name.encode() + b"\0" + (model_json.parent / name).read_bytes())
        assert h.hexdigest() == bs["model_sha256"]
        assert bs["model_bytes"] == model_json.stat().st_size + sum((model_json.parent / s).stat().st_size for s in shards)
        sizes = {d["id"]: d["size"] for d in manifest["datasets"]}
        entries = {(e["dataset"], e["layer"], e["pooling"]): e for e in bs["features"]}
        assert len(entries) == len(bs["features"]) == len(bs["datasets"]) * len(bs["outputs"])
        for d in bs["datasets"]:
            for o in bs["outputs"]:
                e = entries[(d, o["layer"], o["pooling"])]
                data = (out / f["browser_features"].format(dataset=d, layer=o["layer"], pooling=o["pooling"],
                                                           encoding=e["encoding"])).read_bytes()
                assert len(data) == e["bytes"] == Layout(e["encoding"], sizes[d], o["dim"], e["dims"]).nbytes
        # One spatial output per exported layer, shaped like that layer's map ("why similar?").
        shapes = {x["name"]: x["output_shape"] for m in manifest["models"] if m["id"] == bs["model"]
                  for x in m["layers"]}
        assert [s["layer"] for s in bs["spatial_outputs"]] == list(dict.fromkeys(o["layer"] for o in bs["outputs"]))
        assert all(s["shape"] == shapes[s["layer"]] for s in bs["spatial_outputs"]), bs["spatial_outputs"]
    return manifest


def test_help_and_bad_flags():
    r = run_cli("precompute", "--help")
    assert r.returncode == 0 and "--weights" in r.stdout and "--minkowski-p" in r.stdout
    r = run_cli("precompute", "--models", "alexnet")
    assert r.returncode == 2 and "unknown model 'alexnet'" in r.stderr and "mobilenet" in r.stderr
    r = run_cli("precompute", "--metrics", "manhattan")
    assert r.returncode == 2 and "manhattan" in r.stderr and "cosine" in r.stderr
    r = run_cli("precompute", "--minkowski-p", "2")
    assert r.returncode == 2 and "euclidean" in r.stderr
    r = run_cli("precompute", "--dataset", "/no/such/folder")
    assert r.returncode == 3 and "/no/such/folder" in r.stderr
    r = run_cli("fetch", "mnist", "/tmp/never-written")
    assert r.returncode == 2 and "unknown public dataset 'mnist'; known: cifar10" in r.stderr  # a usage mistake (issue 19 row 15)


def test_odd_and_broken_images_end_to_end(tmp_path):
    odd = make_odd_image_folder(tmp_path / "odd")
    add_plain_images(odd.root, 4, odd.classes)
    out, work = tmp_path / "out", tmp_path / "work"
    # --labels folders: the odd folder has a valid image directly in the root ("stray.png"), which
    # would make the default (auto) read the whole tree unlabelled instead of listing it.
    r = run_cli("precompute", "--dataset", str(odd.root), "--models", "mobilenet", "--num-layers", "2",
                "--weights", "none", "--labels", "folders", "--out", str(out), "--work", str(work))
    assert r.returncode == 0, r.stderr[-3000:]
    manifest = check_bundle(out)
    assert manifest["browser_search"] is not None  # so the whole manifest met the schema
    ds = manifest["datasets"][0]
    assert set(odd.valid) <= set(read_index(out, manifest, ds["id"])[0])  # every valid odd file was embedded
    skipped = {s["file"]: s["reason"] for s in ds["skipped"]}
    for path, reason in odd.bad.items():
        assert reason in skipped[path], (path, skipped.get(path))
        assert path in r.stderr  # named in the run summary too
    assert manifest["weights"] == "random"
    check_bundle_against_reference(out, work, manifest)


def check_bundle_against_reference(out: Path, work: Path, manifest: dict) -> None:
    """The bundle's neighbours and scores equal a brute-force recomputation from the stored features."""
    from scipy.spatial.distance import cdist

    from convnet_search.search.evaluate import search_score_numerators
    from convnet_search.io.store import ArrayStore

    ds = manifest["datasets"][0]
    k, d, top = ds["k"], ds["id"], ds["score"]["top"]
    labels = read_index(out, manifest, d)[1].astype(np.int64)
    model = manifest["models"][0]
    feats = ArrayStore(work / "features").load(d, model["id"]).arrays
    for metric in manifest["metrics"]:
        m_id, p = metric["id"], metric["p"]
        scores = read_query_scores(out, manifest, ds, m_id)
        summary = json.loads((out / manifest["files"]["summary"].format(dataset=d, metric=m_id, field="class")).read_text())
        for pi, pooling in enumerate(pl["id"] for pl in manifest["poolings"]):
            for c, layer in enumerate(model["layers"]):
                x = feats[f"{pooling}/{layer['name']}"].astype(np.float64)
                kw = {"p": p} if m_id == "minkowski" else {}
                ref = cdist(x, x, m_id, **kw)
                np.fill_diagonal(ref, np.inf)
                dist, ids = read_knn(out, manifest, ds, model["id"], layer["name"], pooling, m_id)
                np.testing.assert_allclose(dist, np.take_along_axis(ref, ids, 1), rtol=1e-5, atol=1e-6)
                kth = np.sort(ref, axis=1)[:, k - 1]
                assert (dist[:, -1] <= kth * (1 + 1e-5) + 1e-6).all()  # nothing closer was left out
                np.testing.assert_array_equal(scores[:, pi, c], search_score_numerators(ids, labels, top))
                mean = search_score_numerators(ids, labels, top).mean() / ds["score"]["scale"]
                assert summary["search_score"][pi][0][c] == pytest.approx(mean, abs=1e-4)  # rounded to 4 places


def _write_config(path: Path, shard_size: int) -> Path:
    path.write_text(f'models = ["vgg16"]\nnum_layers = 2\nmetrics = ["cosine", "minkowski"]\n'
                    f'weights = "none"\nshard_size = {shard_size}\nbatch_size = 4\nbrowser_search = false\n')
    return path


def test_kill_9_during_extraction_then_resume_gives_identical_bundle(tmp_path, monkeypatch):
    data = tmp_path / "data"
    add_plain_images(data, 12, ["a", "b", "c"])
    cfg = _write_config(tmp_path / "c.toml", shard_size=4)
    ref_out, ref_work = tmp_path / "ref_out", tmp_path / "ref_work"
    r = run_cli("precompute", "--config", str(cfg), "--dataset", str(data), "--out", str(ref_out),
                "--work", str(ref_work))
    assert r.returncode == 0, r.stderr[-3000:]

    out, work = tmp_path / "out", tmp_path / "work"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0"}
    proc = subprocess.Popen([*CLI, "precompute", "--config", str(cfg), "--dataset", str(data), "--out",
                             str(out), "--work", str(work)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list(work.rglob("shard-*.npz")):  # one of several shards done
        assert proc.poll() is None, "run finished before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    shards = list(work.rglob("shard-*.npz"))
    assert shards and not (out / "manifest.json").exists()  # killed mid-extraction
    r = run_cli("precompute", "--config", str(cfg), "--dataset", str(data), "--out", str(out),
                "--work", str(work))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resumed" in r.stderr
    assert read_bundle(out) == read_bundle(ref_out)
    assert not list(work.rglob("shard-*.npz"))  # parts cleaned up once assembled

    # nothing changed: everything is skipped; a changed image re-extracts
    r = run_cli("precompute", "--config", str(cfg), "--dataset", str(data), "--out", str(out),
                "--work", str(work))
    assert r.returncode == 0 and "up to date" in r.stderr and "bundle up to date" in r.stderr
    # a new bundle format: the same stage outputs are written again in it, not kept as "up to date"
    from convnet_search import pipeline
    from convnet_search.stages import bundle as bundle_stage
    from convnet_search.config import load_config

    run_cfg = load_config(cfg, {"datasets": [str(data)], "out": str(out), "work": str(work)})
    # ...deciding that from stage metadata only: no stored array is read (store.LazyArrays)
    import h5py

    reads = []
    real_getitem = h5py.Dataset.__getitem__
    monkeypatch.setattr(h5py.Dataset, "__getitem__", lambda self, i: reads.append(self.name) or real_getitem(self, i))
    assert pipeline.run(run_cfg).bundle_status == "up to date"
    assert reads == []
    monkeypatch.setattr(bundle_stage, "BUNDLE_VERSION", bundle_stage.BUNDLE_VERSION + 1)
    assert pipeline.run(run_cfg).bundle_status == "written"
    assert reads  # the check above can fail: writing the bundle reads arrays through the same path
    monkeypatch.setattr(h5py.Dataset, "__getitem__", real_getitem)
    shutil.copy(data / "b" / "plain_00.png", data / "a" / "plain_00.png")
    r = run_cli("precompute", "--config", str(cfg), "--dataset", str(data), "--out", str(out),
                "--work", str(work))
    assert r.returncode == 0 and "extracted" in r.stderr and "bundle written" in r.stderr


def test_refuses_to_replace_a_foreign_folder(tmp_path):
    data = tmp_path / "data"
    add_plain_images(data, 6, ["a", "b", "c"])
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.txt").write_text("do not delete")
    cfg = _write_config(tmp_path / "c.toml", shard_size=256)
    r = run_cli("precompute", "--config", str(cfg), "--dataset", str(data), "--out", str(out),
                "--work", str(tmp_path / "w"))
    assert r.returncode == 2 and "refusing to replace" in r.stderr
    assert (out / "thesis.txt").read_text() == "do not delete"


def test_small_folder_with_broken_files_runs_with_k_shrunk(tmp_path):
    """5 valid images + 3 broken ones: exit 0, the 3 are named, each query has 4 results, the search
    score uses the top 4, and the bundle equals a brute-force recomputation."""
    data = tmp_path / "small"
    add_plain_images(data, 3, ["a"])
    add_plain_images(data, 2, ["b"], seed=1)
    (data / "a" / "empty.jpg").write_bytes(b"")
    (data / "b" / "notes.jpg").write_text("not an image")
    (data / "b" / "cut.png").write_bytes((data / "a" / "plain_00.png").read_bytes()[:60])
    out, work = tmp_path / "out", tmp_path / "work"
    r = run_cli("precompute", "--dataset", str(data), "--models", "mobilenet_025", "--weights", "none",
                "--num-layers", "2", "--no-browser-search", "--out", str(out), "--work", str(work))
    assert r.returncode == 0, r.stderr
    for name in ("empty.jpg", "notes.jpg", "cut.png"):
        assert name in r.stderr
    assert "4 results (k=15 requested)" in " ".join(r.stderr.split())
    manifest = check_bundle(out)
    ds = manifest["datasets"][0]
    assert (ds["size"], ds["k"], ds["score"]) == (5, 4, {"top": 4, "scale": 10})
    assert len(ds["skipped"]) == 3
    check_bundle_against_reference(out, work, manifest)


def test_a_single_usable_image_is_refused_clearly(tmp_path):
    data = tmp_path / "one"
    add_plain_images(data, 1, ["a"])
    r = run_cli("precompute", "--dataset", str(data), "--models", "mobilenet_025", "--weights", "none",
                "--no-browser-search", "--out", str(tmp_path / "out"), "--work", str(tmp_path / "w"))
    assert r.returncode == 3 and "Traceback" not in r.stderr
    assert "needs at least 2" in " ".join(r.stderr.split())


def test_small_usage_mistakes_exit_2_and_a_bad_weights_cache_is_not_blamed_on_the_network(tmp_path, capsys):
    """Issue 19 row 15: `fetch foo` / `--per-class 0` exited 3 (nothing usable) instead of 2
    (usage); `weights fetch --weights-cache /proc/x` said the network was down."""
    from convnet_search import cli

    assert cli.main(["fetch", "foo", str(tmp_path / "d")]) == 2
    assert "unknown public dataset" in capsys.readouterr().err
    assert cli.main(["fetch", "cifar10", str(tmp_path / "d"), "--per-class", "0"]) == 2
    assert "--per-class must be ≥ 1" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = cli.main(["weights", "fetch", "mobilenet_025", "--weights-cache", str(blocker / "x")])
    err = capsys.readouterr().err
    assert code == 4, err
    assert "cannot write into the weights cache folder" in err and "network" not in err.lower()


def test_num_layers_beyond_the_model_says_how_many_it_has():
    """Issue 19 row 15: `--num-layers 1000` silently gave 27."""
    from convnet_search.nets.models import build_base, get_spec, select_default_layers

    base, _ = build_base(get_spec("mobilenet_025"), "none")
    with pytest.warns(UserWarning, match=r"--num-layers 1000: .* has only \d+ layers with a feature map"):
        names = select_default_layers(base, 1000)
    assert len(names) < 1000


def test_no_featviz_flag_turns_the_visualizations_off(monkeypatch, capsys):
    """Issue 19 row 10: only a config key turned them off."""
    from convnet_search import cli, pipeline

    seen = {}

    def fake_run(cfg, **kw):
        seen["featviz"] = cfg.featviz_models
        raise KeyboardInterrupt  # stop here: only the parsed config matters

    monkeypatch.setattr(pipeline, "run", fake_run)
    assert cli.main(["precompute", "--no-featviz", "--models", "mobilenet_025"]) == 130
    assert seen["featviz"] == ()
    assert "--no-featviz" in cli._parser()._subparsers._group_actions[0].choices["precompute"].format_help()
