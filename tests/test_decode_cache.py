"""The run's decode cache: each large image decoded once for all models, the same features bit for bit."""
from __future__ import annotations

import numpy as np
from PIL import Image

from convnet_search.io.decode_cache import BUDGET_BYTES, DecodeCache
from convnet_search.io.images import load_rgb, load_rgb_reduced
from convnet_search.nets import extractor
from convnet_search.nets.preprocess import area_downscale

SIZES = ((224, 224), (299, 299))


def _photo(path, hw, seed):
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*hw, 3), dtype=np.uint8)).save(path, quality=92)
    return path


def _counting_load(monkeypatch) -> list:
    calls = []

    def load(path, *args, **kw):
        calls.append(path)
        return load_rgb_reduced(path, *args, **kw)

    monkeypatch.setattr(extractor, "load_rgb_reduced", load)
    return calls


def test_put_get_roundtrip_and_unreadable_entries_are_misses(tmp_path):
    cache = DecodeCache(tmp_path / "c", SIZES)
    a = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    assert cache.get("ab" * 32, SIZES[0]) is None
    cache.put("ab" * 32, SIZES[0], a)
    assert np.array_equal(cache.get("ab" * 32, SIZES[0]), a)
    assert cache.get("ab" * 32, SIZES[1]) is None  # keyed by size too
    assert not list(cache.folder.rglob("*.tmp"))  # written through a temp file, renamed
    cache.path("cd" * 32, SIZES[0]).parent.mkdir(parents=True)
    cache.path("cd" * 32, SIZES[0]).write_bytes(b"half a file")
    assert cache.get("cd" * 32, SIZES[0]) is None
    cache.remove()
    assert not (tmp_path / "c").exists()


def test_a_large_image_is_decoded_once_for_every_input_size(tmp_path, monkeypatch):
    big = _photo(tmp_path / "big.jpg", (1200, 1000), 1)
    calls = _counting_load(monkeypatch)
    cache = DecodeCache(tmp_path / "c", SIZES)
    got = [extractor.decode_step1(big, s, "ee" * 32, cache) for s in (SIZES[1], SIZES[0], SIZES[1])]
    assert len(calls) == 1
    full = load_rgb(big)
    for s, g in zip((SIZES[1], SIZES[0], SIZES[1]), got):
        assert g.shape[0] < full.shape[0]
        assert np.array_equal(g, area_downscale(full, s))  # the decoder's very pixels


def test_a_photo_decoded_at_its_dct_scale_is_decoded_once_for_every_size(tmp_path, monkeypatch):
    """4000×3000: 224 → k = 10, 299 → k = 8, both from one decode at 1/2. Each size's pixels are
    the same with or without the cache, whichever model comes first."""
    big = tmp_path / "big.jpg"
    y, x = np.mgrid[0:3000, 0:4000]
    Image.fromarray(np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8)).save(big, quality=90)
    plain = {s: extractor.decode_step1(big, s) for s in SIZES}
    assert plain[SIZES[0]].shape == (300, 400, 3) and plain[SIZES[1]].shape == (375, 500, 3)
    for first in SIZES:
        calls = _counting_load(monkeypatch)
        cache = DecodeCache(tmp_path / first[0].__str__(), SIZES)
        for s in (first, *SIZES, *SIZES):
            assert np.array_equal(extractor.decode_step1(big, s, "dd" * 32, cache), plain[s])
        assert len(calls) == 1


def test_small_images_are_not_stored(tmp_path, monkeypatch):
    small = _photo(tmp_path / "small.png", (300, 200), 2)
    calls = _counting_load(monkeypatch)
    cache = DecodeCache(tmp_path / "c", SIZES)
    for _ in range(2):
        assert np.array_equal(extractor.decode_step1(small, SIZES[0], "ff" * 32, cache), load_rgb(small))
    assert len(calls) == 2  # decoding a dataset-sized image beats reading a cache file
    assert not cache.folder.exists()


def test_two_models_decode_each_photo_once_with_the_same_features(tmp_path, monkeypatch):
    from convnet_search.config import load_config
    from convnet_search.io.datasets import load_dataset
    from convnet_search.io.store import ArrayStore
    from convnet_search.nets.models import get_spec
    from convnet_search.stages import extract

    data = tmp_path / "data"
    for c in ("a", "b"):
        (data / c).mkdir(parents=True)
        for i in range(3):
            _photo(data / c / f"{i}.jpg", (700 + 10 * i, 520), 10 * ord(c) + i)
    ds = load_dataset(data)
    toml = tmp_path / "c.toml"
    toml.write_text('models = ["mobilenet_025", "mobilenet_050"]\nnum_layers = 1\npooling = ["avg"]\n'
                    'weights = "none"\nbatch_size = 4\nbrowser_search = false\n')
    cfg = load_config(toml, {"datasets": [str(data)], "out": str(tmp_path / "o"), "work": str(tmp_path / "w")})
    calls = _counting_load(monkeypatch)
    cache = DecodeCache(tmp_path / "w" / extract.DECODE_CACHE_FOLDER, ((224, 224),))
    cached, plain = ArrayStore(tmp_path / "cached"), ArrayStore(tmp_path / "plain")
    for mid in cfg.models:
        extract.extract_features(ds, get_spec(mid), cfg, cached, decode_cache=cache)
    assert len(calls) == len(ds)  # once per photo for both models
    for mid in cfg.models:
        extract.extract_features(ds, get_spec(mid), cfg, plain)
    assert len(calls) == 3 * len(ds)
    for mid in cfg.models:
        a, b = cached.load(ds.id, mid), plain.load(ds.id, mid)
        assert a.meta["fingerprint"] == b.meta["fingerprint"]
        for key in b.arrays:
            assert a.arrays[key].tobytes() == b.arrays[key].tobytes(), (mid, key)


def test_the_stage_makes_a_cache_only_for_several_models_and_removes_it(tmp_path):
    from types import SimpleNamespace

    from convnet_search.stages import extract

    one = SimpleNamespace(cfg=SimpleNamespace(models=["mobilenet_025"]), work=tmp_path)
    assert extract.run_decode_cache(one) is None
    two = SimpleNamespace(cfg=SimpleNamespace(models=["mobilenet_025", "xception", "mobilenet"]), work=tmp_path)
    cache = extract.run_decode_cache(two)
    assert cache.sizes == ((224, 224), (299, 299))
    assert cache.root == tmp_path / extract.DECODE_CACHE_FOLDER and 0 < cache.budget <= BUDGET_BYTES
    assert extract.DECODE_CACHE_FOLDER in extract.STAGE.folders  # --force --only extract clears it


def test_past_its_budget_the_cache_stores_nothing_more(tmp_path, monkeypatch):
    big = [_photo(tmp_path / f"{i}.jpg", (1000, 900), 20 + i) for i in range(3)]
    one = area_downscale(load_rgb(big[0]), SIZES[0]).nbytes + area_downscale(load_rgb(big[0]), SIZES[1]).nbytes
    cache = DecodeCache(tmp_path / "c", SIZES, budget=one)  # room for the first image's two sizes
    calls = _counting_load(monkeypatch)
    for _ in range(2):
        for i, p in enumerate(big):
            assert np.array_equal(extractor.decode_step1(p, SIZES[0], f"{i:02d}" * 32, cache),
                                  area_downscale(load_rgb(p), SIZES[0]))
    assert len(calls) == 1 + 2 + 2  # the first image once, the two past the budget each time
    assert cache.written[0] == one


def test_the_extract_stage_decodes_each_photo_once_and_leaves_no_cache(tmp_path, monkeypatch):
    from convnet_search import pipeline
    from convnet_search.config import load_config
    from convnet_search.stages import extract

    data = tmp_path / "data"
    for c in ("a", "b"):
        (data / c).mkdir(parents=True)
        for i in range(8):
            _photo(data / c / f"{i}.jpg", (600, 470 + i), 100 * ord(c) + i)
    toml = tmp_path / "c.toml"
    toml.write_text('models = ["mobilenet_025", "mobilenet_050"]\nnum_layers = 1\npooling = ["avg"]\n'
                    'weights = "none"\nbatch_size = 8\nbrowser_search = false\n')
    cfg = load_config(toml, {"datasets": [str(data)], "out": str(tmp_path / "o"), "work": str(tmp_path / "w")})
    calls = _counting_load(monkeypatch)
    report = pipeline.run(cfg, only="extract")
    assert [e.status for e in report.extract] == ["extracted", "extracted"]
    assert sorted(map(str, calls)) == sorted(str(data / c / f"{i}.jpg") for c in "ab" for i in range(8))
    assert not (tmp_path / "w" / extract.DECODE_CACHE_FOLDER).exists()
