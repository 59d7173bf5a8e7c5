"""FEM on one feature tensor: the paper's formula, checked by hand and against a direct version."""

from __future__ import annotations

import pytest
import torch

from mlfem import fem_saliency


def test_golden_hand_computed() -> None:
    # One image, two channels of 2x2.
    # Channel 0: [0, 0, 0, 4]: mean 1, population std sqrt(3) ~ 1.732;
    #   k=1 threshold 2.732: only the 4 is kept, weight = mean = 1.
    # Channel 1: [1, 3, 1, 3]: mean 2, std 1; k=1 threshold 3: the two 3s are kept (>=), weight 2.
    activations = torch.tensor([[[[0.0, 0.0], [0.0, 4.0]], [[1.0, 3.0], [1.0, 3.0]]]])
    expected = torch.tensor([[[0.0, 2.0], [0.0, 1.0 + 2.0]]])
    torch.testing.assert_close(fem_saliency(activations, k=1.0), expected)


def test_threshold_is_inclusive_and_constant_channel_fires_everywhere() -> None:
    # A constant channel has sigma = 0, so every pixel equals mu + k*sigma and is kept.
    activations = torch.full((1, 1, 3, 3), 0.7)
    torch.testing.assert_close(fem_saliency(activations), torch.full((1, 3, 3), 0.7))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_direct_formula(dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(1)
    activations = torch.relu(torch.randn(3, 40, 9, 11, generator=generator, dtype=torch.float64))
    mean = activations.mean(dim=(2, 3), keepdim=True)
    std = activations.std(dim=(2, 3), correction=0, keepdim=True)
    expected = ((activations >= mean + 2 * std) * mean).sum(1)
    result = fem_saliency(activations.to(dtype), k=2.0)
    assert result.shape == (3, 9, 11)
    torch.testing.assert_close(result.double(), expected, rtol=1e-5, atol=1e-5)


def test_chunking_does_not_change_the_result() -> None:
    activations = torch.relu(torch.randn(2, 33, 7, 5, generator=torch.Generator().manual_seed(2)))
    whole = fem_saliency(activations, chunk_elements=1 << 30)
    for chunk in (1, 70, 700):
        torch.testing.assert_close(fem_saliency(activations, chunk_elements=chunk), whole)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_accumulates_in_float32(dtype: torch.dtype) -> None:
    # Large activations: float16 sums of squares would overflow (> 65504).
    activations = torch.relu(torch.randn(2, 16, 32, 32, generator=torch.Generator().manual_seed(3))) * 200
    reference = fem_saliency(activations.to(dtype).float())
    result = fem_saliency(activations.to(dtype))
    assert result.dtype == torch.float32
    assert torch.isfinite(result).all()
    torch.testing.assert_close(result, reference, rtol=1e-3, atol=1e-2)


def test_bad_input_errors() -> None:
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        fem_saliency(torch.zeros(3, 4, 5))
    with pytest.raises(TypeError, match="floating point"):
        fem_saliency(torch.zeros(1, 2, 3, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        fem_saliency([[1.0]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="k must be"):
        fem_saliency(torch.zeros(1, 1, 2, 2), k=float("nan"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cpu_and_accelerator_statistics_agree(dtype: torch.dtype) -> None:
    # The accelerator route (one var_mean kernel) is checked here on the CPU, so that a
    # machine without a GPU still tests it against the CPU route (sum + norm).
    from mlfem._fem_statistics import _cpu_mean_and_variance, _welford_mean_and_variance

    generator = torch.Generator().manual_seed(3)
    rows = torch.relu(torch.randn(64, 49, generator=generator)).to(dtype)
    rows[0] = 0.5  # a constant row: recomputed exactly on the CPU route
    rows[1] = 0.0  # a dead channel
    cpu_mean, cpu_variance = _cpu_mean_and_variance(rows)
    welford_mean, welford_variance = _welford_mean_and_variance(rows)
    assert cpu_mean.dtype == welford_mean.dtype == torch.float64
    torch.testing.assert_close(cpu_mean, welford_mean, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(cpu_variance, welford_variance, rtol=1e-5, atol=1e-7)
    assert cpu_variance[0] == 0 and cpu_variance[1] == 0


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_cpu_and_accelerator_thresholds_agree(dtype: torch.dtype, channels_last: bool) -> None:
    # The CPU route forms the threshold in numpy, the accelerator route in torch: the same
    # float64 formula. Float64 features agree to rounding; float32 sums and Welford's
    # float32 accumulation differ by about 1e-6 relative.
    from mlfem._fem_statistics import (
        _accelerator_mean_and_threshold,
        _cpu_mean_and_threshold,
    )

    generator = torch.Generator().manual_seed(8)
    rows = (torch.randn(48, 64, generator=generator) * 3).to(dtype)
    rows[0] = 0.5  # constant
    rows[1] = 0.0  # dead
    rows[2] = -rows[2].abs()  # negative threshold: lowered, not raised
    features, dim = (rows, -1) if not channels_last else (rows.view(3, 16, 64).transpose(1, 2), 1)
    cpu = _cpu_mean_and_threshold(features, 2.0, dim)
    accelerator = _accelerator_mean_and_threshold(features, 2.0, dim)
    expected_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    for from_cpu, from_accelerator in zip(cpu, accelerator):
        assert from_cpu.dtype == from_accelerator.dtype == expected_dtype
        assert from_cpu.shape == from_accelerator.shape == features.sum(dim).shape
        torch.testing.assert_close(from_cpu, from_accelerator, rtol=tolerance, atol=tolerance)
    # The constant channel's threshold sits just below its value: every pixel is kept.
    first = (0, 0) if channels_last else (0,)
    assert cpu[1][first] < 0.5 <= cpu[1][first] * (1 + 2e-6)


def test_every_chunking_route_gives_the_same_map() -> None:
    # One chunk for the batch, several images per chunk, one image per chunk, and slices
    # of channels within an image: four code paths, one result.
    activations = torch.relu(torch.randn(3, 33, 7, 5, generator=torch.Generator().manual_seed(4)))
    per_image = 33 * 7 * 5
    whole = fem_saliency(activations)
    for chunk in (3 * per_image, 2 * per_image, per_image, per_image - 1, 35):
        torch.testing.assert_close(fem_saliency(activations, chunk_elements=chunk), whole)


def test_nearly_constant_channels_are_exact() -> None:
    # Variance about 1e-7 of the mean square: the one-pass formula, from float32 sums, is
    # off by far more than that; those channels are recomputed two-pass in float64. (No
    # activation lies within the 1e-6 relative tie tolerance of its threshold here.)
    generator = torch.Generator().manual_seed(5)
    activations = 1000.0 + 0.3 * torch.randn(2, 4, 6, 6, generator=generator, dtype=torch.float64)
    activations[:, 1] = 1000.0  # exactly constant: every pixel is a tie and is kept
    for dtype in (torch.float64, torch.float32):
        rounded = activations.to(dtype).double()  # the data FEM sees, in exact arithmetic
        mean = rounded.mean(dim=(2, 3), keepdim=True)
        std = rounded.std(dim=(2, 3), correction=0, keepdim=True)
        expected = ((rounded >= mean + 2 * std) * mean).sum(1)
        result = fem_saliency(activations.to(dtype))
        torch.testing.assert_close(result.double(), expected, rtol=1e-6, atol=0.0)
        # The constant channel fires everywhere.
        assert bool((result >= 1000.0 * (1 - 1e-6)).all())


def test_inputs_that_require_grad_give_the_same_map() -> None:
    activations = torch.relu(torch.randn(2, 8, 5, 5, generator=torch.Generator().manual_seed(6)))
    expected = fem_saliency(activations)
    result = fem_saliency(activations.clone().requires_grad_(True))
    assert not result.requires_grad  # documented: the map is not differentiable
    torch.testing.assert_close(result, expected)
