"""pipeline.py: the run is a loop over the stages in order; `--only STAGE` runs that stage alone
from the stored outputs of the stages before it, and touches nothing else. Tiny data, one model."""
from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from convnet_search import pipeline
from convnet_search.config import RunConfig
from convnet_search.stages.base import STAGE_NAMES, StageInputMissing
from test_cli import add_plain_images, read_bundle

CONFIG = ('models = ["mobilenet_025"]\nnum_layers = 1\npooling = ["avg"]\nmetrics = ["cosine"]\n'
          'weights = "none"\nbrowser_search = false\nk = 5\nbatch_size = 6\n')


def _spy(monkeypatch) -> list[tuple[str, str]]:
    """Record (stage, "run" | "load") as the loop calls them; the stages still do their work."""
    calls: list[tuple[str, str]] = []

    def wrap(name, how, fn):
        return lambda ctx: (calls.append((name, how)), fn(ctx))[1]

    monkeypatch.setattr(pipeline, "STAGES", tuple(
        replace(s, run=wrap(s.name, "run", s.run), load=wrap(s.name, "load", s.load)) for s in pipeline.STAGES))
    return calls


def _inodes(folder: Path) -> dict[str, tuple[int, int]]:
    """Every stage output's (inode, mtime): a stage writes a new file and moves it into place, so a
    rewrite shows even within one clock tick (and the mtime tells a reused inode apart). Not the
    lock file or the scan cache (every run writes those)."""
    files = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    return {k: (p.stat().st_ino, p.stat().st_mtime_ns) for k, p in files.items()
            if not k.startswith((".convnet-search.lock", "scan-cache/"))}


class Run:
    def __init__(self, root: Path, data: Path, config: Path, work: Path, out: Path):
        self.root, self.data, self.config, self.work, self.out = root, data, config, work, out

    def cfg(self, **overrides):
        from convnet_search.config import load_config

        return load_config(self.config, {"datasets": [str(self.data)], "out": str(self.out),
                                         "work": str(self.work), **overrides})

    def copy(self, dest: Path) -> "Run":
        """The same run in fresh folders (a test changes its copy only)."""
        shutil.copytree(self.work, dest / "work")
        shutil.copytree(self.out, dest / "out")
        return Run(dest, self.data, self.config, dest / "work", dest / "out")


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    add_plain_images(root / "photos", 6, ["a", "b", "c"])
    (root / "c.toml").write_text(CONFIG)
    run = Run(root, root / "photos", root / "c.toml", root / "work", root / "out")
    with pytest.MonkeyPatch.context() as mp:
        calls = _spy(mp)
        report = pipeline.run(run.cfg())
    return run, calls, report


def test_a_run_is_every_stage_in_order_and_a_second_one_finds_all_current(first, monkeypatch):
    run, calls, report = first
    assert calls == [(name, "run") for name in STAGE_NAMES]
    assert list(report.stage_seconds) == list(STAGE_NAMES) and report.bundle_status == "written"
    assert (run.work / "scores" / run.data.name / "mobilenet_025.h5").is_file()
    before = _inodes(run.work)
    again = _spy(monkeypatch)
    report = pipeline.run(run.cfg())
    assert again == [(name, "run") for name in STAGE_NAMES] and report.bundle_status == "up to date"
    assert {e.status for e in report.extract} == {"up to date"}
    assert _inodes(run.work) == before  # nothing rewritten


def test_force_only_umap_reruns_umap_alone(first, monkeypatch, tmp_path):
    run = first[0].copy(tmp_path)
    work, out = _inodes(run.work), read_bundle(run.out)
    calls = _spy(monkeypatch)
    report = pipeline.run(run.cfg(), force=True, only="umap")
    assert calls == [("datasets", "load"), ("extract", "load"), ("neighbors", "load"), ("umap", "run")]
    assert list(report.stage_seconds) == ["datasets", "umap"] and report.extract == []
    assert report.bundle_status == "not written (--only umap)"
    now = _inodes(run.work)
    changed = sorted(k for k in now.keys() | work.keys() if now.get(k) != work.get(k))
    assert changed == [f"umap/{run.data.name}/mobilenet_025.h5"]  # only the maps were written
    assert read_bundle(run.out) == out


def test_only_brings_one_stage_up_to_date_and_the_next_full_run_the_rest(first, monkeypatch, tmp_path):
    run = first[0].copy(tmp_path)
    work = _inodes(run.work)
    calls = _spy(monkeypatch)
    pipeline.run(run.cfg(umap={"min_dist": 0.3}), only="umap")  # a new map parameter: umap is stale
    assert calls[-1] == ("umap", "run")
    umap_file = f"umap/{run.data.name}/mobilenet_025.h5"
    after = _inodes(run.work)
    assert [k for k in after if after[k] != work[k]] == [umap_file]
    pipeline.run(run.cfg(umap={"min_dist": 0.3}), only="umap")  # now current: not written again
    assert _inodes(run.work) == after
    bundle = _inodes(run.out)
    report = pipeline.run(run.cfg(umap={"min_dist": 0.3}))
    assert report.bundle_status == "written"  # the full run serializes the new maps
    assert {e.status for e in report.extract} == {"up to date"}
    assert _inodes(run.out) != bundle


def test_only_without_its_inputs_names_the_stage_to_run_first(first, tmp_path, capsys):
    from convnet_search import cli

    run = first[0].copy(tmp_path)
    shutil.rmtree(run.work / "neighbors")
    with pytest.raises(StageInputMissing, match="--only scores: the neighbors stage's output .* run `--only "
                                                "neighbors`") as err:
        pipeline.run(run.cfg(), only="scores")
    assert err.value.needed == "neighbors"
    fresh = Run(tmp_path, run.data, run.config, tmp_path / "w2", tmp_path / "o2")
    code = cli.main(["precompute", "--config", str(fresh.config), "--dataset", str(fresh.data), "--work",
                     str(fresh.work), "--out", str(fresh.out), "--only", "bundle"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "--only bundle: the extract stage's output" in err and "run `--only extract`" in err
    assert not (fresh.work / "features").exists() and not fresh.out.exists()


def test_an_unknown_stage_is_a_usage_error_listing_the_stages(capsys):
    from convnet_search import cli

    assert cli.main(["precompute", "--only", "thumbs"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'thumbs'" in err and all(f"'{name}'" in err for name in STAGE_NAMES)
    with pytest.raises(ValueError, match="unknown stage 'thumbs'"):
        pipeline.run(RunConfig(), only="thumbs")


def test_force_only_bundle_rewrites_the_same_bytes_from_the_stored_outputs(first, monkeypatch, tmp_path):
    run = first[0].copy(tmp_path)
    before, inodes = read_bundle(run.out), _inodes(run.out)
    calls = _spy(monkeypatch)
    report = pipeline.run(run.cfg(), force=True, only="bundle")
    assert report.bundle_status == "written" and calls[-1] == ("bundle", "run")
    assert all(how == "load" for _, how in calls[:-1]) and len(calls) == len(STAGE_NAMES)
    assert _inodes(run.out) != inodes and read_bundle(run.out) == before


def test_a_renamed_class_folder_keeps_neighbours_and_maps_and_equals_a_fresh_run(first, tmp_path):
    """Issue 19 row 9: renaming a class folder was delete + add (neighbours searched again, the map
    laid out anew). Features are keyed by content: only the labels' stages (scores, curate, bundle) redo."""
    import json

    run0, _, _ = first
    data = tmp_path / "photos"
    shutil.copytree(run0.data, data)
    run = run0.copy(tmp_path / "renamed")
    run.data = data
    pipeline.run(run.cfg())  # the copy in its new place: current again
    before = _inodes(run.work)
    (data / "b").rename(data / "b2")  # sorts where "b" did: the rows keep their order
    pipeline.run(run.cfg())
    after = _inodes(run.work)
    # Not the scores: their fingerprint covers the label fields, values (class names) included
    # (io/labels.py labels_fingerprint), so a rename re-scores: cheap, no vector is touched.
    for stage in ("neighbors", "umap"):
        kept = {k for k in before if k.startswith(stage + "/")}
        assert kept and all(after.get(k) == before[k] for k in kept), stage
    manifest = json.loads((run.out / "manifest.json").read_text())
    assert manifest["datasets"][0]["classes"] == ["a", "b2", "c"]
    fresh = Run(tmp_path, data, run.config, tmp_path / "fresh-work", tmp_path / "fresh-out")
    pipeline.run(fresh.cfg())
    assert read_bundle(run.out) == read_bundle(fresh.out)


# ---------------------------------------------------------------------------------------------
# Publishing after each model: a usable bundle long before the last model is done
# ---------------------------------------------------------------------------------------------

TWO = ('models = ["mobilenet_025", "mobilenet_050"]\nnum_layers = 1\npooling = ["avg"]\n'
       'metrics = ["cosine"]\nweights = "none"\nbrowser_search = false\nk = 5\nbatch_size = 6\n')


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """A run of two models (recording each bundle it publishes) and the same run in one pass."""
    import json

    from convnet_search.stages import bundle as bundle_stage
    from test_cli import check_bundle

    root = tmp_path_factory.mktemp("progressive")
    add_plain_images(root / "photos", 6, ["a", "b", "c"])
    (root / "c.toml").write_text(TWO)
    run = Run(root, root / "photos", root / "c.toml", root / "work", root / "out")
    published = []
    with pytest.MonkeyPatch.context() as mp:
        real = bundle_stage.write_bundle

        def record(out, inp, fp):
            manifest = real(out, inp, fp)
            check_bundle(out)  # complete and consistent for the models it lists, as published
            published.append((json.loads((out / "manifest.json").read_text()), read_bundle(out)))
            return manifest

        mp.setattr(bundle_stage, "write_bundle", record)
        report = pipeline.run(run.cfg())
    single = Run(root, run.data, run.config, root / "work1", root / "out1")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "publish_passes", lambda cfg, fresh=False: [])  # the whole run in one pass
        pipeline.run(single.cfg())
    return run, published, report, single


def test_a_run_of_several_models_publishes_the_bundle_after_each(two):
    run, published, report, single = two
    assert [[m["id"] for m in man["models"]] for man, _ in published] == [
        ["mobilenet_025"], ["mobilenet_025", "mobilenet_050"]]
    first, last = published[0][0], published[1][0]
    assert first["pending_models"] == [{"id": "mobilenet_050", "name": "MobileNet α=0.5"}]
    assert "pending_models" not in last
    # the last pass's bundle is the one a single pass writes, byte for byte
    assert read_bundle(run.out) == read_bundle(single.out) == published[1][1]
    # each model was extracted once, and the report says so (not "up to date" for the first)
    assert sorted((r.model, r.status) for r in report.extract) == [
        ("mobilenet_025", "extracted"), ("mobilenet_050", "extracted")]


def test_publish_passes_skip_what_the_bundle_already_shows(two, tmp_path):
    run, published, _, _ = two
    cfg = run.cfg()
    assert pipeline.publish_passes(cfg) == []  # complete: straight to the (up-to-date) last pass
    partial = tmp_path / "partial"
    partial.mkdir()
    for rel, data in published[0][1].items():  # the bundle a killed run left after model 1
        (partial / rel).parent.mkdir(parents=True, exist_ok=True)
        (partial / rel).write_bytes(data)
    assert pipeline.publish_passes(replace(cfg, out=partial)) == []
    three = replace(cfg, out=partial, models=("mobilenet_025", "mobilenet_050", "mobilenet_075"))
    assert [p.models for p in pipeline.publish_passes(three)] == [("mobilenet_025", "mobilenet_050")]
    fresh = replace(cfg, out=tmp_path / "none")
    assert [p.models for p in pipeline.publish_passes(fresh)] == [("mobilenet_025",)]
    assert [p.models for p in pipeline.publish_passes(cfg, fresh=True)] == [("mobilenet_025",)]  # --force
    assert pipeline.publish_passes(replace(cfg, models=("mobilenet_025",))) == []  # one model: one pass


def test_killed_after_the_first_publication_resumes_to_the_same_bytes(two, tmp_path):
    """kill -9 while the second model runs: the published bundle stays whole (model 1 only), and the
    resumed run neither republishes it nor writes different bytes than an uninterrupted run."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from test_cli import ROOT, check_bundle, run_cli

    run, _, _, single = two
    out, work = tmp_path / "out", tmp_path / "work"
    args = ["precompute", "--config", str(run.config), "--dataset", str(run.data), "--out", str(out),
            "--work", str(work)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "convnet_search.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 900  # a bound for a loaded machine, not a speed check
    while time.time() < deadline and not (out / "manifest.json").exists():
        assert proc.poll() is None, "run finished before it could be killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "manifest.json").exists(), "no bundle was published within 900 s"
    manifest = check_bundle(out)
    assert [m["id"] for m in manifest["models"]] == ["mobilenet_025"]
    assert [m["id"] for m in manifest["pending_models"]] == ["mobilenet_050"]
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "bundle published: 1 of 2" not in r.stderr  # the bundle already showed model 1
    assert read_bundle(out) == read_bundle(single.out)
    assert "pending_models" not in json.loads((out / "manifest.json").read_text())
