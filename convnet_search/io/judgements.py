"""Reading the explorer's exported judgements file (docs/judgements.md, format version 1), checked.

`read_judgements(path)` returns the marks as typed entries, or raises JudgementsFileError naming the
file and every problem (entry number and field). The file is only read, never changed.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

FORMAT = "convnet-search-judgements"
VERSION = 1
MAX_PROBLEMS = 10  # listed in one error; the count of the rest follows


class JudgementsFileError(ValueError):
    """The judgements file is unreadable or not in the documented format."""


@dataclass(frozen=True)
class Judgement:
    dataset: str
    query: str  # file name relative to the dataset's image folder, as in the bundle's names pages
    result: str
    similar: bool
    at: str


@dataclass(frozen=True)
class JudgementsFile:
    path: Path
    sha256: str  # of the file's bytes: what a stage fingerprints
    judgements: tuple[Judgement, ...]


def read_judgements(path: Path) -> JudgementsFile:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise JudgementsFileError(f"{path}: cannot read the judgements file ({exc.strerror or exc})") from exc
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise JudgementsFileError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise JudgementsFileError(f"{path}: not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from exc
    if not isinstance(data, dict):
        raise JudgementsFileError(f"{path}: expected a JSON object with \"format\": \"{FORMAT}\"")
    if data.get("format") != FORMAT or data.get("version") != VERSION:
        raise JudgementsFileError(f"{path}: not a judgements file of format {FORMAT!r} version {VERSION} "
                                  f"(found format {data.get('format')!r}, version {data.get('version')!r}); "
                                  "export it from the explorer's \"Your judgements\" panel")
    entries = data.get("judgements")
    if not isinstance(entries, list):
        raise JudgementsFileError(f"{path}: \"judgements\" must be a list of entries")
    out, problems = [], []
    for i, e in enumerate(entries, 1):
        problem = _entry_problem(e)
        if problem:
            problems.append(f"entry {i}: {problem}")
        else:
            out.append(Judgement(e["dataset"], e["query"], e["result"], e["similar"], e["at"]))
    if problems:
        more = f"\n  … and {len(problems) - MAX_PROBLEMS} more" if len(problems) > MAX_PROBLEMS else ""
        raise JudgementsFileError(f"{path}: {len(problems)} bad entr{'y' if len(problems) == 1 else 'ies'}:\n  "
                                  + "\n  ".join(problems[:MAX_PROBLEMS]) + more)
    return JudgementsFile(path, hashlib.sha256(raw).hexdigest(), tuple(out))


def _entry_problem(e: object) -> str | None:
    if not isinstance(e, dict):
        return "not an object"
    for key in ("dataset", "query", "result", "at"):
        if not isinstance(e.get(key), str) or not e[key]:
            return f"\"{key}\" missing or not a non-empty string"
    if not isinstance(e.get("similar"), bool):
        return "\"similar\" missing or not true/false"
    for key in ("query_id", "result_id"):
        v = e.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            return f"\"{key}\" must be a non-negative integer"
    return None
