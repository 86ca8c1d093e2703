"""Fallback test images when datasets/shapes is absent: 4 classes x N small PNGs of coloured shapes.

Usage: python make_images.py OUT_DIR [N_PER_CLASS]
Deterministic (seeded), so the engine-built bundle is the same every run.
"""
import random
import sys
from pathlib import Path

from PIL import Image, ImageDraw


def draw(kind: str, rng: random.Random) -> Image.Image:
    size = 64
    bg = tuple(rng.randint(0, 80) for _ in range(3))
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    r = rng.randint(14, 26)
    cx, cy = rng.randint(r, size - r), rng.randint(r, size - r)
    colour = {"circle": (230, 60, 60), "square": (60, 200, 80), "triangle": (70, 110, 240), "cross": (240, 220, 60)}[kind]
    colour = tuple(min(255, max(0, c + rng.randint(-25, 25))) for c in colour)
    if kind == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif kind == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif kind == "triangle":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    else:
        w = max(3, r // 3)
        d.rectangle([cx - r, cy - w, cx + r, cy + w], fill=colour)
        d.rectangle([cx - w, cy - r, cx + w, cy + r], fill=colour)
    return img


def main() -> None:
    out = Path(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    rng = random.Random(0)
    for kind in ["circle", "cross", "square", "triangle"]:
        (out / kind).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            draw(kind, rng).save(out / kind / f"{kind}_{i:03d}.png")


if __name__ == "__main__":
    main()
