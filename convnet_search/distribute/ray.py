"""The Ray distributor: extraction shards on one actor per worker, neighbours as query-row blocks.

On Ray, one actor per worker builds each model once and takes shards one at a time from the driver;
a shard whose worker dies (process or node) goes back to the queue and another worker does it.
Neighbours: query-row blocks (`neighbors.top_k_rows`) as Ray tasks against the feature matrix put
once in the object store, concatenated: the same arrays as the local search's.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import math
import os
import socket
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..nets.extractor import ExtractJob, ExtractorSpec, FeatureExtractor, ShardTask, extract_shard_steps
from .base import RAY_INSTALL_HINT, ClusterError, ExtractRun, Progress, RayMissingError, WorkerStats

CONNECT_TIMEOUT_S = 5.0  # how long an unreachable cluster may take to say so
MAX_SHARD_ATTEMPTS = 3  # a shard whose worker died this many times fails the run (it may be the cause)
# Shards sent to a worker ahead of the one it runs: its next shard starts without waiting for the
# driver to hear "done" and answer (a round trip that grows with the driver's and the cluster's
# load). Only while more shards are queued than there are workers: the last ones go to whichever
# worker is free first, so ahead-sending does not lengthen the end of the job.
SHARDS_AHEAD = 1
# No batch finished anywhere for this long (every worker lost and none restarted): give up.
STALL_TIMEOUT_S = 900.0


def import_ray():
    try:
        import ray
    except ImportError:
        raise RayMissingError(f"--distributor ray needs Ray, which is not installed: {RAY_INSTALL_HINT}") from None
    return ray


def code_identity() -> str:
    """sha256 of this package's source and the versions that shape the features: a worker whose
    identity differs from the driver's would not give byte-identical shards, so it is refused."""
    h = hashlib.sha256()
    pkg = Path(__file__).parents[1]  # the whole package, every subpackage's modules too
    for path in sorted(pkg.rglob("*.py")):
        h.update(path.relative_to(pkg).as_posix().encode() + b"\0" + path.read_bytes())
    for dist in ("tensorflow", "keras", "tf-keras", "numpy", "h5py", "pillow"):
        try:
            h.update(f"{dist}={importlib.metadata.version(dist)}".encode())
        except importlib.metadata.PackageNotFoundError:
            h.update(f"{dist}=-".encode())
    return h.hexdigest()


def bootstrap_address(address: str | None) -> tuple[str, int] | None:
    """(host, port) that `ray.init(address)` will contact, or None when it starts a local Ray.

    None follows Ray's rule: RAY_ADDRESS, else the cluster `ray start` runs on this machine, else
    a new local Ray; "auto" requires a running one; "local" always starts a new one."""
    if address == "local":
        return None
    target = address
    if address in (None, "auto"):
        try:
            from ray._private.services import get_ray_address_from_environment

            target = get_ray_address_from_environment(address, None)
        except ConnectionError as exc:
            raise ClusterError(f"--ray-address auto: {exc}") from None
        except (ImportError, AttributeError):  # Ray moved its helper: let ray.init decide
            return None
        if target is None:
            return None
    rest = target.split("://", 1)[1] if "://" in target else target
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"Ray address {target!r}: expected HOST:PORT, ray://HOST:PORT, auto or local")
    return host.strip("[]"), int(port)


def check_reachable(address: str | None, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """A TCP connect to the cluster's address within `timeout` seconds, or a ClusterError.

    ray.init itself retries an unreachable address for minutes; this says so in seconds."""
    target = bootstrap_address(address)
    if target is None:
        return
    host, port = target
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        shown = address or f"{host}:{port} (RAY_ADDRESS or the `ray start` cluster of this machine)"
        hint = "" if address else "; --ray-address local starts a new Ray just for this run"
        raise ClusterError(f"cannot reach the Ray cluster at {shown}: {why} after at most {timeout:g}s; "
                           f"is it running (`ray status` on its head node) and is the port open?{hint}") from None


def row_blocks(n: int, parts: int) -> list[tuple[int, int]]:
    """[a, b) ranges cutting n rows into `parts` nearly equal blocks (fewer if n is smaller)."""
    parts = max(1, min(n, parts))
    cuts = [round(i * n / parts) for i in range(parts + 1)]
    return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]


def _neighbor_rows(X: np.ndarray, k: int, metrics: list[str], p: float, start: int, stop: int,
                   threads: int, candidates: int | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A Ray task: rows [start, stop) of the neighbour lists (X comes from the object store)."""
    import numba

    from ..search.neighbors import top_k_rows

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    return top_k_rows(X, k, metrics, start, stop, p=p, minkowski_candidates=candidates)


class _ExtractWorker:
    """A Ray actor: builds each model once (the last one asked for is kept) and runs shards.

    TensorFlow's thread pools are sized to the CPUs Ray gave the worker, so workers sharing a
    node do not fight over cores (thread counts do not change the features' bits: measured)."""

    def __init__(self, threads: int, pause_per_shard: float = 0.0):
        from ..runtime import import_tensorflow

        tf = import_tensorflow()
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        self.threads = threads
        self.pause = pause_per_shard
        self.ex: FeatureExtractor | None = None

    def prepare(self, spec: ExtractorSpec) -> dict[str, Any]:
        import ray

        if self.ex is None or self.ex.spec != spec:
            self.ex = None  # free the previous model before building the next
            self.ex = spec.build()
        return {"infos": self.ex.infos, "base_info": self.ex.base_info, "code": code_identity(),
                "node": ray.util.get_node_ip_address(), "node_id": ray.get_runtime_context().get_node_id()}

    def run_shard(self, spec: ExtractorSpec, task: ShardTask):
        """Streams the image count of each batch, then ("done", images, seconds)."""
        self.prepare(spec)
        t = time.perf_counter()
        images = 0
        for n in extract_shard_steps(self.ex, task, self.threads):
            images += n
            yield n
        if self.pause:  # fault-injection tests: keep the worker busy long enough to lose it
            time.sleep(self.pause)
        yield ("done", images, time.perf_counter() - t)


@dataclass
class _Worker:
    name: str
    handle: Any
    node: str = "?"
    node_id: str = ""
    ready: bool = False  # its model for the current job is built and checked
    # Shards sent to it, in the order it runs them (an actor runs its calls one at a time): the
    # first is running, the others wait in its queue. All of them go back to the queue if it dies.
    shards: deque = field(default_factory=deque)
    reported: dict[int, int] = field(default_factory=dict)  # shard -> images reported (taken back if lost)
    stats: dict[str, WorkerStats] = field(default_factory=dict)  # per node


class RayDistributor:
    """Runs extraction shards on Ray actors and neighbour row blocks as Ray tasks.

    address: None (Ray's rule: RAY_ADDRESS, the `ray start` cluster of this machine, else a new
    local Ray), "local", "auto", "HOST:PORT" or "ray://HOST:PORT". workers: actors to start
    (None: as many as the cluster's CPUs/GPUs allow). pause_per_shard: seconds each worker
    sleeps after a shard, for fault-injection tests only.
    """
    name = "ray"

    def __init__(self, address: str | None = None, *, workers: int | None = None, cpus_per_worker: int = 1,
                 gpus_per_worker: float = 0.0, pause_per_shard: float = 0.0,
                 connect_timeout: float = CONNECT_TIMEOUT_S, init_kwargs: dict | None = None):
        self.ray = import_ray()
        self.address = address
        self.requested_workers = workers
        self.cpus = int(cpus_per_worker)
        self.gpus = float(gpus_per_worker)
        self.pause = pause_per_shard
        self.connect_timeout = connect_timeout
        self.init_kwargs = dict(init_kwargs or {})
        self.workers: list[_Worker] = []
        self._connected = False
        self._owns_connection = False
        self._neighbor_task = None
        # Visible to a test thread while a job runs: {worker name: (node id, shards done)}.
        self.live: dict[str, tuple[str, int]] = {}

    # --- connection -------------------------------------------------------------------------

    def connect(self) -> None:
        """Reach the cluster (a ClusterError within seconds if it cannot be) and check that at
        least one worker fits on a node. Writes nothing; idempotent."""
        if self._connected:
            return
        ray = self.ray
        if not ray.is_initialized():
            check_reachable(self.address, self.connect_timeout)
            kwargs: dict[str, Any] = {"log_to_driver": bool(os.environ.get("CONVNET_SEARCH_VERBOSE")),
                                      "logging_level": "WARNING", **self.init_kwargs}
            if bootstrap_address(self.address) is None:  # a new local Ray: keep it light
                kwargs.setdefault("include_dashboard", False)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=FutureWarning, module=r"ray\.")
                try:
                    ray.init(address=self.address, **kwargs)
                except ConnectionError as exc:
                    raise ClusterError(f"cannot connect to the Ray cluster at {self.address}: {exc}") from None
            self._owns_connection = True
        self._connected = True
        fits = self._workers_that_fit()
        if fits == 0:
            self.close()
            raise ClusterError(f"no node of the Ray cluster has room for one worker ({self._demand_text()}); "
                               f"its nodes offer {self._nodes_text()}; lower --cpus-per-worker / "
                               "--gpus-per-worker or add nodes")
        self.n_workers = self.requested_workers or fits

    def _alive_nodes(self) -> list[dict]:
        return [n for n in self.ray.nodes() if n.get("Alive")]

    def _workers_that_fit(self) -> int:
        total = 0
        for node in self._alive_nodes():
            res = node.get("Resources", {})
            fit = math.floor(res.get("CPU", 0) / self.cpus + 1e-9) if self.cpus else math.inf
            if self.gpus:
                fit = min(fit, math.floor(res.get("GPU", 0) / self.gpus + 1e-9))
            total += 0 if fit == math.inf else fit
        return total

    def _demand_text(self) -> str:
        return f"{self.cpus} CPU" + (f", {self.gpus:g} GPU" if self.gpus else "")

    def _nodes_text(self) -> str:
        parts = [f"{n.get('NodeManagerAddress', '?')}: {n.get('Resources', {}).get('CPU', 0):g} CPU, "
                 f"{n.get('Resources', {}).get('GPU', 0):g} GPU" for n in self._alive_nodes()]
        return "; ".join(parts) or "nothing (no node is alive)"

    def _stop_workers(self) -> None:
        for w in self.workers:
            try:
                self.ray.kill(w.handle, no_restart=True)
            except Exception:  # already gone with its node
                pass
        self.workers = []

    def close(self) -> None:
        ray = self.ray
        self._stop_workers()
        if self._owns_connection and ray.is_initialized():
            ray.shutdown()
        self._owns_connection = False
        self._connected = False

    # --- extraction -------------------------------------------------------------------------

    def _start_workers(self) -> None:
        if self.workers:
            return
        actor = self.ray.remote(_ExtractWorker).options(
            num_cpus=self.cpus, num_gpus=self.gpus, max_restarts=-1, max_task_retries=0)
        self.workers = [_Worker(f"ray-{i + 1}", actor.remote(self.cpus, self.pause))
                        for i in range(self.n_workers)]

    def extract(self, job: ExtractJob, *, on_start: Progress | None = None,
                on_progress: Progress | None = None) -> ExtractRun:
        self.connect()
        self._start_workers()
        return _ExtractLoop(self, job, on_start, on_progress).run()

    # --- neighbours -------------------------------------------------------------------------

    def neighbors(self, X, k, metrics, p, report: dict | None = None):
        """neighbors.top_k_neighbors_multi with its row computations as Ray tasks (the same
        algorithm, minkowski's measured-recall candidate rule included, so the same arrays)."""
        from ..search.neighbors import top_k_neighbors_multi

        self.connect()
        # The extraction actors hold the CPUs the block tasks need (the pipeline extracts
        # everything first); a later extract() starts new ones.
        self._stop_workers()
        ray = self.ray
        if self._neighbor_task is None:
            self._neighbor_task = ray.remote(_neighbor_rows).options(num_cpus=self.cpus, max_retries=3)
        X = np.ascontiguousarray(X)
        x_ref = ray.put(X)  # once: every block task reads the same copy
        blocks = row_blocks(X.shape[0], 2 * self.n_workers)

        def rows(ms: list, L: int | None) -> dict:
            parts = ray.get([self._neighbor_task.remote(x_ref, k, list(ms), p, a, b, self.cpus, L)
                             for a, b in blocks])
            return {name: (np.concatenate([part[name][0] for part in parts]),
                           np.concatenate([part[name][1] for part in parts])) for name in ms}

        return top_k_neighbors_multi(X, k, metrics, p=p, report=report, rows=rows)


class _ExtractLoop:
    """The driver side of one ExtractJob on Ray: keep every worker fed (the shard it runs and,
    while there is plenty left, the next one), stream their progress, put the shards of a lost
    worker back in the queue."""

    def __init__(self, dist: RayDistributor, job: ExtractJob, on_start, on_progress):
        self.d, self.ray, self.job = dist, dist.ray, job
        self.on_start, self.on_progress = on_start, on_progress
        self.spec = job.extractor
        self.info: dict | None = None
        self.queue: deque[int] | None = None  # pending shards, known once a worker described the model
        self.attempts: dict[int, int] = {}
        self.waiting: dict[Any, tuple[_Worker, str]] = {}  # ObjectRef / generator -> (worker, kind)
        self.shard_of: dict[Any, int] = {}  # generator -> its shard
        self.computed = 0
        self.code = code_identity()

    def run(self) -> ExtractRun:
        for w in self.d.workers:
            w.ready, w.shards, w.reported, w.stats = False, deque(), {}, {}
            self._prepare(w)
        last_event = time.monotonic()
        while self.queue is None or self.queue or any(w.shards for w in self.d.workers):
            self._dispatch()
            ready, _ = self.ray.wait(list(self.waiting), num_returns=1, timeout=1.0)
            if not ready:
                if time.monotonic() - last_event > STALL_TIMEOUT_S:
                    raise ClusterError(f"no worker made progress for {STALL_TIMEOUT_S:.0f}s (every worker lost "
                                       "and none restarted?); run the same command again to resume")
                continue
            last_event = time.monotonic()
            worker, kind = self.waiting.pop(ready[0])
            if kind == "prepare":
                self._prepared(worker, ready[0])
            else:
                self._shard_event(worker, ready[0])
        workers = [s for w in self.d.workers for s in w.stats.values()]
        self.d.live = {}
        return ExtractRun(self.info["infos"], self.info["base_info"], self.computed, workers)

    def _prepare(self, w: _Worker) -> None:
        # After a loss this call waits in Ray's queue until the actor has restarted (or forever,
        # if it cannot: the job then finishes on the other workers).
        self.waiting[w.handle.prepare.options(max_task_retries=-1).remote(self.spec)] = (w, "prepare")

    def _prepared(self, w: _Worker, ref) -> None:
        try:
            info = self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:  # the model cannot be built: a real error
            raise exc.as_instanceof_cause() from None
        except self.ray.exceptions.RayError:
            self._prepare(w)  # lost while building: ask again once it is back
            return
        if info["code"] != self.code:
            raise ClusterError(f"worker {w.name} on {info['node']} runs other convnet-search code or "
                               "TensorFlow/Keras/NumPy versions than this driver; its features would differ: "
                               "install the same versions on every node")
        if self.info is None:
            self.info = info
            # Largest first (content-defined shards differ in size): the job ends on small shards,
            # so the workers finish closer together.
            pending = self.job.pending(info["base_info"]["weights_digest"])
            self.queue = deque(sorted(pending, key=lambda s: -len(self.job.shard_paths[s])))
            if self.on_start:
                self.on_start(self.job.images(self.queue))
        elif info["base_info"]["weights_digest"] != self.info["base_info"]["weights_digest"]:
            raise ClusterError(f"worker {w.name} on {info['node']} built different weights than "
                               f"the other workers for {self.spec.model.id}; check the weights files on every node")
        w.node, w.node_id, w.ready = info["node"], info["node_id"], True
        self.d.live.setdefault(w.name, (w.node_id, 0))
        self.d.live[w.name] = (w.node_id, self.d.live[w.name][1])

    def _dispatch(self) -> None:
        """An idle worker gets a shard; a busy one its next, while more are queued than workers."""
        if not self.queue:
            return
        ready = [w for w in self.d.workers if w.ready]
        for depth in range(1, SHARDS_AHEAD + 2):
            for w in ready:
                if len(w.shards) < depth and self.queue and (depth == 1 or len(self.queue) > len(ready)):
                    s = self.queue.popleft()
                    w.shards.append(s)
                    gen = w.handle.run_shard.remote(self.spec, self.job.task(s))
                    self.waiting[gen], self.shard_of[gen] = (w, "shard"), s

    def _shard_event(self, w: _Worker, gen) -> None:
        s = self.shard_of.pop(gen)
        try:
            item = self.ray.get(next(gen))
        except StopIteration:
            return
        except self.ray.exceptions.RayTaskError as exc:  # raised by our code (e.g. a disk error)
            raise exc.as_instanceof_cause() from None
        except self.ray.exceptions.RayError:
            self._lost(w)
            return
        if isinstance(item, tuple):  # ("done", images, seconds)
            _, images, seconds = item
            old = w.stats.get(w.node, WorkerStats(w.name, w.node, 0, 0, 0.0))
            w.stats[w.node] = WorkerStats(w.name, w.node, old.shards + 1, old.images + images,
                                          old.seconds + seconds, old.lost)
            self.computed += images
            w.shards.remove(s)
            w.reported.pop(s, None)
            self.d.live[w.name] = (w.node_id, self.d.live.get(w.name, ("", 0))[1] + 1)
            return
        w.reported[s] = w.reported.get(s, 0) + item
        if self.on_progress:
            self.on_progress(item)
        self.waiting[gen], self.shard_of[gen] = (w, "shard"), s  # more to come from this shard

    def _lost(self, w: _Worker) -> None:
        """w (or its node) died while running w.shards[0]: requeue every shard sent to it, take its
        progress back. Only the running shard counts an attempt (the others never started)."""
        if not w.shards:  # a call of ours that was already forgotten
            return
        s = w.shards[0]
        self.attempts[s] = self.attempts.get(s, 0) + 1
        if self.attempts[s] >= MAX_SHARD_ATTEMPTS:
            raise ClusterError(f"shard {s} ({len(self.job.shard_paths[s])} images from "
                               f"{self.job.shard_paths[s][0]}) lost its worker {self.attempts[s]} times; "
                               "run the same command again to resume")
        if self.on_progress and w.reported:
            self.on_progress(-sum(w.reported.values()))
        old = w.stats.get(w.node, WorkerStats(w.name, w.node, 0, 0, 0.0))
        w.stats[w.node] = WorkerStats(w.name, w.node, old.shards, old.images, old.seconds, old.lost + 1)
        self.queue.extendleft(reversed(w.shards))
        # The calls queued behind the lost one fail too: forget them, their shards are requeued.
        for ref in [ref for ref, (owner, kind) in self.waiting.items() if owner is w and kind == "shard"]:
            del self.waiting[ref], self.shard_of[ref]
        w.shards, w.reported, w.ready = deque(), {}, False
        self._prepare(w)
