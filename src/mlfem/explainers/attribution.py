"""Pixel-attribution baselines computed with captum.

Integrated Gradients, SmoothGrad, Guided Backprop, DeconvNet, occlusion and LIME
give one signed value per input pixel and colour channel. They are computed by
captum (imported lazily, on first use; LIME in :mod:`.lime`) and turned into saliency maps by
:func:`mlfem.explainers._attribution_map.attribution_to_map` — by default
``max_c |a_c|``, no smoothing, min-max to [0, 1]; ``reduction`` and
``smooth_sigma`` change that for every method here.

Costs, in forward(+backward) passes per image, are set by each method's options:
Integrated Gradients ``steps`` passes with backward; SmoothGrad ``samples`` passes
with backward; occlusion one forward per window position,
``ceil((H - window) / stride + 1) * ceil((W - window) / stride + 1)``, plus one;
LIME ``samples`` forwards. ``internal_batch_size`` bounds how many images go
through the model at once (memory grows linearly with it; time barely depends
on it once it is more than a few).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from mlfem.explainers._attribution_map import Reduction
from mlfem.explainers._gradient import seeded
from mlfem.explainers._pixel import (
    PixelAttributionExplainer, _check_baseline, _check_seed, _nonnegative_number, _positive_int,
)
from mlfem.explainers.lime import Lime  # LIME has its own module; still importable from here
from mlfem.explainers.registry import register_explainer

__all__ = [
    "Deconvolution",
    "GuidedBackprop",
    "IntegratedGradients",
    "Lime",
    "Occlusion",
    "PixelAttributionExplainer",
    "SmoothGrad",
]


@contextlib.contextmanager
def _quiet_relu_hook_warning() -> Iterator[None]:
    """Silence captum's per-call notice that it hooks ReLU modules (it removes the
    hooks itself, and the tests check that it does)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU activations")
        yield


@register_explainer
class IntegratedGradients(PixelAttributionExplainer):
    """Integrated Gradients (Sundararajan et al., ICML 2017), via captum.

    Attributions ``(x - x') * integral_0^1 dy_c/dx (x' + t (x - x')) dt``, the
    integral approximated with ``steps`` Gauss-Legendre points (captum's default
    rule, more accurate per step than a Riemann sum).

    Args:
        steps: integration points; cost is ``steps`` forward+backward passes per
            image. 32 keeps the completeness error small on ResNets; 8-16 halves the
            cost for rougher maps.
        baseline: the reference image ``x'`` in the model's input space: a float
            (0 = the dataset mean for ImageNet-normalised inputs) or a tensor
            broadcastable to the images.
        internal_batch_size: images (steps x inputs) per forward/backward pass.
    """

    name = "ig"
    description = (
        "Integrated Gradients from a zero baseline, via captum (steps, internal_batch_size)"
    )
    needs_gradients = True

    def __init__(
        self, model: nn.Module, steps: int = 32, baseline: float | Tensor = 0.0,
        internal_batch_size: int = 16, reduction: Reduction = "abs-max", smooth_sigma: float = 0.0,
        max_batch_size: int | None = None,
    ) -> None:
        super().__init__(model, reduction, smooth_sigma, max_batch_size)
        self.steps = _positive_int(steps, "steps")
        self.baseline = _check_baseline(baseline)
        self.internal_batch_size = _positive_int(internal_batch_size, "internal_batch_size")

    def attribute(self, inputs: Tensor, targets: Tensor) -> Tensor:
        from captum.attr import IntegratedGradients as CaptumIG

        method = CaptumIG(self._logits_of(targets))
        return method.attribute(
            inputs,
            baselines=self._baseline_like(inputs),
            target=targets,
            n_steps=self.steps,
            internal_batch_size=self.internal_batch_size,
        )


@register_explainer
class SmoothGrad(PixelAttributionExplainer):
    """SmoothGrad (Smilkov et al. 2017): input gradients averaged over noisy copies.

    Computed with captum's ``NoiseTunnel(Saliency)`` on signed gradients; the map is
    then the maximum over colour channels of the absolute averaged gradient.

    Args:
        samples: noisy copies per image (the paper uses ~50; 16 gives most of the
            smoothing at a third of the cost). Cost: ``samples`` forward+backward passes.
        noise_level: noise standard deviation as a fraction of each image's value
            range (max - min); the paper recommends 10-20 %.
        seed: seeds the noise (the caller's RNG state is restored); ``None`` uses the
            global generator.
        internal_batch_size: noisy copies per forward/backward pass.
    """

    name = "smoothgrad"
    description = (
        "SmoothGrad: input gradients averaged over noisy copies, via captum (samples, noise_level)"
    )
    needs_gradients = True

    def __init__(
        self, model: nn.Module, samples: int = 16, noise_level: float = 0.15, seed: int | None = 0,
        internal_batch_size: int = 16, reduction: Reduction = "abs-max", smooth_sigma: float = 0.0,
        max_batch_size: int | None = None,
    ) -> None:
        super().__init__(model, reduction, smooth_sigma, max_batch_size)
        self.samples = _positive_int(samples, "samples")
        # As a float first: the error message shows it so (e.g. "got -1.0").
        self.noise_level = _nonnegative_number(float(noise_level), "noise_level")
        self.seed = _check_seed(seed)
        self.internal_batch_size = _positive_int(internal_batch_size, "internal_batch_size")

    def attribute(self, inputs: Tensor, targets: Tensor) -> Tensor:
        from captum.attr import NoiseTunnel, Saliency

        tunnel = NoiseTunnel(Saliency(self._logits_of(targets)))
        results = []
        with seeded(self.seed, inputs.device):
            # One image at a time: captum takes one noise level per input tensor, and
            # the level is relative to each image's own range.
            for index in range(inputs.shape[0]):
                image = inputs[index : index + 1]
                stdev = self.noise_level * float(image.max() - image.min())
                results.append(
                    tunnel.attribute(
                        image,
                        nt_type="smoothgrad",
                        nt_samples=self.samples,
                        nt_samples_batch_size=min(self.samples, self.internal_batch_size),
                        stdevs=stdev,
                        target=targets[index : index + 1],
                        abs=False,
                    )
                )
        return torch.cat(results)


@register_explainer
class GuidedBackprop(PixelAttributionExplainer):
    """Guided Backpropagation (Springenberg et al. 2015), via captum.

    The gradient of the target logit where every ReLU module back-propagates only
    positive gradients at positive inputs. Cost: one forward and one backward pass.
    Only ``nn.ReLU`` *modules* are modified: ReLUs applied functionally inside a
    custom ``forward`` keep their ordinary gradient.
    """

    name = "guided-backprop"
    description = (
        "Guided Backpropagation: gradients through ReLUs gated forward and backward, via captum"
    )
    needs_gradients = True

    def attribute(self, inputs: Tensor, targets: Tensor) -> Tensor:
        from captum.attr import GuidedBackprop as CaptumGuidedBackprop

        inputs.requires_grad_(True)
        with _quiet_relu_hook_warning():
            return CaptumGuidedBackprop(self._logits_of(targets)).attribute(inputs, target=targets)


@register_explainer
class Deconvolution(PixelAttributionExplainer):
    """DeconvNet (Zeiler & Fergus, ECCV 2014), via captum's ``Deconvolution``.

    The target logit is back-projected with transposed convolutions where every
    ReLU module passes ``ReLU(gradient)`` regardless of its forward input (the
    "deconvnet" rule). Cost: one forward and one backward pass. Like Guided
    Backprop, only ``nn.ReLU`` modules are affected.
    """

    name = "deconvnet"
    description = "DeconvNet (Zeiler & Fergus 2014): ReLUs rectify the backward signal, via captum"
    needs_gradients = True

    def attribute(self, inputs: Tensor, targets: Tensor) -> Tensor:
        from captum.attr import Deconvolution as CaptumDeconvolution

        inputs.requires_grad_(True)
        with _quiet_relu_hook_warning():
            return CaptumDeconvolution(self._logits_of(targets)).attribute(inputs, target=targets)


@register_explainer
class Occlusion(PixelAttributionExplainer):
    """Occlusion sensitivity (Zeiler & Fergus 2014), via captum.

    A ``window`` x ``window`` patch (all channels) slides with ``stride``; each pixel's
    attribution is the mean drop of the target logit over the patches covering it,
    when they are replaced by ``baseline``. Gradient-free: it also runs under
    ``torch.inference_mode()``.

    Args:
        window: patch side in pixels (clipped to the image size). Smaller windows
            localise more finely but change the logit less.
        stride: step between patches (clipped to ``window``). Cost is one forward
            pass per position: about ``(H / stride) * (W / stride)``; 224x224 with
            window 32 and stride 16 is 13 x 13 = 169 forwards per image.
        baseline: value of occluded pixels (0 = the mean colour for normalised inputs).
        internal_batch_size: occluded images per forward pass (over the whole batch).
    """

    name = "occlusion"
    description = (
        "Occlusion: target-logit drop under a sliding baseline patch, via captum (window, stride)"
    )
    needs_gradients = False

    def __init__(
        self, model: nn.Module, window: int = 32, stride: int = 16, baseline: float | Tensor = 0.0,
        internal_batch_size: int = 64, reduction: Reduction = "abs-max", smooth_sigma: float = 0.0,
        max_batch_size: int | None = None,
    ) -> None:
        super().__init__(model, reduction, smooth_sigma, max_batch_size)
        self.window = _positive_int(window, "window")
        self.stride = _positive_int(stride, "stride")
        self.baseline = _check_baseline(baseline)
        self.internal_batch_size = _positive_int(internal_batch_size, "internal_batch_size")

    def attribute(self, inputs: Tensor, targets: Tensor) -> Tensor:
        from captum.attr import Occlusion as CaptumOcclusion

        batch, channels, height, width = inputs.shape
        window = (min(self.window, height), min(self.window, width))
        stride = (min(self.stride, window[0]), min(self.stride, window[1]))
        return CaptumOcclusion(self._logits_of(targets)).attribute(
            inputs,
            sliding_window_shapes=(channels, *window),
            strides=(channels, *stride),
            baselines=self._baseline_like(inputs),
            target=targets,
            perturbations_per_eval=max(1, self.internal_batch_size // batch),
        )
