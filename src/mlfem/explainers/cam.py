"""Gradient-weighted class activation maps: Grad-CAM, Grad-CAM++ and LayerCAM.

All three read the activations ``A`` (B, C, h, w) of one or more blocks and the
gradients ``G = dy_c / dA`` of the target class's logit ``y_c`` (before softmax),
obtained in one forward pass and one backward pass that stops at the explained
layers (autograd starts there, see :func:`~mlfem.explainers._gradient.capture_outputs`,
so on the last block the cost is close to a forward pass in time and memory):

* Grad-CAM (Selvaraju et al. 2017): ``w_c = mean_hw G_c``, map ``ReLU(sum_c w_c A_c)``;
* Grad-CAM++ (Chattopadhay et al. 2018): ``w_c = sum_hw alpha_c * ReLU(G_c)`` with
  ``alpha = G^2 / (2 G^2 + sum_hw(A_c) G^3)`` (the paper's closed form for an
  exponential of the score, where higher derivatives are powers of the first; 0
  where ``G = 0``), map ``ReLU(sum_c w_c A_c)``;
* LayerCAM (Jiang et al. 2021): element-wise weights, map ``ReLU(sum_c ReLU(G_c) * A_c)``.

Each map is upsampled to the input size (bilinear, ``align_corners=False``) and
min-max normalised to [0, 1].

Clips (B, C, T, H, W) through a 3-D CNN: the activations are (B, C, t, h, w), the
sums and means above run over (t, h, w) (Grad-CAM's weight of a channel is its gradient
averaged over the whole clip: one weight per channel, not one per frame), and the map is
upsampled trilinearly to the clip's (T, H, W) and min-max normalised over the whole clip
(per clip, not per frame, as MLFEM's clip maps), giving (B, T, H, W). A model in eval mode treats images independently,
so the gradients of the *summed* target logits give every image its own gradient
in one backward pass (batch-norm in training mode would break this; the base
class warns).

Fusion in :class:`MultiLayerCAM` (``layercam-multi``): LayerCAM's paper combines
the maps of several layers after rescaling each normalised map with
``tanh(gamma * M)`` (its Eq. 9, gamma = 2, which lifts the weak values of shallow
layers), and torchcam fuses the rescaled maps with an element-wise maximum. We do
the same: per layer, upsample, min-max normalise, ``tanh(2 M)``, then the
element-wise maximum over layers and a final min-max. ``fusion="mean"`` (the
average of the rescaled maps) and ``gamma=None`` (no rescaling) are options.
Because tanh is monotonic, with ``max`` fusion the rescaling only changes the
contrast of the fused map, not which layer wins at a pixel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from mlfem.explainers._gradient import GradientExplainer, capture_outputs
from mlfem.explainers.registry import register_explainer
from mlfem.extractor import check_images
from mlfem.features import ConvFeatureMap, adapter_for, observe_input
from mlfem.layers import LayerSpec, find_layers, resolve_layers
from mlfem.transformers import gradient_layer, is_transformer
from mlfem.normalize import minmax_normalize, resize_maps

__all__ = ["GradCAM", "GradCAMPlusPlus", "LayerCAM", "MultiLayerCAM"]


class _CAMExplainer(GradientExplainer):
    """Shared machinery: record activations, back-propagate the target logit, weight.

    Args:
        model: a CNN classifier or vision transformer returning logits (B, K), in eval
            mode; a transformer's tokens are read on its patch grid
            (:class:`mlfem.features.TokenFeatureMap`, activations and gradients alike).
        layers: module names to read; ``None`` picks the last block found by
            :func:`mlfem.layers.find_layers`.
        max_batch_size: explain at most this many images per forward/backward pass.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: str | Sequence[str] | None = None,
        max_batch_size: int | None = None,
        probe_size: tuple[int, int] = (224, 224),
    ) -> None:
        super().__init__(model, max_batch_size=max_batch_size)
        if layers is None:
            # A transformer's default is the block its class token's gradient reaches.
            self.layers: list[LayerSpec] = (
                [LayerSpec(gradient_layer(model))] if is_transformer(model)
                else [find_layers(model, probe_size)[-1]]
            )
        else:
            self.layers = resolve_layers(model, layers, probe_size)
        self.adapter = adapter_for(model)

    @staticmethod
    def check_images(images: Tensor, argument: str = "images") -> None:
        """As :meth:`Explainer.check_images`, clips (B, C, T, H, W) of a 3-D CNN included."""
        check_images(images, argument, clips=True)

    @property
    def layer_names(self) -> list[str]:
        """Names of the modules whose outputs are explained, in the order given."""
        return [spec.name for spec in self.layers]

    def layer_cams(self, inputs: Tensor, targets: Tensor | None) -> Tensor:
        """Per-layer maps (B, L, H, W), each upsampled to the input size and normalised."""
        names = self.layer_names
        # Autograd starts at the first explained layer (see capture_outputs): the
        # backward pass stops there, and memory stays close to a forward pass's when
        # the layers are deep. It also works on frozen models (requires_grad=False).
        with torch.no_grad(), capture_outputs(self.model, names, start_graph=True) as captured:
            logits = self._model_forward(inputs, targets)
        missing = [name for name in names if name not in captured]
        if missing:
            raise RuntimeError(
                f"layer(s) {', '.join(missing)} did not run during the forward pass of "
                f"{type(self.model).__name__}; choose modules that the model's forward calls"
            )
        for name in names:
            # A CNN's activations have the input's layout: (B, C, H, W) for images,
            # (B, C, T, H, W) for clips.
            if isinstance(self.adapter, ConvFeatureMap) and captured[name].ndim != inputs.ndim:
                expected = "4-D (B, C, H, W)" if inputs.ndim == 4 else "5-D (B, C, T, H, W) for clips"
                raise ValueError(
                    f"layer {name!r} produced a tensor of shape {tuple(captured[name].shape)}; "
                    f"CAM methods need a {expected} feature map"
                )
        if targets is None:
            targets = logits.detach().argmax(dim=1)
        score = logits.gather(1, targets.view(-1, 1)).sum()
        activations = [captured[name] for name in names]
        gradients = torch.autograd.grad(score, activations)
        # (H, W) of images, (T, H, W) of clips: trilinear upsampling and one min-max
        # normalisation per clip for the latter.
        size = tuple(inputs.shape[2:])
        observe_input(self.adapter, inputs)
        maps = []
        for spec, activation, gradient in zip(self.layers, activations, gradients):
            # spec.relu: the network rectifies this output functionally before using it.
            activation = self.adapter(activation.detach(), spec.name, spec.relu)
            gradient = self.adapter(gradient, spec.name, False)
            dtype = torch.promote_types(activation.dtype, torch.float32)
            raw = self._cam(activation.to(dtype), gradient.detach().to(dtype))
            maps.append(_normalized(resize_maps(raw, size)))
        return torch.stack(maps, dim=1)

    def _explain_batch(self, inputs: Tensor, targets: Tensor | None) -> Tensor:
        return self.layer_cams(inputs, targets)[:, 0]

    @staticmethod
    def _cam(activation: Tensor, gradient: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def _positions(tensor: Tensor) -> tuple[int, ...]:
    """The dimensions of a (B, C, ...) activation that hold positions: (2, 3) for (h, w) maps,
    (2, 3, 4) for (t, h, w) clip maps."""
    return tuple(range(2, tensor.ndim))


def _normalized(maps: Tensor) -> Tensor:
    """Min-max normalise each map (B, H, W) or each clip map (B, T, H, W) as a whole."""
    return minmax_normalize(maps) if maps.ndim == 3 else minmax_normalize(maps, dims=maps.ndim - 1)


@register_explainer
class GradCAM(_CAMExplainer):
    """Grad-CAM (Selvaraju et al., ICCV 2017) on one layer.

    Weights are the spatial means of the gradients of the target logit with respect
    to the layer's output; the map is ``ReLU(sum_c w_c A_c)``, bilinearly upsampled
    and min-max normalised. Cost: one forward pass plus a backward pass from the
    logits to the layer only (about 1.05 forward passes on a ResNet-50's last block).

    Args:
        model: a CNN classifier returning logits (B, K), in eval mode.
        layer: module name; by default the last block of :func:`mlfem.layers.find_layers`
            (``layer4.2`` for a ResNet-50), the paper's "last convolutional layer"; on a
            transformer with a class token the last block's input
            (:func:`mlfem.transformers.gradient_layer`).
        max_batch_size: explain at most this many images per pass.
    """

    name = "gradcam"
    description = (
        "Grad-CAM on the last block: activations weighted by pooled gradients (Selvaraju et al. 2017)"
    )

    def __init__(self, model: nn.Module, layer: str | None = None, max_batch_size: int | None = None) -> None:
        super().__init__(model, None if layer is None else [layer], max_batch_size=max_batch_size)

    @staticmethod
    def _cam(activation: Tensor, gradient: Tensor) -> Tensor:
        weights = gradient.mean(dim=_positions(gradient), keepdim=True)
        return (weights * activation).sum(dim=1).clamp(min=0)


@register_explainer
class GradCAMPlusPlus(_CAMExplainer):
    """Grad-CAM++ (Chattopadhay et al., WACV 2018) on one layer.

    Channel weights ``w_c = sum_hw alpha * ReLU(G_c)`` with the closed-form
    ``alpha = G^2 / (2 G^2 + sum_hw(A_c) * G^3)``; otherwise as :class:`GradCAM`.
    """

    name = "gradcampp"
    description = (
        "Grad-CAM++ on the last block: higher-order gradient weights (Chattopadhay et al. 2018)"
    )

    def __init__(self, model: nn.Module, layer: str | None = None, max_batch_size: int | None = None) -> None:
        super().__init__(model, None if layer is None else [layer], max_batch_size=max_batch_size)

    @staticmethod
    def _cam(activation: Tensor, gradient: Tensor) -> Tensor:
        grad2 = gradient.square()
        grad3 = grad2 * gradient
        channel_sums = activation.sum(dim=_positions(activation), keepdim=True)
        denominator = 2 * grad2 + channel_sums * grad3
        safe = torch.where(denominator != 0, denominator, torch.ones_like(denominator))
        alpha = torch.where((gradient != 0) & (denominator != 0), grad2 / safe, torch.zeros_like(grad2))
        weights = (alpha * gradient.clamp(min=0)).sum(dim=_positions(gradient), keepdim=True)
        return (weights * activation).sum(dim=1).clamp(min=0)


@register_explainer
class LayerCAM(_CAMExplainer):
    """LayerCAM (Jiang et al., IEEE TIP 2021) on one layer.

    Every activation is weighted by its own positive gradient:
    ``ReLU(sum_c ReLU(G_c) * A_c)``, upsampled and min-max normalised.
    """

    name = "layercam"
    description = (
        "LayerCAM on the last block: element-wise positive-gradient weights (Jiang et al. 2021)"
    )

    def __init__(self, model: nn.Module, layer: str | None = None, max_batch_size: int | None = None) -> None:
        super().__init__(model, None if layer is None else [layer], max_batch_size=max_batch_size)

    @staticmethod
    def _cam(activation: Tensor, gradient: Tensor) -> Tensor:
        return (gradient.clamp(min=0) * activation).sum(dim=1).clamp(min=0)


@register_explainer
class MultiLayerCAM(LayerCAM):
    """LayerCAM on several layers, fused (``layercam-multi``).

    One forward and one backward pass give every layer's LayerCAM map; each is
    upsampled, min-max normalised, rescaled with ``tanh(gamma * M)`` and the maps are
    fused with an element-wise maximum (or mean), then min-max normalised.

    Args:
        model: a CNN classifier returning logits (B, K), in eval mode.
        layers: ``"auto"`` for every block of :func:`mlfem.layers.find_layers` (the
            16 bottlenecks of a ResNet-50, the layers MLFEM reads), or module names
            (a list or a comma-separated string) for a subset.
        fusion: ``"max"`` (element-wise maximum, as torchcam) or ``"mean"``.
        gamma: the tanh rescaling factor (LayerCAM's Eq. 9 uses 2); ``None`` disables it.
        max_batch_size: explain at most this many images per pass.
    """

    name = "layercam-multi"
    description = (
        "LayerCAM on every block, tanh-rescaled and fused by element-wise max (layers, fusion)"
    )

    def __init__(
        self,
        model: nn.Module,
        layers: str | Sequence[str] | None = "auto",
        fusion: Literal["max", "mean"] = "max",
        gamma: float | None = 2.0,
        max_batch_size: int | None = None,
    ) -> None:
        if fusion not in ("max", "mean"):
            raise ValueError(f"fusion must be 'max' or 'mean', got {fusion!r}")
        if gamma is not None and not (float(gamma) > 0 and float(gamma) < float("inf")):
            raise ValueError(f"gamma must be a positive finite number or None, got {gamma!r}")
        _CAMExplainer.__init__(self, model, layers if layers is not None else "auto", max_batch_size=max_batch_size)
        self.fusion = fusion
        self.gamma = None if gamma is None else float(gamma)

    def _explain_batch(self, inputs: Tensor, targets: Tensor | None) -> Tensor:
        maps = self.layer_cams(inputs, targets)
        if self.gamma is not None:
            maps = torch.tanh(self.gamma * maps)
        fused = maps.amax(dim=1) if self.fusion == "max" else maps.mean(dim=1)
        return _normalized(fused)
