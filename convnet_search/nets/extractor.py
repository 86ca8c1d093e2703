"""Feature extraction of one shard: decode → the one resize path → the multi-output network → one .npz.

Reader (images.load_rgb_reduced in a small thread pool, or the run's decode cache, io/decode_cache.py,
then preprocess's resize in a tf.data pipeline) →
mapper (a tf.function over the multi-output model) → writer (one atomic .npz per shard). This is the
work every distributor runs, here or on a Ray worker (distribute/); the extraction stage
(stages/extract.py) plans the shards and merges them. A shard is always computed in the same
batches, so its features do not depend on who computed it.
"""
from __future__ import annotations

import itertools
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from .. import interrupts
from ..io.datasets import Dataset, DatasetChanged, file_sha256, image_digests
from ..io.decode_cache import DecodeCache
from ..io.images import ImageError, load_rgb_reduced
from ..io.shards import Shard
from ..io.store import ShardDir
from ..search import atlas as channel_atlas
from .models import LayerInfo, output_keys
from .spec import ModelSpec
from .weights import ResolvedWeights


# Decode threads of the extraction reader (0: decode inline in tf.data's generator thread, the
# pre-pool behaviour, kept for bench/bench_extract.py's before/after row). Pillow's decoders and
# numpy's reductions release the GIL, so decoding overlaps the forward pass on the other core.
DECODE_THREADS = max(1, min(4, os.cpu_count() or 1))


def decode_step1(path: str | Path, size: tuple[int, int], digest: str | None = None,
                 cache: DecodeCache | None = None, check: bool = False) -> np.ndarray:
    """One image decoded and box-downscaled for input `size` (step 1 of the one resize path,
    preprocess.py): a large JPEG is decoded at the DCT scale that step's factor allows and reduced
    without its full-size pixels (images.load_rgb_reduced), anything else decoded in full. With the
    run's decode cache and the image's sha256: read from the cache, or decode once and store step 1
    for every input size of the run that the same decode serves (all of them but for an odd
    format), so a run decodes each large image once whatever its number of models."""
    from .preprocess import reduce_plan, step1_from

    if cache is not None and digest is not None:
        hit = cache.get(digest, size)
        if hit is not None:  # the pixels of the very bytes the scan hashed
            return hit
    sizes = tuple(cache.sizes) if cache is not None and digest is not None else ()
    decoded = load_rgb_reduced(Path(path), reduce_plan(sizes, tuple(size)))
    if check and digest is not None and file_sha256(path) != digest:
        raise ImageError(Path(path), "its bytes changed since the folder was listed")
    out = step1_from(decoded, size)
    for s in dict.fromkeys(sizes):
        small = out if s == tuple(size) else step1_from(decoded, s)
        # None: another DCT scale, whose model decodes it (once) and stores it then. An image step 1
        # does not shrink decodes faster than a cache file is read: not stored.
        if small is not None and small.shape[:2] != decoded.full:
            cache.put(digest, s, small)
    return out


def image_batches(paths: Sequence[str | Path], size: tuple[int, int], batch_size: int,
                   threads: int | None = None, digests: Sequence[str] | None = None,
                   changed: list[tuple[str, str]] | None = None, cache: DecodeCache | None = None):
    """tf.data reader: decode with images.load_rgb_reduced (the safe decoder), resize with the one path.

    digests, cache: each image's sha256 and the run's decode cache (decode_step1); without them
    every image is decoded here. Decoding runs ahead in a thread pool with at most 2 batches of images in flight (memory
    bounded by the batch size, not N), and images come out in order, so the batches are the very
    ones a serial reader makes. threads: cap on the decode pool and tf.data's own thread pool (a
    Ray worker given one CPU keeps to it).

    digests and changed: an image that cannot be read any more, or whose bytes no longer have the
    scan's sha256 (moved away or overwritten since the scan), is appended to `changed` as (path,
    what happened) and a blank image takes its place. Raising inside the generator would reach the
    user as TensorFlow's traceback; the caller checks `changed` between batches instead
    (`raise_if_changed`). Without `changed`, such an image raises ImageError as before."""
    import tensorflow as tf

    from .preprocess import resize_tensor

    decoders = DECODE_THREADS if threads is None else min(DECODE_THREADS, threads)
    items = list(zip(paths, digests if digests is not None else [None] * len(paths)))

    def decode(item) -> np.ndarray:
        path, digest = item
        if changed is None:
            return decode_step1(path, size, digest, cache)  # step 1 of the path; step 2 below
        try:
            return decode_step1(path, size, digest, cache, check=True)
        except (ImageError, OSError) as exc:
            changed.append((str(path), getattr(exc, "reason", None) or str(exc)))
            return np.zeros((1, 1, 3), np.uint8)

    def gen():
        if decoders <= 0:
            yield from map(decode, items)
            return
        todo = iter(items)
        with ThreadPoolExecutor(decoders, thread_name_prefix="decode") as pool:
            pending = deque(pool.submit(decode, p) for p in itertools.islice(todo, 2 * batch_size))
            try:
                while pending:
                    img = pending.popleft().result()
                    pending.extend(pool.submit(decode, p) for p in itertools.islice(todo, 1))
                    yield img
            finally:  # stopped early (error, consumer gone): drop what is queued
                for f in pending:
                    f.cancel()

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
    atlas: bool = False

    def build(self) -> "FeatureExtractor":
        from .models import build_feature_extractor
        from ..runtime import import_tensorflow

        tf = import_tensorflow()
        model, infos, base_info = build_feature_extractor(
            self.model, list(self.layers) if self.layers else None, weights=self.weights,
            pooling=self.pooling, seed=self.seed, num_layers=self.num_layers, atlas=self.atlas)
        infer = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        layers = [i.name for i in infos]
        extra = channel_atlas.extra_output_keys(layers, self.pooling) if self.atlas else []
        return FeatureExtractor(self, infer, infos, base_info, output_keys(infos, self.pooling), extra)


@dataclass(frozen=True)
class FeatureExtractor:
    """A built extractor: one forward pass gives every output `names[j]` of a batch, then the
    channel atlas's outputs `extra` (atlas.extra_output_keys) when the atlas is on."""
    spec: ExtractorSpec
    infer: Callable
    infos: list[LayerInfo]
    base_info: dict
    names: list[str]
    extra: list[str]

    def outputs(self, batch) -> dict[str, np.ndarray]:
        outs = self.infer(batch)
        if not isinstance(outs, (list, tuple)):  # Keras returns a bare tensor for one layer
            outs = [outs]
        return dict(zip(self.names + self.extra, (o.numpy().astype(np.float32, copy=False) for o in outs)))


@dataclass(frozen=True)
class ShardTask:
    """One work item: shard `index` of its job, its images, and where it is saved under `key`
    (its content key, shards.py); small, so it can be sent to workers."""
    index: int
    key: str
    paths: tuple[str, ...]
    batch_size: int
    shard_dir: Path
    digests: tuple[str, ...] | None = None  # the scan's sha256 of each image: change check, decode cache keys
    decode_cache: DecodeCache | None = None


@dataclass(frozen=True)
class ExtractJob:
    """One (dataset, model) extraction cut into its work items, the shards (content-defined,
    shards.py): shard s holds the images shard_paths[s], is saved as shard_keys[s], and is
    extracted with the same batches wherever it runs, so its arrays do not depend on who computed
    it. Shards in `reused` are copied from the stored features instead (no work). With a decode
    cache (io/decode_cache.py) and the images' sha256 (shard_digests), the run's models share
    each image's decode."""
    extractor: ExtractorSpec
    shard_dir: Path
    shard_paths: tuple[tuple[str, ...], ...]
    shard_keys: tuple[str, ...]
    batch_size: int
    reused: frozenset[int] = frozenset()
    shard_digests: tuple[tuple[str, ...], ...] | None = None
    decode_cache: DecodeCache | None = None

    @classmethod
    def of(cls, ds: Dataset, extractor: ExtractorSpec, shard_dir: Path, plan: Sequence[Shard],
           batch_size: int, reused: Sequence[int] = (), digests: Sequence[str] | None = None,
           decode_cache: DecodeCache | None = None) -> "ExtractJob":
        paths = [str(Path(ds.path(i)).absolute()) for i in range(len(ds))]
        digests = image_digests(ds) if digests is None else digests  # the change check needs them always
        per_shard = tuple(tuple(digests[s.start:s.stop]) for s in plan)
        return cls(extractor, Path(shard_dir).absolute(), tuple(tuple(paths[s.start:s.stop]) for s in plan),
                   tuple(s.key for s in plan), batch_size, frozenset(reused), per_shard, decode_cache)

    def task(self, index: int) -> ShardTask:
        digests = None if self.shard_digests is None else self.shard_digests[index]
        return ShardTask(index, self.shard_keys[index], self.shard_paths[index], self.batch_size, self.shard_dir,
                         digests, self.decode_cache)

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
        return [s for s in range(len(self.shard_paths))
                if s not in self.reused and not shards.done(self.shard_keys[s])]

    def images(self, shard_ids: Sequence[int]) -> int:
        return sum(len(self.shard_paths[s]) for s in shard_ids)


def extract_shard_steps(ex: FeatureExtractor, task: ShardTask, threads: int | None = None) -> Iterator[int]:
    """Extract one shard and save it atomically (a .npz, present = done), with its partial
    channel atlas (ids local to the shard: parts outlive dataset edits).

    Yields the image count of each batch as it is done (progress); the shard is written when the
    iterator is exhausted. The one shard routine of every distributor (extract_shard wraps it).
    """
    chunks: list[list[np.ndarray]] = [[] for _ in ex.names]
    layers = [i.name for i in ex.infos]
    shard_atlas, first = channel_atlas.ShardAtlas(layers, ex.spec.pooling), 0
    changed: list[tuple[str, str]] = []
    for batch in image_batches(task.paths, ex.spec.model.input_size, task.batch_size, threads,
                               task.digests, changed, task.decode_cache):
        raise_if_changed(changed)  # before the shard could be saved with a blank image in it
        outs = ex.outputs(batch)
        for j, name in enumerate(ex.names):
            chunks[j].append(outs[name])
        if ex.extra:  # the channel atlas: a running top-T per channel, from the same pass
            shard_atlas.add(first, outs)
        first += int(batch.shape[0])
        interrupts.check()  # a Ctrl-C recorded during the batch (interrupts.deferred) stops here
        yield int(batch.shape[0])
    raise_if_changed(changed)
    ShardDir(task.shard_dir).save(task.key, {**{name: np.concatenate(c) for name, c in zip(ex.names, chunks)},
                                             **shard_atlas.arrays()})


def raise_if_changed(changed: list[tuple[str, str]]) -> None:
    """DatasetChanged (plain Python, between batches) for the images the reader found changed."""
    if changed:
        raise DatasetChanged(sorted(set(changed)))


def extract_shard(ex: FeatureExtractor, task: ShardTask,
                  on_progress: Callable[[int], None] | None = None) -> int:
    """extract_shard_steps run to the end; returns the shard's image count."""
    done = 0
    for n in extract_shard_steps(ex, task):
        done += n
        if on_progress:
            on_progress(n)
    return done
