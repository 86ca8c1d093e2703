"""The one preprocessing path from decoded pixels to network input.

Python (dataset features) and the browser (uploaded image) must feed the network identical
tensors, or search results drift silently. The path, for a network input of h×w (224×224):

1. **Large images only — box downscale by an integer factor.** If the image is larger than 2× the
   input on either side, it is shrunk by an integer factor ``k`` (one ``k`` for both axes: the
   aspect ratio is kept): each output pixel is the mean of a k×k block of uint8 pixels (the blocks
   on the right and bottom edges may be smaller and average what they hold), rounded half up to
   uint8 with exact integer arithmetic. ``k`` is the smallest integer with ``ceil(H/k) ≤ 2h`` and
   ``ceil(W/k) ≤ 2w``, rounded up to an even number when a side is over 3,136 px (`area_factor`). A
   4000×3000 phone photo becomes 400×300 at 224 (k = 10), 500×375 at 299 (k = 7 → 8). Why the box: bilinear without antialiasing
   reads only 2×2 pixels per output pixel, so from 4000 px to 224 it samples 1 pixel in 18 and
   aliases badly; averaging every pixel first removes that, and being integer arithmetic on uint8
   it is reproduced bit for bit in the browser (`frontend/src/live/downscale.ts`), unlike canvas
   smoothing, whose filter is up to each browser. Why even: a JPEG can then be decoded at 1/2
   of its size by libjpeg's DCT scaling, whose pixels are within 2–3 levels of the 2×2 block
   means of a full decode, once for every model of a run, and box-downscaled by k/2 from
   there (Pillow's ``Image.reduce``, rounding within 1 of these exact means): 3–4× less decoding
   for a 12 MP photo (issue 22; `io/images.py` ``load_rgb_reduced``; the browser decodes in full
   and computes the same k×k means).
   Rounding up costs at most 1/k of the resolution (at 224: 1/9, k = 9 → 10; at 299: 1/7; at
   456: 1/5), and only for images over 3,136 px.
2. **Always — bilinear resize to h×w** with half-pixel centres and no antialiasing:
   `tf.image.resize(..., "bilinear", antialias=False)` here, `tf.image.resizeBilinear(img, size,
   false, true)` in TF.js. From ≤ 2× the input size bilinear reads every pixel at least once.

Images no larger than 2× the input (every dataset-sized image) skip step 1, so their tensors are
exactly what they were before step 1 existed. The model's own `preprocess_input` lives inside the
graph (see models.build_feature_extractor), so both sides feed float32 RGB 0..255.
"""
from __future__ import annotations

import numpy as np

RESIZE_METHOD = "bilinear"
# Step 1 applies when a side exceeds this multiple of the network input (see the module docstring).
MAX_PRE_SCALE = 2
# Images with a side over this (8 MP photos and up) get an even k for every input size, so one
# JPEG decode at 1/2 (DCT_SCALE) serves every model of a run (reduce_scale). 3,136 = 7 × 448: for a
# 224 input, exactly the images whose k would be 8 or more.
LARGE_SIDE = 3136
DCT_SCALE = 2
RESIZE_DESCRIPTION = (
    "decode → RGB → if a side > 2× the input: k×k box mean (smallest integer k bringing both "
    "sides ≤ 2×, rounded up to even for a side > 3136 px; uint8, rounded half up; such a JPEG is "
    "decoded at 1/2 by DCT scaling, then box k/2) → resize bilinear, half-pixel centres, no antialias "
    "→ float32 0…255"
)


def area_factor(height: int, width: int, size: tuple[int, int]) -> int:
    """The box-downscale factor k of step 1: the smallest k ≥ 1 with ceil(H/k) ≤ 2h and
    ceil(W/k) ≤ 2w, rounded up to an even number when a side is over LARGE_SIDE (and k > 1)."""
    h, w = size
    if height < 1 or width < 1 or h < 1 or w < 1:
        raise ValueError(f"sizes must be positive, got image {height}×{width}, input {h}×{w}")
    k = smallest_area_factor(height, width, size)
    return k + k % 2 if k > 1 and max(height, width) > LARGE_SIDE else k


def smallest_area_factor(height: int, width: int, size: tuple[int, int]) -> int:
    """The smallest k ≥ 1 with ceil(H/k) ≤ 2h and ceil(W/k) ≤ 2w (area_factor before rounding)."""
    h, w = size
    # ceil(H/k) ≤ 2h  ⇔  H/k ≤ 2h (2h is an integer)  ⇔  k ≥ H/(2h)  ⇔  k ≥ ceil(H/(2h)).
    return max(1, -(-height // (MAX_PRE_SCALE * h)), -(-width // (MAX_PRE_SCALE * w)))


def reduce_scale(height: int, width: int, size: tuple[int, int]) -> int:
    """The DCT scale a JPEG of this upright size may be decoded at for input ``size``: DCT_SCALE
    for a large image (its k is even), else 1 (decoded in full: cheap, and its pixels stay
    bit-identical to the browser's). The same for every input size with k > 1, so one decode
    serves a whole run."""
    return DCT_SCALE if area_factor(height, width, size) > 1 and max(height, width) > LARGE_SIDE else 1


def reduce_plan(sizes: "tuple[tuple[int, int], ...]", first: tuple[int, int]):
    """For images.load_rgb_reduced: (height, width) → the DCT scale ``first`` (an input size) allows,
    and the box factors of every size in ``sizes`` that the same decode serves (same scale)."""
    def plan(height: int, width: int) -> tuple[int, tuple[int, ...]]:
        s = reduce_scale(height, width, first)
        same = [z for z in (first, *sizes) if reduce_scale(height, width, z) == s]
        return s, tuple(dict.fromkeys(area_factor(height, width, z) for z in same))
    return plan


def step1_from(decoded, size: tuple[int, int]) -> np.ndarray | None:
    """Step 1 for input ``size`` from an images.Decoded: the box of a full decode, or the block
    means a DCT-scaled decode already holds; None when that decode cannot serve this size (the
    size's own DCT scale is another: a full decode must not stand in for a scaled one, or the
    pixels would depend on which model decoded first)."""
    own = reduce_scale(*decoded.full, size)
    if (own if own in decoded.scales else 1) != decoded.scale:
        return None
    if decoded.scale == 1:
        return area_downscale(decoded.boxed[1], size)
    return decoded.boxed.get(area_factor(*decoded.full, size))


def area_downscale(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Step 1: uint8 [H, W, 3] → uint8 [ceil(H/k), ceil(W/k), 3] by k×k block means (k = area_factor).

    Returns ``rgb`` itself when k = 1. Edge blocks that hold fewer than k×k pixels average the
    pixels they hold. Rounding is half up, computed exactly: (2·sum + n) // (2·n).
    """
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB image [H, W, 3], got {a.dtype} {a.shape}")
    height, width = a.shape[:2]
    k = area_factor(height, width, size)
    if k == 1:
        return a
    return _block_means(a, k)


def _block_means(a: np.ndarray, k: int) -> np.ndarray:
    """k×k block means of uint8 [H, W, 3], edge blocks partial, rounded half up (exact integers).

    Full blocks are summed by reshaping (one contiguous pass per axis, 2.5× faster on a 12 MP
    photo than np.add.reduceat); the partial right column and bottom row are summed apart. Row
    sums fit uint16 while k·255 ≤ 65535, which halves the memory the first pass writes.
    """
    height, width = a.shape[:2]
    hq, wq = height // k, width // k  # full blocks per axis
    ho, wo = -(-height // k), -(-width // k)
    sums = np.empty((ho, wo, 3), np.uint32)
    rows = a[:hq * k].reshape(hq, k, width, 3).sum(axis=1, dtype=np.uint16 if k * 255 <= 65535 else np.uint32)
    sums[:hq, :wq] = rows[:, :wq * k].reshape(hq, wq, k, 3).sum(axis=2, dtype=np.uint32)
    if wo > wq:
        sums[:hq, wq] = rows[:, wq * k:].sum(axis=1, dtype=np.uint32)
    if ho > hq:
        last = a[hq * k:].sum(axis=0, dtype=np.uint32)  # [W, 3]: the partial bottom row of blocks
        sums[hq, :wq] = last[:wq * k].reshape(wq, k, 3).sum(axis=1)
        if wo > wq:
            sums[hq, wq] = last[wq * k:].sum(axis=0)
    rh = np.full(ho, k, np.uint32)
    rh[-1] = height - (ho - 1) * k
    rw = np.full(wo, k, np.uint32)
    rw[-1] = width - (wo - 1) * k
    n = np.outer(rh, rw)[:, :, None]
    return ((2 * sums + n) // (2 * n)).astype(np.uint8)


def resize_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The whole path (steps 1 and 2): one uint8 RGB image [H, W, 3] → float32 [h, w, 3] in 0..255."""
    import tensorflow as tf  # lazy: keeps CLI start-up fast

    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB image [H, W, 3], got shape {rgb.shape}")
    small = area_downscale(rgb, size)
    out = tf.image.resize(tf.convert_to_tensor(small, tf.float32), size, RESIZE_METHOD, antialias=False)
    return out.numpy()


def resize_tensor(rgb, size: tuple[int, int]):
    """Step 2 only, graph mode, for tf.data pipelines (uint8 tensor in, float32 out).

    Feed it `area_downscale`'s output (extract.py does, in its reader) to get the whole path.
    """
    import tensorflow as tf

    return tf.image.resize(tf.cast(rgb, tf.float32), size, RESIZE_METHOD, antialias=False)
