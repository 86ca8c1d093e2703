"""The one preprocessing path from decoded pixels to network input.

Python (dataset features) and the browser (uploaded image) must feed the network identical
tensors, or search results drift silently. Both sides resize with TensorFlow's bilinear kernel with
half-pixel centres and no antialiasing: `tf.image.resize(..., "bilinear", antialias=False)` here,
`tf.image.resizeBilinear(img, size, false, true)` in TF.js. The model's own `preprocess_input`
lives inside the graph (see models.build_feature_extractor), so both sides feed float32 RGB 0..255.
"""
from __future__ import annotations

import numpy as np

RESIZE_METHOD = "bilinear"
RESIZE_DESCRIPTION = (
    "decode → RGB → resize bilinear, half-pixel centres, no antialias → float32 0…255"
)


def resize_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize one uint8 RGB image [H, W, 3] to float32 [h, w, 3] in 0..255."""
    import tensorflow as tf  # lazy: keeps CLI start-up fast

    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB image [H, W, 3], got shape {rgb.shape}")
    out = tf.image.resize(tf.convert_to_tensor(rgb, tf.float32), size, RESIZE_METHOD, antialias=False)
    return out.numpy()


def resize_tensor(rgb, size: tuple[int, int]):
    """Graph-mode twin of `resize_rgb` for tf.data pipelines (uint8 tensor in, float32 out)."""
    import tensorflow as tf

    return tf.image.resize(tf.cast(rgb, tf.float32), size, RESIZE_METHOD, antialias=False)
