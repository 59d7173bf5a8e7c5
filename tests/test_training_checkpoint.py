"""Checkpoints: safetensors + JSON sidecar round trips, fingerprints, rebuilt architectures,
refusal of inconsistent files, and the training state (optimizer, RNG) round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mlfem.fusion.net import FusionNet, load_fusion_net, save_fusion_net
from mlfem.models import ModelLoadError, Preprocessing, load_model
from mlfem.models.architectures import SmallCNN, find_head
from mlfem.models.starting import build_classifier
from mlfem.models.checkpoint import (
    CheckpointError,
    load_classifier,
    model_fingerprint,
    read_metadata,
    save_classifier,
    state_fingerprint,
)
from mlfem.training._state import load_training_state, save_training_state


def _save_small(path: Path, seed: int = 0) -> SmallCNN:
    torch.manual_seed(seed)
    model, spec = build_classifier("small-cnn", 3)
    # Non-default batch-norm statistics, so buffers are part of the round trip.
    model.train()
    model(torch.randn(4, 3, 32, 32))
    model.eval()
    save_classifier(
        path,
        model,
        spec,
        ["a", "b", "c"],
        False,
        Preprocessing(crop_size=32, resize_size=32),
        extra={"train_ids": ["x"]},
    )
    return model


def test_classifier_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    model = _save_small(tmp_path / "clf.safetensors")
    loaded = load_classifier(tmp_path / "clf.safetensors")
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(images), loaded.model(images))
    assert loaded.class_names == ["a", "b", "c"] and loaded.multi_label is False
    assert loaded.preprocessing.crop_size == 32 and loaded.preprocessing.fit == "whole"
    assert (
        loaded.fingerprint
        == state_fingerprint(model.state_dict())
        == model_fingerprint(loaded.model)
    )
    assert not loaded.model.training
    # The same checkpoint through the generic loader (``mlfem explain --model CKPT``).
    via_cli = load_model(str(tmp_path / "clf.safetensors"))
    with torch.no_grad():
        assert torch.equal(via_cli.model(images), model(images))
    assert via_cli.trained and "small-cnn" in via_cli.description
    with pytest.raises(ModelLoadError, match="already contains its weights"):
        load_model(str(tmp_path / "clf.safetensors"), weights="x.pth")


def test_a_torchvision_model_gets_a_new_head_and_is_rebuilt(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model, spec = build_classifier("resnet18", 4)
    assert spec == {"name": "resnet18", "library": "torchvision", "num_classes": 4, "head": "fc"}
    assert model.fc.out_features == 4
    model.eval()
    save_classifier(
        tmp_path / "r18.safetensors", model, spec, list("abcd"), True, Preprocessing(crop_size=32)
    )
    loaded = load_classifier(tmp_path / "r18.safetensors")
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(images), loaded.model(images))
    assert loaded.multi_label is True


def test_head_discovery_finds_the_last_linear_layer() -> None:
    import torchvision

    assert find_head(torchvision.models.vgg11(weights=None)) == "classifier.6"
    assert find_head(torchvision.models.mobilenet_v3_small(weights=None)) == "classifier.3"
    assert find_head(SmallCNN(2)) == "fc"
    with pytest.raises(ValueError, match="no nn.Linear"):
        find_head(torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1)))
    with pytest.raises(ValueError, match="neither"):
        build_classifier("not-a-model", 2)


def test_inconsistent_or_foreign_files_are_refused(tmp_path: Path) -> None:
    _save_small(tmp_path / "one.safetensors", seed=0)
    _save_small(tmp_path / "two.safetensors", seed=1)
    # Weights of one save with the sidecar of another: the fingerprint check catches it.
    (tmp_path / "one.safetensors").write_bytes((tmp_path / "two.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="fingerprint"):
        load_classifier(tmp_path / "one.safetensors")
    (tmp_path / "two.json").unlink()
    with pytest.raises(CheckpointError, match="no JSON sidecar"):
        load_classifier(tmp_path / "two.safetensors")
    net = FusionNet(2)
    save_fusion_net(tmp_path / "net.safetensors", net, {"layers": ["a", "b"], "resolution": 8})
    with pytest.raises(CheckpointError, match="expected 'mlfem-classifier/1'"):
        load_classifier(tmp_path / "net.safetensors")
    with pytest.raises(ModelLoadError, match="mlfem-net"):
        load_model(str(tmp_path / "net.safetensors"))
    (tmp_path / "bad.json").write_text(json.dumps({"format": "something"}))
    with pytest.raises(CheckpointError, match="not an mlfem checkpoint"):
        read_metadata(tmp_path / "bad.json")


def test_fusion_net_round_trip_and_shapes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = FusionNet(3)
    # Depth x2, x4, x8 over the three convolutions, then one map.
    assert [net.conv1.out_channels, net.conv2.out_channels, net.conv3.out_channels] == [6, 12, 24]
    assert net.weighted_sum.kernel_size == (1, 1) and net.weighted_sum.out_channels == 1
    maps = torch.rand(2, 3, 16, 16)
    assert net(maps).shape == (2, 16, 16)
    with pytest.raises(ValueError, match="multiple of 4"):
        net(torch.rand(1, 3, 18, 18))
    save_fusion_net(
        tmp_path / "net.safetensors", net, {"layers": ["a", "b", "c"], "resolution": 16}
    )
    fusion = load_fusion_net(tmp_path / "net.safetensors")
    assert fusion.layer_names == ["a", "b", "c"] and fusion.resolution == 16
    with torch.no_grad():
        raw = net(maps)
    out = fusion(maps)
    low = raw.amin(dim=(1, 2), keepdim=True)
    high = raw.amax(dim=(1, 2), keepdim=True)
    assert torch.allclose(out, (raw - low) / (high - low), atol=1e-6)
    # Maps at another size are fused at the training resolution and brought back.
    big = fusion(torch.rand(1, 3, 40, 40))
    assert big.shape == (1, 40, 40) and float(big.min()) >= 0 and float(big.max()) <= 1
    with pytest.raises(ValueError, match="expects 3 layer maps"):
        fusion(torch.rand(1, 2, 16, 16))
    with pytest.raises(ValueError, match="needs 'layers'"):
        save_fusion_net(tmp_path / "x.safetensors", net, {"layers": ["a"], "resolution": 16})


def test_training_state_restores_model_optimizer_and_rngs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = SmallCNN(2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(2):
        optimizer.zero_grad()
        model(torch.randn(2, 3, 32, 32)).sum().backward()
        optimizer.step()
    generator = torch.Generator().manual_seed(5)
    torch.rand(3, generator=generator)
    save_training_state(
        tmp_path / "state.safetensors", model, optimizer, {"g": generator}, {"epoch": 3}
    )
    expected_global = torch.rand(4)
    expected_generator = torch.rand(4, generator=generator)

    other = SmallCNN(2)
    other_optimizer = torch.optim.Adam(other.parameters(), lr=5.0)
    other_generator = torch.Generator().manual_seed(99)
    progress = load_training_state(
        tmp_path / "state.safetensors", other, other_optimizer, {"g": other_generator}
    )
    assert progress == {"epoch": 3}
    assert torch.equal(torch.rand(4), expected_global)
    assert torch.equal(torch.rand(4, generator=other_generator), expected_generator)
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    assert other_optimizer.param_groups[0]["lr"] == 1e-3
    saved, restored = optimizer.state_dict()["state"], other_optimizer.state_dict()["state"]
    assert saved.keys() == restored.keys()
    for index in saved:
        for name in saved[index]:
            assert torch.equal(
                torch.as_tensor(saved[index][name]), torch.as_tensor(restored[index][name])
            )


def test_mlfem_refuses_a_net_trained_for_another_classifier(tmp_path: Path) -> None:
    from mlfem import MLFEM
    from mlfem.layers import find_layers

    trained_for = _save_small(tmp_path / "clf.safetensors", seed=0)
    layers = [spec.name for spec in find_layers(trained_for)]
    metadata = {
        "layers": layers,
        "resolution": 16,
        "classifier": {"path": "clf.safetensors", "fingerprint": model_fingerprint(trained_for)},
    }
    save_fusion_net(tmp_path / "net.safetensors", FusionNet(len(layers)), metadata)
    spec = f"net:{tmp_path / 'net.safetensors'}"
    maps = MLFEM(trained_for, fusion=spec)(torch.randn(1, 3, 32, 32))
    assert maps.shape == (1, 32, 32)
    other = _save_small(tmp_path / "other.safetensors", seed=1)
    with pytest.raises(ValueError, match="was trained on the FEM maps of classifier"):
        MLFEM(other, fusion=spec)
