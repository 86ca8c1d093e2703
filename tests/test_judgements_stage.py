"""stages/judgements.py and io/judgements.py: `--judgements FILE` ranks every configuration offline
from the stored neighbours, stores it in the bundle, and equals the Python ranking of the bundle's
own rows; a bad file is refused naming the file and the problem. Tiny data, random weights."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from convnet_search import pipeline
from convnet_search.cli import main
from convnet_search.io.judgements import JudgementsFileError, read_judgements
from convnet_search.search.judgements import rank_configurations
from test_cli import SCHEMA, add_plain_images, read_knn

CONFIG = ('models = ["mobilenet_025"]\nnum_layers = 2\npooling = ["avg", "max"]\nmetrics = ["cosine", "euclidean"]\n'
          'weights = "none"\nbrowser_search = false\nk = 5\nbatch_size = 6\nfeatviz_models = []\n')


def _entry(q: str, r: str, similar: bool, dataset: str = "photos") -> dict:
    return {"dataset": dataset, "query": q, "result": r, "similar": similar, "at": "2026-12-07T05:00:00.000Z"}


def _file(path: Path, entries: list[dict]) -> Path:
    path.write_text(json.dumps({"format": "convnet-search-judgements", "version": 1, "judgements": entries}))
    return path


def _marks(names: list[str]) -> list[dict]:
    """Judged by class folder: 3 queries, every other image judged."""
    out = []
    for q in names[::7]:
        for r in names[1::2]:
            if r != q:
                out.append(_entry(q, r, r.split("/")[0] == q.split("/")[0]))
    return out


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    root = tmp_path_factory.mktemp("judge")
    add_plain_images(root / "photos", 6, ["a", "b", "c"])
    (root / "c.toml").write_text(CONFIG)
    names = sorted(p.relative_to(root / "photos").as_posix() for p in (root / "photos").rglob("*.png"))
    jfile = _file(root / "marks.json", _marks(names))
    from convnet_search.config import load_config

    cfg = load_config(root / "c.toml", {"datasets": [str(root / "photos")], "out": str(root / "out"),
                                         "work": str(root / "work"), "judgements": str(jfile)})
    pipeline.run(cfg)
    return root, cfg, jfile


def test_the_bundle_holds_the_offline_ranking_of_every_configuration(offline):
    root, _, jfile = offline
    manifest = json.loads((root / "out" / "manifest.json").read_text())
    jsonschema.validate(manifest, SCHEMA)
    ds = manifest["datasets"][0]
    ranking = json.loads((root / "out" / manifest["files"]["judgements"].format(dataset=ds["id"])).read_text())
    n_configs = sum(len(m["layers"]) for m in manifest["models"]) * 2 * 2
    assert ds["judgements"] == {"source": "marks.json", "configurations": n_configs, "judgements": ranking["judgements"],
                                "judged_queries": 3, "scored_queries": 3}
    assert ranking["configurations"] == n_configs == len(ranking["order"]) == len(ranking["scores"])
    assert sorted(ranking["order"]) == list(range(n_configs))
    assert ranking["judgements"] == len(read_judgements(jfile).judgements)


def test_the_offline_ranking_equals_the_python_ranking_of_the_bundles_rows(offline):
    root, _, jfile = offline
    out = root / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    ds = manifest["datasets"][0]
    names = [n for page in range(-(-ds["size"] // ds["names_page"]))
             for n in json.loads((out / manifest["files"]["names"].format(dataset=ds["id"], page=page)).read_text())]
    judged = {(names.index(j.query), names.index(j.result)): j.similar for j in read_judgements(jfile).judgements}
    queries = sorted({q for q, _ in judged})
    rows = {}
    for m in manifest["models"]:  # manifest order, as the explorer's allColumns
        for layer in m["layers"]:
            for p in manifest["poolings"]:
                for x in manifest["metrics"]:
                    ids = read_knn(out, manifest, ds, m["id"], layer["name"], p["id"], x["id"])[1]
                    rows[f"{m['id']}|{layer['name']}|{p['id']}|{x['id']}"] = {q: list(ids[q]) for q in queries}
    expected = rank_configurations(rows, judged)
    stored = json.loads((out / manifest["files"]["judgements"].format(dataset=ds["id"])).read_text())
    keys = list(rows)
    assert [keys[i] for i in stored["order"]] == [r.config for r in expected.ranked]
    assert [(t["config"], t["score"], t["n_judged"], t["lo"], t["hi"]) for t in stored["top"]] == [
        (r.config, round(r.score, 4), r.n_judged, round(r.lo, 4), round(r.hi, 4)) for r in expected.ranked]
    assert stored["leader_share"] == round(expected.leader_share, 4)
    assert len({r.score for r in expected.ranked}) > 1  # the marks tell configurations apart


def test_a_second_run_reuses_the_stored_ranking_and_a_changed_file_recomputes_it(offline):
    root, cfg, jfile = offline
    stored = root / "work" / "judgements" / "photos.json"
    before = stored.stat().st_mtime_ns
    pipeline.run(cfg)
    assert stored.stat().st_mtime_ns == before
    entries = json.loads(jfile.read_text())["judgements"]
    entries[0]["similar"] = not entries[0]["similar"]
    changed = _file(root / "marks2.json", entries)
    from dataclasses import replace

    pipeline.run(replace(cfg, judgements=changed))
    assert json.loads(stored.read_text())["bundle"]["source"] == "marks2.json"


def test_a_run_without_judgements_lists_none(tmp_path):
    add_plain_images(tmp_path / "photos", 4, ["a", "b"])
    (tmp_path / "c.toml").write_text(CONFIG.replace("num_layers = 2", "num_layers = 1"))
    assert main(["precompute", "--config", str(tmp_path / "c.toml"), "--dataset", str(tmp_path / "photos"),
                 "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")]) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    jsonschema.validate(manifest, SCHEMA)
    assert "judgements" not in manifest["files"] and manifest["datasets"][0]["judgements"] is None


@pytest.mark.parametrize("content, problem", [
    (b"{not json", "not JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"[]", "expected a JSON object"),
    (json.dumps({"format": "other", "version": 1, "judgements": []}).encode(), "not a judgements file"),
    (json.dumps({"format": "convnet-search-judgements", "version": 2, "judgements": []}).encode(), "version 2"),
    (json.dumps({"format": "convnet-search-judgements", "version": 1}).encode(), "must be a list"),
    (json.dumps({"format": "convnet-search-judgements", "version": 1, "judgements": [
        {"dataset": "d", "query": "a.jpg", "result": "b.jpg", "at": "x"}]}).encode(), "entry 1: \"similar\""),
    (json.dumps({"format": "convnet-search-judgements", "version": 1, "judgements": [
        _entry("a.jpg", "b.jpg", True), {**_entry("a.jpg", "", True)}]}).encode(), "entry 2: \"result\""),
    (json.dumps({"format": "convnet-search-judgements", "version": 1, "judgements": [
        {**_entry("a.jpg", "b.jpg", True), "query_id": -1}]}).encode(), "\"query_id\" must be"),
])
def test_a_bad_file_is_refused_naming_the_file_and_the_problem(tmp_path, content, problem):
    path = tmp_path / "marks.json"
    path.write_bytes(content)
    with pytest.raises(JudgementsFileError) as err:
        read_judgements(path)
    assert str(path) in str(err.value) and problem in str(err.value)
    assert path.read_bytes() == content  # only read


def test_the_cli_refuses_a_bad_file_before_any_work_and_unknown_names_after_the_neighbours(tmp_path, capsys):
    add_plain_images(tmp_path / "photos", 4, ["a", "b"])
    (tmp_path / "c.toml").write_text(CONFIG.replace("num_layers = 2", "num_layers = 1"))
    args = ["precompute", "--config", str(tmp_path / "c.toml"), "--dataset", str(tmp_path / "photos"),
            "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"), "--judgements"]
    assert main([*args, str(tmp_path / "missing.json")]) == 2
    assert "missing.json: cannot read" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()
    bad = _file(tmp_path / "marks.json", [_entry("a/plain_00.png", "b/gone.png", False)])
    assert main([*args, str(bad)]) == 2
    err = capsys.readouterr().err
    assert "marks.json" in err and "entry 1" in err and "b/gone.png" in err
