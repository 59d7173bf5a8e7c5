"""Shared machinery of FEM and MLFEM: per-layer FEM maps computed inside forward hooks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from mlfem.explainers.base import Explainer
from mlfem.fem import fem_saliency
from mlfem.hooks import forward_hooks
from mlfem.layers import LayerSpec, resolve_layers
from mlfem.normalize import minmax_normalize, resize_maps

__all__ = ["LayerFEMExplainer", "LayerMaps"]


class LayerMaps(NamedTuple):
    """What one forward pass yields: the per-layer FEM maps and the model's output."""

    #: (B, L, H, W), each layer's FEM map upsampled to the input size and min-max normalised.
    maps: Tensor
    #: The model's own output for the batch (logits for a classifier).
    logits: Any


class LayerFEMExplainer(Explainer):
    """Computes normalised FEM maps for a list of layers in a single forward pass.

    FEM is evaluated inside each layer's forward hook, so an activation is reduced to
    one (B, H, W) map as soon as it is produced and is never kept alive for later:
    peak memory stays close to that of a plain forward pass.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: str | Sequence[str] | None,
        k: float = 2.0,
        probe_size: tuple[int, int] = (224, 224),
    ) -> None:
        super().__init__(model)
        k = float(k)
        if not torch.isfinite(torch.tensor(k)):
            raise ValueError(f"k must be a finite number, got {k}")
        self.k = k
        self.layers: list[LayerSpec] = resolve_layers(model, layers, probe_size)

    @property
    def layer_names(self) -> list[str]:
        """Names of the modules read, in the order their maps are stacked."""
        return [spec.name for spec in self.layers]

    def layer_maps(self, images: Tensor) -> LayerMaps:
        """Run the model once on ``images`` (B, C, H, W) and return every layer's FEM map.

        The maps are float32 (float64 for float64 images), on the images' device.
        """
        self.check_images(images)
        input_device = images.device
        model_device = self.model_device
        batch, _, height, width = images.shape
        out_dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
        with torch.inference_mode():
            inputs = images.to(model_device)
            maps = torch.empty(batch, len(self.layers), height, width, dtype=out_dtype, device=model_device)
            seen = [False] * len(self.layers)
            callbacks = {
                spec.name: self._layer_callback(index, spec, maps, seen)
                for index, spec in enumerate(self.layers)
            }
            with forward_hooks(self.model, callbacks):
                logits = self.model(inputs)
            missing = [spec.name for spec, ran in zip(self.layers, seen) if not ran]
            if missing:
                raise RuntimeError(
                    f"layer(s) {', '.join(missing)} did not run during the forward pass of "
                    f"{type(self.model).__name__}; choose modules that the model's forward calls"
                )
        # Cloning outside inference mode returns ordinary tensors that callers may
        # modify in place or feed to autograd code.
        maps = maps.to(input_device).clone()
        if isinstance(logits, Tensor):
            logits = logits.clone()
        return LayerMaps(maps, logits)

    def _layer_callback(self, index: int, spec: LayerSpec, maps: Tensor, seen: list[bool]):
        size = tuple(maps.shape[-2:])

        def on_output(output: Tensor) -> None:
            if seen[index]:
                raise RuntimeError(
                    f"layer {spec.name!r} ran more than once in one forward pass, so it has no "
                    "single output to explain; choose the block that contains it instead"
                )
            if output.ndim != 4:
                raise ValueError(
                    f"layer {spec.name!r} produced a tensor of shape {tuple(output.shape)}; "
                    "FEM needs a 4-D (B, C, H, W) feature map"
                )
            activations = output.clamp(min=0) if spec.relu else output
            raw = fem_saliency(activations, self.k)
            maps[:, index] = minmax_normalize(resize_maps(raw, size)).to(maps.dtype)
            seen[index] = True

        return on_output
