"""The ``folder`` layout for a user's own experiment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mlfem.datasets import DatasetWarning, LayoutError, open_dataset
from test_datasets_fixtures import write_gray, write_image


def make_folder(root: Path, rows: str, labels: str | None = None,
                classes: str | None = None) -> Path:
    write_image(root / "images" / "a.jpg", 20, 30, seed=1)
    write_image(root / "images" / "sub" / "b.png", 24, 16, seed=2)
    (root / "fixations.csv").write_text(rows)
    if labels is not None:
        (root / "labels.csv").write_text(labels)
    if classes is not None:
        (root / "classes.txt").write_text(classes)
    return root


ROWS = """image,observer,x,y,duration
a.jpg,alice,0,0,100
a.jpg,bob,29,19,200
a.jpg,alice,10.5,5,150
sub/b.png,bob,3,4,
"""


def test_observers_order_coordinates_and_durations(tmp_path: Path) -> None:
    ds = open_dataset("folder", make_folder(tmp_path, ROWS), sigma=1.5)
    assert ds.image_ids == ["a", "sub/b"]
    a = ds[0]
    assert len(a.fixations) == 2  # alice, bob in order of first appearance
    torch.testing.assert_close(a.fixations[0], torch.tensor([[0.0, 0.0], [10.5, 5.0]]))
    torch.testing.assert_close(a.fixations[1], torch.tensor([[29.0, 19.0]]))
    assert a.durations[0].tolist() == [100.0, 150.0]
    b = ds[1]
    assert b.image.shape == (3, 24, 16) and b.gfdm.shape == (24, 16)
    assert torch.isnan(b.durations[0]).all()  # empty duration cell = unknown
    assert float(b.gfdm.sum()) == pytest.approx(1.0, abs=1e-5)
    assert ds.num_classes == 0 and a.labels == []


def test_one_based_option(tmp_path: Path) -> None:
    ds = open_dataset("folder", make_folder(tmp_path, ROWS), sigma=1.5, one_based=True)
    # x = 0 (1-based) is -1 (0-based): outside, counted.
    assert ds[0].n_outside == 1
    torch.testing.assert_close(ds[0].fixations[0], torch.tensor([[9.5, 4.0]]))


def test_labels_multi_and_classes_order(tmp_path: Path) -> None:
    labels = "image,label\na.jpg,dog\na.jpg,cat\nsub/b.png,cat\n"
    ds = open_dataset("folder", make_folder(tmp_path, ROWS, labels, "dog\ncat\nbird\n"),
                      sigma=1.5)
    assert ds.class_names == ["dog", "cat", "bird"]
    assert ds.multi_label
    a, b = ds[0], ds[1]
    assert a.labels == [0, 1] and a.class_names == ["dog", "cat"] and a.n_classes_present == 2
    assert b.labels == [1] and b.n_classes_present == 1


def test_labels_without_classes_file_sorted(tmp_path: Path) -> None:
    labels = "image,label\na,zebra\nsub/b,ant\n"  # extensions are optional
    ds = open_dataset("folder", make_folder(tmp_path, ROWS, labels), sigma=1.5)
    assert ds.class_names == ["ant", "zebra"] and ds[0].labels == [1] and not ds.multi_label


def test_unknown_class_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="owl"):
        open_dataset("folder", make_folder(tmp_path, ROWS, "image,label\na.jpg,owl\n", "dog\n"),
                     sigma=1.5)


def test_malformed_row_skips_the_whole_image(tmp_path: Path) -> None:
    rows = ROWS + "a.jpg,carol,abc,3,1\nghost.jpg,bob,1,1,1\n"
    with pytest.warns(DatasetWarning, match="skipped 2"):
        ds = open_dataset("folder", make_folder(tmp_path, rows), sigma=1.5)
    assert ds.image_ids == ["sub/b"]
    reasons = {i.image_id: i.reason for i in ds.skipped}
    assert "line 6" in reasons["a"] and "not in images/" in reasons["ghost.jpg"]


def test_sigma_is_required_and_header_checked(tmp_path: Path) -> None:
    make_folder(tmp_path, ROWS)
    with pytest.raises(ValueError, match="sigma"):
        open_dataset("folder", tmp_path)
    (tmp_path / "fixations.csv").write_text("img,x,y\na.jpg,1,2\n")
    with pytest.raises(ValueError, match="observer"):
        open_dataset("folder", tmp_path, sigma=1.0)


def test_missing_parts_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="images"):
        open_dataset("folder", tmp_path, sigma=1.0)
    write_image(tmp_path / "images" / "a.jpg", 8, 8)
    with pytest.raises(LayoutError, match="fixations.csv") as info:
        open_dataset("folder", tmp_path, sigma=1.0)
    assert "image,observer,x,y" in str(info.value)


def test_shipped_maps(tmp_path: Path) -> None:
    make_folder(tmp_path, ROWS)
    with pytest.raises(LayoutError, match="maps"):
        open_dataset("folder", tmp_path, gfdm="shipped")
    m = np.zeros((20, 30))
    m[5, 7] = 200
    m[6, 7] = 50
    write_gray(tmp_path / "maps" / "a.png", m)
    with pytest.warns(DatasetWarning, match="shipped map missing"):
        ds = open_dataset("folder", tmp_path, gfdm="shipped")
    assert ds.image_ids == ["a"]
    g = ds[0].gfdm
    assert g[5, 7].item() == pytest.approx(0.8) and g[6, 7].item() == pytest.approx(0.2)


def test_weight_by_duration_changes_the_map(tmp_path: Path) -> None:
    rows = "image,observer,x,y,duration\na.jpg,o,5,5,100\na.jpg,o,25,15,300\n"
    make_folder(tmp_path, rows)
    with pytest.warns(DatasetWarning, match="sub/b: no fixation inside the image"):
        plain = open_dataset("folder", tmp_path, sigma=1.0, gfdm="fixations")
    with pytest.warns(DatasetWarning):
        weighted = open_dataset("folder", tmp_path, sigma=1.0, weight_by_duration=True)
    p, w = plain[0].gfdm, weighted[0].gfdm
    assert p[5, 5].item() == pytest.approx(p[15, 25].item(), rel=1e-4)
    assert w[15, 25].item() == pytest.approx(3 * w[5, 5].item(), rel=1e-4)
    no_dur = tmp_path / "nodur"
    make_folder(no_dur, "image,observer,x,y\na.jpg,o,1,1\nsub/b.png,o,1,1\n")
    with pytest.raises(ValueError, match="durations"):
        open_dataset("folder", no_dur, sigma=1.0, weight_by_duration=True)
