"""convnet_search.io.datasets: image folders → ordered, labelled datasets; builtin datasets; recipes."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import convnet_search.io.datasets as dsm
from convnet_search.io.datasets import (
    Dataset,
    DatasetError,
    SkippedFile,
    builtin_datasets_dir,
    dataset_fingerprint,
    fetch_public_dataset,
    known_datasets,
    load_dataset,
)
from convnet_search.io.images import load_rgb
from odd_images import make_odd_image_folder

REPO = Path(__file__).resolve().parent.parent
# Tests of other things that happen to use a single class: its warning is tested on its own below.
ONE_CLASS_OK = pytest.mark.filterwarnings("ignore:dataset .* has one class:RuntimeWarning")


def _png(path: Path, colour=(0, 0, 0), size=(4, 4)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


# --- the odd folder ----------------------------------------------------------------------------

@pytest.fixture()
def odd(tmp_path):
    return make_odd_image_folder(tmp_path / "Odd Folder")


def test_odd_folder_valid_files_kept_in_order_bad_ones_skipped_with_reasons(odd):
    ds = load_dataset(odd.root)
    assert isinstance(ds, Dataset)
    assert ds.files == odd.valid
    assert ds.classes == odd.classes == ["colour", "grey", "ünicode"]
    assert ds.labels.dtype == np.int32
    assert [ds.classes[label] for label in ds.labels] == [f.split("/", 1)[0] for f in ds.files]
    assert len(ds) == len(odd.valid) == 11
    assert ds.path(0) == odd.root / ds.files[0]
    # Every bad file is named once, with its reason; the empty class is reported too.
    by_file = {s.file: s.reason for s in ds.skipped}
    hidden = {"colour/.DS_Store": "hidden/system file (not an image)",
              "colour/.hidden_dir/": "hidden folder (name starts with '.'): not searched; rename it to include it"}
    assert set(by_file) == set(odd.bad) | {c + "/" for c in odd.empty_classes} | set(hidden)
    for rel, expected in odd.bad.items():
        assert expected in by_file[rel], (rel, by_file[rel])
    assert by_file["broken/"] == "class folder has no usable image"
    assert by_file["stray.png"] == "not inside a class folder"
    # Hidden files and folders are not read, but listed (a hidden folder once, not its contents).
    for rel, reason in hidden.items():
        assert by_file[rel] == reason
    assert not any("hidden" in f for f in ds.files)
    # Every kept file really decodes (load_dataset decoded them all already).
    for i in range(len(ds)):
        assert load_rgb(ds.path(i)).shape[:2] == odd.expected_hw[ds.files[i]]


def test_user_folder_id_and_name(odd, tmp_path):
    ds = load_dataset(odd.root)
    assert ds.name == "Odd Folder" and ds.id == "odd_folder" and ds.description == ""
    assert ds.root == odd.root
    shutil.copytree(odd.root, tmp_path / "Café Photos (2024)!")
    ds2 = load_dataset(str(tmp_path / "Café Photos (2024)!"))
    assert ds2.id == "cafe_photos_2024" and ds2.name == "Café Photos (2024)!"
    assert dsm._slug("日本") == "dataset" and dsm._slug("a--B__c") == "a--b__c"


def test_order_is_class_then_utf8_bytes_and_recurses(tmp_path):
    root = tmp_path / "d"
    names = ["b/z.png", "b/a/9.png", "b/B.png", "b/10.png", "b/2.png", "b/é.png", "b/e.png",
             "a/x.png", "Z/y.png", "é/q.png"]
    for n in names:
        _png(root / n)
    ds = load_dataset(root)
    assert ds.classes == ["Z", "a", "b", "é"]  # bytes: 'Z' < 'a' < 'b' < 0xC3…
    assert ds.files == ["Z/y.png", "a/x.png",
                        "b/10.png", "b/2.png", "b/B.png", "b/a/9.png", "b/e.png", "b/z.png", "b/é.png",
                        "é/q.png"]
    assert ds.labels.tolist() == [0, 1, 2, 2, 2, 2, 2, 2, 2, 3]
    assert ds.skipped == []


def test_ids_of_good_files_do_not_move_when_bad_files_appear(tmp_path):
    root = tmp_path / "d"
    for n in ("a/1.png", "a/3.png", "b/1.png"):
        _png(root / n)
    before = load_dataset(root).files
    (root / "a/2.png").write_bytes(b"broken")
    (root / "a/0.jpg").write_bytes(b"")
    after = load_dataset(root)
    assert after.files == before
    assert [s.file for s in after.skipped] == ["a/0.jpg", "a/2.png"]


def test_class_with_no_usable_image_is_dropped_and_labels_stay_dense(tmp_path):
    root = tmp_path / "d"
    _png(root / "a/1.png")
    (root / "b").mkdir()
    (root / "b/x.jpg").write_text("text")
    (root / "c").mkdir()  # empty class folder
    _png(root / "d/1.png")
    ds = load_dataset(root)
    assert ds.classes == ["a", "d"] and ds.labels.tolist() == [0, 1]
    assert ds.skipped == [
        SkippedFile("b/x.jpg", "not an image (unrecognised format; supported: JPEG, PNG, GIF, WebP, BMP, TIFF)"),
        SkippedFile("b/", "class folder has no usable image"),
        SkippedFile("c/", "class folder has no usable image"),
    ]


@pytest.mark.skipif(sys.platform != "linux", reason="needs a filesystem that stores raw bytes in names")
@ONE_CLASS_OK
def test_file_name_that_is_not_utf8_is_skipped_and_shown_escaped(tmp_path):
    root = tmp_path / "d"
    _png(root / "a/ok.png")
    raw = os.fsencode(root / "a") + b"/bad\xff.png"
    with open(raw, "wb") as f:
        Image.new("RGB", (2, 2)).save(f, format="PNG")
    ds = load_dataset(root)
    assert ds.files == ["a/ok.png"]
    assert ds.skipped == [SkippedFile("a/bad\\xff.png", "file name is not valid UTF-8")]


@ONE_CLASS_OK
def test_max_pixels_is_passed_to_the_decoder(tmp_path):
    root = tmp_path / "d"
    _png(root / "a/small.png", size=(4, 4))
    _png(root / "a/big.png", size=(30, 30))
    ds = load_dataset(root, max_pixels=100)
    assert ds.files == ["a/small.png"]
    assert ds.skipped == [SkippedFile("a/big.png", "too large: 30×30 pixels > limit 100")]


# --- errors ------------------------------------------------------------------------------------

def test_missing_path_lists_the_builtin_datasets(tmp_path):
    with pytest.raises(DatasetError) as ei:
        load_dataset(tmp_path / "nope")
    msg = str(ei.value)
    assert str(tmp_path / "nope") in msg and "digits" in msg and "shapes" in msg
    with pytest.raises(DatasetError, match="no such dataset"):
        load_dataset("no_such_builtin")


def test_file_instead_of_folder(tmp_path):
    f = _png(tmp_path / "x.png")
    with pytest.raises(DatasetError, match=r"x\.png: not a folder"):
        load_dataset(f)


def test_no_class_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty: no class folders"):
        load_dataset(tmp_path / "empty")
    for i in range(3):
        _png(tmp_path / "flat" / f"{i}.png")
    (tmp_path / "flat/.hidden").mkdir()
    with pytest.raises(DatasetError, match=r"no class folders.*3 files lie directly in it"):
        load_dataset(tmp_path / "flat")


def test_no_usable_image_says_how_many_and_why(tmp_path):
    root = tmp_path / "bad"
    (root / "a").mkdir(parents=True)
    for i in range(7):
        (root / "a" / f"{i}.jpg").write_bytes(b"")
    with pytest.raises(DatasetError) as ei:
        load_dataset(root)
    msg = str(ei.value)
    assert str(root) in msg and "no usable image (7 files skipped" in msg
    assert "a/0.jpg: empty file (0 bytes)" in msg and "a/4.jpg" in msg and "a/5.jpg" not in msg  # first 5


def test_bad_dataset_toml_is_named(tmp_path):
    root = tmp_path / "ds"
    _png(root / "images/a/1.png")
    (root / "dataset.toml").write_text('name = "x"\ndescription = 3\nsource = "s"\n')
    with pytest.raises(DatasetError, match=r"dataset\.toml: 'description' must be a string"):
        load_dataset(root)
    (root / "dataset.toml").write_text("name = \n")
    with pytest.raises(DatasetError, match=r"dataset\.toml: cannot read"):
        load_dataset(root)


# --- fingerprint ---------------------------------------------------------------------------------

def test_fingerprint_is_stable_and_sensitive(tmp_path):
    root = tmp_path / "d"
    _png(root / "a/1.png", (1, 2, 3))
    _png(root / "a/2.png", (4, 5, 6))
    _png(root / "b/1.png", (7, 8, 9))
    fp = dataset_fingerprint(load_dataset(root))
    assert len(fp) == 64 and int(fp, 16) >= 0
    assert dataset_fingerprint(load_dataset(root)) == fp  # unchanged → same
    (root / "a/.DS_Store").write_bytes(b"x")  # hidden files are not part of the dataset
    assert dataset_fingerprint(load_dataset(root)) == fp

    # One byte more (after IEND: still a valid, identical-looking PNG) → different.
    data = (root / "a/2.png").read_bytes()
    (root / "a/2.png").write_bytes(data + b"\x00")
    assert load_dataset(root).files == ["a/1.png", "a/2.png", "b/1.png"]
    fp_byte = dataset_fingerprint(load_dataset(root))
    assert fp_byte != fp
    (root / "a/2.png").write_bytes(data)
    assert dataset_fingerprint(load_dataset(root)) == fp  # restored → same again

    os.rename(root / "b", root / "c")  # a class renamed
    assert dataset_fingerprint(load_dataset(root)) != fp
    os.rename(root / "c", root / "b")
    (root / "b/junk.jpg").write_text("not an image")  # only the skipped list changes
    assert dataset_fingerprint(load_dataset(root)) != fp
    (root / "b/junk.jpg").unlink()
    assert dataset_fingerprint(load_dataset(root)) == fp


@ONE_CLASS_OK
def test_fingerprint_names_a_file_that_vanished(tmp_path):
    root = tmp_path / "d"
    _png(root / "a/1.png")
    ds = load_dataset(root)
    (root / "a/1.png").unlink()
    with pytest.raises(DatasetError, match=r"a/1\.png: cannot read"):
        dataset_fingerprint(ds)


# --- builtin datasets --------------------------------------------------------------------------

@pytest.mark.parametrize("name,side", [("digits", 64), ("shapes", 96)])
def test_builtin_datasets_have_200_images_in_10_classes(name, side):
    assert name in known_datasets()
    ds = load_dataset(name)
    assert ds.id == name and ds.name and ds.description and ds.source
    assert len(ds) == 200 and len(ds.classes) == 10 and ds.skipped == []
    assert np.bincount(ds.labels).tolist() == [20] * 10
    assert ds.root == builtin_datasets_dir() / name / "images"
    for i in (0, 57, 199):
        assert load_rgb(ds.path(i)).shape == (side, side, 3)
    total = sum(ds.path(i).stat().st_size for i in range(len(ds)))
    assert total < 1_500_000


def test_digits_are_the_sklearn_scans():
    from sklearn.datasets import load_digits

    d = load_digits()
    ds = load_dataset("digits")
    assert ds.classes == [str(i) for i in range(10)]
    for i in (0, 100, 199):
        src = int(Path(ds.files[i]).stem)  # files are named by their index in load_digits
        assert d.target[src] == int(ds.classes[ds.labels[i]])
        small = np.asarray(Image.fromarray(load_rgb(ds.path(i))[:, :, 0]).resize((8, 8), Image.Resampling.BOX))
        ink = 255 - small.astype(float)
        assert np.corrcoef(ink.ravel(), d.images[src].ravel())[0, 1] > 0.9


def test_shapes_colour_alone_does_not_tell_the_classes_apart():
    """Colour histograms classify the shapes no better than a weak guess (chance is 10%): the
    classes differ by shape and texture, as intended."""
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    ds = load_dataset("shapes")
    hists = []
    for i in range(len(ds)):
        q = load_rgb(ds.path(i)).reshape(-1, 3) // 64
        hists.append(np.bincount(q[:, 0] * 16 + q[:, 1] * 4 + q[:, 2], minlength=64) / len(q))
    acc = cross_val_score(KNeighborsClassifier(1), np.array(hists), ds.labels, cv=5).mean()
    assert acc < 0.35, acc


@ONE_CLASS_OK
def test_env_variable_overrides_builtin_dir(tmp_path, monkeypatch):
    d = tmp_path / "mine"
    _png(d / "toy/images/a/1.png")
    (d / "toy/dataset.toml").write_text('name = "Toy"\ndescription = "d"\nsource = "s"\n')
    (d / "not_a_dataset").mkdir()
    monkeypatch.setenv("CONVNET_SEARCH_DATASETS", str(d))
    assert builtin_datasets_dir() == d and known_datasets() == ["toy"]
    ds = load_dataset("toy")
    assert (ds.id, ds.name, ds.files) == ("toy", "Toy", ["a/1.png"])


def test_build_script_is_deterministic_and_matches_the_committed_datasets(tmp_path):
    spec = importlib.util.spec_from_file_location("build_datasets", REPO / "datasets/build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    build.main(["--out", str(tmp_path / "one")])
    build.main(["--out", str(tmp_path / "two")])
    for name in ("digits", "shapes"):
        one = _tree(tmp_path / "one" / name)
        assert len(one) == 201  # 200 PNGs + dataset.toml
        assert one == _tree(tmp_path / "two" / name), name
        assert one == _tree(REPO / "datasets" / name), f"datasets/{name} differs from what build.py writes"
    assert not [p for p in (tmp_path / "one").iterdir() if p.name.startswith(".")]  # no temp leftovers


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- public dataset recipes (offline: downloads are monkeypatched) -------------------------------

def _no_dns(*args, **kwargs):
    raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))


@pytest.mark.parametrize("name,url", [("cifar10", dsm.CIFAR10_URL), ("fashion_mnist", dsm.FASHION_MNIST_URL),
                                      ("tiny_imagenet", dsm.TINY_IMAGENET_URL)])
def test_recipe_without_network_fails_fast_with_a_clear_message(name, url, tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", _no_dns)
    monkeypatch.setattr(dsm, "_keras_load", lambda n: pytest.fail("must not reach keras without a network"))
    t = time.perf_counter()
    with pytest.raises(DatasetError) as ei:
        fetch_public_dataset(name, tmp_path / "out", per_class=2)
    assert time.perf_counter() - t < 2
    msg = str(ei.value)
    assert msg.startswith(f"could not download {name} from {url}: ")
    assert "name resolution" in msg and "seems to have no network" in msg and "digits" in msg
    assert list(tmp_path.iterdir()) == []  # nothing half-written, no temp folder left


def test_keras_download_error_is_reported_too(tmp_path, monkeypatch):
    monkeypatch.setattr(dsm, "_probe", lambda name, url: None)

    def fail(name):
        raise Exception("URL fetch failure on https://example/x: None -- [Errno 101] Network is unreachable")

    monkeypatch.setattr(dsm, "_keras_load", fail)
    with pytest.raises(DatasetError, match=r"could not download cifar10 from .*Network is unreachable"):
        fetch_public_dataset("cifar10", tmp_path / "out", per_class=2)
    assert list(tmp_path.iterdir()) == []


def test_recipe_argument_errors(tmp_path):
    with pytest.raises(DatasetError, match="unknown public dataset 'mnist'; known: cifar10, fashion_mnist, tiny_imagenet"):
        fetch_public_dataset("mnist", tmp_path / "x", per_class=1)
    (tmp_path / "exists").mkdir()
    with pytest.raises(DatasetError, match="exists: already exists"):
        fetch_public_dataset("cifar10", tmp_path / "exists", per_class=1)
    with pytest.raises(DatasetError, match="per_class must be"):
        fetch_public_dataset("cifar10", tmp_path / "x", per_class=0)


def _fake_keras(name):
    rng = np.random.default_rng(5)
    if name == "cifar10":
        x = rng.integers(0, 256, (60, 32, 32, 3), dtype=np.uint8)
        y = (np.arange(60) % 10).reshape(-1, 1).astype(np.uint8)  # keras: shape (N, 1)
    else:
        x = rng.integers(0, 256, (60, 28, 28), dtype=np.uint8)
        y = (np.arange(60) % 10).astype(np.uint8)
    return (x, y), (x[:0], y[:0])


@pytest.mark.parametrize("name", ["cifar10", "fashion_mnist"])
def test_keras_recipe_writes_a_loadable_seeded_image_folder(name, tmp_path, monkeypatch):
    monkeypatch.setattr(dsm, "_probe", lambda n, url: None)
    monkeypatch.setattr(dsm, "_keras_load", _fake_keras)
    out = fetch_public_dataset(name, tmp_path / name, per_class=3, seed=1)
    assert out == tmp_path / name
    ds = load_dataset(out)
    assert len(ds) == 30 and len(ds.classes) == 10 and ds.skipped == []
    assert set(ds.classes) == set(dsm.CIFAR10_CLASSES if name == "cifar10" else dsm.FASHION_MNIST_CLASSES)
    assert ds.name == ("CIFAR-10" if name == "cifar10" else "Fashion-MNIST") and ds.source
    (x, y), _ = _fake_keras(name)
    y = y.reshape(-1)
    for i in range(len(ds)):
        src = int(Path(ds.files[i]).stem)  # files are named by their index in the source array
        classes = dsm.CIFAR10_CLASSES if name == "cifar10" else dsm.FASHION_MNIST_CLASSES
        assert classes[y[src]] == ds.classes[ds.labels[i]]
        got = load_rgb(ds.path(i))
        want = x[src] if x.ndim == 4 else np.repeat(x[src][:, :, None], 3, axis=2)
        assert np.array_equal(got, want)  # PNG: lossless
    again = fetch_public_dataset(name, tmp_path / "again", per_class=3, seed=1)
    assert load_dataset(again).files == ds.files  # same seed → same choice
    other = fetch_public_dataset(name, tmp_path / "other", per_class=3, seed=2)
    assert load_dataset(other).files != ds.files
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "again", "other"])


def _fake_tiny_zip(dest_file: Path, n_classes=12, per_class=5):
    words, wnids = [], []
    with zipfile.ZipFile(dest_file, "w") as z:
        for c in range(n_classes):
            wnid = f"n{c:08d}"
            wnids.append(wnid)
            words.append(f"{wnid}\tthing/{c}, synonym")
            for k in range(per_class):
                buf = io.BytesIO()
                Image.new("RGB", (64, 64), (c * 20, k * 40, 0)).save(buf, format="JPEG")
                z.writestr(f"tiny-imagenet-200/train/{wnid}/images/{wnid}_{k}.JPEG", buf.getvalue())
            z.writestr(f"tiny-imagenet-200/train/{wnid}/{wnid}_boxes.txt", "")
        z.writestr("tiny-imagenet-200/wnids.txt", "\n".join(reversed(wnids)) + "\n")
        z.writestr("tiny-imagenet-200/words.txt", "\n".join(words) + "\nn99999999\tunused\n")


def test_tiny_imagenet_recipe_picks_10_classes_from_the_zip(tmp_path, monkeypatch):
    seen = []

    def fake_download(url, dest_file):
        seen.append(url)
        _fake_tiny_zip(dest_file)

    monkeypatch.setattr(dsm, "_download", fake_download)
    out = fetch_public_dataset("tiny_imagenet", tmp_path / "tiny", per_class=3, seed=0)
    assert seen == ["http://cs231n.stanford.edu/tiny-imagenet-200.zip"]
    ds = load_dataset(out)
    assert len(ds.classes) == 10 and len(ds) == 30 and ds.skipped == []
    assert all(c.startswith("thing-") and c.endswith(")") for c in ds.classes)  # "thing/3" made safe
    assert all(f.endswith(".JPEG") for f in ds.files)
    assert not (out / "tiny-imagenet-200.zip").exists()
    assert ds.name == "Tiny ImageNet subset"


def test_tiny_imagenet_bad_zip(tmp_path, monkeypatch):
    monkeypatch.setattr(dsm, "_download", lambda url, f: Path(f).write_bytes(b"<html>proxy says no</html>"))
    with pytest.raises(DatasetError, match="not the expected zip"):
        fetch_public_dataset("tiny_imagenet", tmp_path / "tiny", per_class=3)
    assert list(tmp_path.iterdir()) == []


# --- nothing dropped silently (issue 12, item 6) ---------------------------------------------------

HIDDEN_DIR = "hidden folder (name starts with '.'): not searched; rename it to include it"
SYSTEM_FILE = "hidden/system file (not an image)"
SYSTEM_DIR = "hidden/system folder (not searched)"
OUTSIDE = "symlink points outside the dataset root (use --follow-links to include it)"
LOOP = "symlink loop: points to a folder that contains it"


def _two_classes(root: Path) -> Path:
    _png(root / "a/1.png", (10, 0, 0))
    _png(root / "b/1.png", (0, 10, 0))
    return root


def test_hidden_class_folders_and_system_junk_are_listed(tmp_path):
    root = _two_classes(tmp_path / "d")
    _png(root / ".secret/1.png")  # a hidden class folder holding an image
    _png(root / "__MACOSX/a/._1.png")  # what unzipping a macOS archive leaves
    (root / ".DS_Store").write_bytes(b"junk")
    (root / "a/.DS_Store").write_bytes(b"junk")
    (root / "a/._1.png").write_bytes(b"\x00\x05\x16\x07")  # AppleDouble metadata next to an image
    _png(root / "a/.git/objects/x.png")
    _png(root / "a/.hidden.png")  # a real image, hidden by its name
    ds = load_dataset(root)
    assert ds.files == ["a/1.png", "b/1.png"]
    assert ds.skipped == [
        SkippedFile(".DS_Store", SYSTEM_FILE),
        SkippedFile(".secret/", HIDDEN_DIR),
        SkippedFile("__MACOSX/", SYSTEM_DIR),
        SkippedFile("a/.DS_Store", SYSTEM_FILE),
        SkippedFile("a/._1.png", SYSTEM_FILE),
        SkippedFile("a/.git/", SYSTEM_DIR),
        SkippedFile("a/.hidden.png", "hidden file (name starts with '.'): rename it to include it"),
    ]
    # Junk the OS writes by itself does not change the fingerprint (no re-extraction after
    # opening the folder in Finder); a hidden file that could be an image does.
    fp = dataset_fingerprint(ds)
    (root / "b/Thumbs.db").write_bytes(b"junk")
    assert SkippedFile("b/Thumbs.db", SYSTEM_FILE) in load_dataset(root).skipped
    assert dataset_fingerprint(load_dataset(root)) == fp
    _png(root / "b/.other.png")
    assert dataset_fingerprint(load_dataset(root)) != fp


def test_only_hidden_folders_is_an_error_that_names_them(tmp_path):
    _png(tmp_path / "d/.photos/1.png")
    with pytest.raises(DatasetError, match=r"no class folders.*\.photos/: hidden folder"):
        load_dataset(tmp_path / "d")


def _deny_scandir(monkeypatch, *denied: Path) -> None:
    """os.scandir raising 'permission denied' for ``denied`` folders: works when tests run as root."""
    real = os.scandir
    denied_s = {str(p) for p in denied}

    def scandir(path="."):
        if str(path) in denied_s:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(dsm.os, "scandir", scandir)


def test_unreadable_folders_are_listed(tmp_path, monkeypatch):
    root = _two_classes(tmp_path / "d")
    _png(root / "a/private/2.png")
    _png(root / "c/1.png")
    _deny_scandir(monkeypatch, root / "a/private", root / "c")
    ds = load_dataset(root)
    assert ds.files == ["a/1.png", "b/1.png"]
    # The unreadable class folder is named once, for its real problem (not "no usable image").
    assert ds.skipped == [
        SkippedFile("a/private/", "cannot read folder: Permission denied"),
        SkippedFile("c/", "cannot read folder: Permission denied"),
    ]
    _deny_scandir(monkeypatch, root)
    with pytest.raises(DatasetError, match=r"d: cannot read folder: Permission denied"):
        load_dataset(root)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any folder")
def test_unreadable_folder_for_real(tmp_path):
    root = _two_classes(tmp_path / "d")
    _png(root / "a/private/2.png")
    (root / "a/private").chmod(0)
    try:
        ds = load_dataset(root)
    finally:
        (root / "a/private").chmod(0o755)
    assert ds.skipped == [SkippedFile("a/private/", "cannot read folder: Permission denied")]


def test_symlinks_inside_the_root_are_followed_once(tmp_path):
    root = _two_classes(tmp_path / "d")
    _png(root / ".extra/x.png", (0, 0, 10))  # not read by itself (hidden)…
    os.symlink("../.extra", root / "a/more")  # …but linked into a class: read there
    os.symlink("../b", root / "a/alias")  # a class folder: already read, not twice
    os.symlink("../b/1.png", root / "a/link.png")  # a file already read, not twice
    os.symlink("../.extra/x.png", root / "b/x.png")  # the same file as a/more/x.png
    ds = load_dataset(root)
    assert ds.files == ["a/1.png", "a/more/x.png", "b/1.png"]
    assert ds.labels.tolist() == [0, 0, 1]
    assert ds.skipped == [
        SkippedFile(".extra/", HIDDEN_DIR),
        SkippedFile("a/alias/", "symlink to 'b/', which is read directly: not read twice"),
        SkippedFile("a/link.png", "symlink to 'b/1.png', which is read directly: not counted twice"),
        SkippedFile("b/x.png", "same file as 'a/more/x.png' (reached through a symlink): not counted twice"),
    ]


def test_symlinks_out_of_the_root_only_with_follow_links(tmp_path):
    root = _two_classes(tmp_path / "d")
    _png(tmp_path / "elsewhere/o1.png", (1, 1, 1))
    _png(tmp_path / "elsewhere/o2.png", (2, 2, 2))
    _png(tmp_path / "private/secret.png", (3, 3, 3))
    _png(tmp_path / "other/c1.png", (4, 4, 4))
    os.symlink(tmp_path / "elsewhere", root / "a/out_dir")
    os.symlink(tmp_path / "private/secret.png", root / "b/secret.png")
    os.symlink(tmp_path / "other", root / "c")  # a whole class folder elsewhere

    ds = load_dataset(root)
    assert ds.files == ["a/1.png", "b/1.png"] and ds.classes == ["a", "b"]
    assert ds.skipped == [
        SkippedFile("c/", OUTSIDE), SkippedFile("a/out_dir/", OUTSIDE), SkippedFile("b/secret.png", OUTSIDE),
    ]

    followed = load_dataset(root, follow_links=True)
    assert followed.files == ["a/1.png", "a/out_dir/o1.png", "a/out_dir/o2.png", "b/1.png", "b/secret.png",
                              "c/c1.png"]
    assert followed.classes == ["a", "b", "c"] and followed.skipped == []
    assert dataset_fingerprint(followed) != dataset_fingerprint(ds)


def test_symlink_loops_end(tmp_path):
    root = _two_classes(tmp_path / "d")
    os.symlink("..", root / "a/up")  # the root itself
    os.symlink(".", root / "a/here")  # its own folder
    _png(root / "b/deep/2.png")
    os.symlink("../..", root / "b/deep/back")  # an ancestor two levels up
    os.symlink("y", root / "a/x")  # two links pointing at each other
    os.symlink("x", root / "a/y")
    out = tmp_path / "out"
    _png(out / "o.png")
    os.symlink(out, out / "again")  # a loop outside the root, reached with follow_links
    os.symlink(out, root / "a/out1")
    os.symlink(out, root / "a/out2")  # a second way to the same outside folder
    broken = "broken symlink (its target is missing or a loop of links)"
    default = load_dataset(root)
    assert default.files == ["a/1.png", "b/1.png", "b/deep/2.png"]
    assert default.skipped == [
        SkippedFile("a/here/", LOOP),
        SkippedFile("a/out1/", OUTSIDE),
        SkippedFile("a/out2/", OUTSIDE),
        SkippedFile("a/up/", LOOP),
        SkippedFile("a/x", broken),
        SkippedFile("a/y", broken),
        SkippedFile("b/deep/back/", LOOP),
    ]
    ds = load_dataset(root, follow_links=True)
    assert ds.files == ["a/1.png", "a/out1/o.png", "b/1.png", "b/deep/2.png"]
    assert ds.skipped == [
        SkippedFile("a/here/", LOOP),
        SkippedFile("a/out1/again/", LOOP),
        SkippedFile("a/out2/", "symlink to a folder already read through 'a/out1/'"),
        SkippedFile("a/up/", LOOP),
        SkippedFile("a/x", broken),
        SkippedFile("a/y", broken),
        SkippedFile("b/deep/back/", LOOP),
    ]


# --- one class only (issue 12, item 7) -------------------------------------------------------------

def _fake_inputs(ds: Dataset):
    from convnet_search.stages.bundle import BundleInputs
    from convnet_search.stages.outputs import DatasetResults
    from convnet_search.io.store import StoredArrays

    layer = {"name": "conv1", "index": 1, "type": "Conv2D", "output_shape": [2, 2, 4], "dims": {"avg": 4},
             "params_cumulative": 10, "depth": 1.0}
    meta = {"name": "Toy", "params": 10, "layer_count": 2, "input_size": [8, 8], "weights": "random",
            "weights_detail": "random for the test", "layers": [layer]}
    feats = {"toy": StoredArrays(meta, {})}
    return BundleInputs([DatasetResults(ds, feats, {}, {})], ["toy"], ["cosine"], 3.0, 15, ("avg",))


def test_one_class_warns_and_the_manifest_says_so(tmp_path):
    import warnings

    import jsonschema

    from convnet_search.stages.bundle import build_manifest

    root = tmp_path / "solo"
    for i in range(16):
        _png(root / f"cats/{i:02d}.png", (i, 0, 0))
    with pytest.warns(RuntimeWarning, match=r"dataset 'solo' has one class \('cats'\): search scores need at "
                                            r"least 2 classes; every score would be 1\.0"):
        ds = load_dataset(root)
    assert ds.notes == ["dataset 'solo' has one class ('cats'): search scores need at least 2 classes; "
                        "every score would be 1.0"]
    manifest = build_manifest(_fake_inputs(ds))
    assert manifest["datasets"][0]["notes"] == ds.notes
    schema = json.loads((REPO / "docs/manifest.schema.json").read_text())
    jsonschema.validate(manifest, schema)

    for i in range(16):
        _png(root / f"dogs/{i:02d}.png", (0, i, 0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # two classes: no warning at all
        two = load_dataset(root)
    assert two.notes == [] and build_manifest(_fake_inputs(two))["datasets"][0]["notes"] == []
