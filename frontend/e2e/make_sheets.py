"""Thumbnail sprite sheets for a synthetic bundle of N images (e2e/scaled-bundle.mjs): the cells of
a real bundle's sheets reused cyclically (and the pack level's packs) (image i shows base image i mod base N), laid out exactly
as docs/bundle.md "Thumbnails" fixes for N, through convnet_search.stages.thumbnails.

Usage: python make_sheets.py BASE_BUNDLE BASE_DATASET OUT_DATASET_DIR N
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from PIL import Image

from convnet_search.stages.outputs import sheet_count
from convnet_search.stages.thumbnails import jpeg, pack, tile

QUALITY = {"small": 80, "large": 85}


def main(base: Path, base_ds: str, out: Path, n: int) -> None:
    m = json.loads((base / "manifest.json").read_text())
    grid, per = m["thumbnails"]["grid"], m["thumbnails"]["grid"] ** 2
    base_n = next(d["size"] for d in m["datasets"] if d["id"] == base_ds)
    for level in m["thumbnails"]["levels"]:
        cell = level["cell"]
        template = m["files"]["thumb_sheet"]
        cells = []
        for s in range(sheet_count(base_n, grid)):
            path = base / template.format(dataset=base_ds, level=level["id"], sheet=s)
            with Image.open(path) as im:
                sheet = im.convert("RGB")
            for pos in range(min(per, base_n - s * per)):
                r, c = divmod(pos, grid)
                cells.append(sheet.crop((c * cell, r * cell, (c + 1) * cell, (r + 1) * cell)))
        dest = out / "thumbs" / level["id"]
        dest.mkdir(parents=True, exist_ok=True)
        for s in range(sheet_count(n, grid)):
            mine = [cells[(s * per + pos) % base_n] for pos in range(min(per, n - s * per))]
            quality = QUALITY.get(level["id"], 85)
            (dest / f"{s}.jpg").write_bytes(jpeg(tile(mine, cell, grid), quality))
            if level["id"] == m["thumbnails"]["pack_level"]:
                (dest / f"{s}.jpgs").write_bytes(pack([jpeg(im, quality) for im in mine]))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))
