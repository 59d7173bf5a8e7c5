"""A NET trained for any model (``mlfem train-fusion --model``) on a dataset without class
labels (a tiny generated OSIE layout): its record, the refusal of another model by MLFEM and
by ``mlfem evaluate``, and the leakage guard over the ids it saw."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mlfem import MLFEM
from mlfem.cli import main
from mlfem.fusion.net import FusionMismatchError, load_fusion_net
from mlfem.models import Preprocessing, load_model
from mlfem.models.checkpoint import model_fingerprint
from mlfem.training import LeakageWarning, check_leakage
from test_datasets_fixtures import make_osie
from tiny_models import TinyCNN

SPEC = "test_training_net_for_model:tiny_model"
N_IMAGES = 12


def tiny_model() -> TinyCNN:
    """Factory for ``--model``: a TinyCNN fed 32 x 32 inputs (weights come from --weights)."""
    model = TinyCNN()
    model.preprocessing = Preprocessing(crop_size=32, resize_size=32, mean=(0.5,) * 3, std=(0.5,) * 3)
    return model


# Training tests run single-threaded (see conftest.one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny OSIE-layout dataset, two weight files of one architecture, and a NET trained
    for the first through the CLI."""
    tmp = tmp_path_factory.mktemp("net-for-model")
    rng = np.random.default_rng(0)
    entries = {}
    for number in range(N_IMAGES):
        subjects = []
        for _ in range(3):
            xs = rng.uniform(1, 40, size=4)
            ys = rng.uniform(1, 30, size=4)
            subjects.append((xs, ys, rng.integers(100, 400, size=4)))
        entries[f"{1100 + number}.jpg"] = subjects
    root = make_osie(tmp / "osie", entries, size=(30, 40))
    weights = {}
    for seed in (0, 1):
        torch.manual_seed(seed)
        from safetensors.torch import save_file

        weights[seed] = tmp / f"tiny-{seed}.safetensors"
        save_file(TinyCNN().state_dict(), str(weights[seed]))
    out = tmp / "net"
    code = main(
        [
            "train-fusion", "--model", SPEC, "--weights", str(weights[0]),
            "--dataset", "osie", "--root", str(root), "-O", "sigma=3",
            "--split-fractions", "0.5,0.25,0.25", "--split-seed", "1",
            "--resolution", "16", "--epochs", "2", "--batch-size", "4",
            "--device", "cpu", "--out", str(out), "--quiet",
        ]
    )
    assert code == 0
    return {"root": root, "weights": weights, "out": out, "net": out / "net.safetensors"}


def test_the_net_records_the_model_the_dataset_and_its_split(setup: dict) -> None:
    metadata = json.loads((setup["out"] / "net.json").read_text())
    model = load_model(SPEC, str(setup["weights"][0])).model
    assert "classifier" not in metadata
    assert metadata["model"]["spec"] == SPEC
    assert metadata["model"]["weights"] == str(setup["weights"][0].resolve())
    assert metadata["model"]["fingerprint"] == model_fingerprint(model)
    assert metadata["model"]["input"]["size"] == 32
    assert metadata["dataset"]["name"] == "osie"
    assert metadata["dataset"]["split_fractions"] == [0.5, 0.25, 0.25]
    assert metadata["dataset"]["split_seed"] == 1
    splits = json.loads(Path(metadata["dataset"]["splits"]).read_text())["splits"]
    assert sorted(metadata["train_ids"]) == splits["train"] and len(splits["train"]) == 6
    assert sorted(metadata["val_ids"]) == splits["val"] and len(splits["val"]) == 3
    assert not set(splits["test"]) & set(metadata["train_ids"] + metadata["val_ids"])
    assert metadata["training"]["split_fractions"] == [0.5, 0.25, 0.25]
    assert set(metadata["val_comparison"]["values"]) >= {"net", "add(alpha=0.5)", "max"}
    assert set(metadata["seconds"]) == {"maps", "training"}


def test_mlfem_accepts_the_net_for_its_model_only(setup: dict) -> None:
    spec = f"net:{setup['net']}"
    same = load_model(SPEC, str(setup["weights"][0])).model
    maps = MLFEM(same, fusion=spec)(torch.randn(2, 3, 32, 32))
    assert maps.shape == (2, 32, 32)
    # The same weights cast for inference (mlfem explain --dtype) are the same model.
    net = load_fusion_net(setup["net"])
    for dtype in (torch.float16, torch.bfloat16):
        net.check_model(load_model(SPEC, str(setup["weights"][0]), dtype=dtype).model)
    # Trained on unrectified maps: rectified ones are refused.
    assert json.loads((setup["out"] / "net.json").read_text())["rectify"] is False
    with pytest.raises(ValueError, match="trained on unrectified layer outputs"):
        MLFEM(same, layers="auto-rectified", fusion=spec)
    other = load_model(SPEC, str(setup["weights"][1])).model
    with pytest.raises(FusionMismatchError, match=f"--model {SPEC} --weights"):
        MLFEM(other, fusion=spec)
    with pytest.raises(FusionMismatchError):
        net.check_model(other.to(torch.float16))
    with pytest.raises(FusionMismatchError):
        load_fusion_net(setup["net"], classifier=other)


def _evaluate(setup: dict, out: Path, weights: Path, split: str) -> int:
    metadata = json.loads((setup["out"] / "net.json").read_text())
    return main(
        [
            "evaluate", "--model", SPEC, "--weights", str(weights), "--net", str(setup["net"]),
            "--methods", "mlfem-net,mlfem-add", "--metrics", "pcc",
            "--dataset", "osie", "--root", str(setup["root"]), "--dataset-option", "sigma=3",
            "--splits", metadata["dataset"]["splits"], "--split", split,
            "--workers", "0", "--device", "cpu", "--no-reference", "--gallery", "0",
            "--no-progress", "--out", str(out),
        ]
    )


def test_evaluate_takes_the_net_for_its_model_on_unseen_images(
    setup: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert _evaluate(setup, tmp_path / "ok", setup["weights"][0], "test") == 0
    run = json.loads((tmp_path / "ok" / "run.json").read_text())
    assert run["leakage"]["checked"] and not run["leakage"]["report"]["leaked"]
    capsys.readouterr()
    assert _evaluate(setup, tmp_path / "other", setup["weights"][1], "test") == 2
    assert "trained on the FEM maps of --model" in capsys.readouterr().err


def test_evaluating_images_the_net_saw_is_refused(
    setup: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert _evaluate(setup, tmp_path / "leak", setup["weights"][0], "val") == 2
    assert "LEAKAGE" in capsys.readouterr().err
    metadata = json.loads((setup["out"] / "net.json").read_text())
    with pytest.warns(LeakageWarning):
        report = check_leakage("osie", metadata["train_ids"][:2], [setup["net"]], mode="flag")
    assert report.leaked and report.overlaps[str(setup["net"])] == {"train": sorted(metadata["train_ids"][:2])}


def test_train_fusion_model_usage_errors(
    setup: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    common = ["--out", str(tmp_path / "x"), "--quiet"]
    assert main(["train-fusion", "--model", SPEC, *common]) == 2
    assert "--dataset" in capsys.readouterr().err
    assert main(["train-fusion", *common]) == 2
    assert "--classifier/--model" in capsys.readouterr().err
    clf = tmp_path / "c.safetensors"
    clf.write_bytes(b"")
    assert main(["train-fusion", "--classifier", str(clf), "--model", SPEC, *common]) == 2
    assert "exactly one" in capsys.readouterr().err
    assert main(["train-fusion", "--classifier", str(clf), "--weights", "imagenet", *common]) == 2
    assert "--weights applies to --model" in capsys.readouterr().err
    args = ["train-fusion", "--model", SPEC, "--dataset", "osie", "--root", str(setup["root"])]
    with pytest.raises(SystemExit) as exited:  # argparse's own error
        main([*args, "--split-fractions", "0.5,0.6,0", *common])
    assert exited.value.code == 2 and "--split-fractions" in capsys.readouterr().err
    assert main([*args, "--weights", str(tmp_path / "missing.pth"), *common]) == 2
    assert "--weights: file not found" in capsys.readouterr().err
