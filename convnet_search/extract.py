"""Extraction stage: dataset images -> pooled features of every chosen layer, one forward pass each.

Reader (decode + the one resize path, in a tf.data pipeline) -> mapper (a tf.function over the
multi-output model) -> writer (one atomic .npz per shard, then one HDF5 file). Shards are
content-defined (shards.py): a killed run resumes at the missing shards, and a run after images
were added or removed copies the unchanged shards from the stored features and extracts only the
rest. A shard is always computed in the same batches, so resumed, updated and cold runs give the
same features bit for bit.
"""
from __future__ import annotations

import itertools
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import __version__
from . import atlas as channel_atlas
from .config import RunConfig
from .datasets import Dataset, dataset_fingerprint, image_digests
from .images import load_rgb
from .incremental import carried_runs
from .models import ModelSpec, output_keys
from .shards import Shard, plan_shards, reusable_rows, shards_from_meta, shards_to_meta
from .store import ArrayStore, ShardDir, fingerprint
from .weights import ResolvedWeights, resolve_weights

# 2: one matrix per (pooling, layer), keyed "<pooling>/<layer>"; images larger than 2× the input
# are box-downscaled first (preprocess.area_downscale). 3: content-defined shards (shards.py),
# recorded in the metadata so a later run reuses the unchanged ones.
FEATURES_FORMAT = 3


@dataclass(frozen=True)
class ExtractResult:
    dataset: str
    model: str
    images: int
    seconds: float
    status: str  # "extracted" | "resumed" | "updated" (unchanged shards reused) | "up to date"
    # Images run through the model in this call: a resumed run skips the finished shards, and
    # counting those would overstate its speed. None: all `images`.
    computed: int | None = None

    @property
    def images_per_s(self) -> float:
        n = self.images if self.computed is None else self.computed
        return n / self.seconds if self.seconds > 0 and self.status != "up to date" else float("nan")


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


# Decode threads of the extraction reader (0: decode inline in tf.data's generator thread, the
# pre-pool behaviour, kept for bench/bench_extract.py's before/after row). Pillow's decoders and
# numpy's reductions release the GIL, so decoding overlaps the forward pass on the other core.
DECODE_THREADS = max(1, min(4, os.cpu_count() or 1))


def shard_config(spec: ModelSpec, cfg: RunConfig, weights: ResolvedWeights) -> str:
    """Everything but the images that decides a shard's features (shard keys hash it with them)."""
    return fingerprint("features-shard", FEATURES_FORMAT, spec.id, spec.input_size, cfg.layers.get(spec.id),
                       cfg.num_layers, cfg.pooling, weights.fingerprint_key(), cfg.batch_size,
                       *([("atlas", channel_atlas.TOP, channel_atlas.MAP_MAX)] if cfg.atlas else []))


def _image_batches(ds: Dataset, start: int, stop: int, size: tuple[int, int], batch_size: int):
    """tf.data reader: decode with images.load_rgb (the safe decoder), resize with the one path.

    Decoding runs ahead in a thread pool with at most 2 batches of images in flight (memory
    bounded by the batch size, not N), and images come out in dataset order, so the batches are
    the very ones a serial reader makes."""
    import tensorflow as tf

    from .preprocess import area_downscale, resize_tensor

    def decode(i: int) -> np.ndarray:
        return area_downscale(load_rgb(ds.path(i)), size)  # step 1 of the path; step 2 below

    def gen():
        if DECODE_THREADS <= 0:
            yield from map(decode, range(start, stop))
            return
        todo = iter(range(start, stop))
        with ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="decode") as pool:
            pending = deque(pool.submit(decode, i) for i in itertools.islice(todo, 2 * batch_size))
            try:
                while pending:
                    img = pending.popleft().result()
                    pending.extend(pool.submit(decode, i) for i in itertools.islice(todo, 1))
                    yield img
            finally:  # stopped early (error, consumer gone): drop what is queued
                for f in pending:
                    f.cancel()

    data = tf.data.Dataset.from_generator(
        gen, output_signature=tf.TensorSpec(shape=(None, None, 3), dtype=tf.uint8))
    return (data.map(lambda x: resize_tensor(x, size), num_parallel_calls=tf.data.AUTOTUNE,
                     deterministic=True)
            .batch(batch_size).prefetch(2))


def extract_features(ds: Dataset, spec: ModelSpec, cfg: RunConfig, store: ArrayStore, *,
                     ds_fp: str | None = None, weights: ResolvedWeights | None = None,
                     on_progress: Callable[[int], None] | None = None,
                     on_start: Callable[[int], None] | None = None) -> ExtractResult:
    """Extract (or resume, or skip) the features of `ds` under `spec`; store them in `store`.

    weights: what pipeline.run resolved for this model (resolved here from cfg when omitted).
    """
    weights = weights or resolve_weights(spec, cfg.weights, cfg.seed, cfg.weights_cache)
    fp = extraction_fingerprint(ds, spec, cfg, ds_fp, weights)
    if store.is_current(ds.id, spec.id, fp):
        return ExtractResult(ds.id, spec.id, len(ds), 0.0, "up to date")

    from .runtime import import_tensorflow

    tf = import_tensorflow()

    from .models import build_feature_extractor

    t0 = time.perf_counter()
    model, infos, base_info = build_feature_extractor(
        spec, list(cfg.layers.get(spec.id) or []) or None, weights=weights,
        pooling=cfg.pooling, seed=cfg.seed, num_layers=cfg.num_layers, atlas=cfg.atlas)
    infer = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    names = output_keys(infos, cfg.pooling)
    config_key = shard_config(spec, cfg, weights)
    plan = plan_shards(image_digests(ds), cfg.shard_size, config_key)
    # Shards of the previous extraction (same configuration) whose images are unchanged are
    # copied from the stored features: adding images re-extracts only the shards around them.
    old_meta = store.read_meta(ds.id, spec.id)
    layer_names = [i.name for i in infos]
    extra = channel_atlas.extra_output_keys(layer_names, cfg.pooling) if cfg.atlas else []
    reuse: dict[int, Shard] = {}
    if (old_meta and old_meta.get("shard_config") == config_key and set(names) <= set(old_meta.get("keys", []))
            and (not extra or (old_meta.get("atlas") and "avg" in cfg.pooling))):
        # (the atlas of an update is selected from the avg features: without them, extract all)
        reuse = reusable_rows(shards_from_meta(old_meta.get("shards", [])), plan)
    old = store.load(ds.id, spec.id) if reuse else None
    # In-progress parts are keyed by configuration and shard content, so a killed run resumes
    # even if images were added meanwhile; reused only if the weights are the very same.
    parts = ShardDir(store.path(ds.id, spec.id).with_suffix(f".parts-{config_key[:16]}"))
    state = parts.read_json("state.json")
    if state is not None and state.get("weights_digest") != base_info["weights_digest"]:
        parts.remove()
        state = None
    if state is None:
        parts.write_json("state.json", {"weights_digest": base_info["weights_digest"]})
    todo = [i for i, sh in enumerate(plan) if i not in reuse and not parts.done(sh.key)]
    resumed = len(todo) < len(plan) - len(reuse)
    if on_start:
        on_start(sum(len(plan[i]) for i in todo))
    computed = 0
    for i in todo:
        sh = plan[i]
        chunks: list[list[np.ndarray]] = [[] for _ in names]
        # the channel atlas: a running top-T per channel, from the same pass; ids are local to
        # the shard (parts outlive dataset edits) and offset when the shards are merged
        shard_atlas, first = channel_atlas.ShardAtlas(layer_names, cfg.pooling), 0
        for batch in _image_batches(ds, sh.start, sh.stop, spec.input_size, cfg.batch_size):
            outs = infer(batch)
            if not isinstance(outs, (list, tuple)):  # Keras returns a bare tensor for one layer
                outs = [outs]
            outs = [o.numpy().astype(np.float32, copy=False) for o in outs]
            for j in range(len(names)):
                chunks[j].append(outs[j])
            if extra:
                shard_atlas.add(first, dict(zip(names + extra, outs)))
            first += len(outs[0])
            if on_progress:
                on_progress(int(batch.shape[0]))
        parts.save(sh.key, {**{name: np.concatenate(c) for name, c in zip(names, chunks)},
                            **shard_atlas.arrays()})
        computed += len(sh)

    arrays: dict[str, list[np.ndarray]] = {name: [] for name in names}
    fresh: list[tuple[int, dict]] = []  # (first row, arrays) of the shards read from parts
    for i, sh in enumerate(plan):
        if i in reuse:
            o = reuse[i]
            loaded = {name: old.arrays[name][o.start:o.stop] for name in names}
        else:
            loaded = parts.load(sh.key)
            fresh.append((sh.start, loaded))
        for name in names:
            arrays[name].append(loaded[name])
    features = {name: np.ascontiguousarray(np.concatenate(a)) for name, a in arrays.items()}
    if extra:  # shards merged in a fixed order and rule: a resumed or updated run stores the same atlas
        features.update(_atlas(ds, plan, reuse, fresh, old, features, layer_names, spec, cfg, infer, names + extra))
    meta = {
        "fingerprint": fp, "generator": f"convnet-search {__version__}", "dataset": ds.id,
        "model": spec.id, "name": spec.name, "input_size": list(spec.input_size),
        "poolings": list(cfg.pooling), "atlas": bool(extra), "files": list(ds.files), **base_info,
        "layers": [{"name": i.name, "index": i.index, "type": i.type,
                    "output_shape": list(i.output_shape), "dims": {p: i.dim(p) for p in cfg.pooling},
                    "params_cumulative": i.params_cumulative, "depth": i.depth} for i in infos],
        "shard_config": config_key, "shards": shards_to_meta(plan),
    }
    if old_meta and set(names) <= set(old_meta.get("keys", [])) and old_meta.get("shard_config") == config_key:
        # which rows later stages may carry over (incremental.py): bit-equal rows of the same file
        old = old or store.load(ds.id, spec.id)
        meta["previous"] = {"fingerprint": old_meta["fingerprint"], "n": len(old_meta["files"]),
                            "rows": carried_runs(old_meta["files"], old.arrays, list(ds.files), features, names)}
    store.write(ds.id, spec.id, meta, features)
    parts.remove()
    seconds = time.perf_counter() - t0
    status = "updated" if reuse else "resumed" if resumed else "extracted"
    return ExtractResult(ds.id, spec.id, len(ds), seconds, status, computed)


def _atlas(ds: Dataset, plan, reuse, fresh, old, features, layers, spec, cfg, infer, out_names):
    """The stored channel atlas: merged from every shard's partial atlas, or, when shards were
    reused (their partials are gone), selected from the avg features with the maps of the fresh
    shards and of the previous atlas, plus a small extra pass for maps neither has."""
    import dataclasses

    from .incremental import updated_atlas

    def offset(start: int, part: dict) -> dict:
        return {k: (v + start if k.endswith("/ids") else v) for k, v in part.items()}

    parts = [offset(start, part) for start, part in fresh]
    if not reuse:
        return channel_atlas.merge_shards(parts, features, layers)
    new_of_old = np.full(len(old.meta["files"]), -1, dtype=np.int64)
    fresh_rows = np.ones(len(ds), dtype=bool)
    for i, o in reuse.items():
        new_of_old[o.start:o.stop] = np.arange(plan[i].start, plan[i].stop)
        fresh_rows[plan[i].start:plan[i].stop] = False
    out: dict[str, np.ndarray] = {}
    todo: dict[str, tuple] = {}
    for layer in layers:
        prefix = f"atlas/{layer}"
        fresh_part = channel_atlas.merge([channel_atlas.PartialAtlas.from_arrays(p, prefix) for p in parts]) if parts else None
        old_part = channel_atlas.stored_atlas(old.arrays, layer)[0]
        ids, values, maps, missing = updated_atlas(features[f"avg/{layer}"], fresh_rows, fresh_part, old_part,
                                                   new_of_old, channel_atlas.TOP)
        todo[layer] = (ids, maps, missing)
        out.update({f"{prefix}/ids": ids.astype(np.uint32), f"{prefix}/values": values, f"{prefix}/maps": maps,
                    f"{prefix}/selectivity": channel_atlas.selectivity(features[f"avg/{layer}"])})
    need = sorted({int(i) for ids, _, missing in todo.values() for i in ids[missing]})
    if need:  # a small extra pass over the images whose maps neither source had
        sub = dataclasses.replace(ds, files=[ds.files[i] for i in need], labels=ds.labels[need])
        got: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
        for batch in _image_batches(sub, 0, len(sub), spec.input_size, cfg.batch_size):
            outs = infer(batch)
            outs = dict(zip(out_names, [o.numpy() for o in (outs if isinstance(outs, (list, tuple)) else [outs])]))
            for layer in layers:
                got[layer].append(outs[f"atlas/{layer}/map"])
        row = {img: j for j, img in enumerate(need)}
        for layer in layers:
            ids, maps, missing = todo[layer]
            small = np.concatenate(got[layer])  # [len(need), h, w, C]
            for ch, r in zip(*np.nonzero(missing)):
                maps[ch, r] = small[row[int(ids[ch, r])], :, :, ch]
    return out
