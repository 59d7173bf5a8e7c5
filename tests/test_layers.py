"""Automatic layer discovery on real architectures (random weights) and its errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mlfem import MLFEM, find_layers, resolve_layers
from tiny_models import TinyCNN

torchvision = pytest.importorskip("torchvision")


def names(model: nn.Module) -> list[str]:
    return [spec.name for spec in find_layers(model)]


def test_resnet50_has_16_bottlenecks() -> None:
    layers = names(torchvision.models.resnet50())
    blocks = [(3, "layer1"), (4, "layer2"), (6, "layer3"), (3, "layer4")]
    assert layers == [f"{stage}.{i}" for count, stage in blocks for i in range(count)]


def test_resnet18_has_8_basic_blocks() -> None:
    assert names(torchvision.models.resnet18()) == [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)]


@pytest.mark.parametrize(
    ("arch", "count", "first", "last"),
    [
        ("vgg11", 5, "features.1", "features.19"),
        ("vgg16", 5, "features.3", "features.29"),
        ("densenet121", 4, "features.transition1.relu", "features.norm5"),
        ("mobilenet_v2", 18, "features.1", "features.18"),
        ("mobilenet_v3_small", 12, "features.1", "features.12"),
        ("efficientnet_b0", 17, "features.1.0", "features.8"),
        ("convnext_tiny", 18, "features.1.0", "features.7.2"),
    ],
)
def test_torchvision_architectures(arch: str, count: int, first: str, last: str) -> None:
    layers = names(torchvision.models.get_model(arch))
    assert len(layers) == count
    assert layers[0] == first and layers[-1] == last


def test_vgg_stage_ends_precede_pooling() -> None:
    model = torchvision.models.vgg16()
    for name in names(model):
        index = int(name.split(".")[1])
        assert isinstance(model.features[index], nn.ReLU)
        assert isinstance(model.features[index + 1], nn.MaxPool2d)


def test_densenet_last_block_is_rectified() -> None:
    layers = find_layers(torchvision.models.densenet121())
    assert [spec.relu for spec in layers] == [False, False, False, True]


@pytest.mark.parametrize("arch", ["densenet121", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny", "vgg11"])
def test_discovered_layers_run(arch: str) -> None:
    torch.manual_seed(0)
    model = torchvision.models.get_model(arch).eval()
    maps = MLFEM(model)(torch.randn(1, 3, 64, 64))
    assert maps.shape == (1, 64, 64) and torch.isfinite(maps).all()


@pytest.mark.parametrize(("arch", "count"), [("resnet18", 8), ("resnet50", 16), ("convnext_atto", 12)])
def test_timm_architectures(arch: str, count: int) -> None:
    timm = pytest.importorskip("timm")
    model = timm.create_model(arch, pretrained=False).eval()
    layers = names(model)
    assert len(layers) == count
    maps = MLFEM(model)(torch.randn(1, 3, 64, 64))
    assert maps.shape == (1, 64, 64) and torch.isfinite(maps).all()


def test_unknown_model_is_probed_for_stage_ends() -> None:
    # TinyCNN has no known block type: the last ReLU at each resolution is used.
    assert names(TinyCNN()) == ["features.1", "features.4"]


def test_explicit_names_override_auto() -> None:
    model = torchvision.models.resnet18()
    assert [s.name for s in resolve_layers(model, "layer2.1, layer4.0")] == ["layer2.1", "layer4.0"]
    assert [s.name for s in resolve_layers(model, ["layer3.0"])] == ["layer3.0"]
    assert MLFEM(model.eval(), layers="layer1.1,layer3.1").layer_names == ["layer1.1", "layer3.1"]


def test_unknown_layer_lists_candidates() -> None:
    model = torchvision.models.resnet18()
    with pytest.raises(ValueError) as error:
        resolve_layers(model, ["layer5.0", "layer1.0"])
    message = str(error.value)
    assert "'layer5.0'" in message and "candidate layers: layer1.0, layer1.1" in message
    with pytest.raises(ValueError, match="did you mean layer1.1"):
        resolve_layers(model, "layer1.11")
    with pytest.raises(ValueError, match="repeated: layer1.0"):
        resolve_layers(model, "layer1.0,layer1.0")
    with pytest.raises(ValueError, match="at least one module name"):
        resolve_layers(model, " , ")


class NoFeatureMaps(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(3 * 8 * 8, 4)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.fc(self.flatten(x)))


def test_model_without_feature_maps_gets_error_listing_modules() -> None:
    with pytest.raises(ValueError, match="no 4-D .*its modules are: flatten, fc, act"):
        find_layers(NoFeatureMaps(), probe_size=(8, 8))
