"""FEM of a network's small layers, computed together after the forward pass (CPU).

Inside a forward hook, each FEM operation costs more than the same operation right after
the forward pass: the model's own work between two hooks leaves the operators' code and
data cold (MobileNetV3-Large's (8, 160, 7, 7) block: 0.65 ms in its hook, 0.26 ms after the
pass, benchmarks/results/mlfem-before-after-17-2026-12-01.txt). On a small network's deep
blocks that fixed cost is most of FEM's. So the extractor hands each small layer's output
here: its hook keeps a copy (one operation), and after the forward pass the layers of each
map size are concatenated along channels and go through FEM's statistics, threshold and
weighted channel sum together, each layer's sum being one row of one batched product.

Only small outputs are kept (at most :data:`_ELEMENTS_PER_IMAGE` values per image), so the
copies add little memory, late in the pass when the large early activations are gone; only
on the CPU (accelerators were not measured), and not under the compiled route.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import torch
from torch import Tensor

from mlfem._fem_statistics import channel_mean_and_threshold, map_dtype

__all__ = ["SmallLayerFEM"]

# A (C, H, W) output of at most 64k values per image (256 KiB in float32): MobileNetV3's and
# EfficientNet's 14x14 and 7x7 blocks, ConvNeXt-T's last stage; no ResNet-50 block.
_ELEMENTS_PER_IMAGE = 1 << 16


class SmallLayerFEM:
    """Collects small layers' outputs during one forward pass and gives their raw FEM maps
    after it, equal to :func:`mlfem.fem.fem_saliency` on each (to float rounding)."""

    def __init__(self, k: float) -> None:
        self.k = k
        self._kept: list[tuple[int, Tensor]] = []

    @staticmethod
    def accepts(features: Tensor) -> bool:
        """Whether ``features`` (the adapted layer output) are deferred: image feature maps
        (B, C, H, W) on the CPU, small, floating point."""
        return (
            features.ndim == 4
            and features.device.type == "cpu"
            and features.is_floating_point()
            and 0 < features[0].numel() <= _ELEMENTS_PER_IMAGE
        )

    def keep(self, index: int, features: Tensor) -> None:
        """Keep a channels-first copy of layer ``index``'s features: the model may still
        modify its outputs in place later in the pass."""
        self._kept.append((index, features.clone(memory_format=torch.contiguous_format)))

    def maps(self) -> Iterator[tuple[int, Tensor]]:
        """``(index, raw FEM map (B, H, W))`` of every kept layer, grouped by map size; the
        kept copies are released as they are used."""
        groups: dict[tuple[int, ...], list[tuple[int, Tensor]]] = {}
        for index, features in self._kept:
            key = (features.shape[0], *features.shape[2:], features.dtype)
            groups.setdefault(key, []).append((index, features))
        self._kept = []
        for members in groups.values():
            yield from zip((index for index, _ in members), self._group_maps([f for _, f in members]))

    def _group_maps(self, layers: list[Tensor]) -> list[Tensor]:
        batch, _, height, width = layers[0].shape
        pixels = height * width
        features = torch.cat(layers, dim=1) if len(layers) > 1 else layers[0]
        channels = features.shape[1]
        out_dtype = map_dtype(features)
        rows = features.view(batch, channels, pixels)
        mean, threshold = channel_mean_and_threshold(rows.view(batch * channels, pixels), self.k)
        strong = torch.empty(batch, channels, pixels, dtype=out_dtype)
        torch.ge(rows, threshold.view(batch, channels, 1), out=strong)
        # Row l of the product is layer l's weighted channel sum: each image's channel means
        # masked to the layer's own channels, (B, L, C) @ (B, C, P).
        own = _ownership(tuple(layer.shape[1] for layer in layers), out_dtype)
        sums = torch.bmm(mean.view(batch, 1, channels) * own, strong)  # (B, L, P)
        return [sums[:, position].reshape(batch, height, width) for position in range(len(layers))]


@functools.lru_cache(maxsize=32)
def _ownership(channel_counts: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    """(L, C) matrix with 1 where channel c of the concatenation belongs to layer l. Cached
    and shared: do not modify."""
    with torch.inference_mode(False):  # usable in any mode
        owner = torch.repeat_interleave(torch.arange(len(channel_counts)), torch.tensor(channel_counts))
        return (owner == torch.arange(len(channel_counts)).unsqueeze(1)).to(dtype)
