"""search/guidance.py: hubness and agreement against brute-force definitions."""
from __future__ import annotations

import numpy as np
import pytest

from convnet_search.search.guidance import agreement, hubness, k_occurrence


def _lists(rng, n=60, k=6, c=5):
    return [np.stack([rng.permutation(np.delete(np.arange(n), q))[:k] for q in range(n)]) for _ in range(c)]


def test_agreement_equals_the_mean_pairwise_overlap():
    rng = np.random.default_rng(0)
    lists = _lists(rng)
    lists[1][:30] = np.roll(lists[0][:30], 2, axis=1)  # two configurations that agree more
    ref = [np.mean([np.mean([len(set(lists[i][q]) & set(lists[j][q])) / 6 for q in range(60)])
                    for j in range(5) if j != i]) for i in range(5)]
    np.testing.assert_allclose(agreement(lists, 6), ref, rtol=1e-12)


def test_agreement_over_query_blocks_equals_one_pass(monkeypatch):
    import convnet_search.search.guidance as g

    lists = _lists(np.random.default_rng(1), n=50)
    whole = agreement(lists, 6)
    monkeypatch.setattr(g, "AGREEMENT_ROWS", 7)
    np.testing.assert_array_equal(agreement(lists, 6), whole)


def test_identical_lists_agree_fully_and_a_single_list_has_no_agreement():
    lists = _lists(np.random.default_rng(2), c=1)
    assert np.isnan(agreement(lists, 6)).all()
    np.testing.assert_allclose(agreement(lists * 3, 6), 1.0)


def test_hubness_is_the_skewness_of_k_occurrence():
    rng = np.random.default_rng(3)
    hub = lambda q: 8 if q == 7 else 7  # noqa: E731  image 7 is in every other list: a hub
    ids = np.stack([[hub(q), *rng.permutation([x for x in range(60) if x not in (q, hub(q))])[:5]]
                    for q in range(60)])
    nk = k_occurrence(ids, 60).astype(float)
    assert nk[7] == 59
    ref = np.mean((nk - nk.mean()) ** 3) / nk.std() ** 3
    assert hubness(ids) == pytest.approx(ref, rel=1e-12)
    assert hubness(ids) > hubness(_lists(rng, c=1)[0])


def test_a_perfectly_even_distribution_has_zero_hubness():
    n = 10
    ids = np.stack([(np.arange(1, 4) + q) % n for q in range(n)])  # every image appears 3 times
    assert hubness(ids) == 0.0
