"""Fuzz-style: 200 seeded random TOML configs and flag combinations through `cli.main` in-process.

Each case runs in its own sandbox (cwd) holding user files: a tiny dataset (2 classes x 10 PNGs), a
user-docs folder, a folder that looks like a bundle (manifest.json + notes.txt), an empty folder and
a plain file. `--out`/`--work` (from the TOML or from flags) point at fresh folders or, on purpose, at
those user folders, the dataset, a class folder, each other, a file or a path under a missing parent;
`--force` is added at random. Properties:

- never a traceback: `main` returns 0, 2 or 3 and stderr holds no "Traceback";
- a config with a wrong value is refused (exit 2) before anything is created;
- no pre-existing file in the sandbox is changed or removed (path, size, mtime, sha256 snapshot).

Most cases hold at least one wrong value (random keys, random wrong types / ranges / choices, in the
TOML or as flags) and must stop at validation. Every 25th case is fully valid (random valid values,
mobilenet_025, weights none, 1-2 layers) and takes the next of the folder SCENARIOS, so the engine's
handling of dangerous --out/--work choices is really exercised (8 real runs at most; most finish
in seconds once TensorFlow and numba are warm).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import random
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convnet_search.cli import main

N_CASES = 200
# Every VALID_EVERY-th case is fully valid and may run the real pipeline (~3-8 s each once TF and
# numba are warm; the first costs ~50 s of imports and JIT). Each takes the next folder scenario.
VALID_EVERY = 25
N_PER_CLASS = 10  # 2 x 10 images: k up to 19 keeps all; larger k shrinks to N - 1


# ------------------------------------------------------------------------------------------------
# Sandbox
# ------------------------------------------------------------------------------------------------

def _png_bytes() -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for c in range(2):
        for _ in range(N_PER_CLASS):
            img = rng.integers(0, 90, size=(12, 12, 3), dtype=np.uint8)
            img[..., c * 2] += 150  # red-ish class a, blue-ish class b
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            out.append(buf.getvalue())
    return out


PNGS = _png_bytes()


def make_sandbox(root: Path) -> None:
    for i, data in enumerate(PNGS):
        cls = "a" if i < N_PER_CLASS else "b"
        (root / "ds" / cls).mkdir(parents=True, exist_ok=True)
        (root / "ds" / cls / f"{i:02d}.png").write_bytes(data)
    (root / "docs" / "notes").mkdir(parents=True)
    (root / "docs" / "thesis.tex").write_text("\\documentclass{article}\n")
    (root / "docs" / "notes" / "a.txt").write_text("do not delete\n")
    (root / "bundle_like").mkdir()  # repro 2: a manifest.json does not make a folder ours
    (root / "bundle_like" / "manifest.json").write_text("{}")
    (root / "bundle_like" / "notes.txt").write_text("hi\n")
    (root / "empty").mkdir()
    (root / "afile.txt").write_text("a plain file\n")


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def all_paths(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# ------------------------------------------------------------------------------------------------
# Random cases
# ------------------------------------------------------------------------------------------------

class Raw(str):
    """A TOML literal written as is (dates, nan, inf)."""


def toml_value(v) -> str:
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v == math.inf else ("-inf" if v == -math.inf else repr(v)))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string for these ASCII values
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


DATE = Raw("1979-05-27")

# Wrong values per kind: wrong types, bool-as-int, empty, out of range, non-finite, unknown choice.
BAD_INT = ["15", True, 2.5, [1], {"a": 1}, DATE, -1, 0, float("nan")]
BAD_FLOAT = ["3", True, float("nan"), float("inf"), [3.0], 0.5, -2, DATE]
BAD_BOOL = ["no", "yes", 0, 1, "false", [True], 1.0]
BAD_STR = [3, True, "", [], ["avg"], {"x": 1}, 1.5]
BAD_LIST = ["ds/small", [], [""], [1, 2], [True], {"a": "b"}, 5]


def valid_values(rng: random.Random) -> dict:
    metrics = rng.sample(["cosine", "euclidean", "sqeuclidean", "minkowski", "cos", "l2"], rng.randint(1, 3))
    return {
        "models": ["mobilenet_025"],
        "weights": "none",
        "num_layers": rng.randint(1, 2),
        "metrics": metrics,
        "minkowski_p": rng.choice([1, 3, 4.5, 1.5]),
        "k": rng.randint(1, 2 * N_PER_CLASS + 5),
        "pooling": rng.choice(["avg", "max", ["gem", "grid2"], ["avg", "max", "gem"]]),
        "seed": rng.choice([0, 1, 7, 2**32 - 1]),
        "batch_size": rng.choice([1, 4, 32, 1000]),
        "shard_size": rng.choice([7, 16, 256]),
        "umap": {"n_neighbors": rng.randint(2, 30), "min_dist": rng.choice([0, 0.0, 0.5, 1.0]),
                 "metric": rng.choice(["cosine", "euclidean", "manhattan"])},
        # browser_model mobilenet is not in the run: with browser_search true the export is skipped
        # (auto would export mobilenet_025: a TF.js conversion per case, too slow for a fuzz)
        "browser_model": "mobilenet",
        "browser_search": rng.choice([False, True]),
        "quantize": rng.choice(["uint8", "uint16", "float16", "none"]),
        "follow_links": rng.choice([False, True]),
    }


def invalid_value(rng: random.Random, key: str):
    table = {
        "datasets": BAD_LIST, "models": BAD_LIST + [["alexnet"]], "metrics": BAD_LIST + [["hamming"]],
        "num_layers": BAD_INT, "k": BAD_INT + [0, "15", -3], "seed": BAD_INT[:-3] + [-5, 2**32],
        "batch_size": BAD_INT, "shard_size": BAD_INT, "minkowski_p": BAD_FLOAT + [2, 2.0],
        "pooling": BAD_STR + ["median", ["avg", "median"], []], "quantize": BAD_STR + ["int4"], "weights": BAD_STR,
        "browser_model": BAD_STR + ["alexnet"], "browser_search": BAD_BOOL, "follow_links": BAD_BOOL,
        "out": BAD_STR, "work": BAD_STR,
        "umap": [3, "x", [1], {"n_neighbors": 1}, {"min_dist": 2}, {"min_dist": "0.1"}, {"metric": "hamming"},
                 {"neighbours": 5}, {"n_neighbors": True}],
        "layers": ["block1", 2, {"mobilenet_025": "conv1"}, {"mobilenet_025": [1]}, {"alexnet": ["x"]},
                   {"vgg16": ["block1_pool"]}],
    }
    return rng.choice(table[key])


# Flags: key -> (flag, how a value is written on the command line); None = TOML only.
FLAGS = {"datasets": "--dataset", "models": "--models", "metrics": "--metrics", "num_layers": "--num-layers",
         "minkowski_p": "--minkowski-p", "k": "--k", "pooling": "--pooling", "weights": "--weights",
         "seed": "--seed", "batch_size": "--batch-size"}
BAD_FLAG_VALUES = {"--k": ["abc", "0", "15.0", "-1"], "--num-layers": ["0", "x"], "--seed": ["-1", "1e3"],
                   "--batch-size": ["0", "2.5"], "--minkowski-p": ["nan", "2", "0.5", "inf", "p"],
                   "--pooling": ["median", ""], "--metrics": ["hamming"], "--models": ["alexnet"],
                   "--weights": [""], "--dataset": [""]}

# Where --out / --work may point (relative to the sandbox).
PLACES = ["run/out", "run/work", "docs", "bundle_like", "ds", "ds/a", "ds/newdir", "afile.txt",
          "missing/parent/dir", "empty", "docs/notes"]
# Folder scenarios of the fully valid cases, in turn: (out, work, --force). None = default folder.
SCENARIOS = [
    ("run/out", "run/work", False),  # ordinary: must finish a bundle
    ("run/out", "run/work", True),
    ("run/out", "docs", True),  # reproduction 1: --force with --work at a folder of user files
    ("bundle_like", "run/work", False),  # reproduction 2: a stray manifest.json in --out
    ("run/out", "ds", True),  # --work is the dataset
    ("ds/newdir", "run/work", False),  # --out inside the dataset
    ("run/out", "afile.txt", False),  # --work is a file
    ("missing/parent/dir", "SAME", True),  # --out under a missing parent, --work = --out
]


@dataclass
class Case:
    seed: int
    argv: list[str]
    toml: str | None
    invalid: bool  # holds at least one wrong value: must be refused by validation
    notes: list[str] = field(default_factory=list)


def make_case(seed: int) -> Case:
    rng = random.Random(seed)
    invalid = seed % VALID_EVERY != VALID_EVERY // 2
    values = valid_values(rng)
    values["datasets"] = ["ds"] if rng.random() < 0.85 or not invalid else [
        rng.choice(["missing", "docs", "afile.txt", "ds/a", "bundle_like"])]
    wrong: set[str] = set()
    if invalid:
        for key in rng.sample(sorted(set(values) | {"browser_model", "layers", "out", "work"}), rng.randint(1, 4)):
            wrong.add(key)
            if key in FLAGS and FLAGS[key] in BAD_FLAG_VALUES and rng.random() < 0.3:
                values[key] = ("flag", rng.choice(BAD_FLAG_VALUES[FLAGS[key]]))
            else:
                values[key] = invalid_value(rng, key)
    # Where each key comes from: the TOML file or its flag. A wrong TOML value stays in the TOML
    # (as text on the command line `"15"` would become a valid 15); wrong flag values come as text.
    toml: dict = {}
    argv = ["precompute"]
    for key, value in values.items():
        if isinstance(value, tuple) and value[0] == "flag":
            argv += [FLAGS[key], value[1]]
        elif key in FLAGS and key not in wrong and rng.random() < 0.4 and _flag_ok(value):
            argv += [FLAGS[key], *([str(v) for v in value] if isinstance(value, list) else [str(value)])]
        elif key == "browser_search" and value is False and rng.random() < 0.5:
            argv.append("--no-browser-search")
        elif key == "follow_links" and value is True and rng.random() < 0.5:
            argv.append("--follow-links")
        else:
            toml[key] = value
    scenario = None if invalid else SCENARIOS[(seed // VALID_EVERY) % len(SCENARIOS)]
    for i, key in enumerate(("out", "work")):
        if key in toml or (scenario is None and rng.random() < 0.1):
            continue  # (a wrong value from above, or the defaults inside the sandbox)
        place = scenario[i] if scenario else rng.choice(PLACES + ["SAME"] * (key == "work"))
        if rng.random() < 0.5:
            toml[key] = place
        else:
            argv += [f"--{key}", place]
    _resolve_same(toml, argv)
    if (scenario[2] if scenario else rng.random() < 0.3):
        argv.append("--force")
    if invalid and rng.random() < 0.05:
        toml["modles"] = ["vgg16"]  # an unknown key is a wrong value too
    text = "\n".join(f"{k} = {toml_value(v)}" for k, v in toml.items()) + "\n"
    if invalid and rng.random() < 0.03:
        text += "k = [\n"  # broken TOML
    return Case(seed, argv + ["--config", "cfg.toml"], text, invalid)


def _flag_ok(value) -> bool:
    """Values a flag can carry as text without changing meaning (strings, ints, floats, str lists)."""
    if isinstance(value, bool) or isinstance(value, dict) or isinstance(value, Raw):
        return False
    if isinstance(value, list):
        return len(value) > 0 and all(isinstance(v, str) and v and not v.startswith("-") for v in value)
    if isinstance(value, str):
        return value != "" and not value.startswith("-")
    return isinstance(value, (int, float)) and math.isfinite(value) and value >= 0


def _resolve_same(toml: dict, argv: list[str]) -> None:
    out = toml.get("out") or (argv[argv.index("--out") + 1] if "--out" in argv else "frontend/public/data")
    if toml.get("work") == "SAME":
        toml["work"] = out
    if "--work" in argv and argv[argv.index("--work") + 1] == "SAME":
        argv[argv.index("--work") + 1] = str(out)  # (a wrong, non-string out makes "3": still wrong)


# ------------------------------------------------------------------------------------------------
# Running
# ------------------------------------------------------------------------------------------------

@dataclass
class Result:
    case: Case
    rc: object = None
    stderr: str = ""
    exception: str | None = None
    changed: list[str] = field(default_factory=list)  # pre-existing files changed or gone
    created: list[str] = field(default_factory=list)  # new paths after a refused (invalid) config
    in_dataset: list[str] = field(default_factory=list)  # new paths inside the dataset root


def run_case(case: Case, sandbox: Path) -> Result:
    make_sandbox(sandbox)
    (sandbox / "cfg.toml").write_text(case.toml)
    before, paths_before = snapshot(sandbox), all_paths(sandbox)
    res = Result(case)
    err, out = io.StringIO(), io.StringIO()
    cwd, showwarning = os.getcwd(), warnings.showwarning
    try:
        os.chdir(sandbox)  # relative paths and the default --out/--work stay inside the sandbox
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            res.rc = main(case.argv)
    except BaseException:  # noqa: BLE001 - an escaped exception is exactly what the fuzz looks for
        res.exception = traceback.format_exc()
    finally:
        os.chdir(cwd)
        warnings.showwarning = showwarning  # main() installs a console-bound one
    res.stderr = err.getvalue()
    after = snapshot(sandbox)
    res.changed = sorted(p for p, sig in before.items() if after.get(p) != sig)
    new_paths = sorted(all_paths(sandbox) - paths_before)
    if case.invalid:
        res.created = new_paths
    res.in_dataset = [p for p in new_paths if Path(p).parts[0] == "ds"]
    return res


@pytest.fixture(scope="module")
def fuzz_results(tmp_path_factory) -> list[Result]:
    root = tmp_path_factory.mktemp("fuzz")
    t0 = time.perf_counter()
    results = [run_case(make_case(seed), root / f"case{seed:03d}") for seed in range(N_CASES)]
    ran = sum(1 for r in results if not r.case.invalid)
    print(f"\nfuzz: {N_CASES} cases ({ran} fully valid) in {time.perf_counter() - t0:.1f}s")
    return results


def _describe(r: Result) -> str:
    return (f"seed {r.case.seed}: argv={' '.join(r.case.argv)!r} toml={r.case.toml!r} rc={r.rc!r}\n"
            f"{r.exception or r.stderr[-1500:]}")


def test_generator_mixes_valid_and_invalid_cases():
    cases = [make_case(s) for s in range(N_CASES)]
    assert sum(not c.invalid for c in cases) == len(SCENARIOS)  # a few real runs, the rest stops at validation
    assert sum("--force" in c.argv for c in cases) > 30
    assert make_case(7).argv == make_case(7).argv and make_case(7).toml == make_case(7).toml  # seeded


def _crashed(r: Result) -> bool:
    return bool(r.exception) or "Traceback" in r.stderr or r.rc not in (0, 2, 3)


def test_fuzz_wrong_values_are_refused_without_a_traceback_before_anything_is_created(fuzz_results):
    invalid = [r for r in fuzz_results if r.case.invalid]
    assert len(invalid) == N_CASES - len(SCENARIOS)
    bad = [r for r in invalid if _crashed(r) or r.rc != 2 or "error:" not in r.stderr or r.created]
    assert not bad, f"{len(bad)} case(s):\n\n" + "\n\n".join(_describe(r) + f"\ncreated: {r.created}" for r in bad[:5])


def test_fuzz_some_valid_cases_really_run(fuzz_results):
    ran = [r for r in fuzz_results if not r.case.invalid and r.rc == 0]
    assert ran, "no fuzz case reached a finished bundle: the engine's folder handling went untested"
    for r in ran:
        assert "bundle written" in r.stderr or "bundle up to date" in r.stderr, _describe(r)


def test_fuzz_valid_runs_never_crash(fuzz_results):
    bad = [r for r in fuzz_results if not r.case.invalid and _crashed(r)]
    assert not bad, f"{len(bad)} case(s) crashed:\n\n" + "\n\n".join(_describe(r) for r in bad[:5])


def test_fuzz_never_touches_a_user_file(fuzz_results):
    bad = [r for r in fuzz_results if r.changed]
    assert not bad, f"{len(bad)} case(s) changed or removed user files:\n\n" + "\n\n".join(
        _describe(r) + f"\nchanged/removed: {r.changed[:8]}" for r in bad[:5])


def test_fuzz_never_writes_into_the_dataset(fuzz_results):
    bad = [r for r in fuzz_results if r.in_dataset]
    assert not bad, f"{len(bad)} case(s) wrote into the dataset folder:\n\n" + "\n\n".join(
        _describe(r) + f"\nnew in ds/: {r.in_dataset[:8]}" for r in bad[:5])
