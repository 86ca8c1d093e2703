"""The bench sections that load Keras run their work in a child process: Keras reads KERAS_HOME
once, at import, and bench/run.py's other sections import it earlier (the child also gives its
memory back when it ends). Both sides of that protocol live here, so they cannot drift apart:
the parent runs `<section>.py --worker --out FILE [--quick]` and reads FILE, the child parses those
flags.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent


def run_worker(script: str | Path, name: str, env: dict[str, str], quick: bool, skip: str | None = None) -> dict:
    """Run `script --worker` (bench_<name>.py) with `env` from the repository root and return the
    JSON it wrote; its progress lines go straight to the terminal. `skip`: the section's
    skip_reason(), raised instead (run.py checks it first; this guards direct calls)."""
    if skip:
        raise RuntimeError(skip)
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        out = Path(tmp) / f"{name}.json"
        cmd = [sys.executable, str(Path(script).resolve()), "--worker", "--out", str(out)]
        proc = subprocess.run(cmd + (["--quick"] if quick else []), env=env, cwd=ROOT)
        if proc.returncode != 0:
            raise RuntimeError(f"bench_{name} worker exited with {proc.returncode} (its output is above)")
        return json.loads(out.read_text(encoding="utf-8"))


def worker_args(argv: list[str] | None, quick_help: str | None = None, **parser_kwargs) -> argparse.Namespace:
    """The flags of a section run as a script: --worker (the child's side), --quick, --out."""
    ap = argparse.ArgumentParser(**parser_kwargs)
    ap.add_argument("--worker", action="store_true", help="compute (needs KERAS_HOME set); else run + print")
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--out", type=Path, help="write the result JSON here")
    return ap.parse_args(argv)


def section_main(args: argparse.Namespace, *, worker: Callable[[bool], dict], run: Callable[[bool], dict],
                 skip_reason: Callable[[], str | None], report: Callable[[dict], None]) -> dict | None:
    """What a section's script does with worker_args' flags. The child (--worker) computes and writes
    --out. The parent says why it skips (and returns None), else runs the child, writes --out and
    prints the report. Returns the result."""
    if args.worker:
        result = worker(args.quick)
        _write(args.out, result)
        return result
    reason = skip_reason()
    if reason:
        print(f"note: {reason}", file=sys.stderr)
        return None
    result = run(args.quick)
    if args.out:
        _write(args.out, result)
    report(result)
    return result


def _write(path: Path | None, result: dict) -> None:
    """--out, written whole or not at all (the store's atomic write; numpy scalars as floats);
    standard output without it."""
    from convnet_search.io.store import atomic_write_bytes

    text = json.dumps(result, indent=1, default=float)
    if path is None:
        print(text)
        return
    atomic_write_bytes(path, text.encode("utf-8"))
