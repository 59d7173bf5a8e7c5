"""Splits, collate, the registry and DataLoader workers, on OSIE fixtures."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from mlfem.datasets import (
    Collate,
    Splits,
    available_datasets,
    collate,
    default_sigma,
    make_splits,
    open_dataset,
    resize_sample,
)
from test_datasets_fixtures import make_osie


def osie_fixture(root: Path, n: int = 10) -> Path:
    entries = {f"{1001 + k}.jpg": [([1.0 + k, 30.0], [2.0, 20.0 - k], [100, 200])]
               for k in range(n)}
    return make_osie(root, entries)


# --------------------------------------------------------------------------- splits
def test_make_splits_exact_sizes_deterministic_and_order_free() -> None:
    ids = [f"img{k:03d}" for k in range(101)]
    a = make_splits(ids, seed=3)
    b = make_splits(list(reversed(ids)), seed=3)
    assert a.assignments == b.assignments
    assert [len(a[s]) for s in ("train", "val", "test")] == [81, 10, 10]
    assert set(a["train"]) | set(a["val"]) | set(a["test"]) == set(ids)
    assert not set(a["train"]) & set(a["test"])
    assert make_splits(ids, seed=4).assignments != a.assignments
    assert a.split_of("img000") in ("train", "val", "test") and a.split_of("nope") is None


def test_splits_save_load_round_trip_and_overlap_rejected(tmp_path: Path) -> None:
    s = make_splits([str(k) for k in range(20)], {"train": 0.5, "test": 0.5}, seed=1,
                    dataset="x")
    path = s.save(tmp_path / "splits.json")
    loaded = Splits.load(path)
    assert loaded.assignments == s.assignments and loaded.seed == 1 and loaded.dataset == "x"
    payload = json.loads(path.read_text())
    payload["splits"]["test"].append(payload["splits"]["train"][0])
    path.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="in both"):
        Splits.load(path)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not an mlfem splits file"):
        Splits.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="sum to 1"):
        make_splits(["a"], (0.5, 0.2, 0.2))


def test_dataset_splits_file_written_then_reused(tmp_path: Path) -> None:
    root = osie_fixture(tmp_path / "osie")
    path = tmp_path / "splits.json"
    train = open_dataset("osie", root, sigma=2.0, split="train", splits=path, split_seed=7)
    assert path.is_file()
    test = open_dataset("osie", root, sigma=2.0, split="test", splits=path, split_seed=999)
    val = open_dataset("osie", root, sigma=2.0, split="val", splits=path)
    assert (len(train), len(val), len(test)) == (8, 1, 1)
    assert not set(train.image_ids) & set(test.image_ids)
    assert not set(train.image_ids) & set(val.image_ids)
    assert {s.split for s in train} == {"train"}
    # The file, not the (different) seed, decides: reopening gives the same assignment.
    assert Splits.load(path)["test"] == test.image_ids
    full = open_dataset("osie", root, sigma=2.0, splits=path)
    assert len(full) == 10 and full.subset("test").image_ids == test.image_ids
    with pytest.raises(ValueError, match="unknown split"):
        open_dataset("osie", root, sigma=2.0, split="dev", splits=path)


def test_ids_missing_from_the_splits_file_are_reported(tmp_path: Path) -> None:
    root = osie_fixture(tmp_path / "osie")
    path = make_splits(["1001", "1002"], (0.5, 0.5, 0.0)).save(tmp_path / "s.json")
    from mlfem.datasets import DatasetWarning

    with pytest.warns(DatasetWarning, match="8 image"):
        ds = open_dataset("osie", root, sigma=2.0, splits=path)
    assert ds.n_unassigned == 8 and sum(s.split is None for s in ds) == 8


# --------------------------------------------------------------------------- collate / loader
def test_collate_lists_and_resizing_collate(tmp_path: Path) -> None:
    ds = open_dataset("osie", osie_fixture(tmp_path, n=3), sigma=2.0)
    batch = collate([ds[0], ds[1]])
    assert batch["image_id"] == ["1001", "1002"] and isinstance(batch["image"], list)
    assert batch["n_classes_present"].tolist() == [0, 0]
    resized = Collate(size=(15, 20), num_classes=4)([ds[0], ds[1]])
    assert resized["image"].shape == (2, 3, 15, 20) and resized["image"].dtype == torch.uint8
    assert resized["gfdm"].shape == (2, 15, 20)
    torch.testing.assert_close(resized["gfdm"].sum((1, 2)), torch.ones(2), atol=1e-5, rtol=0)
    assert resized["targets"].shape == (2, 4) and resized["targets"].sum() == 0
    # Pixel centres map to pixel centres: x = 0 -> 0.5 * 0.5 - 0.5 = -0.25; x = 29 -> 14.25.
    s = resize_sample(ds[0], (15, 20))
    torch.testing.assert_close(s.fixations[0], torch.tensor([[-0.25, 0.25], [14.25, 9.25]]))


def test_dataloader_with_two_workers(tmp_path: Path) -> None:
    ds = open_dataset("osie", osie_fixture(tmp_path, n=4), sigma=2.0)
    pickle.loads(pickle.dumps(ds))  # what worker processes need
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate)
    ids = [i for batch in loader for i in batch["image_id"]]
    assert ids == ["1001", "1002", "1003", "1004"]
    syn = open_dataset("synthetic", n=6, seed=1, size=48)
    loader = DataLoader(syn, batch_size=3, num_workers=2,
                        collate_fn=Collate(size=(48, 48), num_classes=syn.num_classes))
    batches = list(loader)
    assert [b["image"].shape for b in batches] == [(3, 3, 48, 48)] * 2
    assert torch.equal(batches[1]["image"][2], syn[5].image)  # same as in-process generation
    assert batches[0]["targets"].sum(1).tolist() == [1.0, 1.0, 1.0]


# --------------------------------------------------------------------------- registry
def test_registry_names_sigmas_and_root_errors(tmp_path: Path, monkeypatch) -> None:
    assert set(available_datasets()) == {
        "salicon", "cat2000", "mexculture", "mit1003", "osie", "osie-sample", "folder", "synthetic",
        "synthetic-video", "video-folder"}
    assert [default_sigma(n) for n in ("salicon", "osie", "mit1003", "cat2000")] == [
        19.0, 24.0, 24.0, 48.0]
    assert default_sigma("MexCulture142") is None and default_sigma("folder") is None
    with pytest.raises(ValueError, match="unknown dataset"):
        open_dataset("imagenet", tmp_path)
    monkeypatch.delenv("MLFEM_DATA", raising=False)
    with pytest.raises(ValueError, match="root"):
        open_dataset("osie")
    osie_fixture(tmp_path / "osie", n=2)
    monkeypatch.setenv("MLFEM_DATA", str(tmp_path))
    assert len(open_dataset("osie", sigma=2.0)) == 2
    with pytest.raises(ValueError, match="no root"):
        open_dataset("synthetic", tmp_path)


def test_bad_options_are_rejected(tmp_path: Path) -> None:
    root = osie_fixture(tmp_path, n=2)
    with pytest.raises(ValueError, match="verify"):
        open_dataset("osie", root, verify="some")
    with pytest.raises(ValueError, match="gfdm"):
        open_dataset("osie", root, gfdm="blurred")
    with pytest.raises(ValueError, match="mutually exclusive"):
        open_dataset("osie", root, collapse=True, weight_by_duration=True)
    with pytest.raises(ValueError, match="sigma"):
        open_dataset("osie", root, sigma=0)
    ds = open_dataset("osie", root, gfdm="none")
    assert ds[0].gfdm is None and ds.summary()["gfdm"] == "none"


def test_import_is_light() -> None:
    import subprocess
    import sys

    code = ("import sys, mlfem.datasets; "
            "print(sorted(m for m in ('scipy', 'torchvision', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- shared readers
def test_numeric_table_header_separators_and_errors(tmp_path: Path) -> None:
    from mlfem.datasets._io import read_numeric_table

    path = tmp_path / "t.txt"
    path.write_text("\n# comment\nx y d\n1,2,3\n4\t5 6  # trailing comment\n")
    assert read_numeric_table(path, 2).tolist() == [[1, 2, 3], [4, 5, 6]]
    path.write_text("1 2\n3\n")
    with pytest.raises(ValueError, match="different numbers of columns"):
        read_numeric_table(path, 2)
    path.write_text("1 2\n3 nan\n")
    with pytest.raises(ValueError, match="non-finite"):
        read_numeric_table(path, 2)
    path.write_text("1\n")
    with pytest.raises(ValueError, match="at least 2 columns"):
        read_numeric_table(path, 2)


def test_cell_items_follow_matlab_linear_order(tmp_path: Path) -> None:
    import numpy as np

    from mlfem.datasets._io import cell_items, loadmat
    from test_datasets_fixtures import savemat

    c = np.empty((2, 2), dtype=object)
    c[0, 0], c[1, 0], c[0, 1], c[1, 1] = "a", "b", "c", "d"  # MATLAB c{1..4} = a, b, c, d
    savemat(tmp_path / "c.mat", {"c": c})
    items = cell_items(loadmat(tmp_path / "c.mat")["c"])
    assert ["".join(i) for i in items] == ["a", "b", "c", "d"]
    (tmp_path / "bad.mat").write_bytes(b"MATLAB 5.0 MAT-file garbage")
    with pytest.raises(ValueError, match="mat"):
        loadmat(tmp_path / "bad.mat")
