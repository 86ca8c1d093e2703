"""The seam: what a distributor is (the Distributor protocol), what it hands back, its errors, the
Ray install hint. distribute/__init__.py's make_distributor picks local.py or ray.py from the config.

One signature, two implementations (the design of clip-retrieval's distributor); the stages do not
know which one they hold, and the outputs do not depend on it:

* extraction: the work items are an `ExtractJob`'s shards. Every distributor builds the model with
  `ExtractorSpec.build` and runs each shard with `extractor.extract_shard_steps` (same images, same
  batches), which writes the shard atomically into the work folder; the driver then assembles
  the shards exactly as a local run does.
* neighbours: `neighbors.top_k_neighbors_multi` of a feature matrix, byte for byte (on Ray as
  query-row blocks).

Ray is optional (`pip install 'convnet-search[ray]'`); nothing imports it unless a RayDistributor is
made. UMAP, the TF.js export and the bundle stay on the driver.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol, Sequence

import numpy as np

if TYPE_CHECKING:  # config.py reads RAY_INSTALL_HINT from here: no model code at import
    from ..nets.extractor import ExtractJob

RAY_INSTALL_HINT = "pip install 'convnet-search[ray]'"  # Ray is optional: the extra that brings it


class DistributorError(RuntimeError):
    """The distributor cannot run the work; the message says why and what to do."""


class RayMissingError(DistributorError):
    """--distributor ray without Ray installed (a usage error: exit 2)."""


class ClusterError(DistributorError):
    """The Ray cluster cannot be reached, has no room for a worker, or lost every worker."""


@dataclass(frozen=True)
class WorkerStats:
    """What one worker did in one extraction call."""
    worker: str  # "local", or "ray-<n>" (one actor; it keeps its name after a restart)
    node: str  # host name or IP of the node it ran on
    shards: int
    images: int
    seconds: float  # busy time: model build excluded, shard work included
    lost: int = 0  # shards it was running when it (or its node) died; redone by another worker

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")


@dataclass(frozen=True)
class ExtractRun:
    """What a distributor hands back from one ExtractJob: the shards are in job.shard_dir."""
    infos: list  # models.LayerInfo of the built extractor
    base_info: dict  # params, weights kind, weights_digest, ...
    computed: int  # images extracted in this call (finished shards of a killed run excluded)
    workers: list[WorkerStats] = field(default_factory=list)


Progress = Callable[[int], None]


class Distributor(Protocol):
    """The seam: LocalDistributor and RayDistributor implement it with the same signature."""
    name: str

    def connect(self) -> None:
        """Reach the workers before anything is written (a ClusterError if they cannot be)."""

    def extract(self, job: ExtractJob, *, on_start: Progress | None = None,
                on_progress: Progress | None = None) -> ExtractRun:
        """Build job.extractor, check the finished shards (job.pending), report the images still
        to do (on_start), run every pending shard (on_progress: images done, as they are)."""

    def neighbors(self, X: np.ndarray, k: int, metrics: Sequence[str], p: float, report: dict | None = None
                  ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """neighbors.top_k_neighbors_multi(X, k, metrics, p=p), byte for byte."""

    def close(self) -> None:
        """Release workers and connections (idempotent)."""
