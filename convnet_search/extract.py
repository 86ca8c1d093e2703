"""Extraction stage: dataset images -> pooled features of every chosen layer, one forward pass each.

Reader (decode + the one resize path, in a tf.data pipeline) -> mapper (a tf.function over the
multi-output model) -> writer (one atomic .npz per shard, then one HDF5 file). A killed run resumes
at the first missing shard; shards are fixed slices of the dataset, so a resumed run computes
exactly what an uninterrupted one does.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np

from . import __version__
from .config import RunConfig
from .datasets import Dataset, dataset_fingerprint
from .images import load_rgb
from .models import LayerInfo, ModelSpec, output_keys
from .store import ArrayStore, ShardDir, fingerprint
from .weights import ResolvedWeights, resolve_weights

if TYPE_CHECKING:
    from .distributor import Distributor, WorkerStats

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
    # Who ran the shards of this call (distributor.WorkerStats): shards, images, busy time each.
    workers: tuple["WorkerStats", ...] = ()

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
                       weights.fingerprint_key(), cfg.shard_size, cfg.batch_size)


def _image_batches(paths: Sequence[str | Path], size: tuple[int, int], batch_size: int,
                   threads: int | None = None):
    """tf.data reader: decode with images.load_rgb (the safe decoder), resize with the one path.

    threads: cap on tf.data's own thread pool (a Ray worker given one CPU keeps to it)."""
    import tensorflow as tf

    from .preprocess import area_downscale, resize_tensor

    def gen():
        for path in paths:
            yield area_downscale(load_rgb(Path(path)), size)  # step 1 of the path; step 2 below

    data = tf.data.Dataset.from_generator(
        gen, output_signature=tf.TensorSpec(shape=(None, None, 3), dtype=tf.uint8))
    if threads:
        options = tf.data.Options()
        options.threading.private_threadpool_size = threads
        data = data.with_options(options)
    return (data.map(lambda x: resize_tensor(x, size), num_parallel_calls=tf.data.AUTOTUNE,
                     deterministic=True)
            .batch(batch_size).prefetch(2))


@dataclass(frozen=True)
class ExtractorSpec:
    """What to build: a model, its weights, layers and poolings. Small and picklable, so a
    distributor can send it to a worker, which builds the extractor once (`build`)."""
    model: ModelSpec
    weights: ResolvedWeights
    layers: tuple[str, ...] | None
    pooling: tuple[str, ...]
    num_layers: int
    seed: int

    @classmethod
    def of(cls, spec: ModelSpec, cfg: RunConfig, weights: ResolvedWeights) -> "ExtractorSpec":
        return cls(spec, weights, tuple(cfg.layers.get(spec.id) or ()) or None, tuple(cfg.pooling),
                   cfg.num_layers, cfg.seed)

    def build(self) -> "FeatureExtractor":
        from .models import build_feature_extractor
        from .runtime import import_tensorflow

        tf = import_tensorflow()
        model, infos, base_info = build_feature_extractor(
            self.model, list(self.layers) if self.layers else None, weights=self.weights,
            pooling=self.pooling, seed=self.seed, num_layers=self.num_layers)
        infer = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        return FeatureExtractor(self, infer, infos, base_info, output_keys(infos, self.pooling))


@dataclass(frozen=True)
class FeatureExtractor:
    """A built extractor: one forward pass gives every output `names[j]` of a batch."""
    spec: ExtractorSpec
    infer: Callable
    infos: list[LayerInfo]
    base_info: dict
    names: list[str]


@dataclass(frozen=True)
class ShardTask:
    """One work item: shard `index`, its images and where it is saved (small: sent to workers)."""
    index: int
    paths: tuple[str, ...]
    batch_size: int
    shard_dir: Path


@dataclass(frozen=True)
class ExtractJob:
    """One (dataset, model) extraction cut into its work items, the shards: shard s holds the
    images shard_paths[s] (fixed slices of the dataset), extracted with the same batches
    wherever it runs, so a shard's arrays do not depend on who computed it."""
    extractor: ExtractorSpec
    shard_dir: Path
    shard_paths: tuple[tuple[str, ...], ...]
    batch_size: int

    @classmethod
    def of(cls, ds: Dataset, extractor: ExtractorSpec, shard_dir: Path, shard_size: int,
           batch_size: int) -> "ExtractJob":
        paths = [str(Path(ds.path(i)).absolute()) for i in range(len(ds))]
        return cls(extractor, Path(shard_dir).absolute(),
                   tuple(tuple(paths[a:a + shard_size]) for a in range(0, len(paths), shard_size)),
                   batch_size)

    def task(self, index: int) -> ShardTask:
        return ShardTask(index, self.shard_paths[index], self.batch_size, self.shard_dir)

    def pending(self, weights_digest: str) -> list[int]:
        """The shards still to do, after checking that finished ones were made with these very
        weights (shards from a killed run are reused only then). Driver side, before any work."""
        shards = ShardDir(self.shard_dir)
        state = shards.read_json("state.json")
        if state is not None and state.get("weights_digest") != weights_digest:
            shards.remove()
            state = None
        if state is None:
            shards.write_json("state.json", {"weights_digest": weights_digest})
        return [s for s in range(len(self.shard_paths)) if not shards.done(s)]

    def images(self, shard_ids: Sequence[int]) -> int:
        return sum(len(self.shard_paths[s]) for s in shard_ids)


def extract_shard_steps(ex: FeatureExtractor, task: ShardTask, threads: int | None = None) -> Iterator[int]:
    """Extract one shard and save it atomically (a .npz, present = done).

    Yields the image count of each batch as it is done (progress); the shard is written when the
    iterator is exhausted. The one shard routine of every distributor (extract_shard wraps it).
    """
    parts: list[list[np.ndarray]] = [[] for _ in ex.names]
    for batch in _image_batches(task.paths, ex.spec.model.input_size, task.batch_size, threads):
        outs = ex.infer(batch)
        if not isinstance(outs, (list, tuple)):  # Keras returns a bare tensor for one layer
            outs = [outs]
        for j, o in enumerate(outs):
            parts[j].append(o.numpy().astype(np.float32, copy=False))
        yield int(batch.shape[0])
    ShardDir(task.shard_dir).save(task.index, {name: np.concatenate(p) for name, p in zip(ex.names, parts)})


def extract_shard(ex: FeatureExtractor, task: ShardTask,
                  on_progress: Callable[[int], None] | None = None) -> int:
    """extract_shard_steps run to the end; returns the shard's image count."""
    done = 0
    for n in extract_shard_steps(ex, task):
        done += n
        if on_progress:
            on_progress(n)
    return done


def extract_features(ds: Dataset, spec: ModelSpec, cfg: RunConfig, store: ArrayStore, *,
                     ds_fp: str | None = None, weights: ResolvedWeights | None = None,
                     on_progress: Callable[[int], None] | None = None,
                     on_start: Callable[[int], None] | None = None,
                     distributor: "Distributor | None" = None) -> ExtractResult:
    """Extract (or resume, or skip) the features of `ds` under `spec`; store them in `store`.

    weights: what pipeline.run resolved for this model (resolved here from cfg when omitted).
    distributor: who runs the shards (default: this process, distributor.LocalDistributor); the
    result is the same whoever does, so it is not part of the fingerprint.
    """
    from .distributor import LocalDistributor

    weights = weights or resolve_weights(spec, cfg.weights, cfg.seed, cfg.weights_cache)
    fp = extraction_fingerprint(ds, spec, cfg, ds_fp, weights)
    if store.is_current(ds.id, spec.id, fp):
        return ExtractResult(ds.id, spec.id, len(ds), 0.0, "up to date")

    t0 = time.perf_counter()
    shard_dir = store.path(ds.id, spec.id).with_suffix(f".parts-{fp[:16]}")
    job = ExtractJob.of(ds, ExtractorSpec.of(spec, cfg, weights), shard_dir, cfg.shard_size, cfg.batch_size)
    run = (distributor or LocalDistributor()).extract(job, on_start=on_start, on_progress=on_progress)
    infos, names = run.infos, output_keys(run.infos, cfg.pooling)
    shards = ShardDir(shard_dir)
    arrays: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for s in range(len(job.shard_paths)):
        loaded = shards.load(s)
        for name in names:
            arrays[name].append(loaded[name])
    features = {name: np.ascontiguousarray(np.concatenate(a)) for name, a in arrays.items()}
    meta = {
        "fingerprint": fp, "generator": f"convnet-search {__version__}", "dataset": ds.id,
        "model": spec.id, "name": spec.name, "input_size": list(spec.input_size),
        "poolings": list(cfg.pooling), "files": list(ds.files), **run.base_info,
        "layers": [{"name": i.name, "index": i.index, "type": i.type,
                    "output_shape": list(i.output_shape), "dims": {p: i.dim(p) for p in cfg.pooling},
                    "params_cumulative": i.params_cumulative, "depth": i.depth} for i in infos],
    }
    store.write(ds.id, spec.id, meta, features)
    shards.remove()
    seconds = time.perf_counter() - t0
    resumed = run.computed < len(ds)
    return ExtractResult(ds.id, spec.id, len(ds), seconds, "resumed" if resumed else "extracted",
                         run.computed, tuple(run.workers))
