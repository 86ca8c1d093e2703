"""Weights resolution (before fingerprinting), the Keras cache, `weights list/fetch`, and the real CLI
with real ImageNet weights (../shared/real/weights; those tests skip, with the reason, when absent)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import real_data
from convnet_search.nets import models
from convnet_search.nets import weights
from convnet_search.config import RunConfig, load_config
from convnet_search.stages.extract import extraction_fingerprint
from convnet_search.nets.models import REGISTRY, get_spec
from convnet_search.nets.weights import (FetchError, WeightsError, fetch_weights, resolve_weights,
                                    weights_cache)

ROOT = Path(__file__).resolve().parents[1]
REAL_HOME, REAL_FILE = real_data.KERAS_HOME, real_data.NOTOP_H5
needs_real = pytest.mark.skipif(real_data.missing(REAL_FILE) is not None,
                                reason=str(real_data.missing(REAL_FILE)))
CLI = [sys.executable, "-m", "convnet_search.cli"]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test downloads anything, even on a machine with a network; memo reset around each."""
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")
    weights.reset_download_memo()
    yield
    weights.reset_download_memo()


def squash(text: str) -> str:
    return "".join(text.split())


def fp(spec, cfg: RunConfig, resolved=None) -> str:
    return extraction_fingerprint(None, spec, cfg, ds_fp="dataset-fp", weights=resolved)


# ---------------------------------------------------------------------------------------------
# Registry: file names, URLs and hashes are exactly what keras.applications asks for
# ---------------------------------------------------------------------------------------------

def test_registry_weights_files_match_what_keras_applications_fetches():
    """Build every registered model with weights="imagenet" while recording Keras' get_file call."""
    from keras.src.utils import file_utils

    class Asked(Exception):
        pass

    asked = {}

    def record(fname=None, origin=None, *args, **kwargs):
        asked["call"] = (fname, origin, kwargs.get("file_hash"))
        raise Asked

    real = file_utils.get_file
    file_utils.get_file = record
    try:
        for spec in REGISTRY.values():
            with pytest.raises(Asked):
                models._constructor(spec)(weights="imagenet", include_top=False,
                                          input_shape=(*spec.input_size, 3), **spec.extra_kwargs)
            assert asked.pop("call") == (spec.weights_file, spec.weights_url, spec.weights_hash), spec.id
    finally:
        file_utils.get_file = real
    assert get_spec("mobilenet_025").weights_file == "mobilenet_2_5_224_tf_no_top.h5"
    assert get_spec("mobilenet_050").weights_file == "mobilenet_5_0_224_tf_no_top.h5"


# ---------------------------------------------------------------------------------------------
# Cache folder and resolution (synthetic; always run)
# ---------------------------------------------------------------------------------------------

def test_cache_folder_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    c = weights_cache()
    assert c.folder == tmp_path / "kh" / "models" and c.source == "KERAS_HOME"
    c = weights_cache(tmp_path / "mine")
    assert c.folder == tmp_path / "mine" and c.source == "--weights-cache"
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    c = weights_cache()
    assert c.folder == tmp_path / "home" / ".keras" / "models" and c.source == "default"


def test_config_weights_cache_key(tmp_path):
    cfg = load_config(None, {"weights_cache": "rel/cache"})
    assert cfg.weights_cache == Path.cwd() / "rel" / "cache"
    assert load_config(None, {}).weights_cache is None


def test_none_is_random_with_seed_and_fingerprint_ignores_the_option_string(tmp_path, monkeypatch):
    spec = get_spec("mobilenet_050")  # no shipped copy: auto can fall back
    r = resolve_weights(spec, "none", seed=3)
    assert (r.kind, r.path, r.sha256, r.seed) == ("random", None, None, 3)
    assert r.fingerprint_key() == ("random", 3)
    assert resolve_weights(spec, "none", seed=4).fingerprint_key() != r.fingerprint_key()
    # "auto" that falls back to random with the same seed is the same network, the same features
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    cfg = RunConfig(weights="auto", seed=0)
    with pytest.warns(RuntimeWarning, match="FALLING BACK TO RANDOM WEIGHTS"):
        auto_fp = fp(spec, cfg)
    assert auto_fp == fp(spec, RunConfig(weights="none", seed=0))


def test_auto_without_cache_file_falls_back_and_imagenet_fails_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    spec = get_spec("mobilenet_050")  # no shipped copy
    with pytest.warns(RuntimeWarning, match="FALLING BACK TO RANDOM WEIGHTS"):
        r = resolve_weights(spec, "auto", seed=0)
    assert r.kind == "random"
    assert r.detail.startswith(f"random (seed 0): ImageNet weights not found in {tmp_path / 'models'}")
    assert "convnet-search weights fetch mobilenet_050" in r.detail and "http" not in r.detail
    with pytest.raises(WeightsError, match=r"no mobilenet_5_0_224_tf_no_top\.h5 in .*KERAS_HOME="):
        resolve_weights(spec, "imagenet")


SHIPPED_SHA = "dbdb03ee2a22fd895301636cd328b234bb3a9952358f436d82f46b81e0d5b0bf"


@pytest.mark.parametrize("option", ["auto", "imagenet"])
def test_shipped_weights_are_used_when_the_cache_lacks_them(tmp_path, monkeypatch, option):
    """Offline with an empty Keras cache, MobileNet α 0.25 still gets its real ImageNet file."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    spec = get_spec("mobilenet_025")
    r = resolve_weights(spec, option)
    assert (r.kind, r.path, r.sha256) == ("imagenet", weights.SHIPPED_DIR / spec.weights_file, SHIPPED_SHA)
    assert "shipped with convnet-search" in r.detail and SHIPPED_SHA[:12] in r.detail
    assert hashlib.sha256(r.path.read_bytes()).hexdigest() == SHIPPED_SHA
    # a file in the cache wins (same name as Keras' download); the shipped one is the fallback
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / spec.weights_file).write_bytes(b"a newer download")
    assert resolve_weights(spec, option).path == tmp_path / "models" / spec.weights_file


def test_damaged_shipped_weights_are_an_error_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    spec = get_spec("mobilenet_025")
    monkeypatch.setitem(weights.SHIPPED_WEIGHTS, spec.weights_file, "0" * 64)
    with pytest.raises(WeightsError, match=rf"{weights.SHIPPED_DIR / spec.weights_file}: sha256 dbdb03ee2a22… "
                                           "differs from the shipped file's 000000000000…"):
        resolve_weights(spec, "auto")
    monkeypatch.setattr(weights, "SHIPPED_DIR", tmp_path / "gone")
    with pytest.raises(WeightsError, match="shipped with convnet-search are missing"):
        resolve_weights(spec, "auto")


def test_shipped_weights_are_packaged():
    """pyproject's package data lists the file, so a non-editable install carries it too."""
    text = (ROOT / "pyproject.toml").read_text()
    assert '"convnet_search.nets" = ["weights_data/*.h5", "weights_data/NOTICE.md"]' in text
    notice = (weights.SHIPPED_DIR / "NOTICE.md").read_text()
    assert SHIPPED_SHA in notice and "Apache License 2.0" in notice


@needs_real
def test_shipped_weights_are_the_genuine_keras_file():
    assert hashlib.sha256(REAL_FILE.read_bytes()).hexdigest() == SHIPPED_SHA
    assert (weights.SHIPPED_DIR / REAL_FILE.name).read_bytes() == REAL_FILE.read_bytes()


def test_cache_file_appearing_changes_the_fingerprint(tmp_path):
    """The bug this fixes: a run that fell back to random kept its features after weights arrived."""
    spec = get_spec("mobilenet_050")  # no shipped copy
    cfg = RunConfig(weights="auto", weights_cache=tmp_path)
    with pytest.warns(RuntimeWarning):
        before = fp(spec, cfg)
    (tmp_path / spec.weights_file).write_bytes(b"weights v1")
    r = resolve_weights(spec, "auto", cache_dir=tmp_path)
    assert r.kind == "imagenet" and r.path == tmp_path / spec.weights_file
    assert r.sha256 == hashlib.sha256(b"weights v1").hexdigest()
    assert spec.weights_file in r.detail and r.sha256[:12] in r.detail
    after = fp(spec, cfg)
    assert after != before
    assert fp(spec, RunConfig(weights="imagenet", weights_cache=tmp_path)) == after  # same bytes


def test_overwritten_weights_path_changes_the_fingerprint(tmp_path):
    spec = get_spec("vgg16")
    path = tmp_path / "mine.weights.h5"
    path.write_bytes(b"first")
    cfg = RunConfig(weights=str(path))
    first = fp(spec, cfg)
    r = resolve_weights(spec, str(path))
    assert (r.kind, r.path, r.sha256) == ("file", path, hashlib.sha256(b"first").hexdigest())
    path.write_bytes(b"second, longer")
    assert fp(spec, cfg) != first
    with pytest.raises(WeightsError, match="not 'auto', 'imagenet', 'none' or an existing weights file"):
        resolve_weights(spec, str(tmp_path / "absent.h5"))


def test_cache_file_with_a_hash_keras_would_reject_is_an_error_not_a_fallback(tmp_path):
    spec = get_spec("efficientnetb0")  # Keras publishes an md5 for it
    bad = tmp_path / spec.weights_file
    bad.write_bytes(b"half a download")
    for option in ("auto", "imagenet"):
        with pytest.raises(WeightsError, match=rf"{bad}: md5 .* differs from the one Keras publishes"):
            resolve_weights(spec, option, cache_dir=tmp_path)


def test_download_is_tried_once_per_process(tmp_path, monkeypatch):
    monkeypatch.delenv(weights.OFFLINE_ENV)
    probes = []

    def probe(url, timeout=weights.PROBE_TIMEOUT):
        probes.append(url)
        return "no network: cannot reach storage.googleapis.com:443 (Name or service not known)"

    monkeypatch.setattr(weights, "_probe", probe)
    with pytest.warns(RuntimeWarning, match="Name or service not known"):
        kinds = [resolve_weights(get_spec(m), "auto", cache_dir=tmp_path).kind
                 for m in ("mobilenet", "vgg16", "resnet50")]
    assert kinds == ["random"] * 3 and len(probes) == 1


def test_fetch_offline_fails_at_once_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.delenv(weights.OFFLINE_ENV)

    def refuse(*args, **kwargs):
        raise OSError(-2, "Name or service not known")

    monkeypatch.setattr(weights.socket, "create_connection", refuse)
    with pytest.raises(FetchError, match=r"cannot download mobilenet_2_5_224_tf_no_top\.h5: no network: "
                                         r"cannot reach storage\.googleapis\.com:443 \(Name or service"):
        fetch_weights(get_spec("mobilenet_025"), tmp_path)
    assert not (tmp_path / "mobilenet_2_5_224_tf_no_top.h5").exists()


def test_wrong_architecture_file_is_a_clear_error(tmp_path):
    small, _ = models.build_base(get_spec("mobilenet_025"), "none", seed=0)
    path = tmp_path / "a025.weights.h5"
    small.save_weights(str(path))
    with pytest.raises(WeightsError, match=r"a025\.weights\.h5: cannot load as MobileNet α=0\.5 weights"):
        models.build_base(get_spec("mobilenet_050"), str(path))


# ---------------------------------------------------------------------------------------------
# Real ImageNet weights (../shared/real)
# ---------------------------------------------------------------------------------------------

@needs_real
def test_real_cache_file_resolves_and_loads_the_real_weights():
    import keras

    spec = get_spec("mobilenet_025")
    r = resolve_weights(spec, "auto", cache_dir=REAL_FILE.parent)
    assert r.kind == "imagenet" and r.sha256 == hashlib.sha256(REAL_FILE.read_bytes()).hexdigest()
    base, used = models.build_base(spec, r)
    assert used is r
    ref = keras.applications.MobileNet(alpha=0.25, include_top=False, input_shape=(224, 224, 3),
                                       weights=None)
    ref.load_weights(str(real_data.REAL / "weights" / "mobilenet_0.25_224_imagenet_notop.weights.h5"))
    assert models.weights_digest(base) == models.weights_digest(ref)


def _tiny_folder(root: Path) -> Path:
    """18 images in 2 classes: above the k=15 minimum of today's pipeline."""
    rng = np.random.default_rng(0)
    for c in range(2):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(9):
            img = rng.integers(0, 60, size=(48, 48, 3), dtype=np.uint8)
            img[8 + 10 * c: 30 + 10 * c, 10:38] = rng.integers(120, 255, size=3, dtype=np.uint8)
            Image.fromarray(img).save(root / f"class{c}" / f"img_{i:02d}.png")
    return root


def run_cli(*args: str, keras_home: Path | None = None, offline: bool = True,
            timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0"}
    env.pop("KERAS_HOME", None)
    env.pop(weights.OFFLINE_ENV, None)
    if keras_home is not None:
        env["KERAS_HOME"] = str(keras_home)
    if offline:  # deterministic fallback even on a machine with a network
        env[weights.OFFLINE_ENV] = "1"
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def _status(proc: subprocess.CompletedProcess) -> str:
    for status in ("up to date", "extracted", "resumed"):
        if f"({status}): " in proc.stderr:  # the extract progress line: "extract DS · MODEL (status): n/n img"
            return status
    raise AssertionError(proc.stderr)


@needs_real
def test_cli_auto_after_a_random_fallback_re_extracts_with_the_real_weights(tmp_path):
    data = _tiny_folder(tmp_path / "tiny")
    out, work = tmp_path / "out", tmp_path / "work"
    common = ["precompute", "--dataset", str(data), "--models", "mobilenet_025", "--no-browser-search",
              "--num-layers", "2", "--out", str(out), "--work", str(work)]
    empty = tmp_path / "empty_home"
    empty.mkdir()
    first = run_cli(*common, "--weights", "none", keras_home=empty)
    assert first.returncode == 0, first.stderr
    assert _status(first) == "extracted"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["weights"] == "random" and manifest["models"][0]["weights"] == "random"

    # an empty Keras cache, offline: auto loads the copy shipped with the package
    second = run_cli(*common, "--weights", "auto", keras_home=empty)
    assert second.returncode == 0, second.stderr
    assert "FALLING BACK" not in second.stderr
    assert _status(second) == "extracted"  # the fingerprint changed: no reuse of random features
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["weights"] == "imagenet" and manifest["models"][0]["weights"] == "imagenet"
    assert "shipped with convnet-search): mobilenet_2_5_224_tf_no_top.h5" in manifest["weights_detail"]

    # --weights imagenet with the real Keras cache: the same bytes, so the features are reused
    third = run_cli(*common, "--weights", "imagenet", keras_home=REAL_HOME)
    assert third.returncode == 0, third.stderr
    assert _status(third) == "up to date"
    assert json.loads((out / "manifest.json").read_text())["weights"] == "imagenet"


@needs_real
@pytest.mark.parametrize("case", ["truncated", "wrong_architecture"])
def test_cli_bad_cache_file_is_exit_2_naming_the_file(tmp_path, case):
    data = _tiny_folder(tmp_path / "tiny")
    cache = tmp_path / "home" / "models"
    cache.mkdir(parents=True)
    if case == "truncated":
        model, target = "mobilenet_025", cache / "mobilenet_2_5_224_tf_no_top.h5"
        target.write_bytes(REAL_FILE.read_bytes()[: REAL_FILE.stat().st_size // 2])
        expect = "not a readable weights file"
    else:  # the alpha 0.25 file under the alpha 0.5 name
        model, target = "mobilenet_050", cache / "mobilenet_5_0_224_tf_no_top.h5"
        shutil.copyfile(REAL_FILE, target)
        expect = "cannot load as MobileNet α=0.5 weights"
    proc = run_cli("precompute", "--dataset", str(data), "--models", model, "--weights", "auto",
                   "--no-browser-search", "--num-layers", "2", "--out", str(tmp_path / "out"),
                   "--work", str(tmp_path / "work"), keras_home=tmp_path / "home")
    assert proc.returncode == 2, proc.stderr
    err = squash(proc.stderr)  # rich wraps (and may cut) long lines
    assert squash(f"error: {target}: {expect}") in err and "Traceback" not in proc.stderr
    if case == "wrong_architecture":  # what Keras reported
        assert squash("expects shape (3, 3, 3, 16). Received saved weight with shape (3, 3, 3, 8)") in err
    assert not (tmp_path / "out" / "manifest.json").exists()


@needs_real
def test_cli_weights_list_shows_present_and_missing():
    proc = run_cli("weights", "list", keras_home=REAL_HOME, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = {line.split("│")[1].strip(): line for line in proc.stderr.splitlines() if line.count("│") > 3}
    assert "present" in rows["mobilenet_025"] and "mobilenet_2_5_224_tf_no_top.h5" in rows["mobilenet_025"]
    assert "missing" in rows["mobilenet_050"] and "missing" in rows["vgg16"]
    assert f"weights cache: {REAL_HOME / 'models'} (KERAS_HOME={REAL_HOME})" in proc.stderr


def test_cli_weights_list_says_which_file_ships_with_the_package(tmp_path):
    proc = run_cli("weights", "list", "--weights-cache", str(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = {line.split("│")[1].strip(): line for line in proc.stderr.splitlines() if line.count("│") > 3}
    assert "shipped with convnet-search" in rows["mobilenet_025"] and "2.1 MB" in rows["mobilenet_025"]
    assert "missing" in rows["mobilenet_050"] and "missing" in rows["mobilenet"]


def test_cli_weights_list_uses_weights_cache_flag(tmp_path):
    (tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"x" * 2000)
    proc = run_cli("weights", "list", "--weights-cache", str(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = {line.split("│")[1].strip(): line for line in proc.stderr.splitlines() if line.count("│") > 3}
    assert "hash differs" in rows["vgg16"] and "missing" in rows["mobilenet"]
    assert "set by --weights-cache" in proc.stderr


def test_cli_weights_fetch_offline_exits_non_zero_with_the_reason(tmp_path):
    """The real path, no simulated failure: only meaningful where there is no network."""
    if weights._probe(get_spec("mobilenet_025").weights_url, timeout=3) is None:
        pytest.skip("this machine reaches storage.googleapis.com: the offline path cannot be shown")
    # timeout=60 is the bound: the probe gives up after PROBE_TIMEOUT (5 s) at most
    proc = run_cli("weights", "fetch", "mobilenet_025", "--weights-cache", str(tmp_path),
                   offline=False, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert "mobilenet_025: cannot download mobilenet_2_5_224_tf_no_top.h5: no network: cannot reach" \
        in proc.stderr
    assert "Traceback" not in proc.stderr and not any(tmp_path.iterdir())
    unknown = run_cli("weights", "fetch", "alexnet", timeout=60)
    assert unknown.returncode == 2 and "unknown model 'alexnet'" in unknown.stderr
