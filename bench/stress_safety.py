"""Stress run for issue 19: concurrent runs on one --out, file churn during extraction and kill -9 at
random points, each ending in a bundle compared to a clean run's (file list + sha256 of every file).

    python bench/stress_safety.py [--seed 0] [--budget 900] [--root /tmp/stress] [--json FILE] [--only KIND]

Seeded (which files churn, when a run is killed) and bounded in time: rounds run until --budget
seconds are spent (a round already started finishes). Each round is one of:

- concurrent: two runs, datasets A and B, different --work, the same --out, started together. One
  must get the --out lock and succeed, the other exit 5 at once; the bundle must equal a clean run
  of the winner's dataset.
- churn: a run over a folder that another thread changes while features are extracted (an image
  deleted, one overwritten with its mtime restored, one added); the run must succeed without a
  traceback, and a second run (picking up anything that changed after the first listed the folder)
  must equal a clean run over the final folder.
- kill9: a run killed with SIGKILL after a random delay, again and again (during extraction,
  neighbours, UMAP or the bundle write), then run to the end: equal to a clean run, and no temporary
  folder of ours left beside --out.

Prints one line per round and a summary; exits 1 if any round failed. Uses the CLI of this checkout
(`python -m convnet_search.cli`), MobileNet α 0.25 with random weights, 2 layers, no TF.js.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
ARGS = ("--models", "mobilenet_025", "--weights", "none", "--no-browser-search", "--num-layers", "2",
        "--metrics", "cosine", "euclidean")


@dataclass
class Round:
    kind: str
    ok: bool
    seconds: float
    detail: str
    notes: list[str] = field(default_factory=list)


def make_images(root: Path, classes: list[str], per_class: int, rng: np.random.Generator) -> None:
    for c_i, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            write_image(root / c / f"img_{i:03d}.png", c_i, rng)


def write_image(path: Path, c_i: int, rng: np.random.Generator) -> None:
    img = rng.integers(0, 60, size=(64, 64, 3), dtype=np.uint8)
    img[8 + 5 * c_i: 40 + 5 * c_i, 10:50] = rng.integers(120, 255, size=3, dtype=np.uint8)
    Image.fromarray(img).save(path)


def cli(*args: str | Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "0"}
    out = log.open("w")
    return subprocess.Popen([sys.executable, "-m", "convnet_search.cli", "precompute", *ARGS, *map(str, args)],
                            cwd=ROOT, env=env, stdout=out, stderr=out)


def run(*args: str | Path, log: Path) -> int:
    return cli(*args, log=log).wait()


def digest_tree(folder: Path) -> dict[str, str]:
    """rel path -> sha256 of every file (the bundle's byte-for-byte identity)."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def clean_bundle(data: Path, where: Path, *extra: str | Path) -> dict[str, str]:
    """The bundle of a fresh run over a copy of `data` (same folder name: the manifest names it),
    with the same extra arguments (a --config) as the run it is compared with."""
    copy = where / "data" / data.name
    shutil.rmtree(where, ignore_errors=True)
    shutil.copytree(data, copy)
    code = run(*extra, "--dataset", copy, "--work", where / "w", "--out", where / "out",
               log=where.with_suffix(".log"))
    if code != 0:
        raise RuntimeError(f"clean run failed ({code}): {where.with_suffix('.log')}")
    return digest_tree(where / "out")


def compare(got: dict[str, str], want: dict[str, str]) -> str:
    if got == want:
        return ""
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    differ = sorted(k for k in set(got) & set(want) if got[k] != want[k])
    return f"bundle differs: missing {missing[:3]}, extra {extra[:3]}, different {differ[:3]}"


def leftovers(out: Path) -> list[str]:
    """Temporary folders beside --out (ours are named .<out>.XXXX.tmp / .<out>.old)."""
    return sorted(p.name for p in out.parent.iterdir()
                  if p.name.startswith(f".{out.name}.") and p.is_dir())


def concurrent_round(base: Path, rng: random.Random, n: int) -> Round:
    t0 = time.time()
    d = base / f"concurrent-{n}"
    A, B = d / "A" / "photos_a", d / "B" / "photos_b"
    np_rng = np.random.default_rng(rng.randrange(2**32))
    make_images(A, ["x", "y", "z"], 10, np_rng)
    make_images(B, ["p", "q"], 12, np_rng)
    out = d / "shared"
    pa = cli("--dataset", A, "--work", d / "wA", "--out", out, log=d / "a.log")
    time.sleep(rng.uniform(0, 0.5))
    pb = cli("--dataset", B, "--work", d / "wB", "--out", out, log=d / "b.log")
    codes = (pa.wait(), pb.wait())
    logs = [(d / "a.log").read_text(), (d / "b.log").read_text()]
    notes = [f"exit codes {codes}"]
    if sorted(codes) != [0, 5]:
        return Round("concurrent", False, time.time() - t0, f"expected one 0 and one 5, got {codes}", notes)
    loser = logs[codes.index(5)]
    if "is in use by another convnet-search run" not in loser or "Traceback" in loser:
        return Round("concurrent", False, time.time() - t0, "the refused run did not say who holds --out", notes)
    winner = A if codes[0] == 0 else B
    problem = compare(digest_tree(out), clean_bundle(winner, d / "clean"))
    return Round("concurrent", not problem, time.time() - t0,
                 problem or f"{winner.name} won, the other exited 5 naming the holder; bundle = clean run", notes)


def churn_round(base: Path, rng: random.Random, n: int) -> Round:
    t0 = time.time()
    d = base / f"churn-{n}"
    data = d / "data" / "photos"
    np_rng = np.random.default_rng(rng.randrange(2**32))
    classes = ["a", "b", "c"]
    make_images(data, classes, 40, np_rng)
    (d / "c.toml").write_text("shard_size = 8\n")
    work, out = d / "w", d / "out"
    proc = cli("--config", d / "c.toml", "--dataset", data, "--work", work, "--out", out, log=d / "run.log")
    changes: list[str] = []

    def churn() -> None:
        deadline = time.time() + 600
        while time.time() < deadline and not list(work.rglob("*.parts-*/shard-*.npz")):
            if proc.poll() is not None:
                return
            time.sleep(0.05)
        files = sorted(data.rglob("*.png"))
        gone, swapped = rng.sample(files, 2)
        gone.unlink()
        changes.append(f"deleted {gone.relative_to(data)}")
        st = swapped.stat()
        write_image(d / "tmp.png", 2, np_rng)
        os.replace(d / "tmp.png", swapped)
        os.utime(swapped, ns=(st.st_atime_ns, st.st_mtime_ns))
        changes.append(f"overwrote {swapped.relative_to(data)} (mtime restored)")
        added = data / rng.choice(classes) / "late_arrival.png"
        write_image(added, 1, np_rng)
        changes.append(f"added {added.relative_to(data)}")

    th = threading.Thread(target=churn)
    th.start()
    code = proc.wait()
    th.join()
    log = (d / "run.log").read_text()
    notes = changes + [f"first run exit {code}",
                       f"relisted during the run: {'listing the dataset folders again' in log}"]
    if code != 0 or "Traceback" in log:
        return Round("churn", False, time.time() - t0, f"run under churn failed (exit {code})", notes)
    code = run("--config", d / "c.toml", "--dataset", data, "--work", work, "--out", out, log=d / "again.log")
    if code != 0:
        return Round("churn", False, time.time() - t0, f"follow-up run failed (exit {code})", notes)
    problem = compare(digest_tree(out), clean_bundle(data, d / "clean", "--config", d / "c.toml"))
    return Round("churn", not problem, time.time() - t0, problem or "no traceback; bundle = clean run of the final folder", notes)


def kill9_round(base: Path, rng: random.Random, n: int) -> Round:
    t0 = time.time()
    d = base / f"kill9-{n}"
    data = d / "data" / "photos"
    make_images(data, ["a", "b", "c"], 14, np.random.default_rng(rng.randrange(2**32)))
    work, out = d / "w", d / "site" / "bundle"
    args = ("--dataset", data, "--work", work, "--out", out)
    notes = []
    for k in range(rng.randint(2, 4)):
        proc = cli(*args, log=d / f"killed-{k}.log")
        delay = rng.uniform(3, 60)
        try:
            proc.wait(timeout=delay)
            notes.append(f"kill {k}: finished before {delay:.1f}s")
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            notes.append(f"kill {k}: SIGKILL after {delay:.1f}s")
    code = run(*args, log=d / "final.log")
    if code != 0:
        return Round("kill9", False, time.time() - t0, f"final run failed (exit {code})", notes)
    # A kill during the bundle write itself: --only bundle --force, killed once it made its temp folder.
    proc = cli(*args, "--only", "bundle", "--force", log=d / "bundle-killed.log")
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not any(n.endswith(".tmp") for n in leftovers(out)):
        time.sleep(0.01)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        notes.append(f"bundle write killed; left beside --out: {leftovers(out)}")
    code = run(*args, log=d / "after-bundle-kill.log")
    left = leftovers(out)
    if code != 0 or left:
        return Round("kill9", False, time.time() - t0, f"after the bundle kill: exit {code}, left {left}", notes)
    problem = compare(digest_tree(out), clean_bundle(data, d / "clean"))
    return Round("kill9", not problem, time.time() - t0, problem or "resumed; no temp folder left; bundle = clean run", notes)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget", type=float, default=900, help="seconds; a started round finishes")
    ap.add_argument("--root", type=Path, default=Path("/tmp/convnet-search-stress"))
    ap.add_argument("--json", type=Path, help="write the rounds here")
    ap.add_argument("--only", choices=["concurrent", "churn", "kill9"], action="append",
                    help="run only these round kinds (repeatable)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    shutil.rmtree(args.root, ignore_errors=True)
    args.root.mkdir(parents=True)
    kinds = [k for k in (concurrent_round, churn_round, kill9_round)
             if not args.only or k.__name__.removesuffix("_round") in args.only]
    rounds: list[Round] = []
    t0 = time.time()
    n = 0
    while time.time() - t0 < args.budget:
        r = kinds[n % len(kinds)](args.root, rng, n)
        rounds.append(r)
        print(f"[{'ok' if r.ok else 'FAIL'}] {r.kind} #{n} ({r.seconds:.0f}s): {r.detail}; " + "; ".join(r.notes),
              flush=True)
        n += 1
    failed = [r for r in rounds if not r.ok]
    print(f"{len(rounds)} rounds in {time.time() - t0:.0f}s (seed {args.seed}): {len(rounds) - len(failed)} ok, "
          f"{len(failed)} failed")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rounds], indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
