"""The local distributor: this process runs every shard and the whole neighbour search (the
default, as before the seam existed, at the same speed)."""
from __future__ import annotations

import socket
import time

from .. import interrupts
from ..nets.extractor import ExtractJob, extract_shard
from .base import ExtractRun, Progress, WorkerStats


class LocalDistributor:
    name = "local"

    def connect(self) -> None:
        pass

    def extract(self, job: ExtractJob, *, on_start: Progress | None = None,
                on_progress: Progress | None = None) -> ExtractRun:
        with interrupts.deferred():  # Ctrl-C lands between batches, not inside TensorFlow's callbacks
            ex = job.extractor.build()
            interrupts.check()
            todo = job.pending(ex.base_info["weights_digest"])
            if on_start:
                on_start(job.images(todo))
            t = time.perf_counter()
            images = sum(extract_shard(ex, job.task(s), on_progress) for s in todo)
        stats = WorkerStats("local", socket.gethostname(), len(todo), images, time.perf_counter() - t)
        return ExtractRun(ex.infos, ex.base_info, images, [stats])

    def neighbors(self, X, k, metrics, p, report: dict | None = None):
        from ..search.neighbors import top_k_neighbors_multi

        return top_k_neighbors_multi(X, k, metrics, p=p, report=report)

    def close(self) -> None:
        pass
