"""The stages and the run: datasets -> extract -> thumbnails -> neighbours -> umap -> scores ->
featviz -> tfjs -> bundle (stages.py: the contract they follow).

Each stage reads the previous stages' stored outputs (work folder) and writes its own with a
fingerprint of its inputs, so unchanged work is skipped and `--only STAGE` runs one stage alone.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from .stages.bundle import (BUNDLE_VERSION, OWN_FILES, BrowserSearch, BundleInputs, DatasetResults,
                     bundle_is_current, write_bundle)
from .config import RunConfig
from .io.datasets import Dataset, dataset_fingerprint, load_dataset
from .distribute.distributor import Distributor, LocalDistributor, make_distributor
from .stages.extract import ExtractResult, extract_features, extraction_fingerprint
from .search.incremental import MAX_PLACED_FRACTION, basis_of, carried_rows, place_new_points, update_neighbors
from .nets.models import get_spec
from .stages.scores import SCORES_FORMAT, scores_fingerprint, scores_stage
from .stages.base import STAGE_NAMES, Stage, StageInputMissing, plan
from .stages.thumbnails import thumbnail_sheets, thumbnails_current, thumbnails_stage
from .io.store import ArrayStore, StoredArrays, atomic_write_json, fingerprint
from .nets.weights import ResolvedWeights, resolve_weights
from .io.workspace import STAGE_DIRS, clear_stages, dataset_folder, preflight, prepare_work, work_lock

if TYPE_CHECKING:
    from .stages.featviz import FeatvizResult

log = logging.getLogger(__name__)
NEIGHBORS_FORMAT = 2  # 2: keys "<pooling>/<layer>/<metric>/ids|dists"
UMAP_FORMAT = 2  # 2: keys "<pooling>/<layer>"
EXPORT_FORMAT = 4  # 2: model_sha256 recorded; 3: one output per (layer, pooling); 4: + spatial maps


@dataclass
class RunReport:
    extract: list[ExtractResult] = field(default_factory=list)
    datasets: list[Dataset] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    bundle_status: str = ""
    distributor: str = "local"
    weights: str = ""
    out: Path | None = None


class _SpeedColumn(TextColumn):
    def __init__(self) -> None:
        super().__init__("")

    def render(self, task):  # images/s of the current task
        speed = task.finished_speed or task.speed
        return f"{speed:6.1f} img/s" if speed else "       img/s"


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TaskProgressColumn(), _SpeedColumn(), TimeElapsedColumn(), TextColumn("ETA"),
                    TimeRemainingColumn(), console=console, transient=False)


def neighbors_fingerprint(ds: Dataset, feats: StoredArrays, cfg: RunConfig) -> str:
    from .search.neighbors import minkowski_method

    return fingerprint("neighbors", NEIGHBORS_FORMAT, feats.meta["fingerprint"], cfg.metrics,
                       cfg.minkowski_p, cfg.k, *minkowski_method(len(ds), cfg.metrics))


def neighbors_stage(ds: Dataset, feats: StoredArrays, cfg: RunConfig, store: ArrayStore,
                    say: Callable[[str], None] | None = None,
                    distributor: Distributor | None = None) -> StoredArrays:
    from .search.evaluate import score_window
    from .search.neighbors import minkowski_method

    distributor = distributor or LocalDistributor()

    fp = neighbors_fingerprint(ds, feats, cfg)
    model = feats.meta["model"]
    if not store.is_current(ds.id, model, fp):
        arrays: dict[str, np.ndarray] = {}
        how: dict[str, dict] = {}  # per matrix: how minkowski was computed (exact / recall measured)
        k = score_window(len(ds), cfg.k)[0]
        params = [list(cfg.metrics), cfg.minkowski_p, k, list(minkowski_method(len(ds), cfg.metrics))]
        old = _previous(store, ds.id, model, feats, params)
        merged = recomputed = 0
        for key in _feature_keys(feats):
            x = feats.arrays[key]
            if old is not None:  # images added or removed: update the stored lists (incremental.py)
                rule = (old[0].meta.get("minkowski") or {}).get(key) or {}
                for metric in cfg.metrics:
                    ids, dists, st = update_neighbors(x, k, metric, old[0].arrays[f"{key}/{metric}/ids"],
                                                      old[0].arrays[f"{key}/{metric}/dists"], old[1], p=cfg.minkowski_p,
                                                      minkowski_candidates=rule.get("candidates"))
                    arrays[f"{key}/{metric}/ids"], arrays[f"{key}/{metric}/dists"] = ids.astype(np.int32), dists
                    merged, recomputed = merged + st.merged, recomputed + st.recomputed
                continue
            # all metrics of one matrix at once: euclidean and sqeuclidean share one top-k
            # (top_k_neighbors_multi; on Ray as row blocks, merged into the same arrays)
            report: dict = {}
            results = distributor.neighbors(x, k, cfg.metrics, cfg.minkowski_p, report=report)
            how.update({key: report["minkowski"]} if "minkowski" in report else {})
            for metric, (ids, dists) in results.items():
                arrays[f"{key}/{metric}/ids"] = ids.astype(np.int32)
                arrays[f"{key}/{metric}/dists"] = dists.astype(np.float32)
        update = {"rows_merged": merged, "rows_searched": recomputed} if old is not None else None
        if update and say:
            say(f"{ds.id} · {model}: neighbours updated, not recomputed: {merged} rows merged with the "
                f"new images, {recomputed} searched again (all configurations)")
        if old is not None:  # the recall measured on the full run still describes the candidate rule
            how = old[0].meta.get("minkowski") or {}
        store.write(ds.id, model, {"fingerprint": fp, "params": params, "basis": basis_of(feats.meta),
                                   "update": update, "minkowski": how}, arrays)
    return store.load(ds.id, model)


def _previous(store: ArrayStore, dataset: str, model: str, feats: StoredArrays, params: list):
    """(stored output, old row → new row) when a stored output of an earlier extraction can be
    updated instead of recomputed (same parameters, rows related by shards), else None."""
    meta = store.read_meta(dataset, model)
    if not meta or meta.get("params") != params:
        return None
    rows = carried_rows(meta.get("basis"), feats.meta)
    if rows is None or not np.any(rows >= 0):
        return None
    return store.load(dataset, model), rows


def _feature_keys(feats: StoredArrays) -> list[str]:
    """Every (pooling, layer) matrix of a features file, in the extractor's output order."""
    from .nets.pooling import feature_keys

    return feature_keys([layer["name"] for layer in feats.meta["layers"]], feats.meta["poolings"])


def shared_graph_metrics(cfg: RunConfig) -> list[str]:
    """The neighbours stage's metrics whose graphs UMAP reuses (empty: UMAP builds its own kNN).

    Reuse needs UMAP's metric among the stored ones and k ≥ n_neighbors − 1 (umap-learn counts the
    point itself as its first neighbour; the stage stores min(k, N − 1), which is then enough for
    min(n_neighbors, N − 1) too). Euclidean comes along for layers where cosine falls back to it
    (zero vectors, projection.umap_2d)."""
    from .search.projection import SHARED_METRICS

    if SHARED_METRICS.get(cfg.umap.metric) not in cfg.metrics or cfg.k < cfg.umap.n_neighbors - 1:
        return []
    return [m for m in ("cosine", "euclidean") if m in cfg.metrics]


def umap_fingerprint(feats: StoredArrays, cfg: RunConfig, nbrs: StoredArrays | None) -> str:
    shared = shared_graph_metrics(cfg) if nbrs is not None else []
    # The map depends on the stored graph when it reuses one: the neighbours fingerprint says which.
    return fingerprint("umap", UMAP_FORMAT, feats.meta["fingerprint"], cfg.umap.__dict__, cfg.seed,
                       *([nbrs.meta["fingerprint"], shared] if shared else []))


def umap_stage(ds: Dataset, feats: StoredArrays, cfg: RunConfig, store: ArrayStore,
               nbrs: StoredArrays | None = None, say: Callable[[str], None] | None = None) -> StoredArrays:
    """One map per feature matrix; reuses the neighbours stage's graph (nbrs) when it fits."""
    from .search.projection import umap_2d

    shared = shared_graph_metrics(cfg) if nbrs is not None else []
    fp = umap_fingerprint(feats, cfg, nbrs)
    model = feats.meta["model"]
    if not store.is_current(ds.id, model, fp):
        arrays = {}
        params = [cfg.umap.__dict__, cfg.seed, shared]
        old = _previous(store, ds.id, model, feats, params) if nbrs is not None else None
        placed_before = (old[0].meta.get("placed") or 0) if old is not None else 0
        fresh = len(ds) - int(np.sum(old[1] >= 0)) if old is not None else 0
        if old is not None and placed_before + fresh > MAX_PLACED_FRACTION * len(ds):
            old = None  # too many points placed by neighbours: lay the map out again
        for key in _feature_keys(feats):
            if old is not None:  # a few images added: place them among their neighbours
                graph = nbrs.arrays[f"{key}/{_placement_metric(cfg)}/ids"]
                arrays[key] = place_new_points(old[0].arrays[key], old[1], graph, cfg.seed)[0]
                continue
            graphs = {m: (nbrs.arrays[f"{key}/{m}/ids"], nbrs.arrays[f"{key}/{m}/dists"]) for m in shared}
            arrays[key] = umap_2d(feats.arrays[key], cfg.umap, cfg.seed, graphs)
        if old is not None and say:
            say(f"{ds.id} · {model}: {fresh} new images placed on the existing maps by their neighbours "
                f"({placed_before + fresh} so far; the maps are laid out again past "
                f"{MAX_PLACED_FRACTION:.0%} of the images or with --force)")
        store.write(ds.id, model, {"fingerprint": fp, "params": params, "basis": basis_of(feats.meta),
                                   "placed": placed_before + fresh if old is not None else 0}, arrays)
    return store.load(ds.id, model)


def _placement_metric(cfg: RunConfig) -> str:
    """The stored neighbours that place new points on an existing map: UMAP's metric if stored."""
    from .search.projection import SHARED_METRICS

    m = SHARED_METRICS.get(cfg.umap.metric)
    return m if m in cfg.metrics else cfg.metrics[0]


def export_stage(feats: StoredArrays, cfg: RunConfig, work: Path,
                 weights: ResolvedWeights | None = None) -> BrowserSearch:
    """Convert the browser model (same weights as its extraction) to TF.js, once per fingerprint.

    weights: what the run resolved for this model (resolved again from cfg when omitted)."""
    meta = feats.meta
    layers = [layer["name"] for layer in meta["layers"]]
    poolings = meta["poolings"]
    export_dir = export_folder(feats, cfg, work)
    info_path = export_dir.with_suffix(".json")
    if not export_current(export_dir):
        from .nets.models import build_feature_extractor
        from .nets.tfjs_export import export_tfjs

        spec = get_spec(meta["model"])
        weights = weights or resolve_weights(spec, cfg.weights, cfg.seed, cfg.weights_cache)
        model, infos, base_info = build_feature_extractor(
            spec, layers, weights=weights, pooling=poolings, seed=cfg.seed, spatial=True)
        if base_info["weights_digest"] != meta["weights_digest"]:
            raise RuntimeError(f"{meta['model']}: rebuilt weights differ from the extracted ones; "
                               "cannot export a TF.js model that matches the dataset features")
        # Signature keys without "/": one output per (layer, pooling), in output_keys order.
        pairs = [(i.name, p) for i in infos for p in poolings]
        # Then each layer's raw map ("spatial__<layer>"): the browser's "why similar?" maps.
        exp = export_tfjs(model, [f"{p}__{layer}" for layer, p in pairs], export_dir, quantize=cfg.quantize,
                          spatial_names=[f"spatial__{i.name}" for i in infos])
        outputs = [{"layer": layer, "pooling": p, "dim": o["dim"], "output": o["output"]}
                   for (layer, p), o in zip(pairs, exp.outputs)]
        spatial = [{"layer": i.name, "output": o["output"], "shape": o["shape"]}
                   for i, o in zip(infos, exp.spatial_outputs)]
        atomic_write_json(info_path, {"model_bytes": exp.model_bytes, "model_sha256": exp.model_sha256,
                                      "quantization": exp.quantization, "outputs": outputs,
                                      "spatial_outputs": spatial})
    return stored_export(feats, cfg, export_dir)


def export_folder(feats: StoredArrays, cfg: RunConfig, work: Path) -> Path:
    """<work>/tfjs/<model>-<fingerprint>: the export of these features' weights, layers, poolings."""
    meta = feats.meta
    fp = fingerprint("tfjs", EXPORT_FORMAT, meta["weights_digest"], [layer["name"] for layer in meta["layers"]],
                     meta["poolings"], cfg.quantize, meta["input_size"])
    return work / "tfjs" / f"{meta['model']}-{fp[:16]}"


def export_current(export_dir: Path) -> bool:
    return export_dir.with_suffix(".json").exists() and export_dir.is_dir()


def stored_export(feats: StoredArrays, cfg: RunConfig, export_dir: Path) -> BrowserSearch:
    import json

    from .nets.preprocess import RESIZE_DESCRIPTION

    info = json.loads(export_dir.with_suffix(".json").read_text())
    info["preprocess"] = RESIZE_DESCRIPTION
    layers = [layer["name"] for layer in feats.meta["layers"]]
    return BrowserSearch(feats.meta["model"], export_dir, info, layers, layers[-1],
                         int(cfg.browser_budget_mb * 1e6))


def _browser_model(cfg: RunConfig) -> str | None:
    """The model exported for in-browser search: as configured, or (auto) the run's first MobileNet."""
    if cfg.browser_model != "auto":
        return cfg.browser_model
    return next((m for m in cfg.models if get_spec(m).constructor == "MobileNet"), None)


def featviz_models(cfg: RunConfig, weights: dict[str, ResolvedWeights]) -> list[str]:
    """Models to visualize: as configured; "auto" is the exported browser model when its weights are
    trained (activation maximization of random weights shows nothing; name the model to get it)."""
    out: list[str] = []
    for m in cfg.featviz_models:
        if m == "auto":
            m = _browser_model(cfg) if cfg.browser_search else None
            if m is None or m not in weights or weights[m].kind == "random":
                continue
        if m in cfg.models and m not in out:
            out.append(m)
    return out


def _note_small_dataset(ds: Dataset, k: int, console: Console) -> None:
    """A folder of n ≥ 2 images runs with k and the score window shrunk to n − 1 (one line says so)."""
    from .io.datasets import DatasetError
    from .search.evaluate import SCORE_TOP, score_window

    if len(ds) < 2:
        raise DatasetError(f"dataset {ds.id!r} ({ds.root}) has {len(ds)} usable image; "
                           "searching needs at least 2")
    k_eff, top = score_window(len(ds), k)
    if k_eff < k or top < min(SCORE_TOP, k):
        console.print(f"note: dataset {ds.id!r} has {len(ds)} usable images: each query has "
                      f"{k_eff} results (k={k} requested) and the search score uses the top {top}.")


# ---------------------------------------------------------------------------------------------
# The run: a loop over STAGES (stages.py: the contract), sharing one RunContext
# ---------------------------------------------------------------------------------------------

@dataclass
class RunContext:
    """What the stages of one run share: the config, where they write, and each stage's outputs as
    they are computed (or, under --only, read back from the work folder)."""
    cfg: RunConfig
    console: Console
    dist: Distributor
    report: RunReport
    only: str | None = None
    force: bool = False
    results: list[DatasetResults] = field(default_factory=list)  # per dataset, filled stage by stage
    ds_fps: dict[str, str] = field(default_factory=dict)
    featviz: dict[str, FeatvizResult] = field(default_factory=dict)  # model -> its visualizations
    browser: BrowserSearch | None = None
    _weights: dict[str, ResolvedWeights] | None = None

    @property
    def work(self) -> Path:
        return Path(self.cfg.work)

    def store(self, folder: str) -> ArrayStore:
        return ArrayStore(self.work / folder)

    @property
    def weights(self) -> dict[str, ResolvedWeights]:
        """Resolved once per model, before the first fingerprint that needs them: a missing
        --weights imagenet file fails before hours of work; "auto" warns here if it falls back."""
        if self._weights is None:
            cfg = self.cfg
            self._weights = {m: resolve_weights(get_spec(m), cfg.weights, cfg.seed, cfg.weights_cache)
                             for m in cfg.models}
        return self._weights

    def items(self) -> list[tuple[DatasetResults, str]]:
        """The (dataset, model) work items of the per-model stages, in run order."""
        return [(r, m) for r in self.results for m in self.cfg.models]

    def missing(self, stage: str, what: str) -> StageInputMissing:
        return StageInputMissing(self.only or "?", stage, what)


def _datasets(ctx: RunContext) -> None:
    cfg = ctx.cfg
    # <work>/scan-cache: unchanged images are neither decoded nor hashed again (datasets._ScanCache)
    datasets = [load_dataset(name, follow_links=cfg.follow_links, cache_dir=ctx.work / "scan-cache")
                for name in cfg.datasets]
    ids = [d.id for d in datasets]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise ValueError(f"two datasets share the id(s) {', '.join(sorted(dupes))}; rename a folder")
    for ds in datasets:
        _note_small_dataset(ds, cfg.k, ctx.console)
    ctx.ds_fps = {d.id: dataset_fingerprint(d) for d in datasets}
    ctx.results = [DatasetResults(d, {}, {}, {}) for d in datasets]
    ctx.report.datasets = datasets


def _extract(ctx: RunContext) -> None:
    resolved, console, store = ctx.weights, ctx.console, ctx.store("features")
    with _progress(console) as progress:
        for res, mid in ctx.items():
            ds, spec = res.dataset, get_spec(mid)
            task = progress.add_task(f"{ds.id} · {spec.name}", total=len(ds))

            def started(todo: int, task=task, n=len(ds)) -> None:
                progress.update(task, completed=n - todo)
                progress.reset(task, total=n, completed=n - todo)

            r = extract_features(ds, spec, ctx.cfg, store, ds_fp=ctx.ds_fps[ds.id], weights=resolved[mid],
                                 on_start=started, distributor=ctx.dist,
                                 on_progress=lambda m, task=task: progress.advance(task, m))
            progress.update(task, completed=len(ds), description=f"{ds.id} · {spec.name} [dim]({r.status})[/]")
            ctx.report.extract.append(r)
            if r.status == "updated":  # always said: it explains a fast run
                console.print(f"{ds.id} · {spec.name}: {r.computed} of {r.images} images extracted "
                              f"in {r.seconds:.1f}s; the unchanged shards were reused")
            elif not console.is_interactive:  # logs (CI, files) get one line per model instead of bars
                console.print(f"{ds.id} · {spec.name}: {r.images} images, {r.status}"
                              + (f" in {r.seconds:.1f}s" if r.status != "up to date" else ""))
            res.features[mid] = store.load(ds.id, mid)
    _note_weights(ctx)


def _load_features(ctx: RunContext) -> None:
    store = ctx.store("features")
    for res, mid in ctx.items():
        ds = res.dataset
        fp = extraction_fingerprint(ds, get_spec(mid), ctx.cfg, ctx.ds_fps[ds.id], ctx.weights[mid])
        if not store.is_current(ds.id, mid, fp):
            raise ctx.missing("extract", f"{ds.id} · {mid}")
        res.features[mid] = store.load(ds.id, mid)
    _note_weights(ctx)


def _note_weights(ctx: RunContext) -> None:
    kinds = sorted({r.features[m].meta["weights"] for r, m in ctx.items()})
    ctx.report.weights = kinds[0] if len(kinds) == 1 else "mixed"


def _thumbnails(ctx: RunContext) -> None:
    for res in ctx.results:
        res.thumbs = thumbnails_stage(res.dataset, ctx.ds_fps[res.dataset.id], ctx.work)


def _load_thumbnails(ctx: RunContext) -> None:
    for res in ctx.results:
        sheets, _ = thumbnail_sheets(res.dataset, ctx.ds_fps[res.dataset.id], ctx.work)
        if not thumbnails_current(sheets):
            raise ctx.missing("thumbnails", res.dataset.id)
        res.thumbs = sheets


def _neighbors(ctx: RunContext) -> None:
    for res, mid in ctx.items():
        res.neighbors[mid] = neighbors_stage(res.dataset, res.features[mid], ctx.cfg, ctx.store("neighbors"),
                                             ctx.console.print, ctx.dist)


def _umap(ctx: RunContext) -> None:
    for res, mid in ctx.items():
        res.umap[mid] = umap_stage(res.dataset, res.features[mid], ctx.cfg, ctx.store("umap"),
                                   res.neighbors[mid], ctx.console.print)


def _scores(ctx: RunContext) -> None:
    for res, mid in ctx.items():
        res.scores[mid] = scores_stage(res.dataset, res.features[mid], res.neighbors[mid], list(ctx.cfg.metrics),
                                       ctx.cfg.k, ctx.store("scores"))


def _loader(stage: str, fp: Callable[[RunContext, DatasetResults, str], str]):
    """`load` of a stage storing one ArrayStore file per (dataset, model): fp gives the fingerprint
    its `run` would compute (from the outputs loaded before it). Folder and DatasetResults field:
    the stage name."""
    def load(ctx: RunContext) -> None:
        store = ctx.store(stage)
        for res, mid in ctx.items():
            if not store.is_current(res.dataset.id, mid, fp(ctx, res, mid)):
                raise ctx.missing(stage, f"{res.dataset.id} · {mid}")
            getattr(res, stage)[mid] = store.load(res.dataset.id, mid)
    return load


def _featviz(ctx: RunContext) -> None:
    from .stages.featviz import featviz_stage

    for mid in featviz_models(ctx.cfg, ctx.weights):  # from the run's first dataset's selectivity
        rendered = featviz_stage(ctx.results[0].features[mid], ctx.cfg.seed, ctx.work, ctx.weights[mid])
        if rendered is None:
            ctx.console.print(f"[yellow]feature visualizations of {mid} skipped: its features have neither "
                              "an atlas nor avg pooling to choose channels by[/]")
            continue
        ctx.featviz[mid] = rendered
        took = rendered.seconds if rendered.status == "rendered" else rendered.recorded_seconds
        ctx.console.print(f"feature visualizations {mid}: {len(rendered.layers)} layers, {rendered.status}"
                          f" (compute {took:.1f}s)")


def _load_featviz(ctx: RunContext) -> None:
    from .stages.featviz import stored_featviz

    for mid in featviz_models(ctx.cfg, ctx.weights):
        stored = stored_featviz(ctx.results[0].features[mid], ctx.cfg.seed, ctx.work)
        if stored is not None and stored.status != "up to date":
            raise ctx.missing("featviz", mid)
        if stored is not None:
            ctx.featviz[mid] = stored


def _export_model(ctx: RunContext) -> str | None:
    """The model to export for in-browser search, if the run has one (says why not otherwise)."""
    model = _browser_model(ctx.cfg)
    if ctx.cfg.browser_search and model not in ctx.cfg.models:
        ctx.console.print(f"[yellow]browser search skipped: model {model or 'auto (a MobileNet)'!r} "
                          "is not in this run[/]")
    return model if ctx.cfg.browser_search and model in ctx.cfg.models else None


def _export(ctx: RunContext) -> None:
    if model := _export_model(ctx):
        ctx.browser = export_stage(ctx.results[0].features[model], ctx.cfg, ctx.work, ctx.weights[model])


def _load_export(ctx: RunContext) -> None:
    if model := _export_model(ctx):
        feats = ctx.results[0].features[model]
        folder = export_folder(feats, ctx.cfg, ctx.work)
        if not export_current(folder):
            raise ctx.missing("tfjs", model)
        ctx.browser = stored_export(feats, ctx.cfg, folder)


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
                       # what the manifest lists: system junk is skipped and listed but not in
                       # the dataset fingerprint (it must not force a re-extraction)
                       [([(x.file, x.reason) for x in d.skipped], d.notes) for d in datasets],
                       *([sorted((m, r.fingerprint) for m, r in featviz.items())] if featviz else []),
                       *([("scores", SCORES_FORMAT)] if SCORES_FORMAT > 1 else []))


def _bundle(ctx: RunContext) -> None:
    """Only serializes the stored outputs (bundle.py); `--force --only bundle` rewrites a current one."""
    cfg, fp = ctx.cfg, bundle_fingerprint(ctx)
    if bundle_is_current(cfg.out, fp) and not (ctx.force and ctx.only == "bundle"):
        ctx.report.bundle_status = "up to date"
        return
    write_bundle(cfg.out, BundleInputs(ctx.results, list(cfg.models), list(cfg.metrics), cfg.minkowski_p,
                                       cfg.k, cfg.pooling, ctx.browser,
                                       featviz={m: r.layers for m, r in ctx.featviz.items()}), fp)
    ctx.report.bundle_status = "written"


def _cannot_load(ctx: RunContext) -> None:
    raise AssertionError("no stage reads the bundle")


_FEATURES = ("datasets", "extract")
_NEIGHBORS = (*_FEATURES, "neighbors")
STAGES = (  # name, run, load, needs, folders in --work
    Stage("datasets", _datasets, _datasets, (), ("scan-cache",)),
    Stage("extract", _extract, _load_features, ("datasets",), ("features",)),
    Stage("thumbnails", _thumbnails, _load_thumbnails, ("datasets",), ("thumbs",)),
    Stage("neighbors", _neighbors, _loader("neighbors", lambda ctx, r, m: neighbors_fingerprint(
        r.dataset, r.features[m], ctx.cfg)), _FEATURES, ("neighbors",)),
    Stage("umap", _umap, _loader("umap", lambda ctx, r, m: umap_fingerprint(
        r.features[m], ctx.cfg, r.neighbors[m])), _NEIGHBORS, ("umap",)),
    Stage("scores", _scores, _loader("scores", lambda ctx, r, m: scores_fingerprint(
        r.dataset, r.neighbors[m], ctx.cfg.k)), _NEIGHBORS, ("scores",)),
    Stage("featviz", _featviz, _load_featviz, _FEATURES, ("featviz",)),
    Stage("tfjs", _export, _load_export, _FEATURES, ("tfjs",)),
    Stage("bundle", _bundle, _cannot_load, STAGE_NAMES[:-1]),
)
assert tuple(s.name for s in STAGES) == STAGE_NAMES  # stages.py holds the names for the CLI


def run(cfg: RunConfig, console: Console | None = None, force: bool = False,
        distributor: Distributor | None = None, only: str | None = None) -> RunReport:
    """Check --out/--work (workspace.py), reach the distributor, hold the work folder's lock, run
    the stages (all, or with `only` that one: stages.plan).

    force: discard the stored outputs first (every stage's, or with `only` that stage's).
    Raises workspace.WorkspaceError (and its StorageError/BusyError) and distributor.ClusterError
    before anything is written, StageInputMissing when `only`'s inputs are not stored.
    distributor: made from cfg (and closed) when not given.
    """
    console = console or Console(stderr=True)
    steps = plan(STAGES, only)  # an unknown stage name fails here, before anything else
    work = Path(cfg.work)
    folders = {name: dataset_folder(name) for name in cfg.datasets}
    for name, folder in folders.items():
        if not folder.is_dir():
            load_dataset(name, follow_links=cfg.follow_links)  # its usual error, before any folder is created
    preflight(Path(cfg.out), work, folders.values(), OWN_FILES)
    dist = distributor or make_distributor(cfg)
    try:
        dist.connect()  # an unreachable cluster fails here, with nothing written
        prepare_work(work)
        with work_lock(work):
            if force:  # only the stage folders: the rest of --work is not ours to delete
                clear_stages(work, next(s.folders for s, how in steps if how == "run") if only else STAGE_DIRS)
            ctx = RunContext(cfg, console, dist, RunReport(out=cfg.out, distributor=dist.name), only, force)
            return _run_stages(ctx, steps)
    finally:
        if distributor is None:
            dist.close()


def _run_stages(ctx: RunContext, steps: list[tuple[Stage, str]]) -> RunReport:
    """Each stage in order: run it (timed for the summary table), or under --only read back what
    the chosen stage needs."""
    for stage, how in steps:
        t = time.perf_counter()
        (stage.run if how == "run" else stage.load)(ctx)
        if how == "run" or stage.name == "datasets":
            ctx.report.stage_seconds[stage.name] = time.perf_counter() - t
    if ctx.only and ctx.only != "bundle":
        ctx.report.bundle_status = f"not written (--only {ctx.only})"
    return ctx.report
