"""`make bench-scale`: the whole pipeline at N images (default 100,000), written to bench/results-scale.json.

Not part of CI (it takes hours at N = 100,000 on two cores). Steps, each timed in this one run:

1. dataset: `datasets/build.py shapes-large` writes N seeded images (reused if the folder exists);
2. cold run: `convnet-search precompute` on it (MobileNet, its default layers, all four metrics),
   each stage's seconds and peak RSS (the process's high-water mark, reset before each stage);
3. rerun with nothing changed (a new process, as a user types it: wall seconds, goal ≤ 10 s);
4. add 100 images (`shapes-large --extend`) and run again (wall seconds, goal ≤ 2 min; which
   stages re-ran and how many images were extracted);
5. bundle bytes: total, files, manifest, by kind;
6. faiss flat vs our exact top-k on one stored feature matrix (if faiss is importable);
7. explorer and private-search figures from the browser measurement scripts, if present.

    .venv/bin/python bench/scale.py [--images 100000] [--root DIR] [--pooling avg] [--out FILE]
    .venv/bin/python bench/scale.py --images 2000 --root /tmp/scale-small --out /tmp/scale.json  # a quick check

The dataset, work folder and bundle live under --root (default: $TMPDIR/convnet-search-scale),
never in the repository. Ratios and figures come from this run only; machines are noisy.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH_DIR))

ADDED_IMAGES = 100
GOALS = {"rerun_nothing_changed_s": 10.0, "add_100_images_s": 120.0}
# pipeline functions whose time and memory make up each stage (the names pipeline.STAGES' functions call)
STAGE_FUNCTIONS = {"datasets": "load_dataset", "extract": "extract_features", "neighbors": "neighbors_stage",
                   "umap": "umap_stage", "scores": "scores_stage", "thumbnails": "thumbnails_stage",
                   "tfjs": "export_stage", "bundle": "write_bundle"}


# ---------------------------------------------------------------------------------------------
# Peak RSS per stage: Linux resets a process's high-water mark when "5" is written to clear_refs.
# ---------------------------------------------------------------------------------------------

def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _instrument(pipeline, stats: dict[str, dict]) -> None:
    """Wrap the stage functions pipeline's stages call: seconds summed, peak RSS maxed per stage."""
    for stage, name in STAGE_FUNCTIONS.items():
        fn = getattr(pipeline, name, None)
        if fn is None:
            continue

        def wrapped(*a, __fn=fn, __stage=stage, **kw):
            reset = _reset_peak_rss()
            t = time.perf_counter()
            try:
                return __fn(*a, **kw)
            finally:
                s = stats.setdefault(__stage, {"seconds": 0.0, "peak_rss_mb": 0.0, "calls": 0})
                s["seconds"] += time.perf_counter() - t
                s["calls"] += 1
                peak = _status_kb("VmHWM") / 1024 if reset else float("nan")
                s["peak_rss_mb"] = max(s["peak_rss_mb"], round(peak, 1))
        setattr(pipeline, name, wrapped)


def run_instrumented(config: Path, report_path: Path) -> int:
    """(In a child process) one precompute with per-stage seconds and peak RSS -> report_path."""
    from rich.console import Console

    from convnet_search import pipeline
    from convnet_search.config import load_config

    stats: dict[str, dict] = {}
    _instrument(pipeline, stats)
    t = time.perf_counter()
    report = pipeline.run(load_config(config), Console(stderr=True))
    wall = time.perf_counter() - t
    extract = [{"dataset": r.dataset, "model": r.model, "images": r.images, "computed": r.computed,
                "status": r.status, "seconds": round(r.seconds, 2)} for r in report.extract]
    out = {"run_seconds": round(wall, 2), "stages": {k: {**v, "seconds": round(v["seconds"], 2)}
                                                    for k, v in stats.items()},
           "pipeline_stage_seconds": {k: round(v, 2) for k, v in report.stage_seconds.items()},
           "extract": extract, "bundle": report.bundle_status, "peak_rss_mb_process": round(_status_kb("VmHWM") / 1024, 1)}
    report_path.write_text(json.dumps(out, indent=1))
    return 0


# ---------------------------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------------------------

def _python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def _timed(cmd: list[str], log: Path) -> tuple[float, int]:
    t = time.perf_counter()
    with open(log, "ab") as f:
        f.write(f"\n$ {' '.join(cmd)}\n".encode())
        f.flush()
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO).returncode
    return time.perf_counter() - t, rc


def write_config(root: Path, folder: Path, models: list[str], pooling: list[str]) -> Path:
    cfg = root / "scale.toml"
    lines = [f"datasets = [{json.dumps(str(folder))}]", f"models = {json.dumps(models)}",
             'metrics = ["cosine", "euclidean", "sqeuclidean", "minkowski"]', f"pooling = {json.dumps(pooling)}",
             "browser_search = true", f"out = {json.dumps(str(root / 'bundle'))}",
             f"work = {json.dumps(str(root / 'work'))}"]
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


def bundle_bytes(out: Path) -> dict:
    kinds: dict[str, int] = {}
    files = total = 0
    for p in out.rglob("*"):
        if not p.is_file():
            continue
        size = p.stat().st_size
        files += 1
        total += size
        rel = p.relative_to(out).parts
        kind = rel[0] if rel[0] != "datasets" or len(rel) < 3 else (rel[2] if len(rel) > 3 and rel[2] in (
            "thumbs", "sprites", "scores", "summary", "browser", "atlas") else f"{rel[-1].rsplit('.', 1)[-1]} files")
        kinds[kind] = kinds.get(kind, 0) + size
    manifest = out / "manifest.json"
    return {"total_bytes": total, "files": files, "manifest_bytes": manifest.stat().st_size if manifest.exists() else None,
            "by_kind_bytes": dict(sorted(kinds.items()))}


def faiss_rows(work: Path) -> list[dict]:
    """faiss IndexFlatIP / IndexFlatL2 vs our exact top-k on the largest stored feature matrix."""
    import numpy as np

    import bench_neighbors  # its faiss search (IndexFlatIP on normalised rows / IndexFlatL2), shared with make bench
    from convnet_search.search.neighbors import top_k_neighbors_multi
    from convnet_search.io.store import ArrayStore

    store = ArrayStore(work / "features")
    best = None
    for path in sorted((work / "features").rglob("*.h5")):
        ds, model = path.parent.name, path.stem
        stored = store.load(ds, model)
        for key in stored.arrays:
            if key.startswith("atlas/"):  # the channel atlas's ids, values and maps: not features
                continue
            x = stored.arrays[key]
            if best is None or x.shape[1] > best[1].shape[1]:
                best = (f"{ds}/{model}/{key}", np.ascontiguousarray(x, dtype=np.float32))
    if best is None:
        return [{"note": "no stored features found"}]
    name, x = best
    if bench_neighbors._faiss() is None:
        return [{"note": "faiss not importable (pip install faiss-cpu; not a project dependency): skipped"}]
    rows = []
    for metric in ("cosine", "sqeuclidean"):
        t = time.perf_counter()
        ours = top_k_neighbors_multi(x, bench_neighbors.K, [metric])[metric]
        ours_s = time.perf_counter() - t
        t = time.perf_counter()
        theirs = bench_neighbors._faiss_search(bench_neighbors._faiss(), x, metric)
        faiss_s = time.perf_counter() - t
        same = float(np.mean(np.all(ours[0] == theirs, axis=1)))  # rows whose ordered ids agree
        rows.append({"matrix": name, "n": x.shape[0], "dim": x.shape[1], "metric": metric, "ours_s": round(ours_s, 2),
                     "faiss_s": round(faiss_s, 2), "ours_vs_faiss": round(ours_s / faiss_s, 3),
                     "same_ordered_ids_rows": round(same, 5)})
    return rows


def browser_figures(out: Path, n: int, log: Path) -> dict:
    """The explorer and private-search measurement scripts (headless Chromium): the explorer on
    this run's bundle; private search on bench_live_scale.mjs's own N-image bundle (real photos'
    features + same-class mixtures, compressed under the budget as the engine does; see there)."""
    figures: dict = {}
    for name, script, args in (("explorer", "bench_explorer_scale.mjs", ["--bundle", str(out)]),
                               ("private_search", "bench_live_scale.mjs", ["--n", str(n)])):
        path = BENCH_DIR / script
        if not path.exists():
            figures[name] = {"note": f"bench/{script} not present"}
            continue
        res = REPO / "bench" / "out" / f"scale-{name}.json"
        res.parent.mkdir(exist_ok=True)
        _, rc = _timed(["node", str(path), *args, "--out", str(res)], log)
        figures[name] = json.loads(res.read_text()) if rc == 0 and res.exists() else {"error": f"exit {rc}; see {log}"}
    return figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "convnet-search-scale")
    ap.add_argument("--models", nargs="+", default=["mobilenet"])
    ap.add_argument("--pooling", nargs="+", default=["avg"],
                    help="poolings (default avg: each extra pooling multiplies neighbours and UMAP time)")
    ap.add_argument("--out", type=Path, default=BENCH_DIR / "results-scale.json")
    ap.add_argument("--skip-browser", action="store_true", help="no headless Chromium figures")
    ap.add_argument("--skip-faiss", action="store_true")
    ap.add_argument("--_instrumented", nargs=2, metavar=("CONFIG", "REPORT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._instrumented:
        return run_instrumented(Path(args._instrumented[0]), Path(args._instrumented[1]))

    from run import machine_info, write_atomic

    root = args.root.resolve()
    if REPO in root.parents or root == REPO:
        print(f"error: --root {root} is inside the repository; choose a folder outside it", file=sys.stderr)
        return 2
    root.mkdir(parents=True, exist_ok=True)
    log = root / "scale.log"
    folder = root / f"shapes-{args.images}"
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    result: dict = {"machine": machine_info(), "commit": commit, "keras_home": os.environ.get("KERAS_HOME"),
                    "images": args.images, "models": args.models, "pooling": args.pooling,
                    "metrics": ["cosine", "euclidean", "sqeuclidean", "minkowski"], "goals": GOALS, "log": str(log)}
    load = os.getloadavg()
    result["loadavg_at_start"] = [round(x, 2) for x in load]

    if not folder.exists():
        secs, rc = _timed([_python(), "datasets/build.py", "shapes-large", str(folder), "--images", str(args.images)], log)
        if rc:
            print(f"error: building the dataset failed; see {log}", file=sys.stderr)
            return 1
        result["dataset_build_s"] = round(secs, 1)
    config = write_config(root, folder, args.models, args.pooling)

    def instrumented(tag: str) -> dict:
        rep = root / f"{tag}.json"
        secs, rc = _timed([_python(), str(Path(__file__).resolve()), "--_instrumented", str(config), str(rep)], log)
        if rc:
            raise SystemExit(f"error: the {tag} run failed (exit {rc}); see {log}")
        return {"wall_s": round(secs, 2), **json.loads(rep.read_text())}

    print(f"[scale] cold run at N={args.images} (log: {log})", flush=True)
    result["cold"] = instrumented("cold")
    print("[scale] rerun, nothing changed", flush=True)
    # `python -m` from the repository (cwd): this checkout's code, not whatever the venv's entry point names
    cli = [_python(), "-m", "convnet_search.cli", "precompute", "--config", str(config)]
    secs, rc = _timed(cli, log)
    result["rerun_nothing_changed_s"] = round(secs, 2) if rc == 0 else f"failed (exit {rc})"
    print(f"[scale] add {ADDED_IMAGES} images", flush=True)
    _timed([_python(), "datasets/build.py", "shapes-large", str(folder), "--images",
            str(args.images + ADDED_IMAGES), "--extend"], log)
    added = instrumented("add100")
    result["add_100_images"] = added
    result["add_100_images_s"] = added["wall_s"]
    result["bundle"] = bundle_bytes(root / "bundle")
    if not args.skip_faiss:
        print("[scale] faiss flat vs ours", flush=True)
        result["faiss"] = faiss_rows(root / "work")
    if not args.skip_browser:
        print("[scale] explorer and private-search figures (headless Chromium)", flush=True)
        result["browser"] = browser_figures(root / "bundle", args.images, log)
    result["pass"] = {k: isinstance(result.get(k), (int, float)) and result[k] <= v for k, v in GOALS.items()}
    write_atomic(args.out, result)
    print(json.dumps({k: result[k] for k in ("rerun_nothing_changed_s", "add_100_images_s", "pass")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
