"""Curate stage: near-duplicate groups, uniqueness and likely label mistakes from the stored neighbours.

No forward pass: everything comes from the neighbours stage's top-k lists and the stored features
(search/curate.py, the math).
Per (dataset, model), in <work>/curate/<dataset>/<model>.h5, for every `<pooling>/<layer>/<metric>`:
  `<key>/dup_members` int32, `<key>/dup_offsets` int32 [G+1], `<key>/dup_min|dup_max` float32 [G]:
      near-duplicate groups (curate.DuplicateGroups), meta `thresholds[<key>]` their measured ratio
      threshold (nearest over next-farther neighbour distance);
  `<key>/uniqueness` float32 [N]: mean neighbour distance over its median (outliers rank first).
Per dataset, in <work>/curate/<dataset>/_labels.h5, for every label field with ≥ 2 labels:
`<field>/ids|given|suggested|margin|self_confidence` (curate.LabelSuspects), from a cross-validated
classifier on the vectors of the configuration (of every model's) whose neighbours agree best with
that field, meta `classifier[<field>]` = "<model>/<pooling>/<layer>/<metric>" (a field missing
there ranks by the neighbour votes of every configuration). The engine only reports: it never deletes, moves or renames an image.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..io.datasets import Dataset
from ..io.labels import labels_fingerprint as label_fields_fingerprint
from ..io.store import ArrayStore, StoredArrays, fingerprint
from ..search.curate import FENCE_IQR, duplicate_groups, duplicate_threshold, label_mistakes, uniqueness
from ..search.evaluate import best_scored
from .base import Stage
from .scores import score_keys

if TYPE_CHECKING:
    from .base import RunContext
    from .outputs import DatasetResults

CURATE_FORMAT = 2  # the stored arrays (2: duplicates by the ratio test, thresholds are ratios d1/d_next)
FILES_FORMAT = 2  # the bundle files (2: capped group members, group_size): part of the bundle fingerprint
LABELS_FILE = "_labels"  # model ids are slugs starting with a letter: no model file is named so
SUSPECT_FIELDS = ("ids", "given", "suggested", "margin", "self_confidence")


def label_fields(ds: Dataset) -> dict[str, tuple[np.ndarray, int]]:
    """Label field id -> (per-image value ids, -1 = no value; number of values): the dataset's label
    fields (io/labels.py: the class folders' "class", or a labels file's columns), never the top
    folders an unlabelled collection is grouped by. A field with one value has nothing to confuse."""
    return {f.id: (np.asarray(f.codes, dtype=np.int64), len(f.values)) for f in ds.fields if len(f.values) >= 2}


def curate_fingerprint(nbrs: StoredArrays) -> str:
    return fingerprint("curate", CURATE_FORMAT, FENCE_IQR, nbrs.meta["fingerprint"])


def labels_fingerprint(res: DatasetResults, models: list[str]) -> str:
    """The neighbours' fingerprints cover the vectors, not the labels (a renamed class keeps them):
    the label fields join here."""
    return fingerprint("curate-labels", CURATE_FORMAT, 3, [res.neighbors[m].meta["fingerprint"] for m in models],  # 3: classifier probabilities
                       ("labels", label_fields_fingerprint(res.dataset.labels_mode, res.dataset.fields)))


def curate_arrays(nbrs: StoredArrays, keys: list[str]) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """(threshold per key, arrays) of one (dataset, model)'s neighbour lists."""
    thresholds: dict[str, float] = {}
    arrays: dict[str, np.ndarray] = {}
    for key in keys:
        ids, dists = nbrs.arrays[f"{key}/ids"], np.asarray(nbrs.arrays[f"{key}/dists"])
        groups = duplicate_groups(ids, dists, duplicate_threshold(dists))
        thresholds[key] = groups.threshold
        arrays.update({f"{key}/dup_members": groups.members, f"{key}/dup_offsets": groups.offsets,
                       f"{key}/dup_min": groups.min_dist, f"{key}/dup_max": groups.max_dist,
                       f"{key}/uniqueness": uniqueness(dists)})
    return thresholds, arrays


def label_arrays(ds: Dataset, configs: list[tuple[str, str]], neighbor_ids: list[np.ndarray],
                 features: dict[str, StoredArrays]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(the suspects' arrays of every label field, field -> the "<model>/<pooling>/<layer>/<metric>"
    whose vectors the classifier saw; a field left out ranks by neighbour votes). configs[i] =
    (model, key) of neighbor_ids[i]."""
    def vectors(i: int) -> tuple[np.ndarray, bool]:
        mid, key = configs[i]
        pooling, layer, metric = key.split("/")
        return np.asarray(features[mid].arrays[f"{pooling}/{layer}"]), metric == "cosine"

    out = label_mistakes(label_fields(ds), neighbor_ids, vectors)
    arrays = {f"{name}/{f}": getattr(r.suspects, f) for name, r in out.items() for f in SUSPECT_FIELDS}
    basis = {name: "/".join(configs[r.classifier]) for name, r in out.items() if r.classifier is not None}
    return arrays, basis


def run(ctx: RunContext) -> None:
    store = ctx.store("curate")
    metrics = list(ctx.cfg.metrics)
    for res, mid in ctx.items():
        nbrs = res.neighbors[mid]
        fp = curate_fingerprint(nbrs)
        if not store.is_current(res.dataset.id, mid, fp):
            thresholds, arrays = curate_arrays(nbrs, score_keys(res.features[mid], metrics))
            store.write(res.dataset.id, mid, {"fingerprint": fp, "thresholds": thresholds}, arrays)
        res.curate[mid] = store.load(res.dataset.id, mid)
    for res in ctx.results:
        fp = labels_fingerprint(res, list(ctx.cfg.models))
        if not store.is_current(res.dataset.id, LABELS_FILE, fp):
            configs = [(m, key) for m in ctx.cfg.models for key in score_keys(res.features[m], metrics)]
            ids = [res.neighbors[m].arrays[f"{key}/ids"] for m, key in configs]
            arrays, basis = label_arrays(res.dataset, configs, ids, res.features)
            meta = {"fingerprint": fp, "fields": list(label_fields(res.dataset)), "models": list(ctx.cfg.models),
                    "classifier": basis}
            store.write(res.dataset.id, LABELS_FILE, meta, arrays)
        res.curate[LABELS_FILE] = store.load(res.dataset.id, LABELS_FILE)


def load(ctx: RunContext) -> None:
    store = ctx.store("curate")
    for res, mid in ctx.items():
        if not store.is_current(res.dataset.id, mid, curate_fingerprint(res.neighbors[mid])):
            raise ctx.missing("curate", f"{res.dataset.id} · {mid}")
        res.curate[mid] = store.load(res.dataset.id, mid)
    for res in ctx.results:
        if not store.is_current(res.dataset.id, LABELS_FILE, labels_fingerprint(res, list(ctx.cfg.models))):
            raise ctx.missing("curate", f"{res.dataset.id} · labels")
        res.curate[LABELS_FILE] = store.load(res.dataset.id, LABELS_FILE)


STAGE = Stage("curate", run, load, ("datasets", "extract", "neighbors"), ("curate",))


# --- bundle files (docs/bundle.md "Curation"): laid out by the bundle stage, the lists capped so
# that a Curate view switch stays small at any N (the CLI prints the full lists).
BUNDLE_FILES = {
    "curate": "datasets/{dataset}/{model}/{layer}/{pooling}/{metric}.curate.json",
    "curate_labels": "datasets/{dataset}/curate/labels.json",
}
# Caps that keep each file ≤ 20 KB at any N (ids up to 7 digits; tested at N = 10,000,000).
GROUPS_SHOWN = 150  # most certain groups first
MEMBERS_SHOWN = 8  # per group (the view shows 8 thumbnails a row); group_size has the count
OUTLIERS_SHOWN = 150
SUSPECTS_SHOWN = 150


def _round(x: np.ndarray) -> list[float]:
    return [float(f"{v:.4g}") for v in np.asarray(x, dtype=np.float64)]


def config_json(cur: StoredArrays, key: str) -> dict:
    """One configuration's curate file: threshold, duplicate groups, top outliers."""
    from ..search.curate import outlier_order

    offsets = np.asarray(cur.arrays[f"{key}/dup_offsets"])
    members = np.asarray(cur.arrays[f"{key}/dup_members"])
    shown = min(len(offsets) - 1, GROUPS_SHOWN)
    u = np.asarray(cur.arrays[f"{key}/uniqueness"])
    top = outlier_order(u)[:OUTLIERS_SHOWN]
    return {"threshold": float(f"{cur.meta['thresholds'][key]:.6g}"), "groups_total": int(len(offsets) - 1),
            "groups": [members[offsets[g]:min(offsets[g + 1], offsets[g] + MEMBERS_SHOWN)].tolist() for g in range(shown)],
            "group_size": np.diff(offsets[:shown + 1]).tolist(),
            "group_min": _round(cur.arrays[f"{key}/dup_min"][:shown]),
            "group_max": _round(cur.arrays[f"{key}/dup_max"][:shown]),
            "outliers": top.tolist(), "uniqueness": _round(u[top])}


def labels_json(cur: StoredArrays) -> dict:
    """The label suspects of every field: top SUSPECTS_SHOWN, least self-confident first."""
    fields = {}
    basis = cur.meta.get("classifier", {})
    for name in cur.meta["fields"]:
        ids = np.asarray(cur.arrays[f"{name}/ids"])
        fields[name] = {"total": int(len(ids)), "classifier": basis.get(name), "ids": ids[:SUSPECTS_SHOWN].tolist(),
                        "given": np.asarray(cur.arrays[f"{name}/given"])[:SUSPECTS_SHOWN].tolist(),
                        "suggested": np.asarray(cur.arrays[f"{name}/suggested"])[:SUSPECTS_SHOWN].tolist(),
                        "margin": _round(cur.arrays[f"{name}/margin"][:SUSPECTS_SHOWN]),
                        "self_confidence": _round(cur.arrays[f"{name}/self_confidence"][:SUSPECTS_SHOWN])}
    return {"fields": fields}


def bundle_files(res: DatasetResults, models: list[str], metrics: list[str]) -> dict[str, bytes]:
    """Relative path -> bytes of one dataset's curate files (none when the stage did not run)."""
    from ..io.store import dumps_json

    if not res.curate:
        return {}
    d = res.dataset.id
    out = {BUNDLE_FILES["curate_labels"].format(dataset=d): dumps_json(labels_json(res.curate[LABELS_FILE])).encode()}
    for mid in models:
        for key in score_keys(res.features[mid], metrics):
            pooling, layer, metric = key.split("/")
            rel = BUNDLE_FILES["curate"].format(dataset=d, model=mid, layer=layer, pooling=pooling, metric=metric)
            out[rel] = dumps_json(config_json(res.curate[mid], key)).encode()
    return out


# --- `convnet-search curate`: one configuration's lists, read back from the work folder
class CurateError(ValueError):
    """The work folder has no current curated lists for the request (a usage error, exit 2)."""


@dataclass(frozen=True)
class Config:
    model: str
    layer: str
    pooling: str
    metric: str

    @property
    def key(self) -> str:
        return f"{self.pooling}/{self.layer}/{self.metric}"


def _stored_keys(cur: StoredArrays) -> list[str]:
    """The configurations of a curate file in the stage's order (layer by layer, as the model has
    them): its arrays' order, one `uniqueness` per configuration. Not the meta's `thresholds`, an
    object the store writes with sorted keys (conv_pw_8 after conv_pw_13)."""
    return [k.removesuffix("/uniqueness") for k in cur.arrays if k.endswith("/uniqueness")]


def _mean_search_score(scores: StoredArrays | None, key: str) -> float | None:
    """A configuration's mean search score against the first label field (as the explorer's star
    and the API rank them; stages/scores.py stores `<field>/<key>/means`); None when not scored."""
    if scores is None or not scores.meta.get("fields"):
        return None  # no scores stage output, or an unlabelled dataset
    means = f"{scores.meta['fields'][0]}/{key}/means"
    return float(scores.arrays[means][0]) if means in scores.arrays else None


def default_config(work: Path, ds_id: str, models: list[str], want: dict[str, str | None]) -> tuple[Config, str]:
    """The configuration a request names (flags left out: any), the best-scoring one among those
    matching by mean search score when scores exist, else the last layer of the first model."""
    scores = ArrayStore(Path(work) / "scores")
    found: list[tuple[Config, float | None]] = []
    for mid in models:
        if want["model"] not in (None, mid):
            continue
        cur = ArrayStore(Path(work) / "curate").load(ds_id, mid)
        sc = scores.load(ds_id, mid) if scores.read_meta(ds_id, mid) else None
        for key in _stored_keys(cur):
            pooling, layer, metric = key.split("/")
            c = Config(mid, layer, pooling, metric)
            if all(want[f] in (None, getattr(c, f)) for f in ("layer", "pooling", "metric")):
                found.append((c, _mean_search_score(sc, key)))
    if not found:
        raise CurateError(f"no stored configuration of dataset {ds_id!r} matches "
                          + ", ".join(f"--{k} {v}" for k, v in want.items() if v))
    if len(found) == 1:
        return found[0][0], "the only match"
    if all(score is not None for _, score in found) and len(label_fields_of(work, ds_id)) > 0:
        config, score = found[best_scored([score for _, score in found])]
        return config, f"best mean search score ({score:.3f})"
    first = [c for c, _ in found if c.model == found[0][0].model]
    return first[-1], "no labels: the last layer of the first model"


def label_fields_of(work: Path, ds_id: str) -> list[str]:
    meta = ArrayStore(Path(work) / "curate").read_meta(ds_id, LABELS_FILE)
    return list(meta["fields"]) if meta else []


def check_stored(work: Path, ds: Dataset) -> list[str]:
    """The models whose curated lists are stored and current with the stored neighbours of `ds`."""
    cur, nbrs = ArrayStore(Path(work) / "curate"), ArrayStore(Path(work) / "neighbors")
    meta = cur.read_meta(ds.id, LABELS_FILE)
    if meta is None:
        raise CurateError(f"{work}: no curated lists for dataset {ds.id!r}; run `convnet-search precompute "
                          f"--dataset {ds.root} --work {work}` first")
    models = list(meta["models"])
    for mid in models:
        nb = nbrs.read_meta(ds.id, mid)
        if nb is None or not cur.is_current(ds.id, mid, curate_fingerprint(StoredArrays(nb, {}))):
            raise CurateError(f"{work}: the curated lists of {ds.id} · {mid} are out of date; run precompute again")
        stored = cur.load(ds.id, mid)
        if len(stored.arrays[f"{_stored_keys(stored)[0]}/uniqueness"]) != len(ds):
            raise CurateError(f"{work}: dataset {ds.id!r} changed since the last precompute ({len(ds)} images now); "
                              f"run precompute again")
    return models


def curate_report(work: Path, ds: Dataset, want: dict[str, str | None]) -> dict:
    """One configuration's duplicate groups, outlier ranking and every field's label suspects, with
    dataset-relative paths (`convnet-search curate --format json`)."""
    from ..search.curate import outlier_order

    models = check_stored(work, ds)
    config, why = default_config(work, ds.id, models, want)
    cur = ArrayStore(Path(work) / "curate").load(ds.id, config.model)
    key = config.key
    offsets, members = np.asarray(cur.arrays[f"{key}/dup_offsets"]), np.asarray(cur.arrays[f"{key}/dup_members"])
    u = np.asarray(cur.arrays[f"{key}/uniqueness"])
    labels = ArrayStore(Path(work) / "curate").load(ds.id, LABELS_FILE)
    mistakes = {}
    for name in labels.meta["fields"]:
        a = {f: np.asarray(labels.arrays[f"{name}/{f}"]) for f in SUSPECT_FIELDS}
        names = ds.classes if name == "class" else None
        mistakes[name] = [{"path": ds.files[i], "label": names[g] if names else int(g),
                           "suggested": names[s] if names else int(s), "margin": round(float(m), 6),
                           "self_confidence": round(float(c), 6)}
                          for i, g, s, m, c in zip(a["ids"], a["given"], a["suggested"], a["margin"],
                                                   a["self_confidence"])]
    return {
        "dataset": ds.id, "root": str(ds.root),
        "configuration": {"model": config.model, "layer": config.layer, "pooling": config.pooling,
                          "metric": config.metric, "chosen": why,
                          "duplicate_threshold": float(cur.meta["thresholds"][key])},
        "duplicates": [[ds.files[i] for i in members[a:b]] for a, b in zip(offsets[:-1], offsets[1:])],
        "duplicate_distances": [[round(float(lo), 6), round(float(hi), 6)]
                                for lo, hi in zip(cur.arrays[f"{key}/dup_min"], cur.arrays[f"{key}/dup_max"])],
        "outliers": [{"path": ds.files[i], "uniqueness": round(float(u[i]), 6)} for i in outlier_order(u)],
        "label_mistakes": mistakes,
        # per field: the configuration whose vectors the label classifier saw, or the neighbour votes
        "label_mistakes_from": {name: labels.meta.get("classifier", {}).get(name, "neighbour votes")
                                for name in labels.meta["fields"]},
    }


CSV_COLUMNS = ("kind", "rank", "group", "path", "value", "label", "suggested")


def report_rows(report: dict) -> list[tuple]:
    """CSV rows: duplicates (group number, its farthest joined pair's distance), outliers (uniqueness),
    label mistakes (kind label_mistake:<field>, self-confidence, given and suggested label)."""
    rows: list[tuple] = []
    for g, (paths, (_, hi)) in enumerate(zip(report["duplicates"], report["duplicate_distances"])):
        rows += [("duplicate", g, g, p, hi, "", "") for p in paths]
    rows += [("outlier", r, "", o["path"], o["uniqueness"], "", "") for r, o in enumerate(report["outliers"])]
    for name, items in report["label_mistakes"].items():
        rows += [(f"label_mistake:{name}", r, "", m["path"], m["self_confidence"], m["label"], m["suggested"])
                 for r, m in enumerate(items)]
    return rows
