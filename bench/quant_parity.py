"""Bytes vs parity of the TF.js export's weight quantization, per weight group (docs/live-search.md).

For each scheme: export the browser model (tfjs_export, the converter's per-dtype patterns), run it
with TF.js in Node (frontend/scripts/tfjs-embed.mjs, wasm, the browser's resize) and Keras on the
same photos, and report the model bytes and the per-image cosine TF.js vs Keras over every exported
layer (min, mean; and the last layer's). Evaluation only, not part of `make bench`:

    KERAS_HOME=../shared/real/weights/keras_home .venv/bin/python bench/quant_parity.py \
        mobilenet_025 imagenet [PER_CLASS] ["scheme|scheme…"]
    .venv/bin/python bench/quant_parity.py mobilenet none 2 "none|float16|uint16|uint8"

Photos: PER_CLASS (default 2) of each ../shared/real/tinyimagenet20 class plus
../shared/real/weights/samples ($CONVNET_SEARCH_REAL overrides ../shared/real).
Weight names after our export look like
``…/mobilenet_025_taps_1/conv_dw_3_1/depthwise/ReadVariableOp`` (depthwise kernels),
``…/conv_dw_3_bn_1/batchnorm/mul|sub`` (their batch norm, not folded) and
``…/conv_pw_3_1/convolution/merged_input`` (conv1 and pointwise kernels with batch norm folded in).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench_quality import real_dir  # noqa: E402  (bench/ is sys.path[0] when run as a script)
from convnet_search.nets import tfjs_export as te  # noqa: E402

REAL = real_dir()
SCHEMES: dict[str, dict | None] = {
    "none": None,
    "float16": {"float16": "*"},
    "uint16": {"uint16": "*"},
    "uint8": {"uint8": "*"},
    # A pattern list plus one fallthrough dtype (True): the converter's per-group syntax.
    "f16 depthwise + u8 rest": {"float16": ["*depthwise*"], "uint8": True},
    "f16 depthwise+bn + u8 rest": {"float16": ["*depthwise*", "*batchnorm*"], "uint8": True},
    "u16 depthwise + u8 rest": {"uint16": ["*depthwise*"], "uint8": True},
    "f16 depthwise + u16 rest": {"float16": ["*depthwise*"], "uint16": True},
    "u8 pointwise 1-9 + f16 rest": {"uint8": ["*conv_pw_[1-9]_1/convolution/merged_input"], "float16": True},
    "u8 pointwise 10-13 + f16 rest": {"uint8": ["*conv_pw_1[0-3]_1/convolution/merged_input"], "float16": True},
}


def photos(per_class: int) -> list[Path]:
    paths: list[Path] = []
    for d in sorted(p for p in (REAL / "tinyimagenet20").iterdir() if p.is_dir()):
        paths += sorted(d.iterdir())[:per_class]
    return paths + sorted(p for p in (REAL / "weights" / "samples").iterdir() if p.suffix in (".jpg", ".bmp"))


def main() -> None:
    from convnet_search.io.images import load_rgb
    from convnet_search.nets.models import build_feature_extractor, get_spec
    from convnet_search.nets.preprocess import area_downscale, resize_rgb

    if len(sys.argv) < 3:
        sys.exit("usage: quant_parity.py MODEL WEIGHTS [PER_CLASS] [\"scheme|scheme…\"] (see the docstring)")
    model_id, weights = sys.argv[1], sys.argv[2]
    per_class = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    schemes = {k: v for k, v in SCHEMES.items() if len(sys.argv) <= 4 or k in sys.argv[4].split("|")}
    spec = get_spec(model_id)
    model, infos, base = build_feature_extractor(spec, None, weights=weights, pooling="avg", seed=0)
    layers = [i.name for i in infos]
    paths = photos(per_class)
    rgbs = [load_rgb(p) for p in paths]
    keras_feats = model.predict(np.stack([resize_rgb(r, spec.input_size) for r in rgbs]), verbose=0, batch_size=16)
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"quant-parity-{model_id}-{weights}-{per_class}"
    tmp.mkdir(parents=True, exist_ok=True)
    npys = []
    for i, r in enumerate(rgbs):
        npys.append(tmp / f"img{i:03d}.npy")
        # Node gets step 1 of the documented path done (the browser's JS box downscale), so the
        # figures measure quantization, not preprocessing (as tests/test_tfjs_export.py does).
        np.save(npys[-1], area_downscale(r, spec.input_size)[None].astype(np.uint8))
    print(f"{model_id}, weights {base['weights']}, {len(paths)} photos, layers {', '.join(layers)}")
    print("| scheme | bytes | cosine min | mean | last layer min | worst layer |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    original = te._quantization_map
    for name, qmap in schemes.items():
        te._quantization_map = lambda _q, qmap=qmap: qmap  # any pattern map, not only the named ones
        try:
            out = tmp / name.replace(" ", "_").replace("+", "p")
            exp = te.export_tfjs(model, layers, out, quantize="none")
        finally:
            te._quantization_map = original
        js = out.with_suffix(".js")
        pairs = ",".join(f"{o['layer']}:{o['output']}" for o in exp.outputs)
        proc = subprocess.run(["node", "scripts/tfjs-embed.mjs", str(out), *map(str, npys), str(js), "--outputs", pairs],
                              cwd=ROOT / "frontend", capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"tfjs-embed failed for {name}:\n{proc.stderr[-2000:]}")
        cos = []
        for layer, kf in zip(layers, keras_feats):
            jf = np.fromfile(js / f"{layer}.f32", dtype="<f4").reshape(len(paths), -1)
            cos.append((jf * kf).sum(1) / (np.linalg.norm(jf, axis=1) * np.linalg.norm(kf, axis=1)))
        c = np.stack(cos)
        worst = layers[int(np.nanargmin(c.min(1)))]
        print(f"| {name} | {exp.model_bytes:,} | {np.nanmin(c):.6f} | {np.nanmean(c):.6f} | {np.nanmin(c[-1]):.6f} | {worst} |",
              flush=True)


if __name__ == "__main__":
    main()
