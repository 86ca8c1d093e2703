"""Recall@15 and size of every browser-features encoding (convnet_search/browser_features.py), on a
bundle's float32 browser features, and on N synthetic vectors made from them.

    python bench/bench_browser_features.py BUNDLE [--n 100000] [--layers L ...] [--poolings avg ...]
        [--out bench/out/browser_features.json]

BUNDLE must hold float32 browser features (a bundle written with a budget that keeps float32, e.g.
tinyimagenet20 with real MobileNet alpha 0.25 weights). Without --n the real vectors are measured;
with --n, N synthetic ones: each is a convex mix of two real vectors of the same class (weight of
the second ~ U(0, 0.5)) times per-coordinate log-normal noise (σ = 0.1). That keeps what the
encodings are sensitive to (non-negativity, sparsity, per-vector scale, the principal spectrum)
and makes neighbourhoods N/n_real times denser than the real set, so the top 15 is decided by finer
differences: a harder case for lossy codes than the real photos. With --at-n N the real vectors are
measured under the PCA layouts (pca_uint8, pca_u8u4: their axis counts) the budget gives at N
images: the recall a 100k-image bundle would have on these features, with the sizes of 100k
(the axes are fitted on the measured vectors; at N they would be fitted on ≤ 50,000 of the N).
Not part of `make test`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from convnet_search.search import browser_features as bf  # noqa: E402
from convnet_search.stages.bundle import read_index  # noqa: E402
from scaled_features import synthetic  # noqa: E402

METRICS = ["cosine", "euclidean", "sqeuclidean", "minkowski"]


def candidates(n: int, dim: int) -> list[bf.Layout]:
    out = [bf.Layout(e, n, dim, dim) for e in ("float16", "uint8")]
    out += [bf.Layout("pca_uint8", n, dim, d) for d in (32, 64, 128, 256) if d < dim]
    out += [bf.Layout("pca_u8u4", n, dim, d) for d in (64, 128, 256, 512) if d < dim]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--n", type=int, default=0, help="synthetic vectors (0: the real ones)")
    ap.add_argument("--layers", nargs="*")
    ap.add_argument("--poolings", nargs="*")
    ap.add_argument("--metrics", nargs="*", default=METRICS)
    ap.add_argument("--only", nargs="*", help="encodings to measure, e.g. uint8 pca_uint8:256")
    ap.add_argument("--budget-mb", type=float, default=bf.DOWNLOAD_BUDGET_MB)
    ap.add_argument("--at-n", type=int, default=0, help="measure the PCA layouts the budget gives at this N")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    manifest = json.loads((a.bundle / "manifest.json").read_text())
    bs = manifest["browser_search"]
    rows = []
    for ds_id in bs["datasets"]:
        labels = read_index(a.bundle, manifest, ds_id)[1].astype(np.int64)
        for o in bs["outputs"]:
            if (a.layers and o["layer"] not in a.layers) or (a.poolings and o["pooling"] not in a.poolings):
                continue
            entry = next((e for e in bs.get("features", []) if e["dataset"] == ds_id and e["layer"] == o["layer"]
                          and e["pooling"] == o["pooling"]), {"encoding": "float32"})  # older bundles: float32
            if entry["encoding"] != "float32":
                raise SystemExit(f"{a.bundle}: {ds_id} {o['layer']} {o['pooling']} is {entry['encoding']}; need float32 features")
            rel = manifest["files"]["browser_features"].format(dataset=ds_id, layer=o["layer"], pooling=o["pooling"],
                                                             encoding="float32")
            x = np.fromfile(a.bundle / rel, dtype="<f4").reshape(-1, o["dim"])
            if a.n:
                x = synthetic(x, labels, a.n)
            n, dim = x.shape
            budget = int(a.budget_mb * 1e6) - bs["model_bytes"]
            chosen = bf.choose_layout(n, dim, budget)
            layouts = candidates(n, dim)
            if chosen not in layouts:
                layouts.append(chosen)
            if a.at_n:
                at = bf.pca_layouts(a.at_n, dim, budget)
                layouts = [bf.Layout(lo.encoding, n, dim, min(lo.dims, n - 1 - (n - 1) % 8)) for lo in at]
                for lo, big in zip(layouts, at):
                    print(f"{o['layer']:>16} {o['pooling']:>5} at N={a.at_n}: {big.encoding}:{big.dims} is "
                          f"{big.nbytes / 1e6:.2f} MB (budget {budget / 1e6:.2f} MB)", flush=True)
            if a.only:
                layouts = [lo for lo in layouts if lo.encoding in a.only or f"{lo.encoding}:{lo.dims}" in a.only]
            for layout in layouts:
                t = time.perf_counter()
                data = bf.encode(x, layout)
                enc_s = time.perf_counter() - t
                t = time.perf_counter()
                recall = bf.measure_recall(x, bf.decode(data, layout), a.metrics, manifest_p(manifest))
                row = {"dataset": ds_id, "layer": o["layer"], "pooling": o["pooling"], "n": n, "dim": dim,
                       "synthetic": bool(a.n), "encoding": layout.encoding, "dims": layout.dims, "bytes": len(data),
                       "chosen": layout == chosen, "recall": recall, "encode_s": round(enc_s, 2),
                       "recall_s": round(time.perf_counter() - t, 1)}
                rows.append(row)
                print(f"{o['layer']:>16} {o['pooling']:>5} n={n} dim={dim} {layout.encoding:>9}:{layout.dims:<4} "
                      f"{len(data) / 1e6:8.2f} MB {'*' if row['chosen'] else ' '} "
                      + " ".join(f"{m}={v:.4f}" for m, v in recall.items()), flush=True)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps({"bundle": str(a.bundle), "budget_mb": a.budget_mb, "rows": rows}, indent=1))
    return 0


def manifest_p(manifest: dict) -> float:
    return next((m["p"] for m in manifest["metrics"] if m["id"] == "minkowski"), None) or 3.0


if __name__ == "__main__":
    raise SystemExit(main())
