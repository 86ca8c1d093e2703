"""Where a run may write and what it may delete: the work folder (`--work`), the bundle (`--out`).

The engine deletes only what it created. It writes a marker file (JSON with a format version)
into each of the two folders and removes or replaces things there only when the marker is present
(or, for folders from before markers existed, when every entry is one the engine itself writes).
Both folders must be disjoint from the dataset folders and from each other, so that replacing the
bundle or clearing the cache can never reach a photo. A lock file in the work folder, and one
beside the bundle folder, keep two runs from sharing either: a second run fails at once, naming
the process that holds the lock. Temporary bundle folders a killed run left beside --out (marked
as ours) are removed by the next run that holds the --out lock.

Everything here runs before any compute, so a mistake costs seconds, not hours.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import __version__

MARKER_FORMAT = 1
WORK_MARKER = ".convnet-search-work"
BUNDLE_MARKER = ".convnet-search-bundle"
LOCK_FILE = ".convnet-search.lock"
OUT_LOCK_SUFFIX = ".convnet-search.lock"  # beside --out: ".<out name>.convnet-search.lock"
PROBE_PREFIX = ".convnet-search-probe-"  # writability probe, removed at once (unless killed then)
STAGE_DIRS = ("features", "neighbors", "umap", "scores", "curate", "judgements", "thumbs", "tfjs", "scan-cache")
# A run needs far more on a real dataset; below this even a tiny run fails midway.
MIN_FREE_BYTES = 100 * 2**20

_SEG = r"[^/]+"
_HEX = r"[0-9a-f]+"
# Temporary names of store.atomic_path (".name.RANDOM.tmp[.npz]", ".name.old") and of the TF.js
# export (".tfjs-RANDOM/..."), left behind only by a killed run.
_TEMP = rf"(.*/)?(\.{_SEG}\.tmp[^/]*|\.{_SEG}\.old|\.tfjs-{_SEG})(/.*)?"
# Every file and folder a work folder of this engine can hold (relative, posix).
WORK_FILES = (
    re.escape(WORK_MARKER), re.escape(LOCK_FILE), rf"{re.escape(PROBE_PREFIX)}{_SEG}",
    rf"(features|neighbors|umap)/{_SEG}/{_SEG}\.h5",
    rf"features/{_SEG}/{_SEG}\.parts-{_HEX}/(shard-{_HEX}\.npz|state\.json)",
    rf"tfjs/{_SEG}-{_HEX}\.json",
    rf"tfjs/{_SEG}-{_HEX}/{_SEG}",
    rf"scan-cache/{_SEG}\.json",
    rf"judgements/{_SEG}\.json",
    rf"(features|neighbors|umap|tfjs|scan-cache|judgements)/{_TEMP}",
)
WORK_DIRS = (
    r"(features|neighbors|umap|tfjs|scan-cache|judgements)",
    rf"(features|neighbors|umap)/{_SEG}",
    rf"features/{_SEG}/{_SEG}\.parts-{_HEX}",
    rf"tfjs/{_SEG}-{_HEX}",
    rf"(features|neighbors|umap|tfjs|scan-cache|judgements)/{_TEMP}",
)


class WorkspaceError(Exception):
    """--out / --work cannot be used as given (a usage mistake: exit 2)."""


class StorageError(WorkspaceError):
    """A folder is not writable or its disk is (nearly) full (exit 4)."""


class BusyError(WorkspaceError):
    """Another run holds the work folder's lock (exit 5)."""


# ---------------------------------------------------------------------------------------------
# Pure helpers
# ---------------------------------------------------------------------------------------------

def overlaps(a: Path, b: Path) -> bool:
    """True if resolved paths `a` and `b` are equal or one contains the other."""
    return a == b or a in b.parents or b in a.parents


def layout_problems(out: Path, work: Path, dataset_roots: Iterable[Path]) -> list[str]:
    """Why `out`/`work` may not be used next to these dataset folders (all paths resolved)."""
    problems = []
    for flag, folder in (("--out", out), ("--work", work)):
        for root in dataset_roots:
            if overlaps(folder, root):
                how = ("is" if folder == root else "is inside" if root in folder.parents
                       else "contains")
                problems.append(f"{flag} {folder} {how} the dataset folder {root}; "
                                f"writing there could overwrite or delete your images — choose a "
                                f"{flag} folder outside it")
    if overlaps(out, work):
        problems.append(f"--out {out} and --work {work} overlap; they must be separate folders")
    return problems


def _template_regex(parts: list[str]) -> str:
    # "{id}" is an image number; every other placeholder is one path segment.
    def one(part: str) -> str:
        return re.sub(r"\\\{([^}]*)\\\}", lambda m: r"\d+" if m.group(1) == "id" else _SEG,
                      re.escape(part))
    return "/".join(one(p) for p in parts)


def templates_to_regex(templates: Iterable[str]) -> tuple[list[str], list[str]]:
    """(file regexes, folder regexes) of the paths named by templates like "a/{x}/b.json": the
    files are the templates, the folders every proper prefix of them."""
    files, dirs = set(), set()
    for t in templates:
        parts = t.split("/")
        files.add(_template_regex(parts))
        dirs.update(_template_regex(parts[:i]) for i in range(1, len(parts)))
    return sorted(files), sorted(dirs)


def foreign_entries(entries: Iterable[tuple[str, bool]], files: Iterable[str],
                    dirs: Iterable[str]) -> list[str]:
    """The (relative path, is_dir) entries matching none of the file (or folder) regexes."""
    rx_file = re.compile("|".join(f"(?:{a})" for a in files))
    rx_dir = re.compile("|".join(f"(?:{a})" for a in dirs) or "(?!)")
    return [p for p, is_dir in entries if not (rx_dir if is_dir else rx_file).fullmatch(p)]


def marker_payload(kind: str) -> dict[str, Any]:
    return {"format": MARKER_FORMAT, "kind": kind, "generator": f"convnet-search {__version__}"}


def lock_message(work: Path, holder: str, flag: str = "--work") -> str:
    """The busy error: who holds the lock, from the JSON the holder wrote into the lock file."""
    try:
        info = json.loads(holder)
        who = (f"pid {info['pid']} on {info['host']}, started "
               f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(info['started']))}")
    except (ValueError, KeyError, TypeError):
        who = "a process that has not yet written its id"
    return (f"{flag} {work} is in use by another convnet-search run ({who}); wait for it to finish "
            f"or choose another {flag}")


# ---------------------------------------------------------------------------------------------
# Filesystem checks
# ---------------------------------------------------------------------------------------------

def _walk(root: Path) -> Iterator[tuple[str, bool]]:
    """(relative posix path, is a real folder) of everything under `root`; links are not followed
    and count as files, so a link is foreign unless a file of that name is expected."""
    def unreadable(exc: OSError) -> None:  # an unlisted folder could hide files that are not ours
        raise WorkspaceError(f"{exc.filename}: cannot list ({exc.strerror}); so it cannot be "
                             "checked for files convnet-search did not write")

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        rel = Path(dirpath).relative_to(root)
        for name in dirnames:
            yield (rel / name).as_posix(), not os.path.islink(os.path.join(dirpath, name))
        for name in filenames:
            yield (rel / name).as_posix(), False


def dataset_folder(name: str) -> Path:
    """The folder a --dataset argument names, without scanning it (datasets.load_dataset's rule)."""
    from .datasets import builtin_datasets_dir, bundled_name

    bundled = bundled_name(name)
    return builtin_datasets_dir() / bundled if bundled else Path(name).expanduser()


def _first_few(paths: list[str], n: int = 5) -> str:
    return ", ".join(paths[:n]) + (f" and {len(paths) - n} more" if len(paths) > n else "")


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def read_marker(folder: Path, name: str, kind: str) -> dict[str, Any] | None:
    """The folder's marker, None if it has none; refuses a marker of another kind or format."""
    p = folder / name
    if not p.exists():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        fmt, got = data["format"], data["kind"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WorkspaceError(f"{p}: unreadable marker file ({exc}); if this folder is not yours to "
                             "replace, choose another folder") from None
    if got != kind or not isinstance(fmt, int):
        raise WorkspaceError(f"{p}: marker of a {got!r} folder, expected {kind!r}")
    if fmt > MARKER_FORMAT:
        raise WorkspaceError(f"{folder}: written by a newer convnet-search (marker format {fmt}); "
                             "upgrade, or choose another folder")
    return data


def check_bundle_target(out: Path, own_templates: Iterable[str]) -> None:
    """Refuse an `--out` the bundle writer may not replace.

    Replaceable: a missing or empty folder, or one that holds only files the bundle writer
    produces (`own_templates`) and either our marker or, for bundles written before markers,
    manifest.json + .bundle-fingerprint. A marker alone is not enough: files a user added to a
    bundle folder would be lost in the swap.
    """
    out = Path(out)
    if out.is_symlink():  # the swap would replace the link, not fill the folder it points to
        raise WorkspaceError(f"--out {out}: is a symbolic link; give the real folder's path")
    if out.exists() and not out.is_dir():
        raise WorkspaceError(f"--out {out}: exists and is not a folder; choose a folder path")
    if not out.exists() or not any(out.iterdir()):
        return
    marked = read_marker(out, BUNDLE_MARKER, "bundle") is not None
    legacy = (out / "manifest.json").is_file() and (out / ".bundle-fingerprint").is_file()
    if not (marked or legacy):
        raise WorkspaceError(f"--out {out}: refusing to replace a non-empty folder that is not a "
                             f"convnet-search bundle (no {BUNDLE_MARKER} marker); "
                             "choose another --out")
    own = templates_to_regex([*own_templates, PROBE_PREFIX + "{x}"])
    foreign = foreign_entries(_walk(out), *own)
    if foreign:
        shown = _first_few(foreign)
        raise WorkspaceError(f"--out {out}: refusing to replace a bundle folder holding files "
                             f"convnet-search did not write ({shown}); move them away or choose "
                             "another --out")


def check_work_target(work: Path) -> None:
    """Refuse a `--work` that is a file, or a non-empty folder that is not a work folder of ours."""
    work = Path(work)
    if (work.exists() or work.is_symlink()) and not work.is_dir():
        raise WorkspaceError(f"--work {work}: exists and is not a folder; choose a folder path")
    if not work.exists() or not any(work.iterdir()):
        return
    if read_marker(work, WORK_MARKER, "work") is not None:
        return
    # A work folder from before markers existed holds only stage outputs: adopt it.
    foreign = foreign_entries(_walk(work), WORK_FILES, WORK_DIRS)
    if foreign:
        shown = _first_few(foreign)
        raise WorkspaceError(f"--work {work}: refusing to use a non-empty folder that is not a "
                             f"convnet-search work folder (no {WORK_MARKER} marker; it holds "
                             f"{shown}); choose an empty or new --work")


def probe_writable(folder: Path, flag: str) -> None:
    """Create and remove a temp file in `folder` (the nearest existing ancestor if it is missing).

    A real write, not os.access: access() says yes to root on a read-only mount or immutable folder.
    """
    target = _nearest_existing(Path(folder))
    if not target.is_dir():
        raise StorageError(f"{flag} {folder}: {target} is not a folder")
    try:
        fd, name = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=target)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise StorageError(f"{flag} {folder}: cannot write into {target} "
                           f"({exc.strerror or exc}); choose a writable folder") from None


def check_free_space(folder: Path, flag: str, need: int = MIN_FREE_BYTES) -> None:
    target = _nearest_existing(Path(folder))
    free = shutil.disk_usage(target).free
    if free < need:
        raise StorageError(f"{flag} {folder}: only {free / 2**20:.0f} MB free on its disk, at "
                           f"least {need / 2**20:.0f} MB needed; free some space and run again")


def prepare_work(work: Path) -> None:
    """Create the work folder (or adopt an old one) and write its marker."""
    work = Path(work)
    check_work_target(work)
    try:
        work.mkdir(parents=True, exist_ok=True)
        if not (work / WORK_MARKER).exists():
            from .store import atomic_write_json
            atomic_write_json(work / WORK_MARKER, marker_payload("work"))
    except OSError as exc:
        raise StorageError(f"--work {work}: cannot write ({exc.strerror or exc}); "
                           "choose a writable folder") from None


def clear_stages(work: Path, names: Iterable[str] = STAGE_DIRS) -> None:
    """--force: remove the engine's own stage folders (all, or `names`: one stage's, with --only),
    nothing else (the marker was checked)."""
    for name in names:
        p = Path(work) / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)


def out_lock_path(out: Path) -> Path:
    """The lock of a bundle folder: a hidden file beside it, since the folder itself is swapped
    out whole when the bundle is written (a lock inside would go with the old folder)."""
    out = Path(out)
    return out.parent / f".{out.name}{OUT_LOCK_SUFFIX}"


@contextmanager
def work_lock(work: Path) -> Iterator[None]:
    """Hold an exclusive flock on `work`/LOCK_FILE; fail at once if another process holds it."""
    with folder_lock(Path(work) / LOCK_FILE, Path(work), "--work"):
        yield


@contextmanager
def out_lock(out: Path) -> Iterator[None]:
    """The same lock for `--out`: two runs writing one bundle folder (even with different --work)
    would each swap in their own datasets and the last one would silently win."""
    with folder_lock(out_lock_path(out), Path(out), "--out"):
        yield


@contextmanager
def folder_lock(path: Path, folder: Path, flag: str) -> Iterator[None]:
    """Hold an exclusive flock on `path`; fail at once (BusyError) if another process holds it.

    flock is released by the kernel when the holder exits, however it dies, so the lock of a
    dead run is simply taken over; the pid/host/time written into the file only feed the message.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StorageError(f"{flag} {folder}: cannot create the lock file {path} "
                           f"({exc.strerror or exc})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace")
            raise BusyError(lock_message(folder, holder, flag)) from None
        info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                           "started": time.time()})
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def stale_bundle_temps(out: Path) -> list[Path]:
    """Temporary folders a killed bundle write left beside `out` (store.atomic_path's
    ".<name>.RANDOM.tmp" and ".<name>.old"), recognised only when they carry the bundle marker
    (bundle.write_bundle writes it first) or are empty: a folder of that
    name without our marker is not ours and stays. Call this only while holding `out_lock`, so no
    live writer's temp folder can match."""
    out = Path(out)
    parent = out.parent
    if not parent.is_dir():
        return []
    prefix = f".{out.name}."
    found = []
    for entry in parent.iterdir():
        name = entry.name
        if not name.startswith(prefix) or entry.is_symlink() or not entry.is_dir():
            continue
        middle = name[len(prefix):]
        if not (middle == "old" or (middle.endswith(".tmp") and "." not in middle[:-4])):
            continue
        if not any(entry.iterdir()) or _marked_bundle_temp(entry):
            found.append(entry)
    return sorted(found)


def _marked_bundle_temp(folder: Path) -> bool:
    try:
        return read_marker(folder, BUNDLE_MARKER, "bundle") is not None
    except WorkspaceError:
        return False


def remove_stale_bundle_temps(out: Path) -> list[Path]:
    """Remove `stale_bundle_temps(out)`; returns what was removed."""
    gone = []
    for folder in stale_bundle_temps(out):
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            gone.append(folder)
    return gone


def preflight(out: Path, work: Path, dataset_roots: Iterable[Path],
              own_bundle_templates: Iterable[str]) -> None:
    """All checks that need no compute: layout, replaceability, writability, free space.

    Paths are compared after resolving symlinks, so a link cannot hide a dataset inside --out.
    """
    roots = [Path(r).resolve() for r in dataset_roots]
    problems = layout_problems(Path(out).resolve(), Path(work).resolve(), roots)
    if problems:
        raise WorkspaceError("; ".join(problems))
    check_bundle_target(out, own_bundle_templates)
    check_work_target(work)
    for flag, folder in (("--out", Path(out)), ("--work", Path(work))):
        probe_writable(folder, flag)
        if flag == "--out" and Path(out).is_dir():
            probe_writable(Path(out).parent, flag)  # the bundle is swapped in beside it
        check_free_space(folder, flag)
