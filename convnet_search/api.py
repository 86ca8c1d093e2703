"""The Python API: open a finished run, read its arrays, search by a dataset image or a new one, embed a folder.

Everything reads what `convnet-search precompute` stored in the work folder (`--work`; the bundle,
`--out`, is optional and only checked to belong to the same run). A new image goes through the
run's own reader (nets/extractor.py's `image_batches`: safe decode, the one resize path), the
run's own weights (resolved as the run resolved them, then verified by the digest the run
recorded) and its metric, searched exactly by search/neighbors.py's kernels. docs/python.md shows
it in use.

Labels are *label fields*: an ordered mapping field name -> one value per image. Today a dataset
has one field, "class" (its class folder).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence, Union

import numpy as np

if TYPE_CHECKING:
    from .nets.extractor import FeatureExtractor

LABEL_FIELD = "class"  # today's one label field: the image's class folder
DEFAULT_K = 15
Query = Union[int, str, Path, np.ndarray]


class RunError(ValueError):
    """A run cannot be opened or asked this (missing folder, unknown model, unreadable image...)."""


@dataclass(frozen=True)
class Configuration:
    """One searchable configuration of a dataset: model × layer × pooling × metric."""
    dataset: str
    model: str
    layer: str
    pooling: str
    metric: str

    @property
    def key(self) -> str:
        """The stores' matrix key, "<pooling>/<layer>"."""
        return f"{self.pooling}/{self.layer}"

    def __str__(self) -> str:
        return f"{self.dataset}: {self.model} · {self.layer} · {self.pooling} · {self.metric}"


@dataclass(frozen=True)
class Hit:
    """One search result: dataset image `id`, its path (relative to the dataset root), labels, distance."""
    rank: int
    id: int
    path: str
    labels: dict[str, str]
    distance: float

    def to_json(self) -> dict[str, Any]:
        """path, every label field (also flat, for tools that want columns), distance."""
        return {"rank": self.rank, "id": self.id, "path": self.path, **self.labels,
                "labels": dict(self.labels), "distance": self.distance}


@dataclass(frozen=True)
class Scores:
    """A configuration's search quality (search/evaluate.py): means over all images, and each
    image's search-score numerator (how many of its top results share its class)."""
    search_score: float
    precision_at_k: float
    map_at_k: float
    numerators: np.ndarray


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset of the run: its images (paths relative to `root`, in id order) and label fields."""
    id: str
    root: Path | None  # None when the scan cache that recorded it is gone
    paths: list[str]
    labels: dict[str, list[str]]  # field name -> one value per image

    def labels_of(self, i: int) -> dict[str, str]:
        return {name: values[i] for name, values in self.labels.items()}


@dataclass(frozen=True)
class Embeddings:
    """What `embed_folder` returns: one row of `features` per path."""
    paths: list[str]
    labels: dict[str, list[str]]
    features: np.ndarray
    model: str
    layer: str
    pooling: str


def _class_of(rel: str) -> str:
    return rel.split("/", 1)[0]  # io/datasets.py: root/<class>/<image>


def _stat(meta: dict, arrays, key: str, name: str) -> float:
    return float(arrays[f"{key}/means"][meta["means"].index(name)])


def _score_field(fields: list[str], field: str | None, where: str) -> str:
    """The label field to score against: as asked, else the first (the class folders' "class")."""
    if not fields:
        raise RunError(f"{where}: no label fields, so no scores (an unlabelled collection; --labels FILE adds some)")
    if field is not None and field not in fields:
        raise RunError(f"{where}: no label field {field!r} (fields: {', '.join(fields)})")
    return field or fields[0]


class Run:
    """A finished run. `open_run(work, out)` is the way in; arrays are read on first use and kept."""

    def __init__(self, work: Path, out: Path | None = None, *, weights: str | Path | None = None,
                 weights_cache: str | Path | None = None):
        from .io.store import ArrayStore
        from .io.workspace import BUNDLE_MARKER, WORK_MARKER, WorkspaceError, read_marker

        self.work, self.out = Path(work), (Path(out) if out is not None else None)
        # Bundle only: listing, paths, labels, neighbours, maps and mean scores (no features, so no
        # search of new images); read as docs/bundle.md describes it.
        self.bundle = _Bundle(self.out) if not self.work.is_dir() and self.out is not None else None
        self._weights_option, self._weights_cache = weights, weights_cache
        self._loaded: dict[tuple[str, str, str], Any] = {}
        self._extractors: dict[str, FeatureExtractor] = {}
        if self.bundle is not None:
            return
        if not self.work.is_dir():
            raise RunError(f"--work {self.work}: no such folder (the work folder of a finished "
                           "`convnet-search precompute` run)")
        try:
            if read_marker(self.work, WORK_MARKER, "work") is None and not (self.work / "features").is_dir():
                raise RunError(f"--work {self.work}: not a convnet-search work folder (no {WORK_MARKER})")
            if self.out is not None and read_marker(self.out, BUNDLE_MARKER, "bundle") is None:
                raise RunError(f"--out {self.out}: not a convnet-search bundle (no {BUNDLE_MARKER})")
        except WorkspaceError as exc:
            raise RunError(str(exc)) from None
        self._stores = {s: ArrayStore(self.work / s) for s in ("features", "neighbors", "umap", "scores")}
        if not self.datasets:
            raise RunError(f"--work {self.work}: holds no finished run (no features/<dataset>/<model>.h5); "
                           "run `convnet-search precompute` first")

    # -- what the run holds ---------------------------------------------------------------------

    @cached_property
    def datasets(self) -> list[str]:
        if self.bundle is not None:
            return [d["id"] for d in self.bundle.manifest["datasets"]]
        root = self.work / "features"
        ids = sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.h5"))) if root.is_dir() else []
        if self.out is not None and (self.out / "manifest.json").is_file():  # the explorer's order
            order = [d["id"] for d in json.loads((self.out / "manifest.json").read_text())["datasets"]]
            ids = [d for d in order if d in ids] + [d for d in ids if d not in order]
        return ids

    def models(self, dataset: str | None = None) -> list[str]:
        ds = self._dataset_id(dataset)
        if self.bundle is not None:
            return [m["id"] for m in self.bundle.manifest["models"]]
        return sorted(p.stem for p in (self.work / "features" / ds).glob("*.h5"))

    def configurations(self, dataset: str | None = None) -> list[Configuration]:
        """Every configuration with stored neighbours, in store order."""
        ds = self._dataset_id(dataset)
        if self.bundle is not None:
            return self.bundle.configurations(ds)
        out = []
        for model in self.models(ds):
            fm = self._meta("features", ds, model)
            nm = self._meta_or_none("neighbors", ds, model)
            if nm is None:
                continue
            for layer in fm["layers"]:
                for pooling in fm["poolings"]:
                    out += [Configuration(ds, model, layer["name"], pooling, m) for m in nm["params"][0]]
        return out

    def best(self, dataset: str | None = None, stat: str = "search_score") -> Configuration:
        """The configuration with the highest mean `stat` (the explorer's ★; the first one on a tie)."""
        configs = self.configurations(dataset)
        if not configs:
            raise RunError(f"{self._dataset_id(dataset)}: no configuration has stored neighbours")
        return self._best_of(configs, stat)

    def select(self, dataset: str | None = None, model: str | None = None, layer: str | None = None,
               pooling: str | None = None, metric: str | None = None) -> Configuration:
        """The best configuration among those matching what is given (all None: `best`)."""
        ds = self._dataset_id(dataset)
        configs = self.configurations(ds)
        for name, want in (("model", model), ("layer", layer), ("pooling", pooling), ("metric", metric)):
            if want is None:
                continue
            have = sorted({getattr(c, name) for c in configs})
            if name == "metric":
                from .search.metrics import resolve_metric
                try:
                    want = resolve_metric(want)
                except ValueError:
                    pass
            if want not in have:
                raise RunError(f"{name} {want!r} is not in this run for dataset {ds} "
                               f"(it has: {', '.join(have) or 'none'})")
            configs = [c for c in configs if getattr(c, name) == want]
        if not configs:
            raise RunError(f"{ds}: no stored configuration matches that selection")
        return self._best_of(configs, "search_score")

    def _best_of(self, configs: list[Configuration], stat: str) -> Configuration:
        """search/evaluate.py's rule; an unscored configuration counts as −inf, so a run without
        scores opens on its first configuration (store or manifest order)."""
        from .search.evaluate import best_scored

        return configs[best_scored([self._score_stat(c, stat) for c in configs])]

    def dataset(self, dataset: str | None = None) -> DatasetInfo:
        ds = self._dataset_id(dataset)
        key = ("dataset", ds, "")
        if key not in self._loaded and self.bundle is not None:
            paths, fields = self.bundle.index(ds)
            root = self._root_of(ds, paths) if self.work is not None else None
            self._loaded[key] = DatasetInfo(ds, root, paths, fields)
        if key not in self._loaded:
            paths = list(self._meta("features", ds, self.models(ds)[0])["files"])
            scored = (self._meta_or_none("scores", ds, self.models(ds)[0]) or {}).get("fields")
            # Without the bundle, only class folders' labels can be read back from the paths;
            # an unlabelled collection or a labels file's fields need the bundle (--out).
            fields = {LABEL_FIELD: [_class_of(p) for p in paths]} if scored == [LABEL_FIELD] else {}
            self._loaded[key] = DatasetInfo(ds, self._root_of(ds, paths), paths, fields)
        return self._loaded[key]

    # -- arrays -----------------------------------------------------------------------------------

    def features(self, config: Configuration) -> np.ndarray:
        """float32 [N, D]: the stored features, row i = image i."""
        if self.bundle is not None:
            raise RunError(f"--out {self.out}: a bundle holds no features; open the run with its work folder")
        return self._array("features", config, config.key)

    def neighbors(self, config: Configuration) -> tuple[np.ndarray, np.ndarray]:
        """(ids int32 [N, k], distances float32 [N, k]): row i's k nearest other images, nearest first."""
        if self.bundle is not None:
            return self.bundle.neighbors(config)
        key = f"{config.key}/{config.metric}"
        return self._array("neighbors", config, f"{key}/ids"), self._array("neighbors", config, f"{key}/dists")

    def map(self, config: Configuration) -> np.ndarray:
        """float32 [N, 2]: the UMAP map of the configuration's features (shared by its metrics)."""
        if self.bundle is not None:
            return self.bundle.map(config)
        return self._array("umap", config, config.key)

    def scores(self, config: Configuration, field: str | None = None) -> Scores:
        """Means over the queries with a value in the label `field` (default: the dataset's first
        field), and per image (work folder only; None from a bundle alone). An unlabelled dataset
        has no scores: RunError."""
        if self.bundle is not None:
            return Scores(*(self.bundle.mean(config, s, field) for s in ("search_score", "precision_at_k", "map_at_k")),
                          None)
        meta, arrays = self._store("scores", config)
        key = f"{_score_field(meta.get('fields', []), field, config.dataset)}/{config.key}/{config.metric}"
        return Scores(_stat(meta, arrays, key, "search_score"), _stat(meta, arrays, key, "precision_at_k"),
                      _stat(meta, arrays, key, "map_at_k"), arrays[f"{key}/numerators"])

    # -- search -----------------------------------------------------------------------------------

    def search(self, query: Query, config: Configuration | None = None, k: int = DEFAULT_K) -> list[Hit]:
        """Rank the dataset's images for `query`: a dataset image id (int), an image file, or an
        RGB array [H, W, 3] (uint8 0..255). A dataset image (by id, or a file of the dataset) is its
        own first result, followed by its stored neighbours; anything else is embedded with the
        run's preprocessing and weights and searched exactly (search/neighbors.py)."""
        config = config or self.best()
        if k < 1:
            raise RunError(f"k must be ≥ 1, got {k}")
        if isinstance(query, (str, Path)):
            i = self.find(query, config.dataset)
        else:
            i = query if isinstance(query, (int, np.integer)) else None
        if i is not None:
            ids, dists = self._dataset_image_ranking(int(i), config, k)
        else:
            ids, dists = self.search_vectors(self.embed([query], config), config, k)
            ids, dists = ids[0], dists[0]
        info = self.dataset(config.dataset)
        return [Hit(r + 1, int(j), info.paths[j], info.labels_of(int(j)), float(d))
                for r, (j, d) in enumerate(zip(ids, dists))]

    def search_vectors(self, vectors: np.ndarray, config: Configuration, k: int = DEFAULT_K
                       ) -> tuple[np.ndarray, np.ndarray]:
        """(ids [Q, k], distances [Q, k]) of the dataset rows nearest each query vector (exact)."""
        index = self._index(config)
        return index.query(np.asarray(vectors, dtype=index.X.dtype).reshape(-1, index.X.shape[1]),
                           min(k, index.X.shape[0]))

    def find(self, path: str | Path, dataset: str | None = None) -> int | None:
        """The dataset id of an image file if it is one of the dataset's images (by its path under
        the dataset root, else by its bytes' sha256), else None."""
        path = Path(path)
        if not path.is_file():
            raise RunError(f"{path}: no such image file")
        info = self.dataset(dataset)
        if self.bundle is not None:
            return self._row_of(info).get(next((r for r in _suffixes(path) if r in self._row_of(info)), ""))
        root = info.root or self._root_from(path, info)
        if root is not None:
            try:
                rel = path.resolve().relative_to(root.resolve()).as_posix()
            except ValueError:
                rel = None
            if rel is not None and rel in self._row_of(info):
                return self._row_of(info)[rel]
        digests = self._digests(info)
        if digests:
            import hashlib
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
            return digests.get(sha)
        return None

    def embed(self, images: Sequence[str | Path | np.ndarray], config: Configuration | None = None) -> np.ndarray:
        """float32 [len(images), D]: features of image files or RGB arrays, computed as the run did."""
        config = config or self.best()
        ex = self._extractor(config.model)
        rows = [self._forward(ex, img)[config.key][0] for img in images]
        return np.stack(rows).astype(np.float32, copy=False)

    # -- internals --------------------------------------------------------------------------------

    def _dataset_id(self, dataset: str | None) -> str:
        if dataset is None:
            return self.datasets[0]
        if dataset not in self.datasets:
            raise RunError(f"dataset {dataset!r} is not in this run (it has: {', '.join(self.datasets)})")
        return dataset

    def _meta_or_none(self, stage: str, dataset: str, model: str) -> dict | None:
        key = ("meta", dataset, f"{stage}/{model}")
        if key not in self._loaded:  # kept: a Run reads a finished run, which does not change under it
            self._loaded[key] = self._stores[stage].read_meta(dataset, model)
        return self._loaded[key]

    def _meta(self, stage: str, dataset: str, model: str) -> dict:
        meta = self._meta_or_none(stage, dataset, model)
        if meta is None:
            raise RunError(f"{self._stores[stage].path(dataset, model)}: missing or unreadable; "
                           f"run `convnet-search precompute` to finish the run")
        return meta

    def _store(self, stage: str, config: Configuration):
        key = (stage, config.dataset, config.model)
        if key not in self._loaded:
            self._meta(stage, config.dataset, config.model)
            stored = self._stores[stage].load(config.dataset, config.model)
            self._loaded[key] = (stored.meta, stored.arrays)
        return self._loaded[key]

    def _array(self, stage: str, config: Configuration, key: str) -> np.ndarray:
        meta, arrays = self._store(stage, config)
        if key not in arrays:
            raise RunError(f"{config}: {stage} has no {key!r} (configurations: see Run.configurations())")
        return arrays[key]

    def _score_stat(self, config: Configuration, stat: str) -> float:
        if self.bundle is not None:
            try:
                return self.bundle.mean(config, stat)
            except RunError:
                return float("-inf")  # unlabelled: no scores, keep manifest order
        if self._meta_or_none("scores", config.dataset, config.model) is None:
            return float("-inf")  # no scores stage output: keep store order
        meta, arrays = self._store("scores", config)
        if not meta.get("fields"):
            return float("-inf")  # unlabelled: no scores, keep store order
        key = f"{meta['fields'][0]}/{config.key}/{config.metric}/means"
        return float(arrays[key][meta["means"].index(stat)]) if key in arrays else float("-inf")

    def _dataset_image_ranking(self, i: int, config: Configuration, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Image i first (distance 0), then its neighbours: the stored ones while k allows, else
        the same exact kernel over the stored features (which equals them where both exist)."""
        n = len(self.dataset(config.dataset).paths)
        if not 0 <= i < n:
            raise RunError(f"image id {i} is out of range for dataset {config.dataset} (0…{n - 1})")
        ids, dists = self.neighbors(config)
        k = min(k, n, ids.shape[1] + 1) if self.bundle is not None else min(k, n)  # a bundle has its k only
        if k - 1 <= ids.shape[1]:
            nid, nd = ids[i, :k - 1], dists[i, :k - 1]
        else:
            qi, qd = self._index(config).query(self.features(config)[i:i + 1], k)
            keep = qi[0] != i
            nid, nd = qi[0][keep][:k - 1], qd[0][keep][:k - 1]
        return np.concatenate([[i], nid]).astype(np.int64), np.concatenate([[0.0], nd]).astype(np.float32)

    def _index(self, config: Configuration):
        """The configuration's features prepared for queries (search/query_index.py), kept: a warm
        search does not normalise or copy the matrix again."""
        key = ("index", config.dataset, f"{config.model}/{config.key}/{config.metric}")
        if key not in self._loaded:
            from .search.query_index import QueryIndex

            p = float(self._meta("neighbors", config.dataset, config.model)["params"][1])
            self._loaded[key] = QueryIndex(self.features(config), config.metric, p)
        return self._loaded[key]

    def _row_of(self, info: DatasetInfo) -> dict[str, int]:
        key = ("rows", info.id, "")
        if key not in self._loaded:
            self._loaded[key] = {p: j for j, p in enumerate(info.paths)}
        return self._loaded[key]

    def _scan_caches(self, dataset: str) -> list[dict]:
        out = []
        for p in sorted((self.work / "scan-cache").glob(f"{dataset}-*.json")):
            try:
                out.append(json.loads(p.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue  # an optimization's file: unreadable means unknown, never an error
        return out

    def _root_of(self, dataset: str, paths: list[str]) -> Path | None:
        for cache in self._scan_caches(dataset):
            if isinstance(cache.get("files"), dict) and all(p in cache["files"] for p in paths[:50]):
                return Path(cache["root"])
        return None

    def _root_from(self, path: Path, info: DatasetInfo, sample: int = 20) -> Path | None:
        """The dataset folder guessed from a query path ending in one of its images' paths (when no
        scan cache recorded it): accepted only if the first `sample` images all exist there."""
        parts = path.resolve().parts
        for depth in range(2, len(parts)):
            rel = "/".join(parts[-depth:])
            if rel in self._row_of(info):
                root = Path(*parts[:-depth])
                if all((root / p).is_file() for p in info.paths[:sample]):
                    return root
        return None

    def _digests(self, info: DatasetInfo) -> dict[str, int]:
        """sha256 -> first dataset id with those bytes, from the scan cache (empty when it is gone)."""
        key = ("digests", info.id, "")
        if key not in self._loaded:
            rows, out = self._row_of(info), {}
            for cache in self._scan_caches(info.id):
                for rel, entry in (cache.get("files") or {}).items():
                    if rel in rows and isinstance(entry, list) and entry and isinstance(entry[-1], str):
                        out.setdefault(entry[-1], rows[rel])
            self._loaded[key] = out
        return self._loaded[key]

    def _resolved_weights(self, model: str, meta: dict):
        """The weights the run used, resolved the way it resolved them (nets/weights.py)."""
        from .nets.models import get_spec
        from .nets.weights import WeightsError, resolve_weights, weights_cache

        spec, kind = get_spec(model), meta["weights"]
        seed = int(m.group(1)) if (m := re.search(r"seed (\d+)", meta.get("weights_detail", ""))) else 0
        try:
            if kind == "random":
                return resolve_weights(spec, "none", seed)
            if kind == "imagenet":
                cache = weights_cache(self._weights_cache)
                if not (cache.folder / spec.weights_file).is_file():  # never a download: search stays offline
                    raise RunError(f"{model}: the run used ImageNet weights, and {spec.weights_file} is not in "
                                   f"{cache.folder} ({cache.why}); point KERAS_HOME or weights_cache "
                                   "(--weights-cache) at the folder the run used")
                got = resolve_weights(spec, "imagenet", seed, self._weights_cache)
            elif self._weights_option is None:
                raise RunError(f"{model}: the run loaded the weights file described as "
                               f"{meta.get('weights_detail')!r}; pass that file (weights=PATH, --weights PATH)")
            else:
                got = resolve_weights(spec, str(self._weights_option), seed)
        except WeightsError as exc:
            raise RunError(f"{model}: {exc}") from None
        if got.sha256 != meta.get("weights_sha256"):
            raise RunError(f"{model}: {got.path} (sha256 {str(got.sha256)[:12]}) is not the weights file "
                           f"the run used (sha256 {str(meta.get('weights_sha256'))[:12]})")
        return got

    def _extractor(self, model: str) -> "FeatureExtractor":
        if self.bundle is not None:
            raise RunError(f"--out {self.out}: searching with a new image needs the run's work folder (--work)")
        if model not in self._extractors:
            from .nets.extractor import ExtractorSpec
            from .nets.models import get_spec

            meta = self._meta("features", self._dataset_with(model), model)
            weights = self._resolved_weights(model, meta)
            layers = tuple(layer["name"] for layer in meta["layers"])
            ex = ExtractorSpec(get_spec(model), weights, layers, tuple(meta["poolings"]), len(layers),
                               weights.seed, False).build()
            if ex.base_info["weights_digest"] != meta["weights_digest"]:
                raise RunError(f"{model}: the network built from {weights.detail} has weights digest "
                               f"{ex.base_info['weights_digest'][:12]}, not the run's "
                               f"{meta['weights_digest'][:12]}; these are not the run's weights")
            self._extractors[model] = ex
        return self._extractors[model]

    def _dataset_with(self, model: str) -> str:
        for ds in self.datasets:
            if model in self.models(ds):
                return ds
        raise RunError(f"model {model!r} is not in this run")

    @staticmethod
    def _forward(ex: "FeatureExtractor", image: str | Path | np.ndarray) -> dict[str, np.ndarray]:
        return ex.outputs(next(iter(_image_batch(image, ex.spec.model.input_size))))


def _suffixes(path: Path) -> list[str]:
    """'a/b/c.png', 'b/c.png' ... of a path, longest first (candidate dataset-relative paths)."""
    parts = Path(path).resolve().parts
    return ["/".join(parts[-d:]) for d in range(len(parts) - 1, 1, -1)]


class _Bundle:
    """The parts of a bundle (docs/bundle.md) the API reads when there is no work folder."""

    def __init__(self, out: Path):
        from .io.workspace import BUNDLE_MARKER, WorkspaceError, read_marker

        try:
            if not (out / "manifest.json").is_file() or (read_marker(out, BUNDLE_MARKER, "bundle") is None
                                                         and not (out / ".bundle-fingerprint").is_file()):
                raise RunError(f"--out {out}: not a convnet-search bundle (no manifest.json and marker)")
        except WorkspaceError as exc:
            raise RunError(str(exc)) from None
        self.out = out
        self.manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))

    def _ds(self, dataset: str) -> dict:
        return next(d for d in self.manifest["datasets"] if d["id"] == dataset)

    def _file(self, kind: str, **values) -> Path:
        return self.out / self.manifest["files"][kind].format(**values)

    def configurations(self, dataset: str) -> list[Configuration]:
        return [Configuration(dataset, m["id"], layer["name"], p["id"], c["id"]) for m in self.manifest["models"]
                for layer in m["layers"] for p in self.manifest["poolings"] for c in self.manifest["metrics"]]

    def index(self, dataset: str) -> tuple[list[str], dict[str, list[str]]]:
        """Image paths, and per label field each image's value ("" = none): docs/bundle.md."""
        ds = self._ds(dataset)
        paths: list[str] = []
        for page in range(-(-ds["size"] // ds["names_page"])):
            paths += json.loads(self._file("names", dataset=dataset, page=page).read_text(encoding="utf-8"))
        fields: dict[str, list[str]] = {}
        for f in ds.get("fields", []):
            if ds.get("labels") == "folders":  # the class field is labels.bin (no file of its own)
                codes = np.fromfile(self._file("labels", dataset=dataset),
                                    dtype=np.dtype(ds["label_dtype"]).newbyteorder("<"))[:ds["size"]].astype(np.int64) + 1
            else:
                codes = np.fromfile(self._file("field_labels", dataset=dataset, field=f["id"]),
                                    dtype=np.dtype(f["dtype"]).newbyteorder("<"))[:ds["size"]].astype(np.int64)
            fields[f["name"]] = [f["values"][c - 1] if c > 0 else "" for c in codes]
        return paths, fields

    def neighbors(self, c: Configuration) -> tuple[np.ndarray, np.ndarray]:
        ds = self._ds(c.dataset)
        n, k = ds["size"], ds["k"]
        raw = self._file("neighbors", dataset=c.dataset, model=c.model, layer=c.layer, pooling=c.pooling,
                         metric=c.metric).read_bytes()
        ids = np.frombuffer(raw, np.dtype(ds["id_dtype"]).newbyteorder("<"), n * k, n * k * 4)
        return ids.reshape(n, k).astype(np.int32), np.frombuffer(raw, "<f4", n * k).reshape(n, k)

    def map(self, c: Configuration) -> np.ndarray:
        path = self._file("umap", dataset=c.dataset, model=c.model, layer=c.layer, pooling=c.pooling)
        return np.fromfile(path, "<f4").reshape(-1, 2)

    def mean(self, c: Configuration, stat: str, field: str | None = None) -> float:
        fields = [f["id"] for f in self._ds(c.dataset).get("fields", [])]
        fid = _score_field(fields, field, c.dataset)
        summary = json.loads(self._file("summary", dataset=c.dataset, metric=c.metric, field=fid).read_text(encoding="utf-8"))
        models = [m["id"] for m in self.manifest["models"]]
        layers = [layer["name"] for layer in self.manifest["models"][models.index(c.model)]["layers"]]
        return float(summary[stat][summary["poolings"].index(c.pooling)][models.index(c.model)][layers.index(c.layer)])


def _image_batch(image: str | Path | np.ndarray, size: tuple[int, int]):
    """A batch of one image through the extractor's own reader (files) or the same two steps (arrays)."""
    from .io.images import ImageError, load_rgb
    from .nets.extractor import image_batches

    if isinstance(image, np.ndarray):
        import tensorflow as tf

        from .nets.preprocess import area_downscale, resize_tensor

        a = np.asarray(image)
        if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8 or 0 in a.shape:
            raise RunError(f"an image array must be uint8 RGB [H, W, 3], got {a.dtype} {a.shape}")
        return [tf.expand_dims(resize_tensor(area_downscale(a, size), size), 0)]
    path = Path(image)
    try:
        load_rgb(path)  # a clear error naming the file before TensorFlow's reader sees it
    except ImageError as exc:
        raise RunError(str(exc)) from None
    return image_batches([path], size, 1)


def open_run(work: str | Path = ".convnet-search", out: str | Path | None = None, *,
             weights: str | Path | None = None, weights_cache: str | Path | None = None) -> Run:
    """Open a finished run: its work folder (`--work`) and, optionally, its bundle (`--out`). With
    a bundle alone (`work` not a folder) the run lists, gives paths, labels, neighbours, maps and
    mean scores, and searches by dataset image; features and new images need the work folder.

    weights: the weights file, for a run made with `--weights PATH` (checked by its sha256);
    weights_cache: where Keras' ImageNet files are, as `--weights-cache` (default: KERAS_HOME)."""
    return Run(Path(work), Path(out) if out is not None else None, weights=weights, weights_cache=weights_cache)


def embed_folder(folder: str | Path, *, model: str = "mobilenet_025", layer: str | None = None,
                 pooling: str = "avg", weights: str = "auto", batch_size: int = 32, seed: int = 0) -> Embeddings:
    """Features of every usable image of a folder (root/<class>/<image>, as `precompute` reads it)
    under one configuration; no work folder, nothing written. `layer` None: the model's deepest
    default layer."""
    from .io.datasets import DatasetError, load_dataset
    from .nets.extractor import ExtractorSpec, image_batches
    from .nets.models import ModelError, get_spec
    from .nets.weights import WeightsError, resolve_weights

    try:
        ds = load_dataset(Path(folder))
        spec = get_spec(model)
        resolved = resolve_weights(spec, weights, seed)
        ex = ExtractorSpec(spec, resolved, (layer,) if layer else None, (pooling,), 1, seed, False).build()
    except (DatasetError, ModelError, WeightsError) as exc:
        raise RunError(str(exc)) from None
    key = ex.names[-1]
    rows = [ex.outputs(b)[key] for b in image_batches([ds.path(i) for i in range(len(ds))], spec.input_size, batch_size)]
    return Embeddings(list(ds.files), {LABEL_FIELD: [ds.classes[int(j)] for j in ds.labels]},
                      np.concatenate(rows).astype(np.float32, copy=False), spec.id, key.split("/", 1)[1], pooling)


EXPORT_FORMATS = ("projector", "parquet", "npz")  # io/exports.py FORMATS


def export(run: Run, fmt: str, dest: str | Path, config: Configuration | None = None) -> list[Path]:
    """Write one configuration of a run as `fmt` (projector | parquet | npz) into the folder `dest`
    (atomically; an existing `dest` must be an earlier export). Returns the files written."""
    from .io.exports import ExportData, write_export
    from .io.workspace import WorkspaceError

    config = config or run.best()
    info = run.dataset(config.dataset)
    ids, dists = run.neighbors(config)
    extras = {"neighbor_ids": ids, "neighbor_distances": dists}
    try:
        extras["map"] = run.map(config)
    except RunError:
        pass  # a run without the umap stage: the other arrays still export
    meta = run._meta("features", config.dataset, config.model)
    described = {"dataset": config.dataset, "model": config.model, "layer": config.layer,
                 "pooling": config.pooling, "metric": config.metric, "weights": meta["weights"],
                 "weights_detail": meta.get("weights_detail"), "label_fields": list(info.labels)}
    data = ExportData(info.paths, info.labels, run.features(config), described, info.root, extras)
    try:
        return write_export(fmt, Path(dest), data)
    except WorkspaceError as exc:
        raise RunError(str(exc)) from None
