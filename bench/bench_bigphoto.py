"""Big-photo parity: a 4000×3000 photo uploaded to the private search in headless Chromium embeds
like the engine embedded the same file (docs/live-search.md, "Large images").

Runs frontend/e2e/bigphoto.test.mjs (real MobileNet α 0.25 ImageNet weights, 3 phone-sized photos ×
every exported layer) and reads the per-photo, per-layer cosines it writes to
frontend/test-results/bigphoto-parity.json. One measurement, two uses: `make test` asserts on it,
`make bench` records it here. Needs ../shared/real (or CONVNET_SEARCH_REAL), else skipped.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from bench_quality import real_dir  # one rule for where ../shared/real is

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
FRONTEND = ROOT / "frontend"
PARITY_JSON = FRONTEND / "test-results" / "bigphoto-parity.json"
H5 = Path("weights") / "keras_home" / "models" / "mobilenet_2_5_224_tf_no_top.h5"


def skip_reason() -> str | None:
    if not (real_dir() / H5).is_file():
        return f"{real_dir() / H5} not found (real ImageNet weights); section 'bigphoto' skipped"
    return None


def run(quick: bool) -> dict:
    PARITY_JSON.unlink(missing_ok=True)
    proc = subprocess.run(["node", "--test", "e2e/bigphoto.test.mjs"], cwd=FRONTEND, capture_output=True,
                          text=True, env={**os.environ, "CONVNET_SEARCH_REAL": str(real_dir())})
    if proc.returncode != 0 or not PARITY_JSON.exists():
        raise RuntimeError(f"e2e/bigphoto.test.mjs failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}")
    cells = json.loads(PARITY_JSON.read_text(encoding="utf-8"))
    rows = []
    for layer in dict.fromkeys(c["layer"] for c in cells):
        cos = [c["cosine"] for c in cells if c["layer"] == layer]
        rows.append({"layer": layer, "photos": len(cos), "cosine_min": min(cos),
                     "max_distance": max(1 - c for c in cos),
                     "self_top1": sum(c["top1"] for c in cells if c["layer"] == layer)})
    all_cos = [c["cosine"] for c in cells]
    meta = {"photos": sorted({c["file"] for c in cells}), "cosine_min": min(all_cos),
            "cosine_mean": sum(all_cos) / len(all_cos), "self_top1": sum(c["top1"] for c in cells),
            "cases": len(cells), "goal_cosine_min": 0.99,
            "note": "browser (Chromium, TF.js wasm, unquantized export) vs engine features of the same "
                    "4000×3000 / 3000×4000 file, real MobileNet α 0.25 ImageNet weights"}
    return {"rows": rows, "meta": meta}
