"""Shared machinery of FEM and MLFEM: per-layer FEM maps computed inside forward hooks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from mlfem.explainers.base import Explainer
from mlfem.fem import fem_saliency
from mlfem.hooks import forward_hooks
from mlfem.layers import AUTO_RECTIFIED, LayerSpec, fixed_batch_size, resolve_layers
from mlfem.normalize import minmax_normalize_, resize_maps

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
        *,
        rectify: bool = False,
    ) -> None:
        super().__init__(model)
        k = float(k)
        if not torch.isfinite(torch.tensor(k)):
            raise ValueError(f"k must be a finite number, got {k}")
        self.k = k
        #: Whether every layer's output is clamped at 0 before FEM (``rectify=True`` or
        #: ``layers="auto-rectified"``); see :func:`mlfem.layers.resolve_layers`.
        self.rectify = bool(rectify) or (isinstance(layers, str) and layers.strip() == AUTO_RECTIFIED)
        self.layers: list[LayerSpec] = resolve_layers(model, layers, probe_size, rectify=self.rectify)

    @property
    def layer_names(self) -> list[str]:
        """Names of the modules read, in the order their maps are stacked."""
        return [spec.name for spec in self.layers]

    def layer_maps(self, images: Tensor) -> LayerMaps:
        """Run the model once on ``images`` (B, C, H, W) and return every layer's FEM map.

        The maps are float32 (float64 for float64 images), on the images' device.
        """
        stored: list[Tensor] = []
        logits = self.forward_layer_maps(images, lambda index, layer_map: stored.append(layer_map))
        with torch.inference_mode():
            maps = torch.stack(stored, dim=1).to(images.device)
        # Cloning outside inference mode returns ordinary tensors that callers may
        # modify in place or feed to autograd code.
        return LayerMaps(maps.clone(), logits)

    def forward_layer_maps(self, images: Tensor, deliver: Callable[[int, Tensor], None]) -> Any:
        """Run the model once, calling ``deliver(index, map)`` for each layer in layer order.

        Each map is (B, H, W): the layer's FEM map upsampled to the input size and min-max
        normalised, on the model's device. Returns the model's output, as an ordinary
        (non-inference) tensor.
        """
        size = (images.shape[-2], images.shape[-1])

        def normalise(index: int, raw: Tensor) -> None:
            # The resized map is a fresh tensor (or the raw map itself): normalise in place.
            deliver(index, minmax_normalize_(resize_maps(raw, size)))

        return self.forward_raw_maps(images, normalise)

    def forward_raw_maps(self, images: Tensor, deliver: Callable[[int, Tensor], None]) -> Any:
        """Run the model once, calling ``deliver(index, raw)`` for each layer in layer order.

        ``raw`` is the layer's FEM map (B, h, w) at the layer's own resolution, neither
        resized nor normalised, float32 (float64 for float64 images), on the model's
        device, and owned by the callee. It is computed inside the layer's forward hook
        and delivered there, or as soon as the layers before it in ``self.layers`` are
        delivered when the forward order differs. Returns the model's output, as an
        ordinary (non-inference) tensor.

        A model that accepts only one batch size (a ``torch.export`` program exported
        with static shapes) is run on zero-padded batches of that size instead; FEM is
        computed per image, so the padding changes nothing.
        """
        self.check_images(images)
        fixed = fixed_batch_size(self.model)
        if fixed is not None and images.shape[0] != fixed:
            return self._forward_in_fixed_batches(images, deliver, fixed)
        return self._forward_once(images, deliver)

    def _forward_in_fixed_batches(
        self, images: Tensor, deliver: Callable[[int, Tensor], None], fixed: int
    ) -> Any:
        count = images.shape[0]
        parts: list[list[Tensor]] = [[] for _ in self.layers]
        outputs = []
        for start in range(0, count, fixed):
            chunk = images[start : start + fixed]
            used = chunk.shape[0]
            if used < fixed:
                chunk = torch.cat([chunk, chunk.new_zeros(fixed - used, *chunk.shape[1:])])
            output = self._forward_once(chunk, lambda index, raw: parts[index].append(raw[:used]))
            if not isinstance(output, Tensor):
                raise TypeError(
                    f"{type(self.model).__name__} accepts only batches of {fixed} and returns "
                    f"{type(output).__name__}, which mlfem cannot split back; pass {fixed} images at a time"
                )
            outputs.append(output[:used])
        for index, layer_parts in enumerate(parts):
            deliver(index, torch.cat(layer_parts))
        return torch.cat(outputs)

    def _forward_once(self, images: Tensor, deliver: Callable[[int, Tensor], None]) -> Any:
        out_dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
        pending: dict[int, Tensor] = {}
        next_index = [0]
        seen = [False] * len(self.layers)

        def on_map(index: int, layer_map: Tensor) -> None:
            pending[index] = layer_map
            while next_index[0] in pending:
                deliver(next_index[0], pending.pop(next_index[0]))
                next_index[0] += 1

        with torch.inference_mode():
            inputs = images.to(self.model_device)
            callbacks = {
                spec.name: self._layer_callback(index, spec, out_dtype, seen, on_map)
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
        return logits.clone() if isinstance(logits, Tensor) else logits

    def _layer_callback(self, index, spec, out_dtype, seen, on_map):
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
            seen[index] = True
            activations = output.clamp(min=0) if spec.relu else output
            on_map(index, fem_saliency(activations, self.k).to(out_dtype))

        return on_output
