"""``mlfem explain`` end to end on generated images and on one real OSIE image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlfem.cli import main


def make_image(path: Path, size: tuple[int, int] = (48, 40), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)
    return path


def check_outputs(out: Path, stem: str, height: int, width: int, layers: bool = True) -> None:
    saliency = np.load(out / f"{stem}.npy")
    assert saliency.dtype == np.float32 and saliency.shape == (height, width)
    assert np.isfinite(saliency).all() and saliency.min() >= 0 and saliency.max() <= 1
    with Image.open(out / f"{stem}_overlay.png") as overlay:
        assert overlay.size == (width, height)
    assert (out / f"{stem}_layers.png").is_file() == layers


def test_explain_generated_images_and_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    make_image(inputs / "a.png", (48, 40))
    make_image(inputs / "b.jpg", (30, 70), seed=1)
    (inputs / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "out"
    code = main(
        ["explain", str(inputs), "--model", "tiny_models:TinyCNN", "--out", str(out),
         "--batch-size", "2", "--fit", "whole", "--device", "cpu"]
    )
    assert code == 1  # one input failed
    check_outputs(out, "a", 48, 40)
    check_outputs(out, "b", 30, 70)
    err = capsys.readouterr().err
    assert "wrote maps for 2 of 3" in err and "broken.png: not a readable image" in err
    assert "random weights" in err


@pytest.mark.parametrize(("method", "fusion", "layers_png"), [("mlfem", "max", True), ("fem", None, False)])
def test_methods_and_native_size(tmp_path: Path, method: str, fusion: str | None, layers_png: bool) -> None:
    image = make_image(tmp_path / "x.png", (33, 45))
    out = tmp_path / "out"
    arguments = ["explain", str(image), "--model", "tiny_models:TinyCNN", "--method", method,
                 "--fit", "none", "--out", str(out)]
    if fusion:
        arguments += ["--fusion", fusion]
    assert main(arguments) == 0
    check_outputs(out, "x", 33, 45, layers=layers_png)


def test_explain_real_osie_image_with_resnet18(tmp_path: Path, osie_dir: Path) -> None:
    out = tmp_path / "out"
    image = osie_dir / "stimuli" / "1001.jpg"
    assert main(["explain", str(image), "--model", "resnet18", "--out", str(out), "--fit", "crop"]) == 0
    check_outputs(out, "1001", 600, 800)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--model", "resnet5O"], "Did you mean resnet50"),
        (["--model", "tiny_models:TinyCNN", "--layers", "features.9"], "unknown layer 'features.9'"),
        (["--model", "tiny_models:TinyCNN", "--batch-size", "0"], "--batch-size must be at least 1"),
        (["--model", "tiny_models:TinyCNN", "--alpha", "2"], "--alpha must lie in"),
        (["--model", "tiny_models:TinyCNN", "--fusion", "median"], "unknown fusion 'median'"),
        (["--model", "tiny_models:TinyCNN", "--method", "nope"], "unknown method 'nope'"),
        (["--model", "tiny_models:TinyCNN", "--weights", "nowhere.pth"], "--weights: file not found"),
    ],
)
def test_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture, arguments: list[str], message: str) -> None:
    image = make_image(tmp_path / "x.png")
    assert main(["explain", str(image), "--out", str(tmp_path / "out"), *arguments]) == 2
    assert message in capsys.readouterr().err


def test_missing_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["explain", str(tmp_path / "nothing.png"), "--model", "tiny_models:TinyCNN", "--out", str(tmp_path)])
    assert code == 2 and "input not found" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    code = main(["explain", str(empty), "--model", "tiny_models:TinyCNN", "--out", str(tmp_path)])
    assert code == 2 and "no image files found" in capsys.readouterr().err


def test_help_lists_commands(capsys: pytest.CaptureFixture) -> None:
    assert main([]) == 2
    assert "explain" in capsys.readouterr().out


def test_explain_with_a_static_exported_program(tmp_path: Path) -> None:
    # torch.export's default is static shapes: batches of 2 at 32x32 only. Three images
    # with --batch-size 2 make a short last batch, which is padded; the input size
    # comes from the program.
    import torch

    from tiny_models import TinyCNN

    program = tmp_path / "tiny.pt2"
    torch.export.save(torch.export.export(TinyCNN().eval(), (torch.randn(2, 3, 32, 32),)), str(program))
    inputs = tmp_path / "in"
    inputs.mkdir()
    for seed, size in enumerate([(48, 40), (30, 70), (64, 64)]):
        make_image(inputs / f"{seed}.png", size, seed=seed)
    out = tmp_path / "out"
    code = main(["explain", str(inputs), "--model", str(program), "--batch-size", "2", "--out", str(out)])
    assert code == 0
    for seed, (height, width) in enumerate([(48, 40), (30, 70), (64, 64)]):
        check_outputs(out, str(seed), height, width)


def test_explain_with_a_torchscript_file(tmp_path: Path) -> None:
    # TorchScript takes no hooks; the file is replayed through hookable modules.
    import torch

    from tiny_models import TinyCNN

    script = tmp_path / "tiny.pt"
    torch.jit.trace(TinyCNN().eval(), torch.randn(1, 3, 32, 32)).save(str(script))
    image = make_image(tmp_path / "a.png", (40, 56))
    out = tmp_path / "out"
    assert main(["explain", str(image), "--model", str(script), "--out", str(out)]) == 0
    check_outputs(out, "a", 40, 56)
