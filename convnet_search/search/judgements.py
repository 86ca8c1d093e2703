"""Rank configurations by a user's own similarity judgements (issue 20, item 5).

The same algorithm as the explorer's ``frontend/src/data/judgements.ts``; both are checked against
``frontend/src/data/judgements.fixture.json``. Pure numpy, no I/O: a benchmark that simulates a
user judging by true class calls :func:`rank_configurations` and :func:`suggest` directly.

Inputs
  rows        {config name: {query id: sequence of the k neighbour ids, nearest first}}; every
              configuration needs a row for every judged query.
  judgements  {(query id, result id): True (similar) / False (not similar)}.

Score: condensed-list average precision (Sakai's AP'): a configuration's list for query q is cut
down to the results judged for q (unjudged ones are removed, neither right nor wrong), and AP is
computed on what is left, divided by R_q = the number of results judged similar for q (by any
configuration's list). A query with R_q = 0 has no AP and is skipped. The score is the mean over
scored queries; the interval is a seeded paired bootstrap over those queries (same resamples for
every configuration), 2.5 % / 97.5 % order statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

N_BOOT = 1000
SEED = 20


@dataclass(frozen=True)
class Ranked:
    config: str
    score: float
    #: judged results inside this configuration's top-k lists of the scored queries
    n_judged: int
    lo: float
    hi: float


@dataclass(frozen=True)
class Ranking:
    ranked: list[Ranked]
    #: scored queries (judged queries with at least one result judged similar), ascending
    queries: list[int]
    #: share of bootstrap resamples in which the leader scores at least as high as every other
    leader_share: float


def mulberry32(seed: int):
    """The explorer's seeded generator (uint32 arithmetic), so both sides draw the same resamples."""
    a = seed & 0xFFFFFFFF

    def next_float() -> float:
        nonlocal a
        a = (a + 0x6D2B79F5) & 0xFFFFFFFF
        t = a
        t = _imul(t ^ (t >> 15), t | 1)
        t ^= (t + _imul(t ^ (t >> 7), t | 61)) & 0xFFFFFFFF
        return ((t ^ (t >> 14)) & 0xFFFFFFFF) / 4294967296.0

    return next_float


def _imul(a: int, b: int) -> int:
    return (a * b) & 0xFFFFFFFF


def _by_query(judgements: Mapping[tuple[int, int], bool]) -> dict[int, dict[int, bool]]:
    out: dict[int, dict[int, bool]] = {}
    for (q, r), v in judgements.items():
        out.setdefault(int(q), {})[int(r)] = bool(v)
    return out


def condensed_ap(row: Sequence[int], judged: Mapping[int, bool]) -> float:
    """AP' of one list: precision over judged results only, divided by the judged-similar count."""
    relevant = sum(1 for v in judged.values() if v)
    if relevant == 0:
        return float('nan')
    hits = seen = 0
    total = 0.0
    for r in row:
        v = judged.get(int(r))
        if v is None:
            continue
        seen += 1
        if v:
            hits += 1
            total += hits / seen
    return total / relevant


def bootstrap_indices(n_queries: int, n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """(n_boot, n_queries) resampled positions, drawn in row order from mulberry32(seed)."""
    rnd = mulberry32(seed)
    out = np.empty((n_boot, n_queries), dtype=np.int64)
    for b in range(n_boot):
        for j in range(n_queries):
            out[b, j] = int(rnd() * n_queries)
    return out


def _interval(samples: np.ndarray) -> tuple[float, float]:
    s = np.sort(samples)
    n = len(s)
    return float(s[int(np.floor(0.025 * (n - 1)))]), float(s[int(np.ceil(0.975 * (n - 1)))])


def rank_configurations(rows: Mapping[str, Mapping[int, Sequence[int]]], judgements: Mapping[tuple[int, int], bool],
                        *, n_boot: int = N_BOOT, seed: int = SEED) -> Ranking:
    """Every configuration of ``rows``, best first (ties: more judged results, then input order)."""
    by_q = _by_query(judgements)
    queries = sorted(q for q, j in by_q.items() if any(j.values()))
    configs = list(rows)
    ap = np.zeros((len(configs), len(queries)))
    n_judged = np.zeros(len(configs), dtype=np.int64)
    for c, name in enumerate(configs):
        for j, q in enumerate(queries):
            row = rows[name][q]
            ap[c, j] = condensed_ap(row, by_q[q])
            n_judged[c] += sum(1 for r in row if int(r) in by_q[q])
    scores = ap.mean(axis=1) if queries else np.zeros(len(configs))
    boot = ap[:, bootstrap_indices(len(queries), n_boot, seed)].mean(axis=2) if queries else np.zeros((len(configs), n_boot))
    order = sorted(range(len(configs)), key=lambda c: (-_key(scores[c]), -n_judged[c], c))
    ranked = [Ranked(configs[c], float(scores[c]), int(n_judged[c]), *_interval(boot[c])) for c in order]
    lead = order[0] if configs else 0
    share = float(np.mean(np.all(boot[lead] >= boot - 1e-12, axis=0))) if configs else 0.0
    return Ranking(ranked, queries, share)


def _key(x: float) -> float:
    # Scores that differ only by summation order (numpy's pairwise mean vs the explorer's loop) tie.
    return round(float(x), 12)


def suggest(rows: Mapping[str, Mapping[int, Sequence[int]]], judgements: Mapping[tuple[int, int], bool],
            *, limit: int = 8) -> list[tuple[int, int]]:
    """What to judge next: unjudged (query, result) pairs of the judged queries, pooled over every
    configuration in ``rows`` by rank-biased votes (Σ 1/(rank + 1) over the lists that hold the
    result, as TREC-style pooling does). Most votes first; ties by query, then result.

    Why every configuration and not the current leaders: a pool drawn from the leaders' lists
    confirms them (their own results get judged, the others' stay unjudged), and on real photos it
    settled on the 17th-best configuration (tinyimagenet20, 20 queries; bench_judgements.py). A
    pool that does not depend on who leads judges every configuration on the same results."""
    by_q = _by_query(judgements)
    cands: list[tuple[float, int, int]] = []  # (−votes, query, result)
    for q in sorted(by_q):
        votes: dict[int, float] = {}
        for per in rows.values():
            for pos, r in enumerate(per[q]):
                r = int(r)
                if r != q and r not in by_q[q]:
                    votes[r] = votes.get(r, 0.0) + 1.0 / (pos + 1)
        cands += [(-_key(v), q, r) for r, v in votes.items()]
    cands.sort()
    return [(q, r) for _, q, r in cands[:limit]]
