"""The per-call helpers on MLFEM's hot path: the finite-input check and the model's device."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mlfem.extractor import _all_finite, check_images, module_device


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_single_non_finite_value_is_found(bad: float) -> None:
    images = torch.rand(2, 3, 8, 8)
    assert _all_finite(images)
    images[1, 2, 5, 3] = bad
    assert not _all_finite(images)
    with pytest.raises(ValueError, match="NaN or infinite"):
        check_images(images)


def test_finite_values_whose_sum_overflows_are_accepted() -> None:
    # The one-reduction check sums the values: a finite batch whose sum overflows float32
    # must still pass (it falls back to checking every value).
    images = torch.full((1, 3, 4, 4), 3e38)
    assert not torch.isfinite(images.sum())
    assert _all_finite(images)
    check_images(images)


def test_opposite_infinities_are_not_finite() -> None:
    images = torch.zeros(1, 3, 4, 4)
    images[0, 0, 0, 0] = float("inf")
    images[0, 1, 0, 0] = float("-inf")
    assert not _all_finite(images)


def test_module_device_is_the_first_parameter_or_buffer_device() -> None:
    assert module_device(nn.Linear(2, 2)) == torch.device("cpu")
    assert module_device(nn.ReLU()) == torch.device("cpu")  # no parameter: the CPU
    only_buffers = nn.BatchNorm2d(3, affine=False)
    assert module_device(only_buffers) == only_buffers.running_mean.device
