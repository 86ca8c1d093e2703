"""Thumbnails stage: every image decoded once into sprite sheets (docs/bundle.md "Thumbnails").

A sheet holds GRID × GRID consecutive ids (row-major cells); each image is shrunk to fit its cell
(aspect kept, centred on BACKGROUND). Two levels from one decode: small cells for the map's zoomed
view (PixPlot's atlas idea: thousands of tiny textures from a few files) and large cells for the
gallery and results. At N = 100,000 that is 2 × ⌈N / 256⌉ = 782 files instead of 100,000.

Stored in <work>/thumbs/<dataset>-<fingerprint>/<level>/<sheet>.jpg, each sheet written atomically,
so a killed run resumes at the first sheet missing a level; the bundle stage only copies them.
"""
from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .datasets import Dataset
from .images import ImageError, load_rgb
from .store import atomic_write_bytes, atomic_write_json, fingerprint

THUMBS_FORMAT = 1
GRID = 16  # cells per sheet side: 256 thumbnails per sheet
BACKGROUND = (238, 238, 238)  # the explorer's thumbnail background (#eeeeee): letterbox colour


@dataclass(frozen=True)
class ThumbLevel:
    id: str
    cell: int  # px, square
    quality: int  # JPEG quality


# small: 32-px map cells (≈ 0.5 KB each, 130 KB per 512² sheet); large: 96-px cells, what the
# gallery and results draw (96 CSS px tiles; 128 px would cost ≈ 1.7× the bytes for sharpness
# only a 2× display sees).
LEVELS = (ThumbLevel("small", 32, 80), ThumbLevel("large", 96, 85))


@dataclass(frozen=True)
class ThumbSheets:
    folder: Path  # holds <level>/<sheet>.jpg
    n: int
    grid: int
    levels: tuple[ThumbLevel, ...]

    def sheet_path(self, level: str, sheet: int) -> Path:
        return self.folder / level / f"{sheet}.jpg"

    @property
    def sheets(self) -> int:
        return sheet_count(self.n, self.grid)


def sheet_count(n: int, grid: int = GRID) -> int:
    return math.ceil(n / (grid * grid))


def cell_of(i: int, grid: int = GRID) -> tuple[int, int, int]:
    """(sheet, column, row) of image i."""
    sheet, pos = divmod(i, grid * grid)
    row, col = divmod(pos, grid)
    return sheet, col, row


def sheet_size(n: int, sheet: int, cell: int, grid: int = GRID) -> tuple[int, int]:
    """(width, height) px of a sheet: the last one has only the rows it needs."""
    count = min(grid * grid, n - sheet * grid * grid)
    return grid * cell, math.ceil(count / grid) * cell


def fit_cell(rgb: np.ndarray, cell: int) -> Image.Image:
    """rgb shrunk (never enlarged) to fit a cell × cell square, centred on BACKGROUND."""
    im = Image.fromarray(np.ascontiguousarray(rgb))
    scale = min(1.0, cell / max(im.width, im.height))
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    if size != im.size:
        im = im.resize(size, Image.Resampling.LANCZOS)
    out = Image.new("RGB", (cell, cell), BACKGROUND)
    out.paste(im, ((cell - size[0]) // 2, (cell - size[1]) // 2))
    return out


def render_sheet(images: list[np.ndarray], cell: int, grid: int = GRID) -> Image.Image:
    rows = math.ceil(len(images) / grid)
    sheet = Image.new("RGB", (grid * cell, rows * cell), BACKGROUND)
    for pos, rgb in enumerate(images):
        row, col = divmod(pos, grid)
        sheet.paste(fit_cell(rgb, cell), (col * cell, row * cell))
    return sheet


def jpeg(im: Image.Image, quality: int) -> bytes:
    """Deterministic JPEG bytes (no metadata, no optimisation passes)."""
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality, optimize=False, progressive=False)
    return buf.getvalue()


def _load(ds: Dataset, i: int) -> np.ndarray:
    try:
        return load_rgb(ds.path(i))
    except (ImageError, OSError):  # changed on disk since the scan: a blank cell, not a failed run
        return np.full((1, 1, 3), BACKGROUND, np.uint8)


def thumbnails_stage(ds: Dataset, ds_fp: str, work: Path,
                     levels: tuple[ThumbLevel, ...] = LEVELS, grid: int = GRID) -> ThumbSheets:
    """Sprite sheets of every image of ds, written once per fingerprint, resumable per sheet."""
    fp = fingerprint("thumbs", THUMBS_FORMAT, ds_fp, [asdict(lv) for lv in levels], grid, BACKGROUND)
    sheets = ThumbSheets(Path(work) / "thumbs" / f"{ds.id}-{fp[:16]}", len(ds), grid, levels)
    done = sheets.folder / "done.json"
    if done.exists():
        return sheets
    per = grid * grid
    for s in range(sheets.sheets):
        if all(sheets.sheet_path(lv.id, s).exists() for lv in levels):
            continue  # written by an earlier (killed) run: resume after it
        rgbs = [_load(ds, i) for i in range(s * per, min(len(ds), (s + 1) * per))]
        for lv in levels:
            atomic_write_bytes(sheets.sheet_path(lv.id, s), jpeg(render_sheet(rgbs, lv.cell, grid), lv.quality))
    atomic_write_json(done, {"fingerprint": fp, "n": len(ds), "sheets": sheets.sheets})
    return sheets


def cut_cells(sheet_jpeg: bytes, count: int, cell: int, grid: int = GRID) -> list[Image.Image]:
    """The first `count` cells of a sheet, decoded once (for the transitional per-image files)."""
    with Image.open(io.BytesIO(sheet_jpeg)) as im:
        rgb = im.convert("RGB")
    return [rgb.crop((c * cell, r * cell, (c + 1) * cell, (r + 1) * cell))
            for r, c in (divmod(pos, grid) for pos in range(count))]


def manifest_entry(levels: tuple[ThumbLevel, ...] = LEVELS, grid: int = GRID) -> dict:
    """The manifest's "thumbnails" object: independent of N (sheet sizes follow from size)."""
    return {"grid": grid, "background": "#%02x%02x%02x" % BACKGROUND,
            "levels": [{"id": lv.id, "cell": lv.cell} for lv in levels]}

