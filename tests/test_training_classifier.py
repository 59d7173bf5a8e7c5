"""Classifier training pieces: validation metrics, augmentation, multi-label training, a dataset
read from disk, and configuration errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mlfem.models.checkpoint import load_classifier
from mlfem.training import (
    Augmentation,
    ClassifierConfig,
    average_precision,
    classification_metrics,
    train_classifier,
)
from mlfem.training.augment import augment_batch, normalize_batch, resize_image


# Training tests run single-threaded (see conftest.one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


def test_average_precision_by_hand() -> None:
    # Ranking: 0.9 (pos), 0.8 (neg), 0.7 (pos), 0.1 (neg): AP = (1/1 + 2/3) / 2.
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    assert average_precision(scores, np.array([1, 0, 1, 0])) == pytest.approx((1 + 2 / 3) / 2)
    # Tied scores form one threshold: both items at 0.5 enter together (precision 1/2).
    assert average_precision(np.array([0.5, 0.5]), np.array([1, 0])) == pytest.approx(0.5)
    assert math.isnan(average_precision(scores, np.zeros(4)))


def test_multi_label_metrics_by_hand() -> None:
    targets = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    # Logits > 0 means sigmoid > 0.5.
    logits = torch.tensor([[2.0, 3.0, 1.0], [-1.0, -2.0, -3.0], [-1.0, -1.0, -1.0]])
    metrics = classification_metrics(logits, targets, multi_label=True)
    assert metrics["all_present"] == pytest.approx(
        0.5
    )  # image 0 yes, image 1 no, image 2 unlabelled
    assert metrics["exact_match"] == pytest.approx(
        1 / 3
    )  # image 0 has an extra class, image 2 exact
    assert metrics["label_accuracy"] == pytest.approx(7 / 9)
    # Class 0: one positive ranked first (AP 1); class 1: scores 3, -2, -1 with positives at
    # 3 and -2: AP = (1 + 2/3) / 2; class 2 has no positive and is left out.
    assert metrics["mAP"] == pytest.approx((1 + (1 + 2 / 3) / 2) / 2)
    single = classification_metrics(
        torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, 0.0]]),
        torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]),
        multi_label=False,
    )
    assert single["accuracy"] == pytest.approx(0.5)  # the unlabelled third image is not counted


def test_augmentation_is_reproducible_and_bounded() -> None:
    images = torch.rand(4, 3, 24, 24)
    first = augment_batch(images, Augmentation(), torch.Generator().manual_seed(1))
    again = augment_batch(images, Augmentation(), torch.Generator().manual_seed(1))
    other = augment_batch(images, Augmentation(), torch.Generator().manual_seed(2))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.shape == images.shape and float(first.min()) >= 0 and float(first.max()) <= 1
    # Without crop, flip or jitter the augmentation is the identity.
    identity = Augmentation(
        crop_scale=(1.0, 1.0),
        crop_ratio=(1.0, 1.0),
        flip=False,
        brightness=0.0,
        contrast=0.0,
        saturation=0.0,
    )
    assert torch.allclose(augment_batch(images, identity, torch.Generator()), images, atol=1e-5)
    flipped = Augmentation(
        crop_scale=(1.0, 1.0),
        crop_ratio=(1.0, 1.0),
        flip=True,
        brightness=0.0,
        contrast=0.0,
        saturation=0.0,
    )
    out = augment_batch(images, flipped, torch.Generator().manual_seed(0))
    for index in range(4):
        assert torch.allclose(out[index], images[index], atol=1e-5) or torch.allclose(
            out[index], images[index].flip(-1), atol=1e-5
        )
    uint8 = torch.full((3, 10, 20), 255, dtype=torch.uint8)
    assert resize_image(uint8, 8).shape == (3, 8, 8)
    normalised = normalize_batch(uint8[None], (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert torch.allclose(normalised, torch.ones_like(normalised))


def test_multi_label_training_uses_bce_and_reports_map(tmp_path: Path) -> None:
    run = train_classifier(
        ClassifierConfig(
            dataset="synthetic",
            out=tmp_path,
            dataset_options={"n": 40, "mode": "multi"},
            image_size=32,
            epochs=1,
            batch_size=8,
            device="cpu",
        ),
        progress=False,
    )
    assert {"mAP", "all_present", "exact_match", "label_accuracy", "val_loss"} <= set(
        run.best_metrics
    )
    loaded = load_classifier(run.checkpoint)
    assert loaded.multi_label is True
    assert loaded.metadata["training"]["loss"] == "binary_cross_entropy_with_logits"
    assert sorted(loaded.metadata["train_ids"] + loaded.metadata["val_ids"]) == sorted(
        set(loaded.metadata["train_ids"]) | set(loaded.metadata["val_ids"])
    )
    assert len(loaded.metadata["train_ids"]) == 32 and len(loaded.metadata["val_ids"]) == 4


def _folder_dataset(root: Path, labelled: bool) -> Path:
    (root / "images").mkdir(parents=True)
    rows, labels = ["image,observer,x,y"], ["image,label"]
    rng = np.random.default_rng(0)
    for index in range(12):
        name = f"im{index:02d}.png"
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
            root / "images" / name
        )
        rows.append(f"{name},P1,{10 + index},{20}")
        labels.append(f"{name},{'cat' if index % 2 else 'dog'}")
    (root / "fixations.csv").write_text("\n".join(rows) + "\n")
    if labelled:
        (root / "labels.csv").write_text("\n".join(labels) + "\n")
    return root


def test_training_on_a_dataset_read_from_disk_records_its_splits(tmp_path: Path) -> None:
    root = _folder_dataset(tmp_path / "data", labelled=True)
    splits = tmp_path / "splits.json"
    run = train_classifier(
        ClassifierConfig(
            dataset="folder",
            root=root,
            out=tmp_path / "run",
            image_size=32,
            epochs=1,
            batch_size=4,
            splits=splits,
            device="cpu",
            dataset_options={"sigma": 3},
        ),
        progress=False,
    )
    metadata = load_classifier(run.checkpoint).metadata
    assert splits.is_file()
    assert metadata["dataset"]["splits"] == str(splits.resolve())
    assert metadata["dataset"]["root"] == str(root.resolve())
    assert metadata["class_names"] == ["cat", "dog"]
    assert len(metadata["train_ids"]) == 10 and not set(metadata["train_ids"]) & set(
        metadata["val_ids"]
    )


def test_configuration_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="augment"):
        ClassifierConfig(dataset="synthetic", out=tmp_path, augment="heavy")
    with pytest.raises(ValueError, match="epochs"):
        ClassifierConfig(dataset="synthetic", out=tmp_path, epochs=0)
    root = _folder_dataset(tmp_path / "unlabelled", labelled=False)
    with pytest.raises(ValueError, match="no class labels"):
        train_classifier(
            ClassifierConfig(
                dataset="folder", root=root, out=tmp_path / "run", image_size=32, device="cpu"
            ),
            progress=False,
        )
    with pytest.raises(ValueError, match="no pretrained weights"):
        train_classifier(
            ClassifierConfig(
                dataset="synthetic",
                out=tmp_path / "w",
                weights="imagenet",
                dataset_options={"n": 20},
                image_size=32,
                device="cpu",
            ),
            progress=False,
        )
