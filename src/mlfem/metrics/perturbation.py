"""Deletion and insertion (Petsiuk, Das and Saenko 2018, "RISE"): does the map rank the pixels
the network relies on first?

**Deletion** replaces the image's pixels, most salient first, by a baseline in ``steps`` equal
steps and follows the probability of the class the network predicted on the intact image; a
faithful map makes it fall fast (low area under the curve is better). **Insertion** starts
from the baseline and reveals the pixels in the same order; the probability should rise fast
(high area is better). The area is the trapezoid rule over the fraction of pixels changed,
in [0, 1].

RISE's defaults are kept: deletion replaces pixels by zeros of the model's input (after
normalisation, i.e. the normalisation's mean colour), insertion starts from the image blurred
by a Gaussian of size 11 and sigma 5, and both use 224 steps (RISE removed 224 pixels per step
of a 224 x 224 input). ``baseline`` may be ``"zeros"``, ``"blur"`` or ``"mean"`` (each
channel's mean over the image). Pixels are ranked by the map at the model's input resolution;
equal values keep the order of their index (a stable sort), so curves are deterministic.

Cost: ``steps + 1`` forward passes per image and map. The perturbed copies of one image run
in chunks of ``batch_size`` on the model's device, one image at a time, so values never depend
on which other images share the batch.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlfem.metrics.probe import ModelProbe
from mlfem.metrics.registry import register_metric

__all__ = ["BASELINES", "baseline_image", "curve_auc", "deletion", "deletion_curve", "insertion", "insertion_curve"]

#: The baselines pixels are replaced by (deletion) or revealed from (insertion).
BASELINES = ("zeros", "blur", "mean")
#: RISE's number of steps (224 pixels per step of a 224 x 224 input).
RISE_STEPS = 224
_BLUR_SIZE, _BLUR_SIGMA = 11, 5.0  # RISE's insertion substrate
_DEFAULT_BATCH = 64


def baseline_image(inputs: Tensor, baseline: str) -> Tensor:
    """The baseline of each model input (B, C, h, w): ``zeros``, ``blur`` (Gaussian, size 11,
    sigma 5, reflected borders) or ``mean`` (each channel's mean)."""
    if baseline == "zeros":
        return torch.zeros_like(inputs)
    if baseline == "mean":
        return inputs.mean(dim=(2, 3), keepdim=True).expand_as(inputs).clone()
    if baseline == "blur":
        radius = _BLUR_SIZE // 2
        offsets = torch.arange(_BLUR_SIZE, dtype=torch.float64) - radius
        kernel = torch.exp(-(offsets**2) / (2 * _BLUR_SIGMA**2))
        kernel = (kernel / kernel.sum()).to(inputs.dtype).to(inputs.device)
        channels = inputs.shape[1]
        x = F.pad(inputs, (radius, radius, radius, radius), mode="reflect")
        # Separable: a row pass then a column pass, each channel on its own.
        x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1).contiguous(), groups=channels)
        return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1).contiguous(), groups=channels)
    raise ValueError(f"baseline must be one of {', '.join(BASELINES)}, got {baseline!r}")


def _check(inputs: Tensor, maps: Tensor, steps: int, batch_size: int) -> None:
    if inputs.ndim != 4 or maps.ndim != 3 or maps.shape != (inputs.shape[0], *inputs.shape[2:]):
        raise ValueError(
            f"maps must be (B, h, w) at the inputs' resolution; got maps {tuple(maps.shape)} for "
            f"inputs {tuple(inputs.shape)}"
        )
    if int(steps) < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")


def _fractions(n_pixels: int, steps: int) -> tuple[Tensor, Tensor]:
    """Pixels changed at each of the ``steps + 1`` points, and their fraction of the image."""
    per_step = -(-n_pixels // steps)  # ceil: the last step may change fewer pixels
    counts = (torch.arange(steps + 1) * per_step).clamp(max=n_pixels)
    return counts, counts.double() / n_pixels


def _curve(
    scorer: ModelProbe, start: Tensor, finish: Tensor, maps: Tensor, targets: Tensor, steps: int,
    batch_size: int,
) -> Tensor:
    """(B, steps + 1) probability of ``targets`` while the pixels go from ``start`` to
    ``finish`` in the order of ``maps`` (most salient first)."""
    batch, _, height, width = start.shape
    n_pixels = height * width
    counts, _ = _fractions(n_pixels, steps)
    counts = counts.to(start.device)
    order = torch.sort(maps.reshape(batch, -1).float(), dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n_pixels, device=order.device).expand(batch, -1).contiguous())
    out = torch.empty(batch, steps + 1, dtype=torch.float64)
    for b in range(batch):
        for first in range(0, steps + 1, batch_size):
            chunk = counts[first : first + batch_size]
            changed = (rank[b][None] < chunk[:, None]).view(-1, 1, height, width)
            images = torch.where(changed, finish[b], start[b])
            target = targets[b].expand(chunk.numel())
            out[b, first : first + chunk.numel()] = scorer.scores(images, target).double().cpu()
    return out


def curve_auc(curve: Tensor, n_pixels: int) -> Tensor:
    """Trapezoid area under (B, steps + 1) curves over the fraction of pixels changed."""
    _, fractions = _fractions(n_pixels, curve.shape[-1] - 1)
    return torch.trapezoid(curve.double(), fractions.to(curve.device), dim=-1)


def _probe(model: nn.Module, inputs: Tensor, targets: Tensor | None, multi_label: bool) -> tuple[ModelProbe, Tensor]:
    if targets is None:
        with torch.inference_mode():
            targets = model(inputs).argmax(dim=1)
    targets = targets.to(inputs.device).long()
    return ModelProbe(model, inputs, targets, [0] * inputs.shape[0], multi_label), targets


def deletion_curve(
    model: nn.Module, inputs: Tensor, maps: Tensor, targets: Tensor | None = None, *,
    steps: int = RISE_STEPS, baseline: str = "zeros", batch_size: int = _DEFAULT_BATCH,
    multi_label: bool = False,
) -> Tensor:
    """(B, steps + 1) class probability as the most salient pixels are replaced by ``baseline``.

    ``inputs`` (B, C, h, w) are model inputs on the model's device, ``maps`` (B, h, w) rank
    their pixels, ``targets`` (B,) the classes (default: the model's top-1 on ``inputs``).
    """
    _check(inputs, maps, steps, batch_size)
    probe, targets = _probe(model, inputs, targets, multi_label)
    return _curve(probe, inputs, baseline_image(inputs, baseline), maps.to(inputs.device), targets, int(steps), int(batch_size))


def insertion_curve(
    model: nn.Module, inputs: Tensor, maps: Tensor, targets: Tensor | None = None, *,
    steps: int = RISE_STEPS, baseline: str = "blur", batch_size: int = _DEFAULT_BATCH,
    multi_label: bool = False,
) -> Tensor:
    """(B, steps + 1) class probability as the most salient pixels are revealed on ``baseline``
    (arguments as :func:`deletion_curve`)."""
    _check(inputs, maps, steps, batch_size)
    probe, targets = _probe(model, inputs, targets, multi_label)
    return _curve(probe, baseline_image(inputs, baseline), inputs, maps.to(inputs.device), targets, int(steps), int(batch_size))


def deletion(model: nn.Module, inputs: Tensor, maps: Tensor, targets: Tensor | None = None, **options) -> Tensor:
    """(B,) area under the deletion curve (:func:`deletion_curve`; lower is better)."""
    curve = deletion_curve(model, inputs, maps, targets, **options)
    return curve_auc(curve, maps.shape[-2] * maps.shape[-1])


def insertion(model: nn.Module, inputs: Tensor, maps: Tensor, targets: Tensor | None = None, **options) -> Tensor:
    """(B,) area under the insertion curve (:func:`insertion_curve`; higher is better)."""
    curve = insertion_curve(model, inputs, maps, targets, **options)
    return curve_auc(curve, maps.shape[-2] * maps.shape[-1])


_COST = "steps + 1 (225 by default)"


@register_metric("insertion", needs="model", higher_is_better=True, cost=_COST, reveal=True,
                 summary="area under the insertion curve (RISE): class probability as salient pixels come")
@register_metric("deletion", needs="model", higher_is_better=False, cost=_COST, reveal=False,
                 summary="area under the deletion curve (RISE): class probability as salient pixels go")
def area_metric(
    maps: Mapping[str, Tensor], probe: ModelProbe, *, reveal: bool, steps: int = RISE_STEPS,
    baseline: str | None = None, batch_size: int = _DEFAULT_BATCH,
) -> dict[str, Tensor]:
    """The ``deletion`` (``reveal=False``) and ``insertion`` metrics of the evaluation: the area
    of every method's maps (baseline by default ``zeros`` for deletion, ``blur`` for
    insertion), the baseline image computed once for all of them."""
    base = baseline_image(probe.inputs, baseline or ("blur" if reveal else "zeros"))
    start, finish = (base, probe.inputs) if reveal else (probe.inputs, base)
    out = {}
    for name, m in maps.items():
        _check(probe.inputs, m, steps, batch_size)
        curve = _curve(probe, start, finish, m.to(probe.inputs.device), probe.targets, int(steps), int(batch_size))
        out[name] = curve_auc(curve, m.shape[-2] * m.shape[-1])
    return out
