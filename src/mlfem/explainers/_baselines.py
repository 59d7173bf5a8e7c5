"""Registration of the baseline methods from the paper's comparison and related work.

Imported lazily by the registry (``_PLUGIN_MODULES``). The explainer modules import
only torch at module level; captum, zennit and scikit-image are imported when a
method first runs.

Factories take the options their class's constructor accepts and ignore any other
key, so a caller (the CLI) can pass one options dict to every method. For the
single-layer methods, a ``layers`` option naming exactly one module is taken as
``layer`` (``"auto"`` means the default layer).
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from mlfem.explainers.attribution import (
    Deconvolution,
    GuidedBackprop,
    IntegratedGradients,
    Lime,
    Occlusion,
    SmoothGrad,
)
from mlfem.explainers.base import Explainer
from mlfem.explainers.cam import GradCAM, GradCAMPlusPlus, LayerCAM, MultiLayerCAM
from mlfem.explainers.csfem import CSFEM
from mlfem.explainers.lrp import LRP
from mlfem.explainers.registry import register_method


def _single_layer(options: dict[str, Any], method: str) -> dict[str, Any]:
    """Map a ``layers`` option onto ``layer`` for methods that read one layer."""
    layers = options.pop("layers", None)
    if options.get("layer") is not None or layers is None:
        return options
    if isinstance(layers, str):
        names = [part.strip() for part in layers.split(",") if part.strip()]
        if names == ["auto"]:
            return options
    else:
        names = list(layers)
    if len(names) != 1:
        raise ValueError(f"{method} reads a single layer; got {len(names)} layer names: {', '.join(map(str, names))}")
    options["layer"] = names[0]
    return options


def _factory(cls: type[Explainer], single_layer: bool = False):
    parameters = inspect.signature(cls.__init__).parameters
    accepted = {name for name in parameters if name not in ("self", "model")}

    def factory(model: nn.Module, **options: Any) -> Explainer:
        if single_layer:
            options = _single_layer(dict(options), cls.name)
        kwargs = {key: value for key, value in options.items() if key in accepted}
        return cls(model, **kwargs)

    factory.__doc__ = f"Create a {cls.__name__} on ``model``; unknown options are ignored."
    return factory


register_method(
    "gradcam",
    _factory(GradCAM, single_layer=True),
    "Grad-CAM on the last block: activations weighted by pooled gradients (Selvaraju et al. 2017)",
    uses_gradients=True,
)
register_method(
    "gradcampp",
    _factory(GradCAMPlusPlus, single_layer=True),
    "Grad-CAM++ on the last block: higher-order gradient weights (Chattopadhay et al. 2018)",
    uses_gradients=True,
)
register_method(
    "layercam",
    _factory(LayerCAM, single_layer=True),
    "LayerCAM on the last block: element-wise positive-gradient weights (Jiang et al. 2021)",
    uses_gradients=True,
)
register_method(
    "layercam-multi",
    _factory(MultiLayerCAM),
    "LayerCAM on every block, tanh-rescaled and fused by element-wise max (layers, fusion)",
    uses_gradients=True,
)
register_method(
    "ig",
    _factory(IntegratedGradients),
    "Integrated Gradients from a zero baseline, via captum (steps, internal_batch_size)",
    uses_gradients=True,
)
register_method(
    "smoothgrad",
    _factory(SmoothGrad),
    "SmoothGrad: input gradients averaged over noisy copies, via captum (samples, noise_level)",
    uses_gradients=True,
)
register_method(
    "lrp",
    _factory(LRP),
    "Layer-wise Relevance Propagation, EpsilonPlusFlat with ResNet/BN canonizers, via zennit",
    uses_gradients=True,
)
register_method(
    "guided-backprop",
    _factory(GuidedBackprop),
    "Guided Backpropagation: gradients through ReLUs gated forward and backward, via captum",
    uses_gradients=True,
)
register_method(
    "deconvnet",
    _factory(Deconvolution),
    "DeconvNet (Zeiler & Fergus 2014): ReLUs rectify the backward signal, via captum",
    uses_gradients=True,
)
register_method(
    "occlusion",
    _factory(Occlusion),
    "Occlusion: target-logit drop under a sliding baseline patch, via captum (window, stride)",
)
register_method(
    "lime",
    _factory(Lime),
    "LIME on SLIC superpixels with a weighted ridge surrogate, via captum (samples, segments)",
)
register_method(
    "csfem",
    _factory(CSFEM, single_layer=True),
    "Class-specific FEM: FEM channel terms weighted by the target's classifier row (or pooled gradients)",
)
