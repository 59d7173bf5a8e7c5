"""What FEM and MLFEM share: an explainer built on a :class:`~mlfem.extractor.LayerMapExtractor`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from mlfem.explainers.base import Explainer, Explanation
from mlfem.extractor import LayerMapExtractor, LayerMaps
from mlfem.features import FeatureAdapter
from mlfem.layers import LayerSpec

__all__ = ["LayerFEMExplainer", "LayerMaps"]


class LayerFEMExplainer(Explainer):
    """An explainer whose maps come from per-layer FEM maps of one forward pass.

    The extractor (``self.extractor``) resolves the layers and computes their maps; a
    subclass says how the per-layer maps become its map (:meth:`fuse_layer_maps`). The
    extractor's attributes and methods are available on the explainer too.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: str | Sequence[str] | None,
        k: float = 2.0,
        probe_size: tuple[int, int] = (224, 224),
        *,
        rectify: bool = False,
        per_frame: bool = False,
        adapter: FeatureAdapter | None = None,
    ) -> None:
        super().__init__(model)
        self.extractor = LayerMapExtractor(
            model, layers, k, probe_size, rectify=rectify, per_frame=per_frame, adapter=adapter
        )

    # The extractor's view, kept on the explainer (public API since the first version).
    @property
    def layers(self) -> list[LayerSpec]:
        return self.extractor.layers

    @property
    def layer_names(self) -> list[str]:
        """Names of the modules read, in the order their maps are stacked."""
        return self.extractor.layer_names

    @property
    def k(self) -> float:
        return self.extractor.k

    @property
    def rectify(self) -> bool:
        return self.extractor.rectify

    @property
    def per_frame(self) -> bool:
        """For clips: FEM statistics per frame rather than over the whole clip."""
        return self.extractor.per_frame

    def layer_maps(self, images: Tensor) -> LayerMaps:
        """Every layer's FEM map (B, L, H, W) ((B, L, T, H, W) for clips) and the model's
        output, from one forward pass."""
        return self.extractor.layer_maps(images)

    def forward_layer_maps(self, images: Tensor, deliver: Callable[[int, Tensor], None]) -> Any:
        """See :meth:`mlfem.extractor.LayerMapExtractor.forward_layer_maps`."""
        return self.extractor.forward_layer_maps(images, deliver)

    def forward_raw_maps(self, images: Tensor, deliver: Callable[[int, Tensor], None]) -> Any:
        """See :meth:`mlfem.extractor.LayerMapExtractor.forward_raw_maps`."""
        return self.extractor.forward_raw_maps(images, deliver)

    def fuse_layer_maps(self, layer_maps: Tensor) -> Tensor:
        """This explainer's maps (B, H, W) from its per-layer maps (B, L, H, W)."""
        raise NotImplementedError

    def layer_map_source(self) -> LayerMapExtractor:
        return self.extractor

    def explain_layers(self, images: Tensor, targets: Tensor | None = None) -> Explanation:
        result = self.layer_maps(images)
        return Explanation(self.fuse_layer_maps(result.maps), result.maps, result.logits)
