"""tfjs_export: signature mapping, file bookkeeping, and the verified conversion.

The verified conversion runs the converted model with TF.js in Node (pure @tensorflow/tfjs + the
wasm backend, the backend the browser prefers) and Keras on the same images, each side doing its
own resize (Python: preprocess.resize_rgb; TF.js: resizeBilinear with half-pixel centres, as the
browser does). Every image and every exported layer must reach cosine ≥ 0.999, with the default
quantization, twice: MobileNet with random weights on bundled images, and MobileNet alpha 0.25
with its real ImageNet weights on real photos (../shared/real; skipped when absent). Random
weights alone hid a broken default: their batch-norm statistics are trivial, so per-tensor uint8
passed them while real weights fell to cosine 0.16.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import real_data
from convnet_search.nets import tfjs_export as te

REPO = Path(__file__).resolve().parent.parent
FRONTEND = REPO / "frontend"
EMBED = FRONTEND / "scripts" / "tfjs-embed.mjs"
MIN_COSINE = 0.999
N_IMAGES = 20
# Real ImageNet weights and photos (evaluation only, never copied into the repo).
REAL, REAL_WEIGHTS = real_data.REAL, real_data.NOTOP_H5
REAL_PER_CLASS = 2  # tinyimagenet20: 20 classes → 40 photos, plus the sample photos


# --- pure bookkeeping ---------------------------------------------------------------------------

def _model_json(sig_outputs: dict, nodes: list[str]) -> dict:
    return {
        "modelTopology": {"node": [{"name": n} for n in nodes]},
        "signature": {"inputs": {}, "outputs": sig_outputs},
        "weightsManifest": [{"paths": ["group1-shard1of2.bin", "group1-shard2of2.bin"], "weights": []}],
    }


def _entry(name: str, dim: int) -> dict:
    return {"name": name, "dtype": "DT_FLOAT", "tensorShape": {"dim": [{"size": "-1"}, {"size": str(dim)}]}}


def test_fix_signature_rekeys_outputs_by_layer_whatever_the_converter_named_them():
    # What tensorflowjs 4.22 really writes when two outputs share a shape: raw tensor names as keys.
    mj = _model_json(
        {"Identity:0": _entry("Identity:0", 512), "Identity_1:0": _entry("Identity_1:0", 512),
         "a": _entry("Identity_2:0", 64)},
        ["Identity", "Identity_1", "Identity_2"],
    )
    names = {"a": "Identity_2:0", "b": "Identity:0", "c": "Identity_1:0"}
    out, spatial = te._fix_signature(mj, names, ["a", "b", "c"], Path("model.json"))
    assert spatial == []
    assert out == [
        {"layer": "a", "dim": 64, "output": "Identity_2:0"},
        {"layer": "b", "dim": 512, "output": "Identity:0"},
        {"layer": "c", "dim": 512, "output": "Identity_1:0"},
    ]
    assert list(mj["signature"]["outputs"]) == ["a", "b", "c"]
    assert mj["signature"]["outputs"]["b"]["name"] == "Identity:0"


def test_fix_signature_describes_spatial_outputs_with_their_map_shape():
    spatial = {"name": "Identity_1:0", "tensorShape": {"dim": [{"size": "-1"}, {"size": "7"}, {"size": "5"}, {"size": "16"}]}}
    mj = _model_json({"Identity:0": _entry("Identity:0", 16), "Identity_1:0": spatial}, ["Identity", "Identity_1"])
    out, sp = te._fix_signature(mj, {"a": "Identity:0", "spatial__a": "Identity_1:0"}, ["a"], Path("model.json"),
                                ["spatial__a"])
    assert out == [{"layer": "a", "dim": 16, "output": "Identity:0"}]
    assert sp == [{"layer": "spatial__a", "output": "Identity_1:0", "shape": [7, 5, 16]}]
    assert list(mj["signature"]["outputs"]) == ["a", "spatial__a"]
    # a pooled vector where a map is expected is refused
    mj = _model_json({"Identity:0": _entry("Identity:0", 16)}, ["Identity"])
    with pytest.raises(te.TfjsExportError, match=r"expected \[batch, h, w, C\]"):
        te._fix_signature(mj, {"s": "Identity:0"}, [], Path("model.json"), ["s"])


def test_fix_signature_names_the_missing_tensor():
    mj = _model_json({"x": _entry("Identity:0", 8)}, ["Identity"])
    with pytest.raises(te.TfjsExportError, match=r"no output tensor Identity_5:0 for layer 'a'"):
        te._fix_signature(mj, {"a": "Identity_5:0"}, ["a"], Path("m/model.json"))


def test_fix_signature_rejects_unpooled_outputs():
    bad = {"name": "Identity:0", "tensorShape": {"dim": [{"size": "-1"}, {"size": "7"}, {"size": "7"}]}}
    mj = _model_json({"a": bad}, ["Identity"])
    with pytest.raises(te.TfjsExportError, match="expected \\[batch, dim\\]"):
        te._fix_signature(mj, {"a": "Identity:0"}, ["a"], Path("model.json"))


def test_model_files_and_digest(tmp_path):
    mj = _model_json({}, [])
    files = te._model_files(mj)
    assert files == ["model.json", "group1-shard1of2.bin", "group1-shard2of2.bin"]
    for i, f in enumerate(files):
        (tmp_path / f).write_bytes(bytes([i]) * 10)
    d1 = te._sha256(tmp_path, files)
    (tmp_path / files[2]).write_bytes(b"\x02" * 9 + b"\x03")
    assert te._sha256(tmp_path, files) != d1  # any weight byte changes the cache key


def test_unknown_quantization_is_rejected():
    with pytest.raises(ValueError, match="unknown quantization 'int4'"):
        te._quantization_map("int4")
    assert te._quantization_map("uint8") == {"uint8": "*"}
    assert te._quantization_map("none") is None
    assert te.DEFAULT_QUANTIZATION in te.QUANTIZATIONS


def test_config_accepts_exactly_the_exporters_quantizations():
    from convnet_search.config import ConfigError, RunConfig

    assert RunConfig().quantize == te.DEFAULT_QUANTIZATION
    for q in te.QUANTIZATIONS:
        assert RunConfig(quantize=q).validated().quantize == q
    with pytest.raises(ConfigError, match="quantize: expected one of .*got \"int4\""):
        RunConfig(quantize="int4").validated()


# --- the real conversion ------------------------------------------------------------------------

def _bundled_images(n: int) -> list[Path]:
    """n images spread evenly over a bundled dataset (so every class is represented)."""
    from convnet_search.io.datasets import known_datasets, load_dataset

    names = [d for d in ("shapes", "digits") if d in known_datasets()] or known_datasets()
    if not names:
        pytest.fail("no bundled dataset in datasets/: the verified conversion needs real images")
    ds = load_dataset(names[0])
    idx = np.linspace(0, len(ds) - 1, num=min(n, len(ds))).round().astype(int)
    return [ds.path(int(i)) for i in idx]


def _spatial_names(infos) -> list[str]:
    return [f"spatial__{i.name}" for i in infos]  # as stages/tfjs.py's export_stage names them


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """MobileNet (random weights) exported as the pipeline does: pooled outputs, then spatial maps."""
    from convnet_search.nets.models import build_feature_extractor, get_spec

    spec = get_spec("mobilenet")
    model, infos, _ = build_feature_extractor(spec, None, weights="none", pooling="avg", seed=0, spatial=True)
    layers = [i.name for i in infos]
    out = tmp_path_factory.mktemp("tfjs") / "mobilenet"
    exp = te.export_tfjs(model, layers, out, spatial_names=_spatial_names(infos))  # the default quantization
    return model, layers, out, exp, spec


@pytest.mark.slow
def test_export_writes_a_complete_small_model(exported):
    model, layers, out, exp, _ = exported
    assert [o["layer"] for o in exp.outputs] == layers
    assert [o["dim"] for o in exp.outputs] == [int(t.shape[-1]) for t in model.outputs[:len(layers)]]
    assert [o["layer"] for o in exp.spatial_outputs] == [f"spatial__{x}" for x in layers]
    assert [o["shape"] for o in exp.spatial_outputs] == [list(t.shape[1:]) for t in model.outputs[len(layers):]]
    assert len({o["output"] for o in exp.outputs + exp.spatial_outputs}) == 2 * len(layers)
    assert sorted(p.name for p in out.iterdir()) == sorted(exp.files)
    assert exp.model_bytes == sum((out / f).stat().st_size for f in exp.files)
    assert exp.quantization == te.DEFAULT_QUANTIZATION
    assert exp.model_bytes <= 7e6, f"float16 MobileNet should be ≤ 7 MB, is {exp.model_bytes:,} B"
    sig = json.loads((out / "model.json").read_text())["signature"]["outputs"]
    assert {k: v["name"] for k, v in sig.items()} == {o["layer"]: o["output"] for o in exp.outputs + exp.spatial_outputs}
    assert exp.model_sha256 == te._sha256(out, exp.files)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".tfjs-")], "temp dir left behind"


@pytest.mark.slow
def test_export_replaces_an_existing_folder_atomically(exported, tmp_path):
    model, layers, _, exp, _ = exported
    out = tmp_path / "m"
    out.mkdir()
    (out / "stale.bin").write_bytes(b"old")
    again = te.export_tfjs(model, layers, out, spatial_names=[o["layer"] for o in exp.spatial_outputs])
    assert not (out / "stale.bin").exists()
    assert again.model_sha256 == exp.model_sha256  # same weights, same bytes: deterministic


def _assert_tfjs_matches_keras(model, layers, out, exp, spec, paths: list[Path], tmp_path: Path) -> np.ndarray:
    """Embeds ``paths`` with Keras and with TF.js in Node; fails naming every image and layer below
    MIN_COSINE. Returns the cosines [layer, image]."""
    if not (FRONTEND / "node_modules" / "@tensorflow" / "tfjs-backend-wasm").is_dir():
        pytest.skip("frontend/node_modules missing: run `make install` (make test does it first)")
    node = shutil.which("node")
    assert node, "node is not on PATH"
    from convnet_search.io.images import load_rgb
    from convnet_search.nets.preprocess import area_downscale, resize_rgb

    rgbs = [load_rgb(p) for p in paths]
    batch = np.stack([resize_rgb(rgb, spec.input_size) for rgb in rgbs]).astype("float32")
    keras_feats = model.predict(batch, verbose=0)
    # Pooled outputs, then the spatial maps (compared flattened, position by position).
    checked = exp.outputs + exp.spatial_outputs
    layers = [o["layer"] for o in checked]
    assert len(keras_feats) == len(checked), f"{len(keras_feats)} Keras outputs for {len(checked)} exported"

    # Node gets each image after step 1 of the documented path (the box downscale of images over 2×
    # the input, which the browser does in JS: live/downscale.ts, checked against Python by
    # e2e/bigphoto.test.mjs); TF.js does step 2, the bilinear resize, the way the browser does.
    npys = []
    for i, rgb in enumerate(rgbs):
        npys.append(tmp_path / f"img{i:02d}.npy")
        np.save(npys[-1], area_downscale(rgb, spec.input_size)[None].astype(np.uint8))
    js_out = tmp_path / "js"
    pairs = ",".join(f"{o['layer']}:{o['output']}" for o in checked)
    proc = subprocess.run(
        [node, str(EMBED), str(out), *map(str, npys), str(js_out), "--outputs", pairs],
        cwd=FRONTEND, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, f"tfjs-embed failed:\n{proc.stderr[-3000:]}"
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["backend"] == "wasm"
    assert summary["images"] == len(paths)
    assert summary["leaked_tensors"] == 0

    failures = []
    cosines = []
    for layer, kf in zip(layers, keras_feats):
        kf = kf.reshape(len(paths), -1)
        jf = np.fromfile(js_out / f"{layer}.f32", dtype="<f4").reshape(len(paths), -1)
        assert jf.shape == kf.shape, f"{layer}: TF.js {jf.shape} vs Keras {kf.shape}"
        cos = (jf * kf).sum(1) / (np.linalg.norm(jf, axis=1) * np.linalg.norm(kf, axis=1))
        cosines.append(cos)
        for p, c in zip(paths, cos):
            if not c >= MIN_COSINE:  # also catches NaN
                failures.append(f"{p.relative_to(REPO) if p.is_relative_to(REPO) else p} "
                                f"layer {layer}: cosine {c:.6f}")
    assert not failures, (f"TF.js ({exp.quantization}) ≠ Keras (cosine < {MIN_COSINE}) "
                          f"in {len(failures)} image×layer cases:\n" + "\n".join(failures[:40]))
    return np.stack(cosines)


@pytest.mark.slow
def test_converted_model_matches_keras_on_bundled_images(exported, tmp_path):
    """Cosine ≥ 0.999 between TF.js (Node, wasm) and Keras for every image and exported layer."""
    model, layers, out, exp, spec = exported
    paths = _bundled_images(N_IMAGES)
    assert len(paths) >= N_IMAGES, f"need {N_IMAGES} bundled images, found {len(paths)}"
    _assert_tfjs_matches_keras(model, layers, out, exp, spec, paths, tmp_path)


def _real_photos() -> list[Path]:
    """REAL_PER_CLASS photos of every tinyimagenet20 class (64 px) and the sample photos (larger)."""
    tiny = REAL / "tinyimagenet20"
    paths = []
    for d in sorted(p for p in tiny.iterdir() if p.is_dir()):
        paths += sorted(f for f in d.iterdir() if f.is_file())[:REAL_PER_CLASS]
    samples = REAL / "weights" / "samples"
    paths += sorted(p for p in samples.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".bmp", ".png"))
    return paths


@pytest.fixture(scope="module")
def exported_real(tmp_path_factory):
    if not (REAL_WEIGHTS.is_file() and (REAL / "tinyimagenet20").is_dir()):
        pytest.skip(f"real ImageNet weights and photos not found under {REAL} "
                    "(set CONVNET_SEARCH_REAL to the folder holding weights/ and tinyimagenet20/)")
    from convnet_search.nets.models import build_feature_extractor, get_spec

    spec = get_spec("mobilenet_025")
    # The file Keras itself loads for weights="imagenet" with KERAS_HOME=<REAL>/weights/keras_home;
    # passed as a path because KERAS_HOME is read once, when keras is first imported.
    from convnet_search.nets.pooling import DEFAULT_POOLINGS

    # Every default pooling, as the bundle exports them (output names as stages/tfjs.py's export_stage's).
    model, infos, base = build_feature_extractor(spec, None, weights=str(REAL_WEIGHTS), pooling=DEFAULT_POOLINGS,
                                                 spatial=True)
    layers = [f"{p}__{i.name}" for i in infos for p in DEFAULT_POOLINGS]
    assert all(f"{p}__conv_pw_13_relu" in layers for p in DEFAULT_POOLINGS), layers
    out = tmp_path_factory.mktemp("tfjs-real") / "mobilenet_025"
    exp = te.export_tfjs(model, layers, out, spatial_names=_spatial_names(infos))  # the default quantization
    return model, layers, out, exp, spec


@pytest.mark.slow
def test_converted_model_matches_keras_with_real_weights_on_real_photos(exported_real, tmp_path):
    """The default quantization keeps real ImageNet features: cosine ≥ 0.999 per photo and layer."""
    model, layers, out, exp, spec = exported_real
    assert exp.quantization == te.DEFAULT_QUANTIZATION
    paths = _real_photos()
    assert len(paths) >= 40, f"expected ≥ 40 real photos under {REAL}, found {len(paths)}"
    cos = _assert_tfjs_matches_keras(model, layers, out, exp, spec, paths, tmp_path)
    print(f"real weights, {exp.quantization}, {exp.model_bytes:,} B: cosine min {cos.min():.6f} "
          f"mean {cos.mean():.6f} over {len(paths)} photos × {len(layers) + len(exp.spatial_outputs)} "
          "outputs (pooled, then spatial maps)")


def _weights_by_name(model_dir: Path) -> dict[str, bytes]:
    """Each weight's stored bytes (the shards concatenated, cut per weightsManifest entry), by name:
    the converter orders weights by graph position, which extra output nodes may change."""
    mj = json.loads((model_dir / "model.json").read_text())
    out = {}
    for group in mj["weightsManifest"]:
        blob = b"".join((model_dir / p).read_bytes() for p in group["paths"])
        pos = 0
        for w in group["weights"]:
            q = w.get("quantization")
            n = int(np.prod(w["shape"])) * ({"uint8": 1, "uint16": 2, "float16": 2}[q["dtype"]] if q else 4)
            out[w["name"]] = (w["shape"], w["dtype"], json.dumps(q, sort_keys=True), blob[pos:pos + n])
            pos += n
        assert pos == len(blob), f"{model_dir}: weights cover {pos} of {len(blob)} shard bytes"
    return out


@pytest.mark.slow
def test_spatial_outputs_add_no_weights(exported, tmp_path):
    """The same model exported without spatial outputs has byte-identical weight shards; only
    model.json grows (a signature entry and an output node per map)."""
    model, layers, out, exp, _ = exported
    import keras

    # Same model name: the graph's weight names (and so the shard's weight order) include it.
    pooled_only = keras.Model(model.inputs, model.outputs[:len(layers)], name=model.name)
    plain = te.export_tfjs(pooled_only, layers, tmp_path / "plain")
    a, b = _weights_by_name(out), _weights_by_name(tmp_path / "plain")
    assert sorted(a) == sorted(b), f"weights differ: {sorted(set(a) ^ set(b))[:5]}"
    assert [k for k in a if a[k] != b[k]] == [], "spatial outputs changed weight values"
    grew = exp.model_bytes - plain.model_bytes
    print(f"model_bytes {plain.model_bytes:,} → {exp.model_bytes:,} (+{grew:,} B of model.json)")
    assert 0 <= grew <= 4096 * len(layers), f"model.json grew by {grew:,} B for {len(layers)} spatial outputs"
