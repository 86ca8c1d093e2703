"""Pooling registry: how a conv feature map [H, W, C] becomes one vector per image.

One entry per pooling drives everything: config validation, the Keras layers of the feature
extractor (and so the TF.js model), the feature dimension, the bundle's `poolings` list and the
explorer's labels. `reference` is a plain NumPy version of each, used by the tests.

Which pooling retrieves best depends on the data (avg won on small centred photos, flatten on
centred product shots), so the default run computes several from the same forward pass and the
explorer compares them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

GEM_P = 3.0  # generalized-mean exponent: the instance-retrieval standard (Radenović et al. 2018)
# GeM is defined on non-negative activations: negative values (an Add before its ReLU) count as 0.
# It is computed as s·GeM(x/s) with s the channel's maximum over the map, which is the same number
# but never under- or overflows in float32: untrained networks have activations near 1e-16, whose
# cube (1e-48) would flush to zero, and the usual 1e-6 clamp would then make every vector equal.
# An all-zero channel divides by 1 instead of 0 (no epsilon constant: the TF.js converter quantizes
# graph constants too, and float16 flushes a tiny epsilon to 0).
GRID = 2  # grid pooling: GRID × GRID cells, each average-pooled ("grid2"; "grid3" has 3 × 3)


@dataclass(frozen=True)
class Pooling:
    id: str
    label: str
    description: str
    dim: Callable[[int, int, int], int]  # (H, W, C) -> vector length
    reference: Callable[[np.ndarray], np.ndarray]  # float [B, H, W, C] -> [B, dim]


def grid_bounds(size: int, cells: int = GRID) -> list[tuple[int, int]]:
    """Cell i covers [floor(i·size/cells), ceil((i+1)·size/cells)): adaptive pooling's rule, so an
    odd map (7×7) shares its middle row/column between cells instead of dropping it."""
    return [((i * size) // cells, -((-(i + 1) * size) // cells)) for i in range(cells)]


def grid_cells(pooling: str) -> int:
    """Cells per side of a grid pooling id ("grid2" -> 2, "grid3" -> 3, "mgrid3" -> 3)."""
    return int(pooling.removeprefix("m").removeprefix("grid"))


def mirror_pairs(cells: int) -> list[tuple[int, int]]:
    """The column pairs a mirror grid averages: j with its mirror image cells − 1 − j (the middle
    column of an odd grid with itself). grid_bounds is symmetric, so a mirrored map swaps exactly
    the cells of a pair."""
    return [(j, cells - 1 - j) for j in range((cells + 1) // 2)]


def _grid_reference(x: np.ndarray, cells: int = GRID) -> np.ndarray:
    rows, cols = grid_bounds(x.shape[1], cells), grid_bounds(x.shape[2], cells)
    parts = [x[:, r0:r1, c0:c1, :].mean(axis=(1, 2)) for r0, r1 in rows for c0, c1 in cols]
    return np.concatenate(parts, axis=1)


def _grid_pooling(cells: int, layout: str) -> Pooling:
    """"grid<cells>": the mean of each of cells × cells regions, concatenated (`layout` says what
    that keeps, for the explorer's description)."""
    return Pooling(f"grid{cells}", f"Grid {cells}×{cells}",
                   f"Average over each of {cells}×{cells} image regions, concatenated: {layout} at "
                   f"{cells * cells}× the channels.",
                   lambda h, w, c: cells * cells * c, lambda x: _grid_reference(x, cells))


def _mirror_grid_reference(x: np.ndarray, cells: int) -> np.ndarray:
    rows, cols = grid_bounds(x.shape[1], cells), grid_bounds(x.shape[2], cells)
    parts = []
    for r0, r1 in rows:
        row = [x[:, r0:r1, c0:c1, :].mean(axis=(1, 2)) for c0, c1 in cols]
        parts += [(row[a] + row[b]) / 2 for a, b in mirror_pairs(cells)]
    return np.concatenate(parts, axis=1)


def _mirror_grid_pooling(cells: int) -> Pooling:
    """"mgrid<cells>": a grid pooling whose left and right cells are averaged in mirror pairs: the
    same vector for an image and its mirror image (a horizontally flipped copy), which a grid
    tells apart (bench/README.md, curate: grid3 found 0.40 of caltech10's flipped copies and 0.77 of
    tinyimagenet20's, mgrid3 all)."""
    half = (cells + 1) // 2
    return Pooling(f"mgrid{cells}", f"Mirror grid {cells}×{cells}",
                   f"Average over each of {cells}×{cells} image regions, each left region averaged with "
                   f"its mirror on the right: layout from top to bottom and from the centre out, the "
                   f"same for a mirrored image, at {cells * half}× the channels.",
                   lambda h, w, c: cells * half * c, lambda x: _mirror_grid_reference(x, cells))


def _gem_reference(x: np.ndarray) -> np.ndarray:
    return np.mean(np.maximum(x, 0.0) ** GEM_P, axis=(1, 2)) ** (1.0 / GEM_P)


POOLINGS: dict[str, Pooling] = {p.id: p for p in (
    Pooling("avg", "Average", "Mean of each channel over the map: what the channel responds to, "
            "wherever it is.", lambda h, w, c: c, lambda x: x.mean(axis=(1, 2))),
    Pooling("max", "Max", "Strongest response of each channel anywhere in the image.",
            lambda h, w, c: c, lambda x: x.max(axis=(1, 2))),
    Pooling("gem", f"GeM (p={GEM_P:g})", f"Generalized mean (mean of x^{GEM_P:g})^(1/{GEM_P:g}): "
            "between average and max, the standard for instance retrieval.",
            lambda h, w, c: c, _gem_reference),
    _grid_pooling(GRID, "keeps coarse layout (what is where)"),
    # 3×3 cells: on 7×7 last-layer maps of real photos it kept 0.999 of flatten's search score
    # (caltech10) at 2,304 instead of 12,544 floats, and cost avg nothing where avg wins (docs/models.md)
    _grid_pooling(3, "finer layout than 2×2"),
    _mirror_grid_pooling(3),
    Pooling("flatten", "Flatten", "Every position of the map (ConvNet Playground's choice): full "
            "layout, but very long vectors at early layers.",
            lambda h, w, c: h * w * c, lambda x: x.reshape(len(x), -1)),
)}
# The default keeps the winner on every real set measured (docs/models.md, "Which poolings by default").
DEFAULT_POOLINGS = ("avg", "grid3")
# Flattening raw conv maps is what made ConvNet Playground's vectors 3.2M-dimensional; we allow it
# for users who ask, but refuse dimensions that would blow up memory and every downstream stage.
MAX_FLATTEN_DIM = 200_000


def resolve_poolings(names) -> tuple[str, ...]:
    """Validated, de-duplicated pooling ids (a single name or a list); ValueError lists the valid ones."""
    names = [names] if isinstance(names, str) else list(names)
    if not names:
        raise ValueError("no pooling given")
    bad = [n for n in names if n not in POOLINGS]
    if bad:
        raise ValueError(f"unknown pooling {', '.join(map(repr, bad))}; choose from {', '.join(POOLINGS)}")
    return tuple(dict.fromkeys(names))


def feature_key(layer: str, pooling: str) -> str:
    """Key of one (layer, pooling) feature matrix in the stores."""
    return f"{pooling}/{layer}"


def feature_keys(layers: Sequence[str], poolings: Sequence[str]) -> list[str]:
    """Keys of every (layer, pooling) matrix in the extractor's output order: every pooling of a
    layer, layer by layer."""
    return [feature_key(layer, p) for layer in layers for p in poolings]


def keras_pooling_layer(pooling: str, name: str):
    """A Keras layer doing `pooling` ([B, H, W, C] -> [B, dim]) with ops TF.js also runs."""
    import keras

    if pooling == "avg":
        return keras.layers.GlobalAveragePooling2D(name=name)
    if pooling == "max":
        return keras.layers.GlobalMaxPooling2D(name=name)
    if pooling == "flatten":
        return keras.layers.Flatten(name=name)
    return _custom_layer_class()(pooling, name=name)


_CUSTOM = None


def _custom_layer_class():
    global _CUSTOM
    if _CUSTOM is not None:
        return _CUSTOM
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="convnet_search")
    class MapPooling(keras.layers.Layer):
        """GeM, grid and mirror grid pooling (Keras has no built-in layer for them)."""

        def __init__(self, kind: str, **kwargs):
            super().__init__(**kwargs)
            self.kind = kind

        def call(self, x):
            if self.kind == "gem":
                x = ops.maximum(x, 0.0)
                s = ops.max(x, axis=(1, 2), keepdims=True)
                s = ops.where(s > 0.0, s, 1.0)
                gem = ops.power(ops.mean(ops.power(x / s, GEM_P), axis=(1, 2)), 1.0 / GEM_P)
                return gem * ops.squeeze(s, axis=(1, 2))
            n = grid_cells(self.kind)
            rows, cols = grid_bounds(x.shape[1], n), grid_bounds(x.shape[2], n)
            cells = [[ops.mean(x[:, r0:r1, c0:c1, :], axis=(1, 2)) for c0, c1 in cols] for r0, r1 in rows]
            if self.kind.startswith("mgrid"):
                cells = [[(row[a] + row[b]) * 0.5 for a, b in mirror_pairs(n)] for row in cells]
            return ops.concatenate([c for row in cells for c in row], axis=-1)

        def compute_output_shape(self, shape):
            b, h, w, c = shape
            return (b, POOLINGS[self.kind].dim(h, w, c))

        def get_config(self):
            return {**super().get_config(), "kind": self.kind}

    _CUSTOM = MapPooling
    return _CUSTOM
