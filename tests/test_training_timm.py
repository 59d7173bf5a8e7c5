"""``mlfem train-classifier`` on timm architectures: a tiny timm test model from random
weights, and EfficientNet-Lite0 from its installed ImageNet weights; checkpoints rebuild the
architecture from the sidecar and load without unpickling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mlfem.cli import main
from mlfem.models import load_model
from mlfem.models.architectures import rebuild_classifier
from mlfem.models.checkpoint import load_classifier
from mlfem.training import ClassifierConfig, train_classifier


# Training tests run single-threaded (see conftest.one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_tiny_timm_model_is_fine_tuned_saved_and_rebuilt(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "clf"
    code = main(
        [
            "train-classifier", "--dataset", "synthetic", "--n", "24", "--data-seed", "3",
            "--model", "timm:test_efficientnet", "--image-size", "32", "--epochs", "1",
            "--batch-size", "8", "--augment", "none", "--split-fractions", "0.75,0.25,0",
            "--device", "cpu", "--out", str(out), "--quiet",
        ]
    )
    assert code == 0
    metadata = json.loads((out / "classifier.json").read_text())
    classes = len(metadata["class_names"])
    assert metadata["architecture"] == {
        "name": "test_efficientnet",
        "library": "timm",
        "num_classes": classes,
        "head": "classifier",
    }
    assert metadata["dataset"]["split_fractions"] == [0.75, 0.25, 0.0]
    assert len(metadata["train_ids"]) == 18 and len(metadata["val_ids"]) == 6
    loaded = load_classifier(out / "classifier.safetensors")
    assert type(loaded.model).__name__ == "EfficientNet"
    assert loaded.class_names == metadata["class_names"]
    # The same network through load_model (hence mlfem explain --model CKPT).
    again = load_model(str(out / "classifier.safetensors")).model
    images = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.model(images), again(images))
    assert loaded.model(images).shape == (2, classes)


def test_unknown_timm_architecture_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code = main(
        [
            "train-classifier", "--dataset", "synthetic", "--n", "8",
            "--model", "timm:no_such_net", "--out", str(tmp_path / "x"), "--quiet",
        ]
    )
    assert code == 2 and "not a timm architecture" in capsys.readouterr().err


def test_efficientnet_lite0_starts_from_its_installed_imagenet_weights(tmp_path: Path) -> None:
    config = ClassifierConfig(
        dataset="synthetic", out=tmp_path / "lite0", dataset_options={"n": 12, "seed": 4},
        model="efficientnet_lite0", weights="imagenet", image_size=32, epochs=1, batch_size=6,
        augment="none", split_fractions=(0.5, 0.5, 0.0), device="cpu",
    )
    run = train_classifier(config, progress=False)
    metadata = json.loads(run.checkpoint.with_suffix(".json").read_text())
    architecture = metadata["architecture"]
    assert architecture["name"] == "tf_efficientnet_lite0" and architecture["library"] == "timm"
    # The weights' own normalisation (TF-Lite: 0.5/0.5), used in training and recorded.
    assert architecture["normalization"] == {"mean": [0.5] * 3, "std": [0.5] * 3}
    assert metadata["preprocessing"]["mean"] == [0.5] * 3
    loaded = load_classifier(run.checkpoint)
    # Only the head was replaced: the stem still holds the ImageNet weights' values
    # (one epoch of Adam moves them only slightly).
    pretrained = load_model("efficientnet_lite0", "imagenet").model
    stem, start = loaded.model.conv_stem.weight, pretrained.conv_stem.weight
    assert torch.corrcoef(torch.stack([stem.flatten(), start.flatten()]))[0, 1] > 0.9
    rebuilt = rebuild_classifier(architecture)
    assert set(rebuilt.state_dict()) == set(loaded.model.state_dict())
