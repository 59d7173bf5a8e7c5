"""MLFEM: FEM on many layers, fused into one map."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, overload

from torch import Tensor, nn

from mlfem.explainers._layer_fem import LayerFEMExplainer
import torch

from mlfem.fusion import FusionOperator, Normalization, RecursiveFusion, make_fusion

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
    ) -> None:
        super().__init__(model, layers, k=k)
        self.fusion = make_fusion(fusion, alpha=alpha, normalize=normalize)
        expected = getattr(self.fusion, "layer_names", None)
        if expected is not None and list(expected) != self.layer_names:
            raise ValueError(
                f"fusion {self.fusion!r} was trained on layers {list(expected)}, but this "
                f"explainer reads {self.layer_names}; use the same layers or retrain it"
            )
        # A trained fusion (NET) also knows which classifier it was trained for.
        check_model = getattr(self.fusion, "check_model", None)
        if callable(check_model):
            check_model(model)

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
        (B, L, H, W). ``targets`` is ignored: MLFEM is class-agnostic."""
        if return_layers or not isinstance(self.fusion, RecursiveFusion):
            layer_maps = self.layer_maps(images).maps
            fused = self.fusion(layer_maps)
            return (fused, layer_maps) if return_layers else fused
        return self._fuse_while_forwarding(images, self.fusion)

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
