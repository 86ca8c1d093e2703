"""Config: TOML + overrides, validation with clear errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from convnet_search.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]


def test_default_config_is_the_documented_default_run():
    cfg = load_config(ROOT / "configs" / "default.toml")
    assert cfg.models == ("mobilenet", "efficientnetb0", "densenet121", "xception", "inceptionv3",
                          "resnet50", "efficientnetb5", "vgg16", "vgg19")
    assert cfg.metrics == ("cosine", "euclidean", "sqeuclidean", "minkowski")
    assert cfg.minkowski_p == 3.0 and cfg.k == 15 and cfg.num_layers == 8 and cfg.weights == "auto"
    assert cfg.datasets == ("digits", "shapes")


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
    ({"k": 0}, "at least 1"),
    ({"pooling": "median"}, "unknown pooling 'median'"),
    ({"layers": {"resnet50": ["x"]}, "models": ["vgg16"]}, "not in the run: resnet50"),
    ({"batch_size": 0}, "batch_size=0"),
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
    with pytest.raises(ConfigError, match="unknown key\\(s\\) modles"):
        load_config(typo)
