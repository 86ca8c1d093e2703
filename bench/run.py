"""convnet-search benchmarks: `make bench` → a table per section + bench/results.json.

Sections (each a module in bench/ with ``run(quick: bool) -> list[dict]``, one dict per table row):
  neighbors  bench_neighbors.py  exact top-k vs scipy cdist + argsort
  extract    bench_extract.py    one multi-output pass vs plain forward pass vs truncated models
  reader     bench_reader.py     extract loop, full decode vs DCT-scaled decode of large JPEGs, vs the forward floor
  decode     bench_decode.py     4000×3000 photos: nine models' decode work before/after the decode cache, box mean
  browser    bench/out/browser.json, written by bench/bench_browser.mjs (`make bench` runs it first)
  quality    bench_quality.py    search quality of real ImageNet vs random weights (needs ../shared/real)
  guidance   bench_guidance.py   label-free guidance (hubness, agreement) vs the label-based score: Spearman
  bigphoto   bench_bigphoto.py   browser vs engine features of 4000×3000 photos (needs ../shared/real)
  umap       bench_umap.py       UMAP with the neighbours stage's kNN graph vs its own search
  atlas      bench_atlas.py      channel atlas's extra extract time (ratio) and featviz seconds per model
  ray        bench_ray.py        --distributor ray vs local: overhead, 1 vs 2 single-CPU workers
  curate     bench_curate.py     near duplicates vs PHash, flipped labels vs cleanlab, injected outliers (needs ../shared/real)
  judgements bench_judgements.py simulated ✓/✗ by true class vs the label leaderboard (needs ../shared/real)
  backends   bench_backends.py   TF float32 vs OpenVINO float32 / bf16: speed and feature cosine (needs openvino, not a dependency)

A module may also define ``skip_reason() -> str | None`` (checked first), return
``{"rows": [...], "meta": {...}}`` instead of a list, and print itself with
``print_report(console, rows, meta)``.

`make bench` runs every section but the LONG ones (quality, guidance, bigphoto, atlas, ray, judgements, backends:
each loads real weights, builds a bundle or starts Ray, minutes apiece) to stay within 15 minutes
on two cores; `make bench-scale` runs those (`--long --merge`: into the same results file, each
section with its own machine info and date) before the 100,000-image run.

Usage: python bench/run.py [--out bench/results.json] [--quick] [--long] [--only SECTION ...] [--merge]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.metadata as md
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
for p in (str(ROOT), str(BENCH_DIR)):  # run from a checkout without installing
    if p not in sys.path:
        sys.path.insert(0, p)

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

SECTIONS = ("neighbors", "extract", "reader", "decode", "browser", "quality", "guidance", "bigphoto", "umap", "atlas",
            "ray", "curate", "judgements", "backends")
MODULES = {"neighbors": "bench_neighbors", "extract": "bench_extract", "reader": "bench_reader", "decode": "bench_decode",
           "quality": "bench_quality", "guidance": "bench_guidance", "bigphoto": "bench_bigphoto", "umap": "bench_umap",
           "atlas": "bench_atlas", "ray": "bench_ray", "curate": "bench_curate", "judgements": "bench_judgements",
           "backends": "bench_backends"}
# Long sections (minutes each): not in `make bench`, in `make bench-scale` (run.py --long).
LONG_SECTIONS = ("quality", "guidance", "bigphoto", "atlas", "ray", "judgements", "backends")
BROWSER_JSON = BENCH_DIR / "out" / "browser.json"

console = Console(width=max(120, Console().width))


def machine_info() -> dict:
    info: dict = {
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "versions": {},
    }
    try:
        info["cpu_affinity"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo", encoding="utf-8") as f:
            info["mem_total_kb"] = int(f.readline().split()[1])
    except OSError:
        pass
    for pkg in ("numpy", "scipy", "numba", "scikit-learn", "tensorflow", "keras", "umap-learn", "rich"):
        try:
            info["versions"][pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            info["versions"][pkg] = None
    try:  # which BLAS numpy really uses, and with how many threads
        from threadpoolctl import threadpool_info

        import numpy  # noqa: F401  (load its BLAS so threadpoolctl sees it)

        info["blas"] = [
            {k: v for k, v in d.items() if k in ("internal_api", "version", "num_threads", "architecture", "threading_layer")}
            for d in threadpool_info()
        ]
    except Exception as exc:  # noqa: BLE001 - informational only
        info["blas"] = f"unavailable: {exc}"
    return info


def run_module_section(name: str, quick: bool) -> tuple[list[dict], str | None, dict]:
    """(rows, skip note, meta) of one module section."""
    mod_name = MODULES[name]
    if not (BENCH_DIR / f"{mod_name}.py").exists():
        return [], f"bench/{mod_name}.py not present; section '{name}' skipped", {}
    mod = importlib.import_module(mod_name)
    reason = mod.skip_reason() if hasattr(mod, "skip_reason") else None
    if reason:
        return [], reason, {}
    out = mod.run(quick)
    if isinstance(out, dict):
        return list(out["rows"]), None, dict(out.get("meta") or {})
    return list(out), None, {}


def print_section(name: str, rows: list[dict], meta: dict) -> None:
    mod = sys.modules.get(MODULES.get(name, ""))
    if mod is not None and hasattr(mod, "print_report"):
        mod.print_report(console, rows, meta)
    else:
        print_table(name, rows)


def read_previous(path: Path) -> dict:
    """The results file to merge into (--merge); missing or unreadable: start afresh, say why."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        console.print(f"[yellow]note:[/] {path} unreadable ({exc}); not merging")
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("sections"), dict):
        console.print(f"[yellow]note:[/] {path} has no 'sections' object; not merging")
        return {}
    return data


def read_browser_section() -> tuple[list[dict], str | None, dict]:
    """Rows (and the file's other top-level keys, e.g. its machine info) of bench/out/browser.json."""
    rel = BROWSER_JSON.relative_to(ROOT)
    if not BROWSER_JSON.exists():
        return [], f"{rel} not present (run `node bench/bench_browser.mjs`); section 'browser' skipped", {}
    try:
        data = json.loads(BROWSER_JSON.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return [], f"{rel} unreadable: {exc}", {}
    rows = data.get("rows", data) if isinstance(data, dict) else data
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        return [], f"{rel}: expected a list of objects or {{\"rows\": [...]}}", {}
    meta = {k: v for k, v in data.items() if k != "rows"} if isinstance(data, dict) else {}
    meta["source_file"] = str(rel)
    meta["source_mtime_utc"] = dt.datetime.fromtimestamp(BROWSER_JSON.stat().st_mtime, dt.timezone.utc).isoformat(timespec="seconds")
    return rows, None, meta


def _fmt(v, key: str = "") -> str:
    if key.endswith("_bytes") and isinstance(v, (int, float)) and not isinstance(v, bool):
        return f"{v / 2**20:,.1f} MiB"
    if isinstance(v, bool):
        return "[green]yes[/]" if v else "[red]no[/]"
    if isinstance(v, float):
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
            return f"{v:.3g}"
        return f"{v:.3f}".rstrip("0").rstrip(".") if abs(v) < 100 else f"{v:.1f}"
    if v is None:
        return "—"
    return str(v)


# Long free-text columns are printed under the table, not in it.
_NOTE_KEYS = ("baseline_note", "note", "notes")


def print_table(name: str, rows: list[dict]) -> None:
    cols: list[str] = []
    for r in rows:
        for key in r:
            if key not in cols and key not in _NOTE_KEYS:
                cols.append(key)
    table = Table(title=f"bench: {name}", title_justify="left", show_lines=False)
    if len(cols) <= 8:
        for c in cols:
            table.add_column(c, overflow="fold")
        for r in rows:
            table.add_row(*(_fmt(r.get(c), c) for c in cols))
    else:  # many fields: one column per row (case), one line per field, so it fits a terminal
        label_key = next((c for c in ("case", "model", "name") if c in cols), None)
        table.add_column("field", style="bold", min_width=max(len(c) for c in cols), no_wrap=True)
        for i, r in enumerate(rows):
            table.add_column(str(r.get(label_key, i)) if label_key else str(i), overflow="fold")
        for c in cols:
            if c != label_key:
                table.add_row(c, *(_fmt(r.get(c), c) for r in rows))
    console.print(table)
    for r in rows:
        for key in _NOTE_KEYS:
            if r.get(key):
                label = r.get("case") or r.get("model") or r.get("name") or ""
                console.print(f"  [dim]{label}: {r[key]}[/]")


def write_atomic(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=2, ensure_ascii=False, default=str)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=BENCH_DIR / "results.json", help="results file (JSON)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks the harness, not the speed")
    ap.add_argument("--only", choices=SECTIONS, action="append", help="run only this section (repeatable)")
    ap.add_argument("--long", action="store_true", help=f"run only the long sections ({', '.join(LONG_SECTIONS)})")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other sections already in --out (replace only the ones run now)")
    args = ap.parse_args(argv)

    if args.only:
        chosen = args.only
    elif args.long:
        chosen = list(LONG_SECTIONS)
    else:
        chosen = [s for s in SECTIONS if s not in LONG_SECTIONS]
    machine = machine_info()
    results: dict = {"quick": args.quick, "machine": machine, "sections": {}}
    previous = read_previous(args.out) if args.merge else {}
    if previous:  # the file's own run info stays; each section run now carries its own
        results = {**previous, "sections": dict(previous["sections"])}
    failed = False
    for name in chosen:
        console.rule(f"[bold]{name}")
        t0 = time.perf_counter()
        try:
            meta: dict = {}
            if name == "browser":
                rows, note, meta = read_browser_section()
            else:
                rows, note, meta = run_module_section(name, args.quick)
            error = None
        except Exception as exc:  # noqa: BLE001 - one broken section must not lose the others
            rows, note, error = [], None, f"{type(exc).__name__}: {exc}"
            console.print(f"[red]section {name} failed:[/] {error}")
            traceback.print_exc()
            failed = True
        elapsed = time.perf_counter() - t0
        if note:
            console.print(f"[yellow]note:[/] {note}")
        if rows:
            print_section(name, rows, meta)
        results["sections"][name] = {
            "rows": rows,
            "skipped": note,
            "error": error,
            "wall_s": round(elapsed, 2),
        }
        if meta:
            results["sections"][name]["meta"] = meta
        if previous:
            results["sections"][name].update(quick=args.quick, machine=machine)
    write_atomic(args.out, results)
    console.print(f"wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
