"""The OSIE sample shipped inside the package (``open_dataset("osie-sample")``)."""

from __future__ import annotations

import numpy as np

from mlfem.datasets import available_datasets, bundled_osie_root, open_dataset

SAMPLE_IDS = [str(1001 + 3 * k) for k in range(12)]


def test_the_sample_opens_without_a_root() -> None:
    dataset = open_dataset("osie-sample")
    assert "osie-sample" in available_datasets()
    assert [dataset[i].image_id for i in range(len(dataset))] == SAMPLE_IDS
    assert dataset.skipped == []
    for i in range(len(dataset)):
        sample = dataset[i]
        assert tuple(sample.image.shape) == (3, 600, 800)
        assert len(sample.fixations) == 15 and sum(len(f) for f in sample.fixations) > 100
        assert sample.labels == [] and np.isclose(float(sample.gfdm.sum()), 1.0, atol=1e-4)


def test_the_sample_carries_its_licence_and_stays_small() -> None:
    root = bundled_osie_root()
    assert "MIT License" in (root / "LICENSE").read_text()
    assert "predicting-human-gaze-beyond-pixels" in (root / "README.md").read_text()
    size = sum(path.stat().st_size for path in root.rglob("*") if path.is_file())
    assert size < 1.2e6


def test_the_sample_equals_the_shared_osie_copy(osie_dir) -> None:
    """Same pixels and same fixations as the dataset as the authors ship it."""
    ours = open_dataset("osie-sample")
    full = open_dataset("osie", osie_dir)
    index = {full[i].image_id: i for i in range(len(full))}
    for i in range(len(ours)):
        a, b = ours[i], full[index[ours[i].image_id]]
        assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
        assert len(a.fixations) == len(b.fixations)
        assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a.fixations, b.fixations))


def test_the_leakage_guard_compares_the_sample_with_osie_checkpoints() -> None:
    """A NET trained on OSIE images 1001.. must not be scored on the sample's copies of them."""
    import pytest

    from mlfem.training.leakage import LeakageError, check_leakage

    class Checkpoint:
        metadata = {"format": "mlfem-net/1", "dataset": {"name": "osie"},
                    "train_ids": ["1001", "1002"], "val_ids": ["1003"]}

    with pytest.raises(LeakageError):
        check_leakage("osie-sample", ["1001", "1004"], [Checkpoint()])
    report = check_leakage("osie-sample", ["1004", "1007"], [Checkpoint()])
    assert not report.leaked and report.other_dataset == {}
