"""Decoding real-size photos (`bench/run.py --only decode`): the default nine-model run's decode work
before and after the run's decode cache, and the box mean before and after its reshape-sum rewrite.

Photo set, generated reproducibly: the first `n` photos of the bundled caltech10 demo
(/work/shared/demo/caltech10, or CONVNET_SEARCH_DEMO) in sorted order, upscaled (Pillow LANCZOS) to
4000×3000 and saved as JPEG quality 92, plus one 4000×3000 PNG; without the demo, seeded
gradients + noise. Rows:
- `box_mean`: preprocess.area_downscale (reshape sums, now) vs the np.add.reduceat version it
  replaced (`_reduceat_area`, kept here), per 12 MP image, outputs compared for equality.
- `nine_models`: the decode work of the default nine models (input sizes 224, 299, 456), one thread:
  before = each model decodes each photo (extractor.decode_step1 without a cache); after = the
  run's decode cache (first model decodes and stores every size, the others read). Pixels handed
  to each model are compared for equality.
- `thumbnails`: the thumbnails stage's work per photo (decode, then a cell of each level):
  before = a full decode; after = the JPEG draft decode it uses now (stages/thumbnails.DRAFT);
  the large cells are compared (mean and max absolute difference, 0–255).
Interleaved rounds, fastest kept; the load average is recorded (other processes share the cores).
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

DEMO = Path(os.environ.get("CONVNET_SEARCH_DEMO", "/work/shared/demo/caltech10"))
BIG = (3000, 4000)  # height, width
NINE = ("mobilenet", "efficientnetb0", "densenet121", "xception", "inceptionv3", "resnet50", "efficientnetb5",
        "vgg16", "vgg19")


def make_photos(folder: Path, n: int) -> list[Path]:
    """n 4000×3000 JPEGs (upscaled demo photos) + one PNG of the first, reproducibly."""
    from PIL import Image

    sources = sorted(DEMO.rglob("*.jpg"))[:n] if DEMO.is_dir() else []
    out = []
    rng = np.random.default_rng(11)
    y, x = np.mgrid[0:BIG[0], 0:BIG[1]]
    for i in range(n):
        if i < len(sources):
            with Image.open(sources[i]) as im:
                big = im.convert("RGB").resize((BIG[1], BIG[0]), Image.Resampling.LANCZOS)
        else:
            base = ((x * (i + 1) // 40 + y // 30) % 256).astype(np.uint8)
            img = np.stack([base, base[::-1], np.roll(base, 97 * i, axis=1)], axis=-1)
            big = Image.fromarray(np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8))
        out.append(folder / f"photo_{i:04d}.jpg")
        big.save(out[-1], quality=92)
        if i == 0:
            out.append(folder / "photo_0000.png")
            big.save(out[-1], compress_level=6)
    return out


def _reduceat_area(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """preprocess.area_downscale before the reshape-sum rewrite (the 'before' row)."""
    from convnet_search.nets.preprocess import area_factor

    height, width = a.shape[:2]
    k = area_factor(height, width, size)
    if k == 1:
        return a
    rows, cols = np.arange(0, height, k), np.arange(0, width, k)
    sums = np.add.reduceat(np.add.reduceat(a, rows, axis=0, dtype=np.uint32), cols, axis=1, dtype=np.uint32)
    n = np.outer(np.diff(np.append(rows, height)), np.diff(np.append(cols, width))).astype(np.uint32)[:, :, None]
    return ((2 * sums + n) // (2 * n)).astype(np.uint8)


def box_mean_row(paths: list[Path], rounds: int) -> dict:
    from convnet_search.io.images import load_rgb
    from convnet_search.nets.preprocess import area_downscale

    imgs = [load_rgb(p) for p in paths[:4]]
    t0 = time.perf_counter()
    for p in paths[:4]:
        load_rgb(p)
    decode_ms = 1e3 * (time.perf_counter() - t0) / len(imgs)
    times = {"reduceat_ms": [], "reshape_ms": []}
    for _ in range(rounds):
        for name, fn in (("reduceat_ms", _reduceat_area), ("reshape_ms", area_downscale)):
            t0 = time.perf_counter()
            for a in imgs:
                fn(a, (224, 224))
            times[name].append(1e3 * (time.perf_counter() - t0) / len(imgs))
    best = {k: min(v) for k, v in times.items()}
    from convnet_search.nets.preprocess import area_factor

    k = area_factor(*imgs[0].shape[:2], (224, 224))  # the factor the reader uses (10 for 4000×3000)
    return {"case": f"box mean of a {imgs[0].shape[1]}×{imgs[0].shape[0]} image to ≤ 448 px (k = {k}), per image",
            "images": len(imgs),
            **{k: round(v, 1) for k, v in best.items()}, "load_rgb_ms_one_pass": round(decode_ms, 1),
            "speedup": round(best["reduceat_ms"] / best["reshape_ms"], 2),
            "identical": all(np.array_equal(_reduceat_area(a, (224, 224)), area_downscale(a, (224, 224))) for a in imgs),
            "load_avg_after": [round(x, 2) for x in os.getloadavg()]}


def nine_models_row(paths: list[Path], rounds: int, folder: Path) -> dict:
    import hashlib

    from convnet_search.io.decode_cache import DecodeCache
    from convnet_search.nets.extractor import decode_step1
    from convnet_search.nets.models import get_spec

    sizes = [tuple(get_spec(m).input_size) for m in NINE]
    digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    unique = tuple(dict.fromkeys(sizes))

    def before():
        return [[decode_step1(p, s) for p in paths] for s in sizes]

    def after():
        cache = DecodeCache(folder / "cache", unique)
        try:
            return [[decode_step1(p, s, d, cache) for p, d in zip(paths, digests)] for s in sizes]
        finally:
            cache.remove()

    times: dict[str, list[float]] = {"before_s": [], "after_s": []}
    same = True
    for r in range(rounds):
        got = {}
        for name, fn in ((("before_s", before), ("after_s", after)) if r % 2 == 0 else (("after_s", after), ("before_s", before))):
            t0 = time.perf_counter()
            got[name] = fn()
            times[name].append(time.perf_counter() - t0)
        same = same and all(np.array_equal(a, b) for x, y in zip(got["before_s"], got["after_s"]) for a, b in zip(x, y))
        del got
    best = {k: min(v) for k, v in times.items()}
    return {"case": f"decode work of the nine default models on {len(paths)} photos of 4000×3000 (one thread)",
            "photos": len(paths), "models": len(NINE), "input_sizes": [list(s) for s in unique],
            **{k: round(v, 2) for k, v in best.items()},
            "before_per_photo_ms": round(1e3 * best["before_s"] / len(paths), 1),
            "after_per_photo_ms": round(1e3 * best["after_s"] / len(paths), 1),
            "speedup": round(best["before_s"] / best["after_s"], 2), "pixels_identical": same,
            "rounds_s": {k: [round(t, 2) for t in v] for k, v in times.items()},
            "load_avg_after": [round(x, 2) for x in os.getloadavg()]}


def thumbnails_row(paths: list[Path], rounds: int) -> dict:
    from convnet_search.io.images import load_rgb
    from convnet_search.stages.outputs import LEVELS
    from convnet_search.stages.thumbnails import DRAFT, fit_cell

    def cells(draft):
        out = []
        for p in paths:
            rgb = load_rgb(p, draft=draft)
            out.append([np.asarray(fit_cell(rgb, lv.cell), dtype=np.int16) for lv in LEVELS])
        return out

    times: dict[str, list[float]] = {"before_s": [], "after_s": []}
    for r in range(rounds):
        got = {}
        for name, draft in ((("before_s", None), ("after_s", DRAFT)) if r % 2 == 0 else (("after_s", DRAFT), ("before_s", None))):
            t0 = time.perf_counter()
            got[name] = cells(draft)
            times[name].append(time.perf_counter() - t0)
    diff = [np.abs(a[-1] - b[-1]) for a, b in zip(got["before_s"], got["after_s"])]
    best = {k: min(v) for k, v in times.items()}
    return {"case": f"thumbnails stage per 4000×3000 photo (decode + {len(LEVELS)} cells), one thread",
            "photos": len(paths), "draft_px": DRAFT,
            "before_per_photo_ms": round(1e3 * best["before_s"] / len(paths), 1),
            "after_per_photo_ms": round(1e3 * best["after_s"] / len(paths), 1),
            "speedup": round(best["before_s"] / best["after_s"], 2),
            "large_cell_mean_abs_diff": round(float(np.mean([d.mean() for d in diff])), 2),
            "large_cell_max_abs_diff": int(max(d.max() for d in diff)),
            "load_avg_after": [round(x, 2) for x in os.getloadavg()]}


def run(quick: bool = False, n: int | None = None) -> list[dict]:
    n = n or (3 if quick else 6)
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_photos(Path(tmp), n)
        return [box_mean_row(paths, 2 if quick else 3), nine_models_row(paths, 1 if quick else 2, Path(tmp)),
                thumbnails_row(paths, 2 if quick else 3)]


if __name__ == "__main__":
    import json
    import sys

    # python bench/bench_decode.py [N]: the nine-model row on N photos (make bench uses 6; 1000 is the figure)
    for row in run(n=int(sys.argv[1]) if len(sys.argv) > 1 else None):
        print(json.dumps(row))
