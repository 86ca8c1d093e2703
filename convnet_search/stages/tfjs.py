"""TF.js stage: the browser model (same weights as its extraction) converted for private search.

The conversion is nets/tfjs_export.py; this module picks the model, skips a current export and
records what the bundle needs: <work>/tfjs/<model>-<fingerprint>/.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..config import RunConfig
from ..io.store import StoredArrays, atomic_write_json, fingerprint
from ..nets.models import get_spec
from ..nets.weights import ResolvedWeights, resolve_weights
from .base import Stage
from .outputs import BrowserSearch

if TYPE_CHECKING:
    from .base import RunContext

EXPORT_FORMAT = 4  # 2: model_sha256 recorded; 3: one output per (layer, pooling); 4: + spatial maps


def export_stage(feats: StoredArrays, cfg: RunConfig, work: Path,
                 weights: ResolvedWeights | None = None) -> BrowserSearch:
    """Convert the browser model (same weights as its extraction) to TF.js, once per fingerprint.

    weights: what the run resolved for this model (resolved again from cfg when omitted)."""
    meta = feats.meta
    layers = [layer["name"] for layer in meta["layers"]]
    poolings = meta["poolings"]
    export_dir = export_folder(feats, cfg, work)
    info_path = export_dir.with_suffix(".json")
    if not export_current(export_dir):
        from ..nets.models import build_feature_extractor
        from ..nets.tfjs_export import export_tfjs

        spec = get_spec(meta["model"])
        weights = weights or resolve_weights(spec, cfg.weights, cfg.seed, cfg.weights_cache)
        model, infos, base_info = build_feature_extractor(
            spec, layers, weights=weights, pooling=poolings, seed=cfg.seed, spatial=True)
        if base_info["weights_digest"] != meta["weights_digest"]:
            raise RuntimeError(f"{meta['model']}: rebuilt weights differ from the extracted ones; "
                               "cannot export a TF.js model that matches the dataset features")
        # Signature keys without "/": one output per (layer, pooling), in output_keys order.
        pairs = [(i.name, p) for i in infos for p in poolings]
        # Then each layer's raw map ("spatial__<layer>"): the browser's "why similar?" maps.
        exp = export_tfjs(model, [f"{p}__{layer}" for layer, p in pairs], export_dir, quantize=cfg.quantize,
                          spatial_names=[f"spatial__{i.name}" for i in infos])
        outputs = [{"layer": layer, "pooling": p, "dim": o["dim"], "output": o["output"]}
                   for (layer, p), o in zip(pairs, exp.outputs)]
        spatial = [{"layer": i.name, "output": o["output"], "shape": o["shape"]}
                   for i, o in zip(infos, exp.spatial_outputs)]
        atomic_write_json(info_path, {"model_bytes": exp.model_bytes, "model_sha256": exp.model_sha256,
                                      "quantization": exp.quantization, "outputs": outputs,
                                      "spatial_outputs": spatial})
    return stored_export(feats, cfg, export_dir)


def export_folder(feats: StoredArrays, cfg: RunConfig, work: Path) -> Path:
    """<work>/tfjs/<model>-<fingerprint>: the export of these features' weights, layers, poolings."""
    meta = feats.meta
    fp = fingerprint("tfjs", EXPORT_FORMAT, meta["weights_digest"], [layer["name"] for layer in meta["layers"]],
                     meta["poolings"], cfg.quantize, meta["input_size"])
    return work / "tfjs" / f"{meta['model']}-{fp[:16]}"


def export_current(export_dir: Path) -> bool:
    return export_dir.with_suffix(".json").exists() and export_dir.is_dir()


def stored_export(feats: StoredArrays, cfg: RunConfig, export_dir: Path) -> BrowserSearch:
    import json

    from ..nets.preprocess import RESIZE_DESCRIPTION

    info = json.loads(export_dir.with_suffix(".json").read_text())
    info["preprocess"] = RESIZE_DESCRIPTION
    layers = [layer["name"] for layer in feats.meta["layers"]]
    return BrowserSearch(feats.meta["model"], export_dir, info, layers, layers[-1],
                         int(cfg.browser_budget_mb * 1e6))


def browser_model(cfg: RunConfig) -> str | None:
    """The model exported for in-browser search: as configured, or (auto) the run's first MobileNet."""
    if cfg.browser_model != "auto":
        return cfg.browser_model
    return next((m for m in cfg.models if get_spec(m).constructor == "MobileNet"), None)


def export_model(ctx: RunContext) -> str | None:
    """The model to export for in-browser search, if the run has one (says why not otherwise)."""
    model = browser_model(ctx.cfg)
    if ctx.cfg.browser_search and model not in ctx.cfg.models:
        ctx.console.print(f"[yellow]browser search skipped: model {model or 'auto (a MobileNet)'!r} "
                          "is not in this run[/]")
    return model if ctx.cfg.browser_search and model in ctx.cfg.models else None


def run(ctx: RunContext) -> None:
    if model := export_model(ctx):
        ctx.browser = export_stage(ctx.results[0].features[model], ctx.cfg, ctx.work, ctx.weights[model])


def load(ctx: RunContext) -> None:
    if model := export_model(ctx):
        feats = ctx.results[0].features[model]
        folder = export_folder(feats, ctx.cfg, ctx.work)
        if not export_current(folder):
            raise ctx.missing("tfjs", model)
        ctx.browser = stored_export(feats, ctx.cfg, folder)


STAGE = Stage("tfjs", run, load, ("datasets", "extract"), ("tfjs",))
