"""Curation benchmark: near duplicates, label mistakes and outliers from the engine's stored-neighbour math.

Seeded (SEED). MobileNet α 0.25 (`mobilenet_025`) with its real ImageNet weights
(../shared/real/weights/keras_home), its default layers × poolings POOLINGS × metrics METRICS; features
through the engine's multi-output extractor and reader (as bench_quality), neighbours from
`neighbors.top_k_neighbors` (k = RunConfig's 15), curation from `search/curate.py` (what the curate
stage stores). Images are read in place; the transformed copies go to a temporary folder.

- duplicates: per set (the bundled real-photo set caltech10 and ../shared/real/tinyimagenet20), a
  seeded 10 % of the images each get one transformed copy, the 8 TRANSFORMS dealt in turn (so each
  transform has 1/8 of the copies), saved as PNG (JPEG q40 as JPEG). Truth: an original and its
  copies are one family; pairs within a family are the true pairs. The sets hold near duplicates of
  their own (caltech10: one photo recoloured, cropped, re-shot); those found by review are listed in
  KNOWN_FILE and join their families for precision (a predicted pair within a family is correct),
  while recall is measured on the added copies only, the one unbiased sample (`--review` draws the
  sheets the review looked at). The figures on the added copies' truth alone are kept beside
  (`precision_added_only`). Predicted pairs: every pair within a group (connected components). Pair
  precision / recall overall and per transform (an original–copy pair of that transform), per
  configuration, each with its own measured threshold (search/curate.py's rule, chosen before this
  benchmark) and with the other set's threshold of the same configuration (transfer). Anchor: PHash
  as imagededup computes it (bench/phash.py, checked bit for bit by bench/phash_parity.py) at
  imagededup's default Hamming threshold 10, grouped by the same components.
- label mistakes: tinyimagenet20's labels with a seeded 5 % flipped to another class (and caltech10's
  beside, so that no choice rests on one set); precision of our top-K suspects (K = flipped), as the
  curate stage ranks them (search/curate.label_mistakes: a cross-validated classifier on the
  best-agreeing configuration's vectors), vs cleanlab's find_label_issues (ranked by
  self-confidence) on the same probabilities (cleanlab when importable; else reported as missing);
  the same for the variants measured beside it (the neighbour votes of every configuration, which
  ranked before, their better half, agreement² weights, distance-weighted votes).
- outliers: caltech10 plus 20 seeded images of the shapes set; recall of those 20 in the top 40
  by uniqueness, per configuration.

The work runs in a child process (`--worker`), as bench_quality: Keras reads KERAS_HOME at import.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
for _p in (str(ROOT), str(BENCH_DIR)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from bench_quality import ENV_REAL, MODEL, real_dir, real_weights_env  # noqa: E402  (the same real data and model)
from worker_process import run_worker, section_main, worker_args  # noqa: E402

SEED = 0
DUP_FRACTION = 0.10
FLIP_FRACTION = 0.05
OUTLIERS = 20
OUTLIER_TOP = 40
POOLINGS = ("avg", "max", "gem", "grid3", "mgrid3")  # avg and grid3: the default run's; mgrid3: grid3 blind to mirroring
METRICS = ("cosine", "euclidean")  # sqeuclidean: the same groups as euclidean (the rule sees ratios)
TRANSFORMS = ("jpeg40", "resize50", "crop80", "flip", "bright25", "rot5", "text", "grey")
QUICK_PER_CLASS = 6
KNOWN_FILE = BENCH_DIR / "curate_known_duplicates.tsv"
REVIEW_MIN_CONFIGS = {"caltech10": 2, "tinyimagenet20": 4}  # how often a pair is joined to be reviewed


def caltech_dir() -> Path:
    """The bundled real-photo set: datasets/caltech10 in the repo, else demo/caltech10 beside the real folder."""
    here = ROOT / "datasets" / "caltech10"
    return here if here.is_dir() else real_dir().parent / "demo" / "caltech10"


def skip_reason() -> str | None:
    real = real_dir()
    for p in (real / "tinyimagenet20", real / "weights" / "keras_home" / "models", caltech_dir()):
        if not p.is_dir():
            return (f"{p} not found (real photos and ImageNet weights; set {ENV_REAL} to the folder "
                    "holding tinyimagenet20/ and weights/); section 'curate' skipped")
    return None


def run(quick: bool) -> dict:
    return run_worker(__file__, "curate", real_weights_env(), quick, skip=skip_reason())


# ---------------------------------------------------------------------------------------------
# Worker
# ---------------------------------------------------------------------------------------------
def _log(msg: str) -> None:
    print(f"[curate] {msg}", file=sys.stderr, flush=True)


def transform(img, name: str):
    """One transformed copy (PIL RGB image) -> (image, save format)."""
    from PIL import Image, ImageDraw, ImageEnhance, ImageFont

    w, h = img.size
    if name == "jpeg40":
        return img, ("JPEG", {"quality": 40})
    if name == "resize50":
        img = img.resize((max(1, w // 2), max(1, h // 2)), Image.LANCZOS)
    elif name == "crop80":
        dw, dh = round(w * 0.1), round(h * 0.1)
        img = img.crop((dw, dh, w - dw, h - dh))
    elif name == "flip":
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    elif name == "bright25":
        img = ImageEnhance.Brightness(img).enhance(1.25)
    elif name == "rot5":
        img = img.rotate(5, resample=Image.BICUBIC)
    elif name == "text":
        img = img.copy()
        size = max(10, h // 8)
        font = ImageFont.load_default(size=size)
        ImageDraw.Draw(img).text((w // 20, h - 2 * size), "© sample 2026", fill=(255, 255, 255), font=font,
                                 stroke_width=max(1, size // 12), stroke_fill=(0, 0, 0))
    elif name == "grey":
        img = img.convert("L").convert("RGB")
    return img, ("PNG", {})


def make_copies(paths: list[Path], tmp: Path, rng) -> tuple[list[Path], list[int], list[str]]:
    """One copy of each of a seeded DUP_FRACTION of `paths`: (copy paths, original index, transform).
    A collection where a tenth of the images have a near copy; the threshold rule assumes copies are
    a minority (under a quarter of the images), as in any collection worth searching."""
    from PIL import Image

    n = len(paths)
    chosen = sorted(rng.choice(n, size=max(1, round(DUP_FRACTION * n)), replace=False).tolist())
    out, orig, kinds = [], [], []
    for j, i in enumerate(rng.permutation(chosen).tolist()):  # transforms dealt in turn, in seeded order
        t = TRANSFORMS[j % len(TRANSFORMS)]
        with Image.open(paths[i]) as im:
            img, (fmt, kw) = transform(im.convert("RGB"), t)
        p = tmp / f"{i:05d}_{t}.{'jpg' if fmt == 'JPEG' else 'png'}"
        img.save(p, fmt, **kw)
        out.append(p), orig.append(i), kinds.append(t)
    return out, orig, kinds


def components(n: int, a, b):
    import numpy as np

    from convnet_search.search.curate import _components

    return _components(n, np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64))


def pair_scores(root, family, kinds_of, reviewed=None) -> dict:
    """Pair precision/recall of predicted components `root`, overall and per transform (pairs
    original–copy of that transform; precision over predicted pairs touching a copy of that
    transform). Recall over the added copies' families (`family`); precision against `reviewed`
    (those families joined with the set's own known near duplicates; `family` when None), and
    against `family` alone beside it (`precision_added_only`)."""
    reviewed = family if reviewed is None else reviewed
    n = len(root)
    pred = _pairs_of(root)
    true = _pairs_of(family)
    ok = _pairs_of(reviewed)
    row = {"pairs_pred": len(pred), "pairs_true": len(true),
           "precision": len(pred & ok) / len(pred) if pred else 1.0, "recall": len(pred & true) / len(true) if true else 1.0,
           "precision_added_only": len(pred & true) / len(pred) if pred else 1.0}
    for t in TRANSFORMS:
        copies = [i for i in range(n) if kinds_of[i] == t]
        t_true = {(min(family[i], i), max(family[i], i)) for i in copies}
        t_pred = {p for p in pred if kinds_of[p[0]] == t or kinds_of[p[1]] == t}
        row[f"recall_{t}"] = len(t_true & pred) / len(t_true) if t_true else None
        row[f"precision_{t}"] = len(t_pred & ok) / len(t_pred) if t_pred else 1.0
    return row


def known_verdicts(name: str) -> dict[frozenset, str]:
    """{image_a, image_b} -> kind (copy, edit, crop, reshot or different) of the set's pairs in KNOWN_FILE."""
    out = {}
    for line in KNOWN_FILE.read_text(encoding="utf-8").splitlines():
        cells = line.split("\t")
        if not line.startswith("#") and len(cells) >= 4 and cells[0] == name:
            out[frozenset(cells[1:3])] = cells[3]
    return out


def known_pairs(name: str, files: list[str]) -> list[tuple[int, int]]:
    """The set's own near duplicates listed in KNOWN_FILE (every kind but "different"), as image index
    pairs (a listed file that is not in the set, as in --quick's subset, is left out)."""
    index = {f: i for i, f in enumerate(files)}
    return [(index[a], index[b]) for (a, b), kind in ((sorted(pair), kind) for pair, kind in known_verdicts(name).items())
            if kind != "different" and a in index and b in index]


def reviewed_families(family, pairs: list[tuple[int, int]]):
    """Components of the added copies' families joined by the known pairs."""
    import numpy as np

    n = len(family)
    a = np.concatenate([np.arange(n), [p[0] for p in pairs]]).astype(np.int64)
    b = np.concatenate([np.asarray(family), [p[1] for p in pairs]]).astype(np.int64)
    return components(n, a, b)


def _pairs_of(root) -> set[tuple[int, int]]:
    from collections import defaultdict

    groups = defaultdict(list)
    for i, r in enumerate(root):
        groups[int(r)].append(i)
    return {(a, b) for g in groups.values() if len(g) > 1 for x, a in enumerate(g) for b in g[x + 1:]}


def neighbour_lists(features: dict, k: int) -> dict:
    """(pooling, layer, metric) -> (ids, dists) of every configuration."""
    from convnet_search.search.neighbors import top_k_neighbors

    out = {}
    for p, by_layer in features.items():
        for layer, x in by_layer.items():
            for metric in METRICS:
                out[(p, layer, metric)] = top_k_neighbors(x, k, metric)
    return out


def extract(paths: list[Path], spec, batch_size: int) -> dict:
    """features[pooling][layer] float32 [N, dim]: one multi-output forward pass of the default layers
    (as bench_quality.extract_all, for POOLINGS only), through the engine's reader."""
    import numpy as np

    from convnet_search.nets.extractor import image_batches
    from convnet_search.nets.models import build_feature_extractor, output_keys
    from convnet_search.runtime import import_tensorflow

    tf = import_tensorflow()
    model, infos, base = build_feature_extractor(spec, None, weights="imagenet", pooling=list(POOLINGS), seed=SEED)
    if base["weights"] != "imagenet":
        raise RuntimeError(f"expected ImageNet weights, got {base['weights_detail']}")
    infer = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    keys = output_keys(infos, list(POOLINGS))
    parts = {key: [] for key in keys}
    for batch in image_batches(list(paths), spec.input_size, batch_size):
        outs = infer(batch)
        for key, o in zip(keys, outs if isinstance(outs, (list, tuple)) else [outs]):
            parts[key].append(o.numpy().astype(np.float32, copy=False))
    features: dict = {}
    for key, v in parts.items():
        pooling, layer = key.split("/", 1)
        features.setdefault(pooling, {})[layer] = np.ascontiguousarray(np.concatenate(v))
    return features


def cached_features(name: str, what: list, compute) -> dict:
    """features[pooling][layer], kept in bench/out/ keyed by the images (the dataset's files and the
    copies' names, which carry the original and the transform), the model, the poolings and the code
    of transform() and extract(), so the curation math can be re-run without a forward pass (as
    bench_judgements.cached_rows)."""
    import hashlib
    import inspect

    import numpy as np

    key = hashlib.sha256(json.dumps([MODEL, list(POOLINGS), SEED, DUP_FRACTION, list(TRANSFORMS), what,
                                     inspect.getsource(transform), inspect.getsource(extract)]
                                    ).encode()).hexdigest()[:16]
    path = BENCH_DIR / "out" / f"{name}-{key}.npz"
    if path.exists():
        z = np.load(path)
        feats: dict = {}
        for k in z.files:
            pooling, layer = k.split("/", 1)
            feats.setdefault(pooling, {})[layer] = z[k]
        return feats
    feats = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{f"{p}/{layer}": x for p, by_layer in feats.items() for layer, x in by_layer.items()})
    return feats


def _subset(ds, per_class: int):
    from bench_quality import _subset as sub

    return sub(ds, per_class)


def duplicates_part(name: str, ds, spec, k: int, batch: int, rng, tmp: Path) -> tuple[list[dict], dict, dict]:
    """Rows per configuration (and PHash) for one set, the thresholds chosen, the neighbour lists."""
    import numpy as np

    from phash import hamming_pairs, phash_bits
    from convnet_search.search.curate import duplicate_groups, duplicate_threshold

    folder = tmp / name
    folder.mkdir()
    paths = [ds.path(i) for i in range(len(ds))]
    copies, orig, kinds = make_copies(paths, folder, rng)
    allp = paths + copies
    n0, n = len(paths), len(allp)
    family = np.arange(n)
    family[n0:] = orig
    kinds_of = [""] * n0 + kinds
    reviewed = reviewed_families(family, known_pairs(name, list(ds.files)))
    _log(f"{name}: {n0} images + {len(copies)} copies of {len(set(orig))}; extracting …")
    t = time.perf_counter()
    feats = cached_features(f"curate-{name}", [ds.files, [c.name for c in copies]],
                            lambda: extract(allp, spec, batch))
    _log(f"{name}: features {time.perf_counter() - t:.0f}s; neighbours …")
    lists = neighbour_lists(feats, k)
    rows, thresholds, groups = [], {}, {}
    for (p, layer, metric), (ids, dists) in lists.items():
        th = duplicate_threshold(dists)
        thresholds[(p, layer, metric)] = th
        g = groups[(p, layer, metric)] = duplicate_groups(ids, dists, th)
        root = np.arange(n)
        for members in g.groups():
            root[members] = members[0]
        rows.append({"set": name, "method": "ours", "pooling": p, "layer": layer, "metric": metric,
                     "threshold": th, **pair_scores(root, family, kinds_of, reviewed)})
    bits = np.stack([phash_bits(Path(q)) for q in allp])
    a, b = hamming_pairs(bits)
    rows.append({"set": name, "method": "phash", "pooling": "", "layer": "PHash (imagededup, ≤ 10)", "metric": "hamming",
                 "threshold": 10, **pair_scores(components(n, a, b), family, kinds_of, reviewed)})
    return rows, thresholds, {"lists": lists, "n0": n0, "family": family, "kinds_of": kinds_of, "features": feats,
                              "reviewed": reviewed, "files": list(ds.files), "groups": groups}


def review_candidates(name: str, ctx: dict) -> list[dict]:
    """Original–original pairs joined (in one group) by at least REVIEW_MIN_CONFIGS[name] of the
    configurations, most often first, each with its verdict in KNOWN_FILE (None: not reviewed yet)."""
    from collections import Counter

    files = ctx["files"]
    count: Counter = Counter()
    for g in ctx["groups"].values():
        for members in g.groups():
            originals = sorted(int(ctx["family"][m]) for m in members)
            count.update({(a, b) for x, a in enumerate(originals) for b in originals[x + 1:] if a != b})
    verdict = known_verdicts(name)
    least = REVIEW_MIN_CONFIGS.get(name, 2)
    return [{"a": files[a], "b": files[b], "configurations": c, "verdict": verdict.get(frozenset((files[a], files[b])))}
            for (a, b), c in sorted(count.items(), key=lambda kv: (-kv[1], kv[0])) if c >= least]


def transfer_rows(name: str, other_thresholds: dict, ctx: dict, other: str) -> list[dict]:
    """The same configurations with the other set's measured thresholds."""
    import numpy as np

    from convnet_search.search.curate import duplicate_groups

    rows = []
    n = len(ctx["family"])
    for key, (ids, dists) in ctx["lists"].items():
        if key not in other_thresholds:
            continue
        g = duplicate_groups(ids, dists, other_thresholds[key])
        root = np.arange(n)
        for members in g.groups():
            root[members] = members[0]
        s = pair_scores(root, ctx["family"], ctx["kinds_of"], ctx["reviewed"])
        rows.append({"set": name, "threshold_from": other, "pooling": key[0], "layer": key[1], "metric": key[2],
                     "threshold": other_thresholds[key], "precision": s["precision"], "recall": s["recall"]})
    return rows


def _precision_at_k(ranked, truth: set, k: int) -> float:
    return len(truth & set(int(i) for i in ranked[:k])) / k


def _variant_probs(ids_all: list, dists_all: list, noisy, classes: int) -> dict:
    """Label probabilities of the variants measured beside ours (not adopted: bench/README.md, curate):
    the neighbour votes of every configuration weighted by agreement (search/curate.label_probabilities,
    which ranked before the classifier), the votes of the better half of the configurations only (agreement ≥ its median), weights
    agreement² (sharper towards the better configurations), votes weighted by exp(−(d/d_k)²)
    (distance-weighted, d_k the k-th distance)."""
    import numpy as np

    from convnet_search.search.curate import agreement_weight, label_probabilities, label_votes

    votes = [label_votes(ids, noisy, classes) for ids in ids_all]
    w = np.array([agreement_weight(v, noisy) for v in votes])

    def mix(weights, vs):
        p = sum(wi * v for wi, v in zip(weights / weights.sum(), vs))
        p[p.sum(axis=1) == 0] = 1.0 / classes
        return p / p.sum(axis=1, keepdims=True)

    dist_votes = []
    for ids, d in zip(ids_all, dists_all):
        d = np.maximum(np.asarray(d, dtype=np.float64), 0.0)
        wt = np.exp(-(d / np.maximum(d[:, -1:], 1e-12)) ** 2)
        counts = np.zeros((len(ids), classes))
        np.add.at(counts, (np.repeat(np.arange(len(ids)), ids.shape[1]), noisy[ids].ravel()), wt.ravel())
        dist_votes.append(counts / counts.sum(axis=1, keepdims=True))
    return {"neighbour_votes": label_probabilities(ids_all, noisy, classes),
            "better_half": mix(np.where(w >= np.median(w), w, 0.0), votes), "agreement_squared": mix(w ** 2, votes),
            "distance_weighted": mix(w, dist_votes)}


def label_part(ds, ctx: dict, rng) -> dict:
    """Flip FLIP_FRACTION of the labels; the top-K precision of the curate stage's ranking
    (search/curate.label_mistakes) and cleanlab's on the same probabilities, and the same for the
    variants measured beside it."""
    import numpy as np

    from convnet_search.search.curate import best_agreeing, classifier_probabilities, label_suspects
    from convnet_search.search.neighbors import top_k_neighbors

    n0 = ctx["n0"]
    labels = np.asarray(ds.labels[:n0], dtype=np.int64)
    classes = len(ds.classes)
    flip = rng.choice(n0, size=max(1, round(FLIP_FRACTION * n0)), replace=False)
    noisy = labels.copy()
    noisy[flip] = (labels[flip] + rng.integers(1, classes, size=len(flip))) % classes
    # the originals' own neighbour lists: the copies are left out (search again on the originals)
    keys, ids_all, dists_all = [], [], []
    for (p, layer, metric), _ in ctx["lists"].items():
        ids, dists = top_k_neighbors(ctx["features"][p][layer][:n0], ctx["k"], metric)
        keys.append((p, layer, metric)), ids_all.append(ids), dists_all.append(dists)
    best = best_agreeing(ids_all, noisy, classes)  # as label_mistakes chooses
    p, layer, metric = keys[best]
    probs = classifier_probabilities(ctx["features"][p][layer][:n0], noisy, classes, metric == "cosine")
    s = label_suspects(probs, noisy)
    k_flip = len(flip)
    truth = set(flip.tolist())
    out = {"images": n0, "flipped": k_flip, "configurations": len(ids_all),
           "classifier_configuration": f"{layer} · {p} · {metric}",
           "ours_precision_at_k": _precision_at_k(s.ids, truth, k_flip), "ours_suspects": int(len(s.ids))}
    try:
        import cleanlab
        from cleanlab.filter import find_label_issues
    except ImportError as exc:
        find_label_issues = None
        out["cleanlab"] = f"not installed ({exc}); pip install -e '.[bench]'"
    if find_label_issues is not None:
        issues = find_label_issues(noisy, probs, return_indices_ranked_by="self_confidence")
        out["cleanlab_precision_at_k"] = _precision_at_k(issues, truth, k_flip)
        out["cleanlab_issues"] = int(len(issues))
        out["cleanlab_recall_all_issues"] = len(truth & set(issues.tolist())) / k_flip
        out["cleanlab_version"] = cleanlab.__version__
    out["variants"] = {}
    for name, pv in _variant_probs(ids_all, dists_all, noisy, classes).items():
        row = {"precision_at_k": _precision_at_k(label_suspects(pv, noisy).ids, truth, k_flip)}
        if find_label_issues is not None:
            row["cleanlab_precision_at_k"] = _precision_at_k(
                find_label_issues(noisy, pv, return_indices_ranked_by="self_confidence"), truth, k_flip)
        out["variants"][name] = row
    return out


def outlier_part(cal_ds, cal_feats: dict, n0: int, spec, k: int, batch: int, rng) -> list[dict]:
    import numpy as np

    from convnet_search.io.datasets import load_dataset
    from convnet_search.search.curate import outlier_order, uniqueness

    shapes = load_dataset("shapes")
    pick = sorted(rng.choice(len(shapes), size=OUTLIERS, replace=False).tolist())
    extra = cached_features("curate-shapes", [shapes.files[i] for i in pick],
                            lambda: extract([shapes.path(i) for i in pick], spec, batch))
    rows = []
    from convnet_search.search.neighbors import top_k_neighbors

    for p, by_layer in cal_feats.items():
        for layer, x in by_layer.items():
            both = np.vstack([x[:n0], extra[p][layer]])
            for metric in METRICS:
                _, dists = top_k_neighbors(both, k, metric)
                top = outlier_order(uniqueness(dists))[:OUTLIER_TOP]
                rows.append({"pooling": p, "layer": layer, "metric": metric,
                             "recall_at_40": float(np.mean(top >= n0) * OUTLIER_TOP / OUTLIERS)})
    return rows


def worker(quick: bool) -> dict:
    import numpy as np

    from convnet_search.config import RunConfig
    from convnet_search.io.datasets import load_dataset
    from convnet_search.nets.models import get_spec

    t0 = time.perf_counter()
    cfg = RunConfig()
    spec = get_spec(MODEL)
    sets = {"caltech10": load_dataset(caltech_dir()), "tinyimagenet20": load_dataset(real_dir() / "tinyimagenet20")}
    if quick:
        sets = {k: _subset(v, QUICK_PER_CLASS) for k, v in sets.items()}
    dup_rows, thresholds, ctxs = [], {}, {}
    with tempfile.TemporaryDirectory(prefix="curate-copies-") as tmp:
        for i, (name, ds) in enumerate(sets.items()):
            rng = np.random.default_rng([SEED, i])
            rows, thresholds[name], ctxs[name] = duplicates_part(name, ds, spec, cfg.k, cfg.batch_size, rng, Path(tmp))
            dup_rows += rows
    names = list(sets)
    review = {name: review_candidates(name, ctxs[name]) for name in names}
    transfer = transfer_rows(names[0], thresholds[names[1]], ctxs[names[0]], names[1]) + \
        transfer_rows(names[1], thresholds[names[0]], ctxs[names[1]], names[0])
    meta_tr = {"transforms": list(TRANSFORMS), "dup_fraction": DUP_FRACTION}
    _log("label mistakes …")
    labels = {}
    # tinyimagenet20 (the issue's set) with the seed of its first figures; caltech10 beside it, so
    # that a choice is never made on one set
    for name, seed in (("tinyimagenet20", [SEED, 10]), ("caltech10", [SEED, 11])):
        ctxs[name]["k"] = cfg.k
        labels[name] = label_part(sets[name], ctxs[name], np.random.default_rng(seed))
    _log("outliers …")
    outliers = outlier_part(sets["caltech10"], ctxs["caltech10"]["features"], ctxs["caltech10"]["n0"], spec, cfg.k,
                            cfg.batch_size, np.random.default_rng([SEED, 20]))
    meta = {"model": MODEL, "seed": SEED, "quick": quick, "k": cfg.k, "poolings": list(POOLINGS),
            "metrics": list(METRICS), "sets": {k: str(v.root) for k, v in sets.items()}, **meta_tr,
            "transfer": transfer, "labels": labels, "outliers": outliers, "review": review,
            "seconds": round(time.perf_counter() - t0, 1)}
    return {"rows": dup_rows, "meta": meta}


def _cell(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def print_report(console, rows: list[dict], meta: dict) -> None:
    from rich.table import Table

    for name in meta["sets"]:
        mine = [r for r in rows if r["set"] == name]
        ours = sorted((r for r in mine if r["method"] == "ours"),
                      key=lambda r: -(2 * r["precision"] * r["recall"] / max(r["precision"] + r["recall"], 1e-9)))
        show = ours[:8] + [r for r in mine if r["method"] == "phash"]
        t = Table(title=f"curate · duplicates · {name} (top 8 configurations by pair F1, of {len(ours)}; PHash last)")
        for c in ("configuration", "thr", "P", "R", "P added only", *TRANSFORMS):
            t.add_column(c, justify="left" if c == "configuration" else "right")
        for r in show:
            label = r["layer"] if r["method"] == "phash" else f"{r['layer']} · {r['pooling']} · {r['metric']}"
            t.add_row(label, f"{r['threshold']:.3g}", _cell(r["precision"]), _cell(r["recall"]),
                      _cell(r["precision_added_only"]),
                      *(f"{_cell(r[f'recall_{x}'])}/{_cell(r[f'precision_{x}'])}" for x in TRANSFORMS))
        console.print(t)
        cands = meta["review"][name]
        console.print(f"{name}: {len(cands)} original–original pairs to review, "
                      f"{sum(c['verdict'] not in (None, 'different') for c in cands)} listed near duplicates, "
                      f"{sum(c['verdict'] == 'different' for c in cands)} different, "
                      f"{sum(c['verdict'] is None for c in cands)} not reviewed yet ({KNOWN_FILE.name}; --review DIR)")
    console.print("P: precision with the sets' own reviewed near duplicates; R: recall of the added copies; "
                  "per transform: recall/precision of original–copy pairs")
    for name, lab in meta["labels"].items():
        console.print(f"label mistakes ({name}, {lab['flipped']} of {lab['images']} flipped): ours (classifier on "
                      f"{lab['classifier_configuration']}) P@K {lab['ours_precision_at_k']:.2f}; cleanlab P@K {_cell(lab.get('cleanlab_precision_at_k'))} "
                      "(same probabilities); variants, ours / cleanlab: "
                      + "; ".join(f"{v} {_cell(r['precision_at_k'])} / {_cell(r.get('cleanlab_precision_at_k'))}"
                                  for v, r in lab["variants"].items()))
    best = max(meta["outliers"], key=lambda r: r["recall_at_40"])
    med = sorted(r["recall_at_40"] for r in meta["outliers"])[len(meta["outliers"]) // 2]
    console.print(f"outliers (caltech10 + {OUTLIERS} shapes): recall@{OUTLIER_TOP} best {best['recall_at_40']:.2f} "
                  f"({best['layer']} · {best['pooling']} · {best['metric']}), median {med:.2f}")


def review_sheets(review: dict, out: Path, per_sheet: int = 12) -> list[Path]:
    """Contact sheets of the candidate pairs (numbered, with how many configurations joined them and
    the verdict so far) for the review that KNOWN_FILE records."""
    from PIL import Image, ImageDraw

    from convnet_search.io.datasets import load_dataset

    roots = {"caltech10": caltech_dir(), "tinyimagenet20": real_dir() / "tinyimagenet20"}
    side, written = 200, []
    out.mkdir(parents=True, exist_ok=True)
    for name, cands in review.items():
        ds = load_dataset(roots[name])
        index = {f: i for i, f in enumerate(ds.files)}
        for s in range(0, len(cands), per_sheet):
            sheet = Image.new("RGB", (3 * (2 * side + 30), 4 * (side + 30)), "white")
            draw = ImageDraw.Draw(sheet)
            for j, c in enumerate(cands[s:s + per_sheet]):
                x0, y0 = (j % 3) * (2 * side + 30), (j // 3) * (side + 30)
                draw.text((x0, y0 + 2), f"#{s + j} ({c['configurations']}) {c['verdict'] or 'not reviewed'}", fill="red")
                for k, f in enumerate((c["a"], c["b"])):
                    with Image.open(ds.path(index[f])) as im:
                        im = im.convert("RGB")
                        im.thumbnail((side, side))  # shrinks only
                        sheet.paste(im, (x0 + k * (side + 5), y0 + 16))
            written.append(out / f"review-{name}-{s // per_sheet}.png")
            sheet.save(written[-1])
    return written


def main(argv: list[str] | None = None) -> int:
    import argparse

    own = argparse.ArgumentParser(add_help=False)  # the parent's own flag; the rest are worker_args'
    own.add_argument("--review", type=Path, metavar="DIR", help="draw the contact sheets of the pairs to review into DIR")
    mine, rest = own.parse_known_args(argv)
    args = worker_args(rest, parents=[own])
    result = section_main(args, worker=worker, run=run, skip_reason=skip_reason, report=_report)
    if result is not None and mine.review is not None and not args.worker:
        for path in review_sheets(result["meta"]["review"], mine.review):
            print(path)
    return 0


def _report(result: dict) -> None:
    from rich.console import Console

    print_report(Console(width=200), result["rows"], result["meta"])


if __name__ == "__main__":
    sys.exit(main())
