"""io/exports.py: the three export formats from plain arrays, their marker rules (never replace a
folder of someone's files), atomic replacement, and TSV cells that cannot shift columns."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from convnet_search.io.exports import (EXPORT_MARKER, ExportData, ExportError, check_export_target, sprite_cell,
                                       write_export)


def _data(tmp_path, n=5, with_images=True) -> ExportData:
    root = tmp_path / "imgs"
    paths = [f"c{i % 2}/im{i}.png" for i in range(n)]
    if with_images:
        for i, p in enumerate(paths):
            (root / p).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (20 + i, 10), (200, 10 * i, 0)).save(root / p)
    emb = np.random.default_rng(0).normal(size=(n, 3)).astype(np.float32)
    return ExportData(paths, {"class": [p[:2] for p in paths]}, emb, {"model": "m", "layer": "l", "pooling": "avg"},
                      root if with_images else None, {"map": np.zeros((n, 2), np.float32)})


def test_projector_files(tmp_path):
    d = _data(tmp_path)
    files = write_export("projector", tmp_path / "p", d)
    assert sorted(f.name for f in files) == ["metadata.tsv", "projector_config.pbtxt", "sprite.png", "tensors.tsv"]
    assert np.array_equal(np.loadtxt(tmp_path / "p/tensors.tsv", dtype=np.float32, delimiter="\t"), d.embeddings)
    with Image.open(tmp_path / "p/sprite.png") as im:
        assert im.size == (3 * 64, 3 * 64)
        assert im.getpixel((32, 32)) == (200, 0, 0)  # image 0, centred in cell 0
    marker = json.loads((tmp_path / "p" / EXPORT_MARKER).read_text())
    assert marker["kind"] == "export" and marker["export_format"] == "projector"


def test_a_missing_image_is_a_grey_cell_and_label_tabs_cannot_shift_columns(tmp_path):
    d = _data(tmp_path, with_images=False)
    d.labels["class"][1] = "a\tb\nc"
    write_export("projector", tmp_path / "p", d)
    rows = (tmp_path / "p/metadata.tsv").read_text().splitlines()
    assert len(rows) == 6 and all(r.count("\t") == 1 for r in rows) and rows[2].endswith("a b c")


def test_sprite_fits_the_projector_limit():
    assert sprite_cell(1) == 64 and sprite_cell(100_000) == 8192 // 317
    assert sprite_cell(100_000) * 317 <= 8192


def test_parquet_and_npz(tmp_path):
    import pandas as pd

    d = _data(tmp_path)
    write_export("parquet", tmp_path / "q", d)
    df = pd.read_parquet(tmp_path / "q/embeddings.parquet")
    assert df["path"].tolist() == d.paths and np.array_equal(np.stack(df["embedding"].to_numpy()), d.embeddings)
    write_export("npz", tmp_path / "n", d)
    with np.load(tmp_path / "n/embeddings.npz") as z:
        assert sorted(z.files) == ["embeddings", "map"]
    assert json.loads((tmp_path / "n/embeddings.json").read_text())["labels"] == d.labels


def test_marker_rules(tmp_path):
    d = _data(tmp_path)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "a.txt").write_text("x")
    with pytest.raises(ExportError, match="not a convnet-search export"):
        write_export("npz", theirs, d)
    assert (theirs / "a.txt").read_text() == "x" and len(list(theirs.iterdir())) == 1
    (tmp_path / "empty").mkdir()
    write_export("npz", tmp_path / "empty", d)  # an empty folder is fine
    write_export("projector", tmp_path / "empty", d)  # an earlier export is replaced, whole
    assert not (tmp_path / "empty/embeddings.npz").exists()
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    with pytest.raises(ExportError, match="symbolic link"):
        check_export_target(tmp_path / "link")
    with pytest.raises(ExportError, match="not one of"):
        write_export("csv", tmp_path / "x", d)
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary folder left behind
