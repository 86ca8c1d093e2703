"""Feature parity of the DCT-scaled decode (issue 22): does a large JPEG, decoded by the engine at
1/s (images.load_rgb_reduced) and box-downscaled by k/s, embed like the browser's full decode +
k×k box of the same file?

Query = the browser's pixels (full decode, preprocess.area_downscale: what frontend/src/live
computes, bit for bit); database = every dataset image through the engine's reader
(extractor.decode_step1), including the small originals the big photos were made from, which are
their nearest rivals. Real MobileNet α 0.25 ImageNet weights, the 8 default layers × poolings avg,
max and grid3, cosine. Reported: cosine(query, its own engine features) min and mean, and in how
many (photo, layer, pooling) cases the photo itself comes first. Needs ../shared/real (weights,
samples, tinyimagenet20 for the mosaic); skipped with the reason otherwise.

    KERAS_HOME=../shared/real/weights/keras_home .venv/bin/python bench/draft_parity.py
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from bench_quality import real_dir

SIZE = (224, 224)
POOLINGS = ("avg", "max", "grid3")


def _upscaled(src: Path, w: int, h: int, seed: int) -> np.ndarray:
    """Bicubic upscale + seeded sensor-like noise (σ 6), as e2e/bigphoto.test.mjs makes its photos."""
    im = Image.open(src).convert("RGB").resize((w, h), Image.Resampling.BICUBIC)
    noise = np.random.default_rng(seed).normal(0, 6, (h, w, 3))
    return np.clip(np.asarray(im, np.float64) + noise, 0, 255).round().astype(np.uint8)


def _mosaic(tiny: Path, w: int, h: int) -> np.ndarray:
    """A w×h mosaic of 64 px real photos: real detail at every scale, unlike an upscale."""
    files = sorted(tiny.rglob("*.JPEG")) + sorted(tiny.rglob("*.jpg"))
    out = np.zeros((h, w, 3), np.uint8)
    i = 0
    for y in range(0, h, 64):
        for x in range(0, w, 64):
            tile = np.asarray(Image.open(files[i % len(files)]).convert("RGB").resize((64, 64)))
            out[y:y + 64, x:x + 64] = tile[:min(64, h - y), :min(64, w - x)]
            i += 1
    return out


def make_set(folder: Path) -> list[str]:
    """Writes the dataset; returns the big photos' names (the queries)."""
    real = real_dir()
    samples = real / "weights" / "samples"
    caltech = sorted((Path(__file__).resolve().parent.parent / "datasets" / "caltech10" / "images").rglob("*.jpg"))
    sizes = [(4000, 3000), (3000, 4000), (3200, 2400), (6000, 4000), (4032, 3024)]
    big = []
    for i, src in enumerate(sorted(p for p in samples.iterdir() if p.suffix in (".jpg", ".bmp"))):
        Image.open(src).convert("RGB").save(folder / f"small_{src.stem}.png")  # the rival original
        w, h = sizes[i % len(sizes)]
        name = f"big_{src.stem}_{w}x{h}.jpg"
        Image.fromarray(_upscaled(src, w, h, i)).save(folder / name, quality=90)
        big.append(name)
    for i, src in enumerate(caltech[::40][:10]):
        Image.open(src).convert("RGB").save(folder / f"small_c{i}.png")
        w, h = sizes[(i + 2) % len(sizes)]
        name = f"big_c{i}_{w}x{h}.jpg"
        Image.fromarray(_upscaled(src, w, h, 100 + i)).save(folder / name, quality=90)
        big.append(name)
    tiny = real / "tinyimagenet20"
    for w, h in ((4000, 3000), (3200, 2400)):
        name = f"big_mosaic_{w}x{h}.jpg"
        Image.fromarray(_mosaic(tiny, w, h)).save(folder / name, quality=90)
        big.append(name)
    return big


def run(quick: bool = False) -> dict:
    import os

    from bench_quality import real_weights_env

    os.environ.update(real_weights_env())  # before Keras is imported: it reads KERAS_HOME once
    from convnet_search.io.images import load_rgb
    from convnet_search.nets.extractor import decode_step1
    from convnet_search.nets.models import build_feature_extractor, get_spec, output_keys
    from convnet_search.nets.preprocess import area_downscale, reduce_scale, resize_tensor

    spec = get_spec("mobilenet_025")
    model, infos, base = build_feature_extractor(spec, None, weights="imagenet", pooling=list(POOLINGS))
    keys = output_keys(infos, POOLINGS)

    def embed(pixels: list[np.ndarray]) -> dict[str, np.ndarray]:
        out = {k: [] for k in keys}
        for a in pixels:
            got = model(resize_tensor(a, SIZE)[None], training=False)
            for k, v in zip(keys, got if isinstance(got, (list, tuple)) else [got]):
                out[k].append(np.asarray(v)[0].astype(np.float64))
        return {k: np.stack(v) for k, v in out.items()}

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        big = make_set(folder)
        files = sorted(p.name for p in folder.iterdir())
        engine = embed([decode_step1(folder / f, SIZE) for f in files])
        browser = embed([area_downscale(load_rgb(folder / f), SIZE) for f in big])
        scales = {f: reduce_scale(*load_rgb(folder / f).shape[:2], SIZE) for f in big}
    cases, firsts, cosines, misses = 0, 0, [], []
    for k in keys:
        db = engine[k] / np.maximum(np.linalg.norm(engine[k], axis=1, keepdims=True), 1e-12)
        q = browser[k] / np.maximum(np.linalg.norm(browser[k], axis=1, keepdims=True), 1e-12)
        sims = q @ db.T
        for qi, f in enumerate(big):
            own = files.index(f)
            cosines.append(float(sims[qi, own]))
            cases += 1
            first = int(np.argmax(sims[qi])) == own
            firsts += first
            if not first:
                misses.append({"photo": f, "output": k, "own": round(float(sims[qi, own]), 6),
                               "beaten_by": files[int(np.argmax(sims[qi]))], "by": round(float(sims[qi].max()), 6)})
    return {"weights": str(base.get("weights")), "photos": len(big), "database": len(files), "outputs": len(keys), "cases": cases,
            "scales": {str(s): sum(v == s for v in scales.values()) for s in sorted(set(scales.values()))},
            "cosine_min": round(min(cosines), 6), "cosine_mean": round(float(np.mean(cosines)), 6),
            "self_first": firsts, "misses": misses}


if __name__ == "__main__":
    if not (real_dir() / "weights" / "samples").is_dir():
        print(f"skipped: {real_dir()} has no weights/samples (real data absent)")
        sys.exit(0)
    print(json.dumps(run("--quick" in sys.argv), indent=1))
