"""Acceptance benchmark of issue 20 item 5: does a user's own ✓/✗ judgements rank configurations
like the full label leaderboard does?

For ../shared/real/tinyimagenet20 (1000 photos, 20 classes) and the bundled real-photo set
../shared/demo/caltech10 (400 photos, 10 classes): MobileNet α 0.25 with its real ImageNet weights
(KERAS_HOME=../shared/real/weights/keras_home), every default layer × pooling × metric the engine
accepts (flatten is refused at early layers, as in the quality section). Features come from the
engine's extractors (bench_quality.extract_all), neighbours from `neighbors.top_k_neighbors`
(run defaults: k, metrics, minkowski p), the label leaderboard from `evaluate.summarize`'s search
score (what the scores stage stores).

A simulated user (seeded) judges by true class: queries are drawn without replacement with
`numpy.random.default_rng(SEED)`; on each query they judge exactly JUDGED_PER_QUERY results:
  1. the first result of the current leader (the Search view shows the leader's list; at the start,
     before any ✓, every configuration ties and the leader is the first configuration),
  2. then, round after round, what the panel suggests for that query (`judgements.suggest`: the
     unjudged results with the most rank-biased votes Σ 1/(rank+1) over every configuration, a
     pool that does not depend on who leads; up to 8 a round), re-ranking after each round,
  3. when every result of every list is judged, the next unjudged results of the configurations
     in ranking order (what the user sees scrolling the leaderboard's lists).
Until stop 17 the panel suggested results on which the three leading configurations disagree; on
tinyimagenet20 with 20 judged queries that gave Spearman 0.924 but a best configuration ranked #17
by the labels (the leaders' own results got judged, so the pool confirmed them). Pooling over all
configurations gave 0.941 / #1 there and 0.964 / #1 on caltech10, and replaced it.
After 5, 10, 20, 40 judged queries the judgement leaderboard (`judgements.rank_configurations`) is
compared with the label leaderboard: Spearman correlation over all configurations, and whether the
judgement leaderboard's best is in the label leaderboard's top 3.

Runs in a child process (`--worker`), as the quality section, because Keras reads KERAS_HOME once.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
for _p in (str(ROOT), str(BENCH_DIR)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from bench_quality import extract_all, real_dir, real_weights_env  # noqa: E402
from worker_process import run_worker, section_main, worker_args  # noqa: E402

MODEL = "mobilenet_025"
SEED = 20
JUDGED_PER_QUERY = 15
STEPS = (5, 10, 20, 40)
QUICK_STEPS = (5, 10)
QUICK_PER_CLASS = 10  # --quick: the first 10 images of each class (harness check, not the figures)
ACCEPT_QUERIES, ACCEPT_SPEARMAN = 20, 0.8


def datasets() -> list[tuple[str, Path]]:
    return [("tinyimagenet20", real_dir() / "tinyimagenet20"),
            ("caltech10", real_dir().parent / "demo" / "caltech10")]


def skip_reason() -> str | None:
    real = real_dir()
    missing = [p for p in (real / "tinyimagenet20", real / "weights" / "keras_home" / "models",
                           datasets()[1][1]) if not p.is_dir()]
    if missing:
        return f"{missing[0]} not found (real photos and ImageNet weights); section 'judgements' skipped"
    return None


def run(quick: bool) -> dict:
    return run_worker(__file__, "judgements", real_weights_env(), quick, skip=skip_reason())


def print_report(console, rows: list[dict], meta: dict) -> None:
    from rich.table import Table

    t = Table(title=f"judgements: simulated ✓/✗ by true class vs the label leaderboard — {meta['model']}, "
                    f"{JUDGED_PER_QUERY} judged results per query", title_justify="left")
    for c in ("dataset", "strategy", "configs", "judged queries", "scored", "judgements", "Spearman", "best (judgements)",
              "its label rank", "top-3 hit"):
        t.add_column(c, justify="right" if c not in ("dataset", "best (judgements)") else "left")
    for r in rows:
        t.add_row(r["dataset"], r["strategy"], str(r["configs"]), str(r["judged_queries"]), str(r["scored_queries"]),
                  str(r["judgements"]), f"{r['spearman']:.3f}", r["best"], str(r["best_label_rank"]),
                  "[green]yes[/]" if r["top3_hit"] else "[red]no[/]")
    console.print(t)
    for d, acc in meta["acceptance"].items():
        console.print(f"{d} (panel's suggestions): {ACCEPT_QUERIES} judged queries → Spearman ≥ {ACCEPT_SPEARMAN} and top-3 hit: "
                      + ("not measured (--quick)" if acc is None else "[green]met[/]" if acc else "[red]missed[/]"))


# ---------------------------------------------------------------------------------------------
# Worker
# ---------------------------------------------------------------------------------------------

def _log(msg: str) -> None:
    print(f"[judgements] {msg}", file=sys.stderr, flush=True)


def configurations(features: dict, cfg) -> dict[str, tuple]:
    """{"pooling/layer/metric": (pooling, layer, metric)} in a fixed order."""
    return {f"{p}/{layer}/{m}": (p, layer, m) for p, by_layer in features.items() for layer in by_layer
            for m in cfg.metrics}


def neighbours_and_scores(features: dict, labels, cfg) -> tuple[dict, dict]:
    """ids[config] int64 [N, k] and the label leaderboard's search score per configuration."""
    from convnet_search.search.evaluate import summarize
    from convnet_search.search.neighbors import top_k_neighbors_multi

    k = min(cfg.k, len(labels) - 1)
    ids, score = {}, {}
    for p, by_layer in features.items():
        for layer, x in by_layer.items():
            res = top_k_neighbors_multi(x, k, list(cfg.metrics), p=cfg.minkowski_p)
            for m in cfg.metrics:
                name = f"{p}/{layer}/{m}"
                ids[name] = res[m][0]
                score[name] = summarize(res[m][0], labels, k).search_score
    return ids, score


def cached_rows(name: str, ds, spec, cfg, quick: bool) -> tuple[dict, dict]:
    """neighbours_and_scores of the real-weights features, kept in bench/out/ (keyed by the dataset's
    files and labels and the run defaults) so the simulation can be re-run without re-extracting."""
    import hashlib

    import numpy as np

    key = hashlib.sha256(json.dumps([MODEL, ds.files, ds.labels.tolist(), cfg.k, list(cfg.metrics),
                                     cfg.minkowski_p]).encode()).hexdigest()[:16]
    path = BENCH_DIR / "out" / f"judgements-{name}{'-quick' if quick else ''}-{key}.npz"
    if path.exists():
        z = np.load(path)
        names = json.loads(str(z["names"]))
        return {c: z[f"ids{i}"] for i, c in enumerate(names)}, dict(zip(names, z["score"].tolist()))
    ex = extract_all(ds, spec, "imagenet", 0, cfg.batch_size)
    if ex["base_info"]["weights"] != "imagenet":
        raise RuntimeError(f"expected ImageNet weights, got {ex['base_info']['weights_detail']}")
    ids, score = neighbours_and_scores(ex["features"], ds.labels, cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(ids)
    np.savez(path, names=json.dumps(names), score=np.array([score[c] for c in names]),
             **{f"ids{i}": ids[c] for i, c in enumerate(names)})
    return ids, score


def _leader_list(ids: dict, ranking, q: int):
    for r in ranking.ranked:
        yield from (int(x) for x in ids[r.config][q])


def simulate(ids: dict, labels, queries: list[int], steps: tuple[int, ...]) -> dict[int, dict]:
    """judgements after each step's number of judged queries: {n queries: {(q, r): bool}}."""
    from convnet_search.search.judgements import rank_configurations, suggest

    judged: dict[tuple[int, int], bool] = {}
    out: dict[int, dict] = {}

    def mark(q: int, r: int) -> None:
        judged[(q, r)] = bool(labels[q] == labels[r])

    for n, q in enumerate(queries, 1):
        rows = {c: {qq: ids[c][qq] for qq in {*(a for a, _ in judged), q}} for c in ids}
        ranking = rank_configurations(rows, judged, n_boot=1)
        mark(q, next(_leader_list(ids, ranking, q)))
        while sum(1 for a, _ in judged if a == q) < JUDGED_PER_QUERY:
            todo = [(a, r) for a, r in suggest(rows, judged, limit=10**6) if a == q][:8]
            if not todo:  # every listed result is judged: scroll down the leaderboard
                ranking = rank_configurations(rows, judged, n_boot=1)
                todo = [(q, next(r for r in _leader_list(ids, ranking, q) if r != q and (q, r) not in judged))]
            for a, r in todo[:JUDGED_PER_QUERY - sum(1 for a2, _ in judged if a2 == q)]:
                mark(a, r)
        if n in steps:
            out[n] = dict(judged)
    return out


STRATEGIES = {"panel": simulate}


def _spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def evaluate_steps(ids: dict, score: dict, sims: dict[int, dict]) -> list[dict]:
    from convnet_search.search.judgements import rank_configurations

    configs = list(ids)
    label_order = sorted(configs, key=lambda c: -score[c])
    rows = []
    for n, judged in sims.items():
        qs = sorted({q for q, _ in judged})
        ranking = rank_configurations({c: {q: ids[c][q] for q in qs} for c in configs}, judged)
        mine = {r.config: r.score for r in ranking.ranked}
        best = ranking.ranked[0].config
        rank = label_order.index(best) + 1
        rows.append({"judged_queries": n, "scored_queries": len(ranking.queries), "judgements": len(judged),
                     "spearman": round(_spearman([mine[c] for c in configs], [score[c] for c in configs]), 4),
                     "best": best, "best_score": round(ranking.ranked[0].score, 4),
                     "best_label_rank": rank, "top3_hit": rank <= 3, "leader_share": ranking.leader_share})
    return rows


def _subset(ds, per_class: int):
    import dataclasses

    import numpy as np

    keep = np.concatenate([np.flatnonzero(ds.labels == c)[:per_class] for c in range(len(ds.classes))])
    keep.sort()
    return dataclasses.replace(ds, files=[ds.files[i] for i in keep], labels=ds.labels[keep])


def worker(quick: bool) -> dict:
    import numpy as np

    from convnet_search.config import RunConfig
    from convnet_search.io.datasets import load_dataset
    from convnet_search.nets.models import get_spec

    cfg = RunConfig()
    spec = get_spec(MODEL)
    steps = QUICK_STEPS if quick else STEPS
    rows, meta = [], {"model": MODEL, "seed": SEED, "judged_per_query": JUDGED_PER_QUERY, "steps": list(steps),
                      "k": cfg.k, "metrics": list(cfg.metrics), "quick": quick, "datasets": {},
                      "acceptance": {}}
    for name, path in datasets():
        t0 = time.perf_counter()
        ds = load_dataset(path)
        if quick:
            ds = _subset(ds, QUICK_PER_CLASS)
        ids, score = cached_rows(name, ds, spec, cfg, quick)
        _log(f"{name}: {len(ds)} images, {len(ids)} configurations; simulating …")
        queries = [int(q) for q in np.random.default_rng(SEED).choice(len(ds), size=max(steps), replace=False)]
        found = []
        for strategy, sim in STRATEGIES.items():
            found += [{"dataset": name, "strategy": strategy, "configs": len(ids), **r}
                      for r in evaluate_steps(ids, score, sim(ids, ds.labels, queries, steps))]
        rows += found
        best_label = max(score, key=score.get)
        meta["datasets"][name] = {"images": len(ds), "classes": len(ds.classes), "configs": len(ids),
                                  "label_best": best_label, "label_best_score": round(score[best_label], 4),
                                  "seconds": round(time.perf_counter() - t0, 1)}
        at = [r for r in found if r["judged_queries"] == ACCEPT_QUERIES and r["strategy"] == "panel"]
        meta["acceptance"][name] = (bool(at[0]["spearman"] >= ACCEPT_SPEARMAN and at[0]["top3_hit"]) if at
                                    else None)  # --quick stops before ACCEPT_QUERIES
        _log(f"{name}: " + "; ".join(f"{r['strategy']} {r['judged_queries']} q: ρ {r['spearman']:.3f}, "
                                     f"top-3 {r['top3_hit']}" for r in found))
    return {"rows": rows, "meta": meta}


def main(argv: list[str] | None = None) -> int:
    args = worker_args(argv, f"first {QUICK_PER_CLASS} images of each class", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    section_main(args, worker=worker, run=run, skip_reason=skip_reason, report=_report)
    return 0


def _report(result: dict) -> None:
    from rich.console import Console

    print_report(Console(width=200), result["rows"], result["meta"])


if __name__ == "__main__":
    sys.exit(main())
