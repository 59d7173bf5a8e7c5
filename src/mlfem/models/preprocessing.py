"""Turning images into model inputs, and explanation maps back into image coordinates.

Preprocessing must match the weights a model was trained with: the input size, how
the image is fitted to it, and the normalisation. Images are resized with PIL so
that models from any library (torchvision, timm, TorchScript) share one code path.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from mlfem.images import to_rgb8
from mlfem.normalize import resize_maps

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Fit", "Placement", "Preprocessing"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: How an image is fitted to the model input:
#: ``whole``: the whole image resized to ``crop_size`` x ``crop_size`` (aspect not kept);
#: ``crop``: shorter side resized to ``resize_size``, then a centred ``crop_size`` square
#: (torchvision's evaluation transform); ``none``: the image at its own size.
Fit = Literal["whole", "crop", "none"]
FITS: tuple[str, ...] = ("whole", "crop", "none")

_RESAMPLING = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
}


@dataclass(frozen=True)
class Placement:
    """Where the model input came from in the original image, to map results back.

    ``region`` is (top, left, height, width) of the model input inside the image as
    resized to ``resized`` = (H', W'); ``original`` is the image's (H, W).
    """

    original: tuple[int, int]
    resized: tuple[int, int]
    region: tuple[int, int, int, int]

    def to_original(self, saliency: Tensor) -> Tensor:
        """Map saliency maps (..., h, w) of the model input onto the original image (..., H, W).

        Pixels outside a centre crop were not seen by the model and get 0.
        """
        top, left, height, width = self.region
        inside = resize_maps(saliency, (height, width))
        if (height, width) != self.resized:
            canvas = inside.new_zeros(*inside.shape[:-2], *self.resized)
            canvas[..., top : top + height, left : left + width] = inside
            inside = canvas
        return resize_maps(inside, self.original).clamp(0.0, 1.0)


@dataclass(frozen=True)
class Preprocessing:
    """Input pipeline of a model: fit, sizes, interpolation and normalisation."""

    crop_size: int = 224
    resize_size: int = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    fit: Fit = "whole"
    #: Where the values came from, for messages and run records.
    source: str = field(default="ImageNet defaults", compare=False)

    def with_fit(self, fit: Fit) -> Preprocessing:
        if fit not in FITS:
            raise ValueError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
        return replace(self, fit=fit)

    def __call__(self, image: Image.Image) -> tuple[Tensor, Placement]:
        """A normalised float32 tensor (3, h, w) and the placement to map results back.

        16-bit images are scaled to 8 bit, floating-point ones refused
        (:func:`mlfem.images.to_rgb8`)."""
        image = to_rgb8(image)
        original = (image.height, image.width)
        resample = _RESAMPLING.get(self.interpolation, Image.Resampling.BILINEAR)
        if self.fit == "none":
            resized = original
            region = (0, 0, *original)
        elif self.fit == "whole":
            image = image.resize((self.crop_size, self.crop_size), resample)
            resized = (self.crop_size, self.crop_size)
            region = (0, 0, *resized)
        else:
            scale = self.resize_size / min(original)
            resized = (max(1, round(original[0] * scale)), max(1, round(original[1] * scale)))
            image = image.resize((resized[1], resized[0]), resample)
            crop = min(self.crop_size, *resized)
            top, left = (resized[0] - crop) // 2, (resized[1] - crop) // 2
            image = image.crop((left, top, left + crop, top + crop))
            region = (top, left, crop, crop)
        array = np.asarray(image, dtype=np.float32) / 255.0
        tensor = torch.from_numpy(array).permute(2, 0, 1)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1)
        return (tensor - mean) / std, Placement(original, resized, region)
