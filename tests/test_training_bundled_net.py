"""The NET that ships with mlfem (EfficientNet-Lite0, OSIE training pool): it loads, fuses
the maps of the installed ImageNet Lite0, refuses a randomly initialised Lite0, and records
the images it saw (none of the 1001-1040 test sample)."""

from __future__ import annotations

import json

import pytest
import torch

from mlfem import MLFEM
from mlfem.fusion.net import FusionMismatchError, bundled_net_path, load_fusion_net
from mlfem.models import load_model
from mlfem.models.checkpoint import read_metadata
from mlfem.training import check_leakage, export_net

TEST_SAMPLE = {str(number) for number in range(1001, 1041)}


@pytest.fixture(scope="module")
def lite0():
    return load_model("efficientnet_lite0", "imagenet").model


def test_the_bundled_net_is_small_and_records_how_it_was_made() -> None:
    path = bundled_net_path()
    assert path.name == "efficientnet_lite0-osie.safetensors"
    assert path.stat().st_size < 1_000_000
    metadata = read_metadata(path, "mlfem-net/1")
    assert metadata["weights_file"] == path.name
    assert metadata["model"]["spec"] == "efficientnet_lite0"
    assert metadata["model"]["weights"] == "imagenet"
    assert metadata["dataset"]["name"] == "osie"
    seen = set(metadata["train_ids"]) | set(metadata["val_ids"])
    assert not set(metadata["train_ids"]) & set(metadata["val_ids"])
    assert seen <= {str(number) for number in range(1041, 1601)} and not seen & TEST_SAMPLE
    assert len(metadata["train_ids"]) > 400 and len(metadata["val_ids"]) > 40
    assert "mlfem train-fusion --model efficientnet_lite0" in metadata["command"]["train_fusion"]
    values = metadata["val_comparison"]["values"]
    assert values["net"] > values["add(alpha=0.5)"]
    # No folder of the machine it was trained on.
    text = json.dumps(metadata)
    assert "/work/" not in text and not metadata["dataset"]["root"].startswith("/")
    with pytest.raises(ValueError, match="no NET is bundled"):
        bundled_net_path("resnet50")


def test_mlfem_fuses_the_pretrained_lite0_with_it(lite0) -> None:
    spec = f"net:{bundled_net_path()}"
    images = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with MLFEM(lite0, fusion=spec) as explainer:
        maps = explainer(images)
    assert maps.shape == (1, 224, 224)
    assert float(maps.min()) == 0.0 and float(maps.max()) == 1.0
    load_fusion_net(bundled_net_path(), classifier=lite0)


def test_a_random_lite0_is_refused() -> None:
    with pytest.warns(UserWarning, match="random weights"):
        random = load_model("efficientnet_lite0").model
    with pytest.raises(FusionMismatchError, match="--model efficientnet_lite0 --weights imagenet"):
        MLFEM(random, fusion=f"net:{bundled_net_path()}")


def test_the_leakage_guard_knows_its_images() -> None:
    path = bundled_net_path()
    metadata = read_metadata(path)
    assert not check_leakage("osie", sorted(TEST_SAMPLE), [path]).leaked
    with pytest.raises(ValueError, match="LEAKAGE"):
        check_leakage("osie", metadata["train_ids"][:3], [path])


def test_export_rewrites_the_record_for_its_new_name(tmp_path) -> None:
    copy = export_net(bundled_net_path(), tmp_path / "copy.safetensors", {"note": "x"})
    metadata = read_metadata(copy)
    assert metadata["weights_file"] == "copy.safetensors" and metadata["note"] == "x"
    assert load_fusion_net(copy).layer_names == load_fusion_net(bundled_net_path()).layer_names
