"""Registry of Keras application CNNs, their weights, layers and feature extractors.

Adding a model is one `_register(...)` line. Nothing here builds a model or imports TensorFlow at
import time: `convnet-search --help` and the up-to-date checks must stay fast.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .pooling import MAX_FLATTEN_DIM, POOLINGS, feature_key, keras_pooling_layer, resolve_poolings


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


@dataclass(frozen=True)
class ModelSpec:
    id: str
    name: str
    constructor: str  # attribute of keras.applications, e.g. "MobileNet"
    preprocess_module: str  # keras.applications submodule holding preprocess_input
    input_size: tuple[int, int]
    default: bool = True  # part of the default run (the nine ConvNet Playground models)
    extra_kwargs: dict[str, Any] = field(default_factory=dict)


REGISTRY: dict[str, ModelSpec] = {}


def _register(spec: ModelSpec) -> None:
    REGISTRY[spec.id] = spec


# The nine ConvNet Playground models, at their native input sizes.
_register(ModelSpec("mobilenet", "MobileNet", "MobileNet", "mobilenet", (224, 224)))
_register(ModelSpec("efficientnetb0", "EfficientNetB0", "EfficientNetB0", "efficientnet", (224, 224)))
_register(ModelSpec("densenet121", "DenseNet121", "DenseNet121", "densenet", (224, 224)))
_register(ModelSpec("xception", "Xception", "Xception", "xception", (299, 299)))
_register(ModelSpec("inceptionv3", "InceptionV3", "InceptionV3", "inception_v3", (299, 299)))
_register(ModelSpec("resnet50", "ResNet50", "ResNet50", "resnet50", (224, 224)))
_register(ModelSpec("efficientnetb5", "EfficientNetB5", "EfficientNetB5", "efficientnet", (456, 456)))
_register(ModelSpec("vgg16", "VGG16", "VGG16", "vgg16", (224, 224)))
_register(ModelSpec("vgg19", "VGG19", "VGG19", "vgg19", (224, 224)))
# MobileNet v1 width variants (opt-in): fewer channels per layer, smaller and faster, less accurate.
# Published ImageNet top-1 at 224 px: alpha 0.25 ≈ 50 %, 0.5 ≈ 63 %, 0.75 ≈ 68 %, 1.0 ≈ 71 %.
for _alpha, _suffix in ((0.25, "025"), (0.5, "050"), (0.75, "075")):
    _register(ModelSpec(f"mobilenet_{_suffix}", f"MobileNet α={_alpha:g}", "MobileNet", "mobilenet",
                        (224, 224), default=False, extra_kwargs={"alpha": _alpha}))
# Modern, opt-in (name them with --models).
_register(ModelSpec("mobilenetv3large", "MobileNetV3Large", "MobileNetV3Large", "mobilenet_v3",
                    (224, 224), default=False))
_register(ModelSpec("mobilenetv3small", "MobileNetV3Small", "MobileNetV3Small", "mobilenet_v3",
                    (224, 224), default=False))
_register(ModelSpec("efficientnetv2b0", "EfficientNetV2B0", "EfficientNetV2B0", "efficientnet_v2",
                    (224, 224), default=False))
_register(ModelSpec("convnexttiny", "ConvNeXtTiny", "ConvNeXtTiny", "convnext", (224, 224),
                    default=False))
_register(ModelSpec("resnet50v2", "ResNet50V2", "ResNet50V2", "resnet_v2", (224, 224), default=False))

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

@dataclass(frozen=True)
class WeightsUsed:
    kind: str  # "imagenet" | "random" | "file"
    detail: str


class WeightsError(RuntimeError):
    pass


def _constructor(spec: ModelSpec):
    import keras

    return getattr(keras.applications, spec.constructor)


def build_base(spec: ModelSpec, weights: str = "auto", seed: int = 0):
    """Build the headless CNN. Returns (keras.Model, WeightsUsed).

    weights: "imagenet" (fail loudly if unavailable), "none" (random init from `seed`),
    "auto" (ImageNet if it can be obtained, else random with a loud warning), or a file path.
    """
    from .runtime import import_tensorflow

    import_tensorflow()
    import keras

    ctor = _constructor(spec)
    shape = (*spec.input_size, 3)
    kwargs = dict(include_top=False, input_shape=shape, **spec.extra_kwargs)
    w = str(weights)
    if w in ("none", "random"):
        keras.utils.set_random_seed(seed)  # random init must be reproducible across runs/processes
        return ctor(weights=None, **kwargs), WeightsUsed("random", f"random init (seed {seed})")
    if w in ("imagenet", "auto"):
        try:
            return ctor(weights="imagenet", **kwargs), WeightsUsed("imagenet", "ImageNet (Keras applications)")
        except Exception as exc:  # download failures surface as several exception types
            cause = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            if w == "imagenet":
                raise WeightsError(
                    f"could not obtain ImageNet weights for {spec.name}: {cause}. "
                    "Without a network, put the Keras weight file in ~/.keras/models/, pass "
                    "--weights PATH, or use --weights none (random init)."
                ) from exc
            msg = (f"ImageNet weights for {spec.name} could not be obtained ({cause}). "
                   f"FALLING BACK TO RANDOM WEIGHTS (seed {seed}): results show what an untrained "
                   "network retrieves, not what ImageNet features do. The bundle records "
                   "weights='random' and the explorer shows a banner.")
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
            keras.utils.set_random_seed(seed)
            return (ctor(weights=None, **kwargs),
                    WeightsUsed("random", f"random init (seed {seed}); ImageNet unavailable: {cause}"))
    path = Path(w)
    if not path.is_file():
        raise WeightsError(f"--weights {w!r}: not 'auto', 'imagenet', 'none' or an existing weights file")
    model = ctor(weights=None, **kwargs)
    try:
        model.load_weights(str(path))
    except Exception as exc:
        raise WeightsError(f"{path}: cannot load as {spec.name} weights: {exc}") from exc
    return model, WeightsUsed("file", f"file {path.name}")


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


def output_keys(infos: list[LayerInfo], poolings: Sequence[str]) -> list[str]:
    """Names of the extractor's outputs, in order: every pooling of a layer, layer by layer."""
    return [feature_key(i.name, p) for i in infos for p in poolings]


def build_feature_extractor(spec: ModelSpec, layer_names: list[str] | None = None, *,
                            weights: str = "auto", pooling: str | Sequence[str] = "avg", seed: int = 0,
                            num_layers: int = DEFAULT_NUM_LAYERS):
    """One multi-output model: float32 RGB 0..255 [B,H,W,3] -> one vector per (layer, pooling),
    in the order of `output_keys(infos, poolings)`.

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
    model = keras.Model(inp, outputs, name=f"{spec.id}_features")
    base_info = {"params": int(base.count_params()), "layer_count": len(base.layers),
                 "weights": used.kind, "weights_detail": used.detail,
                 "weights_digest": weights_digest(base)}
    return model, infos, base_info
