"""SALICON: images, fixations JSON (both conventions) or LSUN .mat, maps, COCO multi-labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mlfem.datasets import DatasetWarning, LayoutError, SampleError, open_dataset
from test_datasets_fixtures import (
    coco_name,
    make_salicon_images,
    write_gray,
    write_instances,
    write_lsun_mat,
    write_salicon_json,
)

H, W = 48, 64
STEM9 = coco_name("train", 9)[:-4]


def make_json_salicon(root: Path, rowcol: bool = True) -> Path:
    make_salicon_images(root, "train", [9, 25])
    make_salicon_images(root, "val", [42])
    if rowcol:  # official: [row, col], 1-based integers
        train = {9: [[[1, 1], [48, 64]], [[10, 20]]], 25: [[[30, 5]]]}
        val = {42: [[[2, 3]]]}
    else:  # older release: [x, y] floats
        train = {9: [[[0.0, 0.0], [63.0, 47.0]], [[19.5, 9.25]]], 25: [[[4.0, 29.0]]]}
        val = {42: [[[2.0, 1.5]]]}
    write_salicon_json(root / "fixations_train2014.json", "train", train)
    write_salicon_json(root / "annotations" / "fixations_val2014.json", "val", val)
    return root


def test_json_rowcol_detected_and_converted(tmp_path: Path) -> None:
    ds = open_dataset("salicon", make_json_salicon(tmp_path), sigma=3.0, instances=False)
    assert ds.info["json_coords"]["train"].startswith("rowcol")
    assert ds.image_ids == [STEM9, coco_name("train", 25)[:-4], coco_name("val", 42)[:-4]]
    s = ds[0]
    assert s.split == "train" and len(s.fixations) == 2  # one per worker
    # [row, col] 1-based -> (x, y) 0-based: [1, 1] -> (0, 0), [48, 64] -> (63, 47).
    torch.testing.assert_close(s.fixations[0], torch.tensor([[0.0, 0.0], [63.0, 47.0]]))
    torch.testing.assert_close(s.fixations[1], torch.tensor([[19.0, 9.0]]))
    assert ds[2].split == "val"
    assert s.gfdm.shape == (H, W) and float(s.gfdm.sum()) == pytest.approx(1.0, abs=1e-5)


def test_json_xy_floats_detected(tmp_path: Path) -> None:
    ds = open_dataset("salicon", make_json_salicon(tmp_path, rowcol=False), sigma=3.0)
    assert ds.info["json_coords"] == {"train": "xy", "val": "xy"}
    s = ds[0]
    torch.testing.assert_close(s.fixations[0], torch.tensor([[0.0, 0.0], [63.0, 47.0]]))
    torch.testing.assert_close(s.fixations[1], torch.tensor([[19.5, 9.25]]))


def test_json_convention_can_be_forced(tmp_path: Path) -> None:
    make_json_salicon(tmp_path)
    ds = open_dataset("salicon", tmp_path, sigma=3.0, json_coords="xy1", subsets="train")
    # [10, 20] read as 1-based (x, y) -> (9, 19).
    torch.testing.assert_close(ds[0].fixations[1], torch.tensor([[9.0, 19.0]]))
    assert ds.info["json_coords"] == {"train": "xy1"}


def test_ambiguous_integers_assume_official_rowcol(tmp_path: Path) -> None:
    make_salicon_images(tmp_path, "train", [9])
    write_salicon_json(tmp_path / "fixations_train2014.json", "train", {9: [[[3, 4]]]})
    ds = open_dataset("salicon", tmp_path, subsets="train", sigma=3.0)
    assert ds.info["json_coords"] == {"train": "rowcol (assumed)"}
    torch.testing.assert_close(ds[0].fixations[0], torch.tensor([[3.0, 2.0]]))


def test_lsun_mat_and_resolution_check(tmp_path: Path) -> None:
    make_salicon_images(tmp_path, "val", [1, 2])
    mats = tmp_path / "fixations" / "val"
    write_lsun_mat(mats / f"{coco_name('val', 1)[:-4]}.mat", "a",
                   [np.array([[1, 1], [64, 48]]), np.array([[10.5, 20.5]])])
    write_lsun_mat(mats / f"{coco_name('val', 2)[:-4]}.mat", "b", [np.array([[5, 5]])],
                   size=(480, 640))
    ds = open_dataset("salicon", tmp_path, subsets="val", sigma=3.0)
    assert ds.info["fixation_format"] == {"val": "mat"}
    s = ds[0]
    torch.testing.assert_close(s.fixations[0], torch.tensor([[0.0, 0.0], [63.0, 47.0]]))
    torch.testing.assert_close(s.fixations[1], torch.tensor([[9.5, 19.5]]))
    with pytest.raises(SampleError, match="resolution"):
        ds[1]


def test_coco_multilabels(tmp_path: Path) -> None:
    make_json_salicon(tmp_path)
    write_instances(tmp_path / "annotations" / "instances_train2014.json",
                    {9: [3, 1, 3, 90], 25: []})
    write_instances(tmp_path / "instances_val2014.json", {42: [7]})
    ds = open_dataset("salicon", tmp_path, sigma=3.0)
    assert ds.multi_label
    # Sorted by COCO id: 1 person, 3 car, 7 train, 90 toothbrush -> indices 0..3.
    assert ds.class_names == ["person", "car", "train", "toothbrush"]
    s = ds[0]
    assert s.labels == [0, 1, 3] and s.class_names == ["person", "car", "toothbrush"]
    assert s.n_classes_present == 3
    assert ds[1].labels == [] and ds[1].n_classes_present == 0  # no instances
    assert ds[2].labels == [2]


def test_labels_for_only_one_subset_is_an_error(tmp_path: Path) -> None:
    make_json_salicon(tmp_path)
    write_instances(tmp_path / "instances_train2014.json", {9: [1]})
    with pytest.raises(LayoutError, match="instances_val2014.json"):
        open_dataset("salicon", tmp_path, sigma=3.0)


def test_shipped_maps(tmp_path: Path) -> None:
    make_json_salicon(tmp_path)
    with pytest.raises(LayoutError, match="maps"):
        open_dataset("salicon", tmp_path, gfdm="shipped")
    m = np.zeros((H, W))
    m[10, 11] = 255
    write_gray(tmp_path / "maps" / "train" / f"{STEM9}.png", m)
    (tmp_path / "maps" / "val").mkdir()
    with pytest.warns(DatasetWarning, match="skipped 2"):
        ds = open_dataset("salicon", tmp_path, gfdm="shipped")
    assert ds.image_ids == [STEM9]
    assert divmod(int(ds[0].gfdm.argmax()), W) == (10, 11)


def test_malformed_annotation_and_unlisted_image(tmp_path: Path) -> None:
    make_salicon_images(tmp_path, "train", [9, 25, 77])
    write_salicon_json(tmp_path / "fixations_train2014.json", "train",
                       {9: [[[1, 1]]], 25: [[[1, 2, 3]]]})
    with pytest.warns(DatasetWarning, match="skipped 2"):
        ds = open_dataset("salicon", tmp_path, subsets="train", sigma=3.0)
    reasons = {i.image_id: i.reason for i in ds.skipped}
    assert "pairs" in reasons[coco_name("train", 25)[:-4]]
    assert "not listed" in reasons[coco_name("train", 77)[:-4]]


def test_missing_fixations_name_both_layouts(tmp_path: Path) -> None:
    make_salicon_images(tmp_path, "train", [9])
    with pytest.raises(LayoutError, match="fixations/train") as info:
        open_dataset("salicon", tmp_path, subsets="train")
    assert "fixations_{train,val}2014.json" in str(info.value)
    with pytest.raises(LayoutError, match="fixations_train2014.json"):
        open_dataset("salicon", tmp_path, subsets="train", fixation_format="json")
    with pytest.raises(LayoutError, match="images"):
        open_dataset("salicon", tmp_path / "nothing-here")
