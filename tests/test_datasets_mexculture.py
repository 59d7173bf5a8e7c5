"""MexCulture142: Images, Fixations, Density Maps and Scanpaths with style-prefixed names."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mlfem.datasets import DatasetWarning, LayoutError, open_dataset
from test_datasets_fixtures import write_gray, write_image

H, W = 20, 30
STEMS = {
    "Colonial_Catedral_de_Mexico_CDMX": "1",  # names may contain underscores
    "Prehispanic_Piramide_Teotihuacan": "2",
    "Modern_Torre_Latino_CDMX": "1",
}


def make_mex(root: Path) -> Path:
    for k, (stem, num) in enumerate(STEMS.items()):
        write_image(root / "Images" / f"{stem}_N_{num}.png", H, W, seed=k)
        (root / "Fixations").mkdir(parents=True, exist_ok=True)
        (root / "Fixations" / f"{stem}_GazeFix_N_{num}.txt").write_text(
            f"{k} 1 0.25\n5 {k + 2} 0.5\n29 19 0.1\n"
        )
        (root / "Scanpaths").mkdir(parents=True, exist_ok=True)
        for p in (2, 1, 10):  # participant order must be numeric, not lexical
            (root / "Scanpaths" / f"{stem}_ScanPath_N_{num}_P_{p}.txt").write_text(
                f"{p}\t{k}\t0.25\n{p + 1}\t{k + 1}\t0.5\n"
            )
        gfdm = np.zeros((H, W))
        gfdm[3, 4 + k] = 255
        write_gray(root / "Density Maps" / f"{stem}_GFDM_N_{num}.png", gfdm)
    return root


def test_default_is_shipped_gfdm_with_scanpath_observers(tmp_path: Path) -> None:
    ds = open_dataset("mexculture", make_mex(tmp_path))
    assert ds.gfdm_source == "shipped" and ds.info["fixations_from"] == "scanpaths"
    assert ds.class_names == ["Prehispanic", "Colonial", "Modern"]
    ids = ds.image_ids
    assert ids == sorted(f"{s}_N_{n}" for s, n in STEMS.items())
    by_id = {s.image_id: s for s in ds}
    s = by_id["Colonial_Catedral_de_Mexico_CDMX_N_1"]
    assert s.labels == [1] and s.category == "Colonial" and s.class_names == ["Colonial"]
    assert len(s.fixations) == 3  # participants 1, 2, 10 in that order
    torch.testing.assert_close(s.fixations[0], torch.tensor([[1.0, 0.0], [2.0, 1.0]]))
    torch.testing.assert_close(s.fixations[2], torch.tensor([[10.0, 0.0], [11.0, 1.0]]))
    torch.testing.assert_close(s.durations[0], torch.tensor([250.0, 500.0]))  # s -> ms
    assert s.gfdm.shape == (H, W) and s.gfdm[3, 4].item() == pytest.approx(1.0, abs=1e-6)


def test_gazefix_pooled_and_fixation_gfdm_needs_sigma(tmp_path: Path) -> None:
    make_mex(tmp_path)
    with pytest.raises(ValueError, match="sigma"):
        open_dataset("mexculture", tmp_path, gfdm="fixations")
    ds = open_dataset("mexculture", tmp_path, fixations="gazefix", gfdm="fixations", sigma=2.0)
    s = {x.image_id: x for x in ds}["Modern_Torre_Latino_CDMX_N_1"]
    assert len(s.fixations) == 1 and s.durations is None
    torch.testing.assert_close(s.fixations[0], torch.tensor([[2.0, 1.0], [5.0, 4.0], [29.0, 19.0]]))
    assert float(s.gfdm.sum()) == pytest.approx(1.0, abs=1e-5)
    one = open_dataset("mexculture", tmp_path, fixations="gazefix", one_based=True)
    assert one.n_fixations_outside == 1  # the Colonial image's x = 0 (1-based)


def test_without_scanpaths_folder_auto_uses_gazefix(tmp_path: Path) -> None:
    make_mex(tmp_path)
    shutil.rmtree(tmp_path / "Scanpaths")
    ds = open_dataset("mexculture", tmp_path)
    assert ds.info["fixations_from"] == "gazefix" and len(ds) == 3
    with pytest.raises(LayoutError, match="Scanpaths"):
        open_dataset("mexculture", tmp_path, fixations="scanpaths")


def test_malformed_and_missing_files_are_skipped(tmp_path: Path) -> None:
    make_mex(tmp_path)
    (tmp_path / "Fixations" / "Modern_Torre_Latino_CDMX_GazeFix_N_1.txt").write_text("1 2\nx y\n")
    (tmp_path / "Fixations" / "Prehispanic_Piramide_Teotihuacan_GazeFix_N_2.txt").unlink()
    write_image(tmp_path / "Images" / "badname.png", H, W)
    with pytest.warns(DatasetWarning, match="skipped 3"):
        ds = open_dataset("mexculture", tmp_path, fixations="gazefix")
    assert ds.image_ids == ["Colonial_Catedral_de_Mexico_CDMX_N_1"]
    reasons = {i.image_id: i.reason for i in ds.skipped}
    assert "line 2" in reasons["Modern_Torre_Latino_CDMX_N_1"]
    assert "missing" in reasons["Prehispanic_Piramide_Teotihuacan_N_2"]
    assert "file name" in reasons["badname"]


def test_missing_images_folder(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="Images") as info:
        open_dataset("mexculture", tmp_path)
    assert "GazeFix" in str(info.value)
