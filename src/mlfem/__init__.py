"""mlfem: multi-layer Feature Explanation Method (MLFEM) for CNNs, and its evaluation
against human gaze.

The flat public API::

    from mlfem import MLFEM, FEM, LayerMapExtractor, fem_saliency, fuse, find_layers

Importing ``mlfem`` imports torch only; torchvision and timm are imported lazily
by the functions that need them.
"""

from mlfem.explainers import FEM, MLFEM, Explainer, Explanation, LayerMaps
from mlfem.extractor import LayerMapExtractor
from mlfem.features import ConvFeatureMap, FeatureAdapter
from mlfem.fem import fem_saliency
from mlfem.fusion import FusionOperator, available_fusions, fuse, make_fusion, register_fusion
from mlfem.layers import LayerSpec, find_layers, resolve_layers
from mlfem.normalize import minmax_normalize, resize_maps, resized_extrema

__version__ = "0.1.0"

__all__ = [
    "FEM",
    "MLFEM",
    "ConvFeatureMap",
    "Explainer",
    "Explanation",
    "FeatureAdapter",
    "FusionOperator",
    "LayerMapExtractor",
    "LayerMaps",
    "LayerSpec",
    "available_fusions",
    "fem_saliency",
    "find_layers",
    "fuse",
    "make_fusion",
    "minmax_normalize",
    "register_fusion",
    "resize_maps",
    "resized_extrema",
    "resolve_layers",
    "__version__",
]
