"""Explanation methods. Every explainer derives from :class:`Explainer`."""

from mlfem.explainers._layer_fem import LayerFEMExplainer, LayerMaps
from mlfem.explainers.base import Explainer
from mlfem.explainers.fem import FEM
from mlfem.explainers.mlfem import MLFEM

__all__ = ["FEM", "MLFEM", "Explainer", "LayerFEMExplainer", "LayerMaps"]
