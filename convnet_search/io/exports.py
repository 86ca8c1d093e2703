"""Export folders other tools open: TensorBoard's Embedding Projector, parquet, npz + JSON.

An export is one folder written in a temporary folder beside `dest` and swapped in (store.atomic_path),
so a killed export leaves the previous one or none. It carries its own marker
(`.convnet-search-export`) and, like `--out`, an existing `dest` is replaced only when it is empty
or holds that marker and nothing but the files an export writes (io/workspace.py's rules): an
export can never replace a folder of someone's files.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .store import atomic_path, dumps_json
from .workspace import (PROBE_PREFIX, WorkspaceError, _first_few, _walk, foreign_entries, marker_payload,
                        read_marker, templates_to_regex)

EXPORT_MARKER = ".convnet-search-export"
FORMATS = ("projector", "parquet", "npz")
# What each format writes (the marker aside): the only names an export folder may hold.
FILES = {
    "projector": ("tensors.tsv", "metadata.tsv", "sprite.png", "projector_config.pbtxt"),
    "parquet": ("embeddings.parquet",),
    "npz": ("embeddings.npz", "embeddings.json"),
}
SPRITE_MAX_PX = 8192  # the Embedding Projector's limit on a sprite image's side
SPRITE_CELL_MAX = 64


class ExportError(WorkspaceError):
    """The export cannot be written there (a foreign folder, a file, a bad format)."""


@dataclass(frozen=True)
class ExportData:
    """What every format holds: one row per image of one configuration."""
    paths: list[str]  # relative to `root`, image id order
    labels: dict[str, list[str]]  # label field -> one value per image
    embeddings: np.ndarray  # float32 [N, D]
    config: dict[str, Any]  # dataset, model, layer, pooling, metric, weights...
    root: Path | None = None  # where the images are (projector sprite); None: grey cells
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # npz only: neighbours, map...


def check_export_target(dest: Path) -> None:
    """Refuse a `dest` an export may not replace (the marker rules of `--out`)."""
    dest = Path(dest)
    if dest.is_symlink():
        raise ExportError(f"--dest {dest}: is a symbolic link; give the real folder's path")
    if dest.exists() and not dest.is_dir():
        raise ExportError(f"--dest {dest}: exists and is not a folder; choose a new folder path")
    if not dest.exists() or not any(dest.iterdir()):
        return
    if read_marker(dest, EXPORT_MARKER, "export") is None:
        raise ExportError(f"--dest {dest}: refusing to replace a non-empty folder that is not a "
                          f"convnet-search export (no {EXPORT_MARKER} marker); choose another --dest")
    own = templates_to_regex([EXPORT_MARKER, PROBE_PREFIX + "{x}", *(f for fs in FILES.values() for f in fs)])
    foreign = foreign_entries(_walk(dest), *own)
    if foreign:
        raise ExportError(f"--dest {dest}: refusing to replace an export folder holding files "
                          f"convnet-search did not write ({_first_few(foreign)}); move them away or "
                          "choose another --dest")


def write_export(fmt: str, dest: Path, data: ExportData) -> list[Path]:
    """Write `data` as `fmt` into `dest` (atomically, after check_export_target); returns the files."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: not one of {', '.join(FORMATS)}")
    n = len(data.paths)
    if data.embeddings.ndim != 2 or data.embeddings.shape[0] != n:
        raise ValueError(f"embeddings must be [N={n}, D], got {data.embeddings.shape}")
    dest = Path(dest)
    check_export_target(dest)
    with atomic_path(dest) as tmp:
        tmp.mkdir()
        {"projector": _projector, "parquet": _parquet, "npz": _npz}[fmt](tmp, data)
        payload = {**marker_payload("export"), "export_format": fmt, "config": data.config, "images": n}
        (tmp / EXPORT_MARKER).write_text(dumps_json(payload), encoding="utf-8")
    return [dest / f for f in FILES[fmt] if (dest / f).exists()]


def _tsv_cell(value: str) -> str:
    """A TSV field: tabs and newlines would shift columns; the projector reads no quoting."""
    return str(value).replace("\t", " ").replace("\r", " ").replace("\n", " ")


def _projector(tmp: Path, data: ExportData) -> None:
    fields = list(data.labels)
    with open(tmp / "tensors.tsv", "w", encoding="utf-8") as f:
        for row in data.embeddings:
            f.write("\t".join(repr(float(x)) for x in row) + "\n")
    with open(tmp / "metadata.tsv", "w", encoding="utf-8") as f:
        # A header row is how the projector tells a one-column file from a multi-column one.
        f.write("\t".join(["path", *fields]) + "\n")
        for i, path in enumerate(data.paths):
            f.write("\t".join(_tsv_cell(v) for v in [path, *(data.labels[k][i] for k in fields)]) + "\n")
    cell = _write_sprite(tmp / "sprite.png", data.paths, data.root)
    name = f"{data.config.get('model')}/{data.config.get('layer')}/{data.config.get('pooling')}"
    (tmp / "projector_config.pbtxt").write_text(
        "embeddings {\n"
        f"  tensor_name: {json.dumps(name)}\n"
        '  tensor_path: "tensors.tsv"\n'
        '  metadata_path: "metadata.tsv"\n'
        "  sprite {\n"
        '    image_path: "sprite.png"\n'
        f"    single_image_dim: {cell}\n"
        f"    single_image_dim: {cell}\n"
        "  }\n"
        "}\n", encoding="utf-8")


def sprite_cell(n: int) -> int:
    """Cell side so that a square grid of n cells fits the projector's sprite limit."""
    per_side = max(1, math.ceil(math.sqrt(n)))
    return max(1, min(SPRITE_CELL_MAX, SPRITE_MAX_PX // per_side))


def _write_sprite(path: Path, paths: list[str], root: Path | None) -> int:
    """One square PNG grid of thumbnails in id order (row-major), as the projector expects. An image
    that cannot be read any more (moved, deleted) is a grey cell: the export still opens."""
    from PIL import Image

    from .images import ImageError, load_rgb

    cell = sprite_cell(len(paths))
    per_side = max(1, math.ceil(math.sqrt(len(paths))))
    sheet = Image.new("RGB", (per_side * cell, per_side * cell), (238, 238, 238))
    for i, rel in enumerate(paths):
        if root is None:
            continue
        try:
            rgb = load_rgb(root / rel)
        except ImageError:
            continue
        im = Image.fromarray(rgb)
        im.thumbnail((cell, cell), Image.Resampling.BILINEAR)
        r, c = divmod(i, per_side)
        sheet.paste(im, (c * cell + (cell - im.width) // 2, r * cell + (cell - im.height) // 2))
    sheet.save(path, format="PNG")
    return cell


def _parquet(tmp: Path, data: ExportData) -> None:
    """One row per image: id, path, each label field, embedding (fixed-size list of float32)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    emb = np.ascontiguousarray(data.embeddings, dtype=np.float32)
    n, dim = emb.shape
    columns = {"id": pa.array(np.arange(n, dtype=np.int64)), "path": pa.array(data.paths, pa.string())}
    columns.update({k: pa.array(v, pa.string()) for k, v in data.labels.items()})
    columns["embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), dim)
    table = pa.table(columns).replace_schema_metadata({"convnet_search": dumps_json(data.config)})
    pq.write_table(table, tmp / "embeddings.parquet")


def _npz(tmp: Path, data: ExportData) -> None:
    """embeddings.npz (numeric arrays only: no pickle needed to read it) + embeddings.json (what
    each array is, the paths and label fields)."""
    arrays = {"embeddings": np.ascontiguousarray(data.embeddings, dtype=np.float32), **data.extras}
    with open(tmp / "embeddings.npz", "wb") as f:
        np.savez(f, **arrays)
    sidecar = {"config": data.config, "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)}
                                                 for k, v in arrays.items()},
               "paths": data.paths, "labels": data.labels}
    (tmp / "embeddings.json").write_text(dumps_json(sidecar), encoding="utf-8")
