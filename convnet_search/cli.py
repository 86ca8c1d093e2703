"""`convnet-search` command line: precompute a bundle, or list models, layers and datasets."""
from __future__ import annotations

import argparse
import errno
import logging
import math
import os
import sys
import time
import warnings
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__

# README "Exit codes and safety" documents these.
EXIT_OK, EXIT_USAGE, EXIT_NOTHING_USABLE, EXIT_IO, EXIT_BUSY, EXIT_INTERRUPTED = 0, 2, 3, 4, 5, 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, what a shell reports for a process killed by it
EXIT_CLUSTER = 6  # --distributor ray: the cluster cannot be reached, has no room, or lost every worker
RESUME_HINT = "run the same command again to resume (finished work is kept)"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="convnet-search",
        description="Which pretrained CNN, layer and distance metric find similar images best? "
                    "Precompute features, neighbours, UMAP maps and search scores into a static "
                    "bundle for the explorer.")
    p.add_argument("--version", action="version", version=f"convnet-search {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    pre = sub.add_parser("precompute", help="extract features and write the static data bundle",
                         description="Run datasets -> extract -> neighbours/UMAP/scores -> bundle. "
                                     "Unchanged work is skipped; an interrupted run resumes.")
    # Help texts, number parsing and (in load_config) ranges come from config.KEYS: one description.
    from .config import flag_help as h, flag_type as num

    pre.add_argument("--config", type=Path, help="TOML config (see configs/default.toml); flags override it")
    pre.add_argument("--dataset", nargs="+", dest="datasets", metavar="NAME_OR_PATH", help=h("datasets"))
    pre.add_argument("--models", nargs="+", metavar="NAME", help=h("models"))
    pre.add_argument("--layers", nargs="+", metavar="[MODEL:]LAYER", help=h("layers"))
    pre.add_argument("--num-layers", type=num("num_layers"), help=h("num_layers"))
    pre.add_argument("--metrics", nargs="+", metavar="METRIC", help=h("metrics"))
    pre.add_argument("--minkowski-p", type=num("minkowski_p"), help=h("minkowski_p"))
    pre.add_argument("--k", type=num("k"), help=h("k"))
    pre.add_argument("--pooling", nargs="+", metavar="POOLING", help=h("pooling"))
    pre.add_argument("--weights", metavar="auto|imagenet|none|PATH", help=h("weights"))
    pre.add_argument("--weights-cache", metavar="DIR", help=h("weights_cache"))
    pre.add_argument("--browser-model", metavar="MODEL", help=h("browser_model"))
    pre.add_argument("--browser-budget-mb", type=num("browser_budget_mb"), metavar="MB", help=h("browser_budget_mb"))
    pre.add_argument("--seed", type=num("seed"), help=h("seed"))
    pre.add_argument("--batch-size", type=num("batch_size"), help=h("batch_size"))
    pre.add_argument("--no-browser-search", action="store_true", help="skip the TF.js export")
    pre.add_argument("--no-featviz", action="store_true",
                     help="skip the feature visualizations (the longest stage with real weights; "
                          "same as featviz_models = [] in the config)")
    pre.add_argument("--labels", metavar="auto|folders|none|FILE", help=h("labels"))
    pre.add_argument("--follow-links", action="store_true", help=h("follow_links"))
    pre.add_argument("--judgements", metavar="FILE", help=h("judgements"))
    pre.add_argument("--distributor", metavar="local|ray", help=h("distributor"))
    pre.add_argument("--ray-address", metavar="ADDRESS", help=h("ray_address"))
    pre.add_argument("--workers", type=num("workers"), help=h("workers"))
    pre.add_argument("--cpus-per-worker", type=num("cpus_per_worker"), help=h("cpus_per_worker"))
    pre.add_argument("--gpus-per-worker", type=num("gpus_per_worker"), help=h("gpus_per_worker"))
    pre.add_argument("--out", type=Path, help=h("out"))
    pre.add_argument("--work", type=Path, help=h("work"))
    pre.add_argument("--force", action="store_true", help="discard cached stage outputs and recompute all "
                     "(with --only: that stage's only)")
    from .stages.base import STAGE_NAMES

    pre.add_argument("--only", metavar="STAGE", choices=STAGE_NAMES,
                     help="bring only this stage up to date, reading the earlier stages' stored outputs "
                          "(which must be current: the error names the stage to run first); the bundle "
                          f"is not written unless STAGE is bundle. Stages, in run order: {', '.join(STAGE_NAMES)}")
    pre.add_argument("-v", "--verbose", action="store_true")

    cur = sub.add_parser("curate", help="print one configuration's near-duplicate groups, outliers and likely "
                         "label mistakes (from a precompute's work folder; nothing is deleted, moved or renamed)")
    cur.add_argument("--work", type=Path, default=Path(".convnet-search"), help="the precompute's work folder")
    cur.add_argument("--dataset", required=True, metavar="NAME_OR_PATH", help="the dataset, as given to precompute")
    for flag in ("model", "layer", "pooling", "metric"):
        cur.add_argument(f"--{flag}", help=f"the configuration's {flag} (default: the best-scoring configuration, "
                         "or the last layer of the first model when the dataset has no labels)")
    cur.add_argument("--format", choices=("csv", "json"), default="json",
                     help="json: {configuration, duplicates: [[path, …]], outliers, label_mistakes}; csv: one row per item")

    fetch = sub.add_parser("fetch", help="download a public dataset as an image folder (needs a network)",
                           description="Write PER_CLASS seeded random images of each class of a public "
                                       "dataset as DEST/images/<class>/<image> (+ DEST/dataset.toml); "
                                       "then: precompute --dataset DEST.")
    fetch.add_argument("name", metavar="NAME", help="cifar10, fashion_mnist or tiny_imagenet")
    fetch.add_argument("dest", type=Path, metavar="DEST", help="new folder to create")
    fetch.add_argument("--per-class", type=int, default=20, help="images per class (default 20)")
    fetch.add_argument("--seed", type=int, default=0, help="which images are drawn (default 0)")

    wts = sub.add_parser("weights", help="list or download Keras' ImageNet weight files (offline use)",
                         description="The Keras cache folder: --weights-cache DIR (the folder holding "
                                     "the .h5 files), else $KERAS_HOME/models, else ~/.keras/models. "
                                     "Fetch on a machine with a network, copy the folder to the "
                                     "offline one and point KERAS_HOME or --weights-cache at it.")
    wsub = wts.add_subparsers(dest="weights_command", required=True)
    wlist = wsub.add_parser("list", help="which models' ImageNet weights are in the cache")
    wfetch = wsub.add_parser("fetch", help="download models' ImageNet weights (needs a network)")
    wfetch.add_argument("models", nargs="+", metavar="MODEL", help="model ids, or 'all' / 'default'")
    for wp in (wlist, wfetch):
        wp.add_argument("--weights-cache", type=Path, metavar="DIR",
                        help="folder holding the .h5 files (default $KERAS_HOME/models, "
                             "else ~/.keras/models)")

    _search_parser(sub)
    _export_parser(sub)

    info = sub.add_parser("info", help="list models (with their default layers) and datasets")
    info.add_argument("--layers", metavar="MODEL", help="list every selectable layer of MODEL")
    return p


def _selection_flags(p: argparse.ArgumentParser) -> None:
    """--work/--out and the configuration flags that `search` and `export` share (default: the best)."""
    p.add_argument("--work", type=Path, default=Path(".convnet-search"),
                   help="the run's work folder (default .convnet-search)")
    p.add_argument("--out", type=Path, help="the run's bundle folder (optional: checked to be a bundle, "
                                            "gives the explorer's dataset order)")
    p.add_argument("--dataset", metavar="ID", help="dataset id (default: the run's first)")
    p.add_argument("--model", metavar="MODEL", help="model id of the run")
    p.add_argument("--layer", metavar="LAYER", help="layer name (see the explorer or `info --layers`)")
    p.add_argument("--pooling", metavar="POOLING", help="pooling of the run (avg, max, ...)")
    p.add_argument("--metric", metavar="METRIC", help="metric of the run (cosine, euclidean, ...)")
    p.add_argument("--weights", metavar="PATH", help="the weights file of a run made with --weights PATH "
                                                     "(checked by its sha256)")
    p.add_argument("--weights-cache", metavar="DIR", help="folder of Keras' ImageNet .h5 files "
                                                          "(default $KERAS_HOME/models)")


def _parser_with_examples(sub, name: str, help: str, description: str,
                          examples: list[str]) -> argparse.ArgumentParser:
    """A subcommand whose --help ends with example command lines, shown as written (raw layout)."""
    return sub.add_parser(name, help=help, description=description,
                          formatter_class=argparse.RawDescriptionHelpFormatter,
                          epilog="examples:\n" + "\n".join(f"  {line}" for line in examples))


def _search_parser(sub) -> None:
    p = _parser_with_examples(
        sub, "search", help="search a finished run with image files (new ones or dataset images)",
        description="Rank a dataset's images by similarity to each IMAGE, with the run's own "
                    "preprocessing, weights and metric (exact search). Unset flags pick the run's best "
                    "configuration (highest search score) among those matching the ones given. A dataset "
                    "image is its own first result, followed by its stored neighbours.",
        examples=["convnet-search search ~/Desktop/chair.jpg --work .convnet-search --out bundle",
                  "convnet-search search q.jpg --model mobilenet_025 --metric cosine --k 5 --json > hits.json"])
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image files to search with")
    _selection_flags(p)
    p.add_argument("--k", type=int, default=15, help="results per image (default 15)")
    p.add_argument("--json", action="store_true", help="print JSON on stdout: one object per IMAGE with "
                   "its configuration and results [{rank, id, path, <label fields>, labels, distance}]")


def _export_parser(sub) -> None:
    p = _parser_with_examples(
        sub, "export", help="export one configuration's features for other tools (projector, parquet, npz)",
        description="Write the features of one configuration (default: the run's best) into a new folder "
                    "DEST: 'projector' = tensors.tsv + metadata.tsv + sprite.png + projector_config.pbtxt "
                    "(TensorBoard's Embedding Projector: tensorboard --logdir DEST); 'parquet' = "
                    "embeddings.parquet, one row per image (id, path, label fields, embedding as a "
                    "fixed-size list); 'npz' = embeddings.npz (embeddings, neighbours, map) + "
                    "embeddings.json (paths, labels, configuration). Written atomically; an existing "
                    "DEST is replaced only if it is an earlier export.",
        examples=["convnet-search export --format projector --work .convnet-search --dest proj",
                  "tensorboard --logdir proj    # then open the PROJECTOR tab",
                  "convnet-search export --format parquet --model mobilenet_025 --dest emb",
                  "python -c \"import pandas; print(pandas.read_parquet('emb/embeddings.parquet'))\""])
    p.add_argument("--format", required=True, choices=("projector", "parquet", "npz"), dest="fmt")
    p.add_argument("--dest", required=True, type=Path, metavar="PATH", help="export folder to write")
    _selection_flags(p)


def _open_selected(args):
    """(run, configuration) from the shared flags; raises api.RunError with a clear message."""
    from .api import open_run

    run = open_run(args.work, args.out, weights=args.weights, weights_cache=args.weights_cache)
    return run, run.select(args.dataset, args.model, args.layer, args.pooling, args.metric)


def _search(args, console: Console) -> int:
    import json
    from dataclasses import asdict

    from .api import RunError

    try:
        run, config = _open_selected(args)
        results = [(img, run.search(img, config, args.k)) for img in args.images]
    except RunError as exc:
        _error_line(console, str(exc))
        return EXIT_USAGE
    if args.json:
        print(json.dumps([{"image": str(img), "configuration": asdict(config),
                           "results": [h.to_json() for h in hits]} for img, hits in results], indent=1,
                         ensure_ascii=False))
        return EXIT_OK
    out = Console(width=max(Console().width, 100))
    for img, hits in results:
        t = Table(title=f"{img} — {config}")
        for col in ("rank", "id", "path", *run.dataset(config.dataset).labels, "distance"):
            t.add_column(col, justify="right" if col in ("rank", "id", "distance") else "left", overflow="fold")
        for h in hits:
            t.add_row(str(h.rank), str(h.id), escape(h.path), *map(escape, h.labels.values()), f"{h.distance:.6g}")
        out.print(t)
    return EXIT_OK


def _export(args, console: Console) -> int:
    from .api import RunError, export

    try:
        run, config = _open_selected(args)
        files = export(run, args.fmt, args.dest, config)
    except RunError as exc:
        _error_line(console, str(exc))
        return EXIT_USAGE
    console.print(f"exported {config} as {args.fmt}: " + ", ".join(str(f) for f in files),
                  highlight=False, soft_wrap=True)
    if args.fmt == "projector":
        console.print(f"view it: tensorboard --logdir {args.dest}  (PROJECTOR tab)", highlight=False)
    return EXIT_OK


def _layers_override(values: list[str] | None, models: list[str] | None) -> dict[str, list[str]] | None:
    from .config import ConfigError

    if not values:
        return None
    out: dict[str, list[str]] = {}
    for v in values:
        model, sep, layer = v.partition(":")
        if not sep:
            if not models or len(models) != 1:
                raise ConfigError("--layers: prefix each layer with MODEL: unless exactly one model is "
                                  "given with --models")
            model, layer = models[0], v
        out.setdefault(model, []).append(layer)
    return out


def _summary(console: Console, report) -> None:
    if report.extract:  # (--only another stage: none)
        _extract_summary(console, report)
    _worker_summary(console, report)
    st = Table(title="Stages")
    st.add_column("stage")
    st.add_column("time", justify="right")
    for k, v in report.stage_seconds.items():
        st.add_row(k, f"{v:.1f}s")
    console.print(st)
    skipped = [(d.id, s.file, s.reason) for d in report.datasets for s in d.skipped]
    if skipped:
        sk = Table(title=f"Skipped files ({len(skipped)})")
        for col in ("dataset", "file", "reason"):
            sk.add_column(col, overflow="fold")
        for row in skipped:
            sk.add_row(*row)
        console.print(sk)
    else:
        console.print("Skipped files: none")
    if report.weights not in ("imagenet", ""):  # "": --only a stage before the features
        console.print(f"[bold yellow]weights: {report.weights}[/] — the bundle says so and the explorer "
                      "shows a banner.")
    console.print(f"bundle {report.bundle_status}: {report.out}", highlight=False, soft_wrap=True)
    if report.out is not None and (Path(report.out) / "manifest.json").is_file():
        console.print(f"view it: make serve BUNDLE={Path(report.out).resolve()} (in the convnet-search "
                      "checkout; README: Viewing a bundle)", highlight=False, soft_wrap=True)


def _extract_summary(console: Console, report) -> None:
    t = Table(title="Extraction", show_lines=False)
    for col in ("dataset", "model", "images", "images/s", "time", "status"):
        t.add_column(col, justify="right" if col in ("images", "images/s", "time") else "left")
    for r in report.extract:
        ips = "—" if math.isnan(r.images_per_s) else f"{r.images_per_s:.1f}"
        t.add_row(r.dataset, r.model, str(r.images), ips, f"{r.seconds:.1f}s", r.status)
    console.print(t)


def _worker_summary(console: Console, report) -> None:
    """Per Ray worker (and node): shards, images and images/s over the whole run."""
    if report.distributor != "ray":
        return
    rows: dict[tuple[str, str], list[float]] = {}
    for r in report.extract:
        for w in r.workers:
            acc = rows.setdefault((w.worker, w.node), [0, 0, 0.0, 0])
            acc[0] += w.shards
            acc[1] += w.images
            acc[2] += w.seconds
            acc[3] += w.lost
    t = Table(title="Ray workers")
    for col in ("worker", "node", "shards", "images", "images/s", "busy", "lost shards"):
        t.add_column(col, justify="left" if col in ("worker", "node") else "right")
    for (name, node), (shards, images, seconds, lost) in sorted(rows.items()):
        ips = f"{images / seconds:.1f}" if seconds > 0 else "—"
        t.add_row(name, node, str(shards), str(images), ips, f"{seconds:.1f}s", str(lost))
    console.print(t if rows else "Ray workers: no shard to extract (all up to date)")


def _precompute(args, console: Console) -> int:
    from .config import ConfigError, load_config
    from .io.datasets import AmbiguousDatasetError, DatasetError
    from .nets.models import ModelError, WeightsError
    from .stages.bundle import BundleError
    from .io.judgements import JudgementsFileError
    from .distribute.base import ClusterError, RayMissingError
    from .pipeline import run
    from .stages.base import StageInputMissing
    from .io.workspace import BusyError, StorageError, WorkspaceError

    try:  # flags go through the same validation as the TOML file (config.KEYS)
        overrides = {
            "datasets": args.datasets, "models": args.models,
            "layers": _layers_override(args.layers, args.models), "num_layers": args.num_layers,
            "metrics": args.metrics, "minkowski_p": args.minkowski_p, "k": args.k, "pooling": args.pooling,
            "weights": args.weights, "seed": args.seed, "batch_size": args.batch_size,
            "browser_search": False if args.no_browser_search else None,
            "featviz_models": [] if args.no_featviz else None,
            "follow_links": True if args.follow_links else None, "labels": args.labels,
            "judgements": args.judgements,
            "out": str(args.out) if args.out else None, "work": str(args.work) if args.work else None,
            "weights_cache": args.weights_cache, "browser_model": args.browser_model,
            "distributor": args.distributor, "ray_address": args.ray_address, "workers": args.workers,
            "cpus_per_worker": args.cpus_per_worker, "gpus_per_worker": args.gpus_per_worker,
            "browser_budget_mb": args.browser_budget_mb,
        }
        cfg = load_config(args.config, overrides)
        if cfg.judgements is not None:  # a bad file fails now, not after the extraction
            from .io.judgements import read_judgements

            read_judgements(cfg.judgements)
    except ConfigError as exc:
        # one problem per line, unwrapped; values may hold [brackets] that are not rich markup
        console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        return EXIT_USAGE
    except JudgementsFileError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        return EXIT_USAGE
    t0 = time.perf_counter()
    try:
        report = run(cfg, console=console, force=args.force, only=args.only)
    except AmbiguousDatasetError as exc:  # a question to the user, not a data problem
        _error_line(console, str(exc))
        return EXIT_USAGE
    except DatasetError as exc:
        console.print(f"[red]error:[/] {exc}")
        return EXIT_NOTHING_USABLE
    except RayMissingError as exc:
        _error_line(console, str(exc))
        return EXIT_USAGE
    except ClusterError as exc:  # before anything is written when the cluster cannot be reached
        _error_line(console, str(exc))
        return EXIT_CLUSTER
    except WorkspaceError as exc:  # --out/--work refused before any compute: one line, no wrapping
        _error_line(console, str(exc))
        if isinstance(exc, BusyError):
            return EXIT_BUSY
        return EXIT_IO if isinstance(exc, StorageError) else EXIT_USAGE
    except StageInputMissing as exc:  # --only STAGE before the stages it reads from
        _error_line(console, str(exc))
        return EXIT_USAGE
    except (ModelError, WeightsError, BundleError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}")
        return EXIT_USAGE
    _summary(console, report)
    console.print(f"done in {time.perf_counter() - t0:.1f}s")
    return EXIT_OK


def _error_line(console: Console, message: str, prefix: str = "[red]error:[/] ") -> None:
    """One line however long (a wrapped message is hard to grep); paths are not markup."""
    console.print(prefix + escape(message), soft_wrap=True, highlight=False)


def _guarded(command, args, console: Console) -> int:
    """Run a command; Ctrl-C and file-system errors (disk full, permission, I/O) end with one line.

    Every stage writes atomically, so what finished is kept and the same command resumes. With
    --verbose the traceback is shown as well.
    """
    from .interrupts import Terminated

    try:
        return command(args, console)
    except Terminated:  # docker stop, systemd, SLURM: the same as Ctrl-C, with the shell's exit code
        _error_line(console, f"terminated (SIGTERM); {RESUME_HINT}", prefix="[yellow]stopped:[/] ")
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        _error_line(console, f"interrupted (Ctrl-C); {RESUME_HINT}", prefix="[yellow]stopped:[/] ")
        return EXIT_INTERRUPTED
    except OSError as exc:
        if getattr(args, "verbose", False):
            console.print_exception()
        where = f" ({exc.filename})" if exc.filename else ""
        if exc.errno == errno.ENOSPC or "No space left" in str(exc):  # h5py keeps only the text
            what = f"no space left on the device{where}; free some space"
        else:
            what = f"{exc.strerror or exc}{where}; fix that"
        _error_line(console, f"{what}, then {RESUME_HINT}")
        return EXIT_IO


def _curate(args, console: Console) -> int:
    """Print the curated lists of one configuration to stdout (JSON or CSV)."""
    import csv
    import json

    from .io.datasets import DatasetError, load_dataset
    from .stages import curate

    try:
        report = curate.curate_report(args.work, load_dataset(args.dataset),
                                      {f: getattr(args, f) for f in ("model", "layer", "pooling", "metric")})
    except (DatasetError, curate.CurateError) as exc:
        _error_line(console, str(exc))
        return EXIT_USAGE
    if args.format == "json":
        sys.stdout.write(json.dumps(report, ensure_ascii=False, indent=1) + "\n")
    else:
        w = csv.writer(sys.stdout)
        w.writerow(curate.CSV_COLUMNS)
        w.writerows(curate.report_rows(report))
    return 0


def _fetch(args, console: Console) -> int:
    from .io.datasets import PUBLIC_DATASETS, DatasetError, fetch_public_dataset

    # Usage mistakes (exit 2), told apart from a failed download (exit 3) before any network use.
    if args.name not in PUBLIC_DATASETS:
        _error_line(console, f"unknown public dataset {args.name!r}; known: {', '.join(PUBLIC_DATASETS)}")
        return EXIT_USAGE
    if args.per_class < 1:
        _error_line(console, f"--per-class must be ≥ 1, got {args.per_class}")
        return EXIT_USAGE

    try:
        dest = fetch_public_dataset(args.name, args.dest, per_class=args.per_class, seed=args.seed)
    except DatasetError as exc:
        console.print(f"[red]error:[/] {exc}")
        return EXIT_NOTHING_USABLE
    console.print(f"wrote {dest}; use it with: convnet-search precompute --dataset {dest}")
    return EXIT_OK


def _shipped_or_none(spec, shipped_weights) -> Path | None:
    """The package's verified copy of the model's weights; a damaged one shows as missing."""
    try:
        return shipped_weights(spec)
    except Exception:  # WeightsError: resolution will name the file and the problem
        return None


def _weights(args, console: Console) -> int:
    from .nets.models import REGISTRY, ModelError, default_model_ids, get_spec
    from .nets.weights import (CacheFolderError, FetchError, fetch_weights, keras_hash_problem, shipped_weights,
                               weights_cache)

    cache = weights_cache(args.weights_cache)
    console.print(f"weights cache: {cache.folder} ({cache.why})", highlight=False, soft_wrap=True)
    if args.weights_command == "list":
        t = Table(title="Keras ImageNet weights (include_top=False) per model")
        for col in ("model", "default run", "ImageNet weights", "size", "file"):
            t.add_column(col, justify="right" if col == "size" else "left", no_wrap=True)
        for spec in REGISTRY.values():
            path = cache.folder / spec.weights_file
            if path.is_file():
                problem = keras_hash_problem(spec, path)
                status = "present" if problem is None else "[red]present, hash differs[/]"
                size = f"{path.stat().st_size / 1e6:.1f} MB"
            elif (shipped := _shipped_or_none(spec, shipped_weights)) is not None:
                # not in the cache, but the package's own verified copy is what a run will load
                status, size = "shipped with convnet-search", f"{shipped.stat().st_size / 1e6:.1f} MB"
            else:
                status, size = "[yellow]missing[/]", "—"
            t.add_row(spec.id, "✓" if spec.default else "opt-in", status, size, spec.weights_file)
        # Piped output (no terminal) would be cut at 80 columns; file names must stay whole.
        (console if console.is_terminal else Console(stderr=True, width=132)).print(t)
        console.print("missing ones: `convnet-search weights fetch MODEL...` where there is a network, "
                      "then copy the folder (README: Weights on an offline machine)")
        return EXIT_OK
    names: list[str] = []
    for name in args.models:
        names += ({"all": list(REGISTRY), "default": default_model_ids()}.get(name.lower()) or [name])
    try:
        specs = list({s.id: s for s in map(get_spec, names)}.values())
    except ModelError as exc:
        console.print(f"[red]error:[/] {exc}")
        return EXIT_USAGE
    for spec in specs:
        try:
            path = fetch_weights(spec, args.weights_cache)
        except FetchError as exc:
            console.print(f"[red]error:[/] {spec.id}: {exc}", highlight=False, soft_wrap=True)
            return EXIT_IO if isinstance(exc, CacheFolderError) else EXIT_NOTHING_USABLE
        console.print(f"{spec.id}: {path} ({path.stat().st_size / 1e6:.1f} MB)", highlight=False,
                      soft_wrap=True)
    return EXIT_OK


def _info(args, console: Console) -> int:
    from .io.datasets import known_datasets
    from .nets.models import REGISTRY, ModelError, get_spec

    if args.layers:
        from .nets.models import build_base, describe_layers, select_default_layers
        try:
            spec = get_spec(args.layers)
        except ModelError as exc:
            console.print(f"[red]error:[/] {exc}")
            return EXIT_USAGE
        base, _ = build_base(spec, "none")
        default = set(select_default_layers(base))
        t = Table(title=f"{spec.name}: layers with a feature map (* = default)")
        for col in ("", "index", "name", "type", "output (H×W×C)", "params (cumulative)"):
            t.add_column(col)
        for i in describe_layers(base):
            t.add_row("*" if i.name in default else "", str(i.index), i.name, i.type,
                      "×".join(map(str, i.output_shape)), f"{i.params_cumulative:,}")
        console.print(t)
        return EXIT_OK
    t = Table(title="Models (default run = ✓; use `info --layers MODEL` for its layers)")
    for col in ("id", "name", "input", "default run"):
        t.add_column(col)
    for spec in REGISTRY.values():
        t.add_row(spec.id, spec.name, "×".join(map(str, spec.input_size)), "✓" if spec.default else "opt-in")
    console.print(t)
    d = Table(title="Bundled datasets (or pass a folder ROOT/<class>/<image>)")
    d.add_column("name")
    for name in known_datasets():
        d.add_row(name)
    console.print(d)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # usage error, --help or --version: argparse has printed why
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if getattr(args, "verbose", False):
        os.environ["CONVNET_SEARCH_VERBOSE"] = "1"
    console = Console(stderr=True)

    def show_warning(message, category, filename, lineno, file=None, line=None):
        console.print(f"[bold yellow]warning:[/] {message}", highlight=False)

    warnings.showwarning = show_warning
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command == "precompute":
        from .interrupts import sigterm_handled

        with sigterm_handled():  # docker stop / systemd / SLURM: like Ctrl-C, exit 143
            return _guarded(_precompute, args, console)
    if args.command == "fetch":
        return _fetch(args, console)
    if args.command == "search":
        return _guarded(_search, args, console)
    if args.command == "export":
        return _guarded(_export, args, console)
    if args.command == "curate":
        return _curate(args, console)
    if args.command == "weights":
        return _weights(args, console)
    return _info(args, console)


if __name__ == "__main__":
    sys.exit(main())
