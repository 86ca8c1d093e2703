"""What to compute: a TOML file plus CLI overrides, validated with clear errors."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .models import DEFAULT_NUM_LAYERS, default_model_ids, get_spec
from .pooling import DEFAULT_POOLINGS, resolve_poolings
from .neighbors import resolve_metric, validate_minkowski_p
from .tfjs_export import DEFAULT_QUANTIZATION, QUANTIZATIONS

ALL_METRICS = ("cosine", "euclidean", "sqeuclidean", "minkowski")


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class UmapConfig:
    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: str = "cosine"


@dataclass(frozen=True)
class RunConfig:
    datasets: tuple[str, ...] = ("digits", "shapes")
    models: tuple[str, ...] = tuple(default_model_ids())
    # Per-model explicit layer names; models not listed get the default selection.
    layers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    num_layers: int = DEFAULT_NUM_LAYERS
    metrics: tuple[str, ...] = ALL_METRICS
    minkowski_p: float = 3.0
    k: int = 15
    # Every pooling is computed from the same forward pass; the explorer compares them.
    pooling: tuple[str, ...] = DEFAULT_POOLINGS
    weights: str = "auto"
    seed: int = 0
    batch_size: int = 32
    shard_size: int = 256  # images per resumable extraction shard
    umap: UmapConfig = UmapConfig()
    browser_search: bool = True
    browser_model: str = "mobilenet"
    quantize: str = DEFAULT_QUANTIZATION
    out: Path = Path("frontend/public/data")
    work: Path = Path(".convnet-search")
    # Folder holding Keras' ImageNet .h5 files (like $KERAS_HOME/models); None: KERAS_HOME / ~/.keras
    weights_cache: Path | None = None

    def validated(self) -> "RunConfig":
        if not self.datasets:
            raise ConfigError("no datasets given")
        if not self.models:
            raise ConfigError("no models given")
        models = tuple(dict.fromkeys(get_spec(m).id for m in self.models))
        layers = {get_spec(m).id: tuple(v) for m, v in self.layers.items()}
        stray = [m for m in layers if m not in models]
        if stray:
            raise ConfigError(f"layers given for model(s) not in the run: {', '.join(stray)}")
        metrics = tuple(dict.fromkeys(resolve_metric(m) for m in self.metrics))
        p = validate_minkowski_p(self.minkowski_p) if "minkowski" in metrics else float(self.minkowski_p)
        if self.k < 1:
            raise ConfigError(f"k={self.k}: must be at least 1")
        try:
            pooling = resolve_poolings(self.pooling)
        except ValueError as exc:
            raise ConfigError(f"pooling: {exc}") from None
        for name, value, low in (("num_layers", self.num_layers, 1), ("batch_size", self.batch_size, 1),
                                 ("shard_size", self.shard_size, 1), ("umap.n_neighbors", self.umap.n_neighbors, 2)):
            if value < low:
                raise ConfigError(f"{name}={value}: must be at least {low}")
        if self.quantize not in QUANTIZATIONS:
            raise ConfigError(f"quantize {self.quantize!r}: choose one of {', '.join(QUANTIZATIONS)}")
        return replace(self, models=models, layers=layers, metrics=metrics, minkowski_p=p, pooling=pooling,
                       browser_model=get_spec(self.browser_model).id)


_TOP_KEYS = {f.name for f in fields(RunConfig)}


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a TOML config (if any), apply non-None overrides, validate."""
    data: dict[str, Any] = {}
    base_dir = Path.cwd()
    if path is not None:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; "
                          f"known: {', '.join(sorted(_TOP_KEYS))}")
    for key, value in (overrides or {}).items():
        if value is not None:
            data[key] = value
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key == "umap":
            bad = set(value) - {f.name for f in fields(UmapConfig)}
            if bad:
                raise ConfigError(f"unknown umap key(s): {', '.join(sorted(bad))}")
            kwargs[key] = UmapConfig(**value)
        elif key in ("datasets", "models", "metrics"):
            kwargs[key] = tuple(value)
        elif key == "layers":
            kwargs[key] = {m: tuple(v) for m, v in value.items()}
        elif key in ("out", "work", "weights_cache"):
            kwargs[key] = Path(value) if Path(value).is_absolute() else base_dir / value
        else:
            kwargs[key] = value
    try:
        cfg = RunConfig(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"invalid config: {exc}") from None
    try:
        return cfg.validated()
    except ConfigError:
        raise
    except ValueError as exc:  # model / metric / p errors from the registries
        raise ConfigError(str(exc)) from None
