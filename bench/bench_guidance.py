"""Label-free guidance vs the label-based score: how well do hubness and agreement track quality?

For each real labelled set (../shared/real/tinyimagenet20: 1,000 photos, 20 classes; and
../shared/demo/caltech10: 400 photos, 10 classes) the engine's own CLI runs `precompute` with
MobileNet α 0.25 and its real ImageNet weights (KERAS_HOME=../shared/real/weights/keras_home),
8 layers × 4 poolings × 2 metrics (cosine, euclidean) = 64 configurations, into a work folder
under bench/out/guidance/ (kept: a second run reuses the features). From the bundle it writes
it reads, per configuration, the label-based mean search score (summary/class/<metric>.json) and
the guidance (guidance/<metric>.json: hubness, agreement), and reports over all 64:

* Spearman ρ(agreement, search score) and ρ(−hubness, search score) (both signs chosen so that
  +1 means "the guidance ranks configurations exactly as the labels do");
* whether the configuration the guidance ranks first is in the label top 3 (and its label rank).

Nothing is tuned: whatever the numbers are is what the explorer's guidance is worth on these sets.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench_quality import real_dir, real_weights_env  # one rule for ../shared/real and its Keras cache

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
OUT = BENCH_DIR / "out" / "guidance"
CONFIG = ('models = ["mobilenet_025"]\nnum_layers = 8\nmetrics = ["cosine", "euclidean"]\nk = 15\n'
          'pooling = ["avg", "max", "gem", "grid2"]\nweights = "imagenet"\nseed = 0\nbatch_size = 32\n'
          'browser_search = false\natlas = false\nfeatviz_models = []\n')


def datasets() -> dict[str, Path]:
    return {"tinyimagenet20": real_dir() / "tinyimagenet20", "caltech10": real_dir().parent / "demo" / "caltech10"}


def skip_reason() -> str | None:
    missing = [p for p in [*datasets().values(), real_dir() / "weights" / "keras_home"] if not p.is_dir()]
    return f"{missing[0]} not found; section 'guidance' skipped" if missing else None


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's ρ with average ranks for ties (scipy.stats.spearmanr's definition)."""
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def precompute(name: str, folder: Path) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    cfg = OUT / "bench.toml"
    cfg.write_text(CONFIG)
    out = OUT / f"bundle-{name}"
    env = real_weights_env()
    cmd = [sys.executable, "-m", "convnet_search.cli", "precompute", "--config", str(cfg), "--dataset", str(folder),
           "--labels", "folders", "--out", str(out), "--work", str(OUT / f"work-{name}")]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"precompute {name} exited {proc.returncode}: {proc.stderr[-2000:]}{proc.stdout[-2000:]}")
    return out


def measure(bundle: Path) -> dict:
    """Per configuration (metric × pooling × layer): score, agreement, hubness; then ρ and top-1."""
    m = json.loads((bundle / "manifest.json").read_text())
    d = m["datasets"][0]
    rows = []
    for metric in (x["id"] for x in m["metrics"]):
        s = json.loads((bundle / f"datasets/{d['id']}/summary/class/{metric}.json").read_text())
        g = json.loads((bundle / f"datasets/{d['id']}/guidance/{metric}.json").read_text())
        for pi, pooling in enumerate(s["poolings"]):
            for mi, model in enumerate(m["models"]):
                for li, layer in enumerate(model["layers"]):
                    rows.append({"metric": metric, "pooling": pooling, "layer": layer["name"],
                                 "score": s["search_score"][pi][mi][li], "agreement": g["agreement"][pi][mi][li],
                                 "hubness": g["hubness"][pi][mi][li]})
    score = np.array([r["score"] for r in rows])
    agree = np.array([r["agreement"] for r in rows])
    hub = np.array([r["hubness"] for r in rows])
    label_rank = np.argsort(np.argsort(-score, kind="stable"), kind="stable")  # 0 = best by labels

    def top1(signal: np.ndarray) -> dict:
        best = int(np.argmax(signal))
        return {"config": f"{rows[best]['metric']}/{rows[best]['pooling']}/{rows[best]['layer']}",
                "label_rank": int(label_rank[best]) + 1, "in_label_top3": bool(label_rank[best] < 3)}

    return {"dataset": d["id"], "images": d["size"], "configurations": len(rows),
            "spearman_agreement": round(spearman(agree, score), 3),
            "spearman_neg_hubness": round(spearman(-hub, score), 3),
            "best_by_agreement": top1(agree), "best_by_low_hubness": top1(-hub),
            "label_best": rows[int(np.argmax(score))] | {},
            "score_range": [round(float(score.min()), 4), round(float(score.max()), 4)], "rows": rows}


def run(quick: bool = False) -> dict:
    results = []
    for name, folder in datasets().items():
        results.append(measure(precompute(name, folder)))
    return {"rows": [{k: v for k, v in r.items() if k != "rows"} for r in results],
            "meta": {"model": "mobilenet_025", "weights": "imagenet", "per_config": {r["dataset"]: r["rows"] for r in results}}}


def print_report(console, rows: list[dict], meta: dict) -> None:
    from rich.table import Table

    t = Table(title="guidance: label-free signals vs label-based search score (Spearman over configurations)")
    for col in ("dataset", "configs", "ρ(agreement, score)", "ρ(−hubness, score)", "best by agreement: label rank",
                "best by low hubness: label rank", "score range"):
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(r["dataset"], str(r["configurations"]), f"{r['spearman_agreement']:+.3f}",
                  f"{r['spearman_neg_hubness']:+.3f}", f"{r['best_by_agreement']['label_rank']} ({r['best_by_agreement']['config']})",
                  f"{r['best_by_low_hubness']['label_rank']} ({r['best_by_low_hubness']['config']})",
                  f"{r['score_range'][0]:.3f} – {r['score_range'][1]:.3f}")
    console.print(t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, help="write the JSON here too")
    args = ap.parse_args()
    reason = skip_reason()
    if reason:
        print(reason)
        return
    from rich.console import Console

    out = run()
    print_report(Console(width=160), out["rows"], out["meta"])
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
