"""The ``rectify`` option (``layers="auto-rectified"``): FEM on block outputs clamped at 0.

A tiny network whose blocks, like timm's EfficientNet blocks, end with a linear projection
plus the skip connection, so that their outputs are signed.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mlfem import FEM, MLFEM, fem_saliency, fuse, resolve_layers
from mlfem.explainers.registry import create_explainer
from mlfem.normalize import minmax_normalize_, resize_maps
from tiny_models import TinyCNN, all_hooks


class InvertedResidual(nn.Module):
    """Expand, ReLU6, project back, add the input: no activation after the sum."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_pw = nn.Conv2d(channels, 2 * channels, 1)
        self.act = nn.ReLU6()
        self.conv_pwl = nn.Conv2d(2 * channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_pwl(self.act(self.conv_pw(x)))


class SignedNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.blocks = nn.Sequential(InvertedResidual(6), nn.MaxPool2d(2), InvertedResidual(6))
        self.head = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean(dim=(2, 3)))


BLOCKS = ["blocks.0", "blocks.2"]


@pytest.fixture()
def model() -> SignedNet:
    torch.manual_seed(0)
    return SignedNet().eval()


@pytest.fixture()
def images() -> torch.Tensor:
    return torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def block_outputs(model: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    outputs: dict[str, torch.Tensor] = {}
    handles = [
        model.get_submodule(name).register_forward_hook(
            lambda module, inputs, output, name=name: outputs.__setitem__(name, output.detach().clone())
        )
        for name in BLOCKS
    ]
    try:
        with torch.no_grad():
            model(images)
    finally:
        for handle in handles:
            handle.remove()
    return outputs


def expected_maps(outputs: dict[str, torch.Tensor], rectify: bool, size=(16, 16)) -> torch.Tensor:
    maps = [
        minmax_normalize_(resize_maps(fem_saliency(outputs[n].clamp(min=0) if rectify else outputs[n]), size))
        for n in BLOCKS
    ]
    return torch.stack(maps, dim=1)


def test_the_tiny_blocks_output_signed_features(model: SignedNet, images: torch.Tensor) -> None:
    outputs = block_outputs(model, images)
    assert all((output < 0).any() for output in outputs.values())
    assert any((output.mean(dim=(2, 3)) < 0).any() for output in outputs.values())
    # Negative channel means give negative saliency somewhere in the signed reading.
    assert any((fem_saliency(output) < 0).any() for output in outputs.values())


def test_auto_discovers_the_blocks_unrectified_by_default(model: SignedNet) -> None:
    specs = resolve_layers(model, "auto")
    assert [spec.name for spec in specs] == BLOCKS
    assert not any(spec.relu for spec in specs)


def test_rectify_marks_every_layer_and_auto_rectified_says_the_same(model: SignedNet) -> None:
    rectified = resolve_layers(model, "auto", rectify=True)
    assert [(s.name, s.relu) for s in rectified] == [(n, True) for n in BLOCKS]
    assert resolve_layers(model, "auto-rectified") == rectified
    explicit = resolve_layers(model, ["blocks.2", "stem"], rectify=True)
    assert [(s.name, s.relu) for s in explicit] == [("blocks.2", True), ("stem", True)]


def test_default_maps_are_fem_on_the_signed_outputs(model: SignedNet, images: torch.Tensor) -> None:
    expected = expected_maps(block_outputs(model, images), rectify=False)
    with MLFEM(model) as explainer:
        assert not explainer.rectify
        maps = explainer.layer_maps(images).maps
    torch.testing.assert_close(maps, expected, rtol=0, atol=1e-6)


def test_rectify_is_fem_on_the_clamped_outputs(model: SignedNet, images: torch.Tensor) -> None:
    outputs = block_outputs(model, images)
    expected = expected_maps(outputs, rectify=True)
    with MLFEM(model, fusion="max", rectify=True) as explainer:
        assert explainer.rectify
        fused, maps = explainer(images, return_layers=True)
        fast = explainer(images)
    torch.testing.assert_close(maps, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(fused, fuse(expected, "max"), rtol=0, atol=1e-6)
    torch.testing.assert_close(fast, fused, rtol=0, atol=1e-6)
    # ... and it does change the maps of this signed network.
    assert (maps - expected_maps(outputs, rectify=False)).abs().max() > 0.1


def test_rectify_also_reaches_the_fast_add_route(model: SignedNet, images: torch.Tensor) -> None:
    expected = fuse(expected_maps(block_outputs(model, images), rectify=True), "add")
    with MLFEM(model, layers="auto-rectified", fusion="add") as explainer:
        torch.testing.assert_close(explainer(images), expected, rtol=0, atol=1e-5)


def test_rectify_changes_nothing_on_non_negative_outputs() -> None:
    torch.manual_seed(0)
    model = TinyCNN().eval()
    images = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    with MLFEM(model, fusion="max") as plain, MLFEM(model, fusion="max", rectify=True) as rectified:
        torch.testing.assert_close(plain(images), rectified(images), rtol=0, atol=0)


def test_single_layer_fem_and_the_registry_accept_the_option(model: SignedNet, images: torch.Tensor) -> None:
    outputs = block_outputs(model, images)
    expected_last = expected_maps(outputs, rectify=True)[:, -1]
    fem = FEM(model, rectify=True)
    assert fem.layer_name == "blocks.2" and fem.rectify
    torch.testing.assert_close(fem(images), expected_last, rtol=0, atol=1e-6)
    assert create_explainer("fem", model, layers="auto-rectified").rectify
    assert not create_explainer("fem", model, layers="auto").rectify
    for name in ("mlfem", "mlfem-max", "mlfem-top"):
        assert create_explainer(name, model, rectify=True).rectify
        assert create_explainer(name, model, layers="auto-rectified").rectify
        assert not create_explainer(name, model).rectify


def test_hooks_are_removed_with_rectify(model: SignedNet, images: torch.Tensor) -> None:
    with MLFEM(model, fusion="top", rectify=True) as explainer:
        explainer(images)
        explainer(images, return_layers=True)
    assert all_hooks(model) == 0
    with pytest.raises(Exception):
        MLFEM(model, rectify=True)(images[:, :2])  # wrong channel count: the forward raises
    assert all_hooks(model) == 0


def test_the_evaluation_runner_passes_auto_rectified_to_every_fem_method(model: SignedNet) -> None:
    from mlfem.evaluation.methods import MethodRunner

    runner = MethodRunner(model, ["mlfem-max", "fem"], layers="auto-rectified")
    assert runner.extractor is not None and runner.extractor.rectify
    assert all(spec.relu for spec in runner.extractor.layers)
    assert not MethodRunner(model, ["mlfem-max"]).extractor.rectify
