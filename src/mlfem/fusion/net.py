"""The learned NET fusion (docs/design-decisions.md §2, paper §2.3): a light CNN fusing per-layer FEM maps.

Architecture, for L layers and maps at the training resolution r x r (r a multiple of 4)::

    input                (B, L,  r,   r)    stacked per-layer FEM maps in [0, 1]
    conv1 3x3, pad 1     (B, 2L, r,   r)    + ReLU, then 2x2 max-pool -> r/2
    conv2 3x3, pad 1     (B, 4L, r/2, r/2)  + ReLU, then 2x2 max-pool -> r/4
    conv3 3x3, pad 1     (B, 8L, r/4, r/4)  + ReLU
    weighted_sum 1x1     (B, 1,  r/4, r/4)  a learned weighted sum of the 8L channels (+ bias)
    upsample x4          (B, 1,  r,   r)    bilinear, align_corners=False

Three convolutions with pooling that together pool by 4 and multiply the depth by 8, then
a weighted sum to one map, upsampled back. It is trained (``mlfem.training.train_fusion``)
with Adam on the MSE between that raw output and the GFDM resized to r x r and scaled to
max 1.

As a :class:`~mlfem.fusion.FusionOperator` (:class:`NetFusion`), maps of any size (H, W)
are resized to r x r (bilinear, antialiased when shrinking: what the training cache did),
fused, upsampled to (H, W), and min-max normalised per image to [0, 1] (a constant output
becomes zeros). Min-max is affine, so PCC with the raw output is unchanged.

``net:PATH`` is a fusion spec wherever one is accepted (``MLFEM(model, fusion="net:PATH")``,
``mlfem explain --fusion net:PATH``): ``mlfem.fusion`` imports this module on first use.
``net:bundled`` is the NET shipped with mlfem (:func:`bundled_net_path`). This module only
reads NETs; training them is :mod:`mlfem.training`'s, which imports it (never the reverse).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlfem.normalize import minmax_normalize
from mlfem.models.checkpoint import (
    NET_FORMAT,
    CheckpointError,
    LoadedClassifier,
    model_fingerprint,
    read_checkpoint,
    read_metadata,
    save_checkpoint,
)

__all__ = [
    "BUNDLED_NETS",
    "FusionMismatchError",
    "FusionNet",
    "NetFusion",
    "bundled_net_path",
    "load_fusion_net",
    "net_fusion_factory",
    "resize_layer_maps",
    "save_fusion_net",
]

_NETS = Path(__file__).resolve().parent.parent / "resources" / "nets"

#: Bundled NETs by the model spec they were trained for.
BUNDLED_NETS: dict[str, str] = {"efficientnet_lite0": "efficientnet_lite0-osie.safetensors"}


class FusionMismatchError(ValueError):
    """A NET is asked to fuse maps of a classifier or layers it was not trained on."""


class FusionNet(nn.Module):
    """The NET fusion network (see the module docstring): (B, L, r, r) -> raw (B, r, r)."""

    def __init__(self, num_layers: int) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError("FusionNet needs at least one layer")
        self.num_layers = num_layers
        depth = num_layers
        self.conv1 = nn.Conv2d(depth, 2 * depth, 3, padding=1)
        self.conv2 = nn.Conv2d(2 * depth, 4 * depth, 3, padding=1)
        self.conv3 = nn.Conv2d(4 * depth, 8 * depth, 3, padding=1)
        self.weighted_sum = nn.Conv2d(8 * depth, 1, 1)

    def forward(self, maps: Tensor) -> Tensor:
        if maps.ndim != 4 or maps.shape[1] != self.num_layers:
            raise ValueError(f"expected maps (B, {self.num_layers}, r, r), got {tuple(maps.shape)}")
        if maps.shape[-1] % 4 or maps.shape[-2] % 4:
            raise ValueError(f"map size must be a multiple of 4, got {tuple(maps.shape[-2:])}")
        x = F.max_pool2d(F.relu(self.conv1(maps)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.conv3(x))
        x = self.weighted_sum(x)
        x = F.interpolate(x, size=maps.shape[-2:], mode="bilinear", align_corners=False)
        return x[:, 0]


def resize_layer_maps(maps: Tensor, size: int) -> Tensor:
    """Per-layer maps (B, L, H, W) resized to (B, L, size, size), bilinear, antialiased when
    shrinking. The map cache and :class:`NetFusion` both use it, so training and inference
    see the same inputs."""
    if tuple(maps.shape[-2:]) == (size, size):
        return maps
    shrink = maps.shape[-2] > size or maps.shape[-1] > size
    return F.interpolate(
        maps, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
    )


class NetFusion:
    """A trained NET as a fusion operator: maps (B, L, H, W) -> (B, H, W) in [0, 1].

    ``layer_names`` makes :class:`~mlfem.MLFEM` refuse other layers; :meth:`check_model`
    (alias :meth:`check_classifier`) refuses the maps of another model than the one the NET
    was trained for: a ``mlfem train-classifier`` checkpoint (sidecar key ``classifier``) or
    any model given to ``mlfem train-fusion --model`` (sidecar key ``model``).
    """

    name = "net"

    def __init__(self, net: FusionNet, metadata: dict[str, Any], path: Path | None = None) -> None:
        self.net = net.eval()
        self.metadata = metadata
        self.path = path

    @property
    def layer_names(self) -> list[str]:
        return list(self.metadata["layers"])

    @property
    def rectify(self) -> bool:
        """Whether the NET was trained on rectified layer outputs (``layers="auto-rectified"``);
        :class:`~mlfem.MLFEM` refuses the other kind of maps."""
        return bool(self.metadata.get("rectify", False))

    @property
    def resolution(self) -> int:
        return int(self.metadata["resolution"])

    @property
    def classifier_fingerprint(self) -> str | None:
        """Fingerprint of the weights of the model the NET was trained for (None: unknown)."""
        for key in ("model", "classifier"):
            record = self.metadata.get(key)
            if isinstance(record, dict) and record.get("fingerprint"):
                return str(record["fingerprint"])
        return None

    #: The same, under the name that fits NETs trained for any model.
    model_fingerprint = classifier_fingerprint

    @property
    def trained_for(self) -> str:
        """The model the NET was trained for, in words (checkpoint path or model spec)."""
        model = self.metadata.get("model")
        if isinstance(model, dict):
            weights = model.get("weights")
            return f"--model {model.get('spec')}" + (f" --weights {weights}" if weights else "")
        return f"classifier {self.metadata.get('classifier', {}).get('path', '?')}"

    def check_classifier(self, classifier: nn.Module | LoadedClassifier | str | Path) -> None:
        """Raise :class:`FusionMismatchError` unless ``classifier`` (a model, a loaded
        checkpoint or a checkpoint path) has the weights this NET was trained for."""
        if isinstance(classifier, (str, Path)):
            fingerprint = read_metadata(classifier).get("fingerprint")
            label = str(classifier)
        elif isinstance(classifier, LoadedClassifier):
            fingerprint, label = classifier.fingerprint, str(classifier.path)
        else:
            fingerprint, label = model_fingerprint(classifier), type(classifier).__name__
        expected = self.classifier_fingerprint
        model = self.metadata.get("model")
        casts = model.get("cast_fingerprints") if isinstance(model, dict) else None
        accepted = {expected, *((casts or {}).values())}
        if expected is not None and fingerprint not in accepted:
            raise FusionMismatchError(
                f"NET fusion {self.path or ''} was trained on the FEM maps of "
                f"{self.trained_for} (fingerprint {expected[:12]}), not of {label} (fingerprint "
                f"{str(fingerprint)[:12]}); train a NET for this model "
                "(mlfem train-fusion --classifier CKPT, or --model SPEC --weights W)"
            )

    #: Hook name for explainers that pass the model they explain to their fusion.
    check_model = check_classifier

    def __call__(self, maps: Tensor) -> Tensor:
        if isinstance(maps, Tensor) and maps.ndim == 5:
            raise ValueError(
                "a NET fusion is trained on images' layer maps (B, L, H, W); for video clips "
                "(B, L, T, H, W) use fusion add, max, top or fem"
            )
        if not isinstance(maps, Tensor) or maps.ndim != 4:
            raise ValueError("maps must be a (B, L, H, W) tensor")
        if maps.shape[1] != self.net.num_layers:
            raise FusionMismatchError(
                f"NET fusion expects {self.net.num_layers} layer maps "
                f"({', '.join(self.layer_names)}), got {maps.shape[1]}"
            )
        net = self.net.to(maps.device)
        with torch.inference_mode():
            small = resize_layer_maps(maps.float(), self.resolution)
            fused = net(small)[:, None]
            fused = F.interpolate(
                fused, size=maps.shape[-2:], mode="bilinear", align_corners=False
            )[:, 0]
            fused = minmax_normalize(fused).to(maps.dtype)
        return fused.clone()

    def __repr__(self) -> str:
        where = f"{self.path}" if self.path is not None else "in memory"
        return f"NetFusion({where}, layers={len(self.layer_names)}, resolution={self.resolution})"


def save_fusion_net(path: str | Path, net: FusionNet, metadata: dict[str, Any]) -> dict[str, Any]:
    """Save a NET (safetensors + JSON sidecar); ``metadata`` needs ``layers`` and ``resolution``."""
    if len(metadata.get("layers", ())) != net.num_layers or "resolution" not in metadata:
        raise ValueError("NET metadata needs 'layers' (one per input map) and 'resolution'")
    return save_checkpoint(
        path, net.state_dict(), {"num_layers": net.num_layers, **metadata}, NET_FORMAT
    )


def load_fusion_net(
    path: str | Path,
    classifier: nn.Module | LoadedClassifier | str | Path | None = None,
    device: str | torch.device = "cpu",
) -> NetFusion:
    """Load a NET saved by ``mlfem train-fusion``; with ``classifier``, refuse (with
    :class:`FusionMismatchError`) a classifier other than the one it was trained for."""
    state, metadata = read_checkpoint(path, NET_FORMAT)
    net = FusionNet(int(metadata["num_layers"]))
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise CheckpointError(
            f"{path}: weights do not fit the NET architecture: {error}"
        ) from error
    fusion = NetFusion(net.to(device), metadata, Path(path))
    if classifier is not None:
        fusion.check_classifier(classifier)
    return fusion


def net_fusion_factory(argument: str | None, alpha: float, normalize: str) -> NetFusion:
    """Factory behind the ``net:PATH`` fusion spec (``alpha`` and ``normalize`` do not apply).

    ``net:bundled`` is the NET shipped with mlfem for its pretrained EfficientNet-Lite0
    (:func:`bundled_net_path`)."""
    if not argument:
        raise ValueError(
            "the net fusion needs the trained NET's path: net:PATH/TO/net.safetensors "
            "(or net:bundled, the NET shipped for efficientnet_lite0)"
        )
    if argument == "bundled":
        argument = str(bundled_net_path())
    try:
        return load_fusion_net(argument)
    except CheckpointError as error:
        raise ValueError(f"fusion net:{argument}: {error}") from error


def bundled_net_path(model: str = "efficientnet_lite0") -> Path:
    """Path of the NET bundled for ``model`` (its ``.json`` record lies beside it); see
    :mod:`mlfem.training.bundled` for how it was made.

    Raises:
        ValueError: no NET is bundled for ``model``.
        FileNotFoundError: the file is missing from this installation.
    """
    if model not in BUNDLED_NETS:
        raise ValueError(
            f"no NET is bundled for {model!r}; bundled: {', '.join(BUNDLED_NETS)}. "
            "Train one with mlfem train-fusion --model ... (docs/training.md)"
        )
    path = _NETS / BUNDLED_NETS[model]
    if not path.is_file():
        raise FileNotFoundError(f"the bundled NET {path} is missing from this installation")
    return path
