"""Pixel-attribution baselines computed with captum.

Integrated Gradients, SmoothGrad, Guided Backprop, DeconvNet, occlusion and LIME
give one signed value per input pixel and colour channel. They are computed by
captum (imported lazily, on first use) and turned into saliency maps by
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
import math
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from mlfem.explainers._attribution_map import Reduction, attribution_to_map, check_map_options
from mlfem.explainers._gradient import TargetExplainer, check_logits, seeded

__all__ = [
    "Deconvolution",
    "GuidedBackprop",
    "IntegratedGradients",
    "Lime",
    "Occlusion",
    "PixelAttributionExplainer",
    "SmoothGrad",
]


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


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


@contextlib.contextmanager
def _quiet_relu_hook_warning() -> Iterator[None]:
    """Silence captum's per-call notice that it hooks ReLU modules (it removes the
    hooks itself, and the tests check that it does)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU activations")
        yield


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

    def _explain_batch(self, inputs: Tensor, targets: Tensor | None) -> Tensor:
        targets = self._targets_or_top1(inputs, targets)
        attributions = self.attribute(inputs, targets)
        return attribution_to_map(attributions, self.reduction, self.smooth_sigma)


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
    needs_gradients = True

    def __init__(
        self,
        model: nn.Module,
        steps: int = 32,
        baseline: float | Tensor = 0.0,
        internal_batch_size: int = 16,
        reduction: Reduction = "abs-max",
        smooth_sigma: float = 0.0,
        max_batch_size: int | None = None,
    ) -> None:
        super().__init__(model, reduction, smooth_sigma, max_batch_size)
        self.steps = _positive_int(steps, "steps")
        self.baseline = _check_baseline(baseline)
        self.internal_batch_size = _positive_int(internal_batch_size, "internal_batch_size")

    def attribute(self, inputs: Tensor, targets: Tensor) -> Tensor:
        from captum.attr import IntegratedGradients as CaptumIG

        method = CaptumIG(_CheckedLogits(self.model, targets))
        return method.attribute(
            inputs,
            baselines=_broadcast_baseline(self.baseline, inputs),
            target=targets,
            n_steps=self.steps,
            internal_batch_size=self.internal_batch_size,
        )


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
    needs_gradients = True

    def __init__(
        self,
        model: nn.Module,
        samples: int = 16,
        noise_level: float = 0.15,
        seed: int | None = 0,
        internal_batch_size: int = 16,
        reduction: Reduction = "abs-max",
        smooth_sigma: float = 0.0,
        max_batch_size: int | None = None,
    ) -> None:
        super().__init__(model, reduction, smooth_sigma, max_batch_size)
        self.samples = _positive_int(samples, "samples")
        noise_level = float(noise_level)
        if not (noise_level >= 0 and math.isfinite(noise_level)):
            raise ValueError(f"noise_level must be a finite number >= 0, got {noise_level}")
        self.noise_level = noise_level
        self.seed = _check_seed(seed)
        self.internal_batch_size = _positive_int(internal_batch_size, "internal_batch_size")

    def attribute(self, inputs: Tensor, targets: Tensor) -> Tensor:
        from captum.attr import NoiseTunnel, Saliency

        tunnel = NoiseTunnel(Saliency(_CheckedLogits(self.model, targets)))
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


class GuidedBackprop(PixelAttributionExplainer):
    """Guided Backpropagation (Springenberg et al. 2015), via captum.

    The gradient of the target logit where every ReLU module back-propagates only
    positive gradients at positive inputs. Cost: one forward and one backward pass.
    Only ``nn.ReLU`` *modules* are modified: ReLUs applied functionally inside a
    custom ``forward`` keep their ordinary gradient.
    """

    name = "guided-backprop"
    needs_gradients = True

    def attribute(self, inputs: Tensor, targets: Tensor) -> Tensor:
        from captum.attr import GuidedBackprop as CaptumGuidedBackprop

        inputs.requires_grad_(True)
        with _quiet_relu_hook_warning():
            return CaptumGuidedBackprop(_CheckedLogits(self.model, targets)).attribute(inputs, target=targets)


class Deconvolution(PixelAttributionExplainer):
    """DeconvNet (Zeiler & Fergus, ECCV 2014), via captum's ``Deconvolution``.

    The target logit is back-projected with transposed convolutions where every
    ReLU module passes ``ReLU(gradient)`` regardless of its forward input (the
    "deconvnet" rule). Cost: one forward and one backward pass. Like Guided
    Backprop, only ``nn.ReLU`` modules are affected.
    """

    name = "deconvnet"
    needs_gradients = True

    def attribute(self, inputs: Tensor, targets: Tensor) -> Tensor:
        from captum.attr import Deconvolution as CaptumDeconvolution

        inputs.requires_grad_(True)
        with _quiet_relu_hook_warning():
            return CaptumDeconvolution(_CheckedLogits(self.model, targets)).attribute(inputs, target=targets)


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
    needs_gradients = False

    def __init__(
        self,
        model: nn.Module,
        window: int = 32,
        stride: int = 16,
        baseline: float | Tensor = 0.0,
        internal_batch_size: int = 64,
        reduction: Reduction = "abs-max",
        smooth_sigma: float = 0.0,
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
        return CaptumOcclusion(_CheckedLogits(self.model, targets)).attribute(
            inputs,
            sliding_window_shapes=(channels, *window),
            strides=(channels, *stride),
            baselines=_broadcast_baseline(self.baseline, inputs),
            target=targets,
            perturbations_per_eval=max(1, self.internal_batch_size // batch),
        )


class Lime(PixelAttributionExplainer):
    """LIME (Ribeiro et al., KDD 2016) on SLIC superpixels, via captum's ``Lime``.

    Each image is cut into about ``segments`` superpixels with scikit-image's SLIC
    (on the image min-max scaled to [0, 1]; when SLIC finds fewer than a quarter of
    ``segments`` regions, as on noise-like images, a regular grid of about
    ``segments`` square cells is used instead); captum samples ``samples`` random
    on/off patterns of the superpixels (off = ``baseline``), runs them through the
    model ``internal_batch_size`` at a time, and fits a weighted linear model of the
    target logit. A superpixel's coefficient is the attribution of all its pixels.
    The surrogate is a weighted ridge regression (``alpha``, as LIME's default
    ``Ridge(alpha=1)``) solved in closed form with torch, and samples are weighted
    as in LIME's image explainer: ``sqrt(exp(-d^2 / 0.25^2))`` with ``d`` the cosine
    distance between the on/off pattern and the all-on pattern. Gradient-free: it
    also runs under ``torch.inference_mode()``.

    Args:
        samples: perturbed images per image (cost: that many forward passes). LIME
            uses 1000; 256 is a usable compromise for ~50 superpixels, fewer gives
            noisy coefficients.
        segments: approximate number of SLIC superpixels.
        compactness: SLIC's colour/space trade-off (higher = squarer superpixels).
        kernel_width: width of the sample-weighting kernel on cosine distance.
        alpha: ridge regularisation of the surrogate.
        baseline: value of switched-off superpixels (0 = the mean colour for
            normalised inputs).
        seed: seeds the sampling (the caller's RNG state is restored); ``None``
            uses the global generator.
        internal_batch_size: perturbed images per forward pass.
    """

    name = "lime"
    needs_gradients = False

    def __init__(
        self,
        model: nn.Module,
        samples: int = 256,
        segments: int = 50,
        compactness: float = 10.0,
        kernel_width: float = 0.25,
        alpha: float = 1.0,
        baseline: float | Tensor = 0.0,
        seed: int | None = 0,
        internal_batch_size: int = 64,
        reduction: Reduction = "abs-max",
        smooth_sigma: float = 0.0,
        max_batch_size: int | None = None,
    ) -> None:
        super().__init__(model, reduction, smooth_sigma, max_batch_size)
        self.samples = _positive_int(samples, "samples")
        self.segments = _positive_int(segments, "segments")
        self.compactness = float(compactness)
        if not (self.compactness > 0 and math.isfinite(self.compactness)):
            raise ValueError(f"compactness must be a positive number, got {compactness!r}")
        self.kernel_width = float(kernel_width)
        if not (self.kernel_width > 0 and math.isfinite(self.kernel_width)):
            raise ValueError(f"kernel_width must be a positive number, got {kernel_width!r}")
        self.alpha = float(alpha)
        if not (self.alpha >= 0 and math.isfinite(self.alpha)):
            raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
        self.baseline = _check_baseline(baseline)
        self.seed = _check_seed(seed)
        self.internal_batch_size = _positive_int(internal_batch_size, "internal_batch_size")

    def superpixels(self, image: Tensor) -> Tensor:
        """SLIC superpixels of one image (C, H, W): labels (H, W), int64, 0..n-1, on its device."""
        import numpy as np
        from skimage.segmentation import slic

        values = image.detach().float().cpu()
        low, high = values.amin(), values.amax()
        scaled = (values - low) / (high - low) if high > low else torch.zeros_like(values)
        array = scaled.permute(1, 2, 0).numpy().astype(np.float64)
        colour = array.shape[-1] == 3
        labels = slic(
            array if colour or array.shape[-1] > 1 else array[..., 0],
            n_segments=self.segments,
            compactness=self.compactness,
            start_label=0,
            channel_axis=-1 if array.shape[-1] > 1 else None,
            convert2lab=colour,
        )
        # SLIC may skip label values; captum wants 0..n-1.
        found, contiguous = np.unique(labels, return_inverse=True)
        if len(found) < max(2, self.segments // 4):
            # On texture-less or noise-like images SLIC's connectivity step can merge
            # everything into a handful of regions; LIME would then explain nothing.
            return self._grid(image.shape[-2], image.shape[-1], image.device)
        return torch.from_numpy(contiguous.reshape(labels.shape).astype(np.int64)).to(image.device)

    def _grid(self, height: int, width: int, device: torch.device) -> Tensor:
        """A regular grid of about ``segments`` square cells, labelled row by row."""
        cell = max(1, math.ceil(math.sqrt(height * width / self.segments)))
        rows = torch.arange(height, device=device) // cell
        cols = torch.arange(width, device=device) // cell
        return rows[:, None] * (int(cols.max()) + 1) + cols[None, :]

    def attribute(self, inputs: Tensor, targets: Tensor) -> Tensor:
        from captum._utils.models.linear_model import LinearModel
        from captum.attr import Lime as CaptumLime

        forward = _CheckedLogits(self.model, targets)
        results = []
        with seeded(self.seed, inputs.device):
            # One image at a time: each has its own superpixels, and captum's Lime fits
            # one surrogate per image anyway.
            for index in range(inputs.shape[0]):
                image = inputs[index : index + 1]
                mask = self.superpixels(image[0])[None, None]
                surrogate = LinearModel(train_fn=_weighted_ridge_fit(self.alpha))
                lime = CaptumLime(forward, interpretable_model=surrogate, similarity_func=self._similarity)
                results.append(
                    lime.attribute(
                        image,
                        target=targets[index : index + 1],
                        feature_mask=mask,
                        baselines=_broadcast_baseline(self.baseline, image),
                        n_samples=self.samples,
                        perturbations_per_eval=self.internal_batch_size,
                    )
                )
        return torch.cat(results)

    def _similarity(self, original: Tensor, perturbed: Tensor, interpretable: Tensor, **_: Any) -> Tensor:
        # LIME's image kernel: cosine distance between the on/off pattern and all-on.
        pattern = interpretable.float().flatten()
        on = pattern.sum()
        if on <= 0:
            distance = torch.ones((), device=pattern.device)
        else:
            distance = 1.0 - on / (on.sqrt() * math.sqrt(pattern.numel()))
        return torch.exp(-(distance**2) / (2 * self.kernel_width**2)).reshape(1)


def _weighted_ridge_fit(alpha: float) -> Callable[..., dict[str, float]]:
    """A captum ``LinearModel`` training function: weighted ridge regression with an
    unpenalised intercept, solved in closed form (no scikit-learn needed)."""

    def fit(model: Any, dataloader: Any, construct_kwargs: dict[str, Any], **_: Any) -> dict[str, float]:
        start = time.perf_counter()
        xs, ys, ws = [], [], []
        device = torch.device("cpu")
        for batch in dataloader:
            x, y = batch[0], batch[1]
            w = batch[2] if len(batch) > 2 else torch.ones(x.shape[0], device=x.device)
            device = x.device
            # The system is tiny (features x features): solve it in float64 on the CPU,
            # where lstsq handles rank-deficient systems on every torch build.
            xs.append(x.detach().cpu().double())
            ys.append(y.detach().cpu().double().reshape(x.shape[0], -1))
            ws.append(w.detach().cpu().double().reshape(-1))
        x, y, w = torch.cat(xs), torch.cat(ys), torch.cat(ws)
        weights = w / w.sum().clamp(min=torch.finfo(torch.float64).tiny)
        x_mean = (weights[:, None] * x).sum(0)
        y_mean = (weights[:, None] * y).sum(0)
        xc, yc = x - x_mean, y - y_mean
        gram = xc.T @ (w[:, None] * xc) + alpha * torch.eye(x.shape[1], dtype=x.dtype)
        rhs = xc.T @ (w[:, None] * yc)
        # lstsq rather than solve: with alpha = 0 and constant features the system is singular.
        coef = torch.linalg.lstsq(gram, rhs).solution.T  # (outputs, features)
        intercept = y_mean - coef @ x_mean
        model._construct_model_params(
            weight_values=coef.float().to(device), bias_value=intercept.float().to(device), **construct_kwargs
        )
        return {"train_time": time.perf_counter() - start}

    return fit
