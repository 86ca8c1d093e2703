"""Export a Keras feature extractor to a TF.js graph model for the in-browser search.

The exported model takes a float32 ``[B, H, W, 3]`` RGB tensor with values 0…255 (the network's
own ``preprocess_input`` is inside the Keras graph) and returns one pooled vector per layer, and
optionally each layer's raw ``[B, h, w, C]`` map ("spatial outputs": the browser computes "why
similar?" maps from them). Extra outputs of tensors the graph computes anyway add no weights.

Why a *graph* model through a SavedModel: a TF.js *layers* model saved from Keras 3 writes files
that TF.js then refuses to load (see TOOLCHAIN.md). Why a dict-valued serving signature: the
converter renames outputs to ``Identity_N:0`` in an order we do not control; keying the signature
by layer name lets us read the mapping back from ``model.json`` instead of guessing it.

TensorFlow and tensorflowjs are imported inside the functions: ``import tensorflowjs`` costs
~5 s and the CLI imports this module at start-up.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..runtime import quiet_unless_verbose

if TYPE_CHECKING:  # pragma: no cover
    import keras

# Weight storage of the exported model, per tensor (the converter has no per-channel mode).
# float16 is the default, chosen by measured parity on real ImageNet weights (docs/live-search.md):
# MobileNet v1 folds batch norm into its pointwise kernels, whose per-output-channel scales then
# span orders of magnitude; one uint8 scale per tensor wipes the small channels out (TF.js vs
# Keras cosine 0.16 at conv_pw_13_relu, self-search at chance), also when only the pointwise
# kernels are uint8 (≥ 0.71 .. 0.86) or only the depthwise ones are float16 (0.18). float16 keeps
# every image ≥ 0.9997 at 54 % of float32's bytes; uint16 passes too but is ~1 % larger.
QUANTIZATIONS = ("float16", "uint16", "uint8", "none")
DEFAULT_QUANTIZATION = "float16"
MODEL_JSON = "model.json"


@dataclass(frozen=True)
class TfjsExport:
    """What the bundle's ``browser_search`` entry needs to know about an exported model."""

    model_url: str  # file name of model.json inside out_dir (the caller prefixes its bundle path)
    model_bytes: int  # model.json + weight shards
    quantization: str  # one of QUANTIZATIONS
    outputs: list[dict[str, Any]]  # [{"layer", "dim", "output"}] in the order of layer_names
    spatial_outputs: list[dict[str, Any]]  # [{"layer", "output", "shape": [h, w, c]}], spatial_names order
    model_sha256: str  # over model.json and the shards, in order: a cache key for the browser
    files: list[str]  # model.json first, then the shards, relative to out_dir


class TfjsExportError(RuntimeError):
    """The conversion produced something the browser could not use."""


def _quantization_map(quantize: str) -> dict[str, str] | None:
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantize!r}; known: {', '.join(QUANTIZATIONS)}")
    return None if quantize == "none" else {quantize: "*"}


def _write_saved_model(model: "keras.Model", layer_names: list[str], path: Path,
                       spatial_names: list[str] = ()) -> None:
    """SavedModel whose serving signature returns ``{layer_name: pooled [B, dim]}`` and
    ``{spatial_name: [B, h, w, C]}`` (the model's outputs: pooled ones first, then spatial ones)."""
    import keras
    import tensorflow as tf

    outputs = model.outputs
    names = [*layer_names, *spatial_names]
    if len(outputs) != len(names):
        raise ValueError(
            f"model has {len(outputs)} outputs but {len(names)} layer names were given "
            f"({', '.join(names)}); they must correspond one to one"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate layer names: {names}")
    for i, (name, out) in enumerate(zip(names, outputs)):
        rank = 2 if i < len(layer_names) else 4
        if len(out.shape) != rank:
            raise ValueError(
                f"output for layer {name!r} has shape {tuple(out.shape)}; the browser search "
                + ("needs pooled [batch, dim] vectors" if rank == 2 else "needs spatial [batch, h, w, C] maps")
            )
    in_shape = tuple(model.inputs[0].shape)
    if len(in_shape) != 4 or in_shape[-1] != 3 or in_shape[1] is None or in_shape[2] is None:
        raise ValueError(f"model input must be [batch, H, W, 3] with fixed H, W; got {in_shape}")

    def serve(x: Any) -> dict[str, Any]:
        ys = model(x, training=False)
        if not isinstance(ys, (list, tuple)):
            ys = [ys]
        return {name: y for name, y in zip(names, ys)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="serving_default",
        fn=serve,
        input_signature=[tf.TensorSpec([None, in_shape[1], in_shape[2], 3], tf.float32, name="image")],
    )
    archive.write_out(str(path), verbose=False)


def _signature_tensor_names(saved_model: Path, layer_names: list[str]) -> dict[str, str]:
    """Layer -> graph tensor name of its output, as the converter will name it.

    The converter's own ``signature.outputs`` in model.json cannot be trusted: it matches
    outputs to signature keys *by shape* and, when two layers share a shape (512-d, 1024-d),
    leaves them keyed by raw tensor names. What it does reliably is keep the frozen graph's output
    nodes named after ``concrete_func.outputs``, whose order is the flattened (key-sorted)
    structured outputs. We rebuild the mapping from that same order here.
    """
    import tensorflow as tf

    fn = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    structure = fn.structured_outputs
    if not isinstance(structure, dict) or sorted(structure) != sorted(layer_names):
        raise TfjsExportError(f"{saved_model}: serving signature outputs {structure!r} != {layer_names}")
    flat_keys = tf.nest.flatten({k: k for k in structure})  # the order tf.nest packs outputs in
    tensors = [t.name for t in fn.outputs]
    if len(tensors) != len(flat_keys):
        raise TfjsExportError(f"{saved_model}: {len(tensors)} output tensors for {len(flat_keys)} keys")
    return dict(zip(flat_keys, tensors))


def _fix_signature(
    model_json: dict[str, Any], names: dict[str, str], layer_names: list[str], where: Path,
    spatial_names: list[str] = (),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rewrite model.json's ``signature.outputs`` as ``{layer: tensor}`` and describe the outputs:
    (pooled ``[{"layer", "dim", "output"}]``, spatial ``[{"layer", "output", "shape": [h, w, c]}]``).

    Any tool reading model.json then sees correct keys; the browser still asks for tensors by
    their graph name (``output``), which does not depend on the signature at all.
    """
    try:
        sig_outputs = model_json["signature"]["outputs"]
    except (KeyError, TypeError):
        raise TfjsExportError(f"{where}: converted model.json has no signature outputs") from None
    by_tensor = {entry["name"]: entry for entry in sig_outputs.values()}
    graph_nodes = {node["name"] for node in model_json["modelTopology"]["node"]}
    fixed: dict[str, Any] = {}
    result, spatial = [], []
    for layer in [*layer_names, *spatial_names]:
        tensor = names[layer]
        entry = by_tensor.get(tensor)
        if entry is None or tensor.split(":")[0] not in graph_nodes:
            raise TfjsExportError(f"{where}: converted graph has no output tensor {tensor} for layer {layer!r}")
        sizes = [int(d.get("size", -1)) for d in entry.get("tensorShape", {}).get("dim", [])]
        fixed[layer] = entry
        if layer in spatial_names:
            if len(sizes) != 4 or min(sizes[1:]) <= 0:
                raise TfjsExportError(f"{where}: output {layer!r} has shape {sizes}, expected [batch, h, w, C]")
            spatial.append({"layer": layer, "output": tensor, "shape": sizes[1:]})
        else:
            if len(sizes) != 2 or sizes[1] <= 0:
                raise TfjsExportError(f"{where}: output {layer!r} has shape {sizes}, expected [batch, dim]")
            result.append({"layer": layer, "dim": sizes[1], "output": tensor})
    model_json["signature"]["outputs"] = fixed
    return result, spatial


def _model_files(model_json: dict[str, Any]) -> list[str]:
    files = [MODEL_JSON]
    for group in model_json.get("weightsManifest", []):
        files.extend(group["paths"])
    return files


def _sha256(root: Path, files: list[str]) -> str:
    h = hashlib.sha256()
    for name in files:
        h.update(name.encode())
        h.update(b"\0")
        h.update((root / name).read_bytes())
    return h.hexdigest()


def export_tfjs(
    model: "keras.Model", layer_names: list[str], out_dir: Path, *, quantize: str = DEFAULT_QUANTIZATION,
    spatial_names: list[str] = (),
) -> TfjsExport:
    """Convert ``model`` (outputs = pooled features of ``layer_names``, in order, then the raw maps
    named ``spatial_names``) into ``out_dir``.

    ``out_dir`` is replaced atomically: the model is converted into a sibling temp folder that is
    renamed into place only when it is complete and its signature checks out.
    """
    qmap = _quantization_map(quantize)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    layer_names, spatial_names = list(layer_names), list(spatial_names)

    # tensorflowjs imports TF-DF, whose welcome banner probes for IPython when stdout is not a
    # terminal (under pytest it raises ModuleNotFoundError); the variable turns the probe off.
    os.environ.setdefault("TFDF_DISABLE_WELCOME_MESSAGE", "1")
    from tensorflowjs.converters import convert_tf_saved_model

    with tempfile.TemporaryDirectory(prefix=".tfjs-", dir=out_dir.parent) as tmp:
        saved = Path(tmp) / "saved_model"
        staged = Path(tmp) / "tfjs"
        _write_saved_model(model, layer_names, saved, spatial_names)
        try:
            # Grappler logs its session start-up natively ("Number of eligible GPUs …"); the
            # converter's own errors still arrive as the exception below.
            with quiet_unless_verbose():
                convert_tf_saved_model(
                    str(saved),
                    str(staged),
                    signature_def="serving_default",
                    saved_model_tags="serve",
                    quantization_dtype_map=qmap,
                    # One shard for a ≤ 6.5 MB model: one request, one IndexedDB record.
                    weight_shard_size_bytes=16 * 1024 * 1024,
                )
        except Exception as e:  # the converter raises bare Exceptions/ValueErrors
            raise TfjsExportError(f"tensorflowjs conversion of {saved} failed: {e}") from e

        model_json_path = staged / MODEL_JSON
        if not model_json_path.is_file():
            raise TfjsExportError(f"converter wrote no {MODEL_JSON} into {staged}")
        model_json = json.loads(model_json_path.read_text())
        names = _signature_tensor_names(saved, [*layer_names, *spatial_names])
        outputs, spatial = _fix_signature(model_json, names, layer_names, model_json_path, spatial_names)
        for out, keras_out in zip(outputs, model.outputs):
            if out["dim"] != int(keras_out.shape[-1]):
                raise TfjsExportError(
                    f"{model_json_path}: layer {out['layer']!r} maps to {out['output']} of dim "
                    f"{out['dim']}, but the Keras output has dim {keras_out.shape[-1]}"
                )
        for out, keras_out in zip(spatial, model.outputs[len(layer_names):]):
            if out["shape"] != [int(d) for d in keras_out.shape[1:]]:
                raise TfjsExportError(
                    f"{model_json_path}: spatial output {out['layer']!r} maps to {out['output']} of "
                    f"shape {out['shape']}, but the Keras output has shape {tuple(keras_out.shape[1:])}"
                )
        # Canonical JSON: the converter's key order varies between runs, bundles must not.
        model_json_path.write_text(json.dumps(model_json, separators=(",", ":"), sort_keys=True))
        files = _model_files(model_json)
        missing = [f for f in files if not (staged / f).is_file()]
        if missing:
            raise TfjsExportError(f"{model_json_path}: weight shards missing: {missing}")
        digest = _sha256(staged, files)
        size = sum((staged / f).stat().st_size for f in files)

        # Swap in: move the old folder aside first so a crash never leaves a half-written model.
        old = Path(tmp) / "old"
        if out_dir.exists():
            os.replace(out_dir, old)
        os.replace(staged, out_dir)
        if old.exists():
            shutil.rmtree(old)

    return TfjsExport(
        model_url=MODEL_JSON,
        model_bytes=size,
        quantization=quantize,
        outputs=outputs,
        spatial_outputs=spatial,
        model_sha256=digest,
        files=files,
    )
