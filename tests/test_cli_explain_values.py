"""``mlfem explain``'s saved maps checked for their values: each .npy against the Python API's
map for the same image, model and method, with the preprocessing written out here from its
definition (resize or centre crop, normalisation, and back to the image's pixels); what
``--fit crop`` cuts off; ``--model timm:<name>`` and ``--dtype``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

from mlfem import MLFEM
from mlfem.cli import main
from _precision import HALF_PRECISION_BOUNDS, pcc_per_image
from tiny_models import TinyCNN

# timm's smallest ResNet (0.5 M parameters), built here with random weights: nothing downloaded.
# Its data config: 160 px input, crop_pct 0.95, mean = std = 0.5, bilinear.
TIMM_NAME = "test_resnet"


def make_image(path: Path, height: int, width: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def model_input(image: Image.Image, mean: float | tuple, std: float | tuple) -> torch.Tensor:
    array = np.asarray(image, dtype=np.float32) / 255.0
    tensor = torch.from_numpy(array).permute(2, 0, 1)
    mean_t = torch.tensor(mean, dtype=torch.float32).reshape(-1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).reshape(-1, 1, 1)
    return ((tensor - mean_t) / std_t)[None]


def bilinear(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


@pytest.fixture(scope="module")
def timm_model(tmp_path_factory) -> tuple[torch.nn.Module, Path]:
    timm = pytest.importorskip("timm")
    torch.manual_seed(5)
    model = timm.create_model(TIMM_NAME, pretrained=False).eval()
    weights = tmp_path_factory.mktemp("timm") / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    return model, weights


def explain(tmp_path: Path, name: str, image: Path, *arguments: str) -> np.ndarray:
    out = tmp_path / name
    code = main(["explain", str(image), "--out", str(out), "--device", "cpu", *arguments])
    assert code == 0
    return np.load(out / f"{image.stem}.npy")


def test_saved_map_equals_the_python_api_with_a_timm_model(tmp_path, timm_model, capsys) -> None:
    model, weights = timm_model
    path = make_image(tmp_path / "photo.png", 70, 90)
    saved = explain(tmp_path, "out", path, "--model", f"timm:{TIMM_NAME}", "--weights", str(weights))
    err = capsys.readouterr().err
    assert f"timm {TIMM_NAME}" in err and "random weights" not in err
    # --fit whole (the default): the whole image resized to 160 x 160, timm's mean and std.
    with Image.open(path) as image:
        x = model_input(image.convert("RGB").resize((160, 160), Image.Resampling.BILINEAR), 0.5, 0.5)
    expected = bilinear(MLFEM(model)(x), (70, 90)).clamp(0, 1)[0].numpy()
    assert saved.shape == (70, 90) and saved.dtype == np.float32
    np.testing.assert_allclose(saved, expected, atol=1e-5)
    # The preprocessing matters: ImageNet's mean and std instead of timm's give another map.
    with Image.open(path) as image:
        resized = image.convert("RGB").resize((160, 160), Image.Resampling.BILINEAR)
    other = model_input(resized, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert np.abs(bilinear(MLFEM(model)(other), (70, 90))[0].numpy() - saved).max() > 1e-3


@pytest.fixture(scope="module")
def three_images(tmp_path_factory, timm_model) -> tuple[Path, np.ndarray]:
    """Three images in one folder and their float32 maps from one mlfem explain call."""
    folder = tmp_path_factory.mktemp("three")
    for seed in range(3):
        make_image(folder / f"{seed}.png", 64, 64, seed)
    return folder, explain_folder(folder, folder.parent / "float32", timm_model[1])


def explain_folder(folder: Path, out: Path, weights: Path, *arguments: str) -> np.ndarray:
    code = main(["explain", str(folder), "--out", str(out), "--device", "cpu", "--model", f"timm:{TIMM_NAME}",
                 "--weights", str(weights), *arguments])
    assert code == 0
    return np.stack([np.load(out / f"{seed}.npy") for seed in range(3)])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_dtype_option_gives_the_float32_map_within_half_precision(tmp_path, timm_model, three_images, dtype) -> None:
    folder, full = three_images
    half = explain_folder(folder, tmp_path / dtype, timm_model[1], "--dtype", dtype)
    assert half.dtype == np.float32  # the saved map is float32 whatever the model's precision
    assert not np.array_equal(half, full)  # the model did run in the lower precision
    min_pcc, max_mean_error = HALF_PRECISION_BOUNDS[getattr(torch, dtype)]
    pcc = pcc_per_image(torch.from_numpy(half), torch.from_numpy(full))
    assert bool((pcc > min_pcc).all()), pcc
    assert float(np.abs(half - full).mean()) < max_mean_error


def test_fit_crop_keeps_the_centre_square_and_zeroes_the_margins(tmp_path) -> None:
    torch.manual_seed(3)
    model = TinyCNN().eval()
    weights = tmp_path / "tiny.safetensors"
    save_file(model.state_dict(), str(weights))
    height, width = 60, 150
    path = make_image(tmp_path / "wide.png", height, width)
    saved = explain(tmp_path, "out", path, "--model", "tiny_models:TinyCNN", "--weights", str(weights),
                    "--fit", "crop")
    # torchvision's evaluation transform (ImageNet defaults: resize 256, crop 224): the shorter
    # side becomes 256 px, so the image is 256 x 640, and the centre 224 x 224 square spans rows
    # 16-239 and columns 208-431 of it. Mapped back bilinearly, an image pixel is 0 when both
    # resized pixels it interpolates lie outside the square: column c reads resized column
    # (c + 0.5) * 640 / 150 - 0.5, which is below 207 for c <= 48 and at least 432 for c >= 101;
    # row r reads (r + 0.5) * 256 / 60 - 0.5, below 15 for r <= 3 and at least 240 for r >= 56.
    assert saved.shape == (height, width)
    zero_columns = np.flatnonzero(~saved.any(axis=0))
    zero_rows = np.flatnonzero(~saved.any(axis=1))
    assert zero_columns.tolist() == [*range(0, 49), *range(101, 150)]  # 98 of 150 columns cut off
    assert zero_rows.tolist() == [0, 1, 2, 3, 56, 57, 58, 59]  # 8 of 60 rows
    assert saved[4:56, 49:101].max() > 0.5  # the kept part carries the map
    with Image.open(path) as image:
        resized = image.convert("RGB").resize((640, 256), Image.Resampling.BILINEAR)
    square = resized.crop((208, 16, 208 + 224, 16 + 224))
    x = model_input(square, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    canvas = torch.zeros(1, 256, 640)
    canvas[:, 16:240, 208:432] = MLFEM(model)(x)
    expected = bilinear(canvas, (height, width)).clamp(0, 1)[0].numpy()
    np.testing.assert_allclose(saved, expected, atol=1e-5)
