"""Datasets: an ordered list of images with class labels, read from an image folder.

The user's way in is the image-folder layout ``root/<class>/<image>`` (images may sit in
sub-folders of a class folder). Bundled datasets live in ``datasets/<name>/`` with a
``dataset.toml`` (name, description, source) and their images in ``datasets/<name>/images/``;
any folder with that layout (e.g. one written by `fetch_public_dataset`) is read the same way.

Ids are stable: class folders in sorted order, then file paths in UTF-8 byte order, and every
candidate file is decoded once here, so a bad file is known (and skipped with its reason) before
any features are extracted and never shifts the ids of the others. With a ``cache_dir`` (the
pipeline passes ``<work>/scan-cache``) each file's verdict and sha256 are remembered by (relative
path, size, mtime), so a re-run over an unchanged folder decodes and hashes nothing (see `_ScanCache`).

Nothing is dropped silently: every entry of the folder that is not used ends up in
`Dataset.skipped` with its reason — bad images, files outside class folders, hidden entries (name
starting with '.'; a hidden folder is listed once, not searched), system junk (`.DS_Store`,
`Thumbs.db`, `._*`, `.git/`, `__MACOSX/`, …), unreadable folders, special files and the symlinks
that are not followed. Symlinks: a link whose target lies inside the dataset root is followed,
unless its target is already read directly (another class folder, a file of the dataset: listed,
so nothing is counted twice) or is a folder containing the link (a loop: listed). A link whose
target lies outside the root is listed and not followed unless ``follow_links=True`` (then each
outside folder is read once, however many links lead to it). Links are never a way to make the
scan run forever.

No TensorFlow at import time: `fetch_public_dataset` imports Keras only when it needs it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import tomllib
import unicodedata
import urllib.error
import urllib.request
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .images import DEFAULT_MAX_PIXELS, ImageError, load_rgb
from .labels import LabelField, LabelsError, auto_unlabelled_reason, build_fields, read_labels_file

__all__ = [
    "Dataset",
    "DatasetError",
    "PUBLIC_DATASETS",
    "SkippedFile",
    "builtin_datasets_dir",
    "dataset_fingerprint",
    "fetch_public_dataset",
    "known_datasets",
    "load_dataset",
]

ENV_DATASETS_DIR = "CONVNET_SEARCH_DATASETS"
NOT_IN_CLASS = "not inside a class folder"
EMPTY_CLASS = "class folder has no usable image"
HIDDEN_DIR = "hidden folder (name starts with '.'): not searched; rename it to include it"
HIDDEN_FILE = "hidden file (name starts with '.'): rename it to include it"
SYSTEM_FILE = "hidden/system file (not an image)"
SYSTEM_DIR = "hidden/system folder (not searched)"
NOT_REGULAR = "not a regular file or folder"
LINK_OUTSIDE = "symlink points outside the dataset root (use --follow-links to include it)"
LINK_BROKEN = "broken symlink (its target is missing or a loop of links)"
LINK_LOOP = "symlink loop: points to a folder that contains it"
# Names go into the bundle as UTF-8 text. Old archives (Windows, old Macs, zip files) often hold
# Latin-1 or CP-1252 names; `convmv` (or any renamer) makes them UTF-8 without touching the bytes.
_UTF8_FIX = ("rename it to UTF-8, e.g. `convmv -r -f latin1 -t utf8 --notest FOLDER` "
             "(use cp1252 or the archive's encoding instead of latin1 if that is what it used)")
NOT_UTF8_FILE = f"file name is not valid UTF-8: {_UTF8_FIX}"
NOT_UTF8_DIR = f"class folder name is not valid UTF-8: {_UTF8_FIX}"
# Junk that operating systems and tools write next to photos on their own. Listed like every
# other unused entry, but left out of the fingerprint (see `dataset_fingerprint`).
SYSTEM_FILE_NAMES = frozenset({".DS_Store", "Thumbs.db", "ehthumbs.db", "desktop.ini", ".directory",
                               ".localized", "Icon\r"})
SYSTEM_DIR_NAMES = frozenset({".git", ".svn", ".hg", "__MACOSX", "@eaDir", ".Trashes", ".Spotlight-V100",
                              ".fseventsd", ".TemporaryItems"})


class DatasetError(Exception):
    """A dataset that cannot be used at all (the message names the path and the problem)."""


class DatasetChanged(DatasetError):
    """An image changed or vanished after the scan (during extraction or thumbnails): the run lists
    the folders again and goes on with what is there now (pipeline.run); finished work is kept."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems  # (path, what happened)
        shown = "; ".join(f"{p}: {why}" for p, why in problems[:3])
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        super().__init__(f"images changed on disk during the run ({shown}{more})")


def file_sha256(path: str | Path) -> str:
    """sha256 hex of a file's bytes (raises OSError)."""
    return _file_sha256(Path(path))


@dataclass(frozen=True)
class SkippedFile:
    """A file left out of a dataset; ``file`` is relative to the dataset root ("cat/x.jpg")."""

    file: str
    reason: str


@dataclass
class Dataset:
    id: str  # slug [a-z0-9_-], used in bundle paths
    name: str  # human name
    description: str
    source: str
    root: Path  # folder holding the class folders
    classes: list[str]  # class folder names with ≥ 1 usable image, sorted
    files: list[str]  # image paths relative to root, posix separators; position = image id
    labels: np.ndarray  # int32 [N]; labels[i] indexes classes
    skipped: list[SkippedFile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # caveats for people (bundle: manifest "notes")
    # sha256 of each used file's bytes (rel -> hex), filled by a cached scan so that
    # `dataset_fingerprint` need not read the files again; a rel not in it is hashed from disk.
    # Keyed by rel, not by position, so a copy with fewer files (dataclasses.replace) stays right.
    digests: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    # How labels were read (io/labels.py): "folders", "none" or "file". With "folders", classes and
    # labels are the class folders and the one field "class"; otherwise they group images by top
    # folder (for the gallery and the map's colours) and `fields` holds the labels file's columns.
    labels_mode: str = "folders"
    fields: list[LabelField] = field(default_factory=list)
    labels_note: str = ""  # with --labels auto: which mode was chosen, why, and how to choose the other

    def path(self, i: int) -> Path:
        return self.root / self.files[i]

    def __len__(self) -> int:
        return len(self.files)


def builtin_datasets_dir() -> Path:
    """``<repo>/datasets``, or the folder named by the environment variable CONVNET_SEARCH_DATASETS."""
    env = os.environ.get(ENV_DATASETS_DIR)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[2] / "datasets"


def known_datasets() -> list[str]:
    """Names of the builtin datasets: folders of `builtin_datasets_dir()` holding a dataset.toml."""
    d = builtin_datasets_dir()
    if not d.is_dir():
        return []
    return sorted(p.name for p in d.iterdir() if not p.name.startswith(".") and (p / "dataset.toml").is_file())


def _slug(name: str) -> str:
    """A folder name as an id: accents stripped, lowercase, runs of other characters → '_'."""
    ascii_ = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9_-]+", "_", ascii_.lower()).strip("_-")
    return slug or "dataset"


def _read_meta(toml_path: Path) -> dict[str, str]:
    try:
        with open(toml_path, "rb") as f:
            meta = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise DatasetError(f"{toml_path}: cannot read dataset description: {e}") from None
    out = {}
    for key in ("name", "description", "source"):
        value = meta.get(key)
        if not isinstance(value, str):
            raise DatasetError(f"{toml_path}: '{key}' must be a string (got {value!r})")
        out[key] = value
    return out


def _display(rel: str) -> str:
    """A relative path that is always printable/JSON-safe (non-UTF-8 bytes shown as \\xNN)."""
    return os.fsencode(rel).decode("utf-8", "backslashreplace")


def _sort_key(rel: str) -> bytes:
    return os.fsencode(rel)


def load_dataset(
    name_or_path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, follow_links: bool = False,
    cache_dir: Path | None = None, labels: str | Path = "folders",
) -> Dataset:
    """Load a builtin dataset by name, or an image folder by path.

    ``bundled:NAME``, or a bare NAME of a builtin dataset (see `known_datasets`) when no folder of
    that name exists here, is that dataset (`bundled_name`: both is an error asking which);
    anything else is a path. A folder holding ``dataset.toml`` and ``images/`` is read
    like a builtin one; any other folder is the image root itself.

    ``follow_links=True`` also follows symlinks whose target lies outside the dataset root (by
    default they are listed in ``skipped`` and not read, so a link cannot publish files from
    elsewhere on the disk). A dataset with a single class loads, with a `RuntimeWarning` and the
    same text in ``notes``: search scores compare classes, so every score would be 1.0.

    ``cache_dir``: a folder for the scan cache (see `_ScanCache`); files whose size and mtime are
    unchanged since the last scan are neither decoded nor hashed again. An optimization only: the
    result (and `dataset_fingerprint`) is the same with or without it.

    ``labels``: "folders" (root/<class>/<image>), "none" (every image at any depth), "auto"
    (io/labels.py's rule: folders when every usable image sits in one of ≥ 2 first-level folders
    not all named like dates, else none; the choice is in ``labels_note``) or a labels file path (io/labels.py).
    """
    builtins = known_datasets()
    bundled = bundled_name(name_or_path)
    if bundled is not None:
        folder = builtin_datasets_dir() / bundled
        meta = _read_meta(folder / "dataset.toml")
        ds = _scan_labelled(folder / "images", bundled, meta, max_pixels, follow_links, cache_dir, labels)
        return _with_notes(ds)

    path = Path(name_or_path).expanduser()
    if not path.exists():
        known = ", ".join(builtins) or "none found in " + str(builtin_datasets_dir())
        raise DatasetError(f"{path}: no such dataset or folder (builtin datasets: {known})")
    if not path.is_dir():
        raise DatasetError(f"{path}: not a folder (a dataset is a folder of class folders: root/<class>/<image>)")
    if (path / "dataset.toml").is_file() and (path / "images").is_dir():
        meta = _read_meta(path / "dataset.toml")
        ds = _scan_labelled(path / "images", _slug(path.resolve().name), meta, max_pixels, follow_links, cache_dir,
                            labels)
        return _with_notes(ds)
    name = path.resolve().name
    meta = {"name": name, "description": "", "source": f"image folder '{name}'"}
    return _with_notes(_scan_labelled(path, _slug(name), meta, max_pixels, follow_links, cache_dir, labels))


BUNDLED_PREFIX = "bundled:"


class AmbiguousDatasetError(DatasetError):
    """A bare name that is both a bundled dataset and an existing folder (a usage error)."""


def bundled_name(name_or_path: str | Path) -> str | None:
    """The bundled dataset a --dataset argument names, or None for a folder path.

    "bundled:NAME" is always the bundled one (an error if there is none); a bare NAME (no path
    separator) is the bundled one unless a file or folder of that name exists here too: then it
    is an `AmbiguousDatasetError`, never a silent choice (`./NAME` is the folder). Anything else is
    a path."""
    if not isinstance(name_or_path, str):
        return None
    builtins = known_datasets()
    if name_or_path.startswith(BUNDLED_PREFIX):
        name = name_or_path[len(BUNDLED_PREFIX):]
        if name not in builtins:
            known = ", ".join(builtins) or "none found in " + str(builtin_datasets_dir())
            raise DatasetError(f"{name_or_path}: no bundled dataset {name!r} (bundled: {known})")
        return name
    if "/" in name_or_path or os.sep in name_or_path or name_or_path not in builtins:
        return None
    if os.path.lexists(name_or_path):
        raise AmbiguousDatasetError(
            f"--dataset {name_or_path}: both a bundled dataset and a folder here "
            f"({Path(name_or_path).resolve()}); say which: --dataset ./{name_or_path} for your "
            f"folder, or --dataset {BUNDLED_PREFIX}{name_or_path} for the bundled one")
    return name_or_path


def _with_notes(ds: Dataset) -> Dataset:
    """Add the caveats a person must see (printed as a warning now, kept for the bundle)."""
    if len(ds.classes) == 1 and ds.labels_mode == "folders":
        note = (f"dataset {ds.id!r} has one class ({ds.classes[0]!r}): search scores need at least "
                "2 classes; every score would be 1.0")
        ds.notes.append(note)
        warnings.warn(note, RuntimeWarning, stacklevel=3)
    return ds


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows a symlink
    except OSError:
        return False


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()  # follows a symlink; False for FIFOs, sockets, devices
    except OSError:
        return False


def _entries(path: str | Path) -> list[os.DirEntry]:
    """The entries of a folder in UTF-8 byte order of their names (raises OSError)."""
    with os.scandir(path) as it:
        return sorted(it, key=lambda e: _sort_key(e.name))


def _within(path: str, base: str) -> bool:
    """Is real path ``path`` equal to or inside real path ``base``?"""
    return path == base or path.startswith(base.rstrip(os.sep) + os.sep)


def _hidden_reason(name: str, is_dir: bool) -> str | None:
    """Why an entry is left out for its name alone (hidden or system junk), or None."""
    if is_dir:
        if name in SYSTEM_DIR_NAMES:
            return SYSTEM_DIR
        return HIDDEN_DIR if name.startswith(".") else None
    if name in SYSTEM_FILE_NAMES or name.startswith("._"):  # "._x.jpg": macOS metadata, not an image
        return SYSTEM_FILE
    return HIDDEN_FILE if name.startswith(".") else None


class _Scanner:
    """Walks class folders; decides for each entry whether to read it, descend or skip it (why).

    Real paths are carried along (``real`` of each folder) so that links can be judged without a
    ``realpath`` call per file: inside or outside the root, a loop, or a duplicate.
    """

    def __init__(self, root: Path, follow_links: bool) -> None:
        self.real_root = os.path.realpath(root)
        self.follow_links = follow_links
        self.linked_dirs: dict[str, str] = {}  # real folder read through a link -> that link (rel)
        self.linked_files: dict[str, str] = {}  # real file reached through a link -> its rel

    def classify(self, entry: os.DirEntry, rel: str, parent_real: str,
                 under_link: bool) -> tuple[str, str, str]:
        """("dir", "", real) to descend, ("file", "", real) to read, or ("skip", reason, "")."""
        is_dir = _is_dir(entry)
        reason = _hidden_reason(entry.name, is_dir)
        if reason:
            return "skip", reason, ""
        if entry.is_symlink():
            return self._link(entry.path, rel, parent_real, is_dir)
        real = os.path.join(parent_real, entry.name)
        if is_dir:
            return "dir", "", real
        if not _is_file(entry):
            return "skip", NOT_REGULAR, ""  # a FIFO would block the decoder forever
        if under_link:  # a real file in a folder read through a link: another link may reach it too
            return self._once(real, rel)
        return "file", "", real

    def _once(self, real: str, rel: str) -> tuple[str, str, str]:
        first = self.linked_files.setdefault(real, rel)
        if first != rel:
            return "skip", f"same file as '{_display(first)}' (reached through a symlink): not counted twice", ""
        return "file", "", real

    def _read_directly(self, real: str, is_dir: bool) -> bool:
        """Does the scan reach ``real`` (inside the root) without links: a class folder or a file
        under one, no hidden or system part on the way?"""
        parts = os.path.relpath(real, self.real_root).split(os.sep)
        if real == self.real_root or len(parts) < (1 if is_dir else 2):
            return False
        if parts[0] != _display(parts[0]):
            return False  # a class whose name is not UTF-8 is skipped
        return not any(_hidden_reason(p, True) or _hidden_reason(p, False) for p in parts)

    def _shown(self, real: str) -> str:
        return _display(Path(os.path.relpath(real, self.real_root)).as_posix())

    def _link(self, path: str, rel: str, parent_real: str, is_dir: bool) -> tuple[str, str, str]:
        try:
            target = os.path.realpath(path, strict=True)
        except OSError:  # target missing, or links pointing at each other (ELOOP)
            return "skip", LINK_BROKEN, ""
        inside = _within(target, self.real_root)
        if not inside and not self.follow_links:
            return "skip", LINK_OUTSIDE, ""
        if is_dir:
            if _within(parent_real, target):
                return "skip", LINK_LOOP, ""
            if inside and self._read_directly(target, True):
                return "skip", f"symlink to '{self._shown(target)}/', which is read directly: not read twice", ""
            for seen, via in self.linked_dirs.items():
                if _within(target, seen):
                    return "skip", f"symlink to a folder already read through '{_display(via)}/'", ""
            self.linked_dirs[target] = rel
            return "dir", "", target
        if not os.path.isfile(target):
            return "skip", NOT_REGULAR, ""
        if inside and self._read_directly(target, False):
            return "skip", f"symlink to '{self._shown(target)}', which is read directly: not counted twice", ""
        return self._once(target, rel)

    def class_items(self, cls: str, path: Path, real: str, via_link: bool) -> list[tuple[str, str]]:
        """(rel, reason) for everything under one class folder, reason "" for a file to read;
        sorted by rel in UTF-8 byte order. An explicit stack, not recursion: depth is unbounded."""
        items: list[tuple[str, str]] = []
        stack = [(str(path), cls, real, via_link)]
        while stack:
            folder, rel, real, under_link = stack.pop()
            try:
                entries = _entries(folder)
            except OSError as e:  # what os.walk would swallow: permission denied, I/O error, …
                items.append((rel + "/", f"cannot read folder: {e.strerror or e}"))
                continue
            subdirs = []
            for entry in entries:
                child = f"{rel}/{entry.name}"
                kind, reason, child_real = self.classify(entry, child, real, under_link)
                if kind == "skip":
                    items.append((child + "/" if _is_dir(entry) else child, reason))
                elif kind == "dir":
                    subdirs.append((entry.path, child, child_real, under_link or entry.is_symlink()))
                else:
                    items.append((child, ""))
            stack.extend(reversed(subdirs))
        return sorted(items, key=lambda it: _sort_key(it[0]))


def _root_entry(scanner: _Scanner, entry: os.DirEntry) -> tuple[str, str, str]:
    """Like `_Scanner.classify` for an entry of the root, where only folders are of use."""
    if _is_dir(entry):
        return scanner.classify(entry, entry.name, scanner.real_root, False)
    reason = _hidden_reason(entry.name, False)
    if reason:
        return "skip", reason, ""
    if _is_file(entry):
        return "skip", NOT_IN_CLASS, ""
    return "skip", LINK_BROKEN if entry.is_symlink() else NOT_REGULAR, ""


# ---------------------------------------------------------------------------------------------
# Scan cache: each file's verdict and sha256, remembered by (relative path, size, mtime_ns)
# ---------------------------------------------------------------------------------------------

SCAN_CACHE_FORMAT = 3  # 3: ctime joins the key
# A file modified less than this before the scan is not cached: a second write within the same
# mtime tick (coarse on some file systems: 2 s on FAT) with the same size would go unnoticed.
RACY_WINDOW_NS = 2_000_000_000


def _file_sha256(path: Path) -> str:
    fh = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            fh.update(chunk)
    return fh.hexdigest()


# The scan only asks "is this a whole, decodable image?": a JPEG is decoded at 1/8 where it can
# (libjpeg still reads and entropy-decodes the whole stream, so truncated or corrupt data fails as
# in a full decode), 3–4× faster for a 12 MP photo than a full decode (issue 22).
VALIDATE_DRAFT = 1
SCAN_THREADS = max(1, min(4, os.cpu_count() or 1))  # validation threads of a scan (prefetch)


def _validate(path: Path, max_pixels: int, digest: bool = True) -> tuple[str, str]:
    """(skip reason, "") for a file that is not a usable image, ("", sha256) for one that is
    (("", "") without ``digest``)."""
    try:
        load_rgb(path, max_pixels=max_pixels, draft=VALIDATE_DRAFT)
    except ImageError as e:
        return e.reason, ""
    if not digest:
        return "", ""
    try:
        return "", _file_sha256(path)
    except OSError as e:
        raise DatasetError(f"{path}: cannot read file for the dataset fingerprint: {e}") from None


class _ScanCache:
    """Verdicts of one image root's files, stored as ``<cache_dir>/<id>-<hash of root>.json``.

    An entry (size, mtime_ns, inode, ctime_ns, reason, sha256) is reused only when the file's size,
    mtime, inode and ctime are unchanged, as git's index does: the inode catches a file replaced by
    another (``mv``), the ctime a file overwritten in place whose mtime was set back (``cp -p``,
    ``touch -r``, ``rsync -t``), since no user tool can set a ctime. A symlink is judged by its target and the header (root, max_pixels, engine
    and Pillow versions) is the same, since a new decoder may judge a file differently. A missing, unreadable or malformed cache is treated
    as empty and rewritten: the cache only ever saves work, it never changes the result.
    Without ``cache_dir`` every file is validated (and hashed later, by `dataset_fingerprint`).
    """

    def __init__(self, cache_dir: Path | None, ds_id: str, root: Path, max_pixels: int) -> None:
        import PIL

        from .. import __version__

        real = os.path.realpath(root)
        self.header = {"format": SCAN_CACHE_FORMAT, "root": _display(real), "max_pixels": max_pixels,
                       "engine": __version__, "pillow": PIL.__version__}
        self.path = None
        if cache_dir is not None:
            tag = hashlib.sha256(os.fsencode(real)).hexdigest()[:12]
            self.path = Path(cache_dir) / f"{ds_id}-{tag}.json"
        self.old = self._read() if self.path else {}
        self.new: dict[str, list] = {}
        self.validated = 0  # files decoded (and hashed) by this scan
        self.ready: dict[str, tuple] = {}  # rel → (stat, verdict) validated ahead by prefetch
        self.seen: dict[str, tuple] = {}  # rel → (stat key, reason, sha256) given by this object
        self.now_ns = time.time_ns()

    def _read(self) -> dict[str, list]:
        try:
            with open(self.path, "rb") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
            return {}
        if any(data.get(k) != v for k, v in self.header.items()):
            return {}
        return {rel: e for rel, e in data["files"].items() if _valid_entry(e)}

    def prefetch(self, root: Path, rels: list[str], max_pixels: int) -> None:
        """Validate, in a small thread pool, the files of ``rels`` that `check` will not find in the
        cache; `check` then takes their verdicts. Decoding and hashing release the GIL, so the scan
        of a new folder runs on every core (issue 22: ~2× on two); verdicts are the same."""
        todo = []  # (rel, its stat): taken before validating, as check's racy-write test needs
        for rel in rels:
            st, hit = self._stat_and_hit(root / rel, rel)
            if hit is None and self._memo(rel, st) is None:
                todo.append((rel, st))
        if len(todo) < 2 or SCAN_THREADS < 2:
            return
        with ThreadPoolExecutor(SCAN_THREADS, thread_name_prefix="scan") as pool:
            done = pool.map(lambda item: (item[1], self._verdict(root / item[0], max_pixels)), todo)
            self.ready.update(zip((rel for rel, _ in todo), done))

    def _memo(self, rel: str, st) -> tuple[str, str] | None:
        """The verdict this object already gave ``rel`` (an earlier scan of the same run), if the
        file is unchanged since: --labels auto lists a folder twice and must not decode it twice."""
        seen = self.seen.get(rel)
        return (seen[1], seen[2]) if st is not None and seen is not None and seen[0] == _stat_key(st) else None

    def _stat_and_hit(self, path: Path, rel: str):
        try:
            st = os.stat(path)
        except OSError:
            return None, None  # load_rgb reports why
        hit = self.old.get(rel)
        return st, (hit if self.path is not None and hit is not None and hit[:4] == _stat_key(st) else None)

    def _verdict(self, path: Path, max_pixels: int) -> tuple[str, str]:
        return _validate(path, max_pixels, digest=self.path is not None)  # no cache: the fingerprint hashes later

    def check(self, root: Path, rel: str, max_pixels: int) -> tuple[str, str]:
        """(skip reason or "", sha256 or "") of ``root/rel``: from the cache when unchanged."""
        path = root / rel
        if rel in self.ready:
            st, (reason, digest) = self.ready.pop(rel)
        else:
            st, hit = self._stat_and_hit(path, rel)
            if hit is not None:
                self.new[rel] = hit
                return hit[4], hit[5]
            memo = self._memo(rel, st)
            if memo is not None:
                return memo
            reason, digest = self._verdict(path, max_pixels)
        if st is not None:
            self.seen[rel] = (_stat_key(st), reason, digest)
        if self.path is None:
            return reason, digest
        self.validated += 1
        if st is not None and st.st_mtime_ns < self.now_ns - RACY_WINDOW_NS:
            try:
                after = os.stat(path)
            except OSError:
                after = None
            key = _stat_key(st)
            if after is not None and _stat_key(after) == key:
                self.new[rel] = [*key, reason, digest]
        return reason, digest

    def save(self) -> None:
        """Write the entries of this scan (files gone since are dropped) if anything changed."""
        if self.path is None or self.new == self.old:
            return
        from .store import atomic_write_json  # noqa: PLC0415 (keeps this module's imports light)

        try:
            atomic_write_json(self.path, {**self.header, "files": self.new})
        except OSError:
            pass  # an optimization only: the next run validates again


def _stat_key(st: os.stat_result) -> list[int]:
    """What says a file is unchanged: size, mtime, inode and ctime (git's index uses the same)."""
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def _valid_entry(e: object) -> bool:
    return (isinstance(e, list) and len(e) == 6 and all(type(x) is int for x in e[:4])
            and isinstance(e[4], str) and isinstance(e[5], str)
            and (bool(e[4]) != bool(e[5])))  # a skip reason xor a digest


def _open_root(root: Path, follow_links: bool) -> tuple[_Scanner, list[os.DirEntry]]:
    """The scanner of a dataset folder and its first-level entries; DatasetError names the folder
    when it is missing or unreadable (both scans, by class folders and by tree, start here)."""
    if not root.is_dir():
        raise DatasetError(f"{root}: image folder missing")
    scanner = _Scanner(root, follow_links)
    try:
        return scanner, _entries(root)
    except OSError as e:
        raise DatasetError(f"{root}: cannot read folder: {e.strerror or e}") from None


def _scan(root: Path, ds_id: str, meta: dict[str, str], max_pixels: int, follow_links: bool = False,
          cache_dir: Path | None = None, cache: "_ScanCache | None" = None) -> Dataset:
    scanner, root_entries = _open_root(root, follow_links)
    skipped: list[SkippedFile] = []
    class_dirs: list[tuple[str, str, bool]] = []  # (name, real path, reached through a link)
    for entry in root_entries:
        kind, reason, real = _root_entry(scanner, entry)
        if kind == "dir":
            class_dirs.append((entry.name, real, entry.is_symlink()))
        else:
            skipped.append(SkippedFile(_display(entry.name) + ("/" if _is_dir(entry) else ""), reason))
    if not class_dirs:
        loose = sum(1 for s in skipped if s.reason == NOT_IN_CLASS)
        why = [f"{loose} files lie directly in it; put them into one sub-folder per class"] if loose else []
        why += [f"{s.file}: {s.reason}" for s in skipped
                if s.reason not in (NOT_IN_CLASS, SYSTEM_FILE, SYSTEM_DIR)][:3]
        extra = f" ({'; '.join(why)})" if why else ""
        raise DatasetError(f"{root}: no class folders; expected root/<class>/<image>{extra}; or use "
                           "--labels none (or auto) to search it as one unlabelled collection")

    cache = cache or _ScanCache(cache_dir, ds_id, root, max_pixels)
    digests: dict[str, str] = {}
    classes: list[str] = []
    files: list[str] = []
    labels: list[int] = []
    for cls, real, via_link in class_dirs:
        if cls != _display(cls):
            # Class names go into the manifest as text; a folder name that is not UTF-8 cannot.
            skipped.append(SkippedFile(_display(cls) + "/", NOT_UTF8_DIR))
            continue
        usable = 0
        items = scanner.class_items(cls, root / cls, real, via_link)
        cache.prefetch(root, [rel for rel, reason in items if not reason and rel == _display(rel)], max_pixels)
        for rel, reason in items:
            shown = _display(rel)
            if reason:
                skipped.append(SkippedFile(shown, reason))
                continue
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                # The bundle's names pages hold names as UTF-8 text; such a name cannot be written.
                skipped.append(SkippedFile(shown, NOT_UTF8_FILE))
                continue
            reason, digest = cache.check(root, rel, max_pixels)
            if reason:
                skipped.append(SkippedFile(shown, reason))
                continue
            if digest:
                digests[rel] = digest
            if usable == 0:
                classes.append(cls)
            usable += 1
            files.append(rel)
            labels.append(len(classes) - 1)
        if usable == 0 and not any(rel == cls + "/" for rel, _ in items):  # unreadable: said already
            skipped.append(SkippedFile(cls + "/", EMPTY_CLASS))
    cache.save()

    if not files:
        bad = [s for s in skipped if s.reason not in (EMPTY_CLASS, SYSTEM_FILE, SYSTEM_DIR)]
        reasons = [f"{s.file}: {s.reason}" for s in bad][:5]
        shown = "; ".join(reasons) if reasons else "the class folders are empty"
        raise DatasetError(f"{root}: no usable image ({len(bad)} files skipped: {shown})")
    return Dataset(
        id=ds_id,
        name=meta["name"],
        description=meta["description"],
        source=meta["source"],
        root=root,
        classes=classes,
        files=files,
        labels=np.asarray(labels, dtype=np.int32),
        skipped=skipped,
        digests=digests,
    )


TOP_LEVEL = "(top level)"  # the group of images lying directly in the root (labels none/file)


def _scan_labelled(root: Path, ds_id: str, meta: dict[str, str], max_pixels: int, follow_links: bool,
                   cache_dir: Path | None, labels: str | Path) -> Dataset:
    """`_scan` (class folders) or `_scan_tree` (any depth) by the labels mode, with its fields."""
    if labels == "folders":
        return _with_class_field(_scan(root, ds_id, meta, max_pixels, follow_links, cache_dir))
    if labels == "auto":
        return _scan_auto(root, ds_id, meta, max_pixels, follow_links, cache_dir)
    ds = _scan_tree(root, ds_id, meta, max_pixels, follow_links, cache_dir)
    if labels == "none":
        return ds
    return _with_labels_file(ds, Path(labels))


def _with_class_field(ds: Dataset) -> Dataset:
    ds.fields = [LabelField("class", "class", list(ds.classes), np.asarray(ds.labels, dtype=np.int32))]
    return ds


def _scan_auto(root: Path, ds_id: str, meta: dict[str, str], max_pixels: int, follow_links: bool,
               cache_dir: Path | None) -> Dataset:
    """folders or none by labels.auto_unlabelled_reason. Either way `labels_note` says which, why,
    and how to choose the other."""
    cache = _ScanCache(cache_dir, ds_id, root, max_pixels)  # one for both listings: each file decoded once
    tree = _scan_tree(root, ds_id, meta, max_pixels, follow_links, cache=cache)
    why = auto_unlabelled_reason(tree.files)
    if why is None:
        ds = _with_class_field(_scan(root, ds_id, meta, max_pixels, follow_links, cache=cache))
        ds.labels_note = (f"labels: class folders ({len(ds.classes)} first-level folders hold every image); "
                          "--labels none treats the images as one unlabelled collection")
        return ds
    tree.labels_note = (f"labels: none ({why}): search, map and label-free guidance only; --labels folders "
                        "uses first-level folders as classes, --labels FILE reads a CSV/TSV of labels")
    return tree


def _scan_tree(root: Path, ds_id: str, meta: dict[str, str], max_pixels: int, follow_links: bool = False,
               cache_dir: Path | None = None, cache: "_ScanCache | None" = None) -> Dataset:
    """Every usable image at any depth (labels none); classes/labels group images by top folder."""
    scanner, root_entries = _open_root(root, follow_links)
    items: list[tuple[str, str]] = []  # (rel, skip reason or "") in tree order
    for entry in root_entries:
        kind, reason, real = scanner.classify(entry, entry.name, scanner.real_root, False)
        if kind == "dir":
            items += scanner.class_items(entry.name, root / entry.name, real, entry.is_symlink())
        else:
            items.append((entry.name + ("/" if kind == "skip" and _is_dir(entry) else ""), reason))
    cache = cache or _ScanCache(cache_dir, ds_id, root, max_pixels)
    skipped: list[SkippedFile] = []
    files: list[str] = []
    digests: dict[str, str] = {}
    cache.prefetch(root, [rel for rel, reason in items if not reason and rel == _display(rel)], max_pixels)
    for rel, reason in items:
        if not reason:
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                reason = "file name is not valid UTF-8"
        if not reason:
            reason, digest = cache.check(root, rel, max_pixels)
            if digest:
                digests[rel] = digest
        if reason:
            skipped.append(SkippedFile(_display(rel), reason))
        else:
            files.append(rel)
    cache.save()
    if not files:
        reasons = [f"{s.file}: {s.reason}" for s in skipped if s.reason not in (SYSTEM_FILE, SYSTEM_DIR)][:5]
        raise DatasetError(f"{root}: no usable image at any depth ({'; '.join(reasons) or 'the folder is empty'})")
    tops = [f.split("/", 1)[0] if "/" in f else TOP_LEVEL for f in files]
    classes = sorted(set(tops), key=_sort_key)
    index = {c: i for i, c in enumerate(classes)}
    return Dataset(id=ds_id, name=meta["name"], description=meta["description"], source=meta["source"],
                   root=root, classes=classes, files=files,
                   labels=np.asarray([index[t] for t in tops], dtype=np.int32),
                   skipped=skipped, digests=digests, labels_mode="none")


def _with_labels_file(ds: Dataset, path: Path) -> Dataset:
    """Attach a labels file's fields; images with no row stay, listed in notes as unlabelled."""
    try:
        lf = read_labels_file(path)
        fields, unlabelled = build_fields(lf, ds.files, {s.file: s.reason for s in ds.skipped})
    except LabelsError as e:
        raise DatasetError(f"labels file of dataset {ds.id!r}:\n{e}") from None
    ds.labels_mode, ds.fields = "file", fields
    ds.labels_note = (f"labels: {len(fields)} field(s) from {path.name} ({', '.join(f.name for f in fields)}); "
                      f"{len(ds) - len(unlabelled)} of {len(ds)} images have a row")
    if unlabelled:
        shown = ", ".join(unlabelled[:5]) + (", …" if len(unlabelled) > 5 else "")
        ds.notes.append(f"{len(unlabelled)} images have no row in {path.name} (unlabelled, still searched "
                        f"and mapped): {shown}")
    return ds


def image_digests(ds: Dataset) -> list[str]:
    """sha256 of each image's bytes, in dataset order (from the scan cache when it has them)."""
    out = []
    for rel in ds.files:
        digest = ds.digests.get(rel)  # from a cached scan: the same sha256 of the same bytes
        if digest is None:
            try:
                digest = _file_sha256(ds.root / rel)
            except OSError as e:
                raise DatasetError(f"{ds.root / rel}: cannot read file for the dataset fingerprint: {e}") from None
        out.append(digest)
    return out


def dataset_fingerprint(ds: Dataset) -> str:
    """sha256 hex over the classes, every image's (relative path, label, sha256 of its bytes) and
    the skipped files: it changes when any byte, name, label or skip reason changes.

    Except for system junk (`SYSTEM_FILE`/`SYSTEM_DIR`: ``.DS_Store``, ``Thumbs.db``, …): listed
    in ``skipped`` but left out here, because the operating system writes such files by itself
    (opening a folder in Finder is enough) and they can never change what is computed."""
    h = hashlib.sha256()
    h.update(json.dumps({"fingerprint": 1, "classes": ds.classes}, ensure_ascii=True).encode())
    for rel, label, digest in zip(ds.files, ds.labels.tolist(), image_digests(ds)):
        h.update(json.dumps([_display(rel), int(label), digest], ensure_ascii=True).encode() + b"\n")
    for s in ds.skipped:
        if s.reason in (SYSTEM_FILE, SYSTEM_DIR):
            continue
        h.update(json.dumps(["skipped", s.file, s.reason], ensure_ascii=True).encode() + b"\n")
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Public datasets (need a network). Each recipe writes <dest>/dataset.toml + <dest>/images/...
# ---------------------------------------------------------------------------------------------

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"  # what keras downloads
FASHION_MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/train-labels-idx1-ubyte.gz"
TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
NETWORK_TIMEOUT_S = 15

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FASHION_MNIST_CLASSES = [
    "tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot",
]
PUBLIC_DATASETS = {
    "cifar10": "CIFAR-10 (32×32 colour photos, 10 classes), via keras.datasets",
    "fashion_mnist": "Fashion-MNIST (28×28 grey product photos, 10 classes), via keras.datasets",
    "tiny_imagenet": "Tiny ImageNet (64×64 photos): 10 random classes of the 200, from the official zip",
}


def _no_network(name: str, url: str, cause: BaseException | str) -> DatasetError:
    return DatasetError(
        f"could not download {name} from {url}: {cause}. This machine seems to have no network; "
        f"use the bundled datasets ({', '.join(known_datasets()) or 'see datasets/'}) or an image "
        f"folder (root/<class>/<image>) instead, or run this on a machine with internet access."
    )


def _probe(name: str, url: str) -> None:
    """Fail fast (seconds, not a hanging download) when the server cannot be reached."""
    req = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(req, timeout=NETWORK_TIMEOUT_S):
            pass
    except urllib.error.HTTPError:
        return  # the server answered: the network works; let the real download report problems
    except (urllib.error.URLError, OSError) as e:
        raise _no_network(name, url, getattr(e, "reason", e)) from None


def _keras_load(name: str):
    """((x_train, y_train), (x_test, y_test)) from keras.datasets; imported here, not at start-up."""
    from keras import datasets as kd  # noqa: PLC0415 (slow import, only when asked for)

    return {"cifar10": kd.cifar10, "fashion_mnist": kd.fashion_mnist}[name].load_data()


def _download(url: str, dest_file: Path) -> None:
    with urllib.request.urlopen(url, timeout=NETWORK_TIMEOUT_S) as r, open(dest_file, "wb") as f:
        shutil.copyfileobj(r, f, 1 << 20)


def _toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # JSON string escapes are valid TOML basic strings


def _write_toml(path: Path, meta: dict[str, object]) -> None:
    lines = []
    for k, v in meta.items():
        lines.append(f"{k} = {_toml_str(v) if isinstance(v, str) else json.dumps(v)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _pick(rng: np.random.Generator, idx: np.ndarray, per_class: int, what: str) -> np.ndarray:
    if len(idx) < per_class:
        raise DatasetError(f"{what}: only {len(idx)} images, {per_class} requested per class")
    return np.sort(rng.choice(idx, size=per_class, replace=False))


def _write_arrays(tmp: Path, x: np.ndarray, y: np.ndarray, classes: list[str], per_class: int, seed: int) -> None:
    from PIL import Image

    y = np.asarray(y).reshape(-1)
    rng = np.random.default_rng(seed)
    for c, cname in enumerate(classes):
        d = tmp / "images" / cname
        d.mkdir(parents=True)
        for i in _pick(rng, np.flatnonzero(y == c), per_class, f"class {cname}"):
            Image.fromarray(np.ascontiguousarray(x[i])).save(d / f"{int(i):05d}.png", optimize=False)


def fetch_public_dataset(name: str, dest: Path, *, per_class: int, seed: int = 0) -> Path:
    """Download a public dataset and write ``per_class`` seeded random images of each class as an
    image folder at ``dest`` (``dest/dataset.toml`` + ``dest/images/<class>/…``); returns ``dest``.

    Needs a network; without one it fails within seconds with a `DatasetError` saying so. Written
    into a hidden temporary folder next to ``dest`` and renamed at the end, so an interrupted run
    never leaves a half dataset behind.
    """
    if name not in PUBLIC_DATASETS:
        raise DatasetError(f"unknown public dataset {name!r}; known: {', '.join(PUBLIC_DATASETS)}")
    if per_class < 1:
        raise DatasetError(f"per_class must be ≥ 1, got {per_class}")
    dest = Path(dest).expanduser()
    if dest.exists():
        raise DatasetError(f"{dest}: already exists; remove it or choose another folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        if name == "tiny_imagenet":
            meta = _fetch_tiny_imagenet(tmp, per_class, seed)
        else:
            meta = _fetch_keras(name, tmp, per_class, seed)
        meta.update(per_class=per_class, seed=seed)
        _write_toml(tmp / "dataset.toml", meta)
        os.rename(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _fetch_keras(name: str, tmp: Path, per_class: int, seed: int) -> dict[str, object]:
    url = CIFAR10_URL if name == "cifar10" else FASHION_MNIST_URL
    _probe(name, url)
    try:
        (x, y), _ = _keras_load(name)
    except Exception as e:  # keras wraps network errors in a bare Exception("URL fetch failure …")
        raise _no_network(name, url, e) from None
    classes = CIFAR10_CLASSES if name == "cifar10" else FASHION_MNIST_CLASSES
    _write_arrays(tmp, x, y, classes, per_class, seed)
    if name == "cifar10":
        return {
            "name": "CIFAR-10",
            "description": f"{per_class} random training images per class of CIFAR-10 (32×32 colour photos).",
            "source": "A. Krizhevsky, Learning Multiple Layers of Features from Tiny Images, 2009; " + CIFAR10_URL,
        }
    return {
        "name": "Fashion-MNIST",
        "description": f"{per_class} random training images per class of Fashion-MNIST (28×28 grey product photos).",
        "source": "H. Xiao, K. Rasul, R. Vollgraf, Fashion-MNIST, 2017; https://github.com/zalandoresearch/fashion-mnist",
    }


def _fetch_tiny_imagenet(tmp: Path, per_class: int, seed: int, n_classes: int = 10) -> dict[str, object]:
    zpath = tmp / "tiny-imagenet-200.zip"
    try:
        _download(TINY_IMAGENET_URL, zpath)
    except (urllib.error.URLError, OSError) as e:
        raise _no_network("tiny_imagenet", TINY_IMAGENET_URL, getattr(e, "reason", e)) from None
    try:
        with zipfile.ZipFile(zpath) as z:
            _extract_tiny_imagenet(z, tmp, per_class, seed, n_classes)
    except (zipfile.BadZipFile, KeyError) as e:
        raise DatasetError(f"{TINY_IMAGENET_URL}: downloaded file is not the expected zip: {e}") from None
    finally:
        zpath.unlink(missing_ok=True)
    return {
        "name": "Tiny ImageNet subset",
        "description": f"{n_classes} random classes × {per_class} random training images of Tiny ImageNet (64×64).",
        "source": "Stanford CS231n Tiny ImageNet (subset of ImageNet); " + TINY_IMAGENET_URL,
    }


def _extract_tiny_imagenet(z: zipfile.ZipFile, tmp: Path, per_class: int, seed: int, n_classes: int) -> None:
    names = z.namelist()
    wnids = sorted(z.read("tiny-imagenet-200/wnids.txt").decode().split())
    words: dict[str, str] = {}
    for line in z.read("tiny-imagenet-200/words.txt").decode("utf-8", "replace").splitlines():
        wnid, _, label = line.partition("\t")
        words[wnid] = label
    rng = np.random.default_rng(seed)
    if len(wnids) < n_classes:
        raise DatasetError(f"tiny_imagenet: only {len(wnids)} classes in the zip, {n_classes} needed")
    chosen = sorted(rng.choice(len(wnids), size=n_classes, replace=False).tolist())
    for ci in chosen:
        wnid = wnids[ci]
        prefix = f"tiny-imagenet-200/train/{wnid}/images/"
        members = np.array(sorted(n for n in names if n.startswith(prefix) and not n.endswith("/")))
        # Folder name: the first synonym ("goldfish, Carassius auratus" → "goldfish"), made safe.
        label = words.get(wnid, wnid).split(",")[0].strip() or wnid
        folder = re.sub(r"[/\\\x00]+", "-", label) + f" ({wnid})"
        d = tmp / "images" / folder
        d.mkdir(parents=True)
        for m in _pick(rng, np.arange(len(members)), per_class, f"tiny_imagenet class {wnid}"):
            member = str(members[m])
            (d / member.rsplit("/", 1)[1]).write_bytes(z.read(member))

