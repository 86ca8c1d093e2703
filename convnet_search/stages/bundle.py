"""Bundle stage: stage outputs -> the static data folder the frontend reads (docs/bundle.md)."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from ..search.browser_features import encode_for_browser
from ..io.datasets import Dataset
from ..io.labels import labels_fingerprint
from ..search.evaluate import SCORE_SCALE, SCORE_TOP, best_scored, score_scale, score_window
from ..search.metrics import metric_entry
from ..nets.pooling import POOLINGS, feature_key
from ..io.store import StoredArrays, atomic_path, dumps_json, fingerprint
from .thumbnails import manifest_entry, unpack
from ..io.workspace import BUNDLE_MARKER, check_bundle_target, marker_payload
from .base import STAGE_NAMES, Stage
from .outputs import PACK_LEVEL, BrowserSearch, DatasetResults, ThumbSheets
from .scores import SCORES_FORMAT
from . import curate

if TYPE_CHECKING:
    from .base import RunContext

BUNDLE_VERSION = 6  # 6: label fields (scores and summaries per field), guidance; 5: labels.bin + names pages; 4: thumbnails in sprite sheets; 3: pooling axis, score blocks
FINGERPRINT_FILE = ".bundle-fingerprint"

FILES = {
    "labels": "datasets/{dataset}/labels.bin",
    "names": "datasets/{dataset}/names/{page}.json",
    "thumb_sheet": "datasets/{dataset}/thumbs/{level}/{sheet}.jpg",
    "thumb_pack": "datasets/{dataset}/thumbs/{level}/{sheet}.jpgs",
    "field_labels": "datasets/{dataset}/fields/{field}.bin",
    "summary": "datasets/{dataset}/summary/{field}/{metric}.json",
    "scores": "datasets/{dataset}/scores/{field}/{metric}/{block}.u8",
    "guidance": "datasets/{dataset}/guidance/{metric}.json",
    "neighbors": "datasets/{dataset}/{model}/{layer}/{pooling}/{metric}.knn",
    "umap": "datasets/{dataset}/{model}/{layer}/{pooling}/umap.f32",
    "browser_features": "datasets/{dataset}/browser/{layer}/{pooling}.{encoding}",
}
# Transitional: one JPEG per image (the large level's packs, split) for code that still reads
# files.thumbnail, written only while every dataset has at most LEGACY_THUMBS_MAX images.
LEGACY_THUMBNAIL = "datasets/{dataset}/thumbs/{id}.jpg"
LEGACY_THUMBS_MAX = 5000
SCORES_BLOCK_BYTES = 4096
# File names per names page. A query shows 16 scattered images (itself and 15 results), each name
# costing its whole page: 32 names (≈ 1 KB of 30-character names) keep that ≤ 20 KB, and a gallery
# screen of ≈ 250 consecutive images needs 8 pages (docs/bundle.md "Labels and file names").
NAMES_PAGE = 32
# Channel atlas and feature visualizations (docs/bundle.md): in the manifest's `files` only when
# the bundle has them, so a bundle without them reads as before.
ATLAS_FILES = {
    "atlas_index": "datasets/{dataset}/{model}/{layer}/atlas/index.json",
    "atlas_rows": "datasets/{dataset}/{model}/{layer}/atlas/rows/{page}.bin",
    "atlas_maps": "datasets/{dataset}/{model}/{layer}/atlas/maps/{block}.bin",
}
# The atlas layout's revision. It changes without a BUNDLE_VERSION bump (the atlas is optional and
# its manifest keys tell layouts apart: format 1 had files.atlas_top, which today's explorer treats
# as "no atlas"), so it is part of the stored fingerprint: an older layout is rewritten, not kept.
ATLAS_FORMAT = 2
ATLAS_FORMAT_1 = "datasets/{dataset}/{model}/{layer}/atlas/top.bin"  # C×T ids in channel order
FEATVIZ_FILES = {"featviz": "featviz/{model}/{layer}.jpg"}
# The offline ranking by the user's judgements (--judgements; stages/judgements.py): listed only
# when some dataset has one.
JUDGEMENTS_FILES = {"judgements": "datasets/{dataset}/judgements.json"}


# Everything the writer puts into --out; a folder holding anything else is never replaced.
OWN_FILES = (*FILES.values(), *ATLAS_FILES.values(), *curate.BUNDLE_FILES.values(), *FEATVIZ_FILES.values(), *JUDGEMENTS_FILES.values(), LEGACY_THUMBNAIL, "manifest.json", FINGERPRINT_FILE, BUNDLE_MARKER, "tfjs/{model}/{file}",
             ATLAS_FORMAT_1,
             "datasets/{dataset}/summary.json",  # bundle format 1
             # bundle format ≤ 5: one label field (the class folders), no {field} part
             "datasets/{dataset}/summary/{metric}.json", "datasets/{dataset}/scores/{metric}/{block}.u8",
             "datasets/{dataset}/index.json",  # bundle format ≤ 4: every name and label in one JSON
             # bundle format 2 (no pooling axis, one scores file per metric): an upgrade rewrites it
             "datasets/{dataset}/scores/{metric}.u8", "datasets/{dataset}/{model}/{layer}/{metric}.knn",
             "datasets/{dataset}/{model}/{layer}/umap.f32", "datasets/{dataset}/browser/{layer}.f32",
             "datasets/{dataset}/browser/{layer}/{pooling}.f32")  # bundle format 3 before encodings


class BundleError(RuntimeError):
    pass


@dataclass
class BundleInputs:
    results: list[DatasetResults]
    models: list[str]
    metrics: list[str]
    minkowski_p: float
    k: int
    poolings: tuple[str, ...]
    browser: BrowserSearch | None = None
    # model id -> layer -> (JPEG grid in the work folder, channels in tile order, tile px): featviz.py
    featviz: dict[str, dict[str, tuple[Path, list[int], int]]] = field(default_factory=dict)
    dataset_docs: dict[str, dict[str, str]] = field(default_factory=dict)
    # (id, name) of the run's models still being computed: a bundle published after each model
    pending: list[tuple[str, str]] = field(default_factory=list)

    @property
    def legacy_thumbnails(self) -> bool:
        return all(len(r.dataset) <= LEGACY_THUMBS_MAX for r in self.results)

    def files(self) -> dict[str, str]:
        return {**FILES, "thumbnail": LEGACY_THUMBNAIL} if self.legacy_thumbnails else dict(FILES)


def _path(template: str, **kw: Any) -> str:
    return template.format(**kw)


def _write(root: Path, rel: str, data: bytes) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


def metric_entries(metrics: list[str], p: float) -> list[dict[str, Any]]:
    return [metric_entry(m, p) for m in metrics]


def _overall_weights(kinds: list[str]) -> str:
    kinds = sorted(set(kinds))
    return kinds[0] if len(kinds) == 1 else "mixed"


def _model_entries(inp: BundleInputs) -> list[dict[str, Any]]:
    first = inp.results[0].features
    entries = []
    for mid in inp.models:
        meta = first[mid].meta
        entries.append({
            "id": mid, "name": meta["name"], "params": meta["params"], "layer_count": meta["layer_count"],
            "input_size": meta["input_size"], "weights": meta["weights"],
            "layers": [{k: layer[k] for k in ("name", "index", "type", "output_shape", "dims",
                                              "params_cumulative", "depth")} for layer in meta["layers"]],
        })
    return entries


def best_configuration(inp: BundleInputs, res: DatasetResults) -> dict[str, Any] | None:
    """The dataset's best-scoring configuration among the models with trained weights (what the
    explorer opens on), scored against the dataset's first label field; None when every model is
    random or the dataset has no labels. Ties: first in model, layer, pooling, metric order. Scores
    rounded as in summary/<field>/<metric>.json, so the explorer's table agrees."""
    if not res.dataset.fields:
        return None
    fid = res.dataset.fields[0].id
    configs: list[dict[str, Any]] = []
    for mid in inp.models:
        meta = res.features[mid].meta
        if meta["weights"] == "random":
            continue
        means = _scores_of(res, mid).arrays
        for layer in meta["layers"]:
            for pooling in inp.poolings:
                for metric in inp.metrics:
                    score = round(float(means[f"{fid}/{feature_key(layer['name'], pooling)}/{metric}/means"][0]), 4)
                    configs.append({"model": mid, "layer": layer["name"], "pooling": pooling, "metric": metric,
                                    "search_score": score})
    best = best_scored([c["search_score"] for c in configs])
    return None if best is None else configs[best]


def _id_dtype(n: int) -> np.dtype:
    return np.dtype("<u2") if n <= 0xFFFF else np.dtype("<u4")


def knn_blob(ids: np.ndarray, dists: np.ndarray, k: int, n: int) -> bytes:
    """One .knn file: float32 distances [N, k], then ids [N, k] as the manifest's id_dtype."""
    id_dtype = _id_dtype(n)
    ids = np.asarray(ids)[:, :k]
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise BundleError(f"neighbour ids must lie in 0…{n - 1}")
    return (np.ascontiguousarray(np.asarray(dists)[:, :k], dtype="<f4").tobytes()
            + np.ascontiguousarray(ids).astype(id_dtype).tobytes())


def scores_block(n_poolings: int, n_configs: int) -> int:
    """Queries per scores file: one file stays ≤ SCORES_BLOCK_BYTES (the compare view fetches the
    block holding its query: a few KB whatever N is)."""
    return max(1, SCORES_BLOCK_BYTES // max(1, n_poolings * n_configs))


def _write_neighbors_and_scores(root: Path, inp: BundleInputs, res: DatasetResults) -> None:
    """.knn files, then per label field its per-query score blocks and per-metric summary, and the
    label-free guidance of every configuration (the scores were computed by the scores stage,
    scores.py: only laid out here; the guidance is search/guidance.py's, a few ms per matrix)."""
    ds, d = res.dataset, res.dataset.id
    n = len(ds)
    k, top = score_window(n, inp.k)  # a small folder stores (and scores) fewer than k results
    for metric in inp.metrics:
        keys = []  # [pooling][model][layer] -> (model, score key)
        for pooling in inp.poolings:
            per_pooling = []
            for mid in inp.models:
                per_model = []
                for layer in res.features[mid].meta["layers"]:
                    name = layer["name"]
                    key = f"{feature_key(name, pooling)}/{metric}"
                    ids, dists = res.neighbors[mid].arrays[f"{key}/ids"], res.neighbors[mid].arrays[f"{key}/dists"]
                    _write(root, _path(FILES["neighbors"], dataset=d, model=mid, layer=name, pooling=pooling,
                                       metric=metric), knn_blob(ids, dists, k, n))
                    per_model.append((mid, key))
                per_pooling.append(per_model)
            keys.append(per_pooling)
        _write_guidance(root, res, metric, keys, top)
        for fld in ds.fields:
            _write_field_scores(root, inp, res, fld.id, metric, keys)


def _write_field_scores(root: Path, inp: BundleInputs, res: DatasetResults, fid: str, metric: str,
                        keys: list[list[list[tuple[str, str]]]]) -> None:
    """One field's per-query score blocks ([N, pooling, config] uint8, 255: no value) and summary."""
    from .scores import MEANS

    d, n = res.dataset.id, len(res.dataset)
    block = scores_block(len(inp.poolings), sum(len(res.features[m].meta["layers"]) for m in inp.models))
    arrays = {mid: _scores_of(res, mid).arrays for mid in inp.models}
    numerators = np.stack([np.stack([np.asarray(arrays[mid][f"{fid}/{key}/numerators"], dtype=np.uint8)
                                     for per_model in per_pooling for mid, key in per_model])
                           for per_pooling in keys])
    by_query = np.ascontiguousarray(numerators.transpose(2, 0, 1))  # [N, pooling, config]
    for b, start in enumerate(range(0, n, block)):
        _write(root, _path(FILES["scores"], dataset=d, field=fid, metric=metric, block=b),
               by_query[start:start + block].tobytes())
    sums = {stat: [[[round(float(arrays[mid][f"{fid}/{key}/means"][i]), 4) for mid, key in per_model]
                    for per_model in per_pooling] for per_pooling in keys] for i, stat in enumerate(MEANS)}
    scored, skipped = _scores_of(res, inp.models[0]).meta["queries"][fid]
    # One small file per field and metric: the leaderboard needs only the current one's means.
    _write(root, _path(FILES["summary"], dataset=d, field=fid, metric=metric),
           dumps_json({"dataset": d, "field": fid, "metric": metric, "poolings": list(inp.poolings),
                       "queries": scored, "skipped": skipped, **sums}).encode())


def _write_guidance(root: Path, res: DatasetResults, metric: str, keys: list[list[list[tuple[str, str]]]],
                    top: int) -> None:
    """guidance/<metric>.json: hubness and agreement (overlap@top with every other configuration
    of this metric) per [pooling][model][layer] (search/guidance.py)."""
    from ..search.guidance import agreement, hubness

    flat = [(mid, key) for per_pooling in keys for per_model in per_pooling for mid, key in per_model]
    lists = [res.neighbors[mid].arrays[f"{key}/ids"] for mid, key in flat]
    agree = agreement(lists, top).tolist()
    hub = [hubness(ids, top) for ids in lists]
    it_h, it_a = iter(hub), iter(agree)
    shape = lambda it: [[[None if v != v else round(v, 4) for v in (next(it) for _ in per_model)]  # noqa: E731
                         for per_model in per_pooling] for per_pooling in keys]
    _write(root, _path(FILES["guidance"], dataset=res.dataset.id, metric=metric),
           dumps_json({"dataset": res.dataset.id, "metric": metric, "k": top, "hubness": shape(it_h),
                       "agreement": shape(it_a)}).encode())


def _scores_of(res: DatasetResults, model: str) -> StoredArrays:
    if model not in res.scores:
        raise BundleError(f"dataset {res.dataset.id!r} · {model}: no search scores (run the scores stage first)")
    return res.scores[model]


def _copy_thumbnails(root: Path, sheets: ThumbSheets, d: str, legacy: bool) -> None:
    """Copies the thumbnails stage's sheets and packs (no image is decoded here); with `legacy`,
    splits the packs into the transitional per-image files."""
    per = sheets.grid * sheets.grid
    for s in range(sheets.sheets):
        copies = [(sheets.sheet_path(lv.id, s), _path(FILES["thumb_sheet"], dataset=d, level=lv.id, sheet=s))
                  for lv in sheets.levels]
        copies.append((sheets.pack_path(s), _path(FILES["thumb_pack"], dataset=d, level=PACK_LEVEL, sheet=s)))
        for src, rel in copies:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, root / rel)
        if legacy:
            for pos, data in enumerate(unpack(sheets.pack_path(s).read_bytes())):
                _write(root, _path(LEGACY_THUMBNAIL, dataset=d, id=s * per + pos), data)


def label_dtype(classes: int) -> np.dtype:
    """The narrowest unsigned little-endian integer holding every class index 0 … classes − 1."""
    return np.dtype("<u1") if classes <= 0x100 else np.dtype("<u2") if classes <= 0x10000 else np.dtype("<u4")


def names_pages(files: list[str], page: int = NAMES_PAGE) -> list[list[str]]:
    """File names in pages of `page` (the last one shorter); none for an empty dataset."""
    return [files[lo:lo + page] for lo in range(0, len(files), page)]


def _write_index(root: Path, ds: Dataset) -> None:
    """labels.bin (one class index per image, label_dtype) and the names pages (docs/bundle.md)."""
    labels = np.asarray(ds.labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= len(ds.classes)):
        raise BundleError(f"dataset {ds.id!r}: labels must lie in 0…{len(ds.classes) - 1}")
    _write(root, _path(FILES["labels"], dataset=ds.id), labels.astype(label_dtype(len(ds.classes))).tobytes())
    for fld in ds.fields:  # value v + 1 per image, 0: no value in this field
        codes = np.asarray(fld.codes, dtype=np.int64) + 1
        _write(root, _path(FILES["field_labels"], dataset=ds.id, field=fld.id),
               codes.astype(label_dtype(len(fld.values) + 1)).tobytes())
    for p, names in enumerate(names_pages(list(ds.files))):
        _write(root, _path(FILES["names"], dataset=ds.id, page=p), dumps_json(names).encode())


def read_index(root: Path, manifest: dict[str, Any], dataset: str) -> tuple[list[str], np.ndarray]:
    """A bundle's (file names, labels) of one dataset, read back as docs/bundle.md describes them."""
    d = next(x for x in manifest["datasets"] if x["id"] == dataset)
    f = manifest["files"]
    labels = np.frombuffer((Path(root) / f["labels"].format(dataset=dataset)).read_bytes(), dtype=np.dtype(d["label_dtype"]).newbyteorder("<"))
    names: list[str] = []
    for p in range(-(-d["size"] // d["names_page"])):
        names += json.loads((Path(root) / f["names"].format(dataset=dataset, page=p)).read_text(encoding="utf-8"))
    return names, labels


def _write_dataset(root: Path, inp: BundleInputs, res: DatasetResults) -> None:
    ds = res.dataset
    d = ds.id
    _write_index(root, ds)
    if res.thumbs is None:
        raise BundleError(f"dataset {d!r}: no thumbnail sheets (run the thumbnails stage first)")
    _copy_thumbnails(root, res.thumbs, d, inp.legacy_thumbnails)
    _write_neighbors_and_scores(root, inp, res)
    _write_atlas(root, res, _id_dtype(len(ds)))
    for rel, data in curate.bundle_files(res, inp.models, inp.metrics).items():
        _write(root, rel, data)
    for mid in inp.models:
        for layer in res.features[mid].meta["layers"]:
            for pooling in inp.poolings:
                xy = res.umap[mid].arrays[feature_key(layer["name"], pooling)]
                _write(root, _path(FILES["umap"], dataset=d, model=mid, layer=layer["name"], pooling=pooling),
                       np.ascontiguousarray(xy, dtype="<f4").tobytes())


def previous_browser_entries(out: Path, inp: BundleInputs) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The browser-features entries of the bundle being replaced, by (dataset, layer, pooling),
    when it was made for the same browser model and metrics (their recall may be carried over:
    browser_features.REMEASURE_FRACTION); {} when there is none or it cannot be read."""
    try:
        old = json.loads((Path(out) / "manifest.json").read_text(encoding="utf-8"))
        search = old.get("browser_search") or {}
        if inp.browser is None or search.get("model") != inp.browser.model:
            return {}
        if old.get("metrics") != json.loads(dumps_json(metric_entries(inp.metrics, inp.minkowski_p))):
            return {}
        return {(e["dataset"], e["layer"], e["pooling"]): e for e in search.get("features", [])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def write_browser_features(root: Path, inp: BundleInputs, res: DatasetResults,
                           previous: dict[tuple[str, str, str], dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The browser model's features of one dataset, one file per (layer, pooling), each in the least
    lossy encoding that keeps model + file within the budget (browser_features.py); returns their
    manifest entries with the recall@15 each encoding measured against float32 exact search
    (carried over from `previous` entries after a small growth)."""
    b, d = inp.browser, res.dataset.id
    feats = res.features[b.model].arrays
    budget = b.budget_bytes - int(b.info["model_bytes"])
    entries = []
    for layer in b.layers:
        for pooling in inp.poolings:
            data, entry = encode_for_browser(feats[feature_key(layer, pooling)], budget, list(inp.metrics),
                                             inp.minkowski_p, previous=(previous or {}).get((d, layer, pooling)))
            _write(root, _path(FILES["browser_features"], dataset=d, layer=layer, pooling=pooling,
                               encoding=entry["encoding"]), data)
            entries.append({"dataset": d, "layer": layer, "pooling": pooling, **entry})
    return entries


def minkowski_recall_entry(res: DatasetResults, models: list[str]) -> dict[str, Any] | None:
    """null when every minkowski top-k of the dataset is exact; else the measured recall@15 of the
    candidates + exact re-rank path (neighbors._minkowski_all_rows), worst over its matrices."""
    how = [h for m in models if m in res.neighbors
           for h in (res.neighbors[m].meta.get("minkowski") or {}).values()
           if h.get("method") == "candidates"]
    if not how:
        return None
    return {"recall_at_15": min(h["recall_at_15"] for h in how),
            "min_row_recall": min(h["min_row_recall"] for h in how),
            "sampled_rows": min(h["sampled_rows"] for h in how),
            "candidates": max(h["candidates"] for h in how), "matrices": len(how)}


def _atlas_models(res: DatasetResults) -> list[str]:
    return [m for m, f in res.features.items() if f.meta.get("atlas")]


def _write_atlas(root: Path, res: DatasetResults, id_dtype: np.dtype) -> None:
    """Channel atlas files of every (model, layer) of one dataset whose features have one: every
    file in selectivity order (rank r = the r-th most selective channel), so the explorer's first
    screen is index.json and rows/0.bin alone (docs/bundle.md "Channel atlas")."""
    from ..search.atlas import BLOCK, ROWS_PAGE, quantize_maps, selectivity_order, stored_atlas

    d = res.dataset.id
    for mid in _atlas_models(res):
        feats = res.features[mid]
        for layer in feats.meta["layers"]:
            kw = dict(dataset=d, model=mid, layer=layer["name"])
            atlas, var = stored_atlas(feats.arrays, layer["name"])
            c, t, h, w = atlas.maps.shape
            order = selectivity_order(var)
            _write(root, _path(ATLAS_FILES["atlas_index"], **kw), dumps_json({
                "channels": c, "top": t, "map_size": [h, w], "block": BLOCK, "page": ROWS_PAGE}).encode())
            for p, lo in enumerate(range(0, c, ROWS_PAGE)):
                ranks = order[lo:lo + ROWS_PAGE]
                _write(root, _path(ATLAS_FILES["atlas_rows"], page=p, **kw),
                       var[ranks].astype("<f4").tobytes() + ranks.astype("<u4").tobytes()
                       + np.ascontiguousarray(atlas.ids[ranks].astype(id_dtype)).tobytes())
            q, scale = quantize_maps(atlas.maps)
            for b, lo in enumerate(range(0, c, BLOCK)):
                ranks = order[lo:lo + BLOCK]
                _write(root, _path(ATLAS_FILES["atlas_maps"], block=b, **kw),
                       atlas.values[ranks].astype("<f4").tobytes() + scale[ranks].astype("<f4").tobytes()
                       + np.ascontiguousarray(q[ranks]).tobytes())


def _atlas_manifest(manifest: dict[str, Any], inp: BundleInputs) -> None:
    """Add the optional atlas / featviz keys (docs/bundle.md) to a manifest, in place."""
    any_atlas = False
    for entry, res in zip(manifest["datasets"], inp.results):
        if models := [m for m in inp.models if m in _atlas_models(res)]:
            entry["atlas"], any_atlas = models, True
    for model in manifest["models"]:
        for layer in model["layers"]:
            if viz := inp.featviz.get(model["id"], {}).get(layer["name"]):
                layer["featviz"] = {"channels": list(viz[1]), "tile": viz[2]}
    manifest["files"] = {**manifest["files"], **(ATLAS_FILES if any_atlas else {}),
                         **(FEATVIZ_FILES if inp.featviz else {})}


def _field_entry(res: DatasetResults, fld: Any) -> dict[str, Any]:
    """A label field's manifest entry: its values, the dtype of fields/<id>.bin (value + 1, 0 = no
    value) and how many queries its scores rest on (scored) or skip (no value)."""
    scored = fld.labelled  # every image is a query: those with a value are scored, the rest skipped
    return {"id": fld.id, "name": fld.name, "values": list(fld.values),
            "dtype": str(label_dtype(len(fld.values) + 1).name), "labelled": fld.labelled,
            "queries": scored, "skipped": len(res.dataset) - scored}


def build_manifest(inp: BundleInputs) -> dict[str, Any]:
    models = _model_entries(inp)
    weights = _overall_weights([m["weights"] for m in models])
    details = sorted({r.features[m].meta["weights_detail"] for r in inp.results for m in inp.models})
    datasets = []
    for res in inp.results:
        ds = res.dataset
        k, top = score_window(len(ds), inp.k)
        datasets.append({
            "id": ds.id, "name": ds.name, "description": ds.description, "source": ds.source,
            "classes": list(ds.classes), "size": len(ds), "id_dtype": str(_id_dtype(len(ds)).name),
            "label_dtype": str(label_dtype(len(ds.classes)).name), "names_page": NAMES_PAGE,
            "k": k, "score": {"top": top, "scale": score_scale(top)},
            "scores_block": scores_block(len(inp.poolings), sum(len(m["layers"]) for m in models)),
            "skipped": [{"file": s.file, "reason": s.reason} for s in ds.skipped],
            "notes": list(ds.notes),  # caveats, e.g. one class only (every score would be 1.0)
            # io/labels.py: how labels were read; what `classes` groups by; the label fields
            "labels": ds.labels_mode, "groups": "class folders" if ds.labels_mode == "folders" else "top folders",
            "fields": [_field_entry(res, f) for f in ds.fields],
            "minkowski_recall": minkowski_recall_entry(res, inp.models),
            "best": best_configuration(inp, res),
            **({"curate_fields": list(res.curate[curate.LABELS_FILE].meta["fields"])} if res.curate else {}),
            "judgements": _judgements_entry(res),
        })
    browser = None
    if inp.browser is not None:
        b = inp.browser
        meta = inp.results[0].features[b.model].meta
        browser = {
            "model": b.model, "model_url": f"tfjs/{b.model}/model.json",
            "model_bytes": int(b.info["model_bytes"]), "model_sha256": b.info["model_sha256"],
            "quantization": b.info["quantization"],
            "input_size": meta["input_size"], "preprocess": b.info["preprocess"],
            "outputs": b.info["outputs"], "spatial_outputs": b.info["spatial_outputs"],
            "default_layer": b.default_layer,
            "datasets": [r.dataset.id for r in inp.results],
            "features_budget_bytes": b.budget_bytes,
            "features": [],  # filled by write_browser_features
        }
    manifest = {
        "bundle_version": BUNDLE_VERSION, "generator": f"convnet-search {__version__}",
        "weights": weights, "weights_detail": "; ".join(details), "k": inp.k,
        "poolings": [{"id": p, "label": POOLINGS[p].label, "description": POOLINGS[p].description}
                     for p in inp.poolings],
        "score": {"top": SCORE_TOP, "scale": SCORE_SCALE},
        "metrics": metric_entries(inp.metrics, inp.minkowski_p),
        "datasets": datasets, "models": models, "files": inp.files(), "thumbnails": manifest_entry(),
        "browser_search": browser,
    }
    if inp.pending:  # only in a bundle published before the run's last model: a complete one has none
        manifest["pending_models"] = [{"id": mid, "name": name} for mid, name in inp.pending]
    _atlas_manifest(manifest, inp)
    if all(r.curate for r in inp.results):  # optional, like the atlas: only bundles that have it list it
        manifest["files"].update(curate.BUNDLE_FILES)
    if any(r.judgements for r in inp.results):
        manifest["files"] = {**manifest["files"], **JUDGEMENTS_FILES}
    return manifest


def published_models(out: Path) -> tuple[str, ...]:
    """Ids of the models the bundle in `out` lists as ready, in order; () without a readable bundle.
    The run publishes after each model and skips the steps this bundle already shows."""
    try:
        manifest = json.loads((Path(out) / "manifest.json").read_text(encoding="utf-8"))
        if not (Path(out) / BUNDLE_MARKER).exists():
            return ()
        return tuple(m["id"] for m in manifest["models"])
    except (OSError, ValueError, KeyError, TypeError):
        return ()


def _judgements_entry(res: DatasetResults) -> dict[str, Any] | None:
    """What the explorer shows before fetching the ranking file (docs/bundle.md)."""
    j = res.judgements
    if not j:
        return None
    return {key: j[key] for key in ("source", "configurations", "judgements", "judged_queries", "scored_queries")}


def check_replaceable(out: Path) -> None:
    """Raise workspace.WorkspaceError unless `out` is missing, empty or a bundle of ours (see there)."""
    check_bundle_target(Path(out), OWN_FILES)


def _stored_fingerprint(fp: str) -> str:
    """What FINGERPRINT_FILE holds: the inputs' fingerprint and the writer's ATLAS_FORMAT."""
    return f"{fp}+atlas{ATLAS_FORMAT}"


def bundle_is_current(out: Path, fp: str) -> bool:
    # A bundle without the marker (written before markers) is rewritten once to get one.
    f = Path(out) / FINGERPRINT_FILE
    return (f.exists() and f.read_text().strip() == _stored_fingerprint(fp) and (Path(out) / "manifest.json").exists()
            and (Path(out) / BUNDLE_MARKER).exists())


def write_bundle(out: Path, inp: BundleInputs, fp: str) -> dict[str, Any]:
    """Write the whole bundle into a temp folder, then swap it into place."""
    out = Path(out)
    check_replaceable(out)
    manifest = build_manifest(inp)
    previous = previous_browser_entries(out, inp) if inp.browser else {}
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        # The marker first: a killed run's leftover is then known as ours, and the next run removes it.
        _write(tmp, BUNDLE_MARKER, dumps_json(marker_payload("bundle")).encode())
        for res in inp.results:
            _write_dataset(tmp, inp, res)
            if res.judgements:
                _write(tmp, _path(JUDGEMENTS_FILES["judgements"], dataset=res.dataset.id), dumps_json(res.judgements).encode())
            if inp.browser is not None:
                manifest["browser_search"]["features"] += write_browser_features(tmp, inp, res, previous)
        if inp.browser is not None:
            shutil.copytree(inp.browser.export_dir, tmp / "tfjs" / inp.browser.model)
        for mid, layers in inp.featviz.items():
            for layer, (jpg, _, _) in layers.items():
                _write(tmp, _path(FEATVIZ_FILES["featviz"], model=mid, layer=layer), Path(jpg).read_bytes())
        _write(tmp, "manifest.json", dumps_json(manifest).encode())
        _write(tmp, FINGERPRINT_FILE, _stored_fingerprint(fp).encode())
    return manifest


def bundle_fingerprint(ctx: RunContext) -> str:
    cfg, results, datasets = ctx.cfg, ctx.results, [r.dataset for r in ctx.results]
    per_model = [(r, m) for r, m in ctx.items()]
    browser, featviz = ctx.browser, ctx.featviz
    # BUNDLE_VERSION is part of it: a bundle written in an older format is rewritten, not kept.
    # The scores are a function of the neighbours, k and the labels (all below); their format joins
    # once it moves past 1, so bundles written before the scores stage existed stay current.
    return fingerprint("bundle", BUNDLE_VERSION,
                       [r.features[m].meta["fingerprint"] for r, m in per_model],
                       [r.neighbors[m].meta["fingerprint"] for r, m in per_model],
                       [r.umap[m].meta["fingerprint"] for r, m in per_model],
                       str(browser.export_dir) if browser else None, cfg.browser_budget_mb, cfg.k, cfg.metrics,
                       [r.thumbs.folder.name for r in results if r.thumbs],  # name = dataset + thumbs fingerprint
                       cfg.minkowski_p, [ctx.ds_fps[d.id] for d in datasets],
                       [(d.name, d.description, d.source) for d in datasets],
                       [labels_fingerprint(d.labels_mode, d.fields) for d in datasets],
                       # what the manifest lists: system junk is skipped and listed but not in
                       # the dataset fingerprint (it must not force a re-extraction)
                       [([(x.file, x.reason) for x in d.skipped], d.notes) for d in datasets],
                       *([sorted((m, r.fingerprint) for m, r in featviz.items())] if featviz else []),
                       *([("scores", SCORES_FORMAT)] if SCORES_FORMAT > 1 else []),
                       # a bundle published before the last model says which are still coming
                       *([("pending", list(ctx.pending))] if ctx.pending else []),
                       # curated lists: a function of the neighbours and labels (above) and of their format
                       *([curate.FILES_FORMAT, sorted((r.dataset.id, m, c.meta["fingerprint"]) for r in results
                                                      for m, c in r.curate.items())]
                         if any(r.curate for r in results) else []),
                       # only when given, so bundles written without judgements stay current
                       *([[r.judgements for r in results]] if any(r.judgements for r in results) else []))


def run(ctx: RunContext) -> None:
    """Only serializes the stored outputs (bundle.py); `--force --only bundle` rewrites a current one."""
    cfg, fp = ctx.cfg, bundle_fingerprint(ctx)
    if bundle_is_current(cfg.out, fp) and not (ctx.force and ctx.only == "bundle"):
        ctx.report.bundle_status = "up to date"
        return
    write_bundle(cfg.out, BundleInputs(ctx.results, list(cfg.models), list(cfg.metrics), cfg.minkowski_p,
                                       cfg.k, cfg.pooling, ctx.browser,
                                       featviz={m: r.layers for m, r in ctx.featviz.items()},
                                       pending=list(ctx.pending)), fp)
    ctx.report.bundle_status = "written"


def _cannot_load(ctx: RunContext) -> None:
    raise AssertionError("no stage reads the bundle")


STAGE = Stage("bundle", run, _cannot_load, STAGE_NAMES[:-1])
