"""A timm ViT through the whole protocol: train-classifier (model options recorded and
rebuilt), train-fusion on its token maps, evaluate with MLFEM, rollout and Grad-CAM."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from mlfem.cli import main
from mlfem.models import load_model

pytest.importorskip("timm")
# Training tests run single-threaded (see conftest.one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")

VIT_OPTIONS = ["-M", "patch_size=8", "-M", "depth=2", "-M", "embed_dim=16", "-M", "num_heads=2",
               "-M", "img_size=32"]


def test_a_vit_is_trained_fused_and_evaluated(tmp_path: Path) -> None:
    clf = tmp_path / "clf"
    code = main(["train-classifier", "--dataset", "synthetic", "--n", "30", "--data-seed", "1",
                 "--model", "timm:vit_tiny_patch16_224", *VIT_OPTIONS, "--image-size", "32",
                 "--epochs", "1", "--batch-size", "8", "--augment", "none", "--device", "cpu",
                 "--out", str(clf), "--quiet"])
    assert code == 0
    checkpoint = clf / "classifier.safetensors"
    architecture = json.loads(checkpoint.with_suffix(".json").read_text())["architecture"]
    assert architecture["options"] == {"patch_size": 8, "depth": 2, "embed_dim": 16, "num_heads": 2,
                                       "img_size": 32}
    model = load_model(str(checkpoint)).model
    assert len(model.blocks) == 2 and model.patch_embed.proj.kernel_size == (8, 8)

    net = tmp_path / "net"
    assert main(["train-fusion", "--classifier", str(checkpoint), "--out", str(net), "--resolution", "16",
                 "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--quiet"]) == 0
    evaluation = tmp_path / "eval"
    assert main(["evaluate", "--classifier", str(checkpoint), "--net", str(net / "net.safetensors"),
                 "--methods", "mlfem-net,mlfem-add,rollout,gradcam", "--metrics", "pcc",
                 "--out", str(evaluation), "--device", "cpu", "--workers", "0", "--no-progress",
                 "--gallery", "0"]) == 0
    with (evaluation / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    methods = {row["method"] for row in rows}
    assert {"mlfem-net", "mlfem-add", "rollout", "gradcam"} <= methods
    scores = [float(row["pcc"]) for row in rows if row["method"] in ("mlfem-add", "rollout")]
    assert scores and all(-1 <= value <= 1 for value in scores)


def test_model_options_need_a_timm_model_from_scratch(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["train-classifier", "--dataset", "synthetic", "--n", "8", "--model", "small-cnn",
                 "-M", "depth=2", "--out", str(tmp_path / "x"), "--quiet"])
    assert code == 2 and "model options apply to a timm architecture" in capsys.readouterr().err
    code = main(["train-classifier", "--dataset", "synthetic", "--n", "8", "--model",
                 "timm:vit_tiny_patch16_224", "-M", "depth", "--out", str(tmp_path / "y"), "--quiet"])
    assert code == 2 and "-M expects KEY=VALUE" in capsys.readouterr().err


def test_vit_rebuilt_from_its_checkpoint_gives_the_same_outputs(tmp_path: Path) -> None:
    from mlfem.training import ClassifierConfig, train_classifier

    run = train_classifier(ClassifierConfig(
        dataset="synthetic", out=tmp_path / "c", dataset_options={"n": 12, "seed": 2},
        model="timm:vit_tiny_patch16_224", model_options={"patch_size": 8, "depth": 1, "embed_dim": 16,
                                                          "num_heads": 2, "img_size": 32},
        image_size=32, epochs=1, batch_size=6, augment="none", split_fractions=(0.5, 0.5, 0.0), device="cpu",
    ), progress=False)
    first, second = load_model(str(run.checkpoint)).model, load_model(str(run.checkpoint)).model
    images = torch.randn(2, 3, 32, 48)  # another size: dynamic_img_size
    with torch.inference_mode():
        torch.testing.assert_close(first(images), second(images))
