"""distribute/: the same outputs whoever runs the work, on a two-node Ray cluster on this machine.

Ray is pinned in requirements.lock: without it this file fails (it is not skipped). The cluster is
`ray.cluster_utils.Cluster` (a head node and worker nodes as local processes, one CPU each) and is
shut down whatever happens; the data is tiny (24 images, 6 shards of 4, batches of 3).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import ray
from ray.cluster_utils import Cluster

from convnet_search import pipeline
from test_cli import add_plain_images, read_bundle
from convnet_search.config import ConfigError, load_config
from convnet_search.distribute.ray import RayDistributor, row_blocks
from convnet_search.nets.extractor import extract_shard
from convnet_search.stages.extract import extract_features, extraction_fingerprint, plan_extraction
from convnet_search.nets.models import get_spec
from convnet_search.search.neighbors import top_k_neighbors_multi, top_k_rows
from convnet_search.nets.weights import resolve_weights

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "convnet_search.cli"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0"}
MB = 1024 * 1024
CONFIG = """models = ["mobilenet_025"]
num_layers = 2
metrics = ["cosine", "euclidean", "sqeuclidean", "minkowski"]
weights = "none"
shard_size = 4
batch_size = 3
browser_search = false
"""


def make_images(root: Path, per_class: int = 8) -> Path:
    """A tiny 3-class folder (test_cli's images) at root."""
    add_plain_images(root, per_class, ["a", "b", "c"])
    return root


# ---------------------------------------------------------------------------------------------
# Without Ray: the row-block rule, config keys, install hint, unreachable cluster
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data", ["normal", "ties", "duplicates"])
def test_neighbor_row_blocks_concatenate_to_the_full_result_byte_for_byte(data):
    rng = np.random.default_rng(1)
    X = {"normal": rng.normal(size=(61, 9)).astype(np.float32),
         "ties": rng.integers(0, 3, size=(50, 4)).astype(np.float32),  # many equal distances
         "duplicates": np.repeat(rng.normal(size=(15, 6)), 3, axis=0)}[data]  # float64, exact copies
    metrics = ["cosine", "euclidean", "sqeuclidean", "minkowski"]
    full = top_k_neighbors_multi(X, 7, metrics, p=3.0)
    for parts in (1, 2, 5, len(X)):
        blocks = row_blocks(len(X), parts)
        assert blocks[0][0] == 0 and blocks[-1][1] == len(X)
        assert all(b0[1] == b1[0] for b0, b1 in zip(blocks, blocks[1:]))
        got = [top_k_rows(X, 7, metrics, a, b, p=3.0) for a, b in blocks]
        for m in metrics:
            for j in (0, 1):
                merged = np.concatenate([g[m][j] for g in got])
                assert merged.dtype == full[m][j].dtype and merged.tobytes() == full[m][j].tobytes(), (m, parts)
    with pytest.raises(ValueError, match="rows"):
        top_k_rows(X, 3, metrics, 5, 5)


def test_distributor_keys_are_validated_and_stay_out_of_fingerprints(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('distributor = "ray"\nray_address = "10.0.0.1:6379"\nworkers = 3\ncpus_per_worker = 2\n'
                    'gpus_per_worker = 0.5\n')
    cfg = load_config(toml)
    assert (cfg.distributor, cfg.ray_address, cfg.workers, cfg.cpus_per_worker, cfg.gpus_per_worker) == \
        ("ray", "10.0.0.1:6379", 3, 2, 0.5)
    assert load_config(None, {"distributor": "ray", "ray_address": "ray://head:10001"}).ray_address == "ray://head:10001"
    bad = {"distributor": "spark", "ray_address": "nohost", "workers": 0, "cpus_per_worker": 0,
           "gpus_per_worker": -1}
    with pytest.raises(ConfigError) as err:
        load_config(None, bad)
    text = str(err.value)
    for flag in ("--distributor", "--workers", "--cpus-per-worker", "--gpus-per-worker"):
        assert flag in text
    with pytest.raises(ConfigError, match="HOST:PORT"):
        load_config(None, {"distributor": "ray", "ray_address": "head:port"})
    with pytest.raises(ConfigError, match='only used with distributor = "ray"'):
        load_config(None, {"workers": 2})  # the local default ignores nothing silently

    from convnet_search.io.datasets import load_dataset

    ds = load_dataset(str(make_images(tmp_path / "data", per_class=2)))
    spec = get_spec("mobilenet_025")
    local = load_config(None, {"weights": "none"})
    w = resolve_weights(spec, "none", 0)
    on_ray = replace(local, distributor="ray", ray_address="auto", workers=4, cpus_per_worker=2)
    assert extraction_fingerprint(ds, spec, local, weights=w) == extraction_fingerprint(ds, spec, on_ray, weights=w)


def test_without_ray_the_ray_distributor_says_how_to_install_it(tmp_path):
    code = ("import sys; sys.modules['ray'] = None; from convnet_search.cli import main; "
            f"sys.exit(main(['precompute', '--distributor', 'ray', '--dataset', {str(tmp_path)!r}, "
            f"'--out', {str(tmp_path / 'out')!r}, '--work', {str(tmp_path / 'work')!r}]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, cwd=ROOT,
                       timeout=300)
    assert r.returncode == 2, r.stderr
    assert "pip install 'convnet-search[ray]'" in r.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1"])
def test_an_unreachable_cluster_is_a_clear_error_and_nothing_is_written(tmp_path, address):
    data = make_images(tmp_path / "data", per_class=2)
    out, work = tmp_path / "out", tmp_path / "work"
    r = subprocess.run([*CLI, "precompute", "--distributor", "ray", "--ray-address", address, "--dataset",
                        str(data), "--models", "mobilenet_025", "--weights", "none", "--out", str(out),
                        "--work", str(work)], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert r.returncode == 6, r.stderr
    assert "cannot reach the Ray cluster at" in r.stderr and address in r.stderr
    assert not out.exists() and not work.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


# ---------------------------------------------------------------------------------------------
# On a two-node Ray cluster
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cluster():
    # Workers run on two 1-CPU nodes, none on the head: on one machine every node shares the
    # address, so a driver may attach to any node's raylet, and the node-loss test must be able
    # to remove a busy node that is not the driver's (removing the driver's raylet ends the
    # driver's job and its actors, and the run waits forever: seen in CI).
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": 200 * MB,
                                                      "include_dashboard": False})
    try:
        for _ in range(2):
            c.add_node(num_cpus=1, object_store_memory=200 * MB)
        c.wait_for_nodes()
        yield c
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """The tiny job, and its bundle and features computed by the local distributor (the reference)."""
    root = tmp_path_factory.mktemp("dist")
    toml = root / "c.toml"
    toml.write_text(CONFIG)
    data = make_images(root / "data")

    def cfg(name: str, distributor: str = "local"):
        return load_config(toml, {"datasets": [str(data)], "out": str(root / name / "out"),
                                  "work": str(root / name / "work"), "distributor": distributor})

    ref = cfg("local")
    report = pipeline.run(ref)
    assert report.extract[0].status == "extracted" and report.extract[0].computed == 24
    return {"cfg": cfg, "ref": ref, "root": root, "data": data}


def features_file(cfg) -> Path:
    return Path(cfg.work) / "features" / "data" / "mobilenet_025.h5"


def _shards(cfg) -> int:
    """How many content-defined shards the tiny job has (extract.plan_extraction decides)."""
    from convnet_search.io.datasets import load_dataset
    from convnet_search.io.store import ArrayStore

    ds = load_dataset(cfg.datasets[0])
    spec = get_spec("mobilenet_025")
    empty = ArrayStore(Path(cfg.work) / "no-such-store")
    return len(plan_extraction(ds, spec, cfg, empty, weights=resolve_weights(spec, "none", 0)).job.shard_paths)


def ray_run(cfg, cluster, **kw):
    dist = RayDistributor(cluster.address, workers=2, **kw)
    try:
        return pipeline.run(cfg, distributor=dist), dist
    finally:
        dist.close()


def test_ray_bundle_is_byte_identical_to_the_local_one(cluster, case):
    cfg = case["cfg"]("ray", "ray")
    report, _ = ray_run(cfg, cluster)
    res = report.extract[0]
    assert res.status == "extracted" and res.computed == 24
    assert sum(w.shards for w in res.workers) == _shards(cfg) and sum(w.images for w in res.workers) == 24
    assert report.distributor == "ray"
    ref = case["ref"]
    assert read_bundle(Path(cfg.out)) == read_bundle(Path(ref.out))
    assert features_file(cfg).read_bytes() == features_file(ref).read_bytes()
    for stage in ("neighbors", "umap"):
        assert read_bundle(Path(cfg.work) / stage) == read_bundle(Path(ref.work) / stage)
    assert not ray.is_initialized()  # the distributor disconnected; the cluster fixture stays up


def test_ray_resumes_shards_the_local_distributor_left(cluster, case):
    """Same fingerprints and shard folders: a local run's finished shards are kept by a Ray run."""
    cfg = case["cfg"]("resume-ray", "ray")
    from convnet_search.io.datasets import load_dataset
    from convnet_search.io.store import ArrayStore

    ds = load_dataset(str(case["data"]))
    spec = get_spec("mobilenet_025")
    w = resolve_weights(spec, "none", 0)
    store = ArrayStore(Path(cfg.work) / "features")
    job = plan_extraction(ds, spec, cfg, store, weights=w).job  # what extract_features will run
    ex = job.extractor.build()
    n_shards = len(job.shard_paths)
    assert n_shards >= 4 and job.pending(ex.base_info["weights_digest"]) == list(range(n_shards))
    for s in (0, 3):  # as a killed local run would have left them
        extract_shard(ex, job.task(s))
    left = len(ds) - job.images([0, 3])
    dist = RayDistributor(cluster.address, workers=2)
    try:  # the extraction stage alone: the features file decides everything downstream
        res = extract_features(ds, spec, cfg, ArrayStore(Path(cfg.work) / "features"), weights=w,
                               distributor=dist)
    finally:
        dist.close()
    assert res.status == "resumed" and res.computed == left
    assert features_file(cfg).read_bytes() == features_file(case["ref"]).read_bytes()


def _wait_for_orphaned_workers_to_go(timeout: float = 120.0) -> None:
    """Ray kills a dead driver's actors asynchronously (the raylets SIGKILL their processes): the
    next test starts on a quiet cluster, with only its own workers."""
    import psutil

    def extract_workers() -> list:
        out = []
        for p in psutil.process_iter(["cmdline"]):
            try:
                if any("_ExtractWorker" in part for part in (p.info["cmdline"] or [])):
                    out.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return out
    deadline = time.time() + timeout
    while extract_workers() and time.time() < deadline:
        time.sleep(0.2)


def test_a_killed_ray_driver_is_resumed_by_a_local_run(cluster, case):
    cfg = case["cfg"]("killed", "ray")
    out, work = Path(cfg.out), Path(cfg.work)
    proc = subprocess.Popen([*CLI, "precompute", "--config", str(case["root"] / "c.toml"), "--dataset",
                             str(case["data"]), "--out", str(out), "--work", str(work), "--distributor", "ray",
                             "--ray-address", cluster.address, "--workers", "2"],
                            cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not list(work.rglob("shard-*.npz")):
            assert proc.poll() is None, "the Ray run finished before it could be killed"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _wait_for_orphaned_workers_to_go()
    done = list(work.rglob("shard-*.npz"))
    assert done and not (out / "manifest.json").exists() and not features_file(cfg).exists()
    from convnet_search.io.datasets import load_dataset
    from convnet_search.io.store import ArrayStore

    spec = get_spec("mobilenet_025")
    res = extract_features(load_dataset(str(case["data"])), spec, replace(cfg, distributor="local"),
                           ArrayStore(work / "features"), weights=resolve_weights(spec, "none", 0))
    assert res.status == "resumed" and res.computed < 24  # the killed driver's shards were kept
    assert features_file(cfg).read_bytes() == features_file(case["ref"]).read_bytes()


def test_a_worker_node_lost_mid_extraction_changes_nothing(cluster, case):
    """Remove the node of a worker that has finished a shard: its shard is redone elsewhere and
    the bundle is still the local one, byte for byte."""
    spare = cluster.add_node(num_cpus=1, object_store_memory=200 * MB)  # room for the lost worker
    cluster.wait_for_nodes()
    cfg = case["cfg"]("fault", "ray")
    dist = RayDistributor(cluster.address, workers=2, pause_per_shard=1.0)
    removed: list[str] = []

    def remove_a_busy_node() -> None:
        deadline = time.time() + 300
        while time.time() < deadline and not removed:
            driver = ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
            nodes = {n.node_id: n for n in cluster.worker_nodes if n.node_id != driver}
            for name, (node_id, shards_done) in list(dist.live.items()):
                if driver and shards_done >= 1 and node_id in nodes:
                    cluster.remove_node(nodes[node_id])
                    removed.append(name)
                    return
            time.sleep(0.05)

    watcher = threading.Thread(target=remove_a_busy_node, daemon=True)
    watcher.start()
    try:
        report = pipeline.run(cfg, distributor=dist)
    finally:
        dist.close()
        watcher.join(timeout=5)
    assert removed, "no worker node was removed during the extraction"
    res = report.extract[0]
    assert res.status == "extracted" and res.computed == 24
    assert sum(w.lost for w in res.workers) >= 1  # the lost node really was running a shard
    assert sum(w.shards for w in res.workers) == _shards(cfg)
    assert read_bundle(Path(cfg.out)) == read_bundle(Path(case["ref"].out))
    del spare
