"""Judgements stage: `--judgements FILE` ranks every configuration offline by the user's exported marks.

Per dataset named in the file: the marks' file names are mapped to image ids, every configuration's
(model × layer × pooling × metric, manifest order) stored neighbour rows of the judged queries are
ranked by search/judgements.py (the explorer's algorithm: condensed-list AP′, seeded bootstrap), and
the ranking is stored in <work>/judgements/<dataset>.json with a fingerprint of the file's bytes and
the neighbours. The bundle stage writes it as `datasets/<dataset>/judgements.json` (docs/bundle.md).
Without `judgements` in the config this stage does nothing.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..io.judgements import JudgementsFile, JudgementsFileError, read_judgements
from ..io.store import atomic_write_json, fingerprint
from ..nets.pooling import feature_key
from ..search.evaluate import score_window
from ..search.judgements import Ranking, rank_configurations
from .base import Stage

if TYPE_CHECKING:
    from .base import RunContext
    from .outputs import DatasetResults

JUDGEMENTS_FORMAT = 1
TOP_STORED = 50  # leaderboard rows stored in full; every configuration keeps its rank and score
SCORE_SCALE = 10_000  # scores stored as integers / SCORE_SCALE: 4 decimals, a small file


def configurations(res: DatasetResults, models: list[str], poolings: list[str], metrics: list[str]
                   ) -> list[tuple[str, str, str, str]]:
    """(model, layer, pooling, metric) in manifest order, as the explorer's `allColumns`."""
    return [(m, layer["name"], p, x) for m in models for layer in res.features[m].meta["layers"]
            for p in poolings for x in metrics]


def config_key(c: tuple[str, str, str, str]) -> str:
    return "|".join(c)  # the explorer's colKey


def judged_ids(jf: JudgementsFile, res: DatasetResults) -> dict[tuple[int, int], bool]:
    """{(query id, result id): similar} of the file's marks on this dataset; a name that is not an
    image of the dataset is an error naming the file and the entry."""
    index = {name: i for i, name in enumerate(res.dataset.files)}
    out: dict[tuple[int, int], bool] = {}
    unknown = []
    for n, j in enumerate(jf.judgements, 1):
        if j.dataset != res.dataset.id:
            continue
        q, r = index.get(j.query), index.get(j.result)
        if q is None or r is None:
            unknown.append(f"entry {n}: {j.query if q is None else j.result!r} is not an image of dataset "
                           f"{res.dataset.id!r}")
        else:
            out[(q, r)] = j.similar
    if unknown:
        raise JudgementsFileError(f"{jf.path}: {len(unknown)} judgement(s) name unknown images "
                                  f"(renamed or removed?):\n  " + "\n  ".join(unknown[:10]))
    return out


def rows_of(res: DatasetResults, configs: list[tuple[str, str, str, str]], queries: list[int], k: int
            ) -> dict[str, dict[int, Any]]:
    """{config key: {query id: its first k stored neighbour ids}} for the judged queries only: the
    rows the bundle's .knn files serve the explorer (k: score_window, as the bundle writer)."""
    rows = {}
    for model, layer, pooling, metric in configs:
        ids = res.neighbors[model].arrays[f"{feature_key(layer, pooling)}/{metric}/ids"]
        rows[config_key((model, layer, pooling, metric))] = {q: [int(x) for x in ids[q][:k]] for q in queries}
    return rows


def payload(res: DatasetResults, jf: JudgementsFile, keys: list[str], judged: dict, ranking: Ranking) -> dict:
    """What the bundle serves: the top TOP_STORED rows in full, every configuration's rank and score."""
    pos = {k: i for i, k in enumerate(keys)}
    score = [0] * len(keys)
    for r in ranking.ranked:
        score[pos[r.config]] = round(r.score * SCORE_SCALE)
    return {
        "format": JUDGEMENTS_FORMAT, "dataset": res.dataset.id, "source": jf.path.name, "sha256": jf.sha256,
        "configurations": len(keys), "judgements": len(judged),
        "judged_queries": len({q for q, _ in judged}), "scored_queries": len(ranking.queries),
        "leader_share": round(ranking.leader_share, 4), "score_scale": SCORE_SCALE,
        "top": [{"config": r.config, "score": round(r.score, 4), "n_judged": r.n_judged,
                 "lo": round(r.lo, 4), "hi": round(r.hi, 4)} for r in ranking.ranked[:TOP_STORED]],
        "order": [pos[r.config] for r in ranking.ranked],  # configuration indexes (manifest order), best first
        "scores": score,  # per configuration, manifest order, × score_scale
    }


def stage_fingerprint(ctx: RunContext, res: DatasetResults, jf: JudgementsFile) -> str:
    return fingerprint("judgements", JUDGEMENTS_FORMAT, jf.sha256, res.dataset.id,
                       [res.neighbors[m].meta["fingerprint"] for m in ctx.cfg.models],
                       list(ctx.cfg.pooling), list(ctx.cfg.metrics), ctx.cfg.k)


def _work(ctx: RunContext, res: DatasetResults, compute: bool) -> None:
    jf = _file(ctx)
    if not any(j.dataset == res.dataset.id for j in jf.judgements):
        return
    path = ctx.work / "judgements" / f"{res.dataset.id}.json"
    fp = stage_fingerprint(ctx, res, jf)
    stored = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    if stored is None or stored.get("fingerprint") != fp:
        if not compute:
            raise ctx.missing("judgements", res.dataset.id)
        judged = judged_ids(jf, res)
        configs = configurations(res, list(ctx.cfg.models), list(ctx.cfg.pooling), list(ctx.cfg.metrics))
        queries = sorted({q for q, _ in judged})
        k = score_window(len(res.dataset), ctx.cfg.k)[0]
        ranking = rank_configurations(rows_of(res, configs, queries, k), judged)
        keys = [config_key(c) for c in configs]
        stored = {"fingerprint": fp, "bundle": payload(res, jf, keys, judged, ranking)}
        atomic_write_json(path, stored)
    res.judgements = stored["bundle"]


def _file(ctx: RunContext) -> JudgementsFile:
    return read_judgements(ctx.cfg.judgements)


def run(ctx: RunContext) -> None:
    if ctx.cfg.judgements is None:
        return
    jf = _file(ctx)
    known = {r.dataset.id for r in ctx.results}
    other = sorted({j.dataset for j in jf.judgements} - known)
    if other:
        ctx.console.print(f"note: {jf.path}: judgements of datasets not in this run are left out: {', '.join(other)}")
    for res in ctx.results:
        _work(ctx, res, compute=True)


def load(ctx: RunContext) -> None:
    if ctx.cfg.judgements is None:
        return
    for res in ctx.results:
        _work(ctx, res, compute=False)


STAGE = Stage("judgements", run, load, ("datasets", "extract", "neighbors"), ("judgements",))
