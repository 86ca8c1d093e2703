"""Extraction stage: dataset images -> pooled features of every chosen layer, one forward pass each.

Plans content-defined shards, has a distributor run each (nets/extractor.py: reader -> mapper ->
one atomic .npz per shard), then merges them into one HDF5 file with the channel atlas. Shards are
content-defined (shards.py): a killed run resumes at the missing shards, and a run after images
were added or removed copies the unchanged shards from the stored features and extracts only the
rest. A shard is always computed in the same batches, so resumed, updated and cold runs give the
same features bit for bit.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from .. import __version__
from ..config import RunConfig
from ..io.datasets import Dataset, dataset_fingerprint, image_digests
from ..io.decode_cache import DecodeCache, default_budget
from ..io.shards import Shard, plan_shards, reusable_rows, shards_from_meta, shards_to_meta
from ..io.store import ArrayStore, ShardDir, StoredArrays, fingerprint
from ..nets.extractor import ExtractJob, ExtractorSpec, image_batches
from ..nets.models import get_spec, output_keys
from ..nets.spec import ModelSpec
from ..nets.weights import ResolvedWeights, resolve_weights
from ..search import atlas as channel_atlas
from ..search.incremental import carried_runs
from .base import Stage
from .outputs import ExtractResult
from .progress import progress as _progress

if TYPE_CHECKING:
    from ..distribute.base import Distributor
    from .base import RunContext

# 2: one matrix per (pooling, layer), keyed "<pooling>/<layer>"; images larger than 2× the input
# are box-downscaled first (preprocess.area_downscale). 3: content-defined shards (shards.py),
# recorded in the metadata so a later run reuses the unchanged ones. 4: the box factor is even for
# images over 3,136 px, and such JPEGs are decoded at 1/2 (preprocess.area_factor, reduce_scale).
FEATURES_FORMAT = 4
DECODE_CACHE_FOLDER = "decode-cache"  # in the work folder, only while the stage runs


def extraction_fingerprint(ds: Dataset, spec: ModelSpec, cfg: RunConfig, ds_fp: str | None = None,
                           weights: ResolvedWeights | None = None) -> str:
    # The weights actually loaded (file sha256, or random + seed), not the --weights option: an
    # "auto" run that fell back to random is redone once ImageNet weights are in the cache, and an
    # overwritten --weights PATH file is noticed.
    weights = weights or resolve_weights(spec, cfg.weights, cfg.seed, cfg.weights_cache)
    return fingerprint("features", FEATURES_FORMAT, ds_fp or dataset_fingerprint(ds), spec.id,
                       spec.input_size, cfg.layers.get(spec.id), cfg.num_layers, cfg.pooling,
                       weights.fingerprint_key(), cfg.shard_size, cfg.batch_size,
                       # only when on: atlas = false keeps the fingerprints of stores without one
                       *([("atlas", channel_atlas.TOP, channel_atlas.MAP_MAX)] if cfg.atlas else []))


def vectors_fingerprint(ds: Dataset, config_key: str, shard_size: int) -> str:
    """What the feature vectors depend on, and nothing else: the extraction configuration and the
    images' bytes in row order, not their names or labels. Renaming a class folder (or a file)
    keeps it, so the neighbours and the maps, which read only the vectors, stay current; the
    scores also read the labels, so their fingerprint adds them (scores.scores_fingerprint)."""
    return fingerprint("vectors", FEATURES_FORMAT, config_key, shard_size, image_digests(ds))


def vectors_key(feats: "StoredArrays") -> str:
    """The stored features' vectors fingerprint; features written before it existed fall back to
    their full fingerprint (so their neighbours and maps stay current after the upgrade)."""
    return feats.meta.get("vectors") or feats.meta["fingerprint"]


def shard_config(spec: ModelSpec, cfg: RunConfig, weights: ResolvedWeights) -> str:
    """Everything but the images that decides a shard's features (shard keys hash it with them)."""
    return fingerprint("features-shard", FEATURES_FORMAT, spec.id, spec.input_size, cfg.layers.get(spec.id),
                       cfg.num_layers, cfg.pooling, weights.fingerprint_key(), cfg.batch_size,
                       *([("atlas", channel_atlas.TOP, channel_atlas.MAP_MAX)] if cfg.atlas else []))


def extractor_spec(spec: ModelSpec, cfg: RunConfig, weights: ResolvedWeights) -> ExtractorSpec:
    """What the workers build for this run's model: its weights, layers, poolings and atlas switch."""
    return ExtractorSpec(spec, weights, tuple(cfg.layers.get(spec.id) or ()) or None, tuple(cfg.pooling),
                         cfg.num_layers, cfg.seed, bool(cfg.atlas))


@dataclass(frozen=True)
class ExtractPlan:
    """What extract_features will do: the job, and which stored shards it copies."""
    fp: str
    config_key: str
    plan: list[Shard]
    reuse: dict[int, Shard]  # index in plan -> the previous extraction's shard with the same key
    old_meta: dict | None
    job: ExtractJob


def plan_extraction(ds: Dataset, spec: ModelSpec, cfg: RunConfig, store: ArrayStore,
                    ds_fp: str | None = None, weights: ResolvedWeights | None = None,
                    fp: str | None = None, decode_cache: DecodeCache | None = None) -> ExtractPlan:
    """Content-defined shards of `ds`, the ones reusable from the stored features, the job.
    fp: the extraction fingerprint when the caller has it already (else computed here).
    decode_cache: the run's, shared by its models (io/decode_cache.py)."""
    from ..nets.pooling import feature_keys

    weights = weights or resolve_weights(spec, cfg.weights, cfg.seed, cfg.weights_cache)
    fp = fp or extraction_fingerprint(ds, spec, cfg, ds_fp, weights)
    config_key = shard_config(spec, cfg, weights)
    digests = image_digests(ds)
    plan = plan_shards(digests, cfg.shard_size, config_key)
    # Shards of the previous extraction (same configuration) whose images are unchanged are
    # copied from the stored features: adding images re-extracts only the shards around them.
    old_meta = store.read_meta(ds.id, spec.id)
    reuse: dict[int, Shard] = {}
    if (old_meta and old_meta.get("shard_config") == config_key
            and set(feature_keys([x["name"] for x in old_meta.get("layers", [])], cfg.pooling)) <= set(old_meta.get("keys", []))
            and (not cfg.atlas or (old_meta.get("atlas") and "avg" in cfg.pooling))):
        # (the atlas of an update is selected from the avg features: without them, extract all)
        reuse = reusable_rows(shards_from_meta(old_meta.get("shards", [])), plan)
    # In-progress parts are keyed by configuration and shard content, so a killed run resumes
    # even if images were added meanwhile.
    parts = store.path(ds.id, spec.id).with_suffix(f".parts-{config_key[:16]}")
    job = ExtractJob.of(ds, extractor_spec(spec, cfg, weights), parts, plan, cfg.batch_size, list(reuse),
                        digests, decode_cache)
    return ExtractPlan(fp, config_key, plan, reuse, old_meta, job)


def extract_features(ds: Dataset, spec: ModelSpec, cfg: RunConfig, store: ArrayStore, *,
                     ds_fp: str | None = None, weights: ResolvedWeights | None = None,
                     on_progress: Callable[[int], None] | None = None,
                     on_start: Callable[[int], None] | None = None,
                     distributor: "Distributor | None" = None,
                     decode_cache: DecodeCache | None = None) -> ExtractResult:
    """Extract (or resume, update, or skip) the features of `ds` under `spec`; store them in `store`.

    weights: what pipeline.run resolved for this model (resolved here from cfg when omitted).
    distributor: who runs the shards (default: this process, distribute/local.py); the
    result is the same whoever does, so it is not part of the fingerprint.
    decode_cache: the run's (run() makes one when it has several models); same features either way.
    """
    from ..distribute.local import LocalDistributor

    weights = weights or resolve_weights(spec, cfg.weights, cfg.seed, cfg.weights_cache)
    fp = extraction_fingerprint(ds, spec, cfg, ds_fp, weights)
    if store.is_current(ds.id, spec.id, fp):
        return ExtractResult(ds.id, spec.id, len(ds), 0.0, "up to date")

    t0 = time.perf_counter()
    xp = plan_extraction(ds, spec, cfg, store, ds_fp, weights, fp, decode_cache)
    plan, reuse, old_meta, job = xp.plan, xp.reuse, xp.old_meta, xp.job
    run = (distributor or LocalDistributor()).extract(job, on_start=on_start, on_progress=on_progress)
    infos, names = run.infos, output_keys(run.infos, cfg.pooling)
    layer_names = [i.name for i in infos]
    old = store.load(ds.id, spec.id) if reuse else None
    parts = ShardDir(job.shard_dir)
    arrays: dict[str, list[np.ndarray]] = {name: [] for name in names}
    fresh = channel_atlas.ShardsAtlas(layer_names) if cfg.atlas else None
    for i, sh in enumerate(plan):
        if i in reuse:
            o = reuse[i]
            loaded = {name: old.arrays[name][o.start:o.stop] for name in names}
        else:
            loaded = parts.load(sh.key)
            if fresh is not None:
                fresh.add(sh.start, loaded)
        for name in names:
            arrays[name].append(loaded[name])
        del loaded  # the shard's atlas maps are merged: memory stays bounded by the shard, not N
    features = {name: np.ascontiguousarray(np.concatenate(a)) for name, a in arrays.items()}
    if cfg.atlas:  # shards merged in a fixed order and rule: a resumed or updated run stores the same atlas
        features.update(_atlas(ds, plan, reuse, fresh, old, features, layer_names, cfg, job))
    meta = {
        "fingerprint": fp, "generator": f"convnet-search {__version__}", "dataset": ds.id,
        "model": spec.id, "name": spec.name, "input_size": list(spec.input_size),
        "poolings": list(cfg.pooling), "atlas": bool(cfg.atlas), "files": list(ds.files), **run.base_info,
        "layers": [{"name": i.name, "index": i.index, "type": i.type,
                    "output_shape": list(i.output_shape), "dims": {p: i.dim(p) for p in cfg.pooling},
                    "params_cumulative": i.params_cumulative, "depth": i.depth} for i in infos],
        "shard_config": xp.config_key, "shards": shards_to_meta(plan),
        "vectors": vectors_fingerprint(ds, xp.config_key, cfg.shard_size),
    }
    if old_meta and set(names) <= set(old_meta.get("keys", [])) and old_meta.get("shard_config") == xp.config_key:
        # which rows later stages may carry over (incremental.py): bit-equal rows of the same file
        old = old or store.load(ds.id, spec.id)
        meta["previous"] = {"fingerprint": old_meta["fingerprint"], "n": len(old_meta["files"]),
                            "rows": carried_runs(old_meta["files"], old.arrays, list(ds.files), features, names)}
    store.write(ds.id, spec.id, meta, features)
    parts.remove()
    seconds = time.perf_counter() - t0
    resumed = run.computed < sum(len(sh) for i, sh in enumerate(plan) if i not in reuse)
    status = "updated" if reuse else "resumed" if resumed else "extracted"
    return ExtractResult(ds.id, spec.id, len(ds), seconds, status, run.computed, tuple(run.workers))


def _atlas(ds: Dataset, plan, reuse, fresh: channel_atlas.ShardsAtlas, old, features, layers, cfg, job: ExtractJob):
    """The stored channel atlas: merged from every shard's partial atlas, or, when shards were
    reused (their partials are gone), selected from the avg features with the maps of the fresh
    shards and of the previous atlas, plus a small extra pass for maps neither has."""
    from ..search.incremental import updated_atlas

    if not reuse:
        return fresh.stored(features)
    new_of_old = np.full(len(old.meta["files"]), -1, dtype=np.int64)
    fresh_rows = np.ones(len(ds), dtype=bool)
    for i, o in reuse.items():
        new_of_old[o.start:o.stop] = np.arange(plan[i].start, plan[i].stop)
        fresh_rows[plan[i].start:plan[i].stop] = False
    out: dict[str, np.ndarray] = {}
    todo: dict[str, tuple] = {}
    for layer in layers:
        prefix = f"atlas/{layer}"
        fresh_part = fresh.parts[layer]  # None when no shard was extracted afresh
        old_part = channel_atlas.stored_atlas(old.arrays, layer)[0]
        ids, values, maps, missing = updated_atlas(features[f"avg/{layer}"], fresh_rows, fresh_part, old_part,
                                                   new_of_old, channel_atlas.TOP)
        todo[layer] = (ids, maps, missing)
        out.update({f"{prefix}/ids": ids.astype(np.uint32), f"{prefix}/values": values, f"{prefix}/maps": maps,
                    f"{prefix}/selectivity": channel_atlas.selectivity(features[f"avg/{layer}"])})
    need = sorted({int(i) for ids, _, missing in todo.values() for i in ids[missing]})
    if need:  # a small extra pass over the images whose maps neither source had
        ex = job.extractor.build()  # here, on the driver: the few images of one update
        got: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
        for batch in image_batches([ds.path(i) for i in need], job.extractor.model.input_size, cfg.batch_size):
            outs = ex.outputs(batch)
            for layer in layers:
                got[layer].append(outs[f"atlas/{layer}/map"])
        row = {img: j for j, img in enumerate(need)}
        for layer in layers:
            ids, maps, missing = todo[layer]
            small = np.concatenate(got[layer])  # [len(need), h, w, C]
            for ch, r in zip(*np.nonzero(missing)):
                maps[ch, r] = small[row[int(ids[ch, r])], :, :, ch]
    return out


def feature_matrix_keys(feats: StoredArrays) -> list[str]:
    """Every (pooling, layer) matrix of a features file, in the extractor's output order."""
    from ..nets.pooling import feature_keys

    return feature_keys([layer["name"] for layer in feats.meta["layers"]], feats.meta["poolings"])


def run_decode_cache(ctx: RunContext) -> DecodeCache | None:
    """With several models, their readers share one decode of each image (io/decode_cache.py)."""
    sizes = tuple(dict.fromkeys(tuple(get_spec(m).input_size) for m in ctx.cfg.models))
    if len(ctx.cfg.models) < 2:
        return None
    root = ctx.work / DECODE_CACHE_FOLDER
    return DecodeCache(root, sizes, default_budget(root))


def run(ctx: RunContext) -> None:
    store = ctx.store("features")
    cache = run_decode_cache(ctx)
    _run(ctx, store, cache)
    if cache is not None:  # done: a stopped run keeps it, and the next run resumes from it
        cache.remove()
    _note_weights(ctx)


def _run(ctx: RunContext, store: ArrayStore, cache: DecodeCache | None) -> None:
    resolved, console = ctx.weights, ctx.console
    with _progress(console) as progress:
        for res, mid in ctx.items():
            ds, spec = res.dataset, get_spec(mid)
            task = progress.add_task(f"extract {ds.id} · {spec.name}", total=len(ds))

            def started(todo: int, task=task, n=len(ds)) -> None:
                if todo:  # (nothing to do: the line at the end says so, no early "done")
                    progress.update(task, completed=n - todo)
                progress.reset(task, total=n, completed=n - todo)

            r = extract_features(ds, spec, ctx.cfg, store, ds_fp=ctx.ds_fps[ds.id], weights=resolved[mid],
                                 on_start=started, distributor=ctx.dist, decode_cache=cache,
                                 on_progress=lambda m, task=task: progress.advance(task, m))
            if r.status == "up to date":  # no work, so no speed to show
                progress.reset(task, total=len(ds), completed=len(ds))
            progress.update(task, completed=len(ds), description=f"extract {ds.id} · {spec.name} [dim]({r.status})[/]")
            ctx.report.extract.append(r)
            if r.status == "updated":  # always said: it explains a fast run
                console.print(f"{ds.id} · {spec.name}: {r.computed} of {r.images} images extracted "
                              f"in {r.seconds:.1f}s; the unchanged shards were reused")
            res.features[mid] = store.load(ds.id, mid)


def load(ctx: RunContext) -> None:
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


STAGE = Stage("extract", run, load, ("datasets",), ("features", DECODE_CACHE_FOLDER))
