"""Label fields of a dataset: the `--labels` modes and the labels file (CSV/TSV) reader.

A **label field** is one meaning of "same": a class folder, or a column of a labels file
(`category`, `colour`, `season`, …). Each image has at most one value per field; an image with
no value in a field is left out of that field's scores (and counted), never dropped.

Modes (`--labels`, TOML `labels`):
  folders  a first-level sub-folder is the class (one field, "class");
  none     every image at any depth, no field;
  auto     folders when every usable image sits in a first-level sub-folder (at any depth below
           it), there are at least 2 of them, and their names are not all dates (2023/, 2024-05/:
           a camera dump); else none (`auto_unlabelled_reason`; `datasets.load_dataset` says which it
           chose and why);
  a path   a labels file: CSV or TSV with a header row, a `path` column (relative to the dataset
           root) and one or more label columns, one field each. Empty cells are allowed.

A bad labels file is a `LabelsError` listing every problem found, one line each, as
``file:line: problem`` (docs/bundle.md "Label fields"). No I/O except reading that one file.
"""
from __future__ import annotations

import csv
import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["LABEL_MODES", "LabelField", "auto_unlabelled_reason", "LabelsError", "LabelsFile", "field_id", "labels_fingerprint",
           "read_labels_file"]

LABEL_MODES = ("auto", "folders", "none")
PATH_COLUMN = "path"
MAX_SHOWN_PROBLEMS = 20  # a file with thousands of bad rows: the first 20, then how many more
# A folder named like a year or a date (2024, 2024-05, 2024_05_17, 202405): how cameras, phones
# and photo managers file pictures, so first-level folders named so are a dump, not classes.
DATE_FOLDER = re.compile(r"(19|20)\d\d([-_. ]?\d\d){0,2}")


def auto_unlabelled_reason(files: list[str]) -> str | None:
    """Why `--labels auto` reads these dataset-relative paths as one unlabelled collection, or
    None when their first-level folders are classes (see the module docstring)."""
    loose = sum(1 for f in files if "/" not in f)
    if loose:
        return f"{loose} images lie directly in the folder"
    groups = sorted({f.split("/", 1)[0] for f in files})
    if len(groups) < 2:
        return f"only {len(groups)} first-level folder holds images" if groups else "no first-level folder"
    if all(DATE_FOLDER.fullmatch(g) for g in groups):
        shown = ", ".join(groups[:3]) + (", …" if len(groups) > 3 else "")
        return f"the first-level folders are named like dates ({shown}): a camera or phone dump, not classes"
    return None


class LabelsError(ValueError):
    """A labels file that cannot be used; ``problems`` holds one ``file:line: problem`` each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = problems[:MAX_SHOWN_PROBLEMS]
        more = len(problems) - len(shown)
        super().__init__("\n".join(shown + ([f"… and {more} more problems"] if more else [])))


@dataclass(frozen=True)
class LabelField:
    """One label field: ``values[codes[i]]`` is image i's value; ``codes[i] == -1``: no value."""

    id: str  # slug [a-z0-9_-], used in bundle paths
    name: str  # as the user wrote it (column header, or "class" for class folders)
    values: list[str]  # distinct values, sorted
    codes: np.ndarray = field(repr=False)  # int32 [N]

    @property
    def labelled(self) -> int:
        """Images that have a value in this field."""
        return int((np.asarray(self.codes) >= 0).sum())


@dataclass(frozen=True)
class LabelsFile:
    """A parsed labels file: per field name, each listed path's value ("" = none)."""

    path: Path
    fields: list[str]  # label column names, in file order
    rows: dict[str, list[str]]  # dataset-relative path -> one value per field
    lines: dict[str, int]  # dataset-relative path -> its line in the file
    # Problems of single rows (cell count, empty or duplicate path): reported by `build_fields`
    # together with the ones only a dataset can reveal, so one run lists them all.
    problems: list[str] = field(default_factory=list)


def field_id(name: str) -> str:
    """A column name as a bundle path part: accents stripped, lowercase, other runs → '_'."""
    ascii_ = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9_-]+", "_", ascii_.lower()).strip("_-") or "field"


def _norm_path(p: str) -> str:
    """A path cell as the dataset writes ids: posix separators, no leading './'."""
    p = p.strip().replace("\\", "/")
    while p.startswith("./"):
        p = p[2:]
    return p


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise LabelsError([f"{path}:{line}: not UTF-8 (byte 0x{data[e.start]:02x}); save the file as "
                           "UTF-8"]) from None


def _delimiter(path: Path, header: str) -> str:
    """Tab for .tsv (or a tab in a header of another extension), comma otherwise."""
    if path.suffix.lower() == ".tsv":
        return "\t"
    if path.suffix.lower() == ".csv":
        return ","
    return "\t" if "\t" in header else ","


def read_labels_file(path: Path) -> LabelsFile:
    """Parse a labels file. A file that cannot be read as a table (not UTF-8, empty, no `path`
    column, no label column, no row) is a `LabelsError` at once; problems of single rows are kept
    in ``problems`` and reported by `build_fields` with the rest."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise LabelsError([f"{path}: cannot read labels file: {e.strerror or e}"]) from None
    text = _decode(path, data)
    if not text.strip():
        raise LabelsError([f"{path}:1: empty file; expected a header row with a '{PATH_COLUMN}' column "
                           "and one column per label field"])
    lines = text.splitlines()
    reader = csv.reader(lines, delimiter=_delimiter(path, lines[0]))
    header = [c.strip() for c in next(reader)]
    problems: list[str] = []
    if PATH_COLUMN not in header:
        raise LabelsError([f"{path}:1: no '{PATH_COLUMN}' column (header: {', '.join(header) or 'empty'}); "
                           f"the first row must name the columns, one of them '{PATH_COLUMN}'"])
    names = [c for c in header if c != PATH_COLUMN]
    if not names:
        problems.append(f"{path}:1: no label column besides '{PATH_COLUMN}'; add one column per label field")
    ids = [field_id(n) for n in names]
    for i, n in enumerate(names):
        if not n:
            problems.append(f"{path}:1: column {header.index(n) + 1} has no name")
        elif ids.index(ids[i]) != i or header.count(n) > 1:
            problems.append(f"{path}:1: column '{n}' repeats another column's name")
    if header.count(PATH_COLUMN) > 1:
        problems.append(f"{path}:1: more than one '{PATH_COLUMN}' column")
    p_col = header.index(PATH_COLUMN)
    rows: dict[str, list[str]] = {}
    where: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if not any(c.strip() for c in row):
            continue  # a blank line
        if len(row) != len(header):
            problems.append(f"{path}:{line}: {len(row)} cells, the header has {len(header)}")
            continue
        rel = _norm_path(row[p_col])
        if not rel:
            problems.append(f"{path}:{line}: empty '{PATH_COLUMN}' cell")
            continue
        if rel in rows:
            problems.append(f"{path}:{line}: duplicate path '{rel}' (first on line {where[rel]})")
            continue
        rows[rel] = [c.strip() for j, c in enumerate(row) if j != p_col]
        where[rel] = line
    if not rows:
        raise LabelsError(problems or [f"{path}:2: no rows after the header"])
    if any(p.startswith(f"{path}:1:") for p in problems):
        raise LabelsError(problems)  # a bad header makes the rows meaningless: list everything now
    return LabelsFile(path, names, rows, where, problems)


def build_fields(lf: LabelsFile, files: list[str], skipped: dict[str, str]) -> tuple[list[LabelField], list[str]]:
    """(label fields over `files`, dataset-relative paths with no row). Raises `LabelsError`
    for rows naming a path that is not an image of the dataset (`skipped`: path -> why it is not
    used) and for a field with fewer than 2 values (it cannot tell images apart)."""
    position = {rel: i for i, rel in enumerate(files)}
    problems = list(lf.problems)
    for rel, line in lf.lines.items():
        if rel in position:
            continue
        why = skipped.get(rel)
        problems.append(f"{lf.path}:{line}: '{rel}' is not a usable image of the dataset ({why})" if why else
                        f"{lf.path}:{line}: unknown path '{rel}' (no such image under the dataset root; "
                        "paths are relative to it)")
    fields = []
    for j, name in enumerate(lf.fields):
        values = sorted({row[j] for row in lf.rows.values() if row[j]})
        if len(values) < 2:
            shown = f"a single value ('{values[0]}')" if values else "no value"
            problems.append(f"{lf.path}:1: field '{name}' has {shown}; it cannot tell images apart "
                            "(add values or remove the column)")
            continue
        code = {v: c for c, v in enumerate(values)}
        codes = np.full(len(files), -1, dtype=np.int32)
        for rel, row in lf.rows.items():
            if rel in position and row[j]:
                codes[position[rel]] = code[row[j]]
        fields.append(LabelField(field_id(name), name, values, codes))
    if problems:
        raise LabelsError(sorted(problems, key=_line_of))
    return fields, [rel for rel in files if rel not in lf.rows]


def _line_of(problem: str) -> int:
    """The line number of a ``file:line: problem`` message (file order for the report)."""
    m = re.search(r":(\d+): ", problem)
    return int(m.group(1)) if m else 0


def labels_fingerprint(mode: str, fields: list[LabelField]) -> str:
    """sha256 hex over the labels mode and every field's name, values and codes: what the scores
    depend on besides the neighbours (the features do not depend on it)."""
    h = hashlib.sha256(json.dumps({"labels": 1, "mode": mode}).encode())
    for f in fields:
        h.update(json.dumps([f.id, f.name, f.values], ensure_ascii=True).encode())
        h.update(np.ascontiguousarray(f.codes, dtype="<i4").tobytes())
    return h.hexdigest()
