"""Running the explanation methods of an evaluation on one batch, sharing work where possible.

Every FEM-family method (``fem``, ``mlfem``, ``mlfem-<fusion>`` such as ``mlfem-add``,
``mlfem-max``, ``mlfem-top``, ``mlfem-net``) is computed from ONE forward pass: the per-layer
FEM maps of :meth:`mlfem.MLFEM.layer_maps` are fused by each method's operator, FEM is the
deepest layer's map (design.md §2: ``fem(a, b) = b``), and the logits of that same pass give
the predictions. Other methods (Grad-CAM, LayerCAM, pixel attributions) run through the
method registry, each explaining the predicted top-1 class.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mlfem.explainers.registry import create_explainer, method_info

__all__ = ["BatchMaps", "MethodRunner", "REFERENCE_METHODS", "is_fem_family"]

#: Names of the reference rows (never explanation methods).
REFERENCE_METHODS: tuple[str, ...] = ("human", "centre-bias")


def _fusion_of(name: str) -> str | None:
    """The fusion spec a FEM-family method name stands for (None: single-layer FEM)."""
    if name == "fem":
        return None
    if name == "mlfem":
        return "add"
    return name.removeprefix("mlfem-")


def is_fem_family(name: str) -> bool:
    """True for ``fem``, ``mlfem`` and ``mlfem-<registered fusion>`` names."""
    from mlfem.fusion import available_fusions

    if name in ("fem", "mlfem"):
        return True
    return name.startswith("mlfem-") and name.removeprefix("mlfem-") in available_fusions()


@dataclass
class BatchMaps:
    """What one batch yields: each method's maps (B, h, w) in [0, 1], the per-layer FEM maps
    (B, L, h, w) when a FEM-family method ran, and the classifier's logits (B, K)."""

    maps: dict[str, Tensor]
    layer_maps: Tensor | None
    logits: Tensor


class MethodRunner:
    """The explainers of an evaluation, bound to one model.

    Args:
        model: the classifier, in eval mode.
        methods: method names (see :func:`is_fem_family` and ``mlfem methods``).
        layers: MLFEM layers (``"auto"`` or module names); FEM reads the last of them.
        alpha, k, normalize: MLFEM options.
        net: path of a trained NET fusion, required by ``mlfem-net`` (fusion ``net:PATH``).
        method_options: extra options per method name (e.g. ``{"ig": {"steps": 16}}``).
    """

    def __init__(
        self,
        model: nn.Module,
        methods: Sequence[str],
        *,
        layers: str | Sequence[str] = "auto",
        alpha: float = 0.5,
        k: float = 2.0,
        normalize: str = "end",
        net: str | None = None,
        method_options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        from mlfem.explainers import MLFEM
        from mlfem.fusion import make_fusion

        self.model = model
        self.methods = list(dict.fromkeys(methods))
        options = {key: dict(value) for key, value in (method_options or {}).items()}
        clash = [m for m in self.methods if m in REFERENCE_METHODS]
        if clash:
            raise ValueError(f"{', '.join(clash)} name reference rows, not explanation methods")
        self.fem_methods = [m for m in self.methods if is_fem_family(m)]
        self.other_methods = [m for m in self.methods if m not in self.fem_methods]
        for name in self.other_methods:
            method_info(name)  # a clear error listing the known names
        self.extractor = None
        self.fusions: dict[str, Any] = {}
        if self.fem_methods:
            # The fusion of the extractor itself is unused: only its layer maps are read.
            self.extractor = MLFEM(model, layers=layers, fusion="fem", k=k, normalize=normalize)  # type: ignore[arg-type]
            for name in self.fem_methods:
                spec = _fusion_of(name)
                if spec is None:
                    continue
                if spec == "net":
                    if not net:
                        raise ValueError("method mlfem-net needs a trained NET fusion: pass --net PATH")
                    spec = f"net:{net}"
                extra = options.get(name, {})
                operator = make_fusion(
                    spec, alpha=float(extra.get("alpha", alpha)),
                    normalize=extra.get("normalize", normalize),  # type: ignore[arg-type]
                )
                expected = getattr(operator, "layer_names", None)
                if expected is not None and list(expected) != self.extractor.layer_names:
                    raise ValueError(
                        f"{name}: the fusion was trained on layers {list(expected)}, but the "
                        f"evaluation reads {self.extractor.layer_names}"
                    )
                trained_rectified = getattr(operator, "rectify", None)
                if trained_rectified is not None and bool(trained_rectified) != self.extractor.rectify:
                    raise ValueError(
                        f"{name}: the fusion was trained on "
                        f"{'rectified' if trained_rectified else 'unrectified'} layer outputs; "
                        f"use --layers {'auto-rectified' if trained_rectified else 'auto'} or retrain it"
                    )
                # A learned fusion may refuse the maps of a model it was not trained for.
                check = getattr(operator, "check_model", None)
                if callable(check):
                    check(model)
                if isinstance(operator, nn.Module):
                    operator = operator.to(self.device).eval()
                self.fusions[name] = operator
        common = {"layers": layers, "alpha": alpha, "k": k, "normalize": normalize}
        self.explainers = {
            name: create_explainer(name, model, **{**_common_for(name, common), **options.get(name, {})})
            for name in self.other_methods
        }

    @property
    def device(self) -> torch.device:
        for tensor in (*self.model.parameters(), *self.model.buffers()):
            return tensor.device
        return torch.device("cpu")

    @property
    def layer_names(self) -> list[str]:
        """The MLFEM layers (empty when no FEM-family method runs)."""
        return self.extractor.layer_names if self.extractor is not None else []

    def gradient_methods(self) -> list[str]:
        return [m for m in self.other_methods if method_info(m).uses_gradients]

    def run(self, images: Tensor, methods: Collection[str] | None = None) -> BatchMaps:
        """Maps of ``methods`` (default: all) for a batch of model inputs (B, 3, h, w)."""
        wanted = self.methods if methods is None else [m for m in self.methods if m in methods]
        maps: dict[str, Tensor] = {}
        layer_maps = None
        fem_wanted = [m for m in wanted if m in self.fem_methods]
        if self.extractor is not None and (fem_wanted or not wanted):
            result = self.extractor.layer_maps(images)
            layer_maps, logits = result.maps, result.logits
            with torch.inference_mode():
                for name in fem_wanted:
                    operator = self.fusions.get(name)
                    fused = layer_maps[:, -1] if operator is None else operator(layer_maps)
                    maps[name] = fused.to(images.device, torch.float32).clone()
        else:
            with torch.inference_mode():
                logits = self.model(images.to(self.device))
            logits = logits.clone()
        if not isinstance(logits, Tensor) or logits.ndim != 2:
            raise ValueError(
                "the classifier must return logits of shape (B, classes); got "
                f"{type(logits).__name__} {tuple(getattr(logits, 'shape', ()))}"
            )
        targets = logits.detach().argmax(dim=1).cpu()
        for name in wanted:
            if name in self.explainers:
                maps[name] = self.explainers[name](images, targets).to(torch.float32)
        return BatchMaps(maps, layer_maps, logits.detach().float().cpu())

    def close(self) -> None:
        for explainer in self.explainers.values():
            explainer.close()
        if self.extractor is not None:
            self.extractor.close()


def _common_for(name: str, common: Mapping[str, Any]) -> dict[str, Any]:
    """The shared options a registry method receives. Explicit MLFEM layers are not passed
    on: a single-layer method (Grad-CAM, LayerCAM, ...) keeps its own default layer, and a
    method's own layer is set with a per-method option (``--option gradcam.layer=NAME``)."""
    out = dict(common)
    if out.get("layers") != "auto":
        out.pop("layers", None)
    return out
