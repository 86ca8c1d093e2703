"""Extraction stage: dataset images -> pooled features of every chosen layer, one forward pass each.

Reader (decode + the one resize path, in a tf.data pipeline) -> mapper (a tf.function over the
multi-output model) -> writer (one atomic .npz per shard, then one HDF5 file). A killed run resumes
at the first missing shard; shards are fixed slices of the dataset, so a resumed run computes
exactly what an uninterrupted one does.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import __version__
from . import atlas as channel_atlas
from .config import RunConfig
from .datasets import Dataset, dataset_fingerprint
from .images import load_rgb
from .models import ModelSpec, output_keys
from .store import ArrayStore, ShardDir, fingerprint
from .weights import ResolvedWeights, resolve_weights

# 2: one matrix per (pooling, layer), keyed "<pooling>/<layer>"; images larger than 2× the input
# are box-downscaled first (preprocess.area_downscale).
FEATURES_FORMAT = 2


@dataclass(frozen=True)
class ExtractResult:
    dataset: str
    model: str
    images: int
    seconds: float
    status: str  # "extracted" | "resumed" | "up to date"
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


def _image_batches(ds: Dataset, start: int, stop: int, size: tuple[int, int], batch_size: int):
    """tf.data reader: decode with images.load_rgb (the safe decoder), resize with the one path."""
    import tensorflow as tf

    from .preprocess import area_downscale, resize_tensor

    def gen():
        for i in range(start, stop):
            yield area_downscale(load_rgb(ds.path(i)), size)  # step 1 of the path; step 2 below

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

    shards = ShardDir(store.path(ds.id, spec.id).with_suffix(f".parts-{fp[:16]}"))
    # Shards from a killed run are reused only if the weights are the very same.
    state = shards.read_json("state.json")
    if state is not None and state.get("weights_digest") != base_info["weights_digest"]:
        shards.remove()
        state = None
    if state is None:
        shards.write_json("state.json", {"weights_digest": base_info["weights_digest"]})
    n, size = len(ds), cfg.shard_size
    n_shards = math.ceil(n / size)
    resumed = any(shards.done(s) for s in range(n_shards))
    if on_start:
        on_start(sum(min(size, n - s * size) for s in range(n_shards) if not shards.done(s)))
    names = output_keys(infos, cfg.pooling)
    layer_names = [i.name for i in infos]
    extra = channel_atlas.extra_output_keys(layer_names, cfg.pooling) if cfg.atlas else []
    computed = 0
    for s in range(n_shards):
        if shards.done(s):
            continue
        start, stop = s * size, min(n, (s + 1) * size)
        parts: list[list[np.ndarray]] = [[] for _ in names]
        shard_atlas, first = channel_atlas.ShardAtlas(layer_names, cfg.pooling), start
        for batch in _image_batches(ds, start, stop, spec.input_size, cfg.batch_size):
            outs = infer(batch)
            if not isinstance(outs, (list, tuple)):  # Keras returns a bare tensor for one layer
                outs = [outs]
            outs = [o.numpy().astype(np.float32, copy=False) for o in outs]
            for j in range(len(names)):
                parts[j].append(outs[j])
            if extra:  # the channel atlas: a running top-T per channel, from the same pass
                shard_atlas.add(first, dict(zip(names + extra, outs)))
            first += len(outs[0])
            if on_progress:
                on_progress(int(batch.shape[0]))
        shards.save(s, {**{name: np.concatenate(p) for name, p in zip(names, parts)},
                        **shard_atlas.arrays()})
        computed += stop - start

    arrays: dict[str, list[np.ndarray]] = {name: [] for name in names}
    loaded = [shards.load(s) for s in range(n_shards)]
    for part in loaded:
        for name in names:
            arrays[name].append(part[name])
    features = {name: np.ascontiguousarray(np.concatenate(a)) for name, a in arrays.items()}
    if extra:  # shards merged in a fixed order and rule: a resumed run stores the same atlas
        features.update(channel_atlas.merge_shards(loaded, features, layer_names))
    meta = {
        "fingerprint": fp, "generator": f"convnet-search {__version__}", "dataset": ds.id,
        "model": spec.id, "name": spec.name, "input_size": list(spec.input_size),
        "poolings": list(cfg.pooling), "atlas": bool(extra), "files": list(ds.files), **base_info,
        "layers": [{"name": i.name, "index": i.index, "type": i.type,
                    "output_shape": list(i.output_shape), "dims": {p: i.dim(p) for p in cfg.pooling},
                    "params_cumulative": i.params_cumulative, "depth": i.depth} for i in infos],
    }
    store.write(ds.id, spec.id, meta, features)
    shards.remove()
    seconds = time.perf_counter() - t0
    return ExtractResult(ds.id, spec.id, n, seconds, "resumed" if resumed else "extracted", computed)
