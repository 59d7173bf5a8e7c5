"""Models to explain: loading from a specification, and matching preprocessing."""

from mlfem.models.loading import LoadedModel, ModelLoadError, load_model, load_state_dict_file
from mlfem.models.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Placement, Preprocessing

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LoadedModel",
    "ModelLoadError",
    "Placement",
    "Preprocessing",
    "load_model",
    "load_state_dict_file",
]
