"""What a model is: its Keras constructor, preprocessing, input size and ImageNet weights file.

Its own module so that the registry (models.py) and weights resolution (weights.py) both read it
without importing each other.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelSpec:
    id: str
    name: str
    constructor: str  # attribute of keras.applications, e.g. "MobileNet"
    preprocess_module: str  # keras.applications submodule holding preprocess_input
    input_size: tuple[int, int]
    default: bool = True  # part of the default run (the nine ConvNet Playground models)
    extra_kwargs: dict[str, Any] = field(default_factory=dict)
    # Keras' own ImageNet weights for include_top=False, exactly as keras.applications fetches them
    # (origin URL, whose last part is the cache file name, and the hash Keras checks, if any).
    # weights.py finds them in the Keras cache without building the model; tests/test_weights.py
    # checks every entry against what keras.applications really asks for.
    weights_url: str = ""
    weights_hash: str | None = None

    @property
    def weights_file(self) -> str:
        """Keras cache file name of the no-top ImageNet weights, e.g. mobilenet_2_5_224_tf_no_top.h5."""
        return self.weights_url.rsplit("/", 1)[-1]
