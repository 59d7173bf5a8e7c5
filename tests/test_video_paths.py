"""The faster routes of the video path against their definitions: per-frame FEM read in the
volume's own layout (no copy into a batch of frames), and trilinear resizing as bilinear
frames then a linear step along T."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mlfem.fem import fem_saliency
from mlfem.normalize import resize_maps


def _frames_as_images(volumes: torch.Tensor, k: float) -> torch.Tensor:
    """Per-frame FEM by definition: every (clip, frame) an image of C channels."""
    batch, channels, frames, height, width = volumes.shape
    images = volumes.transpose(1, 2).reshape(batch * frames, channels, height, width)
    return fem_saliency(images, k).view(batch, frames, height, width)


def _volumes(dtype: torch.dtype) -> torch.Tensor:
    volumes = torch.relu(torch.randn(3, 7, 4, 5, 6, generator=torch.Generator().manual_seed(0)))
    volumes[0, 2] = 0.5  # a constant channel: every value is a tie, kept
    volumes[1, 3, 1] = 2.0  # one constant frame of a channel
    volumes[2, 4] = 1000.0 + 1e-3 * volumes[2, 4]  # nearly constant: recomputed exactly
    return volumes.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("chunk_elements", [None, 1, 17, 130, 10_000])
def test_per_frame_fem_is_fem_of_each_frame(dtype: torch.dtype, chunk_elements: int | None) -> None:
    volumes = _volumes(dtype)
    result = fem_saliency(volumes, k=1.5, per_frame=True, chunk_elements=chunk_elements)
    expected = _frames_as_images(volumes, 1.5)
    assert result.dtype == expected.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    torch.testing.assert_close(result, expected, rtol=1e-6, atol=1e-6)
    # The constant channel's frames are kept whole: its mean (0.5) is in every pixel.
    assert bool((result[0] >= 0.5 - 1e-6).all())


def test_per_frame_fem_of_a_non_contiguous_volume_and_an_empty_one() -> None:
    volumes = _volumes(torch.float32)
    strided = volumes.transpose(3, 4).contiguous().transpose(3, 4)  # same values, other strides
    assert not strided.is_contiguous()
    torch.testing.assert_close(fem_saliency(strided, per_frame=True), fem_saliency(volumes, per_frame=True))
    empty = fem_saliency(torch.zeros(2, 0, 3, 4, 5), per_frame=True)
    assert empty.shape == (2, 3, 4, 5) and not empty.any()


@pytest.mark.parametrize(
    ("shape", "size"),
    [((2, 16, 56, 56), (16, 112, 112)), ((2, 2, 7, 7), (16, 112, 112)), ((3, 4, 5, 6), (2, 9, 3)),
     ((1, 2, 8, 3, 3), (8, 6, 6)), ((2, 5, 4, 4), (5, 4, 4))],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_trilinear_resize_is_torchs(shape: tuple[int, ...], size: tuple[int, int, int], dtype: torch.dtype) -> None:
    maps = torch.rand(shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    flat = maps.reshape(-1, 1, *shape[-3:])
    expected = F.interpolate(flat, size=size, mode="trilinear", align_corners=False)
    resized = resize_maps(maps, size)
    assert resized.shape == (*shape[:-3], *size) and resized.dtype == dtype
    tolerance = 1e-12 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(resized, expected.view_as(resized), rtol=0, atol=tolerance)


def test_cached_weights_serve_inference_mode_and_autograd() -> None:
    with torch.inference_mode():
        resize_maps(torch.rand(1, 3, 4, 4), (6, 8, 8))  # fills the cache in inference mode
    maps = torch.rand(1, 3, 4, 4, requires_grad=True)
    resize_maps(maps, (6, 8, 8)).sum().backward()
    # Every output value is a convex combination of the inputs (weights summing to 1), so
    # the gradients of their sum add up to the number of output values.
    torch.testing.assert_close(maps.grad.sum(), torch.tensor(6.0 * 8 * 8))
