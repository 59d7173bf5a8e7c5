"""MIT1003: ALLSTIMULI and ALLFIXATIONMAPS (fixPts binary points, fixMap blurred)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mlfem.datasets import DatasetWarning, LayoutError, open_dataset
from test_datasets_fixtures import write_gray, write_image

NAMES = {"i05june05_static_street_boston_p1010764": (24, 32), "istatic_submitted_x": (32, 24)}


def make_mit(root: Path, points: dict[str, list[tuple[int, int]]]) -> Path:
    for k, (name, (h, w)) in enumerate(NAMES.items()):
        write_image(root / "ALLSTIMULI" / f"{name}.jpeg", h, w, seed=k)
        pts = np.zeros((h, w))
        for r, c in points[name]:
            pts[r, c] = 255
        # Written as JPEG like the real files: ringing must not create extra points.
        write_jpeg75(root / "ALLFIXATIONMAPS" / f"{name}_fixPts.jpg", pts)
        fmap = np.zeros((h, w))
        fmap[h // 2, w // 2] = 255
        write_gray(root / "ALLFIXATIONMAPS" / f"{name}_fixMap.jpg", fmap)
    return root


def write_jpeg75(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8), mode="L").save(path, quality=75)


POINTS = {
    "i05june05_static_street_boston_p1010764": [(0, 0), (10, 20), (23, 31)],
    "istatic_submitted_x": [(31, 0), (5, 5)],
}


def test_fixpts_become_pooled_fixations(tmp_path: Path) -> None:
    ds = open_dataset("mit1003", make_mit(tmp_path, POINTS))
    assert ds.sigma == 24.0 and ds.image_ids == sorted(NAMES)
    s = ds[0]
    assert s.image.shape == (3, 24, 32) and len(s.fixations) == 1
    got = sorted(map(tuple, s.fixations[0].tolist()))
    assert got == [(0.0, 0.0), (20.0, 10.0), (31.0, 23.0)]  # (x, y) = (col, row)
    assert s.labels == [] and s.gfdm.shape == (24, 32)
    assert float(s.gfdm.sum()) == pytest.approx(1.0, abs=1e-5)
    t = ds[1]
    assert sorted(map(tuple, t.fixations[0].tolist())) == [(0.0, 31.0), (5.0, 5.0)]


def test_shipped_fixmap(tmp_path: Path) -> None:
    ds = open_dataset("mit1003", make_mit(tmp_path, POINTS), gfdm="shipped")
    g = ds[1].gfdm
    assert g.shape == (32, 24) and divmod(int(g.argmax()), 24) == (16, 12)
    assert float(g.sum()) == pytest.approx(1.0, abs=1e-5)


def test_missing_points_file_and_folder(tmp_path: Path) -> None:
    make_mit(tmp_path, POINTS)
    (tmp_path / "ALLFIXATIONMAPS" / "istatic_submitted_x_fixPts.jpg").unlink()
    with pytest.warns(DatasetWarning, match="fixation file missing"):
        ds = open_dataset("mit1003", tmp_path)
    assert len(ds) == 1
    with pytest.raises(LayoutError, match="ALLSTIMULI"):
        open_dataset("mit1003", tmp_path / "ALLFIXATIONMAPS")


def test_points_image_of_the_wrong_size_is_reported(tmp_path: Path) -> None:
    make_mit(tmp_path, POINTS)
    write_jpeg75(tmp_path / "ALLFIXATIONMAPS" / "istatic_submitted_x_fixPts.jpg",
                     np.full((5, 5), 255))
    with pytest.warns(DatasetWarning, match="5x5"):
        ds = open_dataset("mit1003", tmp_path, verify="full")
    assert ds.image_ids == ["i05june05_static_street_boston_p1010764"]
    assert torch.is_tensor(ds[0].gfdm)
