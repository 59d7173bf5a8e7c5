"""GFDM construction: scipy agreement, normalisation, options, out-of-bounds and empty input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from _cuda import requires_cuda
from mlfem.gaze import (
    Fixations,
    ViewingGeometry,
    blur_counts,
    fixation_counts,
    fixation_map,
    gaussian_blur,
    gaussian_kernel1d,
    gfdm,
    gfdm_batch,
    kernel_radius,
    pixels_per_degree,
    sigma_from_geometry,
)

MODES = [("reflect", "reflect"), ("zero", "constant")]


@pytest.mark.parametrize("padding, mode", MODES)
@pytest.mark.parametrize("method", ["auto", "matrix", "fft"])
@pytest.mark.parametrize(
    "shape, sigma",
    [
        ((40, 40), 10.0),
        ((33, 57), 2.5),
        ((7, 5), 3.3),
        ((3, 4), 6.0),
        ((60, 80), 24.0),
        ((9, 1), 1.0),
    ],
)
def test_blur_matches_scipy(shape, sigma, padding, mode, method):
    """Including kernels wider than the image, where scipy keeps reflecting."""
    rng = np.random.default_rng(0)
    maps = rng.random((3, *shape))
    ours = gaussian_blur(torch.tensor(maps), sigma, padding=padding, method=method)
    expected = np.stack([gaussian_filter(m, sigma, mode=mode, truncate=4.0) for m in maps])
    assert np.abs(ours.numpy() - expected).max() < 1e-12


@pytest.mark.parametrize("padding, mode", MODES)
def test_gfdm_matches_scipy_on_count_map(padding, mode):
    rng = np.random.default_rng(1)
    xs = rng.uniform(0, 79, 60)
    ys = rng.uniform(0, 59, 60)
    xs[:5] = ys[:5] = 30.0  # duplicates count
    counts = np.zeros((60, 80))
    np.add.at(counts, (np.floor(ys + 0.5).astype(int), np.floor(xs + 0.5).astype(int)), 1)
    expected = gaussian_filter(counts, 7.0, mode=mode)
    expected /= expected.sum()
    ours = gfdm(xs, ys, 60, 80, 7.0, padding=padding, dtype=torch.float64)
    assert ours.shape == (60, 80) and ours.dtype == torch.float64
    assert np.abs(ours.numpy() - expected).max() < 1e-6 * expected.max()
    assert np.abs(ours.numpy() - expected).max() < 1e-15
    # float32 default: same map to float32 precision
    ours32 = gfdm(xs, ys, 60, 80, 7.0, padding=padding)
    assert ours32.dtype == torch.float32
    assert np.abs(ours32.numpy() - expected).max() < 1e-6 * expected.max()


def test_sparse_and_dense_count_blur_agree():
    rng = np.random.default_rng(2)
    sparse = fixation_counts(
        [rng.uniform(0, 50, n) for n in (1, 4, 9)],
        [rng.uniform(0, 40, n) for n in (1, 4, 9)],
        40,
        50,
    ).counts
    for padding in ("reflect", "zero"):
        assert torch.allclose(
            blur_counts(sparse, 5.0, padding=padding),
            gaussian_blur(sparse, 5.0, padding=padding),
            rtol=0,
            atol=1e-15,
        )


def test_gfdm_sums_to_one_and_is_nonnegative():
    out = gfdm([10.2, 30.7, 31.0], [5.0, 20.4, 21.0], 40, 50, 4.0)
    assert out.shape == (40, 50)
    assert float(out.sum()) == pytest.approx(1.0, abs=1e-6)
    assert float(out.min()) >= 0
    # the peak sits between the two nearby fixations
    peak = divmod(int(out.argmax()), 50)
    assert peak in {(20, 31), (21, 31), (20, 30), (21, 30)}


def test_rounding_to_pixels_and_collapse():
    counts, dropped = fixation_map([0.49, 0.51, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0], 3, 3)
    assert dropped == 0
    assert counts[0, 0] == 1 and counts[0, 1] == 1 and counts[1, 2] == 2
    binary, _ = fixation_map([2.0, 2.0], [1.0, 1.0], 3, 3, collapse=True)
    assert binary.sum() == 1
    a = gfdm([2.0, 2.0, 0.0], [1.0, 1.0, 0.0], 10, 10, 2.0, collapse=True, dtype=torch.float64)
    b = gfdm([2.0, 0.0], [1.0, 0.0], 10, 10, 2.0, dtype=torch.float64)
    assert torch.allclose(a, b)


def test_duration_weighting():
    weighted = gfdm(
        [2.0, 7.0], [5.0, 5.0], 10, 10, 1.0, weights=[300.0, 100.0], dtype=torch.float64
    )
    assert float(weighted[5, 2] / weighted[5, 7]) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="mutually exclusive"):
        gfdm([2.0], [5.0], 10, 10, 1.0, weights=[1.0], collapse=True)
    with pytest.raises(ValueError, match="weights"):
        gfdm([2.0], [5.0], 10, 10, 1.0, weights=[-1.0])
    with pytest.raises(ValueError, match="sum to zero"):
        gfdm([2.0], [5.0], 10, 10, 1.0, weights=[0.0])


def test_out_of_bounds_fixations_dropped_and_counted():
    xs = [-0.6, -0.5, 9.49, 9.5, 3.0, float("nan"), 4.0]
    ys = [1.0, 1.0, 1.0, 1.0, -2.0, 3.0, 9.6]
    density, dropped = gfdm(xs, ys, 10, 10, 1.0, return_dropped=True)
    assert dropped == 5  # x=-0.6, x=9.5, y=-2, NaN, y=9.6 (pixel i covers [i - 0.5, i + 0.5))
    counts = fixation_counts([xs], [ys], 10, 10)
    assert counts.n_kept.tolist() == [2] and counts.n_dropped.tolist() == [5]
    assert float(density.sum()) == pytest.approx(1.0, abs=1e-6)


def test_empty_and_all_outside_are_clear_errors():
    with pytest.raises(ValueError, match="no fixations given"):
        gfdm([], [], 10, 10, 2.0)
    with pytest.raises(ValueError, match=r"all 2 fixations fall outside the 10x8"):
        gfdm([20.0, -3.0], [1.0, 1.0], 8, 10, 2.0)
    with pytest.raises(ValueError, match="image size"):
        gfdm([1.0], [1.0], 0, 10, 2.0)
    with pytest.raises(ValueError, match="sigma"):
        gfdm([1.0], [1.0], 10, 10, -1.0)
    with pytest.raises(ValueError, match="padding"):
        gfdm([1.0], [1.0], 10, 10, 1.0, padding="wrap")
    with pytest.raises(ValueError, match="x values"):
        fixation_counts([[1.0, 2.0]], [[1.0]], 10, 10)


def test_sigma_zero_is_the_normalised_count_map():
    out = gfdm([1.0, 1.0, 3.0], [2.0, 2.0, 0.0], 4, 5, 0.0, dtype=torch.float64)
    assert float(out[2, 1]) == pytest.approx(2 / 3) and float(out[0, 3]) == pytest.approx(1 / 3)


def test_batch_equals_single_and_reports_per_image():
    rng = np.random.default_rng(3)
    images = [
        Fixations.from_observers(
            [
                (rng.uniform(-5, 45, 6), rng.uniform(0, 30, 6), rng.uniform(100, 300, 6))
                for _ in range(3)
            ],
            30,
            40,
            name=f"img{i}",
        )
        for i in range(5)
    ]
    batch = gfdm_batch(images, 3.0, dtype=torch.float64, chunk_size=2)
    assert batch.maps.shape == (5, 30, 40)
    assert torch.allclose(batch.maps.sum(dim=(1, 2)), torch.ones(5, dtype=torch.float64))
    for i, fix in enumerate(images):
        single, dropped = gfdm(
            fix.xs, fix.ys, 30, 40, 3.0, dtype=torch.float64, return_dropped=True
        )
        assert torch.allclose(batch.maps[i], single, atol=1e-15)
        assert int(batch.n_dropped[i]) == dropped
        assert int(batch.n_kept[i]) + dropped == len(fix)
    weighted = gfdm_batch(images, 3.0, weight_by_duration=True)
    assert not torch.allclose(weighted.maps, batch.maps.float())
    no_durations = [Fixations(xs=[1.0], ys=[1.0], height=30, width=40, name="bare")]
    with pytest.raises(ValueError, match="image bare: duration weighting"):
        gfdm_batch(no_durations, 3.0, weight_by_duration=True)
    empty = [images[0], Fixations(xs=[], ys=[], height=30, width=40, name="void")]
    with pytest.raises(ValueError, match="image void: no fixations"):
        gfdm_batch(empty, 3.0)
    with pytest.raises(ValueError, match="differ in size"):
        gfdm_batch([images[0], Fixations(xs=[1.0], ys=[1.0], height=31, width=40)], 3.0)


def test_fixations_record():
    fix = Fixations.from_observers([([1, 2], [3, 4]), ([5], [6])], 10, 20, name="x")
    assert len(fix) == 3 and fix.n_observers == 2 and fix.size == (10, 20)
    assert fix.of_observer(1).xs.tolist() == [5.0]
    assert fix.without_observer(1).xs.tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="either every observer"):
        Fixations.from_observers([([1], [1], [100]), ([2], [2])], 10, 10)
    with pytest.raises(ValueError, match="ys has 1 values, expected 2"):
        Fixations(xs=[1, 2], ys=[1], height=5, width=5)


def test_geometry():
    # 1 degree at 57.3 cm on a 1920 px / 530 mm screen: ~36 px
    ppd = pixels_per_degree(1920, 530, 573)
    assert ppd == pytest.approx(2 * 573 * math.tan(math.radians(0.5)) * 1920 / 530)
    assert ppd == pytest.approx(36.2, abs=0.1)
    assert sigma_from_geometry(1920, 530, 573) == pytest.approx(ppd)
    assert sigma_from_geometry(1920, 530, 573, sigma_deg=0.5) == pytest.approx(ppd / 2)
    geometry = ViewingGeometry(1920, 530, 573)
    assert geometry.pixels_per_degree == pytest.approx(ppd)
    assert geometry.sigma_px(2.0) == pytest.approx(2 * ppd)
    with pytest.raises(ValueError, match="distance_mm"):
        pixels_per_degree(1920, 530, 0)


def test_kernel_is_scipys():
    assert kernel_radius(24) == 96 and kernel_radius(0.3) == 1
    k = gaussian_kernel1d(2.0)
    x = np.arange(-8, 9)
    expected = np.exp(-0.5 * x**2 / 4.0)
    assert np.allclose(k.numpy(), expected / expected.sum(), atol=1e-16)


@requires_cuda
def test_gfdm_on_cuda_matches_cpu():
    rng = np.random.default_rng(4)
    images = [
        Fixations(xs=rng.uniform(0, 64, 40), ys=rng.uniform(0, 48, 40), height=48, width=64)
        for _ in range(3)
    ]
    for padding in ("reflect", "zero"):
        cpu = gfdm_batch(images, 5.0, padding=padding, dtype=torch.float64).maps
        gpu = gfdm_batch(images, 5.0, padding=padding, dtype=torch.float64, device="cuda").maps
        assert gpu.device.type == "cuda"
        assert torch.allclose(gpu.cpu(), cpu, atol=1e-12)
        dense = gaussian_blur(
            torch.rand(2, 48, 64, dtype=torch.float64, device="cuda"),
            5.0,
            padding=padding,
            method="fft",
        )
        assert dense.device.type == "cuda"


def test_import_stays_light():
    """torchvision and scipy are never imported by ``import mlfem.gaze, mlfem.metrics``."""
    import subprocess
    import sys

    code = (
        "import sys, mlfem.gaze, mlfem.metrics, mlfem.cli.gfdm; "
        "print(sorted(m for m in ('torchvision', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
