"""FEM on channels-last feature maps (ConvNeXt's blocks, models run in torch.channels_last):
read in their own layout, with the contiguous route's result and guarantees."""

from __future__ import annotations

import pytest
import torch

from mlfem import fem_saliency
from mlfem.fem import _is_channels_last
from tiny_models import TinyCNN


def _channels_last(activations: torch.Tensor) -> torch.Tensor:
    result = activations.contiguous(memory_format=torch.channels_last)
    assert _is_channels_last(result) and not result.is_contiguous()
    return result


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_channels_last_equals_the_contiguous_route(dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(11)
    activations = torch.relu(torch.randn(3, 40, 9, 11, generator=generator)).to(dtype)
    activations[1, 3] = 0.0  # a dead channel
    activations[2, 5] = 0.25  # a constant channel: every pixel is a tie and is kept
    activations[0, 7, :, :4] = 2.0  # ties in a small-integer channel
    activations[0, 7, :, 4:] = 0.0
    expected = fem_saliency(activations.contiguous())
    result = fem_saliency(_channels_last(activations))
    assert result.shape == (3, 9, 11) and result.is_contiguous()
    torch.testing.assert_close(result, expected, rtol=1e-6, atol=1e-6)


def test_every_channels_last_chunking_gives_the_same_map() -> None:
    # Whole batch, several images, one image, and runs of pixels within an image.
    activations = torch.relu(torch.randn(3, 33, 7, 5, generator=torch.Generator().manual_seed(12)))
    per_image = 33 * 7 * 5
    expected = fem_saliency(activations)
    layout = _channels_last(activations)
    for chunk in (3 * per_image, 2 * per_image, per_image, per_image - 1, 33 * 4, 1):
        torch.testing.assert_close(fem_saliency(layout, chunk_elements=chunk), expected)


def test_channels_last_nearly_constant_channels_are_exact() -> None:
    # The exact two-pass recomputation reads the flagged channels through a transposed
    # view: the same values as the contiguous route's rows.
    generator = torch.Generator().manual_seed(13)
    activations = 1000.0 + 0.3 * torch.randn(2, 4, 6, 6, generator=generator, dtype=torch.float64)
    activations[:, 1] = 1000.0
    for dtype in (torch.float64, torch.float32):
        expected = fem_saliency(activations.to(dtype))
        result = fem_saliency(_channels_last(activations.to(dtype)))
        torch.testing.assert_close(result, expected, rtol=1e-7, atol=0.0)
        assert bool((result >= 1000.0 * (1 - 1e-6)).all())


def test_the_accelerator_statistics_read_channels_last_too(monkeypatch: pytest.MonkeyPatch) -> None:
    import mlfem._fem_statistics

    activations = torch.relu(torch.randn(2, 16, 8, 8, generator=torch.Generator().manual_seed(14)))
    expected = fem_saliency(activations)
    monkeypatch.setattr(
        mlfem._fem_statistics, "_cpu_mean_and_threshold", mlfem._fem_statistics._accelerator_mean_and_threshold
    )
    torch.testing.assert_close(fem_saliency(_channels_last(activations)), expected)


def test_channels_last_is_read_without_copying_the_activations(monkeypatch: pytest.MonkeyPatch) -> None:
    # The point of the route: no .contiguous() copy of the layer's output.
    activations = _channels_last(torch.rand(2, 8, 6, 6))
    calls = []
    original = torch.Tensor.contiguous

    def recording(self: torch.Tensor, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(self.data_ptr() == activations.data_ptr() and not self.is_contiguous())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "contiguous", recording)
    fem_saliency(activations)
    assert not any(calls)


def test_mlfem_on_a_channels_last_model_equals_the_contiguous_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlfem._deferred_fem
    import mlfem.fem
    from mlfem import MLFEM

    # Read in the hooks, as large layers are (small ones wait for the end of the pass).
    monkeypatch.setattr(mlfem._deferred_fem, "_ELEMENTS_PER_IMAGE", 0)
    torch.manual_seed(0)
    model = TinyCNN().eval()
    images = torch.randn(2, 3, 32, 32)
    expected = MLFEM(model)(images)
    taken = []
    route = mlfem.fem._channels_last_saliency
    monkeypatch.setattr(mlfem.fem, "_channels_last_saliency", lambda *a: taken.append(1) or route(*a))
    model_cl = model.to(memory_format=torch.channels_last)
    result = MLFEM(model_cl)(images.contiguous(memory_format=torch.channels_last))
    assert taken  # the layers' outputs were channels-last and read as such
    torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-5)
