"""Resizing and normalisation helpers, including the extremes of a resized map."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mlfem import minmax_normalize, resize_maps, resized_extrema


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 40),
    width=st.integers(1, 40),
    out_height=st.integers(1, 300),
    out_width=st.integers(1, 300),
    seed=st.integers(0, 2**31 - 1),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_resized_extrema_equal_those_of_the_resized_map(
    height: int, width: int, out_height: int, out_width: int, seed: int, dtype: torch.dtype
) -> None:
    # Up- and downsampling, odd ratios, and skewed values that put extremes anywhere.
    generator = torch.Generator().manual_seed(seed)
    maps = (torch.rand(3, height, width, generator=generator) ** 4).to(dtype)
    low, high = resized_extrema(maps, (out_height, out_width))
    resized = resize_maps(maps, (out_height, out_width))
    assert low.shape == high.shape == (3, 1, 1)
    tolerance = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(low.flatten(), resized.flatten(-2).amin(-1), rtol=0, atol=tolerance)
    torch.testing.assert_close(high.flatten(), resized.flatten(-2).amax(-1), rtol=0, atol=tolerance)


def test_resized_extrema_of_a_constant_map_have_no_span() -> None:
    maps = torch.full((2, 7, 7), 0.3)
    low, high = resized_extrema(maps, (224, 224))
    assert torch.equal(low, high)
    assert torch.equal(low, torch.full((2, 1, 1), 0.3))


def test_resized_extrema_keep_leading_dimensions_and_same_size_is_exact() -> None:
    maps = torch.rand(2, 3, 5, 6)
    low, high = resized_extrema(maps, (5, 6))
    assert torch.equal(low, maps.amin(dim=(-2, -1), keepdim=True))
    assert torch.equal(high, maps.amax(dim=(-2, -1), keepdim=True))
    low, high = resized_extrema(maps, (17, 9))
    assert low.shape == (2, 3, 1, 1)


def test_minmax_normalize_maps_constant_maps_to_zeros() -> None:
    maps = torch.stack([torch.full((4, 4), 2.0), torch.arange(16.0).view(4, 4)])
    normalised = minmax_normalize(maps)
    assert torch.equal(normalised[0], torch.zeros(4, 4))
    assert normalised[1].min() == 0 and normalised[1].max() == 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("in_size", [(7, 7), (14, 9), (56, 56), (112, 100)])
def test_resize_into_equals_resize_maps(dtype: torch.dtype, in_size: tuple[int, int]) -> None:
    # Small maps take the matrix-product route, large ones F.interpolate: both must give
    # resize_maps' result (to rounding), alone and added into an accumulator.
    from mlfem.normalize import _resize_into

    generator = torch.Generator().manual_seed(7)
    maps = torch.rand(3, *in_size, generator=generator).to(dtype)
    size = (224, 200)
    expected = resize_maps(maps, size)
    exact = dtype == torch.float64
    tolerance = {"rtol": 1e-12, "atol": 1e-12} if exact else {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(_resize_into(None, maps, size), expected, **tolerance)
    accumulator = torch.rand(3, *size, generator=generator).to(dtype)
    total = accumulator + expected
    result = _resize_into(accumulator, maps, size)
    assert result is accumulator  # added in place
    torch.testing.assert_close(result, total, **tolerance)


def test_interpolation_matrix_matches_the_resize_of_unit_maps() -> None:
    from mlfem.normalize import _interpolation_matrix

    matrix = _interpolation_matrix(9, 40, torch.float64, torch.device("cpu"))
    unit = torch.eye(9, dtype=torch.float64).view(9, 9, 1)  # map j: 1 at row j
    resized = resize_maps(unit, (40, 1))[:, :, 0]  # (9, 40): weight of input row j
    torch.testing.assert_close(matrix, resized.T, rtol=0, atol=1e-12)
    torch.testing.assert_close(matrix.sum(1), torch.ones(40, dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("in_size", "size"),
    [((7, 7), (224, 224)), ((56, 48), (224, 200)), ((112, 112), (224, 224)), ((150, 90), (224, 200))],
)
def test_add_weighted_resized_is_the_weighted_sum_of_normalised_maps(
    dtype: torch.dtype, in_size: tuple[int, int], size: tuple[int, int]
) -> None:
    # Small maps take the boundary-grid extrema and are summed before one resize; maps
    # upsampled twice or less are resized first. Either way: the weighted sum of the
    # min-max normalised resized maps, up to one constant per image, and a constant map
    # (layer 1) adds nothing.
    from mlfem.normalize import add_weighted_resized

    generator = torch.Generator().manual_seed(3)
    maps = torch.rand(3, 2, *in_size, generator=generator).to(dtype) ** 3
    maps[1] = 0.25
    weights = [0.5, 2.0, 0.125]
    normalised = minmax_normalize(resize_maps(maps, size))
    expected = sum(w * normalised[i] for i, w in enumerate(weights))
    exact = dtype == torch.float64
    tolerance = {"rtol": 1e-10, "atol": 1e-10} if exact else {"rtol": 1e-4, "atol": 1e-5}
    for accumulator in (None, torch.rand(2, *size, generator=generator).to(dtype)):
        start = None if accumulator is None else accumulator.clone()
        result = add_weighted_resized(accumulator, maps, weights, size)
        if accumulator is not None:
            assert result is accumulator  # added in place
            result = result - start
        constant = (result - expected).flatten(1)
        assert torch.isfinite(result).all()
        # The difference is one constant per image: its range is zero (to rounding).
        torch.testing.assert_close(constant.amax(1), constant.amin(1), **tolerance)
