"""Where the real evaluation data lives: ../shared/real beside the checkout, or $CONVNET_SEARCH_REAL.

Evaluation only: tests read it in place (never copy it into the repo) and skip, saying what is
missing, where it is absent. One rule for every test module that needs it.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_REAL = "CONVNET_SEARCH_REAL"
REPO = Path(__file__).resolve().parents[1]
REAL = Path(os.environ[ENV_REAL]).expanduser() if os.environ.get(ENV_REAL) else REPO.parent / "shared" / "real"
KERAS_HOME = REAL / "weights" / "keras_home"
SAMPLES = REAL / "weights" / "samples"
TINYIMAGENET20 = REAL / "tinyimagenet20"
NOTOP_H5 = KERAS_HOME / "models" / "mobilenet_2_5_224_tf_no_top.h5"  # MobileNet α 0.25, include_top=False
TOP_H5 = KERAS_HOME / "models" / "mobilenet_2_5_224_tf.h5"  # the same with the classifier


def missing(*paths: Path) -> str | None:
    """A skip reason naming the first missing path, or None when all exist."""
    for p in paths:
        if not p.exists():
            return f"real data absent: {p} not found (set {ENV_REAL} to the folder holding weights/ and tinyimagenet20/)"
    return None
