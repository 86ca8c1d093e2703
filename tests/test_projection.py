"""UMAP stage: unit-square normalisation (pure) and reproducibility with a fixed seed."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from convnet_search.config import UmapConfig
from convnet_search.projection import normalize_unit_square, umap_2d


@given(arrays(np.float64, st.tuples(st.integers(2, 50), st.just(2)),
              elements=st.floats(-1e6, 1e6, allow_nan=False)))
@settings(max_examples=60, deadline=None)
def test_normalize_keeps_aspect_and_fits_unit_square(xy):
    out = normalize_unit_square(xy).astype(np.float64)
    assert out.min() >= -1e-6 and out.max() <= 1 + 1e-6
    span = xy.max(axis=0) - xy.min(axis=0)
    if span.max() > 1e-3:
        # uniform scale: pairwise distances shrink by one common factor
        d_in = np.linalg.norm(xy[0] - xy[1])
        d_out = np.linalg.norm(out[0] - out[1])
        assert np.isclose(d_out, d_in / span.max(), rtol=1e-4, atol=1e-5)


def test_umap_is_reproducible_and_separates_clusters():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 64)) * 10
    x = np.concatenate([c + rng.normal(size=(20, 64)) for c in centers]).astype(np.float32)
    a = umap_2d(x, UmapConfig(), seed=0)
    b = umap_2d(x, UmapConfig(), seed=0)
    assert a.shape == (60, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    # each cluster's centroid is far from the others relative to its spread
    cents = np.stack([a[i * 20:(i + 1) * 20].mean(0) for i in range(3)])
    spread = max(a[i * 20:(i + 1) * 20].std(0).max() for i in range(3))
    gaps = [np.linalg.norm(cents[i] - cents[j]) for i in range(3) for j in range(i + 1, 3)]
    assert min(gaps) > 2 * spread


def test_umap_handles_zero_vectors_under_cosine():
    x = np.random.default_rng(1).random((30, 8)).astype(np.float32)
    x[:5] = 0
    with pytest.warns(RuntimeWarning, match="zero feature vectors"):
        out = umap_2d(x, UmapConfig(metric="cosine"), seed=0)
    assert np.isfinite(out).all()


def test_two_or_three_images_still_get_a_map():
    """A folder of 2-3 images runs (small folders work): distinct points inside the unit square."""
    for n in (2, 3):
        x = np.random.default_rng(n).normal(size=(n, 16)).astype(np.float32)
        xy = umap_2d(x, UmapConfig(), seed=0)
        assert xy.shape == (n, 2) and xy.min() >= 0 and xy.max() <= 1
        assert len({tuple(p) for p in np.round(xy, 6)}) == n
