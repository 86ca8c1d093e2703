"""io/labels.py and the --labels modes of io/datasets.py: any folder tree, labels files, and one
clear `file:line` error per problem of a bad labels file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convnet_search.io.datasets import DatasetError, dataset_fingerprint, load_dataset
from convnet_search.io.labels import LabelsError, auto_unlabelled_reason, build_fields, read_labels_file


def _img(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (12, 12), (value, 255 - value, 0)).save(path)


@pytest.fixture
def flat(tmp_path) -> Path:
    for i in range(5):
        _img(tmp_path / "photos" / f"p{i}.png", 40 * i)
    return tmp_path / "photos"


def _labels(tmp_path: Path, text: str | bytes, name: str = "labels.csv") -> Path:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


# --- any folder tree --------------------------------------------------------------------------

def test_a_flat_folder_loads_unlabelled_with_auto_and_none(flat):
    for mode in ("auto", "none"):
        ds = load_dataset(flat, labels=mode)
        assert ds.labels_mode == "none" and ds.fields == []
        assert ds.files == [f"p{i}.png" for i in range(5)]
    assert "5 images lie directly in the folder" in load_dataset(flat, labels="auto").labels_note
    with pytest.raises(DatasetError, match="--labels none"):
        load_dataset(flat, labels="folders")  # today's error now says how to load it


def test_a_date_nested_tree_is_one_unlabelled_collection_with_relative_ids_at_any_depth(tmp_path):
    for month in ("01", "02"):
        for i in range(2):
            _img(tmp_path / "dump" / "2024" / month / f"IMG_{i}.png", 30 * i)
    ds = load_dataset(tmp_path / "dump", labels="auto")
    assert ds.labels_mode == "none" and ds.fields == []
    assert ds.files == ["2024/01/IMG_0.png", "2024/01/IMG_1.png", "2024/02/IMG_0.png", "2024/02/IMG_1.png"]
    assert ds.classes == ["2024"]  # the top folder: a grouping for the map, not a label
    assert "only 1 first-level folder" in ds.labels_note


def test_year_and_date_folders_are_a_dump_not_classes(tmp_path):
    for year, month in (("2023", "07"), ("2024", "01"), ("2024", "02")):
        _img(tmp_path / "dump" / year / month / "IMG_0.png", int(month) * 9)
    _img(tmp_path / "dump" / "2024-12-24" / "tree.png", 90)
    ds = load_dataset(tmp_path / "dump", labels="auto")
    assert ds.labels_mode == "none" and ds.fields == [] and len(ds.files) == 4
    assert "named like dates (2023, 2024, 2024-12-24)" in ds.labels_note
    assert load_dataset(tmp_path / "dump", labels="folders").classes == ["2023", "2024", "2024-12-24"]  # when asked


@pytest.mark.parametrize("names, classes", [(["2024", "cats"], True), (["1999", "2000"], False), (["2024_05", "202406"], False),
                                            (["12345", "2024"], True), (["cat", "dog"], True), (["20240", "2024"], True)])
def test_auto_rule_on_folder_names(names, classes):
    files = [f"{n}/a.jpg" for n in names]
    assert (auto_unlabelled_reason(files) is None) == classes
    assert auto_unlabelled_reason([f"{n}/sub/a.jpg" for n in names]) == auto_unlabelled_reason(files)  # depth below is fine
    assert auto_unlabelled_reason(files + ["loose.jpg"]) == "1 images lie directly in the folder"


def test_class_folders_are_chosen_by_auto_with_the_same_fingerprint_as_folders(tmp_path):
    for c in ("cat", "dog"):
        for i in range(2):
            _img(tmp_path / "pets" / c / f"{i}.png", 50 * i)
    (tmp_path / "pets" / "README.txt").write_text("not an image")
    auto = load_dataset(tmp_path / "pets", labels="auto")
    folders = load_dataset(tmp_path / "pets", labels="folders")
    assert auto.labels_mode == "folders" and [f.name for f in auto.fields] == ["class"]
    assert auto.fields[0].values == ["cat", "dog"]
    np.testing.assert_array_equal(auto.fields[0].codes, [0, 0, 1, 1])
    assert dataset_fingerprint(auto) == dataset_fingerprint(folders)  # features are not recomputed
    assert "class folders" in auto.labels_note


def test_a_loose_image_beside_class_folders_makes_auto_choose_none(tmp_path):
    for c in ("cat", "dog"):
        _img(tmp_path / "pets" / c / "0.png", 10)
    _img(tmp_path / "pets" / "loose.png", 20)
    ds = load_dataset(tmp_path / "pets", labels="auto")
    assert ds.labels_mode == "none" and "loose.png" in ds.files and "1 images lie directly" in ds.labels_note


# --- a good labels file -----------------------------------------------------------------------

def test_a_labels_file_with_two_fields_empty_cells_and_unlabelled_images(flat, tmp_path):
    f = _labels(tmp_path, "path,colour,season\np0.png,red,summer\n./p1.png,red,winter\np2.png,blue,\n"
                          "p3.png,blue,winter\n")
    ds = load_dataset(flat, labels=f)
    assert ds.labels_mode == "file" and [x.name for x in ds.fields] == ["colour", "season"]
    colour, season = ds.fields
    np.testing.assert_array_equal(colour.codes, [1, 1, 0, 0, -1])  # blue = 0, red = 1; p4 has no row
    np.testing.assert_array_equal(season.codes, [0, 1, -1, 1, -1])
    assert len(ds) == 5  # never dropped
    assert any("1 images have no row" in n and "p4.png" in n for n in ds.notes)


def test_a_tsv_labels_file(flat, tmp_path):
    f = _labels(tmp_path, "path\tstyle\np0.png\tflat\np1.png\tround\n", "labels.tsv")
    assert [x.values for x in load_dataset(flat, labels=f).fields] == [["flat", "round"]]


# --- every bad case: one error per problem, naming file:line ----------------------------------

def _problems(flat: Path, f: Path) -> str:
    with pytest.raises(DatasetError) as e:
        load_dataset(flat, labels=f)
    return str(e.value)


def test_no_path_column(flat, tmp_path):
    f = _labels(tmp_path, "file,colour\np0.png,red\n")
    assert f"{f}:1: no 'path' column (header: file, colour)" in _problems(flat, f)


def test_unknown_path(flat, tmp_path):
    f = _labels(tmp_path, "path,colour\np0.png,red\nmissing.png,blue\np1.png,blue\n")
    assert f"{f}:3: unknown path 'missing.png'" in _problems(flat, f)


def test_a_path_that_names_a_skipped_file_says_why(flat, tmp_path):
    (flat / "notes.txt").write_text("hello")
    f = _labels(tmp_path, "path,colour\np0.png,red\nnotes.txt,blue\n")
    assert f"{f}:3: 'notes.txt' is not a usable image of the dataset (" in _problems(flat, f)


def test_duplicate_path(flat, tmp_path):
    f = _labels(tmp_path, "path,colour\np0.png,red\np1.png,blue\np0.png,blue\n")
    assert f"{f}:4: duplicate path 'p0.png' (first on line 2)" in _problems(flat, f)


def test_not_utf8(flat, tmp_path):
    f = _labels(tmp_path, b"path,colour\np0.png,red\np1.png,caf\xe9\n")
    assert f"{f}:3: not UTF-8 (byte 0xe9)" in _problems(flat, f)


def test_empty_file(flat, tmp_path):
    f = _labels(tmp_path, "")
    assert f"{f}:1: empty file" in _problems(flat, f)


def test_a_field_with_a_single_value(flat, tmp_path):
    f = _labels(tmp_path, "path,colour,season\np0.png,red,summer\np1.png,blue,summer\n")
    msg = _problems(flat, f)
    assert f"{f}:1: field 'season' has a single value ('summer')" in msg and "colour" not in msg


def test_every_problem_is_reported_once_each_in_one_run_in_line_order(flat, tmp_path):
    f = _labels(tmp_path, "path,colour,season\np0.png,red,x\nnope.png,blue,x\np0.png,blue,x\np1.png\n")
    with pytest.raises(DatasetError) as e:
        load_dataset(flat, labels=f)
    assert str(e.value).splitlines()[1:] == [
        f"{f}:1: field 'season' has a single value ('x'); it cannot tell images apart (add values or remove the column)",
        f"{f}:3: unknown path 'nope.png' (no such image under the dataset root; paths are relative to it)",
        f"{f}:4: duplicate path 'p0.png' (first on line 2)",
        f"{f}:5: 1 cells, the header has 3",
    ]
    lf = read_labels_file(_labels(tmp_path, "path,colour\np0.png,red\nnope.png,blue\nalso.png,blue\n", "b.csv"))
    with pytest.raises(LabelsError) as e:
        build_fields(lf, ["p0.png"], {})
    assert [p.split(": ", 1)[0].rsplit(":", 1)[1] for p in e.value.problems] == ["3", "4"]


def test_no_label_column_and_no_rows(flat, tmp_path):
    f = _labels(tmp_path, "path\np0.png\n")
    assert f"{f}:1: no label column besides 'path'" in _problems(flat, f)
    g = _labels(tmp_path, "path,colour\n", "header-only.csv")
    assert f"{g}:2: no rows after the header" in _problems(flat, g)


def test_a_missing_labels_file(flat, tmp_path):
    assert f"{tmp_path / 'nope.csv'}: cannot read labels file" in _problems(flat, tmp_path / "nope.csv")
