"""Feature visualizations: per chosen layer, images that maximize its 16 most selective channels.

A stage of its own after extraction (opt-in per model: config `featviz_models`, default the browser
model). Activation maximization with the regularizers of the Lucid line of work (Olah, Mordvintsev &
Schubert 2017, "Feature Visualization"), without which the optimum is high-frequency noise:
- the image is parametrized in a decorrelated space: per colour, an FFT spectrum scaled by 1/f
  (natural-image statistics), and a colour basis whitened with ImageNet's colour correlations, then
  a sigmoid to [0, 1];
- every step sees it through a random transform (translation ±8 px, scale 0.9–1.1, rotation ±10°),
  so only patterns that survive them grow (transformation robustness);
- the objective is the mean of the channel over the map, before the layer's activation function
  when the chosen layer is one (ReLU6 saturates at 6: a gradient of 0 there stops the optimization;
  Lucid optimizes "pre_relu" tensors for the same reason).
All 16 channels of a layer are optimized together as a batch of 16 images, each its own channel.
Seeded (initial spectrum and transforms from a NumPy generator): the same inputs give the same
images. Stored in the work folder with a fingerprint; the bundle copies the JPEG grids.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..config import RunConfig
from ..io.store import StoredArrays, atomic_write_bytes, atomic_write_json, fingerprint
from ..nets.weights import ResolvedWeights
from .base import Stage
from .outputs import FeatvizResult
from .tfjs import browser_model

if TYPE_CHECKING:
    from .base import RunContext

FEATVIZ_FORMAT = 2  # 2: objective divided by the layer's activation scale at the start
TILE = 128  # px of one visualization (the parametrized image)
CHANNELS = 16  # channels visualized per layer: the most selective ones
STEPS = 256
LEARNING_RATE = 0.05  # Adam, Lucid's default
JITTER = 8  # px, in the parametrized image's pixels
SCALES = tuple(1 + (i - 5) / 50 for i in range(11))  # Lucid's standard_transforms
ANGLES = tuple(range(-10, 11)) + (0,) * 5  # degrees; Lucid's standard_transforms
VIEW_MARGIN = 16  # the network sees the image plus this many px of grey around it (Lucid pads 12)
# Square root of ImageNet's RGB correlation matrix (Lucid, optvis/param/color.py): maps the
# decorrelated colour space the optimizer works in back to RGB.
COLOR_CORRELATION_SVD_SQRT = np.array([[0.26, 0.09, 0.02],
                                       [0.27, 0.00, -0.05],
                                       [0.27, -0.09, 0.03]], np.float32)
_ACTIVATION_TYPES = {"ReLU", "Activation"}


def rfft2d_freqs(h: int, w: int) -> np.ndarray:
    """Frequency magnitude of every coefficient of an h × w real 2-D FFT ([h, w // 2 + 1])."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    return np.sqrt(fx * fx + fy * fy)


def spectrum_scale(h: int, w: int, decay_power: float = 1.0) -> np.ndarray:
    """1/f scaling of the spectrum (the DC term capped at 1/max(h, w)), times sqrt(h·w) so the
    inverse FFT is unitary and pixel-scale learning rates apply."""
    f = np.maximum(rfft2d_freqs(h, w), 1.0 / max(h, w))
    return (np.sqrt(h * w) / f ** decay_power).astype(np.float32)


def random_transforms(rng: np.random.Generator, n: int, tile: int, out_size: Sequence[int]) -> np.ndarray:
    """[n, 8] ImageProjectiveTransformV3 rows: each maps the model's input pixels (out_size) into
    the tile-sized image, viewing it at a random scale, rotation and translation (about its centre)."""
    out_h, out_w = out_size
    k_base = (tile + VIEW_MARGIN) / max(out_h, out_w)  # input px per output px at scale 1
    rows = np.zeros((n, 8), np.float32)
    for i in range(n):
        scale = SCALES[rng.integers(len(SCALES))]
        theta = math.radians(ANGLES[rng.integers(len(ANGLES))])
        tx, ty = rng.integers(-JITTER, JITTER + 1, size=2)
        k = k_base / scale
        a0, a1 = k * math.cos(theta), -k * math.sin(theta)
        b0, b1 = k * math.sin(theta), k * math.cos(theta)
        co_x, co_y, ci = (out_w - 1) / 2, (out_h - 1) / 2, (tile - 1) / 2
        rows[i, :6] = (a0, a1, ci + tx - (a0 * co_x + a1 * co_y), b0, b1, ci + ty - (b0 * co_x + b1 * co_y))
    return rows


def most_selective(selectivity: np.ndarray, count: int = CHANNELS) -> list[int]:
    """The `count` channels with the largest selectivity, most selective first (ties: smaller index)."""
    from ..search.atlas import selectivity_order

    return [int(c) for c in selectivity_order(selectivity)[:count]]


def tile_grid(images: np.ndarray) -> np.ndarray:
    """uint8 [n, t, t, 3] -> one grid image: ⌈n/4⌉ rows of min(n, 4) tiles, row-major."""
    n, t = images.shape[0], images.shape[1]
    cols = min(n, 4)
    rows = -(-n // cols)
    grid = np.zeros((rows * t, cols * t, 3), np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        grid[r * t:(r + 1) * t, c * t:(c + 1) * t] = img
    return grid


def jpeg(grid: np.ndarray, quality: int = 90) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(grid).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _target_tensor(base, layer_name: str):
    """The tensor whose channels are maximized: the pre-activation of an activation layer."""
    layer = base.get_layer(layer_name)
    return layer.input if type(layer).__name__ in _ACTIVATION_TYPES else layer.output


def render_layer(base, preprocess, layer_name: str, channels: Sequence[int], input_size: Sequence[int],
                 seed: int, steps: int = STEPS, tile: int = TILE) -> np.ndarray:
    """uint8 [len(channels), tile, tile, 3]: image i maximizes the mean of channels[i]."""
    import keras
    import tensorflow as tf

    n = len(channels)
    target = keras.Model(base.inputs, _target_tensor(base, layer_name))
    rng = np.random.default_rng(seed)
    fh, fw = rfft2d_freqs(tile, tile).shape
    init = (0.01 * rng.standard_normal((2, n, 3, fh, fw))).astype(np.float32)
    re, im = tf.Variable(init[0]), tf.Variable(init[1])
    scale = tf.constant(spectrum_scale(tile, tile))
    color = tf.constant((COLOR_CORRELATION_SVD_SQRT
                         / np.max(np.linalg.norm(COLOR_CORRELATION_SVD_SQRT, axis=0))).T)
    chan = tf.constant(np.asarray(channels, np.int32))
    out_size = tf.constant(np.asarray(input_size, np.int32))
    opt = keras.optimizers.Adam(LEARNING_RATE)

    def image():
        spectrum = tf.complex(re * scale, im * scale)
        x = tf.signal.irfft2d(spectrum, fft_length=[tile, tile]) / 4.0  # [n, 3, tile, tile]
        x = tf.transpose(x, [0, 2, 3, 1])
        return tf.sigmoid(tf.tensordot(x, color, axes=1))  # decorrelated colours -> RGB in [0, 1]

    def view(transforms):
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=image(), transforms=transforms, output_shape=out_size, fill_value=0.5,
            interpolation="BILINEAR", fill_mode="CONSTANT")

    # Adam is blind to the objective's scale only while gradients dwarf its epsilon (1e-7):
    # random-weights networks have activations near 1e-17 at late layers, which would leave the
    # image grey. Dividing by the layer's mean |activation| on the starting image makes the
    # optimization the same at any scale (for trained weights, a constant factor Adam ignores).
    start = target(preprocess(view(tf.constant(random_transforms(rng, n, tile, input_size))) * 255.0),
                   training=False)
    act_scale = float(tf.reduce_mean(tf.abs(start)))
    inv_scale = tf.constant(1.0 / act_scale if act_scale > 0 else 1.0, tf.float32)

    @tf.function(reduce_retracing=True)
    def step(transforms):
        with tf.GradientTape() as tape:
            acts = target(preprocess(view(transforms) * 255.0), training=False)  # [n, h, w, C]
            per_image = tf.gather(tf.reduce_mean(acts, axis=[1, 2]), chan, axis=1, batch_dims=1)
            loss = -tf.reduce_sum(per_image) * inv_scale
        grads = tape.gradient(loss, [re, im])
        opt.apply_gradients(zip(grads, [re, im]))
        return loss

    for _ in range(steps):
        step(tf.constant(random_transforms(rng, n, tile, input_size)))
    return np.rint(image().numpy() * 255.0).astype(np.uint8)


def layer_channels(feats: StoredArrays, layer: str) -> list[int] | None:
    """The most selective channels of a layer, from the stored atlas (or avg features); None if
    the store has neither."""
    arrays = feats.arrays
    if f"atlas/{layer}/selectivity" in arrays:
        var = np.asarray(arrays[f"atlas/{layer}/selectivity"])
    elif f"avg/{layer}" in arrays:
        from ..search.atlas import selectivity

        var = selectivity(arrays[f"avg/{layer}"])
    else:
        return None
    return most_selective(var)


def _folder(work: Path, model: str, fp: str) -> Path:
    return Path(work) / "featviz" / f"{model}-{fp[:16]}"


def stored_featviz(feats: StoredArrays, seed: int, work: Path, steps: int = STEPS) -> FeatvizResult | None:
    """Fingerprint and is-current check of featviz_stage: its result with status "up to date" when
    the work folder has it, "missing" when not; None when the features give no channels to draw."""
    meta = feats.meta
    chosen = {layer["name"]: layer_channels(feats, layer["name"]) for layer in meta["layers"]}
    if any(c is None for c in chosen.values()):
        return None  # neither an atlas nor avg features: no selectivity to choose channels by
    fp = fingerprint("featviz", FEATVIZ_FORMAT, meta["weights_digest"], meta["model"], meta["input_size"],
                     chosen, steps, TILE, LEARNING_RATE, JITTER, SCALES, ANGLES, VIEW_MARGIN, seed)
    folder = _folder(work, meta["model"], fp)
    layers = {name: (folder / f"{name}.jpg", chans, TILE) for name, chans in chosen.items()}
    if not (folder / "info.json").exists():
        return FeatvizResult(meta["model"], layers, 0.0, "missing", fp)
    recorded = float(json.loads((folder / "info.json").read_text()).get("seconds", 0.0))
    return FeatvizResult(meta["model"], layers, 0.0, "up to date", fp, recorded)


def featviz_stage(feats: StoredArrays, seed: int, work: Path, weights: Any = None,
                  steps: int = STEPS) -> FeatvizResult | None:
    """Render (or reuse) the visualizations of every layer of one model's features store (the
    run's first dataset). weights: the run's ResolvedWeights for the model."""
    stored = stored_featviz(feats, seed, work, steps)
    if stored is None or stored.status == "up to date":
        return stored
    meta, fp, layers = feats.meta, stored.fingerprint, stored.layers
    chosen = {name: chans for name, (_, chans, _) in layers.items()}
    info_path = _folder(work, meta["model"], fp) / "info.json"
    from ..nets.models import _preprocess_layer, build_base, get_spec, weights_digest

    t0 = time.perf_counter()
    spec = get_spec(meta["model"])
    base, _ = build_base(spec, weights or meta["weights"], seed)
    if weights_digest(base) != meta["weights_digest"]:
        raise RuntimeError(f"{meta['model']}: rebuilt weights differ from the extracted ones")
    preprocess = _preprocess_layer(spec)
    per_layer = {}
    for i, (name, chans) in enumerate(chosen.items()):
        t = time.perf_counter()
        images = render_layer(base, preprocess, name, chans, meta["input_size"], seed + i, steps)
        atomic_write_bytes(layers[name][0], jpeg(tile_grid(images)))
        per_layer[name] = round(time.perf_counter() - t, 2)
    seconds = time.perf_counter() - t0
    atomic_write_json(info_path, {"fingerprint": fp, "channels": chosen, "seconds": round(seconds, 2),
                                  "layer_seconds": per_layer, "steps": steps})
    return FeatvizResult(meta["model"], layers, seconds, "rendered", fp, seconds)


def featviz_models(cfg: RunConfig, weights: dict[str, ResolvedWeights]) -> list[str]:
    """Models to visualize: as configured; "auto" is the exported browser model when its weights are
    trained (activation maximization of random weights shows nothing; name the model to get it)."""
    out: list[str] = []
    for m in cfg.featviz_models:
        if m == "auto":
            m = browser_model(cfg) if cfg.browser_search else None
            if m is None or m not in weights or weights[m].kind == "random":
                continue
        if m in cfg.models and m not in out:
            out.append(m)
    return out


def run(ctx: RunContext) -> None:
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


def load(ctx: RunContext) -> None:
    for mid in featviz_models(ctx.cfg, ctx.weights):
        stored = stored_featviz(ctx.results[0].features[mid], ctx.cfg.seed, ctx.work)
        if stored is not None and stored.status != "up to date":
            raise ctx.missing("featviz", mid)
        if stored is not None:
            ctx.featviz[mid] = stored


STAGE = Stage("featviz", run, load, ("datasets", "extract"), ("featviz",))
