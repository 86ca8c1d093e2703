"""Search quality: the ConvNet Playground score formula, precision@k and AP@k on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score

from convnet_search.search.evaluate import (
    SCORE_SCALE,
    SCORE_TOP,
    QualitySummary,
    average_precision_at_k,
    precision_at_k,
    search_score_numerators,
    search_scores,
    summarize,
)


def one_query(matches: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    """Query 0 of class 0; result i is a class-0 image when matches[i], else a class-1 image.

    Images 1 … 15 are class 0 and 16 … 30 class 1, so every pattern is expressible with distinct ids.
    """
    labels = np.array([0] * 16 + [1] * 15)
    same, other = iter(range(1, 16)), iter(range(16, 31))
    row = [next(same) if m else next(other) for m in matches]
    ids = np.zeros((31, len(matches)), dtype=np.int64)
    ids[0] = row
    return ids, labels


def score0(matches):
    ids, labels = one_query(matches)
    return search_scores(ids, labels)[0], int(search_score_numerators(ids, labels)[0])


def test_constants():
    assert SCORE_TOP == 15 and SCORE_SCALE == 120


@pytest.mark.parametrize(
    "matches, numerator",
    [
        ([True] * 15, 120),
        ([False] * 15, 0),
        ([True] + [False] * 14, 15),
        ([False] * 14 + [True], 1),
        ([True, True] + [False] * 13, 15 + 14),
        ([i % 2 == 0 for i in range(15)], sum(15 - i for i in range(0, 15, 2))),  # 64
        ([False] * 7 + [True] * 8, sum(range(1, 9))),  # 36
    ],
)
def test_search_score_formula_hand_made(matches, numerator):
    s, num = score0(matches)
    assert num == numerator
    assert s == pytest.approx(numerator / 120)
    # the definition: Σ wᵢ·match / Σ wᵢ with wᵢ = (15 − i)/15
    w = np.array([(15 - i) / 15 for i in range(15)])
    assert s == pytest.approx(float((w * np.array(matches)).sum() / w.sum()))


def test_search_score_uses_only_the_first_15_columns():
    s, num = score0([True] * 15 + [False] * 5)
    assert (s, num) == (1.0, 120)
    s, num = score0([False] * 15 + [True] * 5)
    assert (s, num) == (0.0, 0)


def test_numerators_are_uint8():
    ids, labels = one_query([True] * 15)
    num = search_score_numerators(ids, labels)
    assert num.dtype == np.uint8 and num.shape == (31,)


def test_search_score_needs_15_columns():
    ids, labels = one_query([True] * 14)
    with pytest.raises(ValueError, match="at least 15"):
        search_scores(ids, labels)


def test_precision_and_ap_hand_computed():
    # query 0 (class 0; 15 other class-0 images exist): pattern over k=5: hit, miss, hit, miss, miss
    ids, labels = one_query([True, False, True, False, False])
    assert precision_at_k(ids, labels)[0] == pytest.approx(2 / 5)
    assert precision_at_k(ids, labels, 3)[0] == pytest.approx(2 / 3)
    assert precision_at_k(ids, labels, 1)[0] == 1.0
    # AP@5 = (1/1 + 2/3) / min(5, 15)
    assert average_precision_at_k(ids, labels)[0] == pytest.approx((1 + 2 / 3) / 5)
    # AP@3 = (1 + 2/3) / 3
    assert average_precision_at_k(ids, labels, 3)[0] == pytest.approx((1 + 2 / 3) / 3)


def test_ap_normalised_by_class_size_when_smaller_than_k():
    # classes: 0 → {0, 1, 2}, 1 → {3 … 9}; query 0 has 2 other class-0 images
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 1])
    ids = np.tile(np.arange(10), (10, 1))[:, :5]
    ids[0] = [3, 1, 4, 2, 5]  # hits at ranks 2 and 4
    ap = average_precision_at_k(ids, labels)
    assert ap[0] == pytest.approx((1 / 2 + 2 / 4) / 2)
    ids[0] = [1, 2, 3, 4, 5]  # both found first → perfect
    assert average_precision_at_k(ids, labels)[0] == pytest.approx(1.0)


def test_query_alone_in_its_class_gets_ap_zero():
    labels = np.array([0, 1, 1, 1])
    ids = np.array([[1, 2, 3], [2, 3, 0], [1, 3, 0], [1, 2, 0]])
    ap = average_precision_at_k(ids, labels)
    assert ap[0] == 0.0
    assert ap[1] == pytest.approx(1.0)  # 2 others, both at ranks 1–2


def test_ap_matches_sklearn_when_all_class_members_are_ranked():
    # When the neighbour list covers every other image, AP@k = sklearn's average precision of the
    # ranking (scores = −rank) over all other images.
    rng = np.random.default_rng(0)
    n = 30
    labels = rng.integers(0, 3, n)
    ids = np.array([rng.permutation([j for j in range(n) if j != q]) for q in range(n)])
    ap = average_precision_at_k(ids, labels)
    for q in range(n):
        y_true = labels[ids[q]] == labels[q]
        if y_true.any():
            assert ap[q] == pytest.approx(average_precision_score(y_true, -np.arange(n - 1)))


def test_summarize_means():
    labels = np.repeat(np.arange(2), 20)
    ids = np.array([[j for j in range(40) if j != q and labels[j] == labels[q]][:15] for q in range(40)])
    s = summarize(ids, labels)
    assert isinstance(s, QualitySummary)
    assert (s.search_score, s.precision_at_k, s.map_at_k) == (1.0, 1.0, 1.0)
    ids2 = np.array([[j for j in range(40) if labels[j] != labels[q]][:15] for q in range(40)])
    s2 = summarize(ids2, labels, k=10)
    assert (s2.search_score, s2.precision_at_k, s2.map_at_k) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    "ids, labels, match",
    [
        (np.zeros(15, dtype=int), np.zeros(15, dtype=int), "2-D"),
        (np.zeros((3, 15), dtype=int), np.zeros((3, 1), dtype=int), "1-D"),
        (np.zeros((3, 15), dtype=int), np.zeros(4, dtype=int), "rows"),
        (np.full((3, 15), 3), np.zeros(3, dtype=int), "0 … 2"),
        (np.zeros((3, 15)), np.zeros(3, dtype=int), "integer"),
    ],
)
def test_input_errors(ids, labels, match):
    with pytest.raises(ValueError, match=match):
        search_scores(ids, labels)


def test_bad_k():
    ids, labels = one_query([True] * 15)
    for k in (0, 16, 2.0, True):
        with pytest.raises(ValueError, match="k"):
            precision_at_k(ids, labels, k)


# ---- properties ------------------------------------------------------------------------------

patterns = st.lists(st.booleans(), min_size=15, max_size=15)


@settings(max_examples=200, deadline=None)
@given(matches=patterns)
def test_property_score_in_range_and_integer(matches):
    s, num = score0(matches)
    assert 0.0 <= s <= 1.0
    assert num == sum(15 - i for i, m in enumerate(matches) if m)


@settings(max_examples=200, deadline=None)
@given(matches=patterns, i=st.integers(0, 14))
def test_property_monotone_when_a_mismatch_becomes_a_match(matches, i):
    before, _ = score0(matches)
    after_matches = list(matches)
    was = after_matches[i]
    after_matches[i] = True
    after, _ = score0(after_matches)
    if was:
        assert after == before
    else:
        assert after > before
        assert after - before == pytest.approx((15 - i) / 120)
    # precision and AP never decrease either
    ids_b, lab = one_query(matches)
    ids_a, _ = one_query(after_matches)
    assert precision_at_k(ids_a, lab)[0] >= precision_at_k(ids_b, lab)[0]
    assert average_precision_at_k(ids_a, lab)[0] >= average_precision_at_k(ids_b, lab)[0] - 1e-12


@settings(max_examples=100, deadline=None)
@given(matches=patterns, i=st.integers(0, 13))
def test_property_earlier_match_scores_higher(matches, i):
    # swapping a match to an earlier position never lowers the score
    m = list(matches)
    if m[i + 1] and not m[i]:
        before, _ = score0(m)
        m[i], m[i + 1] = True, False
        after, _ = score0(m)
        assert after > before


def test_score_window_shrinks_for_small_folders():
    from convnet_search.search.evaluate import score_scale, score_window

    assert score_window(200, 15) == (15, 15)
    assert score_window(5, 15) == (4, 4)
    assert score_window(200, 5) == (5, 5)
    assert score_window(200, 30) == (30, 15)
    assert score_window(2, 15) == (1, 1)
    with pytest.raises(ValueError, match="at least 2"):
        score_window(1, 15)
    assert [score_scale(t) for t in (1, 4, 15)] == [1, 10, 120]


def test_search_score_with_a_small_window_matches_the_definition():
    # 5 images, classes a a a b b; the window is 4: query 0's results 1 (hit), 3, 2 (hit), 4
    labels = np.array([0, 0, 0, 1, 1])
    ids = np.array([[1, 3, 2, 4], [0, 2, 3, 4], [0, 1, 3, 4], [4, 0, 1, 2], [3, 0, 1, 2]])
    num = search_score_numerators(ids, labels, top=4)
    assert num.tolist() == [4 + 2, 4 + 3, 4 + 3, 4, 4]
    np.testing.assert_allclose(search_scores(ids, labels, top=4), num / 10)
    with pytest.raises(ValueError, match="window"):
        search_score_numerators(ids, labels, top=16)


def test_best_scored_is_the_first_of_the_highest_and_skips_the_unscored():
    from convnet_search.search.evaluate import best_scored

    assert best_scored([0.5, 0.7, 0.7, 0.6]) == 1  # a tie goes to stored order
    assert best_scored([None, 0.2, None, 0.1]) == 1
    assert best_scored([float("-inf"), float("-inf")]) == 0  # the API's "no scores": its first
    assert best_scored([None, None]) is None and best_scored([]) is None
