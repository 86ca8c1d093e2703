"""Thumbnails stage: every image decoded once into sprite sheets (docs/bundle.md "Thumbnails").

A sheet holds GRID × GRID consecutive ids (row-major cells); each image is shrunk to fit its cell
(aspect kept, centred on BACKGROUND). Two levels from one decode: small cells for the map's zoomed
view (PixPlot's atlas idea: thousands of tiny textures from a few files) and large cells for the
gallery and results. At N = 100,000 that is 2 × ⌈N / 256⌉ = 782 files instead of 100,000.

The large level also gets a pack per sheet, <sheet>.jpgs: the same cells as separate JPEGs behind a
table of offsets, so a view showing a few scattered images (a query's results) fetches each one by
an HTTP Range request (≈ 2–5 KB) instead of whole 0.5 MB sheets.

Stored in <work>/thumbs/<dataset>-<fingerprint>/<level>/<sheet>.jpg (+ .jpgs), each file written
atomically, so a killed run resumes at the first sheet missing a file; the bundle stage only copies.
"""
from __future__ import annotations

import io
import math
import struct
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
from PIL import Image

from ..io.datasets import Dataset, DatasetChanged
from ..io.images import ImageError, load_rgb
from ..io.store import atomic_write_bytes, atomic_write_json, fingerprint
from .base import Stage
from .outputs import GRID, LEVELS, PACK_LEVEL, ThumbLevel, ThumbSheets
from .progress import Steps, progress

if TYPE_CHECKING:
    from .base import RunContext

THUMBS_FORMAT = 2  # 2: packs of single JPEGs for the large level
BACKGROUND = (238, 238, 238)  # the explorer's thumbnail background (#eeeeee): letterbox colour


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
    return tile([fit_cell(rgb, cell) for rgb in images], cell, grid)


def tile(cells: list[Image.Image], cell: int, grid: int = GRID) -> Image.Image:
    rows = math.ceil(len(cells) / grid)
    sheet = Image.new("RGB", (grid * cell, rows * cell), BACKGROUND)
    for pos, im in enumerate(cells):
        row, col = divmod(pos, grid)
        sheet.paste(im, (col * cell, row * cell))
    return sheet


def pack(jpegs: list[bytes]) -> bytes:
    """uint32 LE offsets[count + 1] (from the file start), then the JPEGs back to back: image j is
    bytes offsets[j] … offsets[j + 1] − 1."""
    head = 4 * (len(jpegs) + 1)
    offsets = [head]
    for b in jpegs:
        offsets.append(offsets[-1] + len(b))
    return struct.pack(f"<{len(offsets)}I", *offsets) + b"".join(jpegs)


def unpack(data: bytes) -> list[bytes]:
    first = struct.unpack_from("<I", data)[0]
    offsets = struct.unpack_from(f"<{first // 4}I", data)
    return [data[a:b] for a, b in zip(offsets, offsets[1:])]


def jpeg(im: Image.Image, quality: int) -> bytes:
    """Deterministic JPEG bytes (no metadata, no optimisation passes)."""
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality, optimize=False, progressive=False)
    return buf.getvalue()


# Decode JPEGs at a reduced scale that keeps ≥ 2 × the largest cell per side (Pillow's
# Image.thumbnail uses the same reducing gap): a thumbnail needs no full 12 MP decode.
DRAFT = 2 * max(lv.cell for lv in LEVELS)


def _load(ds: Dataset, i: int) -> np.ndarray:
    try:
        return load_rgb(ds.path(i), draft=DRAFT)
    except (ImageError, OSError) as exc:  # changed on disk since the scan: the run lists it again
        raise DatasetChanged([(str(ds.path(i)), getattr(exc, "reason", None) or str(exc))]) from None


def thumbnail_sheets(ds: Dataset, ds_fp: str, work: Path, levels: tuple[ThumbLevel, ...] = LEVELS,
                     grid: int = GRID) -> tuple[ThumbSheets, str]:
    """(where the sheets of ds go, their fingerprint): the folder is named by the fingerprint and
    holds done.json once every sheet is written (thumbnails_current)."""
    fp = fingerprint("thumbs", THUMBS_FORMAT, ds_fp, [asdict(lv) for lv in levels], grid, BACKGROUND)
    return ThumbSheets(Path(work) / "thumbs" / f"{ds.id}-{fp[:16]}", len(ds), grid, levels), fp


def thumbnails_current(sheets: ThumbSheets) -> bool:
    return (sheets.folder / "done.json").exists()


def thumbnails_stage(ds: Dataset, ds_fp: str, work: Path,
                     levels: tuple[ThumbLevel, ...] = LEVELS, grid: int = GRID,
                     on_step: Callable[[int, int], None] | None = None) -> ThumbSheets:
    """Sprite sheets of every image of ds, written once per fingerprint, resumable per sheet.
    on_step(done, total): images done, called per sheet when anything is rendered."""
    sheets, fp = thumbnail_sheets(ds, ds_fp, work, levels, grid)
    if thumbnails_current(sheets):
        return sheets
    per = grid * grid
    for s in range(sheets.sheets):
        if on_step:
            on_step(min(len(ds), s * per), len(ds))
        if all(p.exists() for p in sheets.sheet_files(s)):
            continue  # written by an earlier (killed) run: resume after it
        rgbs = [_load(ds, i) for i in range(s * per, min(len(ds), (s + 1) * per))]
        for lv in levels:
            cells = [fit_cell(rgb, lv.cell) for rgb in rgbs]
            if lv.id == PACK_LEVEL:
                atomic_write_bytes(sheets.pack_path(s), pack([jpeg(c, lv.quality) for c in cells]))
            atomic_write_bytes(sheets.sheet_path(lv.id, s), jpeg(tile(cells, lv.cell, grid), lv.quality))
    atomic_write_json(sheets.folder / "done.json", {"fingerprint": fp, "n": len(ds), "sheets": sheets.sheets})
    if on_step:
        on_step(len(ds), len(ds))
    return sheets


def manifest_entry(levels: tuple[ThumbLevel, ...] = LEVELS, grid: int = GRID) -> dict:
    """The manifest's "thumbnails" object: independent of N (sheet sizes follow from size)."""
    return {"grid": grid, "background": "#%02x%02x%02x" % BACKGROUND,
            "levels": [{"id": lv.id, "cell": lv.cell} for lv in levels], "pack_level": PACK_LEVEL}


def run(ctx: RunContext) -> None:
    with progress(ctx.console) as bar:
        for res in ctx.results:
            res.thumbs = thumbnails_stage(res.dataset, ctx.ds_fps[res.dataset.id], ctx.work,
                                          on_step=Steps(bar, f"thumbnails {res.dataset.id}"))


def load(ctx: RunContext) -> None:
    for res in ctx.results:
        sheets, _ = thumbnail_sheets(res.dataset, ctx.ds_fps[res.dataset.id], ctx.work)
        if not thumbnails_current(sheets):
            raise ctx.missing("thumbnails", res.dataset.id)
        res.thumbs = sheets


STAGE = Stage("thumbnails", run, load, ("datasets",), ("thumbs",))
