"""Channel atlas: per channel of a layer, the dataset images that activate it most, with small maps.

Computed inside the extraction stage's single forward pass (docs/bundle.md "Channel atlas"): the
feature extractor also outputs each chosen layer's map adaptive-average-pooled to at most
MAP_MAX × MAP_MAX, and these pure NumPy functions keep, per channel, the TOP images with the highest
mean activation (the average-pooled feature) and their small maps. A batch, a shard and a whole
dataset are all a `PartialAtlas`; `merge` of partial atlases equals the atlas of their union (same
ordering rule: value descending, ties by smaller id), so a resumed or distributed run gives exactly
what one uninterrupted run gives. Never N × C maps in memory or on disk: T per channel.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

TOP = 9  # images per channel (fewer when the dataset is smaller)
MAP_MAX = 14  # stored maps are at most MAP_MAX × MAP_MAX (adaptive average pooling above that)
BLOCK = 16  # channels per bundle maps file
ROWS_PAGE = 64  # channels per bundle rows file: the explorer's first screen is one of them


def map_size(h: int, w: int) -> tuple[int, int]:
    """Size of a stored map of an h × w layer: the map itself up to MAP_MAX, else pooled to MAP_MAX."""
    return min(h, MAP_MAX), min(w, MAP_MAX)


def adaptive_bounds(size: int, cells: int) -> list[tuple[int, int]]:
    """Cell i covers [floor(i·size/cells), ceil((i+1)·size/cells)): PyTorch's adaptive pooling rule
    (and pooling.grid_bounds'), so every input row lands in some cell when size is not a multiple."""
    return [((i * size) // cells, -((-(i + 1) * size) // cells)) for i in range(cells)]


def pooling_matrix(size: int, cells: int) -> np.ndarray:
    """[cells, size] float32 matrix whose row i averages cell i (A @ x pools one axis)."""
    a = np.zeros((cells, size), np.float32)
    for i, (lo, hi) in enumerate(adaptive_bounds(size, cells)):
        a[i, lo:hi] = 1.0 / (hi - lo)
    return a


def adaptive_avg_pool(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Reference: [B, H, W, C] -> [B, h, w, C], each cell the mean of its adaptive_bounds window."""
    rows, cols = adaptive_bounds(x.shape[1], h), adaptive_bounds(x.shape[2], w)
    out = np.empty((x.shape[0], h, w, x.shape[3]), np.float64)
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            out[:, i, j, :] = x[:, r0:r1, c0:c1, :].mean(axis=(1, 2))
    return out.astype(np.float32)


@dataclass(frozen=True)
class PartialAtlas:
    """Top images per channel of some subset of a dataset, best first (value desc, then id asc)."""
    ids: np.ndarray  # int64 [C, t]
    values: np.ndarray  # float32 [C, t]: mean activation of the channel on the image
    maps: np.ndarray  # float32 [C, t, h, w]: the channel's (pooled) map on the image

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}/ids": self.ids, f"{prefix}/values": self.values, f"{prefix}/maps": self.maps}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], prefix: str) -> "PartialAtlas":
        return cls(np.asarray(arrays[f"{prefix}/ids"], np.int64), arrays[f"{prefix}/values"],
                   arrays[f"{prefix}/maps"])


def _select(ids: np.ndarray, values: np.ndarray, top: int) -> np.ndarray:
    """[C, m] column indices of the best `top` per row: value descending, ties by smaller id."""
    order = np.lexsort((ids, -values.astype(np.float64)), axis=-1)
    return order[:, :top]


def batch_atlas(first_id: int, values: np.ndarray, maps: np.ndarray, top: int = TOP) -> PartialAtlas:
    """Atlas of one batch: values [B, C] (avg-pooled features), maps [B, h, w, C] (small maps) of
    the images first_id … first_id + B − 1."""
    b, c = values.shape
    ids = np.broadcast_to(np.arange(first_id, first_id + b, dtype=np.int64), (c, b))
    vals = np.ascontiguousarray(values.T, dtype=np.float32)  # [C, B]
    pick = _select(ids, vals, top)  # [C, t] batch positions
    rows = np.arange(c)[:, None]
    # maps[pick, :, :, channel] gathers [C, t, h, w] directly (no transposed copy of the batch)
    return PartialAtlas(ids[rows, pick], vals[rows, pick],
                        np.ascontiguousarray(maps[pick, :, :, rows], dtype=np.float32))


def merge(parts: Sequence[PartialAtlas | None], top: int = TOP) -> PartialAtlas:
    """The atlas of the union of disjoint image sets (None parts are skipped)."""
    parts = [p for p in parts if p is not None]
    if len(parts) == 1:
        return parts[0]
    ids = np.concatenate([p.ids for p in parts], axis=1)
    vals = np.concatenate([p.values for p in parts], axis=1)
    pick = _select(ids, vals, top)
    rows = np.arange(len(pick))[:, None]
    maps = np.concatenate([p.maps for p in parts], axis=1)
    return PartialAtlas(ids[rows, pick], vals[rows, pick], maps[rows, pick])  # fancy rows: no broadcast index


def selectivity(avg: np.ndarray) -> np.ndarray:
    """Per channel, the variance across the dataset of its avg-pooled activation (float64 [C])."""
    return np.var(np.asarray(avg, np.float64), axis=0)


def selectivity_order(var: np.ndarray) -> np.ndarray:
    """Channel indices, most selective (largest variance) first; ties by smaller index."""
    return np.lexsort((np.arange(len(var)), -np.asarray(var, np.float64)))


def quantize_maps(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[..., h, w] float maps -> (uint8 maps, float32 scale[...]): the bundle's encoding.

    scale = the map's maximum (0 when no value is > 0); q = round(255 · clip(a, 0, scale) / scale)."""
    m = np.asarray(maps, np.float32)
    scale = np.maximum(m.max(axis=(-2, -1)), 0.0).astype(np.float32)
    safe = np.where(scale > 0, scale, 1.0)[..., None, None]
    q = np.rint(255.0 * np.clip(m, 0.0, scale[..., None, None]) / safe)
    return q.astype(np.uint8), scale


def dequantize_maps(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return q.astype(np.float32) / 255.0 * np.asarray(scale, np.float32)[..., None, None]


def similarity_map(spatial: np.ndarray, pooled: np.ndarray) -> np.ndarray:
    """Cosine between each position's feature vector (spatial [h, w, C]) and a pooled vector [C];
    0 where either norm is 0 (ATLAS_CONTRACT / docs/bundle.md "why similar?")."""
    f = np.asarray(spatial, np.float64)
    v = np.asarray(pooled, np.float64)
    dots = f @ v
    norms = np.linalg.norm(f, axis=-1) * np.linalg.norm(v)
    out = np.zeros(dots.shape)
    np.divide(dots, norms, out=out, where=norms > 0)
    return out


# ---------------------------------------------------------------------------------------------
# The extraction stage's side: extra outputs, per-shard accumulation, the stored result
# ---------------------------------------------------------------------------------------------

def extra_output_keys(layers: Sequence[str], poolings: Sequence[str]) -> list[str]:
    """Names of the extractor's atlas outputs, after its feature outputs: per layer the small map,
    and the layer's mean when "avg" is not one of the run's poolings (the atlas needs it anyway)."""
    keys = []
    for layer in layers:
        keys.append(f"atlas/{layer}/map")
        if "avg" not in poolings:
            keys.append(f"atlas/{layer}/avg")
    return keys


def _avg(outputs: Mapping[str, np.ndarray], layer: str) -> np.ndarray:
    return outputs[f"avg/{layer}"] if f"avg/{layer}" in outputs else outputs[f"atlas/{layer}/avg"]


class ShardAtlas:
    """Running atlas of one extraction shard: `add` each batch's named outputs, then `arrays()`
    are saved in the shard file beside its features."""

    def __init__(self, layers: Sequence[str], poolings: Sequence[str], top: int = TOP):
        self.layers, self.poolings, self.top = list(layers), list(poolings), top
        self.parts: dict[str, PartialAtlas | None] = {layer: None for layer in layers}
        self.avgs: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}

    def add(self, first_id: int, outputs: Mapping[str, np.ndarray]) -> None:
        for layer in self.layers:
            avg, maps, run = _avg(outputs, layer), outputs[f"atlas/{layer}/map"], self.parts[layer]
            if run is not None and run.ids.shape[1] == self.top:
                _update_full(run, first_id, avg, maps)
            else:
                self.parts[layer] = merge([run, batch_atlas(first_id, avg, maps, self.top)], self.top)
            if "avg" not in self.poolings:
                self.avgs[layer].append(np.asarray(avg, np.float32))

    def arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for layer in self.layers:
            part = self.parts[layer]
            if part is not None:
                out.update(part.arrays(f"atlas/{layer}"))
            if self.avgs[layer]:
                out[f"atlas/{layer}/avg"] = np.concatenate(self.avgs[layer])
        return out


def _update_full(run: PartialAtlas, first_id: int, values: np.ndarray, maps: np.ndarray) -> None:
    """merge([run, batch]) in place for a running atlas that already holds T images per channel:
    the selection runs on values and ids only, and only the maps of channels whose top changed are
    rewritten, copying from the batch just the entries that entered (the extraction's hot loop)."""
    c, t = run.ids.shape
    vals = values.T  # [C, B]
    if not (vals >= run.values[:, -1:]).any():
        return  # below every channel's T-th value: nothing enters
    b = vals.shape[1]
    ids_all = np.concatenate([run.ids, np.broadcast_to(np.arange(first_id, first_id + b), (c, b))], axis=1)
    vals_all = np.concatenate([run.values, vals.astype(np.float32)], axis=1)
    sel = _select(ids_all, vals_all, t)  # [C, T] positions: < T running, ≥ T batch
    changed = np.nonzero((sel != np.arange(t)).any(axis=1))[0]
    sc, rows = sel[changed], changed[:, None]
    out = run.maps[rows, np.minimum(sc, t - 1)]  # [K, T, h, w]: running entries, reordered
    k, r = np.nonzero(sc >= t)
    out[k, r] = maps[sc[k, r] - t, :, :, changed[k]]  # the entries that entered, from the batch
    run.maps[changed] = out
    run.ids[changed] = ids_all[rows, sc]
    run.values[changed] = vals_all[rows, sc]


class ShardsAtlas:
    """The atlas of a dataset's shards, merged as each shard is read: a running top-T per channel
    (value desc, then id asc: a total order, so merging shard by shard selects exactly what one
    merge of every shard would), so memory holds one shard's maps, not N images' (holding them all
    took 10.5 GB at 100,000 images, MobileNet α 0.25, 8 layers)."""

    def __init__(self, layers: Sequence[str], top: int = TOP):
        self.layers, self.top = list(layers), top
        self.parts: dict[str, PartialAtlas | None] = {layer: None for layer in layers}
        self.avg: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}  # used without avg features

    def add(self, start: int, shard: Mapping[str, np.ndarray]) -> None:
        """One shard's ShardAtlas arrays, its ids local to the shard and its first row `start`."""
        for layer in self.layers:
            prefix = f"atlas/{layer}"
            part = PartialAtlas.from_arrays(shard, prefix)
            part = PartialAtlas(part.ids + start, part.values, part.maps)
            self.parts[layer] = merge([self.parts[layer], part], self.top)
            if f"{prefix}/avg" in shard:
                self.avg[layer].append(shard[f"{prefix}/avg"])

    def stored(self, features: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The stored atlas: per layer ids (uint32), values, maps and selectivity (variance of the
        avg-pooled activation across the dataset; from the stored avg features when present)."""
        out: dict[str, np.ndarray] = {}
        for layer in self.layers:
            prefix, atlas = f"atlas/{layer}", self.parts[layer]
            avg = features[f"avg/{layer}"] if f"avg/{layer}" in features else np.concatenate(self.avg[layer])
            out.update({f"{prefix}/ids": atlas.ids.astype(np.uint32), f"{prefix}/values": atlas.values,
                        f"{prefix}/maps": atlas.maps, f"{prefix}/selectivity": selectivity(avg)})
        return out


def merge_shards(shards: Sequence[Mapping[str, np.ndarray]], features: Mapping[str, np.ndarray],
                 layers: Sequence[str], top: int = TOP) -> dict[str, np.ndarray]:
    """The stored atlas of a dataset from its shards' ShardAtlas arrays (in shard order, ids
    already dataset rows) and its concatenated features (see ShardsAtlas)."""
    acc = ShardsAtlas(layers, top)
    for shard in shards:
        acc.add(0, shard)
    return acc.stored(features)


def stored_atlas(arrays: Mapping[str, np.ndarray], layer: str) -> tuple[PartialAtlas, np.ndarray] | None:
    """(atlas, selectivity) of a layer from a features store's arrays; None if it has none."""
    prefix = f"atlas/{layer}"
    if f"{prefix}/ids" not in arrays:
        return None
    return PartialAtlas.from_arrays(arrays, prefix), np.asarray(arrays[f"{prefix}/selectivity"])
