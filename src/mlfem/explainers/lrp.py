"""Layer-wise Relevance Propagation (Bach et al. 2015) with zennit.

Why zennit and not captum: captum's ``LRP`` has no rule for the residual addition
of torchvision ResNets (a functional ``+``, invisible to module hooks) and its
ReLUs are reused in-place modules. On a random-init ResNet-18 it runs but returns
relevances of order 1e9 (1e23-1e27 on ResNet-50) for a logit of about 0.3 — no
conservation at all (measured with captum 0.9). zennit's ``ResNetCanonizer`` merges
batch-norms into the preceding convolutions and routes each residual sum through a
``Sum`` module that gets its own rule, so relevance is conserved (the input
relevance sums to about the initial relevance, 1).

Rules: a *composite* assigns a rule to each layer type. The default
``"epsilon-plus-flat"`` (zennit's recommendation for CNNs) uses the epsilon rule
for dense layers, z+ for convolutions, and the flat rule for the first
convolution; ``"epsilon-plus"``, ``"epsilon-alpha2-beta1-flat"`` and
``"epsilon-gamma-box"`` (z-box first layer bounded by the batch's per-channel
minimum and maximum, gamma rule elsewhere) are available. Relevance starts as a
one-hot vector on the target logit. Canonizers are chosen from the architecture:
``ResNetCanonizer`` for torchvision ResNets, ``VGGCanonizer`` for VGG, and
``SequentialMergeBatchNorm`` otherwise.

Every canonizer change (merged batch-norm parameters, overloaded block forwards)
and every hook is reverted in a ``finally`` block, so the model is exactly as it
was after each call, even when the forward pass raises.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlfem.explainers._attribution_map import Reduction, attribution_to_map, check_map_options
from mlfem.explainers._gradient import GradientExplainer, check_logits
from mlfem.explainers.registry import register_explainer

__all__ = ["LRP", "LRP_COMPOSITES"]

LRP_COMPOSITES: tuple[str, ...] = (
    "epsilon-plus-flat",
    "epsilon-plus",
    "epsilon-alpha2-beta1-flat",
    "epsilon-gamma-box",
)
_CANONIZERS: tuple[str, ...] = ("auto", "resnet", "vgg", "merge-batchnorm", "none")


@register_explainer
class LRP(GradientExplainer):
    """LRP relevance of the target logit, propagated to the input pixels with zennit.

    Cost: one forward and one modified backward pass, plus registering the rules
    (a few milliseconds). The relevance (B, C, H, W) becomes a map with
    :func:`~mlfem.explainers._attribution_map.attribution_to_map`.

    Args:
        model: a CNN classifier returning logits (B, K), in eval mode.
        composite: which rules to apply (see the module docstring).
        canonizers: ``"auto"`` (from the model's class name), ``"resnet"``, ``"vgg"``,
            ``"merge-batchnorm"``, ``"none"``, or a sequence of zennit canonizer instances.
        epsilon: stabiliser of the epsilon rule.
        reduction, smooth_sigma: the attribution-to-map conversion.
        max_batch_size: explain at most this many images per pass.
    """

    name = "lrp"
    description = (
        "Layer-wise Relevance Propagation, EpsilonPlusFlat with ResNet/BN canonizers, via zennit"
    )

    def __init__(
        self,
        model: nn.Module,
        composite: str = "epsilon-plus-flat",
        canonizers: str | Sequence[Any] = "auto",
        epsilon: float = 1e-6,
        reduction: Reduction = "abs-max",
        smooth_sigma: float = 0.0,
        max_batch_size: int | None = None,
    ) -> None:
        super().__init__(model, max_batch_size=max_batch_size)
        if composite not in LRP_COMPOSITES:
            raise ValueError(f"composite must be one of {', '.join(LRP_COMPOSITES)}; got {composite!r}")
        if isinstance(canonizers, str):
            if canonizers not in _CANONIZERS:
                raise ValueError(f"canonizers must be one of {', '.join(_CANONIZERS)} or a list; got {canonizers!r}")
        else:
            canonizers = list(canonizers)
            if not all(hasattr(c, "apply") and hasattr(c, "copy") for c in canonizers):
                raise TypeError("canonizers must be a name or a sequence of zennit Canonizer instances")
        epsilon = float(epsilon)
        if not (epsilon > 0 and math.isfinite(epsilon)):
            raise ValueError(f"epsilon must be a positive number, got {epsilon}")
        self.composite = composite
        self.canonizers = canonizers
        self.epsilon = epsilon
        self.reduction, self.smooth_sigma = check_map_options(reduction, smooth_sigma)

    def _make_canonizers(self) -> list[Any]:
        # Fresh instances per call: canonizers keep the state they revert.
        if not isinstance(self.canonizers, str):
            return [canonizer.copy() for canonizer in self.canonizers]
        from zennit.canonizers import SequentialMergeBatchNorm
        from zennit.torchvision import ResNetCanonizer, VGGCanonizer

        choice = self.canonizers
        if choice == "auto":
            kind = type(self.model).__name__
            # ResNetCanonizer already merges batch-norms; adding SequentialMergeBatchNorm
            # on top would merge twice and fail to revert.
            choice = {"ResNet": "resnet", "VGG": "vgg"}.get(kind, "merge-batchnorm")
        if choice == "resnet":
            return [ResNetCanonizer()]
        if choice == "vgg":
            return [VGGCanonizer()]
        if choice == "merge-batchnorm":
            return [SequentialMergeBatchNorm()]
        return []

    def _make_composite(self, inputs: Tensor) -> Any:
        from zennit import composites

        canonizers = self._make_canonizers()
        if self.composite == "epsilon-plus-flat":
            return composites.EpsilonPlusFlat(epsilon=self.epsilon, canonizers=canonizers)
        if self.composite == "epsilon-plus":
            return composites.EpsilonPlus(epsilon=self.epsilon, canonizers=canonizers)
        if self.composite == "epsilon-alpha2-beta1-flat":
            return composites.EpsilonAlpha2Beta1Flat(epsilon=self.epsilon, canonizers=canonizers)
        # epsilon-gamma-box: the z-box rule needs the input domain; without knowing the
        # normalisation, take each channel's range over the batch.
        low = inputs.amin(dim=(0, 2, 3), keepdim=True).expand_as(inputs).contiguous()
        high = inputs.amax(dim=(0, 2, 3), keepdim=True).expand_as(inputs).contiguous()
        return composites.EpsilonGammaBox(low=low, high=high, epsilon=self.epsilon, canonizers=canonizers)

    def relevance(self, inputs: Tensor, targets: Tensor | None) -> Tensor:
        """Input relevance (B, C, H, W) of each image's target logit (top-1 if ``None``)."""
        composite = self._make_composite(inputs)
        inputs = inputs.detach().requires_grad_(True)
        try:
            # register() applies canonizers one by one; remove() in finally also reverts
            # a registration that failed half-way.
            composite.register(self.model)
            logits = check_logits(self.model(inputs), targets)
            if targets is None:
                targets = logits.detach().argmax(dim=1)
            one_hot = F.one_hot(targets, logits.shape[1]).to(logits.dtype)
            (relevance,) = torch.autograd.grad(logits, inputs, grad_outputs=one_hot)
        finally:
            composite.remove()
        return relevance.detach()

    def _explain_batch(self, inputs: Tensor, targets: Tensor | None) -> Tensor:
        return attribution_to_map(self.relevance(inputs, targets), self.reduction, self.smooth_sigma)
