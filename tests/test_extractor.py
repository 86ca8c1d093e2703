"""The extraction reader: the decode pool yields the very batches a serial reader does, in order."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from convnet_search.nets import extractor
from convnet_search.io.datasets import load_dataset


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Images of varied sizes (some above 2× the input: the box-downscale step runs too)."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(3)
    for c in ("a", "b"):
        (root / c).mkdir()
        for i in range(11):
            h, w = int(rng.integers(20, 300)), int(rng.integers(20, 300))
            Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(root / c / f"{i:02d}.png")
    return load_dataset(root)


def _batches(ds, monkeypatch, threads, start, stop, batch):
    monkeypatch.setattr(extractor, "DECODE_THREADS", threads)
    return [b.numpy() for b in extractor.image_batches([ds.path(i) for i in range(start, stop)], (64, 64), batch)]


@pytest.mark.parametrize("start,stop,batch", [(0, 22, 4), (3, 17, 5), (5, 6, 32)])
def test_decode_pool_gives_the_serial_batches(photos, monkeypatch, start, stop, batch):
    serial = _batches(photos, monkeypatch, 0, start, stop, batch)
    assert sum(len(b) for b in serial) == stop - start
    for threads in (1, 2, 4):
        pooled = _batches(photos, monkeypatch, threads, start, stop, batch)
        assert [b.shape for b in pooled] == [b.shape for b in serial]
        for p, s in zip(pooled, serial):
            np.testing.assert_array_equal(p, s)


def test_decode_error_surfaces_from_the_pool(photos, monkeypatch):
    from convnet_search.io.images import ImageError

    def broken(path, **kw):
        raise ImageError(path, "boom")

    monkeypatch.setattr(extractor, "load_rgb", broken)
    with pytest.raises(Exception, match="boom"):
        _batches(photos, monkeypatch, 2, 0, 8, 4)
