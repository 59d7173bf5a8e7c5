"""MLFEM: FEM on many layers, fused into one map."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, overload

import torch
from torch import Tensor, nn

from mlfem.explainers._layer_fem import LayerFEMExplainer
from mlfem.extractor import map_size
from mlfem.fusion import FusionOperator, Normalization, RecursiveFusion, make_fusion
from mlfem.normalize import add_weighted_resized, minmax_normalize_

__all__ = ["MLFEM"]


class MLFEM(LayerFEMExplainer):
    """Multi-layer FEM (Bourroux et al., ICPRAI 2022).

    FEM is applied to the output of every block of the network (16 bottlenecks for a
    ResNet-50), each map is upsampled to the input size and min-max normalised, and
    the maps are fused in forward order with a fusion operator.

    Args:
        model: a CNN, in eval mode.
        layers: ``"auto"`` to discover the blocks (see :mod:`mlfem.layers`), or module
            names (a list or a comma-separated string) to override the choice.
        fusion: ``"add"``, ``"max"``, ``"top"``, ``"fem"``, a registered spec such as a
            trained NET, or any :class:`~mlfem.fusion.FusionOperator`.
        alpha: weight of the accumulated map in ``add`` and ``top``.
        k: FEM threshold in standard deviations.
        normalize: ``"end"`` or ``"interleaved"`` min-max normalisation of the fusion.
        rectify: clamp every layer's output at 0 before FEM (``layers="auto-rectified"``
            says the same). For networks whose blocks output signed features, such as
            timm's EfficientNet (docs/real-network.md); off by default, as in the paper.
        per_frame: for video clips (B, 3, T, H, W) of a 3-D CNN: each layer's channel
            statistics per frame instead of over the whole clip (the default;
            docs/design-decisions.md §6). Clips give maps (B, T, H, W).

    Example:
        >>> with MLFEM(model, fusion="add") as explainer:          # doctest: +SKIP
        ...     maps, per_layer = explainer(images, return_layers=True)
    """

    name = "mlfem"

    def __init__(
        self,
        model: nn.Module,
        layers: str | Sequence[str] | None = "auto",
        fusion: str | FusionOperator = "add",
        alpha: float = 0.5,
        k: float = 2.0,
        normalize: Normalization = "end",
        rectify: bool = False,
        per_frame: bool = False,
    ) -> None:
        super().__init__(model, layers, k=k, rectify=rectify, per_frame=per_frame)
        self.fusion = make_fusion(fusion, alpha=alpha, normalize=normalize)
        # A trained fusion must fit these layers, their reading and this model.
        self.extractor.check_fusion(self.fusion)

    @overload
    def __call__(
        self, images: Tensor, targets: Tensor | None = None, *, return_layers: Literal[False] = False
    ) -> Tensor: ...

    @overload
    def __call__(
        self, images: Tensor, targets: Tensor | None = None, *, return_layers: Literal[True]
    ) -> tuple[Tensor, Tensor]: ...

    def __call__(
        self, images: Tensor, targets: Tensor | None = None, *, return_layers: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """MLFEM maps (B, H, W) in [0, 1]; with ``return_layers`` also the per-layer maps
        (B, L, H, W). Clips (B, 3, T, H, W) give (B, T, H, W) and (B, L, T, H, W).
        ``targets`` is ignored: MLFEM is class-agnostic."""
        if return_layers or not isinstance(self.fusion, RecursiveFusion):
            layer_maps = self.layer_maps(images).maps
            fused = self.fusion(layer_maps)
            return (fused, layer_maps) if return_layers else fused
        weights = self.fusion.linear_weights(len(self.layers))
        if weights is not None:
            return self._fuse_linearly(images, weights)
        return self._fuse_while_forwarding(images, self.fusion)

    def _fuse_linearly(self, images: Tensor, weights: list[float]) -> Tensor:
        """``minmax(sum_l w_l S_l)`` without resizing every layer's map (the fast route).

        With ``S_l = (up(M_l) - low_l) / span_l`` (``M_l`` the raw map, ``up`` the bilinear
        resize, ``low_l``/``span_l`` the resized map's extremes), the sum is
        ``sum over resolutions r of up_r(sum_{l at r} (w_l / span_l) M_l)`` plus a
        per-image constant, which the final min-max removes. So the hooks only compute
        the raw maps (small: the layer's own resolution); after the forward pass the maps
        of each resolution are weighted and summed in a few batched operations
        (:func:`~mlfem.normalize.add_weighted_resized`), and only one map per resolution
        (4 for a ResNet instead of 16) is resized to the input size. Batching per
        resolution instead of per layer matters on small, fast networks, where a dozen
        small operations per layer cost as much as the layer itself.
        """
        size = map_size(images)
        by_resolution: dict[tuple[int, ...], tuple[list[float], list[Tensor]]] = {}

        def keep(index: int, raw: Tensor) -> None:
            if weights[index] != 0.0:
                layer_weights, maps = by_resolution.setdefault(tuple(raw.shape[1:]), ([], []))
                layer_weights.append(weights[index])
                maps.append(raw)

        self.forward_raw_maps(images, keep)
        with torch.inference_mode():
            fused: Tensor | None = None
            # Largest resolution first: its sum becomes the accumulator (a fresh tensor of
            # the input's size), into which the smaller ones are added.
            for resolution in sorted(by_resolution, key=lambda r: -math.prod(r)):
                layer_weights, maps = by_resolution.pop(resolution)
                fused = add_weighted_resized(fused, torch.stack(maps), layer_weights, size)
            if fused is None:  # every layer has weight 0 (not produced by the built-ins)
                dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
                fused = torch.zeros(images.shape[0], *size, dtype=dtype, device=self.model_device)
            fused = minmax_normalize_(fused, len(size)).to(images.device)
        return fused.clone()

    def _fuse_while_forwarding(self, images: Tensor, fusion: RecursiveFusion) -> Tensor:
        """Recursive fusion folded in layer by layer inside the hooks: only the running map
        is kept, never the L full-resolution maps."""
        running: list[Tensor | None] = [None]

        def fold(index: int, layer_map: Tensor) -> None:
            running[0] = fusion.accumulate(running[0], layer_map)

        self.forward_layer_maps(images, fold)
        with torch.inference_mode():
            fused = fusion.finish(running[0]).to(images.device)
        return fused.clone()

    def explain(self, images: Tensor, targets: Tensor | None = None) -> Tensor:
        return self(images, targets)

    def fuse_layer_maps(self, layer_maps: Tensor) -> Tensor:
        """The fusion of per-layer maps (B, L, H, W) of :attr:`layer_names`."""
        return self.fusion(layer_maps)
