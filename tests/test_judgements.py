"""Ranking by the user's own judgements: against a brute-force reference, the condensed-list
properties, and the fixture the explorer's TypeScript implementation is checked against too
(frontend/src/data/judgements.fixture.json; rewrite it with `python tests/test_judgements.py --write`)."""

import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest

from convnet_search.search.judgements import (bootstrap_indices, condensed_ap, mulberry32,
                                       rank_configurations, suggest)

FIXTURE = Path(__file__).resolve().parent.parent / 'frontend' / 'src' / 'data' / 'judgements.fixture.json'


def brute_ap(row, judged):
    """AP of the condensed list, written out the textbook way."""
    condensed = [judged[r] for r in row if r in judged]
    rel = sum(judged.values())
    precisions = [sum(condensed[: i + 1]) / (i + 1) for i, v in enumerate(condensed) if v]
    return sum(precisions) / rel


def random_case(seed, n_configs=7, n_queries=6, k=8, n_images=40):
    rng = random.Random(seed)
    rows = {}
    for c in range(n_configs):
        rows[f'cfg{c}'] = {q: rng.sample([i for i in range(n_images) if i != q], k) for q in range(n_queries)}
    rows['cfg_copy'] = {q: list(r) for q, r in rows['cfg0'].items()}  # an exact tie
    judgements = {}
    for q in range(n_queries):
        seen = sorted({r for name in rows for r in rows[name][q]})
        for r in rng.sample(seen, 6):
            judgements[(q, r)] = rng.random() < 0.5
    judgements[(n_queries - 1, 0 if n_queries - 1 else 1)] = False
    for key in [k for k in judgements if k[0] == 0]:
        judgements[key] = False  # query 0: only "not similar", so it is not scored
    return rows, judgements


def test_condensed_ap_matches_brute_force():
    rows, judgements = random_case(1)
    by_q = {}
    for (q, r), v in judgements.items():
        by_q.setdefault(q, {})[r] = v
    for name in rows:
        for q, row in rows[name].items():
            if any(by_q[q].values()):
                assert condensed_ap(row, by_q[q]) == pytest.approx(brute_ap(row, by_q[q]), abs=1e-15)
            else:
                assert np.isnan(condensed_ap(row, by_q[q]))


def test_unjudged_results_change_nothing_and_perfect_lists_score_one():
    judged = {1: True, 2: True, 3: False}
    assert condensed_ap([1, 2, 3], judged) == 1.0
    # inserting unjudged results anywhere keeps AP' (they are neither right nor wrong)
    assert condensed_ap([9, 1, 8, 7, 2, 6, 3], judged) == 1.0
    assert condensed_ap([3, 1, 2], judged) == pytest.approx((1 / 2 + 2 / 3) / 2)
    # a judged-similar result missing from the list costs recall
    assert condensed_ap([1, 3, 5], judged) == pytest.approx(1 / 2)


def test_ranking_matches_brute_force_reference():
    rows, judgements = random_case(2)
    ranking = rank_configurations(rows, judgements, n_boot=200, seed=7)
    by_q = {}
    for (q, r), v in judgements.items():
        by_q.setdefault(q, {})[r] = v
    queries = sorted(q for q in by_q if any(by_q[q].values()))
    assert ranking.queries == queries and 0 not in queries
    idx = bootstrap_indices(len(queries), 200, 7)
    want = {}
    for name in rows:
        aps = [brute_ap(rows[name][q], by_q[q]) for q in queries]
        boots = sorted(sum(aps[i] for i in idx[b]) / len(queries) for b in range(200))
        n = sum(1 for q in queries for r in rows[name][q] if r in by_q[q])
        want[name] = (sum(aps) / len(aps), n, boots[int(np.floor(0.025 * 199))], boots[int(np.ceil(0.975 * 199))])
    assert sorted(r.config for r in ranking.ranked) == sorted(rows)  # every configuration
    for r in ranking.ranked:
        score, n, lo, hi = want[r.config]
        assert (r.score, r.n_judged) == (pytest.approx(score, abs=1e-12), n)
        assert (r.lo, r.hi) == (pytest.approx(lo, abs=1e-12), pytest.approx(hi, abs=1e-12))
        assert r.lo <= r.score + 1e-12 and r.score <= r.hi + 1e-12
    scores = [r.score for r in ranking.ranked]
    assert scores == sorted(scores, reverse=True)
    names = [r.config for r in ranking.ranked]
    assert names.index('cfg0') < names.index('cfg_copy')  # exact tie: input order


def test_bootstrap_is_seeded_and_uniform():
    a, b = bootstrap_indices(5, 400, 3), bootstrap_indices(5, 400, 3)
    assert (a == b).all() and a.min() == 0 and a.max() == 4
    assert not (a == bootstrap_indices(5, 400, 4)).all()
    counts = np.bincount(a.ravel(), minlength=5) / a.size
    assert np.abs(counts - 0.2).max() < 0.03
    assert mulberry32(1)() == pytest.approx(0.6270739405881613)  # the explorer's first draw for seed 1


def test_leader_share_and_suggestions():
    # c_good puts both similar results first; c_bad last: the top is certain.
    rows = {'c_good': {0: [1, 2, 3, 4], 5: [6, 7, 8, 9]}, 'c_bad': {0: [3, 4, 1, 2], 5: [8, 9, 6, 7]},
            'c_mid': {0: [1, 3, 2, 10], 5: [6, 8, 7, 11]}}
    judgements = {(0, 1): True, (0, 2): True, (0, 3): False, (5, 6): True, (5, 7): True, (5, 8): False}
    ranking = rank_configurations(rows, judgements)
    assert [r.config for r in ranking.ranked] == ['c_good', 'c_mid', 'c_bad']
    assert ranking.leader_share == 1.0
    # unjudged: 4 (votes 1/4 from c_good + 1/2 from c_bad) before 10 (1/4 from c_mid); 9, 11 likewise
    assert suggest(rows, judgements) == [(0, 4), (5, 9), (0, 10), (5, 11)]
    assert suggest(rows, judgements, limit=1) == [(0, 4)]


def test_suggestions_pool_every_configuration_by_rank_biased_votes():
    rows = {'a': {0: [7, 1, 2, 0]}, 'b': {0: [2, 1, 9, 3]}, 'c': {0: [1, 2, 3, 4]}}
    # votes: 1 = 1/2 + 1/2 + 1 = 2; 2 = 1/3 + 1 + 1/2; 7 = 1 (judged); 3 = 1/4 + 1/3; 9 = 1/3; 4 = 1/4;
    # the query (0) is never suggested, and queries with no judgement get nothing.
    assert suggest(rows, {(0, 7): True}) == [(0, 1), (0, 2), (0, 3), (0, 9), (0, 4)]
    assert suggest(rows, {(0, 7): True, (0, 1): False, (0, 2): True, (0, 3): True, (0, 9): False, (0, 4): True}) == []
    assert suggest(rows, {}) == []


def test_suggestions_do_not_depend_on_the_ranking():
    """The pool is the same whoever leads: relabelling which results are similar changes the
    ranking but not what is suggested (only which results are judged does)."""
    rows, judgements = random_case(7)
    flipped = {k: not v for k, v in judgements.items()}
    assert suggest(rows, judgements, limit=50) == suggest(rows, flipped, limit=50)


def test_no_scored_query_ranks_every_configuration_at_zero():
    rows = {'a': {0: [1, 2]}, 'b': {0: [2, 1]}}
    ranking = rank_configurations(rows, {(0, 1): False})
    assert [r.config for r in ranking.ranked] == ['a', 'b'] and ranking.queries == []
    assert all(r.score == 0 and r.lo == 0 and r.hi == 0 for r in ranking.ranked)


def make_fixture():
    rows, judgements = random_case(3)
    ranking = rank_configurations(rows, judgements)
    return {
        'about': 'tests/test_judgements.py writes this; judgements.test.ts and test_judgements.py check it',
        'rows': {name: {str(q): list(r) for q, r in per.items()} for name, per in rows.items()},
        'judgements': [[q, r, v] for (q, r), v in sorted(judgements.items())],
        'n_boot': 1000, 'seed': 20,
        'expected': {
            'ranked': [[r.config, r.score, r.n_judged, r.lo, r.hi] for r in ranking.ranked],
            'queries': ranking.queries,
            'leader_share': ranking.leader_share,
            'suggestions': [list(p) for p in suggest(rows, judgements)],
        },
    }


def test_fixture_is_what_python_computes():
    """The TypeScript suite checks the same file: both implementations agree on it."""
    stored = json.loads(FIXTURE.read_text())
    fresh = make_fixture()
    assert [r[0] for r in stored['expected']['ranked']] == [r[0] for r in fresh['expected']['ranked']]
    assert np.allclose([r[1:] for r in stored['expected']['ranked']], [r[1:] for r in fresh['expected']['ranked']], atol=1e-12)
    for key in ('queries', 'leader_share', 'suggestions'):
        assert stored['expected'][key] == fresh['expected'][key]
    assert stored['rows'] == fresh['rows'] and stored['judgements'] == fresh['judgements']


if __name__ == '__main__' and sys.argv[1:] == ['--write']:
    FIXTURE.write_text(json.dumps(make_fixture(), indent=1) + '\n')


def test_a_simulated_user_judging_by_class_finds_the_class_faithful_configuration():
    """How a benchmark calls it: rows per configuration, marks from true labels, suggestions as
    the next marks. The configuration whose lists follow the classes must come out on top."""
    rng = random.Random(5)
    labels = [i % 4 for i in range(60)]
    same = lambda q: [i for i in range(60) if labels[i] == labels[q] and i != q]
    other = lambda q: [i for i in range(60) if labels[i] != labels[q]]
    rows = {
        'faithful': {q: same(q)[:6] + other(q)[:4] for q in range(60)},
        'half': {q: [x for pair in zip(same(q)[:5], other(q)[:5]) for x in pair] for q in range(60)},
        'noise': {q: rng.sample(other(q), 8) + same(q)[:2] for q in range(60)},
    }
    judgements = {}
    for q in (0, 7, 13, 21, 30, 44):
        for r in rows['half'][q][:4]:
            judgements[(q, r)] = labels[r] == labels[q]
    for _ in range(3):
        ranking = rank_configurations(rows, judgements, n_boot=300)
        for q, r in suggest(rows, judgements):
            judgements[(q, r)] = labels[r] == labels[q]
    ranking = rank_configurations(rows, judgements, n_boot=300)
    assert [r.config for r in ranking.ranked] == ['faithful', 'half', 'noise']
    assert ranking.ranked[0].score == 1.0 and ranking.leader_share == 1.0
