"""Turning sampled frames into the clips a video model expects, and maps back onto the frames.

torchvision's video weights (Kinetics-400) were trained on frames resized to a fixed
(128, 171), centre-cropped to 112 x 112 and normalised with the Kinetics mean and standard
deviation; :class:`VideoPreprocessing` repeats that pipeline with torch alone (same bilinear
resize without antialiasing, same rounding to 8 bit after the resize, same crop offsets), and
returns the :class:`~mlfem.models.preprocessing.Placement` that maps a (T, h, w) explanation
back onto the (T, H, W) frames (pixels the crop cut away get 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mlfem.models.preprocessing import Placement

__all__ = ["KINETICS_MEAN", "KINETICS_STD", "VideoPreprocessing", "video_preprocessing_for"]

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)

#: ``crop``: resize (to ``resize_size``), then a centred ``crop_size`` square (the weights'
#: own evaluation transform); ``whole``: every frame resized to ``crop_size`` x ``crop_size``
#: (the whole frame is explained, its aspect ratio is not kept).
VideoFit = Literal["crop", "whole"]
VIDEO_FITS: tuple[str, ...] = ("crop", "whole")


@dataclass(frozen=True)
class VideoPreprocessing:
    """Input pipeline of a video model: sizes, fit and normalisation.

    ``resize_size`` is either an (H, W) pair, the fixed size every frame is resized to (as
    torchvision's ResNet-3D weights do), or one number, the length of the shorter side (as
    torchvision's MViT and Swin3D weights do).
    """

    crop_size: int = 112
    resize_size: tuple[int, int] | int = (128, 171)
    mean: tuple[float, float, float] = KINETICS_MEAN
    std: tuple[float, float, float] = KINETICS_STD
    fit: VideoFit = "crop"
    #: Where the values came from, for messages and the summary file.
    source: str = field(default="Kinetics-400 defaults of torchvision's r3d_18", compare=False)

    def with_fit(self, fit: VideoFit) -> VideoPreprocessing:
        if fit not in VIDEO_FITS:
            raise ValueError(f"video fit must be one of {', '.join(VIDEO_FITS)}, got {fit!r}")
        return replace(self, fit=fit)

    def _resized(self, original: tuple[int, int]) -> tuple[int, int]:
        if self.fit == "whole":
            return (self.crop_size, self.crop_size)
        if isinstance(self.resize_size, int):
            # As torchvision: the shorter side becomes resize_size, the longer one is truncated.
            short, long = sorted(original)
            other = max(1, int(self.resize_size * long / short))
            if original[0] <= original[1]:
                return (self.resize_size, other)
            return (other, self.resize_size)
        return (int(self.resize_size[0]), int(self.resize_size[1]))

    def placement(self, original: tuple[int, int]) -> Placement:
        """Where the model input lies in frames of size ``original`` = (H, W)."""
        resized = self._resized(original)
        crop = min(self.crop_size, *resized)
        # torchvision's center_crop rounds the offsets (not floor division).
        top, left = round((resized[0] - crop) / 2.0), round((resized[1] - crop) / 2.0)
        return Placement(tuple(original), resized, (top, left, crop, crop))

    def __call__(self, frames: np.ndarray) -> tuple[Tensor, Placement]:
        """A normalised float32 clip (3, T, h, w) from (T, H, W, 3) uint8 RGB frames, and the
        placement that maps (T, h, w) results back onto the frames."""
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(
                f"frames must be a (T, H, W, 3) uint8 RGB array, got {frames.dtype} {frames.shape}"
            )
        placement = self.placement((frames.shape[1], frames.shape[2]))
        pixels = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
        if placement.resized != placement.original:
            pixels = F.interpolate(
                pixels, size=placement.resized, mode="bilinear", align_corners=False, antialias=False
            )
            # torchvision resizes the uint8 frames, so its model saw 8-bit values.
            pixels = pixels.round_().clamp_(0.0, 255.0)
        top, left, height, width = placement.region
        pixels = pixels[:, :, top : top + height, left : left + width] / 255.0
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        clip = ((pixels - mean) / std).permute(1, 0, 2, 3).contiguous()
        return clip, placement


def video_preprocessing_for(model: str | None) -> VideoPreprocessing:
    """The preprocessing of torchvision video architecture ``model`` (sizes, mean and std of its
    DEFAULT weights' ``transforms()``: these are the sizes the architecture expects even with
    random weights, and reading them downloads nothing); the r3d_18 Kinetics defaults for any
    other model (a factory, a TorchScript file)."""
    if not model or ":" in model or "." in model:
        return VideoPreprocessing()
    import torchvision

    if model not in torchvision.models.list_models(module=torchvision.models.video):
        return VideoPreprocessing()
    enum = torchvision.models.get_model_weights(model).DEFAULT
    transform = enum.transforms()
    resize = [int(v) for v in transform.resize_size]
    return VideoPreprocessing(
        crop_size=int(transform.crop_size[0]),
        resize_size=resize[0] if len(resize) == 1 else (resize[0], resize[1]),
        mean=tuple(float(v) for v in transform.mean),
        std=tuple(float(v) for v in transform.std),
        source=f"torchvision {enum}",
    )
