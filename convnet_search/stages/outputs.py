"""What each stage hands the next: the typed results the stages share through the RunContext.

Below every stage module (they import it; it imports none of them), so the run's shared state can be
typed without import circles. Each result's meaning is documented where its stage makes it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..io.datasets import Dataset
from ..io.store import StoredArrays
from ..search.browser_features import DOWNLOAD_BUDGET_MB

if TYPE_CHECKING:
    from ..distribute.base import WorkerStats


# --- extract
@dataclass(frozen=True)
class ExtractResult:
    dataset: str
    model: str
    images: int
    seconds: float
    status: str  # "extracted" | "resumed" | "updated" (unchanged shards reused) | "up to date"
    # Images run through the model in this call: a resumed run skips the finished shards, and
    # counting those would overstate its speed. None: all `images`.
    computed: int | None = None
    # Who ran the shards of this call (distribute/base.py's WorkerStats): shards, images, busy time each.
    workers: tuple["WorkerStats", ...] = ()

    @property
    def images_per_s(self) -> float:
        n = self.images if self.computed is None else self.computed
        return n / self.seconds if self.seconds > 0 and self.status != "up to date" else float("nan")


# --- thumbnails: the sprite-sheet layout (stages/thumbnails.py renders it)
GRID = 16  # cells per sheet side: 256 thumbnails per sheet
@dataclass(frozen=True)
class ThumbLevel:
    id: str
    cell: int  # px, square
    quality: int  # JPEG quality


# small: 32-px map cells (≈ 0.5 KB each, 130 KB per 512² sheet); large: 96-px cells, what the
# gallery and results draw (96 CSS px tiles; 128 px would cost ≈ 1.7× the bytes for sharpness
# only a 2× display sees).
LEVELS = (ThumbLevel("small", 32, 80), ThumbLevel("large", 96, 85))
PACK_LEVEL = "large"


@dataclass(frozen=True)
class ThumbSheets:
    folder: Path  # holds <level>/<sheet>.jpg
    n: int
    grid: int
    levels: tuple[ThumbLevel, ...]

    def sheet_path(self, level: str, sheet: int) -> Path:
        return self.folder / level / f"{sheet}.jpg"

    def pack_path(self, sheet: int) -> Path:
        return self.folder / PACK_LEVEL / f"{sheet}.jpgs"

    def sheet_files(self, sheet: int) -> list[Path]:
        return [*(self.sheet_path(lv.id, sheet) for lv in self.levels), self.pack_path(sheet)]

    @property
    def sheets(self) -> int:
        return sheet_count(self.n, self.grid)


def sheet_count(n: int, grid: int = GRID) -> int:
    return math.ceil(n / (grid * grid))


# --- featviz
@dataclass
class FeatvizResult:
    model: str
    layers: dict[str, tuple[Path, list[int], int]]  # layer -> (JPEG grid, channels, tile)
    seconds: float  # compute time of this run (0 when up to date)
    status: str  # "rendered" | "up to date"
    fingerprint: str
    recorded_seconds: float = 0.0  # compute time of the run that rendered them (work folder's info.json)


# --- tfjs
@dataclass
class BrowserSearch:
    model: str
    export_dir: Path  # folder with model.json + shards
    info: dict[str, Any]  # model_bytes, quantization, outputs
    layers: list[str]
    default_layer: str
    # Download budget of a private search (model + one features file); features are compressed to fit.
    budget_bytes: int = int(DOWNLOAD_BUDGET_MB * 1e6)


# --- the run
@dataclass
class DatasetResults:
    """Everything computed for one dataset, as read back from the stage stores."""
    dataset: Dataset
    features: dict[str, StoredArrays]  # model id -> features (meta has layer infos, weights)
    neighbors: dict[str, StoredArrays]  # model id -> "<layer>/<metric>/ids|dists"
    umap: dict[str, StoredArrays]  # model id -> layer -> [N, 2]
    thumbs: ThumbSheets | None = None  # the thumbnails stage's sprite sheets (required to write)
    scores: dict[str, StoredArrays] = field(default_factory=dict)  # model id -> the scores stage's output
    # model id (and curate.LABELS_FILE: the label suspects) -> the curate stage's output
    curate: dict[str, StoredArrays] = field(default_factory=dict)
    judgements: dict[str, Any] | None = None  # the judgements stage's ranking (--judgements), bundle payload


@dataclass
class RunReport:
    extract: list[ExtractResult] = field(default_factory=list)
    datasets: list[Dataset] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    bundle_status: str = ""
    distributor: str = "local"
    weights: str = ""
    out: Path | None = None
