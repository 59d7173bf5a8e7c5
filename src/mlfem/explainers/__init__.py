"""Explanation methods. Every explainer derives from :class:`Explainer`."""

from mlfem.explainers._layer_fem import LayerFEMExplainer, LayerMaps
from mlfem.explainers.base import Explainer
from mlfem.explainers.fem import FEM
from mlfem.explainers.mlfem import MLFEM

__all__ = ["FEM", "MLFEM", "Explainer", "LayerFEMExplainer", "LayerMaps"]

# The baseline explainers (Grad-CAM, IG, LRP, ...) are resolved on first access, so that
# ``import mlfem`` does not import their modules; captum, zennit and scikit-image are
# imported later still, when a method first runs.
_LAZY_EXPORTS = {
    "GradCAM": "mlfem.explainers.cam",
    "GradCAMPlusPlus": "mlfem.explainers.cam",
    "LayerCAM": "mlfem.explainers.cam",
    "MultiLayerCAM": "mlfem.explainers.cam",
    "IntegratedGradients": "mlfem.explainers.attribution",
    "SmoothGrad": "mlfem.explainers.attribution",
    "GuidedBackprop": "mlfem.explainers.attribution",
    "Deconvolution": "mlfem.explainers.attribution",
    "Occlusion": "mlfem.explainers.attribution",
    "Lime": "mlfem.explainers.attribution",
    "LRP": "mlfem.explainers.lrp",
    "CSFEM": "mlfem.explainers.csfem",
    "GradientExplainer": "mlfem.explainers._gradient",
    "TargetExplainer": "mlfem.explainers._gradient",
    "attribution_to_map": "mlfem.explainers._attribution_map",
}


def __getattr__(name: str) -> object:
    module = _LAZY_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
