"""The Feature Explanation Method (FEM) on one feature tensor.

FEM keeps, in every channel, the activations that are unusually strong for that
channel (``F >= mu + k * sigma``) and weights the binary mask by the channel's mean
activation: ``s = sum_c [F_c >= mu_c + k * sigma_c] * mu_c`` (docs/design-decisions.md §1).

Video volumes (B, C, T, H, W) take the same route: by default each channel's statistics
are taken over the whole clip, so a frame where a channel fires unusually strongly stands
out (the frames are stacked into one tall map); ``per_frame=True`` takes them per frame.

The computation is written for speed and bounded memory, because MLFEM runs it
inside forward hooks on every block of the network (benchmarks/profile_mlfem.py
shows where the time goes):

* the statistics of a whole layer are computed at once (few, large operations); the
  binary masks are then built a few images at a time in one scratch buffer allocated
  once per call, so the temporaries stay small and no large tensor is allocated (and
  page-faulted) per chunk; each chunk's weighted channel sum is one batched matrix
  product of the channel means with the masks;
* the statistics and thresholds (mean, standard deviation, ties, nearly constant
  channels) are :mod:`mlfem._fem_statistics`'s, with one route for the CPU and one for
  accelerators;
* channels-last activations (ConvNeXt's blocks) are read in their own layout, without
  a copy.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mlfem._compiled_fem import compiled_mode, compiled_saliency
from mlfem._fem_statistics import TIE_TOLERANCE, channel_mean_and_threshold, map_dtype

__all__ = ["fem_saliency"]

# Elements per chunk (batch x channels x pixels). About 4 MiB of float32 on CPU keeps
# the temporaries in cache; on accelerators fewer, larger kernels are cheaper.
_CPU_CHUNK_ELEMENTS = 1 << 20
_ACCELERATOR_CHUNK_ELEMENTS = 1 << 24


def fem_saliency(
    activations: Tensor,
    k: float = 2.0,
    *,
    per_frame: bool = False,
    chunk_elements: int | None = None,
) -> Tensor:
    """Raw FEM saliency of a batch of feature maps, or of video feature volumes.

    Args:
        activations: feature maps (B, C, H, W) of images, or feature volumes
            (B, C, T, H, W) of clips (a 3-D CNN's layer), normally taken after the
            layer's non-linearity. Any floating dtype.
        k: number of standard deviations above the channel mean that an activation
            must reach to be kept (``>=``). The paper uses 2.
        per_frame: for volumes only: take each channel's mean and standard deviation
            per frame, over (H, W), instead of over the whole (T, H, W) volume (the
            default). docs/design-decisions.md §6 says why the clip is the default.
        chunk_elements: optional override of how many elements are processed at once
            (the eager route only; see :mod:`mlfem._compiled_fem` for the compiled one).

    Returns:
        A tensor (B, H, W), or (B, T, H, W) for volumes, on the activations' device,
        float64 for float64 input and float32 otherwise (half-precision activations are
        accumulated in float32): ``sum_c [F_c >= mu_c + k * sigma_c] * mu_c`` with ``mu``
        and ``sigma`` the per-image (per-clip, or per-frame), per-channel mean and
        population standard deviation. No resizing and no normalisation. The map is not
        differentiable: the statistics that build the mask and weight it are computed
        without autograd.
    """
    if not isinstance(activations, Tensor):
        raise TypeError(f"activations must be a torch.Tensor, got {type(activations).__name__}")
    if activations.ndim not in (4, 5):
        raise ValueError(
            "activations must have shape (B, C, H, W), or (B, C, T, H, W) for video, got "
            f"{tuple(activations.shape)}"
        )
    if not activations.is_floating_point():
        raise TypeError(f"activations must be floating point, got {activations.dtype}")
    if not (k == k) or k in (float("inf"), float("-inf")):  # NaN or infinite
        raise ValueError(f"k must be a finite number, got {k}")
    if activations.ndim == 5:
        return _volume_saliency(activations, k, per_frame, chunk_elements)

    batch, channels, height, width = activations.shape
    pixels = height * width
    out_dtype = map_dtype(activations)
    device = activations.device
    if activations.numel() == 0:  # no image, channel or pixel: nothing is strong anywhere
        return torch.zeros(batch, height, width, dtype=out_dtype, device=device)
    mode = compiled_mode()  # the optional torch.compile route (mlfem._compiled_fem)
    if mode is None and _is_channels_last(activations):
        return _channels_last_saliency(activations, k, chunk_elements)
    # One row per (image, channel): a contiguous view, so the statistics need no copy.
    features = activations.contiguous().view(batch, channels, pixels)
    if mode is not None:
        compiled = compiled_saliency(features, k, TIE_TOLERANCE, mode)
        if compiled is not None:
            return compiled.view(batch, height, width)
    # Statistics for the whole layer at once: a handful of small operations per layer
    # instead of per chunk (their fixed cost dominated on the deep, small layers).
    mean, threshold = channel_mean_and_threshold(features.view(batch * channels, pixels), k)
    weights = mean.view(batch, 1, channels)
    threshold = threshold.view(batch, channels, 1)

    chunk_elements = _chunk_size(chunk_elements, device)
    per_image = channels * pixels
    if per_image <= chunk_elements:
        # Whole images per chunk: the mask of n images (n, C, P) weighted by each image's
        # channel means is one batched matrix product (n, 1, C) @ (n, C, P), written
        # straight into its rows of the result (no zero fill, no accumulation).
        images_per_chunk = min(batch, chunk_elements // per_image)
        buffer = torch.empty(images_per_chunk * per_image, dtype=out_dtype, device=device)
        if images_per_chunk == batch:  # the common case of small layers: no slicing at all
            strong = buffer.view(batch, channels, pixels)
            torch.ge(features, threshold, out=strong)
            return torch.bmm(weights, strong).view(batch, height, width)
        saliency = torch.empty(batch, 1, pixels, dtype=out_dtype, device=device)
        for start in range(0, batch, images_per_chunk):
            stop = min(batch, start + images_per_chunk)
            strong = buffer[: (stop - start) * per_image].view(stop - start, channels, pixels)
            torch.ge(features[start:stop], threshold[start:stop], out=strong)
            torch.bmm(weights[start:stop], strong, out=saliency[start:stop])
        return saliency.view(batch, height, width)
    # Large feature maps: slices of channels within one image.
    saliency = torch.zeros(batch, 1, pixels, dtype=out_dtype, device=device)
    channels_per_chunk = max(1, chunk_elements // pixels)
    buffer = torch.empty(channels_per_chunk * pixels, dtype=out_dtype, device=device)
    for image in range(batch):
        for first in range(0, channels, channels_per_chunk):
            last = min(channels, first + channels_per_chunk)
            strong = buffer[: (last - first) * pixels].view(last - first, pixels)
            torch.ge(features[image, first:last], threshold[image, first:last], out=strong)
            saliency[image].addmm_(weights[image, :, first:last], strong)
    return saliency.view(batch, height, width)


def _chunk_size(chunk_elements: int | None, device: torch.device) -> int:
    """Elements per chunk: the caller's, else the device's default."""
    if chunk_elements is not None:
        return chunk_elements
    return _CPU_CHUNK_ELEMENTS if device.type == "cpu" else _ACCELERATOR_CHUNK_ELEMENTS


def _is_channels_last(activations: Tensor) -> bool:
    """Whether a (B, C, H, W) tensor is laid out channels-last and not also contiguous (a
    ConvNeXt block's output, or any model run in ``torch.channels_last``)."""
    return activations.is_contiguous(memory_format=torch.channels_last) and not (
        activations.is_contiguous()
    )


def _channels_last_saliency(activations: Tensor, k: float, chunk_elements: int | None) -> Tensor:
    """FEM of channels-last feature maps, read in their own layout: (B, P, C) rows of
    channels, one per pixel. ``.contiguous()`` would copy every such layer's output (18
    blocks of ConvNeXt-T); here the statistics reduce over the pixel dimension, and each
    image's map is the product of its (P, C) mask with its channel means. Same guarantees
    as the contiguous route (ties, near-constant channels, bounded temporaries)."""
    batch, channels, height, width = activations.shape
    pixels = height * width
    out_dtype = map_dtype(activations)
    device = activations.device
    features = activations.permute(0, 2, 3, 1).view(batch, pixels, channels)  # no copy
    mean, threshold = channel_mean_and_threshold(features, k, dim=1)  # (B, C) each
    # (B, 1, C) @ (B, C, P): the mask read through its transpose, a matrix product that
    # BLAS takes as is (a (P, C) @ (C, 1) product per image was 3x slower).
    weights = mean.view(batch, 1, channels)
    threshold = threshold.view(batch, 1, channels)
    chunk_elements = _chunk_size(chunk_elements, device)
    saliency = torch.empty(batch, 1, pixels, dtype=out_dtype, device=device)
    per_image = channels * pixels
    images_per_chunk = max(1, min(batch, chunk_elements // per_image))
    # Whole images when they fit a chunk, otherwise runs of pixels of one image.
    pixels_per_chunk = pixels if images_per_chunk > 1 else max(1, chunk_elements // channels)
    buffer = torch.empty(
        images_per_chunk * min(pixels, pixels_per_chunk) * channels, dtype=out_dtype, device=device
    )
    for start in range(0, batch, images_per_chunk):
        stop = min(batch, start + images_per_chunk)
        for first in range(0, pixels, pixels_per_chunk):
            last = min(pixels, first + pixels_per_chunk)
            strong = buffer[: (stop - start) * (last - first) * channels].view(
                stop - start, last - first, channels
            )
            torch.ge(features[start:stop, first:last], threshold[start:stop], out=strong)
            torch.bmm(
                weights[start:stop], strong.transpose(1, 2), out=saliency[start:stop, :, first:last]
            )
    return saliency.view(batch, height, width)


def _volume_saliency(
    volumes: Tensor, k: float, per_frame: bool, chunk_elements: int | None
) -> Tensor:
    """FEM of (B, C, T, H, W) volumes, with every guarantee of the image case (chunking,
    ties, near-constant channels) unchanged."""
    batch, channels, frames, height, width = volumes.shape
    if per_frame:
        return _per_frame_saliency(volumes, k, chunk_elements)
    # Statistics over (T, H, W): the frames stacked along H are one tall map per channel
    # (a contiguous view, no copy), and FEM is pointwise once the statistics are known.
    tall = volumes.contiguous().view(batch, channels, frames * height, width)
    saliency = fem_saliency(tall, k, chunk_elements=chunk_elements)
    return saliency.view(batch, frames, height, width)


def _per_frame_saliency(volumes: Tensor, k: float, chunk_elements: int | None) -> Tensor:
    """FEM with statistics per (clip, channel, frame), read in the volumes' own layout.

    Each (channel, frame) of a contiguous (B, C, T, H, W) volume is already a contiguous
    row of H * W values, so the statistics need no copy (moving the frames into the batch,
    (B * T, C, H, W), cost a full copy of every layer's activations). The masks are built a
    few channels at a time, and each frame's weighted channel sum is one batched product
    (T, 1, c) @ (T, c, P) over a transposed view of the mask.
    """
    batch, channels, frames, height, width = volumes.shape
    pixels = height * width
    out_dtype = map_dtype(volumes)
    device = volumes.device
    if volumes.numel() == 0:
        return torch.zeros(batch, frames, height, width, dtype=out_dtype, device=device)
    features = volumes.contiguous().view(batch, channels, frames, pixels)
    mean, threshold = channel_mean_and_threshold(features.view(-1, pixels), k)
    # (B, T, 1, C): per clip, a batch over frames of one row of channel weights.
    weights = mean.to(out_dtype).view(batch, channels, frames).transpose(1, 2).unsqueeze(2)
    threshold = threshold.view(batch, channels, frames, 1)
    chunk_elements = _chunk_size(chunk_elements, device)
    per_channel = frames * pixels
    channels_per_chunk = max(1, min(channels, chunk_elements // per_channel))
    # Small layers: the masks of several clips at once, then one product per clip.
    clips_per_chunk = max(1, min(batch, chunk_elements // (channels * per_channel)))
    saliency = torch.zeros(batch, frames, 1, pixels, dtype=out_dtype, device=device)
    buffer = torch.empty(
        clips_per_chunk * channels_per_chunk * per_channel, dtype=out_dtype, device=device
    )
    for start in range(0, batch, clips_per_chunk):
        stop = min(batch, start + clips_per_chunk)
        for first in range(0, channels, channels_per_chunk):
            last = min(channels, first + channels_per_chunk)
            strong = buffer[: (stop - start) * (last - first) * per_channel].view(
                stop - start, last - first, frames, pixels
            )
            torch.ge(
                features[start:stop, first:last], threshold[start:stop, first:last], out=strong
            )
            for clip in range(start, stop):
                saliency[clip].baddbmm_(
                    weights[clip, :, :, first:last], strong[clip - start].transpose(0, 1)
                )
    return saliency.view(batch, frames, height, width)
