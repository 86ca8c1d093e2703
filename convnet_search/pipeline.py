"""Stage order and up-to-date checks: datasets -> extract -> thumbnails -> neighbours / umap -> export -> bundle.

Each stage reads the previous stage's stored output (work folder) and writes its own with a
fingerprint of its inputs, so each can be re-run alone and unchanged work is skipped.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from .bundle import (BUNDLE_VERSION, OWN_FILES, BrowserSearch, BundleInputs, DatasetResults,
                     bundle_is_current, write_bundle)
from .config import RunConfig
from .datasets import Dataset, dataset_fingerprint, load_dataset
from .distributor import Distributor, LocalDistributor, make_distributor
from .extract import ExtractResult, extract_features
from .incremental import MAX_PLACED_FRACTION, basis_of, carried_rows, place_new_points, update_neighbors
from .models import get_spec
from .thumbnails import thumbnails_stage
from .store import ArrayStore, StoredArrays, atomic_write_json, fingerprint
from .weights import ResolvedWeights, resolve_weights
from .workspace import clear_stages, dataset_folder, preflight, prepare_work, work_lock

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


def neighbors_stage(ds: Dataset, feats: StoredArrays, cfg: RunConfig, store: ArrayStore,
                    say: Callable[[str], None] | None = None,
                    distributor: Distributor | None = None) -> StoredArrays:
    from .evaluate import score_window
    from .neighbors import minkowski_method

    distributor = distributor or LocalDistributor()

    fp = fingerprint("neighbors", NEIGHBORS_FORMAT, feats.meta["fingerprint"], cfg.metrics,
                     cfg.minkowski_p, cfg.k, *minkowski_method(len(ds), cfg.metrics))
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
    from .pooling import feature_keys

    return feature_keys([layer["name"] for layer in feats.meta["layers"]], feats.meta["poolings"])


def shared_graph_metrics(cfg: RunConfig) -> list[str]:
    """The neighbours stage's metrics whose graphs UMAP reuses (empty: UMAP builds its own kNN).

    Reuse needs UMAP's metric among the stored ones and k ≥ n_neighbors − 1 (umap-learn counts the
    point itself as its first neighbour; the stage stores min(k, N − 1), which is then enough for
    min(n_neighbors, N − 1) too). Euclidean comes along for layers where cosine falls back to it
    (zero vectors, projection.umap_2d)."""
    from .projection import SHARED_METRICS

    if SHARED_METRICS.get(cfg.umap.metric) not in cfg.metrics or cfg.k < cfg.umap.n_neighbors - 1:
        return []
    return [m for m in ("cosine", "euclidean") if m in cfg.metrics]


def umap_stage(ds: Dataset, feats: StoredArrays, cfg: RunConfig, store: ArrayStore,
               nbrs: StoredArrays | None = None, say: Callable[[str], None] | None = None) -> StoredArrays:
    """One map per feature matrix; reuses the neighbours stage's graph (nbrs) when it fits."""
    from .projection import umap_2d

    shared = shared_graph_metrics(cfg) if nbrs is not None else []
    # The map depends on the stored graph when it reuses one: the neighbours fingerprint says which.
    fp = fingerprint("umap", UMAP_FORMAT, feats.meta["fingerprint"], cfg.umap.__dict__, cfg.seed,
                     *([nbrs.meta["fingerprint"], shared] if shared else []))
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
    from .projection import SHARED_METRICS

    m = SHARED_METRICS.get(cfg.umap.metric)
    return m if m in cfg.metrics else cfg.metrics[0]


def export_stage(feats: StoredArrays, cfg: RunConfig, work: Path,
                 weights: ResolvedWeights | None = None) -> BrowserSearch:
    """Convert the browser model (same weights as its extraction) to TF.js, once per fingerprint.

    weights: what the run resolved for this model (resolved again from cfg when omitted)."""
    import json

    from .preprocess import RESIZE_DESCRIPTION

    meta = feats.meta
    layers = [layer["name"] for layer in meta["layers"]]
    poolings = meta["poolings"]
    fp = fingerprint("tfjs", EXPORT_FORMAT, meta["weights_digest"], layers, poolings, cfg.quantize,
                     meta["input_size"])
    export_dir = work / "tfjs" / f"{meta['model']}-{fp[:16]}"
    info_path = export_dir.with_suffix(".json")
    if not (info_path.exists() and export_dir.is_dir()):
        from .models import build_feature_extractor
        from .tfjs_export import export_tfjs

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
    info = json.loads(info_path.read_text())
    info["preprocess"] = RESIZE_DESCRIPTION
    default = layers[-1]
    return BrowserSearch(meta["model"], export_dir, info, layers, default, int(cfg.browser_budget_mb * 1e6))


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
    from .datasets import DatasetError
    from .evaluate import SCORE_TOP, score_window

    if len(ds) < 2:
        raise DatasetError(f"dataset {ds.id!r} ({ds.root}) has {len(ds)} usable image; "
                           "searching needs at least 2")
    k_eff, top = score_window(len(ds), k)
    if k_eff < k or top < min(SCORE_TOP, k):
        console.print(f"note: dataset {ds.id!r} has {len(ds)} usable images: each query has "
                      f"{k_eff} results (k={k} requested) and the search score uses the top {top}.")


def run(cfg: RunConfig, console: Console | None = None, force: bool = False,
        distributor: Distributor | None = None) -> RunReport:
    """Check --out/--work (workspace.py), reach the distributor, hold the work folder's lock, run
    the stages.

    Raises workspace.WorkspaceError (and its StorageError/BusyError) and distributor.ClusterError
    before anything is written. distributor: made from cfg (and closed) when not given.
    """
    console = console or Console(stderr=True)
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
            if force:
                clear_stages(work)  # only the stage folders: the rest of --work is not ours to delete
            return _run_stages(cfg, console, dist)
    finally:
        if distributor is None:
            dist.close()


def _run_stages(cfg: RunConfig, console: Console, dist: Distributor) -> RunReport:
    report = RunReport(out=cfg.out, distributor=dist.name)
    work = Path(cfg.work)
    feature_store = ArrayStore(work / "features")
    nbr_store, umap_store = ArrayStore(work / "neighbors"), ArrayStore(work / "umap")
    t = time.perf_counter()
    # <work>/scan-cache: unchanged images are neither decoded nor hashed again (datasets._ScanCache)
    datasets = [load_dataset(name, follow_links=cfg.follow_links, cache_dir=work / "scan-cache")
                for name in cfg.datasets]
    ids = [d.id for d in datasets]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise ValueError(f"two datasets share the id(s) {', '.join(sorted(dupes))}; rename a folder")
    for ds in datasets:
        _note_small_dataset(ds, cfg.k, console)
    ds_fps = {d.id: dataset_fingerprint(d) for d in datasets}
    report.datasets = datasets
    report.stage_seconds["datasets"] = time.perf_counter() - t
    # Weights are resolved once per model, before any fingerprint: a missing --weights imagenet
    # file fails here, before hours of work; "auto" warns here if it falls back to random.
    resolved = {m: resolve_weights(get_spec(m), cfg.weights, cfg.seed, cfg.weights_cache)
                for m in cfg.models}

    t = time.perf_counter()
    with _progress(console) as progress:
        for ds in datasets:
            for mid in cfg.models:
                spec = get_spec(mid)
                task = progress.add_task(f"{ds.id} · {spec.name}", total=len(ds))

                def started(todo: int, task=task, n=len(ds)) -> None:
                    progress.update(task, completed=n - todo)
                    progress.reset(task, total=n, completed=n - todo)

                res = extract_features(ds, spec, cfg, feature_store, ds_fp=ds_fps[ds.id],
                                       weights=resolved[mid], on_start=started, distributor=dist,
                                       on_progress=lambda m, task=task: progress.advance(task, m))
                progress.update(task, completed=len(ds),
                                description=f"{ds.id} · {spec.name} [dim]({res.status})[/]")
                report.extract.append(res)
                if res.status == "updated":  # always said: it explains a fast run
                    console.print(f"{ds.id} · {spec.name}: {res.computed} of {res.images} images extracted "
                                  f"in {res.seconds:.1f}s; the unchanged shards were reused")
                elif not console.is_interactive:  # logs (CI, files) get one line per model instead of bars
                    console.print(f"{ds.id} · {spec.name}: {res.images} images, {res.status}"
                                  + (f" in {res.seconds:.1f}s" if res.status != "up to date" else ""))
    report.stage_seconds["extract"] = time.perf_counter() - t

    t = time.perf_counter()
    thumbs = {ds.id: thumbnails_stage(ds, ds_fps[ds.id], work) for ds in datasets}
    report.stage_seconds["thumbnails"] = time.perf_counter() - t

    results: list[DatasetResults] = []
    stage_t = {"neighbors": 0.0, "umap": 0.0}
    for ds in datasets:
        feats = {m: feature_store.load(ds.id, m) for m in cfg.models}
        nbrs, maps = {}, {}
        for m in cfg.models:
            t = time.perf_counter()
            nbrs[m] = neighbors_stage(ds, feats[m], cfg, nbr_store, console.print, dist)
            stage_t["neighbors"] += time.perf_counter() - t
            t = time.perf_counter()
            maps[m] = umap_stage(ds, feats[m], cfg, umap_store, nbrs[m], console.print)
            stage_t["umap"] += time.perf_counter() - t
        results.append(DatasetResults(ds, feats, nbrs, maps, thumbs[ds.id]))
    report.stage_seconds.update(stage_t)

    from .featviz import featviz_stage

    featviz = {}  # model -> FeatvizResult, from the run's first dataset's selectivity
    for mid in featviz_models(cfg, resolved):
        t = time.perf_counter()
        rendered = featviz_stage(results[0].features[mid], cfg.seed, work, resolved[mid])
        report.stage_seconds[f"featviz {mid}"] = time.perf_counter() - t
        if rendered is None:
            console.print(f"[yellow]feature visualizations of {mid} skipped: its features have neither "
                          "an atlas nor avg pooling to choose channels by[/]")
        else:
            featviz[mid] = rendered
            took = rendered.seconds if rendered.status == "rendered" else rendered.recorded_seconds
            console.print(f"feature visualizations {mid}: {len(rendered.layers)} layers, {rendered.status}"
                          f" (compute {took:.1f}s)")

    t = time.perf_counter()
    browser = None
    browser_model = _browser_model(cfg)
    if cfg.browser_search and browser_model in cfg.models:
        browser = export_stage(results[0].features[browser_model], cfg, work, resolved[browser_model])
    elif cfg.browser_search:
        console.print(f"[yellow]browser search skipped: model {browser_model or 'auto (a MobileNet)'!r} "
                      "is not in this run[/]")
    report.stage_seconds["tfjs export"] = time.perf_counter() - t

    t = time.perf_counter()
    kinds = sorted({r.features[m].meta["weights"] for r in results for m in cfg.models})
    report.weights = kinds[0] if len(kinds) == 1 else "mixed"
    # BUNDLE_VERSION is part of it: a bundle written in an older format is rewritten, not kept.
    bundle_fp = fingerprint("bundle", BUNDLE_VERSION,
                            [r.features[m].meta["fingerprint"] for r in results for m in cfg.models],
                            [r.neighbors[m].meta["fingerprint"] for r in results for m in cfg.models],
                            [r.umap[m].meta["fingerprint"] for r in results for m in cfg.models],
                            str(browser.export_dir) if browser else None, cfg.browser_budget_mb, cfg.k, cfg.metrics,
                            [r.thumbs.folder.name for r in results if r.thumbs],  # name = dataset + thumbs fingerprint
                            cfg.minkowski_p, [ds_fps[d.id] for d in datasets],
                            [(d.name, d.description, d.source) for d in datasets],
                            # what the manifest lists: system junk is skipped and listed but not in
                            # the dataset fingerprint (it must not force a re-extraction)
                            [([(x.file, x.reason) for x in d.skipped], d.notes) for d in datasets],
                            *([sorted((m, r.fingerprint) for m, r in featviz.items())] if featviz else []))
    if bundle_is_current(cfg.out, bundle_fp):
        report.bundle_status = "up to date"
    else:
        write_bundle(cfg.out, BundleInputs(results, list(cfg.models), list(cfg.metrics), cfg.minkowski_p,
                                           cfg.k, cfg.pooling, browser,
                                           featviz={m: r.layers for m, r in featviz.items()}), bundle_fp)
        report.bundle_status = "written"
    report.stage_seconds["bundle"] = time.perf_counter() - t
    return report
