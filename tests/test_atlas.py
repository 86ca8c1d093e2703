"""Channel atlas and similarity-map math against brute-force references (convnet_search/atlas.py)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convnet_search.search import atlas


def brute_top(values: np.ndarray, top: int) -> np.ndarray:
    """[C, top] ids per channel by sorting (value desc, id asc) with Python's sort."""
    n, c = values.shape
    return np.array([[i for _, i in sorted((-float(values[i, ch]), i) for i in range(n))[:top]]
                     for ch in range(c)])


def random_outputs(rng, n: int, c: int, h: int = 3, w: int = 2, levels: int | None = None):
    """Values [N, C] (few distinct levels when `levels`, to force ties) and maps [N, h, w, C]."""
    vals = (rng.integers(0, levels, (n, c)).astype(np.float32) if levels
            else rng.normal(size=(n, c)).astype(np.float32))
    maps = rng.normal(size=(n, h, w, c)).astype(np.float32)
    return vals, maps


@pytest.mark.parametrize("levels", [None, 3])
def test_batch_atlas_is_the_brute_force_top(levels):
    rng = np.random.default_rng(1)
    vals, maps = random_outputs(rng, 20, 5, levels=levels)
    a = atlas.batch_atlas(100, vals, maps, top=9)
    expect = brute_top(vals, 9)
    assert np.array_equal(a.ids, expect + 100)
    for ch in range(5):
        assert np.array_equal(a.values[ch], vals[expect[ch], ch])
        assert np.array_equal(a.maps[ch], maps[expect[ch], :, :, ch])


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), c=st.integers(1, 4), top=st.integers(1, 9), cuts=st.lists(st.integers(1, 39), max_size=5),
       levels=st.sampled_from([None, 2, 4]), seed=st.integers(0, 2**16))
def test_merge_of_parts_equals_atlas_of_the_whole(n, c, top, cuts, levels, seed):
    """Any split into consecutive parts (shards, batches), merged in any order, gives the atlas of
    the whole dataset: the property that makes resumed and distributed runs identical."""
    rng = np.random.default_rng(seed)
    vals, maps = random_outputs(rng, n, c, levels=levels)
    bounds = sorted({0, n, *[x for x in cuts if x < n]})
    parts = [atlas.batch_atlas(lo, vals[lo:hi], maps[lo:hi], top) for lo, hi in zip(bounds, bounds[1:])]
    whole = atlas.batch_atlas(0, vals, maps, top)
    for merged in (atlas.merge(parts, top), atlas.merge(parts[::-1], top)):
        assert np.array_equal(merged.ids, whole.ids)
        assert np.array_equal(merged.values, whole.values)
        assert np.array_equal(merged.maps, whole.maps)
    assert np.array_equal(whole.ids, brute_top(vals, min(top, n)))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 60), c=st.integers(1, 5), batch=st.integers(1, 12), levels=st.sampled_from([None, 2, 5]),
       seed=st.integers(0, 2**16))
def test_shard_atlas_in_place_updates_equal_the_atlas_of_the_whole(n, c, batch, levels, seed):
    """ShardAtlas's hot path (in-place update once every channel holds T images) gives exactly the
    atlas of the whole, ties included."""
    rng = np.random.default_rng(seed)
    vals, maps = random_outputs(rng, n, c, levels=levels)
    acc = atlas.ShardAtlas(["l"], ["avg"])
    for lo in range(0, n, batch):
        acc.add(lo, {"avg/l": vals[lo:lo + batch], "atlas/l/map": maps[lo:lo + batch]})
    got, whole = acc.parts["l"], atlas.batch_atlas(0, vals, maps)
    assert np.array_equal(got.ids, whole.ids)
    assert np.array_equal(got.values, whole.values)
    assert np.array_equal(got.maps, whole.maps)


def test_ties_go_to_the_smaller_id():
    vals = np.zeros((12, 1), np.float32)
    vals[[3, 7, 11]] = 1.0
    a = atlas.batch_atlas(0, vals, np.zeros((12, 1, 1, 1), np.float32), top=5)
    assert a.ids[0].tolist() == [3, 7, 11, 0, 1]


def test_shard_atlas_and_merge_shards_without_avg_pooling():
    """A run without "avg" pooling carries the means itself; the stored atlas is the same."""
    rng = np.random.default_rng(2)
    vals, maps = random_outputs(rng, 30, 6)
    layers = ["l"]

    def shards(poolings):
        out = []
        for lo, hi in ((0, 13), (13, 30)):
            acc = atlas.ShardAtlas(layers, poolings)
            for b in range(lo, hi, 4):
                e = min(b + 4, hi)
                named = {"atlas/l/map": maps[b:e]}
                named["avg/l" if "avg" in poolings else "atlas/l/avg"] = vals[b:e]
                acc.add(b, named)
            out.append(acc.arrays())
        return out

    with_avg = atlas.merge_shards(shards(["avg", "max"]), {"avg/l": vals}, layers)
    without = atlas.merge_shards(shards(["max"]), {}, layers)
    assert with_avg.keys() == without.keys()
    for k in with_avg:
        assert np.array_equal(with_avg[k], without[k]), k
    assert np.array_equal(with_avg["atlas/l/ids"], brute_top(vals, 9))
    assert np.allclose(with_avg["atlas/l/selectivity"], vals.astype(np.float64).var(axis=0))


def test_selectivity_order_brute_force_with_ties():
    var = np.array([0.5, 2.0, 0.5, 3.0, 2.0])
    order = atlas.selectivity_order(var)
    assert order.tolist() == sorted(range(5), key=lambda i: (-var[i], i)) == [3, 1, 4, 0, 2]


def test_quantization_round_trip():
    rng = np.random.default_rng(3)
    maps = rng.normal(size=(4, 9, 5, 6)).astype(np.float32)
    maps[0, 0] = -1.0  # all ≤ 0: scale 0, all zero
    q, scale = atlas.quantize_maps(maps)
    assert q.dtype == np.uint8 and scale.shape == (4, 9)
    assert scale[0, 0] == 0 and not q[0, 0].any()
    assert np.array_equal(scale[1:, 1:], maps[1:, 1:].max(axis=(-2, -1)).clip(0))
    back = atlas.dequantize_maps(q, scale)
    pos = np.clip(maps, 0, None)
    assert np.all(np.abs(back - pos) <= scale[..., None, None] / 255 / 2 + 1e-6)
    # the maximum itself maps to 255 exactly
    assert (q.reshape(4, 9, -1).max(-1)[scale > 0] == 255).all()


@pytest.mark.parametrize("size,cells", [(112, 14), (56, 14), (17, 14), (147, 14), (8, 8), (3, 2)])
def test_pooling_matrix_equals_the_reference_pool(size, cells):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, size, size + 1, 3)).astype(np.float32)
    ph, pw = atlas.pooling_matrix(size, cells), atlas.pooling_matrix(size + 1, cells)
    via_matrix = np.einsum("yi,bijc,xj->byxc", ph, x, pw)
    assert np.allclose(via_matrix, atlas.adaptive_avg_pool(x, cells, cells), atol=1e-5)
    assert atlas.map_size(size, size + 1) == (min(size, 14), min(size + 1, 14))


def test_similarity_map_brute_force():
    rng = np.random.default_rng(5)
    f = rng.normal(size=(4, 3, 7))
    f[1, 2] = 0.0  # a zero position: similarity 0
    v = f.mean(axis=(0, 1))
    s = atlas.similarity_map(f, v)
    for i in range(4):
        for j in range(3):
            a = f[i, j]
            na, nv = np.sqrt(sum(x * x for x in a)), np.sqrt(sum(x * x for x in v))
            expect = 0.0 if na == 0 or nv == 0 else sum(x * y for x, y in zip(a, v)) / (na * nv)
            assert s[i, j] == pytest.approx(expect, abs=1e-12)
    assert not atlas.similarity_map(f, np.zeros(7)).any()


def test_keras_small_map_matches_the_reference():
    """The extractor's in-graph pooling (AveragePooling2D or the matrix product) equals the
    NumPy reference, for a divisible and a non-divisible size."""
    keras = pytest.importorskip("keras")
    from convnet_search.nets.models import LayerInfo, _atlas_outputs

    rng = np.random.default_rng(6)
    for hw in ((28, 28), (17, 15), (7, 7)):
        x = rng.normal(size=(2, *hw, 3)).astype(np.float32)
        inp = keras.Input((*hw, 3))
        info = LayerInfo("l", 1, "ReLU", (*hw, 3), 0, 0.5)
        model = keras.Model(inp, _atlas_outputs([info], [inp], ["max"]))
        small, avg = (np.asarray(t) for t in model(x))
        assert np.allclose(small, atlas.adaptive_avg_pool(x, *atlas.map_size(*hw)), atol=1e-5)
        assert np.allclose(avg, x.mean(axis=(1, 2)), atol=1e-5)


def read_atlas_files(root, d: str, model: str, layer: str, id_dtype: str):
    """A reader written from docs/bundle.md alone, everything by selectivity rank:
    (index, selectivity [C], channel [C], ids [C, T], values, scales, maps uint8)."""
    import json

    base = root / "datasets" / d / model / layer / "atlas"
    index = json.loads((base / "index.json").read_text())
    c, t, (h, w), block, page = (index[k] for k in ("channels", "top", "map_size", "block", "page"))
    assert not (base / "top.bin").exists()
    sel, chan, ids = [], [], []
    size = np.dtype(id_dtype).itemsize
    for p in range((c + page - 1) // page):
        raw = (base / "rows" / f"{p}.bin").read_bytes()
        n = min(page, c - p * page)
        assert len(raw) == n * (8 + t * size)
        sel.append(np.frombuffer(raw, "<f4", n))
        chan.append(np.frombuffer(raw, "<u4", n, 4 * n))
        ids.append(np.frombuffer(raw, np.dtype(id_dtype).newbyteorder("<"), n * t, 8 * n).reshape(n, t))
    values, scales, maps = [], [], []
    for b in range((c + block - 1) // block):
        raw = (base / "maps" / f"{b}.bin").read_bytes()
        n = min(block, c - b * block)
        assert len(raw) == n * t * (8 + h * w)
        values.append(np.frombuffer(raw, "<f4", n * t).reshape(n, t))
        scales.append(np.frombuffer(raw, "<f4", n * t, 4 * n * t).reshape(n, t))
        maps.append(np.frombuffer(raw, np.uint8, offset=8 * n * t).reshape(n, t, h, w))
    return (index, np.concatenate(sel), np.concatenate(chan), np.concatenate(ids),
            np.concatenate(values), np.concatenate(scales), np.concatenate(maps))


def test_bundle_atlas_files_round_trip(tmp_path):
    """bundle._write_atlas writes what docs/bundle.md says: read back with the documented layout,
    the files hold the stored atlas (ids, values, quantized maps), all in selectivity order."""
    from types import SimpleNamespace

    from convnet_search.stages import bundle
    from convnet_search.io.store import StoredArrays

    rng = np.random.default_rng(7)
    n, c = 40, 150  # 150 channels: partial last rows page (64, 64, 22) and maps block (…, 6)
    vals, maps = random_outputs(rng, n, c, h=5, w=4, levels=6)
    vals[:, 3] = vals[:, 7]  # a selectivity tie: the smaller channel index ranks first
    acc = atlas.ShardAtlas(["l"], ["avg"])
    acc.add(0, {"avg/l": vals, "atlas/l/map": maps})
    stored = atlas.merge_shards([acc.arrays()], {"avg/l": vals}, ["l"])
    feats = StoredArrays({"atlas": True, "layers": [{"name": "l"}]}, stored)
    res = SimpleNamespace(dataset=SimpleNamespace(id="d"), features={"m": feats})
    bundle._write_atlas(tmp_path, res, np.dtype("<u2"))
    index, sel, chan, ids, values, scales, q = read_atlas_files(tmp_path, "d", "m", "l", "uint16")
    assert index == {"channels": c, "top": 9, "map_size": [5, 4], "block": 16, "page": 64}
    var = vals.astype(np.float64).var(axis=0)
    order = sorted(range(c), key=lambda i: (-var[i], i))
    assert chan.tolist() == order
    assert order.index(3) < order.index(7)
    assert np.array_equal(sel, var[order].astype(np.float32))
    by_channel = brute_top(vals, 9)
    assert np.array_equal(ids, by_channel[order])
    assert np.array_equal(values, np.take_along_axis(vals.T, by_channel.astype(int), 1)[order])
    expect_maps = np.stack([maps[by_channel[ch], :, :, ch] for ch in order])
    assert np.array_equal(scales, expect_maps.max(axis=(-2, -1)).clip(0))
    assert np.allclose(atlas.dequantize_maps(q, scales), expect_maps.clip(0), atol=scales.max() / 255)


def test_atlas_layout_is_in_the_stored_fingerprint(tmp_path):
    """A bundle written with an older atlas layout (same inputs) is not up to date: it is rewritten."""
    from convnet_search.stages import bundle
    from convnet_search.io.workspace import BUNDLE_MARKER

    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / BUNDLE_MARKER).write_text("{}")
    (tmp_path / bundle.FINGERPRINT_FILE).write_text("abc")  # as the format-1 writer stored it
    assert not bundle.bundle_is_current(tmp_path, "abc")
    (tmp_path / bundle.FINGERPRINT_FILE).write_text(bundle._stored_fingerprint("abc"))
    assert bundle.bundle_is_current(tmp_path, "abc")
    assert not bundle.bundle_is_current(tmp_path, "abd")


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 60), c=st.integers(1, 4), shard=st.integers(1, 15), levels=st.sampled_from([None, 2, 5]),
       seed=st.integers(0, 2**16))
def test_extract_merges_shards_as_read_into_the_atlas_of_the_whole(n, c, shard, levels, seed):
    """ShardsAtlas as extract uses it (each shard merged as it is read, ids local to the shard, so
    memory holds one shard's maps) stores exactly what one merge of every shard gives, ties included."""
    rng = np.random.default_rng(seed)
    vals, maps = random_outputs(rng, n, c, levels=levels)
    fresh, shards = atlas.ShardsAtlas(["l"]), []
    for lo in range(0, n, shard):
        acc = atlas.ShardAtlas(["l"], ["avg"])
        acc.add(0, {"avg/l": vals[lo:lo + shard], "atlas/l/map": maps[lo:lo + shard]})
        fresh.add(lo, acc.arrays())
        shards.append({k: (v + lo if k.endswith("/ids") else v) for k, v in acc.arrays().items()})
    got = fresh.stored({"avg/l": vals})
    want = {key: value for layer in ["l"] for key, value in _one_merge(shards, vals, layer).items()}
    assert got.keys() == want.keys()
    for key in want:
        assert np.array_equal(got[key], want[key]), key
    whole = atlas.batch_atlas(0, vals, maps)
    assert np.array_equal(got["atlas/l/ids"], whole.ids.astype(np.uint32))


def _one_merge(shards, vals, layer):
    """The reference: every shard's partial atlas merged at once (ids already dataset rows)."""
    whole = atlas.merge([atlas.PartialAtlas.from_arrays(s, f"atlas/{layer}") for s in shards])
    return {f"atlas/{layer}/ids": whole.ids.astype(np.uint32), f"atlas/{layer}/values": whole.values,
            f"atlas/{layer}/maps": whole.maps, f"atlas/{layer}/selectivity": atlas.selectivity(vals)}
