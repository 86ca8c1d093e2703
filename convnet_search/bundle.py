"""Bundle stage: stage outputs -> the static data folder the frontend reads (docs/bundle.md)."""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .browser_features import DOWNLOAD_BUDGET_MB, encode_for_browser
from .datasets import Dataset
from .evaluate import SCORE_SCALE, SCORE_TOP, score_scale, score_window, search_score_numerators, summarize
from .images import load_rgb, thumbnail_jpeg
from .neighbors import METRICS
from .pooling import POOLINGS, feature_key
from .store import StoredArrays, atomic_path, dumps_json
from .workspace import BUNDLE_MARKER, check_bundle_target, marker_payload

BUNDLE_VERSION = 3  # 3: pooling axis, per-query score blocks, per-dataset k and score window
FINGERPRINT_FILE = ".bundle-fingerprint"

FILES = {
    "index": "datasets/{dataset}/index.json",
    "thumbnail": "datasets/{dataset}/thumbs/{id}.jpg",
    "summary": "datasets/{dataset}/summary/{metric}.json",
    "scores": "datasets/{dataset}/scores/{metric}/{block}.u8",
    "neighbors": "datasets/{dataset}/{model}/{layer}/{pooling}/{metric}.knn",
    "umap": "datasets/{dataset}/{model}/{layer}/{pooling}/umap.f32",
    "browser_features": "datasets/{dataset}/browser/{layer}/{pooling}.{encoding}",
}
SCORES_BLOCK_BYTES = 4096


# Everything the writer puts into --out; a folder holding anything else is never replaced.
OWN_FILES = (*FILES.values(), "manifest.json", FINGERPRINT_FILE, BUNDLE_MARKER, "tfjs/{model}/{file}",
             "datasets/{dataset}/summary.json",  # bundle format 1
             # bundle format 2 (no pooling axis, one scores file per metric): an upgrade rewrites it
             "datasets/{dataset}/scores/{metric}.u8", "datasets/{dataset}/{model}/{layer}/{metric}.knn",
             "datasets/{dataset}/{model}/{layer}/umap.f32", "datasets/{dataset}/browser/{layer}.f32",
             "datasets/{dataset}/browser/{layer}/{pooling}.f32")  # bundle format 3 before encodings


class BundleError(RuntimeError):
    pass


@dataclass
class DatasetResults:
    """Everything computed for one dataset, as read back from the stage stores."""
    dataset: Dataset
    features: dict[str, StoredArrays]  # model id -> features (meta has layer infos, weights)
    neighbors: dict[str, StoredArrays]  # model id -> "<layer>/<metric>/ids|dists"
    umap: dict[str, StoredArrays]  # model id -> layer -> [N, 2]


@dataclass
class BrowserSearch:
    model: str
    export_dir: Path  # folder with model.json + shards
    info: dict[str, Any]  # model_bytes, quantization, outputs
    layers: list[str]
    default_layer: str
    # Download budget of a private search (model + one features file); features are compressed to fit.
    budget_bytes: int = int(DOWNLOAD_BUDGET_MB * 1e6)


@dataclass
class BundleInputs:
    results: list[DatasetResults]
    models: list[str]
    metrics: list[str]
    minkowski_p: float
    k: int
    poolings: tuple[str, ...]
    browser: BrowserSearch | None = None
    dataset_docs: dict[str, dict[str, str]] = field(default_factory=dict)


def _path(template: str, **kw: Any) -> str:
    return template.format(**kw)


def _write(root: Path, rel: str, data: bytes) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


def metric_entries(metrics: list[str], p: float) -> list[dict[str, Any]]:
    out = []
    for m in metrics:
        spec = METRICS[m]
        label = f"{spec.label} (p={p:g})" if m == "minkowski" else spec.label
        out.append({"id": m, "label": label, "p": float(p) if m == "minkowski" else None,
                    "description": spec.description})
    return out


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


def _id_dtype(n: int) -> np.dtype:
    return np.dtype("<u2") if n <= 0xFFFF else np.dtype("<u4")


def scores_block(n_poolings: int, n_configs: int) -> int:
    """Queries per scores file: one file stays ≤ SCORES_BLOCK_BYTES (the compare view fetches the
    block holding its query: a few KB whatever N is)."""
    return max(1, SCORES_BLOCK_BYTES // max(1, n_poolings * n_configs))


def _write_neighbors_and_scores(root: Path, inp: BundleInputs, res: DatasetResults) -> None:
    """.knn files, per-query score blocks and the per-metric summary of one dataset."""
    ds, d = res.dataset, res.dataset.id
    n, labels, id_dtype = len(ds), np.asarray(ds.labels), _id_dtype(len(ds))
    k, top = score_window(n, inp.k)  # a small folder stores (and scores) fewer than k results
    block = scores_block(len(inp.poolings), sum(len(res.features[m].meta["layers"]) for m in inp.models))
    for metric in inp.metrics:
        numerators = []  # [pooling][config] -> uint8 [N]
        sums: dict[str, list] = {"search_score": [], "precision_at_k": [], "map_at_k": []}
        for pooling in inp.poolings:
            per_pooling = {key: [] for key in sums}
            row_scores = []
            for mid in inp.models:
                per_model = {key: [] for key in sums}
                for layer in res.features[mid].meta["layers"]:
                    name = layer["name"]
                    key = f"{feature_key(name, pooling)}/{metric}"
                    ids, dists = res.neighbors[mid].arrays[f"{key}/ids"], res.neighbors[mid].arrays[f"{key}/dists"]
                    blob = (np.ascontiguousarray(dists[:, :k], dtype="<f4").tobytes()
                            + np.ascontiguousarray(ids[:, :k]).astype(id_dtype).tobytes())
                    _write(root, _path(FILES["neighbors"], dataset=d, model=mid, layer=name, pooling=pooling,
                                       metric=metric), blob)
                    row_scores.append(search_score_numerators(ids, labels, top).astype(np.uint8))
                    q = summarize(ids[:, :k], labels, k, top)
                    for stat, value in (("search_score", q.search_score), ("precision_at_k", q.precision_at_k),
                                        ("map_at_k", q.map_at_k)):
                        per_model[stat].append(round(value, 4))
                for stat in sums:
                    per_pooling[stat].append(per_model[stat])
            numerators.append(np.stack(row_scores))
            for stat in sums:
                sums[stat].append(per_pooling[stat])
        by_query = np.ascontiguousarray(np.stack(numerators).transpose(2, 0, 1))  # [N, pooling, config]
        for b, start in enumerate(range(0, n, block)):
            _write(root, _path(FILES["scores"], dataset=d, metric=metric, block=b),
                   by_query[start:start + block].tobytes())
        # One small file per metric: the leaderboard needs only the current metric's means.
        _write(root, _path(FILES["summary"], dataset=d, metric=metric),
               dumps_json({"dataset": d, "metric": metric, "poolings": list(inp.poolings), **sums}).encode())


def _write_dataset(root: Path, inp: BundleInputs, res: DatasetResults) -> None:
    ds = res.dataset
    d = ds.id
    _write(root, _path(FILES["index"], dataset=d), dumps_json(
        {"dataset": d, "size": len(ds), "files": list(ds.files), "labels": [int(x) for x in ds.labels]}).encode())
    for i in range(len(ds)):
        _write(root, _path(FILES["thumbnail"], dataset=d, id=i), thumbnail_jpeg(load_rgb(ds.path(i))))
    _write_neighbors_and_scores(root, inp, res)
    for mid in inp.models:
        for layer in res.features[mid].meta["layers"]:
            for pooling in inp.poolings:
                xy = res.umap[mid].arrays[feature_key(layer["name"], pooling)]
                _write(root, _path(FILES["umap"], dataset=d, model=mid, layer=layer["name"], pooling=pooling),
                       np.ascontiguousarray(xy, dtype="<f4").tobytes())


def write_browser_features(root: Path, inp: BundleInputs, res: DatasetResults) -> list[dict[str, Any]]:
    """The browser model's features of one dataset, one file per (layer, pooling), each in the least
    lossy encoding that keeps model + file within the budget (browser_features.py); returns their
    manifest entries with the recall@15 each encoding measured against float32 exact search."""
    b, d = inp.browser, res.dataset.id
    feats = res.features[b.model].arrays
    budget = b.budget_bytes - int(b.info["model_bytes"])
    entries = []
    for layer in b.layers:
        for pooling in inp.poolings:
            data, entry = encode_for_browser(feats[feature_key(layer, pooling)], budget, list(inp.metrics),
                                             inp.minkowski_p)
            _write(root, _path(FILES["browser_features"], dataset=d, layer=layer, pooling=pooling,
                               encoding=entry["encoding"]), data)
            entries.append({"dataset": d, "layer": layer, "pooling": pooling, **entry})
    return entries


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
            "k": k, "score": {"top": top, "scale": score_scale(top)},
            "scores_block": scores_block(len(inp.poolings), sum(len(m["layers"]) for m in models)),
            "skipped": [{"file": s.file, "reason": s.reason} for s in ds.skipped],
            "notes": list(ds.notes),  # caveats, e.g. one class only (every score would be 1.0)
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
            "outputs": b.info["outputs"], "default_layer": b.default_layer,
            "datasets": [r.dataset.id for r in inp.results],
            "features_budget_bytes": b.budget_bytes,
            "features": [],  # filled by write_browser_features
        }
    return {
        "bundle_version": BUNDLE_VERSION, "generator": f"convnet-search {__version__}",
        "weights": weights, "weights_detail": "; ".join(details), "k": inp.k,
        "poolings": [{"id": p, "label": POOLINGS[p].label, "description": POOLINGS[p].description}
                     for p in inp.poolings],
        "score": {"top": SCORE_TOP, "scale": SCORE_SCALE},
        "metrics": metric_entries(inp.metrics, inp.minkowski_p),
        "datasets": datasets, "models": models, "files": FILES, "browser_search": browser,
    }


def check_replaceable(out: Path) -> None:
    """Raise workspace.WorkspaceError unless `out` is missing, empty or a bundle of ours (see there)."""
    check_bundle_target(Path(out), OWN_FILES)


def bundle_is_current(out: Path, fp: str) -> bool:
    # A bundle without the marker (written before markers) is rewritten once to get one.
    f = Path(out) / FINGERPRINT_FILE
    return (f.exists() and f.read_text().strip() == fp and (Path(out) / "manifest.json").exists()
            and (Path(out) / BUNDLE_MARKER).exists())


def write_bundle(out: Path, inp: BundleInputs, fp: str) -> dict[str, Any]:
    """Write the whole bundle into a temp folder, then swap it into place."""
    out = Path(out)
    check_replaceable(out)
    manifest = build_manifest(inp)
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        for res in inp.results:
            _write_dataset(tmp, inp, res)
            if inp.browser is not None:
                manifest["browser_search"]["features"] += write_browser_features(tmp, inp, res)
        if inp.browser is not None:
            shutil.copytree(inp.browser.export_dir, tmp / "tfjs" / inp.browser.model)
        _write(tmp, "manifest.json", dumps_json(manifest).encode())
        _write(tmp, FINGERPRINT_FILE, fp.encode())
        _write(tmp, BUNDLE_MARKER, dumps_json(marker_payload("bundle")).encode())
    return manifest
