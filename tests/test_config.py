"""Config: TOML + overrides, validation with clear errors."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from convnet_search.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_default_config_is_the_documented_default_run():
    cfg = load_config(ROOT / "configs" / "default.toml")
    # the real-weights model first (its results are published first), then by extraction cost
    assert cfg.models == ("mobilenet_025", "mobilenet", "efficientnetb0", "resnet50", "inceptionv3",
                          "densenet121")
    assert cfg.metrics == ("cosine", "euclidean", "sqeuclidean", "minkowski")
    assert cfg.minkowski_p == 3.0 and cfg.k == 15 and cfg.num_layers == 8 and cfg.weights == "auto"
    assert cfg.datasets == ("caltech10", "shapes")
    assert cfg.pooling == ("avg", "grid3")


def test_overrides_win_and_aliases_resolve(tmp_path):
    cfg = load_config(ROOT / "configs" / "default.toml",
                      {"models": ["VGG16"], "metrics": ["cos", "l2"], "k": 20, "out": str(tmp_path)})
    assert cfg.models == ("vgg16",) and cfg.metrics == ("cosine", "euclidean") and cfg.k == 20
    assert cfg.out == tmp_path


@pytest.mark.parametrize("overrides, message", [
    ({"models": ["alexnet"]}, "unknown model 'alexnet'"),
    ({"metrics": ["hamming"]}, "hamming"),
    ({"minkowski_p": 2.0}, "euclidean"),
    ({"minkowski_p": 0.5}, "p"),
    ({"k": 0}, "--k: expected an integer ≥ 1, got 0$"),
    ({"pooling": "median"}, '--pooling: expected one or a list of "avg", "max", "gem", "grid2", "grid3", "mgrid3", "flatten", got "median"'),
    ({"layers": {"resnet50": ["x"]}, "models": ["vgg16"]}, "not in the run: resnet50"),
    ({"batch_size": 0}, "--batch-size: expected an integer ≥ 1, got 0"),
])
def test_invalid_values_are_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("models = [")
    with pytest.raises(ConfigError, match="bad.toml: invalid TOML"):
        load_config(bad)
    typo = tmp_path / "typo.toml"
    typo.write_text('modles = ["vgg16"]\n')
    with pytest.raises(ConfigError, match="typo.toml: modles: unknown key \\(did you mean models\\?\\)"):
        load_config(typo)


# --- typed validation (issue 12, reproduction 4) ----------------------------------------------

def _problems(tmp_path, toml: str, overrides=None) -> list[str]:
    path = tmp_path / "x.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return info.value.problems


@pytest.mark.parametrize("toml, message", [
    ('k = "15"', 'x.toml: k: expected an integer ≥ 1, got "15" \\(a string\\)$'),
    ("k = true", "x.toml: k: expected an integer ≥ 1, got true \\(a boolean\\)$"),
    ("k = 15.0", "x.toml: k: expected an integer ≥ 1, got 15.0 \\(a float\\)$"),
    ("k = 1979-05-27", "x.toml: k: expected an integer .*, got 1979-05-27 \\(a date\\)$"),
    ("umap = 3", "x.toml: umap: expected a table with keys n_neighbors, min_dist, metric, "
                 "got 3 \\(an integer\\)$"),
    ("batch_size = 2.5", "x.toml: batch_size: expected an integer ≥ 1, got 2.5 \\(a float\\)$"),
    ('datasets = "ds/small"', 'x.toml: datasets: expected a non-empty list of non-empty strings, '
                              'got "ds/small" \\(a string\\)$'),
    ("datasets = []", "x.toml: datasets: expected a non-empty list .*, got \\[\\]$"),
    ('datasets = [""]', 'x.toml: datasets: expected a non-empty list of non-empty strings, got \\[""\\]$'),
    ('models = ["vgg16", 3]', "x.toml: models: expected a non-empty list .*, got \\[\"vgg16\", 3\\]$"),
    ('browser_search = "no"', 'x.toml: browser_search: expected true or false, got "no" \\(a string\\)'),
    ("browser_search = 0", "x.toml: browser_search: expected true or false, got 0 \\(an integer\\)"),
    ("follow_links = 1", "x.toml: follow_links: expected true or false, got 1 \\(an integer\\)"),
    ('out = ""', 'x.toml: out: expected a non-empty string \\(a folder path\\), got ""$'),
    ('work = ["a"]', 'x.toml: work: expected a non-empty string \\(a folder path\\), got \\["a"\\] \\(a list\\)'),
    ("minkowski_p = nan", "x.toml: minkowski_p: expected a finite number ≥ 1, got nan$"),
    ("minkowski_p = inf", "x.toml: minkowski_p: expected a finite number ≥ 1, got inf$"),
    ('minkowski_p = "3"', 'x.toml: minkowski_p: expected a finite number ≥ 1, got "3" \\(a string\\)'),
    ("seed = -1", "x.toml: seed: expected an integer between 0 and 4294967295, got -1$"),
    ('quantize = "int4"', 'x.toml: quantize: expected one of "float16", .*"none", got "int4"'),
    ("pooling = 1", 'x.toml: pooling: expected one or a list of "avg", "max", "gem", "grid2", "grid3", "mgrid3", "flatten", got 1 \\(an integer\\)'),
    ("weights = false", "x.toml: weights: expected a non-empty string, got false \\(a boolean\\)"),
    ("[umap]\nmin_dist = \"0.1\"", 'x.toml: umap.min_dist: expected a finite number between 0 and 1 .*, '
                                   'got "0.1" \\(a string\\)'),
    ("[umap]\nmin_dist = 1.5", "x.toml: umap.min_dist: expected a finite number between 0 and 1 .*got 1.5$"),
    ("[umap]\nn_neighbors = 1", "x.toml: umap.n_neighbors: expected an integer ≥ 2, got 1$"),
    ('[umap]\nmetric = "hamming"', 'x.toml: umap.metric: expected one of "cosine", .*got "hamming"'),
    ("[umap]\nneighbours = 5", "x.toml: umap.neighbours: unknown key; known: n_neighbors, min_dist, metric"),
    ('layers = "block1"', 'x.toml: layers: expected a table MODEL = \\[layer names\\], got "block1"'),
    ('[layers]\nvgg16 = "block1_pool"', 'x.toml: layers.vgg16: expected a non-empty list of layer names, '
                                        'got "block1_pool" \\(a string\\)'),
    ('models = ["alexnet"]', "x.toml: models: unknown model 'alexnet'"),
    ('metrics = ["cos", "hamming"]', "x.toml: metrics: unknown metric 'hamming'"),
    ('models = ["vgg16"]\n[layers]\nresnet50 = ["x"]', "x.toml: layers: given for model\\(s\\) not in the run: resnet50"),
    ("minkowski_p = 2", "x.toml: minkowski_p: p=2 is euclidean"),
    ('browser_model = "alexnet"', "x.toml: browser_model: unknown model 'alexnet'"),
])
def test_each_wrong_value_is_named_with_file_and_key(tmp_path, toml, message):
    problems = _problems(tmp_path, toml)
    assert len(problems) == 1, problems
    assert re.search(message, problems[0]), problems[0]


def test_all_problems_are_reported_together(tmp_path):
    problems = _problems(tmp_path, 'k = "15"\numap = 3\nbatch_size = 2.5\ndatasets = "ds/small"\n'
                                   'browser_search = "no"\nmodles = []\n', {"seed": -5, "models": ["vgg16"]})
    keys = [p.split(": ")[1] if p.startswith(str(tmp_path)) else p.split(":")[0] for p in problems]
    assert sorted(keys) == sorted(["modles", "k", "umap", "batch_size", "datasets", "browser_search", "--seed"])
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "x.toml")
    assert str(info.value).startswith("6 config problems:\n  ")  # one line per problem


@pytest.mark.parametrize("overrides, message", [
    ({"k": "15"}, '--k: expected an integer ≥ 1, got "15" \\(a string\\)'),
    ({"datasets": "ds/small"}, '--dataset: expected a non-empty list'),
    ({"browser_search": "no"}, '--no-browser-search: expected true or false'),
    ({"follow_links": 1}, '--follow-links: expected true or false'),
    ({"minkowski_p": float("nan")}, "--minkowski-p: expected a finite number ≥ 1, got nan"),
    ({"num_layers": 0}, "--num-layers: expected an integer ≥ 1, got 0"),
    ({"models": ["alexnet"]}, "--models: unknown model 'alexnet'"),
])
def test_flags_use_the_same_checks_and_are_named_as_flags(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_every_key_rejects_a_wrong_type_and_accepts_its_default(tmp_path):
    """Generic: each declared key refuses a value of another type, naming the key; the documented
    defaults (RunConfig()) pass the same rules."""
    from convnet_search.config import KEYS, RunConfig

    wrong = {"int": '"1"', "float": "true", "bool": '"yes"', "str": "[]", "path": "1",
             "list": '"a"', "umap": "[1]", "layers": "2"}
    for name, key in KEYS.items():
        problems = _problems(tmp_path, f"{name} = {wrong[key.kind]}")
        assert len(problems) == 1 and problems[0].startswith(f"{tmp_path / 'x.toml'}: {name}: expected "), problems
    assert RunConfig().validated().k == 15
    with pytest.raises(ConfigError, match="^k: expected an integer"):
        RunConfig(k="15").validated()


def test_numbers_are_normalised_without_changing_valid_configs(tmp_path):
    path = tmp_path / "ok.toml"
    path.write_text('datasets = ["digits"]\nmodels = ["VGG16"]\nminkowski_p = 4\nk = 20\nseed = 4294967295\n'
                    'browser_search = false\nfollow_links = true\nout = "o"\nwork = "/abs/w"\n'
                    '[umap]\nmin_dist = 0\nn_neighbors = 5\n[layers]\nvgg16 = ["block1_pool"]\n')
    cfg = load_config(path)
    assert cfg.minkowski_p == 4.0 and isinstance(cfg.minkowski_p, float)
    assert cfg.umap.min_dist == 0.0 and isinstance(cfg.umap.min_dist, float) and cfg.umap.n_neighbors == 5
    assert cfg.models == ("vgg16",) and cfg.layers == {"vgg16": ("block1_pool",)} and cfg.datasets == ("digits",)
    assert cfg.browser_search is False and cfg.follow_links is True and cfg.seed == 2**32 - 1
    assert cfg.out == Path.cwd() / "o" and cfg.work == Path("/abs/w")
    assert load_config(None).follow_links is False
    assert load_config(path, {"follow_links": None, "k": 30}).k == 30


def test_cli_reports_config_problems_without_computing(tmp_path, capsys):
    from convnet_search.cli import main

    cfg = tmp_path / "x.toml"
    cfg.write_text('browser_search = "no"\nk = "15"\ndatasets = "ds/small"\n')
    out = tmp_path / "out"
    assert main(["precompute", "--config", str(cfg), "--out", str(out), "--batch-size", "0"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "4 config problems" in err
    assert 'x.toml: browser_search: expected true or false, got "no" (a string)' in err
    assert "--batch-size: expected an integer ≥ 1, got 0" in err
    assert not out.exists()
    assert main(["precompute", "--k", "abc"]) == 2  # argparse's error, worded by config.py
    assert 'argument --k: expected an integer ≥ 1' in capsys.readouterr().err
    assert main(["precompute", "--models", "vgg16", "resnet50", "--layers", "x"]) == 2
    assert "--layers: prefix each layer with MODEL:" in capsys.readouterr().err


def test_follow_links_reaches_load_dataset(monkeypatch, tmp_path):
    from convnet_search import pipeline
    from convnet_search.io.datasets import DatasetError

    seen = []

    def fake_load(name, **kwargs):
        seen.append(kwargs)
        raise DatasetError("stop here")

    monkeypatch.setattr(pipeline, "load_dataset", fake_load)
    for flag in (False, True):
        cfg = load_config(None, {"datasets": ["d"], "follow_links": flag or None, "out": str(tmp_path / "o"),
                                 "work": str(tmp_path / "w")})
        with pytest.raises(DatasetError):
            pipeline.run(cfg)
    assert seen == [{"follow_links": False}, {"follow_links": True}]


def test_pooling_takes_one_or_several_choices_and_weights_cache_is_optional(tmp_path):
    from convnet_search.nets.pooling import DEFAULT_POOLINGS

    assert load_config(None, {}).pooling == DEFAULT_POOLINGS
    assert load_config(None, {"pooling": "gem"}).pooling == ("gem",)
    assert load_config(None, {"pooling": ["max", "avg", "max"]}).pooling == ("max", "avg")
    with pytest.raises(ConfigError, match='--pooling: .*got \\["avg", "median"\\]'):
        load_config(None, {"pooling": ["avg", "median"]})
    assert load_config(None, {}).weights_cache is None
    assert load_config(None, {"weights_cache": str(tmp_path)}).weights_cache == tmp_path


def test_browser_model_auto_picks_the_runs_first_mobilenet():
    from convnet_search.stages.tfjs import browser_model

    assert load_config(None, {}).browser_model == "auto"
    assert browser_model(load_config(None, {"models": ["vgg16", "mobilenet_025", "mobilenet"]})) == "mobilenet_025"
    assert browser_model(load_config(None, {"models": ["vgg16"]})) is None
    assert browser_model(load_config(None, {"models": ["vgg16", "mobilenet"], "browser_model": "vgg16"})) == "vgg16"


def test_browser_model_auto_prefers_a_mobilenet_with_trained_weights():
    from types import SimpleNamespace

    from convnet_search.stages.tfjs import browser_model

    cfg = load_config(None, {"models": ["vgg16", "mobilenet", "mobilenet_025"]})
    trained, random = SimpleNamespace(kind="imagenet"), SimpleNamespace(kind="random")
    # offline: the full-width MobileNet fell back to random, the shipped α 0.25 file is real
    assert browser_model(cfg, {"vgg16": trained, "mobilenet": random, "mobilenet_025": trained}) == "mobilenet_025"
    assert browser_model(cfg, {"vgg16": trained, "mobilenet": trained, "mobilenet_025": trained}) == "mobilenet"
    assert browser_model(cfg, {"vgg16": trained, "mobilenet": random, "mobilenet_025": random}) == "mobilenet"
    named = load_config(None, {"models": ["mobilenet", "mobilenet_025"], "browser_model": "mobilenet"})
    assert browser_model(named, {"mobilenet": random, "mobilenet_025": trained}) == "mobilenet"


def test_atlas_and_featviz_models_keys(tmp_path):
    from types import SimpleNamespace

    from convnet_search.stages.featviz import featviz_models

    cfg = load_config(None, {})
    assert cfg.atlas is True and cfg.featviz_models == ("auto",)
    f = tmp_path / "c.toml"
    f.write_text('models = ["vgg16", "mobilenet_025"]\natlas = false\nfeatviz_models = []\n')
    cfg = load_config(f)
    assert cfg.atlas is False and cfg.featviz_models == ()
    with pytest.raises(ConfigError, match="featviz.models: model\\(s\\) not in the run: vgg19"):
        load_config(None, {"models": ["vgg16"], "featviz_models": ["vgg19"]})
    with pytest.raises(ConfigError, match="featviz.models: .*alexnet"):
        load_config(None, {"featviz_models": ["alexnet"]})
    with pytest.raises(ConfigError, match="atlas: expected true or false"):
        load_config(None, {"atlas": "yes"})
    trained, random = SimpleNamespace(kind="imagenet"), SimpleNamespace(kind="random")
    cfg = load_config(None, {"models": ["vgg16", "mobilenet_025"]})
    assert featviz_models(cfg, {"vgg16": trained, "mobilenet_025": trained}) == ["mobilenet_025"]
    # auto leaves random weights out; a named model is rendered whatever its weights
    assert featviz_models(cfg, {"vgg16": trained, "mobilenet_025": random}) == []
    named = load_config(None, {"models": ["vgg16", "mobilenet_025"], "featviz_models": ["vgg16", "auto"]})
    assert featviz_models(named, {"vgg16": random, "mobilenet_025": trained}) == ["vgg16", "mobilenet_025"]
    off = load_config(None, {"models": ["mobilenet_025"], "browser_search": False})
    assert featviz_models(off, {"mobilenet_025": trained}) == []


def test_default_out_is_the_explorer_data_only_inside_the_checkout(tmp_path, monkeypatch):
    """Issue 19 row 12: a run from ~ created ~/frontend/public/data."""
    from convnet_search.config import load_config

    monkeypatch.chdir(tmp_path)
    assert (tmp_path / load_config(None, {}).out) == tmp_path / "convnet-search-bundle"
    assert load_config(None, {"out": "mine"}).out == tmp_path / "mine"  # given: as given
    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(repo)
    assert (repo / load_config(None, {}).out) == repo / "frontend/public/data"
