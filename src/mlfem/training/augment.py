"""Image batches for training: resizing, normalisation and random augmentation.

Everything is plain torch on batches (no torchvision import) and every random draw comes
from an explicit ``torch.Generator``, whose state the training loop saves, so a resumed
run draws exactly the augmentations an uninterrupted run would have drawn.

The augmentation works on a batch already resized to the model input size S x S
(the "whole image" fit that evaluation and ``mlfem explain`` use by default):
a random crop of 60-100 % of the area with aspect ratio 3/4..4/3, resized back to S x S
(bilinear, ``grid_sample``), an optional horizontal flip, and brightness, contrast and
saturation jitter. Cropping after the resize costs a little resolution compared with
cropping the original image; it keeps the pipeline batched and deterministic.

Clips (B, 3, T, S, S) get a minimal augmentation (:func:`augment_clips`): the horizontal flip
alone, applied to every frame of a clip alike (a crop or jitter drawn per frame would make
objects jump between frames, and one per clip needs a 5-D warp for little gain on the
synthetic video benchmark).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "AUGMENTATIONS",
    "Augmentation",
    "augment_batch",
    "augment_clips",
    "normalize_batch",
    "resize_clip",
    "resize_image",
]


@dataclass(frozen=True)
class Augmentation:
    """Random augmentation of training batches (see the module docstring)."""

    #: Range of the crop's area as a fraction of the image.
    crop_scale: tuple[float, float] = (0.6, 1.0)
    #: Range of the crop's aspect ratio (width / height), sampled log-uniformly.
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    #: Horizontal flip with probability 1/2.
    flip: bool = True
    #: Jitter strengths: factors drawn uniformly in [1 - s, 1 + s].
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Named presets for the command line. ``crop`` leaves out the flip, for data whose
#: classes are not mirror-symmetric (the synthetic benchmark's diagonal textures).
AUGMENTATIONS: dict[str, Augmentation | None] = {
    "standard": Augmentation(),
    "crop": Augmentation(flip=False),
    "none": None,
}


def resize_image(image: Tensor, size: int) -> Tensor:
    """A uint8 image (3, H, W) resized to (3, size, size), bilinear, antialiased when shrinking."""
    if tuple(image.shape[-2:]) == (size, size):
        return image
    shrink = image.shape[-2] > size or image.shape[-1] > size
    resized = F.interpolate(
        image[None].float(),
        size=(size, size),
        mode="bilinear",
        align_corners=False,
        antialias=shrink,
    )[0]
    return resized.round().clamp(0, 255).to(torch.uint8)


def resize_clip(clip: Tensor, size: int) -> Tensor:
    """A uint8 clip (3, T, H, W) with every frame resized as :func:`resize_image` does."""
    if tuple(clip.shape[-2:]) == (size, size):
        return clip
    frames = clip.permute(1, 0, 2, 3)  # (T, 3, H, W): the frames as a batch
    shrink = clip.shape[-2] > size or clip.shape[-1] > size
    resized = F.interpolate(
        frames.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
    )
    return resized.round().clamp(0, 255).to(torch.uint8).permute(1, 0, 2, 3).contiguous()


def normalize_batch(images: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    """Model input from images in [0, 1] (float) or uint8 (B, 3, H, W), or clips
    (B, 3, T, H, W): ``(x - mean) / std`` per channel."""
    if images.dtype == torch.uint8:
        images = images.float() / 255.0
    shape = (1, -1) + (1,) * (images.ndim - 2)
    mean_t = torch.tensor(mean, dtype=images.dtype, device=images.device).view(shape)
    std_t = torch.tensor(std, dtype=images.dtype, device=images.device).view(shape)
    return (images - mean_t) / std_t


def augment_clips(
    clips: Tensor, augmentation: Augmentation, generator: torch.Generator,
    rows: slice | None = None, total: int | None = None,
) -> Tensor:
    """Randomly flipped copy of ``clips`` (B, 3, T, H, W): each clip mirrored left-right, all
    its frames alike, with probability 1/2 when ``augmentation.flip`` (nothing else; see the
    module docstring). Draws as :func:`augment_batch` (``rows`` of a batch of ``total``)."""
    draws = torch.rand(total or clips.shape[0], 8, generator=generator, dtype=torch.float64)
    if rows is not None:
        draws = draws[rows]
    if not augmentation.flip:
        return clips
    flip = (draws[:, 4] < 0.5).to(clips.device).view(-1, 1, 1, 1, 1)
    return torch.where(flip, clips.flip(-1), clips)


def augment_batch(
    images: Tensor, augmentation: Augmentation, generator: torch.Generator,
    rows: slice | None = None, total: int | None = None,
) -> Tensor:
    """Randomly augmented copy of ``images`` (B, 3, H, W), float in [0, 1].

    The random numbers are drawn on the CPU from ``generator`` (same draws on any device).
    ``images`` may be the ``rows`` of a batch of ``total`` images (one process's share under
    torchrun): the whole batch's numbers are drawn and those rows used, as one process would.
    """
    batch = images.shape[0]
    draws = torch.rand(total or batch, 8, generator=generator, dtype=torch.float64)
    if rows is not None:
        draws = draws[rows]
    lo, hi = augmentation.crop_scale
    area = lo + (hi - lo) * draws[:, 0]
    log_lo, log_hi = math.log(augmentation.crop_ratio[0]), math.log(augmentation.crop_ratio[1])
    ratio = torch.exp(log_lo + (log_hi - log_lo) * draws[:, 1])
    # Crop width and height as fractions of the image side, clipped to the image.
    width = torch.sqrt(area * ratio).clamp(max=1.0)
    height = torch.sqrt(area / ratio).clamp(max=1.0)
    # Crop centre in normalised coordinates [-1, 1], chosen so the crop stays inside.
    centre_x = (2 * draws[:, 2] - 1) * (1 - width)
    centre_y = (2 * draws[:, 3] - 1) * (1 - height)
    flip = torch.ones(batch, dtype=torch.float64)
    if augmentation.flip:
        flip[draws[:, 4] < 0.5] = -1.0
    theta = torch.zeros(batch, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = width * flip
    theta[:, 0, 2] = centre_x
    theta[:, 1, 1] = height
    theta[:, 1, 2] = centre_y
    theta = theta.to(device=images.device, dtype=images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def factor(column: int, strength: float) -> Tensor:
        values = 1.0 + strength * (2 * draws[:, column] - 1)
        return values.to(device=images.device, dtype=images.dtype).view(batch, 1, 1, 1)

    out = out * factor(5, augmentation.brightness)
    grey = (0.299 * out[:, 0] + 0.587 * out[:, 1] + 0.114 * out[:, 2]).unsqueeze(1)
    mean_grey = grey.mean(dim=(2, 3), keepdim=True)
    out = mean_grey + (out - mean_grey) * factor(6, augmentation.contrast)
    grey = (0.299 * out[:, 0] + 0.587 * out[:, 1] + 0.114 * out[:, 2]).unsqueeze(1)
    out = grey + (out - grey) * factor(7, augmentation.saturation)
    return out.clamp(0.0, 1.0)
