"""What to compute: a TOML file plus CLI overrides, validated with clear errors.

`KEYS` (and `UMAP_KEYS`) describe every config key once: its type, range or choices, CLI flag and
help. The TOML file and the command-line flags go through the same checks (`load_config`), and every
problem is collected and reported together, one line each, naming where the value came from
(``configs/x.toml: k: ...`` or ``--k: ...``), before any compute starts.
"""
from __future__ import annotations

import difflib
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from .distribute.base import RAY_INSTALL_HINT
from .nets.models import DEFAULT_NUM_LAYERS, default_model_ids, get_spec
from .nets.pooling import DEFAULT_POOLINGS, POOLINGS
from .nets.tfjs_export import DEFAULT_QUANTIZATION, QUANTIZATIONS
from .search.browser_features import DOWNLOAD_BUDGET_MB
from .search.metrics import METRIC_IDS, resolve_metric, validate_minkowski_p
from .search.projection import UmapConfig

ALL_METRICS = METRIC_IDS
# The one place that says how small k may be: a dataset of N images stores min(k, N − 1) neighbours
# and scores the top min(15, that), so any k ≥ 1 is meaningful.
K_MIN, K_MIN_WHY = 1, ""
QUANTIZE_CHOICES = QUANTIZATIONS
# umap-learn's named metrics that need no extra parameters and accept any real-valued feature.
UMAP_METRICS = ("cosine", "euclidean", "l2", "manhattan", "l1", "taxicab", "chebyshev", "linf",
                "linfinity", "linfty", "canberra", "braycurtis", "correlation")
SEED_MAX = 2**32 - 1  # numpy and umap-learn seeds are unsigned 32-bit
DISTRIBUTORS = ("local", "ray")  # distribute/: who runs extraction shards and neighbour blocks
# Keys that only mean something with distributor = "ray" (refused with "local", not ignored).
RAY_KEYS = ("ray_address", "workers", "cpus_per_worker", "gpus_per_worker")


class ConfigError(ValueError):
    """One or more config problems; ``problems`` holds one message per problem."""

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            text = self.problems[0]
        else:
            text = f"{len(self.problems)} config problems:\n" + "\n".join(f"  {p}" for p in self.problems)
        super().__init__(text)


@dataclass(frozen=True)
class Key:
    """One config key: kind is int, float, bool, str, path, list (of strings), umap or layers (tables)."""
    kind: str
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    why: str = ""  # reason shown after a range, e.g. why k has a minimum
    flag: str | None = None  # CLI flag; None: "--" + the key with '-' for '_'
    optional: bool = False  # None (absent) is a valid value
    empty_ok: bool = False  # a list key for which [] is meaningful (e.g. featviz_models: none)


KEYS: dict[str, Key] = {
    "datasets": Key("list", "bundled dataset names (bundled:NAME when a folder of that name exists "
                    "here too) or image folders (any tree of images; --labels says whether "
                    "first-level folders are classes)",
                    flag="--dataset"),
    "models": Key("list", "model ids (see `convnet-search info`)"),
    "layers": Key("layers", "layer names per model ([layers] table: MODEL = [names]); on the command "
                            "line prefix each with MODEL: when several models run (default: 8 per "
                            "model, chosen by the documented rule)"),
    "num_layers": Key("int", f"how many layers the default rule picks (default {DEFAULT_NUM_LAYERS})", min=1),
    "metrics": Key("list", ", ".join(METRIC_IDS) + " or an alias (default: all of them)"),
    "minkowski_p": Key("float", "p of the minkowski metric (default 3; 2 is refused: that is euclidean)",
                       min=1),
    "k": Key("int", "neighbours stored per image (default 15; a dataset of N images stores at most N-1)",
             min=K_MIN, why=K_MIN_WHY),
    "pooling": Key("list", "feature map -> vector: one or several of " + ", ".join(POOLINGS)
                           + f" (default: {' '.join(DEFAULT_POOLINGS)}, all from one forward pass)",
                   choices=tuple(POOLINGS)),
    "weights": Key("str", "auto (default): ImageNet if obtainable, else random with a loud warning; "
                          "imagenet; none (random init); or a weights file PATH"),
    "seed": Key("int", "seed for random weights and UMAP (default 0)", min=0, max=SEED_MAX),
    "batch_size": Key("int", "images per forward pass (default 32)", min=1),
    "shard_size": Key("int", "images per resumable extraction shard, on average (default 64; content-defined, at most 4×)", min=1),
    "umap": Key("umap", "[umap] table: n_neighbors, min_dist, metric"),
    "browser_search": Key("bool", "export the TF.js model for in-browser search (default true)",
                          flag="--no-browser-search"),
    "browser_model": Key("str", "model exported for in-browser search; auto (default): the run's first "
                                "MobileNet (any width, the family TF.js runs fast) with trained weights, "
                                "else its first MobileNet"),
    "browser_budget_mb": Key("float", "download budget of a private search, model + one features file, "
                                      f"in MB (default {DOWNLOAD_BUDGET_MB:g}): the dataset's features are compressed to fit "
                                      "(docs/live-search.md \"Features download\")", min=0.001),
    "quantize": Key("str", f"weight quantization of the exported model (default {DEFAULT_QUANTIZATION}; "
                           "chosen by measured parity, docs/live-search.md)", choices=QUANTIZE_CHOICES),
    "weights_cache": Key("path", "folder holding Keras' ImageNet .h5 files (default $KERAS_HOME/models, "
                                 "else ~/.keras/models); see `convnet-search weights list`", optional=True),
    "atlas": Key("bool", "channel atlas: per channel of every chosen layer, the top 9 images and their "
                         "activation maps, from the extraction's forward pass (default true)"),
    "featviz_models": Key("list", "models whose 16 most selective channels per layer get feature "
                                  "visualizations (a stage after extract); auto (default): the browser "
                                  "model; [] for none", empty_ok=True),
    "labels": Key("str", "auto (default): class folders when every image sits in one of >= 2 first-level "
                         "folders not all named like dates (2023/, 2024-05/), else none; folders (ROOT/<class>/<image>); none (every image at any "
                         "depth, unlabelled); or a labels FILE (CSV/TSV, path relative to the current "
                         "folder: a path column, one column per "
                         "label field; docs/bundle.md \"Label fields\")"),
    "judgements": Key("path", "a judgements file exported from the explorer (\"Your judgements\" panel): every "
                              "configuration is ranked by it offline and the ranking stored in the bundle "
                              "(docs/judgements.md)", optional=True),
    "follow_links": Key("bool", "follow symlinks that point outside the dataset root (default false)"),
    "distributor": Key("str", "who runs extraction and neighbours: local (default, this process) or ray "
                              "(a Ray cluster; same outputs; docs/distributed.md)", choices=DISTRIBUTORS),
    "ray_address": Key("str", "Ray cluster to use with --distributor ray: HOST:PORT, ray://HOST:PORT, auto "
                              "(the running one) or local (a new one); default: RAY_ADDRESS, else the "
                              "`ray start` cluster of this machine, else a new local Ray", optional=True),
    "workers": Key("int", "Ray workers (actors) to start (default: as many as the cluster's CPUs/GPUs "
                          "allow)", min=1, optional=True),
    "cpus_per_worker": Key("int", "CPUs per Ray worker, also its TensorFlow thread count (default 1)", min=1),
    "gpus_per_worker": Key("float", "GPUs per Ray worker, fractions allowed (default 0)", min=0),
    "out": Key("path", "bundle folder (default: frontend/public/data inside the convnet-search checkout, "
                       "else convnet-search-bundle in the current folder)"),
    "work": Key("path", "cache of stage outputs (default .convnet-search)"),
}

UMAP_KEYS: dict[str, Key] = {
    "n_neighbors": Key("int", "UMAP neighbourhood size (default 15)", min=2),
    "min_dist": Key("float", "UMAP minimum distance between map points (default 0.1)", min=0, max=1,
                    why="umap-learn's spread is 1"),
    "metric": Key("str", "UMAP metric (default cosine)", choices=UMAP_METRICS),
}


def flag_of(name: str) -> str:
    key = KEYS[name]
    return key.flag or "--" + name.replace("_", "-")


def flag_help(name: str) -> str:
    return KEYS[name].help


def flag_type(name: str) -> Callable[[str], Any]:
    """argparse ``type=`` for a numeric flag: only the conversion (with this module's wording);
    ranges are checked by `load_config` together with everything else."""
    key = KEYS[name]
    convert = int if key.kind == "int" else float

    def parse(text: str):
        import argparse

        try:
            return convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected(key)}, got {_show(text)}") from None

    parse.__name__ = key.kind
    return parse


# --out when none is given (default_out): in the checkout, and anywhere else.
DEFAULT_OUT = "frontend/public/data"
OUTSIDE_CHECKOUT_OUT = "convnet-search-bundle"


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
    shard_size: int = 64  # images per resumable extraction shard, on average (shards.py)
    umap: UmapConfig = UmapConfig()
    browser_search: bool = True
    browser_model: str = "auto"
    browser_budget_mb: float = DOWNLOAD_BUDGET_MB
    quantize: str = DEFAULT_QUANTIZATION
    atlas: bool = True
    featviz_models: tuple[str, ...] = ("auto",)
    labels: str = "auto"  # io/labels.py: auto, folders, none, or a labels file path
    judgements: Path | None = None  # exported judgements file (stages/judgements.py)
    follow_links: bool = False
    # Folder holding Keras' ImageNet .h5 files (like $KERAS_HOME/models); None: KERAS_HOME / ~/.keras
    weights_cache: Path | None = None
    # Who runs the work (distribute/); never part of a fingerprint: the outputs are the same.
    distributor: str = "local"
    ray_address: str | None = None
    workers: int | None = None
    cpus_per_worker: int = 1
    gpus_per_worker: float = 0.0
    out: Path = Path(DEFAULT_OUT)
    work: Path = Path(".convnet-search")

    def validated(self) -> "RunConfig":
        """This config checked with the same rules as a TOML file (first problem wins here)."""
        raw = {f.name: getattr(self, f.name) for f in fields(self)}
        raw["umap"] = dict(self.umap.__dict__)
        raw["layers"] = {m: list(v) for m, v in self.layers.items()}
        raw["out"], raw["work"] = str(self.out), str(self.work)
        if self.weights_cache is not None:
            raw["weights_cache"] = str(self.weights_cache)
        if self.judgements is not None:
            raw["judgements"] = str(self.judgements)
        values, problems = {}, []
        for name, value in raw.items():
            if value is None and KEYS[name].optional:
                values[name] = None
                continue
            ok, problem = check_key(name, value)
            if isinstance(problem, _Sub):
                problems.extend(problem.items)
            elif problem:
                problems.append(f"{name}: {problem}")
            values[name] = ok
        if not problems:
            problems = [f"{name}: {p}" for name, p in _resolve(values)]
        if problems:
            raise ConfigError(problems)
        return _build(values, Path.cwd())


assert set(KEYS) == {f.name for f in fields(RunConfig)}, "KEYS must describe every RunConfig field"
assert set(UMAP_KEYS) == {f.name for f in fields(UmapConfig)}


# --------------------------------------------------------------------------------------------
# Checking one value
# --------------------------------------------------------------------------------------------

def _show(value: Any, limit: int = 60) -> str:
    """A value as it would be written in TOML (strings in double quotes), cut to `limit`."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(_show(v, limit) for v in value) + "]"
    elif isinstance(value, dict):
        text = "{" + ", ".join(f"{k} = {_show(v, limit)}" for k, v in value.items()) + "}"
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _kind_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"  # TOML dates and times


def _range_text(key: Key, noun: str) -> str:
    lo, hi = key.min, key.max
    fmt = (lambda x: str(int(x))) if key.kind == "int" else (lambda x: f"{x:g}")
    if lo is not None and hi is not None:
        text = f"{noun} between {fmt(lo)} and {fmt(hi)}"
    elif lo is not None:
        text = f"{noun} ≥ {fmt(lo)}"
    elif hi is not None:
        text = f"{noun} ≤ {fmt(hi)}"
    else:
        text = noun
    return f"{text} ({key.why})" if key.why else text


def expected(key: Key) -> str:
    """What a key accepts, in words ("an integer ≥ 1", "one of "avg", "max"", ...)."""
    if key.choices and key.kind == "list":
        return "one or a list of " + ", ".join(_show(c) for c in key.choices)
    if key.choices:
        return "one of " + ", ".join(_show(c) for c in key.choices)
    return {
        "int": lambda: _range_text(key, "an integer"),
        "float": lambda: _range_text(key, "a finite number"),
        "bool": lambda: "true or false",
        "str": lambda: "a non-empty string",
        "path": lambda: "a non-empty string (a folder path)",
        "list": lambda: ("a list" if key.empty_ok else "a non-empty list") + " of non-empty strings",
        "umap": lambda: "a table with keys " + ", ".join(UMAP_KEYS),
        "layers": lambda: "a table MODEL = [layer names]",
    }[key.kind]()


def _in_range(key: Key, x: float) -> bool:
    return (key.min is None or x >= key.min) and (key.max is None or x <= key.max)


def _is_str_list(value: Any) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) > 0
            and all(isinstance(v, str) and v.strip() for v in value))


def check_value(key: Key, value: Any) -> tuple[Any, str | None]:
    """(normalized value, None) or (None, "expected …, got …") for a non-table key."""
    kind = key.kind
    ok = False
    given = value  # as written, for the message
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool) and _in_range(key, value)
    elif kind == "float":
        # ints are fine where floats are meant; booleans are not numbers here
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
              and _in_range(key, value))
        if ok:
            value = float(value)
    elif kind == "bool":
        ok = isinstance(value, bool)
    elif kind in ("str", "path"):
        ok = isinstance(value, str) and value.strip() != "" and (not key.choices or value in key.choices)
    elif kind == "list":
        if key.choices and isinstance(value, str):
            value = [value]  # a list of choices may be given as one choice: pooling = "avg"
        ok = ((_is_str_list(value) and (not key.choices or all(v in key.choices for v in value)))
              or (key.empty_ok and isinstance(value, (list, tuple)) and len(value) == 0))
        if ok:
            value = tuple(dict.fromkeys(value))
    if ok:
        return value, None
    same_kind = {"int": isinstance(value, int) and not isinstance(value, bool),
                 "float": isinstance(value, (int, float)) and not isinstance(value, bool),
                 "bool": isinstance(value, bool), "str": isinstance(value, str),
                 "path": isinstance(value, str), "list": isinstance(value, (list, tuple))}[kind]
    # Name the type only when it is the problem: `got "15" (a string)`, but `got 10` for a range.
    note = "" if same_kind else f" ({_kind_name(value)})"
    return None, f"expected {expected(key)}, got {_show(given)}{note}"


def check_key(name: str, value: Any) -> tuple[Any, str | None]:
    """Check one top-level key: (normalized value, None) or (None, problem). For a table whose
    sub-keys are wrong the problem is a `_Sub` listing each with its key path (umap.min_dist)."""
    key = KEYS[name]
    if key.kind == "umap":
        return _check_umap(value)
    if key.kind == "layers":
        return _check_layers(value)
    return check_value(key, value)


def _check_umap(value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, dict):
        return None, f"expected {expected(KEYS['umap'])}, got {_show(value)} ({_kind_name(value)})"
    out, problems = {}, []
    for sub, v in value.items():
        if sub not in UMAP_KEYS:
            problems.append(f"umap.{sub}: unknown key; known: {', '.join(UMAP_KEYS)}")
            continue
        ok, problem = check_value(UMAP_KEYS[sub], v)
        if problem:
            problems.append(f"umap.{sub}: {problem}")
        out[sub] = ok
    return (None, _Sub(problems)) if problems else (out, None)


def _check_layers(value: Any) -> tuple[Any, str | None]:
    if not isinstance(value, dict):
        return None, f"expected {expected(KEYS['layers'])}, got {_show(value)} ({_kind_name(value)})"
    out, problems = {}, []
    for model, names in value.items():
        if not _is_str_list(names):
            note = "" if isinstance(names, (list, tuple)) else f" ({_kind_name(names)})"
            problems.append(f"layers.{model}: expected a non-empty list of layer names, got {_show(names)}{note}")
            continue
        out[model] = tuple(names)
    return (None, _Sub(problems)) if problems else (out, None)


class _Sub(str):
    """Problems of a table's sub-keys: each already names its full key path (umap.min_dist)."""

    def __new__(cls, problems: list[str]):
        obj = super().__new__(cls, "; ".join(problems))
        obj.items = problems
        return obj


# --------------------------------------------------------------------------------------------
# Checks that need the model / metric registries or two keys together
# --------------------------------------------------------------------------------------------

def _resolve(values: dict[str, Any]) -> list[tuple[str, str]]:
    """Resolve aliases in place (models, metrics, browser_model, layers); returns (key, problem)."""
    problems: list[tuple[str, str]] = []

    def each(name: str, items, fn: Callable[[str], str]) -> tuple[str, ...] | None:
        out, bad = [], []
        for item in items:
            try:
                out.append(fn(item))
            except ValueError as exc:
                bad.append(str(exc))
        if bad:
            problems.append((name, "; ".join(bad)))
            return None
        return tuple(dict.fromkeys(out))

    models = each("models", values.get("models", RunConfig.models), lambda m: get_spec(m).id)
    if models is not None:
        values["models"] = models
    metrics = each("metrics", values.get("metrics", RunConfig.metrics), resolve_metric)
    if metrics is not None:
        values["metrics"] = metrics
    if values.get("browser_model", "auto") != "auto":
        resolved = each("browser_model", [values["browser_model"]], lambda m: get_spec(m).id)
        if resolved is not None:
            values["browser_model"] = resolved[0]
    labels = values.get("labels", "auto")
    if labels not in ("auto", "folders", "none") and len(values.get("datasets", RunConfig.datasets)) > 1:
        problems.append(("labels", f"a labels file ({labels}) describes one dataset; this run has "
                                   f"{len(values['datasets'])} (run them separately)"))
    if values.get("featviz_models"):
        resolved = each("featviz_models", values["featviz_models"],
                        lambda m: m if m == "auto" else get_spec(m).id)
        if resolved is not None:
            stray = [m for m in resolved if m != "auto" and models is not None and m not in models]
            if stray:
                problems.append(("featviz_models", f"model(s) not in the run: {', '.join(stray)}"))
            values["featviz_models"] = resolved
    if "layers" in values:
        layers, bad = {}, []
        for model, names in values["layers"].items():
            try:
                layers[get_spec(model).id] = tuple(names)
            except ValueError:
                bad.append(f"unknown model {model!r} (see `convnet-search info`)")
        stray = [m for m in layers if models is not None and m not in models]
        if bad:
            problems.append(("layers", "; ".join(bad)))
        elif stray:
            problems.append(("layers", f"given for model(s) not in the run: {', '.join(stray)}"))
        values["layers"] = layers
    problems += _distributor_problems(values)
    if "minkowski_p" in values and metrics is not None and "minkowski" in metrics:
        try:
            values["minkowski_p"] = validate_minkowski_p(values["minkowski_p"])
        except ValueError as exc:
            problems.append(("minkowski_p", str(exc)))
    return problems


def _distributor_problems(values: dict[str, Any]) -> list[tuple[str, str]]:
    """Ray keys need distributor = "ray"; "ray" needs Ray installed; an address must parse."""
    import importlib.util

    problems: list[tuple[str, str]] = []
    ray = values.get("distributor", RunConfig.distributor) == "ray"
    defaults = {f.name: f.default for f in fields(RunConfig)}
    stray = [k for k in RAY_KEYS if values.get(k) not in (None, defaults[k])]
    if stray and not ray:
        problems += [(k, 'only used with distributor = "ray" (--distributor ray); remove it or use Ray')
                     for k in stray]
    if ray and importlib.util.find_spec("ray") is None:
        problems.append(("distributor", f"ray is not installed: {RAY_INSTALL_HINT}"))
    address = values.get("ray_address")
    if address is not None and address not in ("auto", "local"):
        rest = address.split("://", 1)[1] if address.startswith("ray://") else address
        host, _, port = rest.rpartition(":")
        if "://" in rest or not host or not port.isdigit() or not 0 < int(port) < 65536:
            problems.append(("ray_address", f"expected HOST:PORT, ray://HOST:PORT, auto or local, got {_show(address)}"))
    return problems


def default_out(cwd: Path) -> str:
    """The bundle folder when none is given: the explorer's own data folder when run from the
    convnet-search checkout (make precompute, the dev server), else a folder of its own beside the
    default work folder, never a frontend/public/data created wherever the command was started."""
    checkout = (cwd / "frontend" / "package.json").is_file() and (cwd / "convnet_search").is_dir()
    return DEFAULT_OUT if checkout else OUTSIDE_CHECKOUT_OUT


def _build(values: dict[str, Any], base_dir: Path) -> RunConfig:
    kwargs = dict(values)
    kwargs.setdefault("out", default_out(base_dir))
    if "umap" in kwargs:
        kwargs["umap"] = UmapConfig(**kwargs["umap"])
    for key in ("out", "work", "weights_cache", "judgements"):
        if kwargs.get(key) is not None:
            p = Path(kwargs[key]).expanduser()
            kwargs[key] = p if p.is_absolute() else base_dir / p
    return RunConfig(**kwargs)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

def _did_you_mean(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Read a TOML config (if any), apply non-None overrides (CLI flags), validate everything.

    All problems are collected and raised together as one `ConfigError`, each naming the file and
    key path (``configs/x.toml: umap.min_dist: ...``) or the flag (``--k: ...``).
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the config file: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None

    values: dict[str, Any] = {}
    where: dict[str, str] = {}  # key -> how to name it in a message
    problems: list[str] = []

    def take(name: str, value: Any, prefix: str, label: str) -> None:
        ok, problem = check_key(name, value)
        if isinstance(problem, _Sub):  # table sub-keys name themselves (umap.min_dist)
            problems.extend(f"{prefix}{p}" for p in problem.items)
        elif problem:
            problems.append(f"{prefix}{label}: {problem}")
        else:
            values[name] = ok
        where[name] = f"{prefix}{label}"

    unknown = [key for key in data if key not in KEYS]
    for key in unknown:
        problems.append(f"{path}: {key}: unknown key{_did_you_mean(key, KEYS)}; known: {', '.join(KEYS)}")
    for key, value in data.items():
        if key in KEYS:
            take(key, value, f"{path}: ", key)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in KEYS:
            raise KeyError(f"override for unknown config key {key!r}")  # a programming error
        values.pop(key, None)  # a flag replaces the file's value, valid or not
        take(key, value, "", flag_of(key))

    if not problems:  # registry checks make sense only once the types are right
        problems = [f"{where.get(name, name)}: {msg}" for name, msg in _resolve(values)]
    if problems:
        raise ConfigError(problems)
    return _build(values, Path.cwd())
