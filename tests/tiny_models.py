"""Tiny offline models and hook accounting shared by the tests."""

from __future__ import annotations

import torch
from torch import nn

#: Registered methods defined for vision transformers only, tested on them
#: (tests/test_rollout.py) rather than on the CNNs of the common contract.
TRANSFORMER_ONLY = ("rollout",)


class TinyCNN(nn.Module):
    """Two conv stages and a linear head: the smallest model with several 4-D layers."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


class PooledHeadCNN(nn.Module):
    """The last block feeds global average pooling and a linear layer (or a small MLP), as
    in a ResNet: the head CS-FEM and the CAMs read."""

    def __init__(self, classes: int = 3, mlp_head: bool = False, hidden: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU()
        )
        self.head: nn.Module = (
            nn.Sequential(nn.Linear(16, hidden), nn.ReLU(), nn.Linear(hidden, classes))
            if mlp_head
            else nn.Linear(16, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


class TinyCNN3D(nn.Module):
    """A video network's smallest form: two 3-D conv stages (the second halves T, H and W)
    and a linear head, on clips (B, 3, T, H, W)."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv3d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv3d(8, 16, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3, 4)))


def all_hooks(model: nn.Module) -> int:
    """How many forward/backward hooks remain on any module of ``model``."""
    total = 0
    for module in model.modules():
        total += len(module._forward_hooks) + len(module._forward_pre_hooks)
        total += len(module._backward_hooks) + len(getattr(module, "_backward_pre_hooks", {}))
    return total


def tiny_vit(**options: object) -> nn.Module:
    """A two-block timm ViT (patch 8, 32 channels) with random weights, in eval mode; any
    input whose sides are multiples of 8 (``dynamic_img_size``)."""
    import timm

    settings = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=3,
                    dynamic_img_size=True)
    settings.update(options)
    torch.manual_seed(0)
    return timm.models.vision_transformer.VisionTransformer(**settings).eval()


def tiny_timm_swin() -> nn.Module:
    """A two-stage timm Swin (patch 4, window 4) for 32x32 inputs, random weights."""
    import timm

    torch.manual_seed(0)
    return timm.models.swin_transformer.SwinTransformer(
        img_size=32, patch_size=4, window_size=4, embed_dim=16, depths=(1, 1), num_heads=(1, 2),
        num_classes=3,
    ).eval()
