"""The small 3-D CNN (small-cnn3d) and the CAM methods on clips (B, C, T, H, W)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mlfem.explainers.cam import GradCAM, GradCAMPlusPlus, LayerCAM, MultiLayerCAM
from mlfem.layers import find_layers
from mlfem.models.architectures import SMALL_CNN3D, SmallCNN3d, rebuild_classifier
from mlfem.models.starting import build_classifier


class TinyCNN3d(nn.Module):
    """One Conv3d-BN-ReLU stage (T and H, W halved) and a linear head on pooled features."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv3d(3, 6, 3, stride=2, padding=1), nn.BatchNorm3d(6), nn.ReLU()
        )
        self.head = nn.Linear(6, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3, 4)))


class BlobDetector(nn.Module):
    """Reads channel 0 of the clip through a ReLU: its Grad-CAM for class 0 is the clip's
    channel 0 itself (positive head weight), so a moving bright blob must be followed."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 1, 1, bias=False)
        self.relu = nn.ReLU()
        self.head = nn.Linear(1, 2)
        with torch.no_grad():
            self.conv.weight.zero_()
            self.conv.weight[0, 0] = 1.0
            self.head.weight.copy_(torch.tensor([[1.0], [-1.0]]))
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.relu(self.conv(x)).mean(dim=(2, 3, 4)))


def _manual_gradcam(model: TinyCNN3d, clips: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Grad-CAM written out: gradient means over (t, h, w), ReLU of the weighted sum,
    trilinear upsampling, min-max over each whole clip."""
    stored = {}
    handle = model.features[2].register_forward_hook(lambda m, i, o: stored.setdefault("a", o))
    try:
        logits = model(clips)
    finally:
        handle.remove()
    activation = stored["a"]
    gradient, = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), activation)
    raw = (gradient.mean(dim=(2, 3, 4), keepdim=True) * activation).sum(1).clamp(min=0)
    up = F.interpolate(raw[:, None], size=clips.shape[2:], mode="trilinear", align_corners=False)[:, 0]
    low = up.amin(dim=(1, 2, 3), keepdim=True)
    high = up.amax(dim=(1, 2, 3), keepdim=True)
    return ((up - low) / (high - low)).detach()


def test_small_cnn3d_blocks_are_discovered_and_rebuilt() -> None:
    torch.manual_seed(0)
    model, spec = build_classifier(SMALL_CNN3D, 5)
    assert spec == {"name": SMALL_CNN3D, "library": "mlfem", "num_classes": 5, "options": {"widths": [16, 32, 64]}}
    assert [s.name for s in find_layers(model)] == ["blocks.1", "blocks.2", "blocks.3"]
    rebuilt = rebuild_classifier(spec)
    rebuilt.load_state_dict(model.state_dict())
    clips = torch.randn(2, 3, 8, 32, 32)
    assert torch.equal(rebuilt.eval()(clips), model.eval()(clips))
    assert model(clips).shape == (2, 5)
    with pytest.raises(ValueError, match="clips"):
        model(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="weights"):
        build_classifier(SMALL_CNN3D, 5, weights="imagenet")


def test_gradcam_on_clips_matches_the_formula() -> None:
    torch.manual_seed(0)
    model = TinyCNN3d().eval()
    clips = torch.randn(2, 3, 6, 10, 12)
    maps = GradCAM(model, layer="features.2")(clips, targets=torch.tensor([0, 2]))
    assert maps.shape == (2, 6, 10, 12)
    expected = _manual_gradcam(model, clips.clone(), torch.tensor([0, 2]))
    torch.testing.assert_close(maps, expected, atol=1e-5, rtol=1e-5)
    # One clip alone gets the map it gets in a batch (eval-mode batch norm).
    alone = GradCAM(model, layer="features.2")(clips[1:], targets=2)
    torch.testing.assert_close(alone, maps[1:], atol=1e-5, rtol=1e-5)
    # Normalised over the whole clip: one 0 and one 1 per clip, not per frame.
    assert torch.allclose(maps.amax(dim=(1, 2, 3)), torch.ones(2))
    assert torch.allclose(maps.amin(dim=(1, 2, 3)), torch.zeros(2))
    assert not torch.allclose(maps[0].amax(dim=(1, 2)), torch.ones(6))


def test_gradcam_follows_a_moving_blob() -> None:
    frames, size = 6, 24
    clip = torch.zeros(1, 3, frames, size, size)
    centres = [(4 + 3 * t, 6 + 2 * t) for t in range(frames)]  # (row, column) moving down-right
    for t, (row, column) in enumerate(centres):
        clip[0, :, t, row - 2 : row + 3, column - 2 : column + 3] = 1.0
    maps = GradCAM(BlobDetector().eval(), layer="relu")(clip, targets=0)
    assert maps.shape == (1, frames, size, size)
    for t, (row, column) in enumerate(centres):
        peak = int(maps[0, t].argmax())
        assert abs(peak // size - row) <= 2 and abs(peak % size - column) <= 2


@pytest.mark.parametrize("method", [GradCAMPlusPlus, LayerCAM])
def test_other_cams_give_clip_maps(method: type) -> None:
    torch.manual_seed(0)
    model = TinyCNN3d().eval()
    maps = method(model, layer="features.2")(torch.randn(2, 3, 4, 8, 8))
    assert maps.shape == (2, 4, 8, 8)
    assert float(maps.min()) >= 0.0 and float(maps.max()) <= 1.0


def test_layercam_multi_and_default_layer_on_small_cnn3d() -> None:
    torch.manual_seed(0)
    model = SmallCNN3d(3).eval()
    clips = torch.randn(2, 3, 8, 32, 32)
    explainer = GradCAM(model)
    assert explainer.layer_names == ["blocks.3"]
    maps = explainer(clips)
    assert maps.shape == (2, 8, 32, 32)
    fused = MultiLayerCAM(model)(clips)
    assert fused.shape == (2, 8, 32, 32)
    assert torch.allclose(fused.amax(dim=(1, 2, 3)), torch.ones(2))


def test_cam_refuses_a_layer_without_the_clip_layout() -> None:
    model = TinyCNN3d().eval()
    with pytest.raises(ValueError, match="5-D"):
        GradCAM(model, layer="head")(torch.randn(1, 3, 4, 8, 8))
