"""Bundle stage: stage outputs -> the static data folder the frontend reads (docs/bundle.md)."""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .datasets import Dataset
from .evaluate import SCORE_SCALE, SCORE_TOP, search_score_numerators, summarize
from .images import load_rgb, thumbnail_jpeg
from .neighbors import METRICS
from .store import StoredArrays, atomic_path, dumps_json
from .workspace import BUNDLE_MARKER, check_bundle_target, marker_payload

BUNDLE_VERSION = 2
FINGERPRINT_FILE = ".bundle-fingerprint"

FILES = {
    "index": "datasets/{dataset}/index.json",
    "thumbnail": "datasets/{dataset}/thumbs/{id}.jpg",
    "summary": "datasets/{dataset}/summary/{metric}.json",
    "scores": "datasets/{dataset}/scores/{metric}.u8",
    "neighbors": "datasets/{dataset}/{model}/{layer}/{metric}.knn",
    "umap": "datasets/{dataset}/{model}/{layer}/umap.f32",
    "browser_features": "datasets/{dataset}/browser/{layer}.f32",
}


# Everything the writer puts into --out; a folder holding anything else is never replaced.
OWN_FILES = (*FILES.values(), "manifest.json", FINGERPRINT_FILE, BUNDLE_MARKER, "tfjs/{model}/{file}",
             "datasets/{dataset}/summary.json")  # the last: bundle format 1


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


@dataclass
class BundleInputs:
    results: list[DatasetResults]
    models: list[str]
    metrics: list[str]
    minkowski_p: float
    k: int
    pooling: str
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
            "layers": [{k: layer[k] for k in ("name", "index", "type", "output_shape", "dim",
                                              "params_cumulative", "depth")} for layer in meta["layers"]],
        })
    return entries


def _id_dtype(n: int) -> np.dtype:
    return np.dtype("<u2") if n <= 0xFFFF else np.dtype("<u4")


def _write_dataset(root: Path, inp: BundleInputs, res: DatasetResults) -> None:
    ds = res.dataset
    n = len(ds)
    labels = np.asarray(ds.labels)
    d = ds.id
    _write(root, _path(FILES["index"], dataset=d), dumps_json(
        {"dataset": d, "size": n, "files": list(ds.files), "labels": [int(x) for x in labels]}).encode())
    for i in range(n):
        _write(root, _path(FILES["thumbnail"], dataset=d, id=i), thumbnail_jpeg(load_rgb(ds.path(i))))
    id_dtype = _id_dtype(n)
    for metric in inp.metrics:
        score_rows = []
        sums = {"search_score": [], "precision_at_k": [], "map_at_k": []}
        for mid in inp.models:
            row = {key: [] for key in sums}
            for layer in res.features[mid].meta["layers"]:
                name = layer["name"]
                ids = res.neighbors[mid].arrays[f"{name}/{metric}/ids"]
                dists = res.neighbors[mid].arrays[f"{name}/{metric}/dists"]
                blob = (np.ascontiguousarray(dists[:, : inp.k], dtype="<f4").tobytes()
                        + np.ascontiguousarray(ids[:, : inp.k]).astype(id_dtype).tobytes())
                _write(root, _path(FILES["neighbors"], dataset=d, model=mid, layer=name, metric=metric), blob)
                score_rows.append(search_score_numerators(ids, labels).astype(np.uint8))
                q = summarize(ids, labels, inp.k)
                row["search_score"].append(round(q.search_score, 6))
                row["precision_at_k"].append(round(q.precision_at_k, 6))
                row["map_at_k"].append(round(q.map_at_k, 6))
            for key in sums:
                sums[key].append(row[key])
        _write(root, _path(FILES["scores"], dataset=d, metric=metric), np.stack(score_rows).tobytes())
        # One small file per metric: the leaderboard needs only the current metric's means.
        _write(root, _path(FILES["summary"], dataset=d, metric=metric),
               dumps_json({"dataset": d, "metric": metric, **sums}).encode())
    for mid in inp.models:
        for layer in res.features[mid].meta["layers"]:
            xy = res.umap[mid].arrays[layer["name"]]
            _write(root, _path(FILES["umap"], dataset=d, model=mid, layer=layer["name"]),
                   np.ascontiguousarray(xy, dtype="<f4").tobytes())
    if inp.browser is not None:
        feats = res.features[inp.browser.model].arrays
        for layer in inp.browser.layers:
            _write(root, _path(FILES["browser_features"], dataset=d, layer=layer),
                   np.ascontiguousarray(feats[layer], dtype="<f4").tobytes())


def build_manifest(inp: BundleInputs) -> dict[str, Any]:
    models = _model_entries(inp)
    weights = _overall_weights([m["weights"] for m in models])
    details = sorted({r.features[m].meta["weights_detail"] for r in inp.results for m in inp.models})
    datasets = []
    for res in inp.results:
        ds = res.dataset
        datasets.append({
            "id": ds.id, "name": ds.name, "description": ds.description, "source": ds.source,
            "classes": list(ds.classes), "size": len(ds), "id_dtype": str(_id_dtype(len(ds)).name),
            "skipped": [{"file": s.file, "reason": s.reason} for s in ds.skipped],
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
        }
    return {
        "bundle_version": BUNDLE_VERSION, "generator": f"convnet-search {__version__}",
        "weights": weights, "weights_detail": "; ".join(details), "k": inp.k, "pooling": inp.pooling,
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
            shutil.copytree(inp.browser.export_dir, tmp / "tfjs" / inp.browser.model)
        _write(tmp, "manifest.json", dumps_json(manifest).encode())
        _write(tmp, FINGERPRINT_FILE, fp.encode())
        _write(tmp, BUNDLE_MARKER, dumps_json(marker_payload("bundle")).encode())
    return manifest
