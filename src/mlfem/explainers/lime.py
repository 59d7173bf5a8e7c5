"""LIME on superpixels, a gradient-free pixel-attribution baseline computed with captum.

captum and scikit-image are imported on first use; see :mod:`.attribution` for the costs and
the map options shared by every pixel-attribution method.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from mlfem.explainers._attribution_map import Reduction
from mlfem.explainers._gradient import seeded
from mlfem.explainers._pixel import (
    PixelAttributionExplainer, _check_baseline, _check_seed, _nonnegative_number, _positive_int,
    _positive_number,
)
from mlfem.explainers.registry import register_explainer

__all__ = ["Lime"]


@register_explainer
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
    description = (
        "LIME on SLIC superpixels with a weighted ridge surrogate, via captum (samples, segments)"
    )
    needs_gradients = False

    def __init__(
        self, model: nn.Module, samples: int = 256, segments: int = 50, compactness: float = 10.0,
        kernel_width: float = 0.25, alpha: float = 1.0, baseline: float | Tensor = 0.0,
        seed: int | None = 0, internal_batch_size: int = 64, reduction: Reduction = "abs-max",
        smooth_sigma: float = 0.0, max_batch_size: int | None = None,
    ) -> None:
        super().__init__(model, reduction, smooth_sigma, max_batch_size)
        self.samples = _positive_int(samples, "samples")
        self.segments = _positive_int(segments, "segments")
        self.compactness = _positive_number(compactness, "compactness")
        self.kernel_width = _positive_number(kernel_width, "kernel_width")
        self.alpha = _nonnegative_number(alpha, "alpha")
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

        forward = self._logits_of(targets)
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
                        baselines=self._baseline_like(image),
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
