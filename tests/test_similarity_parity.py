"""The browser's similarity maps (frontend/src/live/similarity.ts) and Python's
(convnet_search/atlas.py::similarity_map) share one fixture: this test checks the fixture against
Python, frontend/src/live/similarity.test.ts checks it against TypeScript. Regenerate with
`python tests/test_similarity_parity.py` if the definition ever changes (ATLAS_CONTRACT)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from convnet_search.search.atlas import similarity_map

FIXTURE = Path(__file__).resolve().parents[1] / "frontend" / "src" / "live" / "similarity.fixture.json"


def _maps(fq: np.ndarray, fr: np.ndarray) -> dict[str, list]:
    """"Why is r similar to q": S_q against mean(F_r), S_r against mean(F_q)."""
    return {"query": similarity_map(fq, fr.mean(axis=(0, 1))).ravel().tolist(),
            "result": similarity_map(fr, fq.mean(axis=(0, 1))).ravel().tolist()}


def make_fixture() -> dict:
    rng = np.random.default_rng(11)
    fq = np.maximum(rng.normal(size=(3, 4, 5)), 0).astype(np.float32)  # ReLU-like, with zeros
    fr = rng.normal(size=(3, 4, 5)).astype(np.float32)                  # signed
    fq[0, 0] = 0  # an all-zero position: its cosine is 0 by definition
    return {"shape": [3, 4, 5], "query_map": fq.ravel().tolist(), "result_map": fr.ravel().tolist(),
            **_maps(fq.astype(np.float64), fr.astype(np.float64))}


def test_fixture_matches_python_similarity_map():
    fx = json.loads(FIXTURE.read_text())
    h, w, c = fx["shape"]
    fq = np.asarray(fx["query_map"], np.float32).reshape(h, w, c).astype(np.float64)
    fr = np.asarray(fx["result_map"], np.float32).reshape(h, w, c).astype(np.float64)
    want = _maps(fq, fr)
    np.testing.assert_allclose(fx["query"], want["query"], atol=1e-9)
    np.testing.assert_allclose(fx["result"], want["result"], atol=1e-9)
    assert fx["query"][0] == 0  # the zero position


if __name__ == "__main__":
    FIXTURE.write_text(json.dumps(make_fixture()) + "\n")
    print(f"wrote {FIXTURE}", file=sys.stderr)
