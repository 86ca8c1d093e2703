"""Registry of Keras application CNNs, their weights, layers and feature extractors.

Adding a model is one `_register(...)` line. Nothing here builds a model or imports TensorFlow at
import time: `convnet-search --help` and the up-to-date checks must stay fast.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .pooling import MAX_FLATTEN_DIM, POOLINGS, feature_keys, keras_pooling_layer, resolve_poolings

from .spec import ModelSpec
from .weights import ResolvedWeights, WeightsError, file_digests, load_failure, resolve_weights


DEFAULT_NUM_LAYERS = 8

# Layer types whose output is a "real" feature map: after a non-linearity, a merge of branches or a
# pooling step. Excluded on purpose: BatchNormalization, ZeroPadding2D, Rescaling/Normalization,
# Dropout, linear convolutions (mid-block values a later BN/activation still transforms).
_FEATURE_MAP_TYPES = {
    "Activation", "ReLU", "Add", "Concatenate", "MaxPooling2D", "AveragePooling2D",
}
_CONV_TYPES = {"Conv2D", "DepthwiseConv2D", "SeparableConv2D"}


class ModelError(ValueError):
    """A model, layer or weights request that cannot be honoured; the message says what is valid."""


REGISTRY: dict[str, ModelSpec] = {}


def _register(spec: ModelSpec) -> None:
    REGISTRY[spec.id] = spec


_KA = "https://storage.googleapis.com/tensorflow/keras-applications/"


def _tf_kernels(folder: str, stem: str) -> str:
    return f"{_KA}{folder}/{stem}_weights_tf_dim_ordering_tf_kernels_notop.h5"


def _mobilenet_v1_url(alpha: float, rows: int = 224) -> str:
    # keras.applications.mobilenet: alpha 1.0 -> "1_0", 0.75 -> "7_5", 0.5 -> "5_0", 0.25 -> "2_5"
    text = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}[alpha]
    return f"{_KA}mobilenet/mobilenet_{text}_{rows}_tf_no_top.h5"


# The nine ConvNet Playground models, at their native input sizes.
_register(ModelSpec("mobilenet", "MobileNet", "MobileNet", "mobilenet", (224, 224),
                    weights_url=_mobilenet_v1_url(1.0)))
_register(ModelSpec("efficientnetb0", "EfficientNetB0", "EfficientNetB0", "efficientnet", (224, 224),
                    weights_url="https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5",
                    weights_hash="50bc09e76180e00e4465e1a485ddc09d"))
_register(ModelSpec("densenet121", "DenseNet121", "DenseNet121", "densenet", (224, 224),
                    weights_url=_tf_kernels("densenet", "densenet121"),
                    weights_hash="30ee3e1110167f948a6b9946edeeb738"))
_register(ModelSpec("xception", "Xception", "Xception", "xception", (299, 299),
                    weights_url=_tf_kernels("xception", "xception"),
                    weights_hash="b0042744bf5b25fce3cb969f33bebb97"))
_register(ModelSpec("inceptionv3", "InceptionV3", "InceptionV3", "inception_v3", (299, 299),
                    weights_url=_tf_kernels("inception_v3", "inception_v3"),
                    weights_hash="bcbd6486424b2319ff4ef7d526e38f63"))
_register(ModelSpec("resnet50", "ResNet50", "ResNet50", "resnet50", (224, 224),
                    weights_url=_tf_kernels("resnet", "resnet50"),
                    weights_hash="4d473c1dd8becc155b73f8504c6f6626"))
_register(ModelSpec("efficientnetb5", "EfficientNetB5", "EfficientNetB5", "efficientnet", (456, 456),
                    weights_url="https://storage.googleapis.com/keras-applications/efficientnetb5_notop.h5",
                    weights_hash="38879255a25d3c92d5e44e04ae6cec6f"))
_register(ModelSpec("vgg16", "VGG16", "VGG16", "vgg16", (224, 224),
                    weights_url=_tf_kernels("vgg16", "vgg16"),
                    weights_hash="6d6bbae143d832006294945121d1f1fc"))
_register(ModelSpec("vgg19", "VGG19", "VGG19", "vgg19", (224, 224),
                    weights_url=_tf_kernels("vgg19", "vgg19"),
                    weights_hash="253f8cb515780f3b799900260a226db6"))
# MobileNet v1 width variants (opt-in): fewer channels per layer, smaller and faster, less accurate.
# Published ImageNet top-1 at 224 px: alpha 0.25 ≈ 50 %, 0.5 ≈ 63 %, 0.75 ≈ 68 %, 1.0 ≈ 71 %.
for _alpha, _suffix in ((0.25, "025"), (0.5, "050"), (0.75, "075")):
    _register(ModelSpec(f"mobilenet_{_suffix}", f"MobileNet α={_alpha:g}", "MobileNet", "mobilenet",
                        (224, 224), default=False, extra_kwargs={"alpha": _alpha},
                        weights_url=_mobilenet_v1_url(_alpha)))
# Modern, opt-in (name them with --models).
_register(ModelSpec("mobilenetv3large", "MobileNetV3Large", "MobileNetV3Large", "mobilenet_v3",
                    (224, 224), default=False,
                    weights_url=f"{_KA}mobilenet_v3/weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
                    weights_hash="07fb09a5933dd0c8eaafa16978110389"))
_register(ModelSpec("mobilenetv3small", "MobileNetV3Small", "MobileNetV3Small", "mobilenet_v3",
                    (224, 224), default=False,
                    weights_url=f"{_KA}mobilenet_v3/weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
                    weights_hash="d3e8ec802a04aa4fc771ee12a9a9b836"))
_register(ModelSpec("efficientnetv2b0", "EfficientNetV2B0", "EfficientNetV2B0", "efficientnet_v2",
                    (224, 224), default=False,
                    weights_url=f"{_KA}efficientnet_v2/efficientnetv2-b0_notop.h5",
                    weights_hash="893217f2bb855e2983157299931e43ff"))
_register(ModelSpec("convnexttiny", "ConvNeXtTiny", "ConvNeXtTiny", "convnext", (224, 224),
                    default=False, weights_url=f"{_KA}convnext/convnext_tiny_notop.h5",
                    weights_hash="d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1"))
_register(ModelSpec("resnet50v2", "ResNet50V2", "ResNet50V2", "resnet_v2", (224, 224), default=False,
                    weights_url=_tf_kernels("resnet", "resnet50v2"),
                    weights_hash="fac2f116257151a9d068a22e544a4917"))

_ALIASES = {"mobilenetv1": "mobilenet", "effnetb0": "efficientnetb0", "effnetb5": "efficientnetb5",
            "inception_v3": "inceptionv3", "resnet": "resnet50", "convnext_tiny": "convnexttiny"}


def default_model_ids() -> list[str]:
    return [m.id for m in REGISTRY.values() if m.default]


def get_spec(name: str) -> ModelSpec:
    key = name.strip().lower().replace("-", "")
    key = _ALIASES.get(key, key)
    if key not in REGISTRY:
        known = ", ".join(REGISTRY)
        raise ModelError(f"unknown model {name!r}; known models: {known}")
    return REGISTRY[key]


# ---------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------

# Resolution (which file, which digest, or random with which seed) lives in weights.py; building
# loads exactly what was resolved. WeightsUsed is the old name of the resolved record.
WeightsUsed = ResolvedWeights


def _constructor(spec: ModelSpec):
    import keras

    return getattr(keras.applications, spec.constructor)


@contextlib.contextmanager
def _serve_cache_file(spec: ModelSpec, path: Path):
    """Make keras.applications' weights lookup return the resolved file: no second cache lookup,
    no download. Building with weights="imagenet" (not weights=None + load_weights) matters:
    some constructors (EfficientNet) add layers only for ImageNet weights."""
    from keras.src.utils import file_utils

    real = file_utils.get_file

    def get_file(fname=None, origin=None, *args, **kwargs):
        if fname != spec.weights_file:
            raise WeightsError(f"{spec.name}: Keras asks for {fname!r} but the registry names "
                               f"{spec.weights_file!r}; fix weights_url in convnet_search/models.py")
        return str(path)

    with _GET_FILE_LOCK:
        file_utils.get_file = get_file
        try:
            yield
        finally:
            file_utils.get_file = real


_GET_FILE_LOCK = threading.Lock()


def build_base(spec: ModelSpec, weights: "str | ResolvedWeights" = "auto", seed: int = 0,
               cache_dir: Path | str | None = None):
    """Build the headless CNN. Returns (keras.Model, ResolvedWeights).

    weights: a ResolvedWeights (what the fingerprint hashed), or an option string resolved here by
    weights.resolve_weights: "imagenet", "auto", "none" (random init from `seed`) or a file path.
    A corrupt or wrong-architecture file is a WeightsError naming the file, never a fallback.
    """
    from ..runtime import import_tensorflow

    resolved = (weights if isinstance(weights, ResolvedWeights)
                else resolve_weights(spec, str(weights), seed, cache_dir))
    import_tensorflow()
    import keras

    ctor = _constructor(spec)
    kwargs = dict(include_top=False, input_shape=(*spec.input_size, 3), **spec.extra_kwargs)
    if resolved.kind == "random":
        keras.utils.set_random_seed(resolved.seed)  # random init must be reproducible across processes
        return ctor(weights=None, **kwargs), resolved
    path = resolved.path
    assert path is not None
    try:
        if resolved.kind == "imagenet":
            with _serve_cache_file(spec, path):
                model = ctor(weights="imagenet", **kwargs)
        else:
            model = ctor(weights=None, **kwargs)
            model.load_weights(str(path))
    except WeightsError:
        raise
    except Exception as exc:  # h5py OSError (corrupt), ValueError (shape / layer-count mismatch), ...
        raise WeightsError(load_failure(spec, path, exc)) from exc
    if file_digests(path)[0] != resolved.sha256:  # replaced between resolving and loading
        raise WeightsError(f"{path}: changed while this run was using it; run again")
    return model, resolved


def weights_digest(model) -> str:
    """sha256 over all weight arrays: proves two builds (e.g. extract and TF.js export) match."""
    h = hashlib.sha256()
    for arr in model.get_weights():
        h.update(arr.tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerInfo:
    name: str
    index: int
    type: str
    output_shape: tuple[int, int, int]  # H, W, C
    params_cumulative: int
    depth: float  # index / (layer_count - 1)

    def dim(self, pooling: str) -> int:
        return POOLINGS[pooling].dim(*self.output_shape)


def _output_shape(layer) -> tuple | None:
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        return None
    return tuple(shape)


def describe_layers(base) -> list[LayerInfo]:
    """Every layer of the base model with a 4-D (feature map) output, with UI metadata."""
    layers = base.layers
    n = len(layers)
    infos: list[LayerInfo] = []
    cumulative = 0
    for i, layer in enumerate(layers):
        cumulative += int(layer.count_params()) if layer.built else 0
        shape = _output_shape(layer)
        if shape is None or len(shape) != 4 or type(layer).__name__ == "InputLayer":
            continue
        infos.append(LayerInfo(layer.name, i, type(layer).__name__,
                               (int(shape[1]), int(shape[2]), int(shape[3])), cumulative,
                               round(i / max(n - 1, 1), 4)))
    return infos


def _is_feature_map(base, info: LayerInfo) -> bool:
    if info.output_shape[0] * info.output_shape[1] <= 1:
        return False  # 1x1 maps (squeeze-excitation gates) carry no spatial features
    if info.type in _FEATURE_MAP_TYPES:
        return True
    if info.type in _CONV_TYPES:
        act = getattr(base.get_layer(info.name), "activation", None)
        return act is not None and getattr(act, "__name__", "linear") != "linear"
    return False


def select_default_layers(base, count: int = DEFAULT_NUM_LAYERS) -> list[str]:
    """The documented default rule (docs/models.md).

    Candidates are layers whose output is a real feature map (after a non-linearity, a branch merge
    or pooling). The last candidate (the final block's output) is always chosen; the others are the
    candidates nearest to evenly spaced depths j/count of it (j = 1 … count−1), so the selection
    runs from early layers (colour, texture) to the last block (objects).
    """
    infos = [i for i in describe_layers(base) if _is_feature_map(base, i)]
    if not infos:
        raise ModelError(f"{base.name}: no feature-map layers found")
    if len(infos) <= count:
        if len(infos) < count:  # said, not silent: the summary would show fewer layers than asked
            import warnings

            warnings.warn(f"--num-layers {count}: {base.name} has only {len(infos)} layers with a "
                          f"feature map; all {len(infos)} are used", UserWarning, stacklevel=2)
        return [i.name for i in infos]
    last = infos[-1].index
    chosen: list[LayerInfo] = []
    for j in range(1, count + 1):
        target = last * j / count
        for cand in sorted(infos, key=lambda c: (abs(c.index - target), c.index)):
            if cand not in chosen:
                chosen.append(cand)
                break
    return [c.name for c in sorted(chosen, key=lambda c: c.index)]


def resolve_layers(base, requested: list[str] | None, count: int = DEFAULT_NUM_LAYERS) -> list[LayerInfo]:
    """Layer infos for the requested names (any feature-map layer), or the default selection."""
    by_name = {i.name: i for i in describe_layers(base)}
    names = list(requested) if requested else select_default_layers(base, count)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        valid = ", ".join(by_name)
        raise ModelError(f"{base.name}: unknown layer(s) {', '.join(map(repr, unknown))}; "
                         f"layers with a feature map are: {valid}")
    if len(set(names)) != len(names):
        raise ModelError(f"{base.name}: layer list has duplicates: {names}")
    return sorted((by_name[n] for n in names), key=lambda i: i.index)


# ---------------------------------------------------------------------------------------------
# Feature extractor
# ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _preprocess_class():
    import keras

    @keras.saving.register_keras_serializable(package="convnet_search")
    class Preprocess(keras.layers.Layer):
        """The model's own preprocess_input, inside the graph so TF.js gets it too."""

        def __init__(self, module: str, **kwargs):
            super().__init__(**kwargs)
            self.module = module
            self._fn = importlib.import_module(f"keras.applications.{module}").preprocess_input

        def call(self, x):
            return self._fn(x)

        def get_config(self):
            return {**super().get_config(), "module": self.module}

    return Preprocess


def _preprocess_layer(spec: ModelSpec):
    return _preprocess_class()(spec.preprocess_module, name="preprocess")


def _atlas_outputs(infos: list[LayerInfo], maps, poolings: Sequence[str]) -> list:
    """Outputs named by atlas.extra_output_keys: the small map (an AveragePooling2D when the size
    divides, else two pooling-matrix products) and, if "avg" is not pooled, the global mean."""
    import keras

    from ..search.atlas import map_size, pooling_matrix

    out = []
    for info, m in zip(infos, maps):
        (hh, ww, _), (h, w) = info.output_shape, map_size(*info.output_shape[:2])
        if (hh, ww) == (h, w):
            small = m
        elif hh % h == 0 and ww % w == 0:
            small = keras.layers.AveragePooling2D((hh // h, ww // w), name=f"atlas_{info.name}")(m)
        else:
            ph, pw = pooling_matrix(hh, h), pooling_matrix(ww, w)
            small = keras.layers.Lambda(lambda x, ph=ph, pw=pw: keras.ops.einsum(
                "yi,bijc,xj->byxc", ph, x, pw), name=f"atlas_{info.name}")(m)
        out.append(small)
        if "avg" not in poolings:
            out.append(keras.layers.GlobalAveragePooling2D(name=f"atlas_avg_{info.name}")(m))
    return out


def output_keys(infos: list[LayerInfo], poolings: Sequence[str]) -> list[str]:
    """Names of the extractor's outputs, in order: every pooling of a layer, layer by layer."""
    return feature_keys([i.name for i in infos], poolings)


def build_feature_extractor(spec: ModelSpec, layer_names: list[str] | None = None, *,
                            weights: "str | ResolvedWeights" = "auto", pooling: str | Sequence[str] = "avg",
                            seed: int = 0, num_layers: int = DEFAULT_NUM_LAYERS, atlas: bool = False,
                            spatial: bool = False):
    """One multi-output model: float32 RGB 0..255 [B,H,W,3] -> one vector per (layer, pooling),
    in the order of `output_keys(infos, poolings)`; with atlas=True then the channel atlas's
    outputs (atlas.extra_output_keys: each layer's map pooled to ≤ 14×14, its mean if not pooled);
    with `spatial` then each layer's raw [B,h,w,C] map (layer order), which the TF.js export
    exposes for the browser's similarity maps.

    Returns (model, layer_infos, base_info) where base_info has params, layer_count, weights.
    One forward pass yields every chosen layer and pooling (TOOLCHAIN: ~5x faster than a model per
    layer; the poolings share the same feature maps).
    """
    import keras

    try:
        poolings = resolve_poolings(pooling)
    except ValueError as exc:
        raise ModelError(str(exc)) from None
    base, used = build_base(spec, weights, seed)
    infos = resolve_layers(base, layer_names, num_layers)
    if "flatten" in poolings:
        too_big = [f"{i.name} ({i.dim('flatten'):,})" for i in infos if i.dim("flatten") > MAX_FLATTEN_DIM]
        if too_big:
            raise ModelError(f"{spec.name}: flattened features too large (> {MAX_FLATTEN_DIM:,}): "
                             f"{', '.join(too_big)}; use another pooling or later layers")
    taps = keras.Model(base.inputs, [base.get_layer(i.name).output for i in infos], name=f"{spec.id}_taps")
    inp = keras.Input((*spec.input_size, 3), dtype="float32", name="image")
    maps = taps(_preprocess_layer(spec)(inp))
    if not isinstance(maps, (list, tuple)):
        maps = [maps]
    outputs = [keras_pooling_layer(p, name=f"{p}_{i.name}")(m) for i, m in zip(infos, maps) for p in poolings]
    if atlas:
        outputs += _atlas_outputs(infos, maps, poolings)
    if spatial:
        outputs += list(maps)
    model = keras.Model(inp, outputs, name=f"{spec.id}_features")
    base_info = {"params": int(base.count_params()), "layer_count": len(base.layers),
                 "weights": used.kind, "weights_detail": used.detail, "weights_sha256": used.sha256,
                 "weights_digest": weights_digest(base)}
    return model, infos, base_info
