"""Datasets: an ordered list of images with class labels, read from an image folder.

The user's way in is the image-folder layout ``root/<class>/<image>`` (images may sit in
sub-folders of a class folder). Bundled datasets live in ``datasets/<name>/`` with a
``dataset.toml`` (name, description, source) and their images in ``datasets/<name>/images/``;
any folder with that layout (e.g. one written by `fetch_public_dataset`) is read the same way.

Ids are stable: class folders in sorted order, then file paths in UTF-8 byte order, and every
candidate file is decoded once here, so a bad file is known (and skipped with its reason) before
any features are extracted and never shifts the ids of the others.

No TensorFlow at import time: `fetch_public_dataset` imports Keras only when it needs it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import tomllib
import unicodedata
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .images import DEFAULT_MAX_PIXELS, ImageError, load_rgb

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


class DatasetError(Exception):
    """A dataset that cannot be used at all (the message names the path and the problem)."""


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

    def path(self, i: int) -> Path:
        return self.root / self.files[i]

    def __len__(self) -> int:
        return len(self.files)


def builtin_datasets_dir() -> Path:
    """``<repo>/datasets``, or the folder named by the environment variable CONVNET_SEARCH_DATASETS."""
    env = os.environ.get(ENV_DATASETS_DIR)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parent.parent / "datasets"


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


def load_dataset(name_or_path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                 follow_links: bool = False) -> Dataset:  # follow_links: placeholder, see issue 12
    """Load a builtin dataset by name, or an image folder by path.

    A ``str`` without a path separator that names a builtin dataset (see `known_datasets`) is that
    dataset; anything else is a path. A folder holding ``dataset.toml`` and ``images/`` is read
    like a builtin one; any other folder is the image root itself.
    """
    builtins = known_datasets()
    if isinstance(name_or_path, str) and "/" not in name_or_path and os.sep not in name_or_path and name_or_path in builtins:
        folder = builtin_datasets_dir() / name_or_path
        meta = _read_meta(folder / "dataset.toml")
        return _scan(folder / "images", name_or_path, meta, max_pixels)

    path = Path(name_or_path).expanduser()
    if not path.exists():
        known = ", ".join(builtins) or "none found in " + str(builtin_datasets_dir())
        raise DatasetError(f"{path}: no such dataset or folder (builtin datasets: {known})")
    if not path.is_dir():
        raise DatasetError(f"{path}: not a folder (a dataset is a folder of class folders: root/<class>/<image>)")
    if (path / "dataset.toml").is_file() and (path / "images").is_dir():
        meta = _read_meta(path / "dataset.toml")
        return _scan(path / "images", _slug(path.resolve().name), meta, max_pixels)
    name = path.resolve().name
    meta = {"name": name, "description": "", "source": f"image folder '{name}'"}
    return _scan(path, _slug(name), meta, max_pixels)


def _scan(root: Path, ds_id: str, meta: dict[str, str], max_pixels: int) -> Dataset:
    if not root.is_dir():
        raise DatasetError(f"{root}: image folder missing")
    skipped: list[SkippedFile] = []
    class_dirs: list[str] = []
    for entry in sorted(os.scandir(root), key=lambda e: _sort_key(e.name)):
        if entry.name.startswith("."):
            continue  # .DS_Store, .git, editor files: silently ignored
        if entry.is_dir():
            class_dirs.append(entry.name)
        else:
            skipped.append(SkippedFile(_display(entry.name), NOT_IN_CLASS))
    if not class_dirs:
        extra = f" ({len(skipped)} files lie directly in it; put them into one sub-folder per class)" if skipped else ""
        raise DatasetError(f"{root}: no class folders; expected root/<class>/<image>{extra}")

    classes: list[str] = []
    files: list[str] = []
    labels: list[int] = []
    for cls in class_dirs:
        if cls != _display(cls):
            # Class names go into the manifest as text; a folder name that is not UTF-8 cannot.
            skipped.append(SkippedFile(_display(cls) + "/", "class folder name is not valid UTF-8"))
            continue
        usable = 0
        for rel in _class_files(root, cls):
            shown = _display(rel)
            try:
                rel.encode("utf-8")
            except UnicodeEncodeError:
                # The bundle's index.json holds names as UTF-8 text; such a name cannot be written.
                skipped.append(SkippedFile(shown, "file name is not valid UTF-8"))
                continue
            try:
                load_rgb(root / rel, max_pixels=max_pixels)
            except ImageError as e:
                skipped.append(SkippedFile(shown, e.reason))
                continue
            if usable == 0:
                classes.append(cls)
            usable += 1
            files.append(rel)
            labels.append(len(classes) - 1)
        if usable == 0:
            skipped.append(SkippedFile(cls + "/", EMPTY_CLASS))

    if not files:
        reasons = [f"{s.file}: {s.reason}" for s in skipped if s.reason != EMPTY_CLASS][:5]
        n_bad = sum(1 for s in skipped if s.reason != EMPTY_CLASS)
        shown = "; ".join(reasons) if reasons else "the class folders are empty"
        raise DatasetError(f"{root}: no usable image ({n_bad} files skipped: {shown})")
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
    )


def _class_files(root: Path, cls: str) -> list[str]:
    """Files under ``root/cls`` (recursively, hidden entries and symlinked folders skipped), as
    posix paths relative to root, in UTF-8 byte order."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root / cls):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        for fn in filenames:
            if not fn.startswith("."):
                out.append(f"{rel_dir}/{fn}")
    return sorted(out, key=_sort_key)


def dataset_fingerprint(ds: Dataset) -> str:
    """sha256 hex over the classes, every image's (relative path, label, sha256 of its bytes) and
    the skipped files: it changes when any byte, name, label or skip reason changes."""
    h = hashlib.sha256()
    h.update(json.dumps({"fingerprint": 1, "classes": ds.classes}, ensure_ascii=True).encode())
    for rel, label in zip(ds.files, ds.labels.tolist()):
        fh = hashlib.sha256()
        try:
            with open(ds.root / rel, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    fh.update(chunk)
        except OSError as e:
            raise DatasetError(f"{ds.root / rel}: cannot read file for the dataset fingerprint: {e}") from None
        h.update(json.dumps([_display(rel), int(label), fh.hexdigest()], ensure_ascii=True).encode() + b"\n")
    for s in ds.skipped:
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

