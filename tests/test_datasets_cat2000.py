"""CAT2000: Stimuli, FIXATIONMAPS and FIXATIONLOCS per category."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mlfem.datasets import DatasetWarning, LayoutError, SampleError, open_dataset
from test_datasets_fixtures import savemat, write_gray, write_image

H, W = 18, 32


def make_cat(root: Path, items: dict[str, dict[str, list[tuple[int, int]]]], logical=False):
    """``items``: category -> image number -> fixated (row, col) pixels (0-based)."""
    base = root / "trainSet"
    for c, (category, images) in enumerate(items.items()):
        for number, pixels in images.items():
            write_image(base / "Stimuli" / category / f"{number}.jpg", H, W, seed=c)
            locs = np.zeros((H, W), dtype=bool if logical else np.float64)
            for r, col in pixels:
                locs[r, col] = 1
            savemat(base / "FIXATIONLOCS" / category / f"{number}.mat", {"fixLocs": locs})
            fmap = np.zeros((H, W))
            for r, col in pixels:
                fmap[r, col] = 255
            write_gray(base / "FIXATIONMAPS" / category / f"{number}.jpg", fmap)
    # Saliency outputs shipped inside Stimuli in some copies: must be ignored.
    write_image(base / "Stimuli" / "Action" / "Output" / "001_SaliencyMap.jpg", H, W)
    return root


@pytest.mark.parametrize("logical", [False, True])
def test_fixlocs_become_xy_and_category_is_the_class(tmp_path: Path, logical: bool) -> None:
    make_cat(tmp_path, {"Action": {"001": [(0, 0), (17, 31)]}, "Sketch": {"002": [(5, 9)]}},
             logical=logical)
    ds = open_dataset("cat2000", tmp_path, sigma=2.0)
    assert ds.image_ids == ["Action/001", "Sketch/002"]
    assert ds.class_names[:3] == ["Action", "Affective", "Art"] and len(ds.class_names) == 20
    a, s = ds[0], ds[1]
    assert a.labels == [0] and a.class_names == ["Action"] and a.category == "Action"
    assert s.labels == [18] and ds.class_names[18] == "Sketch"  # canonical order, not found order
    assert a.n_classes_present == 1
    # Row r, column c -> (x, y) = (c, r); one pseudo-observer.
    assert len(a.fixations) == 1
    torch.testing.assert_close(a.fixations[0], torch.tensor([[0.0, 0.0], [31.0, 17.0]]))
    torch.testing.assert_close(s.fixations[0], torch.tensor([[9.0, 5.0]]))
    assert a.gfdm.shape == (H, W) and float(a.gfdm.sum()) == pytest.approx(1.0, abs=1e-5)
    assert a.durations is None


def test_shipped_maps_and_trainset_as_root(tmp_path: Path) -> None:
    make_cat(tmp_path, {"Object": {"007": [(4, 4)]}})
    ds = open_dataset("cat2000", tmp_path / "trainSet", gfdm="shipped")
    g = ds[0].gfdm
    assert g.shape == (H, W) and float(g.sum()) == pytest.approx(1.0, abs=1e-5)
    assert divmod(int(g.argmax()), W) == (4, 4)


def test_missing_fixlocs_file_is_skipped(tmp_path: Path) -> None:
    make_cat(tmp_path, {"Action": {"001": [(1, 1)], "002": [(2, 2)]}})
    (tmp_path / "trainSet" / "FIXATIONLOCS" / "Action" / "002.mat").unlink()
    with pytest.warns(DatasetWarning, match="fixation file missing"):
        ds = open_dataset("cat2000", tmp_path)
    assert ds.image_ids == ["Action/001"]


def test_malformed_fixlocs_raises_lazily_or_is_skipped_with_full_verify(tmp_path: Path) -> None:
    make_cat(tmp_path, {"Action": {"001": [(1, 1)], "002": [(2, 2)]}})
    savemat(tmp_path / "trainSet" / "FIXATIONLOCS" / "Action" / "002.mat",
            {"somethingElse": np.ones((2, 2))})
    ds = open_dataset("cat2000", tmp_path)  # header checks cannot see inside the .mat
    with pytest.raises(SampleError, match="fixLocs"):
        ds[1]
    with pytest.warns(DatasetWarning, match="fixLocs"):
        full = open_dataset("cat2000", tmp_path, verify="full")
    assert full.image_ids == ["Action/001"] and full.skipped[0].path.endswith("002.mat")


def test_size_mismatch_is_malformed(tmp_path: Path) -> None:
    make_cat(tmp_path, {"Action": {"001": [(1, 1)]}})
    savemat(tmp_path / "trainSet" / "FIXATIONLOCS" / "Action" / "001.mat",
            {"fixLocs": np.ones((3, 3))})
    with pytest.warns(DatasetWarning, match="3x3"):
        ds = open_dataset("cat2000", tmp_path, verify="full")
    assert len(ds) == 0


def test_missing_folders_name_the_path(tmp_path: Path) -> None:
    make_cat(tmp_path, {"Action": {"001": [(1, 1)]}})
    import shutil

    shutil.rmtree(tmp_path / "trainSet" / "FIXATIONLOCS")
    with pytest.raises(LayoutError, match="FIXATIONLOCS") as info:
        open_dataset("cat2000", tmp_path)
    assert "fixLocs" in str(info.value)
    shutil.rmtree(tmp_path / "trainSet" / "FIXATIONMAPS")
    (tmp_path / "trainSet" / "FIXATIONLOCS").mkdir()
    with pytest.raises(LayoutError, match="FIXATIONMAPS"):
        open_dataset("cat2000", tmp_path, gfdm="shipped")
