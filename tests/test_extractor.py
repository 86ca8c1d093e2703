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

    def broken(path, *args, **kw):
        raise ImageError(path, "boom")

    monkeypatch.setattr(extractor, "load_rgb_reduced", broken)
    with pytest.raises(Exception, match="boom"):
        _batches(photos, monkeypatch, 2, 0, 8, 4)


def test_an_image_moved_away_or_overwritten_during_extraction_is_picked_up_not_a_traceback(
        tmp_path, monkeypatch, capsys):
    """Issue 19 row 2: deleting one image of a folder after 2 shards ended the run with exit 1 and
    TensorFlow's traceback. Now the reader notices (missing file, or bytes that no longer match the
    scan's sha256), the run lists the folder again and finishes with what is there, equal to a
    clean run over the final folder."""
    import os
    import shutil
    import warnings

    from PIL import Image

    from convnet_search import cli
    from convnet_search.distribute import local
    from test_cli import add_plain_images, read_bundle

    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main() replaces it
    data = tmp_path / "photos"
    add_plain_images(data, 8, ["a", "b", "c"])
    victim, swapped = data / "c" / "plain_05.png", data / "b" / "plain_06.png"
    (tmp_path / "c.toml").write_text("shard_size = 3\n")
    real, calls = local.extract_shard, []

    def churn(ex, task, on_progress=None):
        calls.append(task.index)
        if len(calls) == 2:  # after two shards: one photo moved away, one overwritten (same size, mtime)
            victim.unlink()
            st = swapped.stat()
            Image.fromarray(np.full((48, 48, 3), 200, np.uint8)).save(tmp_path / "x.png")
            os.replace(tmp_path / "x.png", swapped)
            os.utime(swapped, ns=(st.st_atime_ns, st.st_mtime_ns))
        return real(ex, task, on_progress)

    monkeypatch.setattr(local, "extract_shard", churn)
    args = ["precompute", "--config", str(tmp_path / "c.toml"), "--models", "mobilenet_025", "--weights",
            "none", "--no-browser-search", "--num-layers", "2"]
    code = cli.main([*args, "--dataset", str(data), "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Traceback" not in err
    assert "images changed on disk during the run" in err and "listing the dataset folders again" in err
    monkeypatch.setattr(local, "extract_shard", real)
    clean = tmp_path / "clean"
    shutil.copytree(data, clean / "photos")
    code = cli.main([*args, "--dataset", str(clean / "photos"), "--work", str(clean / "w"), "--out", str(clean / "o")])
    assert code == 0, capsys.readouterr().err
    assert read_bundle(tmp_path / "o") == read_bundle(clean / "o")
