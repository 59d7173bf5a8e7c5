"""Explanation methods. Every explainer derives from :class:`Explainer`."""

from mlfem.explainers._layer_fem import LayerFEMExplainer, LayerMaps
from mlfem.explainers.base import Explainer, Explanation
from mlfem.explainers.fem import FEM
from mlfem.explainers.mlfem import MLFEM

__all__ = ["FEM", "MLFEM", "Explainer", "Explanation", "LayerFEMExplainer", "LayerMaps"]

# The baseline explainers (Grad-CAM, IG, LRP, ...) are resolved on first access, so that
# ``import mlfem`` does not import their modules; captum, zennit and scikit-image are
# imported later still, when a method first runs. A class registered as a method
# (``@register_explainer``) is found through the registry; these are the other names.
_LAZY_EXPORTS = {
    "GradientExplainer": "mlfem.explainers._gradient",
    "TargetExplainer": "mlfem.explainers._gradient",
    "attribution_to_map": "mlfem.explainers._attribution_map",
}


def __getattr__(name: str) -> object:
    import importlib

    module = _LAZY_EXPORTS.get(name)
    if module is not None:
        return getattr(importlib.import_module(module), name)
    if name[:1].isupper():  # only class names can be registered explainers
        from mlfem.explainers.registry import explainer_class

        cls = explainer_class(name)
        if cls is not None:
            return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
