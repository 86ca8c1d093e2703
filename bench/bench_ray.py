"""--distributor ray vs local on one machine: Ray's overhead, and 1 vs 2 single-CPU workers.

Job: feature extraction (the stage that grows with a collection) of N synthetic 96×96 images
(N = 320, --quick 64) with MobileNet (α = 1, random weights: the same compute as ImageNet weights),
every default pooling, shards of 32, batches of 16. Each configuration runs the same job four times
in one session: the first pass pays the start (Ray: ray.init, each actor's TensorFlow import and
model build; local: the model build), the next three are the steady state a long run sees, and the
fastest of them is kept (the machine is shared: the best of three is the least disturbed). Reported:

* ``start_s``: the first pass minus the steady one (plus ray.init for Ray): what a run pays once.
* ``extract_s`` / ``images_per_s``: the steady pass (Ray: wall time of the whole pass on the
  driver, dispatch and progress streaming included; local: the same loop in this process).
* rows ``overhead``: Ray with one worker given both CPUs vs local (which uses both cores), steady
  and end to end (start included); goal ≤ 1.15× steady.
* row ``scaling``: two single-CPU workers vs one (TensorFlow limited to one thread per worker);
  goal ≥ 1.7× on two cores.
* row ``ceiling``: what the machine allows, measured in the same run: the same job without Ray,
  in 2 independent single-thread processes (each its half of the shards, even and odd, started
  together; wall time until both are done) vs 1 process doing every shard (cases ``plain-…``).
  Two processes run slower each than one alone (shared caches and memory bandwidth, and whatever
  else the machine runs), so ``scaling`` is read against this row, not against 2.0.

The outputs of every pass are checked byte for byte against the local pass (same shards).
Usage: python bench/bench_ray.py [--quick]
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

MODEL, SHARD, BATCH, SIZE = "mobilenet", 32, 16, 96
PASSES = 4  # the first pays the start; the best of the other three is the steady figure
MB = 1024 * 1024


def skip_reason() -> str | None:
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        return "ray is not installed (pip install 'convnet-search[ray]')"
    return None


def _images(root: Path, n: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / f"c{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")
    return root


def _job(ds, tmp: Path, tag: str):
    from convnet_search.config import RunConfig
    from convnet_search.nets.extractor import ExtractJob
    from convnet_search.stages.extract import extractor_spec
    from convnet_search.nets.models import get_spec
    from convnet_search.io.shards import Shard
    from convnet_search.nets.weights import resolve_weights

    spec = get_spec(MODEL)
    cfg = RunConfig(models=(MODEL,), weights="none")
    ex = extractor_spec(spec, cfg, resolve_weights(spec, "none", 0))
    # equal slices, not content-defined shards: both workers get the same amount of work, so the
    # scaling row measures Ray and the cores, not how evenly the digests happened to cut
    plan = [Shard(a, min(a + SHARD, len(ds)), f"bench-{a:06d}") for a in range(0, len(ds), SHARD)]
    return ExtractJob.of(ds, ex, tmp / tag, plan, BATCH)


def _shards(job) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(job.shard_dir.glob("shard-*.npz")))


def _plain_child(images: str, tmp: str, tag: str, shards: list[int]) -> None:
    """`bench_ray.py --_plain`: one process without Ray, TensorFlow on one thread (a Ray worker's
    settings), runs `shards` of the job each time the parent writes a line; answers "done"."""
    from convnet_search.io.datasets import load_dataset
    from convnet_search.nets.extractor import extract_shard_steps
    from convnet_search.runtime import import_tensorflow

    tf = import_tensorflow()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    ds = load_dataset(images)
    ex = _job(ds, Path(tmp), "unused").extractor.build()
    print("ready", flush=True)
    for i, _ in enumerate(sys.stdin):
        job = _job(ds, Path(tmp), f"{tag}-{i}")
        for s in shards:
            for _ in extract_shard_steps(ex, job.task(s), 1):
                pass
        print("done", flush=True)


def _plain_passes(images: Path, tmp: Path, procs: int, shards: int) -> dict:
    """The job's shards split over `procs` independent processes (round robin), PASSES times;
    wall time from the start signal until every process is done."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # as Ray sets it for a 1-CPU worker
    tag = f"plain-{procs}"
    children = [subprocess.Popen([sys.executable, __file__, "--_plain", str(images), str(tmp), tag,
                                  *map(str, range(i, shards, procs))],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
                for i in range(procs)]
    try:
        t0 = time.perf_counter()
        for c in children:
            assert c.stdout.readline().strip() == "ready", f"{tag}: a child failed to start"
        start = time.perf_counter() - t0
        walls = []
        for _ in range(PASSES):
            t = time.perf_counter()
            for c in children:
                c.stdin.write("go\n")
                c.stdin.flush()
            for c in children:
                assert c.stdout.readline().strip() == "done", f"{tag}: a child failed"
            walls.append(time.perf_counter() - t)
    finally:
        for c in children:
            c.stdin.close()
            c.wait()
    return {"connect_s": start, "first_s": walls[0], "extract_s": min(walls[1:]),
            "steady_all_s": [round(w, 2) for w in walls[1:]],
            "dirs": [tmp / f"{tag}-{i}" for i in range(PASSES)]}


def _two_passes(dist, ds, tmp: Path, tag: str) -> dict:
    t0 = time.perf_counter()
    dist.connect()
    connect = time.perf_counter() - t0
    walls = []
    jobs = []
    for i in range(PASSES):
        job = _job(ds, tmp, f"{tag}-{i}")
        t = time.perf_counter()
        run = dist.extract(job)
        walls.append(time.perf_counter() - t)
        jobs.append((job, run))
    dist.close()
    return {"connect_s": connect, "first_s": walls[0], "extract_s": min(walls[1:]),
            "steady_all_s": [round(w, 2) for w in walls[1:]], "jobs": jobs}


def run(quick: bool = False) -> dict:
    from convnet_search.io.datasets import load_dataset
    from convnet_search.distribute.local import LocalDistributor
    from convnet_search.distribute.ray import RayDistributor

    n = 64 if quick else 320
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp_name:
        tmp = Path(tmp_name)
        ds = load_dataset(str(_images(tmp / "images", n)))
        load = os.getloadavg()
        local = _two_passes(LocalDistributor(), ds, tmp, "local")
        ref = _shards(local["jobs"][1][0])
        # The local pass: busy time of the shard loop (the model build is the first pass's extra).
        results = {"local": local}
        init = {"num_cpus": 2, "object_store_memory": 200 * MB}
        loads = {"local": load[0]}
        for tag, workers, cpus in (("ray-1x2", 1, 2), ("ray-1x1", 1, 1), ("ray-2x1", 2, 1),
                                   ("plain-1", 1, 0), ("plain-2", 2, 0)):
            loads[tag] = os.getloadavg()[0]
            if tag.startswith("plain"):
                results[tag] = _plain_passes(tmp / "images", tmp, workers, len(local["jobs"][0][0].shard_keys))
                for d in results[tag]["dirs"]:
                    assert b"".join(p.read_bytes() for p in sorted(d.glob("shard-*.npz"))) == ref, \
                        f"{tag}: shards differ from the local ones"
                continue
            dist = RayDistributor("local", workers=workers, cpus_per_worker=cpus, init_kwargs=init)
            results[tag] = _two_passes(dist, ds, tmp, tag)
            for job, _ in results[tag]["jobs"]:
                assert _shards(job) == ref, f"{tag}: shards differ from the local ones"
        for tag, r in results.items():
            start = r["first_s"] - r["extract_s"] + r["connect_s"]
            rows.append({"case": tag, "load_1min": round(loads[tag], 2), "images": n, "start_s": round(start, 2),
                         "extract_s": round(r["extract_s"], 2),
                         "images_per_s": round(n / r["extract_s"], 1), "steady_passes_s": r["steady_all_s"],
                         "identical_to_local": True})
        steady = results["ray-1x2"]["extract_s"] / results["local"]["extract_s"]
        end_to_end = ((results["ray-1x2"]["connect_s"] + results["ray-1x2"]["first_s"])
                      / (results["local"]["first_s"]))
        scaling = results["ray-1x1"]["extract_s"] / results["ray-2x1"]["extract_s"]
        ceiling = results["plain-1"]["extract_s"] / results["plain-2"]["extract_s"]
        rows.append({"case": "overhead: ray 1 worker × 2 CPUs / local", "ratio_steady": round(steady, 3),
                     "ratio_end_to_end": round(end_to_end, 3), "goal": "≤ 1.15 (steady)"})
        rows.append({"case": "scaling: 2 workers × 1 CPU vs 1 × 1", "ratio": round(scaling, 3), "goal": "≥ 1.7"})
        rows.append({"case": "ceiling: 2 processes × 1 thread vs 1, no Ray", "ratio": round(ceiling, 3),
                     "ray_scaling_of_ceiling": round(scaling / ceiling, 3)})
        load_after = os.getloadavg()
    meta = {"model": MODEL, "images": n, "shard_size": SHARD, "batch_size": BATCH, "image_px": SIZE,
            "loadavg_1_5_15_before": [round(x, 2) for x in load],
            "loadavg_1_5_15_after": [round(x, 2) for x in load_after],
            "note": "one machine, 2 cores shared with other jobs: the load average says how quiet it was"}
    return {"rows": rows, "meta": meta}


if __name__ == "__main__":
    import json

    if sys.argv[1:2] == ["--_plain"]:
        _plain_child(sys.argv[2], sys.argv[3], sys.argv[4], [int(x) for x in sys.argv[5:]])
        sys.exit(0)
    print(json.dumps(run("--quick" in sys.argv), indent=1))
