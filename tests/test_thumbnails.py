"""Thumbnails stage: sprite-sheet geometry, one decode per image, resume per sheet."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from convnet_search.stages import thumbnails as th
from convnet_search.stages.outputs import LEVELS, sheet_count
from convnet_search.io.datasets import load_dataset


def _folder(root: Path, n: int) -> Path:
    for i in range(n):
        p = root / f"c{i % 3}" / f"{i:04d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        # distinct colours; some wide, some tall (letterboxed into the square cell)
        Image.new("RGB", (40, 20) if i % 2 else (20, 40), (i * 7 % 256, i * 13 % 256, 200)).save(p)
    return root


def test_cell_geometry():
    assert th.cell_of(0) == (0, 0, 0)
    assert th.cell_of(17) == (0, 1, 1)
    assert th.cell_of(256) == (1, 0, 0)
    assert sheet_count(256) == 1 and sheet_count(257) == 2 and sheet_count(100_000) == 391
    assert th.sheet_size(300, 0, 32) == (512, 512)
    assert th.sheet_size(300, 1, 32) == (512, 3 * 32)  # 44 images: 3 rows


def test_fit_cell_letterboxes_and_never_enlarges():
    wide = np.zeros((10, 40, 3), np.uint8)
    im = th.fit_cell(wide, 32)
    a = np.asarray(im)
    assert im.size == (32, 32)
    assert (a[0, 0] == th.BACKGROUND).all() and (a[16, 16] == 0).all()  # black band in the middle
    tiny = th.fit_cell(np.zeros((2, 2, 3), np.uint8), 32)
    assert (np.asarray(tiny)[16, 16] == 0).all() and (np.asarray(tiny)[10, 10] == th.BACKGROUND).all()


def test_stage_writes_sheets_once_and_resumes_per_sheet(tmp_path, monkeypatch):
    ds = load_dataset(_folder(tmp_path / "imgs", 300))
    work = tmp_path / "work"
    decoded = []
    real_load = th.load_rgb
    monkeypatch.setattr(th, "load_rgb", lambda p, **kw: decoded.append(p) or real_load(p, **kw))
    sheets = th.thumbnails_stage(ds, "fp-a", work)
    assert len(decoded) == 300  # every image decoded exactly once for both levels
    assert sheets.sheets == 2
    for lv in LEVELS:
        with Image.open(sheets.sheet_path(lv.id, 1)) as im:
            assert im.size == th.sheet_size(300, 1, lv.cell)
    # id 257 sits at column 1, row 0 of sheet 1: its cell holds its colour
    i = int(Path(ds.files[257]).stem)  # ids follow class folders, not file numbers
    with Image.open(sheets.sheet_path("large", 1)) as im:
        px = np.asarray(im.convert("RGB"))[48, 96 + 48].astype(int)
    assert np.abs(px - [i * 7 % 256, i * 13 % 256, 200]).max() < 12
    # up to date: nothing decoded again
    decoded.clear()
    assert th.thumbnails_stage(ds, "fp-a", work) == sheets and decoded == []
    # killed after sheet 0: only sheet 1 is made again
    (sheets.folder / "done.json").unlink()
    sheets.pack_path(1).unlink()
    th.thumbnails_stage(ds, "fp-a", work)
    assert len(decoded) == 300 - 256
    # another dataset fingerprint: another folder
    assert th.thumbnails_stage(ds, "fp-b", work).folder != sheets.folder


def test_sheets_are_deterministic(tmp_path):
    ds = load_dataset(_folder(tmp_path / "imgs", 5))
    a = th.thumbnails_stage(ds, "x", tmp_path / "w1")
    b = th.thumbnails_stage(ds, "x", tmp_path / "w2")
    assert a.sheet_path("large", 0).read_bytes() == b.sheet_path("large", 0).read_bytes()


def test_pack_holds_each_cell_as_its_own_jpeg(tmp_path):
    ds = load_dataset(_folder(tmp_path / "imgs", 20))
    sheets = th.thumbnails_stage(ds, "x", tmp_path / "w")
    data = sheets.pack_path(0).read_bytes()
    jpegs = th.unpack(data)
    assert len(jpegs) == 20
    head = np.frombuffer(data[:84], "<u4")
    assert head[0] == 84 and head[-1] == len(data)  # offsets from the file start, last = end
    for j in (0, 7, 19):
        assert data[head[j]:head[j + 1]] == jpegs[j]
        with Image.open(io.BytesIO(jpegs[j])) as im:
            cell = np.asarray(im.convert("RGB")).astype(int)
        i = int(Path(ds.files[j]).stem)
        assert cell.shape == (96, 96, 3)
        assert np.abs(cell[48, 48] - [i * 7 % 256, i * 13 % 256, 200]).max() < 12
    assert th.unpack(th.pack([b"ab", b"", b"c"])) == [b"ab", b"", b"c"]
