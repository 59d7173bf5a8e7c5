"""A fresh classifier to fine-tune: an architecture with a new head, from random or
pretrained starting weights, and the spec its checkpoint records.

Starting weights come through :func:`mlfem.models.load_model`, so this module sits above the
loader; :mod:`mlfem.models.architectures` (what rebuilds a saved classifier) does not need
the loader, which keeps the loader -> checkpoint -> architectures chain free of cycles.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from mlfem.models.architectures import (
    SMALL_CNN,
    SMALL_CNN3D,
    SmallCNN,
    SmallCNN3d,
    fresh_timm_model,
    fresh_torchvision_model,
    replace_head,
    timm_name,
)
from mlfem.models.loading import ModelLoadError, load_model

__all__ = ["build_classifier"]


def build_classifier(
    architecture: str, num_classes: int, weights: str | None = None,
    options: dict[str, Any] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """A fresh classifier for ``num_classes`` classes, and its architecture spec.

    Args:
        architecture: ``"small-cnn"``, ``"small-cnn3d"`` (clips), a torchvision classification model name,
            ``"timm:<name>"`` or ``"efficientnet_lite0"``.
        num_classes: outputs of the new head.
        weights: starting weights before the head is replaced: ``None`` (random),
            ``"imagenet"`` (installed for ``efficientnet_lite0``; torchvision's or timm's
            download otherwise) or a local state_dict file for the original architecture
            (e.g. ImageNet weights saved as ``.pth``/``.safetensors``).
        options: keyword arguments of a timm architecture built from scratch (``depth``,
            ``img_size``, ``patch_size`` of a small ViT), recorded in the spec.
    """
    if options and (timm_name(architecture) is None or weights is not None):
        raise ValueError(
            "model options apply to a timm architecture (timm:<name>) built without starting "
            f"weights; got {architecture!r} with weights {weights!r}"
        )
    if architecture in (SMALL_CNN, SMALL_CNN3D):
        if weights is not None:
            raise ValueError(f"{architecture} has no pretrained weights; omit weights")
        model = SmallCNN(num_classes) if architecture == SMALL_CNN else SmallCNN3d(num_classes)
        spec = {
            "name": architecture,
            "library": "mlfem",
            "num_classes": num_classes,
            "options": {"widths": model.widths},
        }
        return model, spec
    timm = timm_name(architecture)
    library, name = ("timm", timm) if timm is not None else ("torchvision", architecture)
    normalization = None
    if weights is None:
        model = (fresh_timm_model(architecture, timm, options) if timm is not None
                 else fresh_torchvision_model(architecture))
    else:
        # The loader checks the name (with suggestions) and reads the starting weights.
        model, normalization = _pretrained(architecture, weights)
    head = replace_head(model, num_classes)
    spec: dict[str, Any] = {
        "name": name,
        "library": library,
        "num_classes": num_classes,
        "head": head,
    }
    if normalization is not None:
        spec["normalization"] = normalization
    if options:
        spec["options"] = dict(options)
    return model, spec


def _pretrained(spec: str, weights: str) -> tuple[nn.Module, dict[str, list[float]]]:
    """A model with starting weights through :func:`mlfem.models.load_model`, and the
    normalisation those weights expect."""
    try:
        loaded = load_model(spec, weights)
    except ModelLoadError as error:
        raise ValueError(str(error).replace("--weights: ", "weights: ")) from error
    p = loaded.preprocessing
    return loaded.model.train(), {"mean": list(p.mean), "std": list(p.std)}


