"""Reliability sweep, inputs part (issue 18): bad images, pixels, sigmas, fixation files and
API arguments get a clear error naming what was wrong, or a correct result; never a traceback
from deep inside torch, a hang, or a silently wrong number.

Each case is a bad input a careless or unlucky user could give; the cases that were already
handled well are kept here too, so that none of them can come back.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mlfem import MLFEM, fuse
from mlfem.datasets._io import read_image as dataset_read_image
from mlfem.explainers.registry import create_explainer
from mlfem.fem import fem_saliency
from mlfem.gaze import GazeDataError, gaussian_blur, gfdm, read_fixation_csv
from mlfem.images import ImageReadError, read_image
from mlfem.metrics import auc_judd, auc_pixels, evaluate, nss, pcc

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import TinyCNN  # noqa: E402

scipy_ndimage = pytest.importorskip("scipy.ndimage")


# Images of more than 8 bits per sample (item 2) -------------------------------------------


def _grey16(path: Path, level8: int, mode: str = "I;16") -> Path:
    """A 16-bit grey image whose every pixel is the 16-bit value of ``level8`` (x 257)."""
    values = np.full((6, 9), level8 * 257, dtype=np.uint16)
    image = Image.fromarray(values if mode == "I;16" else values.astype(np.int32))
    assert image.mode == mode
    image.save(path)
    return path


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_grey_image_is_scaled_not_clipped(tmp_path: Path, suffix: str) -> None:
    path = _grey16(tmp_path / f"grey16{suffix}", 100)
    rgb = np.asarray(read_image(path))
    assert rgb.shape == (6, 9, 3) and rgb.dtype == np.uint8
    assert (rgb == 100).all(), np.unique(rgb)  # convert("RGB") gave 255 everywhere
    tensor = dataset_read_image(path)
    assert tensor.shape == (3, 6, 9) and tensor.dtype == torch.uint8
    assert (tensor == 100).all()


def test_32bit_integer_image_in_16bit_range_is_scaled(tmp_path: Path) -> None:
    path = _grey16(tmp_path / "grey32.tif", 200, mode="I")
    assert (np.asarray(read_image(path)) == 200).all()
    assert (dataset_read_image(path) == 200).all()


def test_integer_image_beyond_16_bits_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "deep.tif"
    Image.fromarray(np.full((4, 4), 1 << 20, dtype=np.int32)).save(path)
    with pytest.raises(ImageReadError, match="deep.tif"):
        read_image(path)
    with pytest.raises(ValueError, match="16 bit"):
        dataset_read_image(path)


def test_float_image_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "float.tif"
    Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32)).save(path)
    with pytest.raises(ImageReadError, match="float.tif.*floating"):
        read_image(path)
    with pytest.raises(ValueError, match="floating"):
        dataset_read_image(path)


def test_8bit_images_read_as_before(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "grey.png")
    assert (np.asarray(read_image(tmp_path / "rgb.png")) == rgb).all()
    assert (dataset_read_image(tmp_path / "rgb.png").permute(1, 2, 0).numpy() == rgb).all()
    grey = np.asarray(read_image(tmp_path / "grey.png"))
    assert (grey == rgb[..., :1]).all()


# Metrics with NaN, and empty maps (items 5, 12) -------------------------------------------


def _fixated_map() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    pred = torch.rand(20, 20)
    fix = torch.zeros(20, 20)
    fix[5, 5] = fix[10, 12] = 1
    return pred, fix


def test_auc_pixels_is_nan_for_a_map_with_nan_like_the_other_metrics() -> None:
    pred, fix = _fixated_map()
    pred[5, 5] = float("nan")
    assert torch.isnan(nss(pred, fix)) and torch.isnan(auc_judd(pred, fix))
    assert torch.isnan(auc_pixels(pred, fix))
    batch = torch.stack([pred, _fixated_map()[0]])
    values = auc_pixels(batch, torch.stack([fix, fix]))
    assert torch.isnan(values[0]) and torch.isfinite(values[1])


def test_evaluate_reports_nan_for_auc_pixels_of_a_nan_map() -> None:
    pred, fix = _fixated_map()
    pred[0, 0] = float("inf")
    table = evaluate(pred, fix=fix, metrics=["auc_pixels", "nss"])
    assert math.isnan(table.columns["auc_pixels"][0]) and math.isnan(table.columns["nss"][0])
    assert table.nan_counts == {"auc_pixels": 1, "nss": 1}


def test_pcc_of_empty_maps_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="empty|0x0"):
        pcc(torch.zeros(0, 0), torch.zeros(0, 0))
    with pytest.raises(ValueError, match="empty|0x0"):
        nss(torch.zeros(3, 0), torch.zeros(3, 0))


# Gaussian kernels bounded by the image (item 8) and sigma checks (item 11) ----------------


@pytest.mark.parametrize("padding, mode", [("reflect", "reflect"), ("zero", "constant")])
@pytest.mark.parametrize("method", ["matrix", "fft"])
def test_blur_wider_than_the_image_matches_scipy(padding: str, mode: str, method: str) -> None:
    rng = np.random.default_rng(1)
    image = rng.random((9, 13))
    for sigma in (2.0, 5.0, 40.0):  # radius 8 (inside), 20 and 160 (wider than the image)
        expected = scipy_ndimage.gaussian_filter(image, sigma, mode=mode)
        got = gaussian_blur(torch.from_numpy(image), sigma, padding=padding, method=method)
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-14)


def test_huge_sigma_is_bounded_by_the_image() -> None:
    # sigma=1e6 used to build an 8e6-tap kernel per image row (23 GB before the OOM kill).
    density = gfdm([10.0, 40.0], [20.0, 30.0], 60, 80, sigma=1e6, dtype=torch.float64)
    assert density.shape == (60, 80)
    assert abs(float(density.sum()) - 1) < 1e-9
    # Half-sample-symmetric padding of a Gaussian far wider than the image: uniform.
    assert float(density.max() - density.min()) < 1e-9
    zero = gfdm([10.0], [20.0], 60, 80, sigma=1e6, padding="zero", dtype=torch.float64)
    assert torch.isfinite(zero).all() and abs(float(zero.sum()) - 1) < 1e-9
    blurred = gaussian_blur(torch.rand(2, 30, 40), 1e6, method="fft")
    assert torch.isfinite(blurred).all()


@pytest.mark.parametrize("sigma", [float("nan"), float("inf"), -1.0])
def test_sigma_nan_inf_negative_are_refused_naming_sigma(sigma: float) -> None:
    with pytest.raises(ValueError, match="sigma"):
        gfdm([10.0], [10.0], 60, 80, sigma)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_blur(torch.rand(5, 5), sigma)


@pytest.mark.parametrize("xs", [["a"], ["10"], [object()]])
def test_string_coordinates_are_a_clear_error(xs: list) -> None:
    with pytest.raises(ValueError, match="coordinates"):
        gfdm(xs, [10.0], 60, 80, 3.0)


def test_non_utf8_fixation_csv_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "fix.csv"
    text = "image,observer,x,y,width,height\nb\xe9b\xe9.jpg,1,3,4,10,10\n"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(GazeDataError, match=r"fix\.csv.*UTF-8"):
        read_fixation_csv(path)


def test_string_coordinates_in_csv_name_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "fix.csv"
    path.write_text("image,observer,x,y,width,height\na.jpg,1,left,4,10,10\n")
    with pytest.raises(GazeDataError, match="line 2.*'x'"):
        read_fixation_csv(path)


def _gfdm_cli(tmp_path: Path, *sigma: str) -> tuple[int, str]:
    import subprocess

    csv = tmp_path / "fix.csv"
    csv.write_text("image,observer,x,y,width,height\na.jpg,1,3,4,80,60\na.jpg,2,50,40,80,60\n")
    result = subprocess.run(
        [sys.executable, "-m", "mlfem", "gfdm", str(csv), "--output", str(tmp_path / "out"),
         "--no-png", *sigma],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode, result.stderr


def test_cli_gfdm_sigma_inf_is_a_usage_error(tmp_path: Path) -> None:
    code, err = _gfdm_cli(tmp_path, "--sigma", "inf")
    assert code == 2 and "--sigma" in err and "Traceback" not in err


def test_cli_gfdm_huge_sigma_runs(tmp_path: Path) -> None:
    code, err = _gfdm_cli(tmp_path, "--sigma", "1000000")
    assert code == 0, err
    density = np.load(tmp_path / "out" / "a.npy")
    assert density.shape == (60, 80) and np.isfinite(density).all()


# Inputs reaching torch (items 7, 12) ------------------------------------------------------


@pytest.fixture(scope="module")
def tiny() -> TinyCNN:
    torch.manual_seed(0)
    return TinyCNN().eval()


_METHODS = ["mlfem", "fem", "gradcam", "guided-backprop", "occlusion", "csfem"]


@pytest.mark.parametrize("method", _METHODS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_pixels_are_refused(tiny: TinyCNN, method: str, bad: float) -> None:
    images = torch.rand(2, 3, 16, 16)
    images[1, 0, 3, 4] = bad
    explainer = create_explainer(method, tiny)
    with pytest.raises(ValueError, match="images.*(NaN|infinite)"):
        explainer(images)


@pytest.mark.parametrize("method", _METHODS)
def test_channels_last_batch_says_what_was_expected(tiny: TinyCNN, method: str) -> None:
    explainer = create_explainer(method, tiny)
    with pytest.raises(ValueError, match=r"channels.*\(B, 3, H, W\).*permute"):
        explainer(torch.rand(2, 16, 16, 3))


@pytest.mark.parametrize("channels", [1, 4])
def test_wrong_channel_count_says_what_was_expected(tiny: TinyCNN, channels: int) -> None:
    for method in ("mlfem", "gradcam"):
        with pytest.raises(ValueError, match=rf"{channels} channels.*\(B, 3, H, W\)"):
            create_explainer(method, tiny)(torch.rand(1, channels, 16, 16))


@pytest.mark.parametrize("method", ["mlfem", "gradcam"])
def test_other_dtype_than_the_model_is_explained(tiny: TinyCNN, method: str) -> None:
    images = torch.rand(2, 3, 16, 16)
    explainer = create_explainer(method, tiny)
    expected = explainer(images)
    maps = explainer(images.double())
    assert maps.shape == (2, 16, 16) and torch.isfinite(maps).all()
    torch.testing.assert_close(maps.float(), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("method", ["mlfem", "gradcam", "occlusion"])
@pytest.mark.parametrize("size", [(0, 0), (0, 16), (16, 0)])
def test_empty_images_are_refused(tiny: TinyCNN, method: str, size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="images.*empty|images.*0x|images.*size"):
        create_explainer(method, tiny)(torch.rand(1, 3, *size))


def test_valid_mlfem_run_unchanged(tiny: TinyCNN) -> None:
    maps = MLFEM(tiny)(torch.rand(2, 3, 16, 16))
    assert maps.shape == (2, 16, 16) and torch.isfinite(maps).all()


@pytest.mark.parametrize("shape", [(1, 0, 4, 4), (1, 3, 0, 4), (1, 3, 4, 0), (0, 3, 4, 4)])
def test_fem_saliency_of_empty_activations(shape: tuple[int, ...]) -> None:
    activations = torch.rand(*shape)
    if shape[1] == 0:
        # No channel: nothing is strong anywhere, the saliency is zero (no ZeroDivisionError).
        out = fem_saliency(activations)
        assert out.shape == (1, 4, 4) and (out == 0).all()
    else:
        out = fem_saliency(activations)
        assert out.shape == (shape[0], shape[2], shape[3])


@pytest.mark.parametrize("op", ["add", "max", "top", "fem"])
def test_fuse_integer_maps(op: str) -> None:
    maps = torch.randint(0, 10, (2, 3, 8, 8))
    fused = fuse(maps, op)
    expected = fuse(maps.float(), op)
    torch.testing.assert_close(fused, expected)
    with pytest.raises(TypeError, match="maps"):
        fuse(maps.bool().to(torch.complex64), op)


def test_exact_sauc_is_nan_for_a_map_with_nan() -> None:
    from mlfem.metrics import sauc

    pred, fix = _fixated_map()
    other = torch.zeros(20, 20)
    other[2, 3] = other[15, 15] = 1
    assert torch.isfinite(sauc(pred, fix, other, exact=True))
    pred[5, 5] = float("nan")
    assert torch.isnan(sauc(pred, fix, other, exact=True))
    assert torch.isnan(sauc(pred, fix, other))


def test_binary_fixation_csv_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "fix.csv"
    path.write_bytes(b"image,observer,x,y\na.jpg,1,3\x00,4\n")
    with pytest.raises(GazeDataError, match=r"fix\.csv"):
        read_fixation_csv(path, size=(10, 10))


def test_preprocessing_scales_a_16bit_pil_image() -> None:
    from mlfem.models.preprocessing import Preprocessing

    preprocessing = Preprocessing(crop_size=8, mean=(0.0,) * 3, std=(1.0,) * 3, fit="whole")
    image = Image.fromarray(np.full((8, 8), 51 * 257, dtype=np.uint16))
    tensor, _ = preprocessing(image)
    torch.testing.assert_close(tensor, torch.full_like(tensor, 51 / 255))


# Cases that were already handled well, kept so that they cannot come back ------------------


def _truncated_png(tmp_path: Path) -> Path:
    path = tmp_path / "cut.png"
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:60])
    return path


def _not_an_image(tmp_path: Path) -> Path:
    path = tmp_path / "notes.png"
    path.write_text("not an image")
    return path


@pytest.mark.parametrize("make", [_truncated_png, _not_an_image])
def test_unreadable_image_files_name_the_file(tmp_path: Path, make) -> None:
    path = make(tmp_path)
    with pytest.raises(ImageReadError, match=path.name):
        read_image(path)
    with pytest.raises(ValueError, match="unreadable|corrupt"):
        dataset_read_image(path)


_ALREADY_HANDLED = {
    "3-D image tensor": (
        lambda m: MLFEM(m)(torch.rand(3, 16, 16)), ValueError, "unsqueeze"),
    "integer images": (
        lambda m: MLFEM(m)(torch.zeros(1, 3, 16, 16, dtype=torch.uint8)), TypeError, "floating"),
    "empty batch": (lambda m: MLFEM(m)(torch.rand(0, 3, 16, 16)), ValueError, "empty batch"),
    "images not a tensor": (lambda m: MLFEM(m)(np.zeros((1, 3, 8, 8))), TypeError, "Tensor"),
    "fem k NaN": (lambda m: fem_saliency(torch.rand(1, 2, 4, 4), float("nan")), ValueError, "k"),
    "fem 3-D": (lambda m: fem_saliency(torch.rand(2, 4, 4)), ValueError, "B, C, H, W"),
    "fuse 3-D maps": (lambda m: fuse(torch.rand(2, 8, 8)), ValueError, "B, L, H, W"),
    "fuse no layer": (lambda m: fuse(torch.rand(2, 0, 8, 8)), ValueError, "L >= 1"),
    "fuse unknown op": (lambda m: fuse(torch.rand(1, 2, 8, 8), "mean"), ValueError, "fusion"),
    "gfdm no fixation": (lambda m: gfdm([], [], 10, 10, 2.0), ValueError, "no fixations"),
    "gfdm all outside": (
        lambda m: gfdm([-5.0, 50.0], [1.0, 1.0], 10, 10, 2.0), ValueError, "outside"),
    "gfdm empty image": (lambda m: gfdm([1.0], [1.0], 0, 10, 2.0), ValueError, "positive"),
    "blur padding": (
        lambda m: gaussian_blur(torch.rand(4, 4), 1.0, padding="wrap"), ValueError, "padding"),
    "blur integer maps": (
        lambda m: gaussian_blur(torch.ones(4, 4, dtype=torch.int64), 1.0), TypeError, "floating"),
    "negative counts": (
        lambda m: nss(torch.rand(4, 4), -torch.ones(4, 4)), ValueError, "fixation counts"),
    "metric batch sizes": (
        lambda m: pcc(torch.rand(2, 4, 4), torch.rand(3, 4, 4)), ValueError, "batch sizes"),
    "metric 1-D map": (lambda m: pcc(torch.rand(4), torch.rand(4)), ValueError, "shape"),
    "unknown metric": (
        lambda m: evaluate(torch.rand(4, 4), gt=torch.rand(4, 4), metrics=["foo"]),
        ValueError, "foo"),
}


@pytest.mark.parametrize("case", sorted(_ALREADY_HANDLED))
def test_already_handled_cases(tiny: TinyCNN, case: str) -> None:
    call, error, match = _ALREADY_HANDLED[case]
    with pytest.raises(error, match=match):
        call(tiny)


class _FixedSizeNoConv(torch.nn.Module):
    """No convolution, and a linear layer that fixes the input size at 3x32x32."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Linear(3 * 32 * 32, 4 * 8 * 8)
        self.act = torch.nn.ReLU()
        self.head = torch.nn.Linear(4 * 8 * 8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.act(self.embed(x.flatten(1)).view(-1, 4, 8, 8))
        return self.head(features.flatten(1))


def test_layer_probe_of_a_fixed_size_model_says_what_to_pass() -> None:
    model = _FixedSizeNoConv().eval()
    with pytest.raises(ValueError, match=r"probe image of shape \(1, 3, 224, 224\).*probe_size"):
        MLFEM(model)
    from mlfem import LayerMapExtractor

    extractor = LayerMapExtractor(model, probe_size=(32, 32))
    assert extractor.layer_names == ["act"]
    assert MLFEM(model, layers=["act"])(torch.rand(2, 3, 32, 32)).shape == (2, 32, 32)


def test_cli_explains_a_16bit_png_as_its_8bit_equivalent(tmp_path: Path, capsys) -> None:
    from mlfem.cli import main

    rng = np.random.default_rng(3)
    grey8 = rng.integers(0, 256, (40, 48), dtype=np.uint8)
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(grey8).save(inputs / "eight.png")
    Image.fromarray(grey8.astype(np.uint16) * 257).save(inputs / "sixteen.png")
    Image.fromarray(grey8.astype(np.float32)).save(inputs / "float.tif")
    out = tmp_path / "out"
    code = main(["explain", str(inputs), "--model", "tiny_models:TinyCNN", "--out", str(out),
                 "--fit", "whole", "--device", "cpu"])
    assert code == 1  # the float image is counted as failed, the others explained
    err = capsys.readouterr().err
    assert "wrote maps for 2 of 3" in err and "float.tif" in err and "floating" in err
    np.testing.assert_array_equal(np.load(out / "sixteen.npy"), np.load(out / "eight.npy"))
