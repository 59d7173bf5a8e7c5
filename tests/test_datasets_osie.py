"""OSIE: fixture in the shipped layout, and the real 40-image sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mlfem.datasets import DatasetWarning, LayoutError, open_dataset
from test_datasets_fixtures import make_osie, savemat, write_image

from _osie import require_osie as real_osie


@pytest.mark.parametrize("official", [False, True])
def test_fixture_coordinates_durations_and_observers(tmp_path: Path, official: bool) -> None:
    make_osie(
        tmp_path,
        {
            "1001.jpg": [([1.0, 40.0], [1.0, 30.0], [100, 250]), None, ([10.5], [20.25], [80])],
            "1002.jpg": [([5.0], [6.0], [300])],
        },
        official=official,
    )
    ds = open_dataset("osie", tmp_path, sigma=2.0)
    assert len(ds) == 2 and ds.image_ids == ["1001", "1002"]
    s = ds[0]
    assert s.image.dtype == torch.uint8 and s.image.shape == (3, 30, 40)
    assert len(s.fixations) == 3  # the observer without data is kept, empty
    # 1-based MATLAB (x, y) -> 0-based (x, y).
    torch.testing.assert_close(s.fixations[0], torch.tensor([[0.0, 0.0], [39.0, 29.0]]))
    assert s.fixations[1].shape == (0, 2)
    torch.testing.assert_close(s.fixations[2], torch.tensor([[9.5, 19.25]]))
    torch.testing.assert_close(s.durations[0], torch.tensor([100.0, 250.0]))
    assert s.labels == [] and s.class_names == [] and s.n_classes_present == 0
    assert s.gfdm.shape == (30, 40)
    assert float(s.gfdm.sum()) == pytest.approx(1.0, abs=1e-5)
    # The densest pixel is one of the fixated ones.
    row, col = divmod(int(s.gfdm.argmax()), 40)
    assert (col, row) in {(0, 0), (39, 29), (10, 19)}


def test_outside_fixations_are_counted_and_dropped(tmp_path: Path) -> None:
    # 1-based x = 41 is 0-based 40: outside a 40-px-wide image; x = 40.4 rounds to 39: inside.
    make_osie(tmp_path, {"1.jpg": [([41.0, 40.4, 5.0], [2.0, 2.0, 0.4], [1, 2, 3])]})
    ds = open_dataset("osie", tmp_path, sigma=2.0)
    assert ds.n_fixations_outside == 2  # x = 41 and y = 0.4 - 1 = -0.6
    s = ds[0]
    assert s.n_outside == 2 and s.fixations[0].shape == (1, 2)
    assert s.durations[0].tolist() == [2.0]
    kept = open_dataset("osie", tmp_path, sigma=2.0, drop_outside=False)[0]
    assert kept.fixations[0].shape == (3, 2) and kept.n_outside == 2


def test_malformed_entry_is_skipped_and_reported(tmp_path: Path) -> None:
    make_osie(tmp_path, {"1.jpg": [([1.0], [1.0], [10])], "2.jpg": [([2.0], [2.0], [10])]})
    # Rewrite the file with a broken second entry: fix_x and fix_y lengths differ.
    from test_datasets_fixtures import cell

    bad = {"fix_x": np.array([[1.0, 2.0]]), "fix_y": np.array([[1.0]]),
           "fix_duration": np.array([[1, 2]], dtype=np.uint16)}
    good = {"fix_x": np.array([[1.0]]), "fix_y": np.array([[1.0]]),
            "fix_duration": np.array([[5]], dtype=np.uint16)}
    savemat(tmp_path / "fixations.mat", {"fixations": cell([
        {"img": "1.jpg", "subjects": cell([good])}, {"img": "2.jpg", "subjects": cell([bad])}])})
    with pytest.warns(DatasetWarning, match="skipped 1"):
        ds = open_dataset("osie", tmp_path, sigma=2.0)
    assert ds.image_ids == ["1"]
    assert [(i.image_id, "2 x values but 1 y values" in i.reason) for i in ds.skipped] == [
        ("2", True)
    ]


def test_corrupt_image_is_skipped(tmp_path: Path) -> None:
    make_osie(tmp_path, {"1.jpg": [([1.0], [1.0], [10])], "2.jpg": [([2.0], [2.0], [10])]})
    (tmp_path / "stimuli" / "2.jpg").write_bytes(b"not a jpeg")
    with pytest.warns(DatasetWarning):
        ds = open_dataset("osie", tmp_path, sigma=2.0)
    assert ds.image_ids == ["1"] and ds.n_skipped == 1
    assert ds.skipped[0].image_id == "2" and ds.skipped[0].path.endswith("2.jpg")


def test_image_without_fixations_and_missing_image(tmp_path: Path) -> None:
    make_osie(tmp_path, {"1.jpg": [([1.0], [1.0], [10])], "2.jpg": [([2.0], [2.0], [10])]})
    write_image(tmp_path / "stimuli" / "9.jpg", 30, 40)
    (tmp_path / "stimuli" / "2.jpg").unlink()
    with pytest.warns(DatasetWarning, match="skipped 2"):
        ds = open_dataset("osie", tmp_path, sigma=2.0)
    reasons = {i.image_id: i.reason for i in ds.skipped}
    assert "missing" in reasons["2"] and "no entry" in reasons["9"]


def test_missing_layout_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="fixations.mat") as info:
        open_dataset("osie", tmp_path)
    assert "Expected layout" in str(info.value) and "stimuli" in str(info.value)
    (tmp_path / "fixations.mat").write_bytes(b"")
    with pytest.raises(LayoutError, match=str(tmp_path / "stimuli")):
        open_dataset("osie", tmp_path)
    with pytest.raises(LayoutError, match="does-not-exist"):
        open_dataset("osie", tmp_path / "does-not-exist")


def test_real_sample_40_images_15_observers_inside() -> None:
    ds = open_dataset("osie", real_osie(), gfdm="none")
    assert len(ds) == 40 and ds.n_skipped == 0
    assert ds.image_ids == [str(i) for i in range(1001, 1041)]
    assert ds.n_fixations_outside == 0
    for record in ds.records:
        assert len(record.gaze.observers) == 15
        points = np.concatenate(record.gaze.observers)
        assert points.shape[0] > 0
        assert (points[:, 0] >= -0.5).all() and (points[:, 0] < 799.5).all()
        assert (points[:, 1] >= -0.5).all() and (points[:, 1] < 599.5).all()
        assert all(len(d) == len(o) for d, o in zip(record.gaze.durations, record.gaze.observers))


def test_real_sample_first_image_and_gfdm() -> None:
    ds = open_dataset("osie", real_osie())
    assert ds.sigma == 24.0
    s = ds[0]
    assert s.image_id == "1001" and s.image.shape == (3, 600, 800)
    assert len(s.fixations) == 15
    # First observer's first fixation is (395.5, 246...) 1-based in the file.
    assert s.fixations[0][0, 0].item() == pytest.approx(394.5)
    assert s.durations[0][0].item() == 246.0
    assert s.gfdm.shape == (600, 800)
    assert float(s.gfdm.sum()) == pytest.approx(1.0, abs=1e-4)


def test_truncated_image_is_skipped_at_open_or_reported_on_read(tmp_path: Path) -> None:
    make_osie(tmp_path, {"1.jpg": [([1.0], [1.0], [10])], "2.jpg": [([2.0], [2.0], [10])]})
    path = tmp_path / "stimuli" / "2.jpg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # header intact, pixels and end marker cut off
    with pytest.warns(DatasetWarning, match="truncated JPEG"):
        ds = open_dataset("osie", tmp_path, sigma=2.0)
    assert ds.image_ids == ["1"] and ds.skipped[0].image_id == "2"
    from mlfem.datasets import SampleError

    unchecked = open_dataset("osie", tmp_path, sigma=2.0, verify="none")
    with pytest.raises(SampleError, match="2.jpg"):
        unchecked[1]
