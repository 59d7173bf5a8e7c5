"""The base of the pixel-attribution explainers (:mod:`.attribution`, :mod:`.lime`) and the
argument checks they share."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from mlfem.explainers._attribution_map import Reduction, attribution_to_map, check_map_options
from mlfem.explainers._gradient import TargetExplainer, check_logits

__all__ = ["PixelAttributionExplainer"]


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _positive_number(value: Any, name: str) -> float:
    number = float(value)
    if not (number > 0 and math.isfinite(number)):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return number


def _nonnegative_number(value: Any, name: str) -> float:
    number = float(value)
    if not (number >= 0 and math.isfinite(number)):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


def _check_seed(seed: Any) -> int | None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed must be an int or None, got {seed!r}")
    return seed


class _CheckedLogits(nn.Module):
    """Wraps the model for captum: checks the output is (B, K) logits and the targets
    are valid classes, so a wrong target gives a clear error rather than captum's
    ``IndexError``. Holding the model as a child does not modify it, and captum's
    module hooks (Guided Backprop, DeconvNet) still reach its ReLU modules."""

    def __init__(self, model: nn.Module, targets: Tensor) -> None:
        super().__init__()
        self.model = model
        self._targets = targets

    def forward(self, inputs: Tensor) -> Tensor:
        return check_logits(self.model(inputs), self._targets)


def _broadcast_baseline(baseline: float | Tensor, inputs: Tensor) -> float | Tensor:
    if isinstance(baseline, Tensor):
        try:
            return torch.broadcast_to(baseline.to(inputs.device, inputs.dtype), inputs.shape).contiguous()
        except RuntimeError as error:
            raise ValueError(
                f"baseline of shape {tuple(baseline.shape)} does not broadcast to the images' "
                f"shape {tuple(inputs.shape)}; use a float, a (C, 1, 1) colour or a (C, H, W) image"
            ) from error
    return float(baseline)


def _check_baseline(baseline: Any) -> float | Tensor:
    if isinstance(baseline, Tensor):
        return baseline.detach()
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool) and math.isfinite(baseline):
        return float(baseline)
    raise TypeError(f"baseline must be a finite float or a tensor, got {baseline!r}")


class PixelAttributionExplainer(TargetExplainer):
    """Base of the captum pixel-attribution explainers.

    Subclasses implement :meth:`attribute`, returning attributions (B, C, H, W) for
    images on the model's device and their (B,) targets.

    Args:
        model: a classifier returning logits (B, K), in eval mode.
        reduction: how colour channels become one value per pixel
            (``"abs-max"``, ``"abs-sum"``, ``"l2"``, ``"positive-sum"``).
        smooth_sigma: optional Gaussian blur of the map, in pixels (0 = none).
        max_batch_size: explain at most this many images per internal call.
    """

    def __init__(
        self,
        model: nn.Module,
        reduction: Reduction = "abs-max",
        smooth_sigma: float = 0.0,
        max_batch_size: int | None = None,
    ) -> None:
        super().__init__(model, max_batch_size=max_batch_size)
        self.reduction, self.smooth_sigma = check_map_options(reduction, smooth_sigma)

    def attribute(self, inputs: Tensor, targets: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Signed attributions (B, C, H, W) of the targets' logits to the input pixels."""
        raise NotImplementedError

    def _logits_of(self, targets: Tensor) -> nn.Module:
        """The model as captum sees it: checked logits for ``targets``."""
        return _CheckedLogits(self.model, targets)

    def _baseline_like(self, inputs: Tensor) -> float | Tensor:
        """The explainer's ``baseline`` broadcast to ``inputs`` (a float stays a float)."""
        return _broadcast_baseline(self.baseline, inputs)

    def _explain_batch(self, inputs: Tensor, targets: Tensor | None) -> Tensor:
        targets = self._targets_or_top1(inputs, targets)
        attributions = self.attribute(inputs, targets)
        return attribution_to_map(attributions, self.reduction, self.smooth_sigma)
