"""``mlfem train-classifier`` and ``mlfem train-fusion`` end to end (tiny settings), then
``mlfem explain`` with the trained classifier and ``--fusion net:PATH``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlfem.cli import main
from mlfem.datasets import open_dataset


# Training tests run single-threaded (see conftest.one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


def test_train_classifier_then_fusion_then_explain(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    clf, net = tmp_path / "clf", tmp_path / "net"
    assert (
        main(
            [
                "train-classifier",
                "--dataset",
                "synthetic",
                "--n",
                "40",
                "--data-seed",
                "2",
                "--image-size",
                "32",
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--device",
                "cpu",
                "--out",
                str(clf),
                "--quiet",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert (
        "best epoch 1" in out and f"mlfem explain --model {clf / 'classifier.safetensors'}" in out
    )
    metadata = json.loads((clf / "classifier.json").read_text())
    assert metadata["dataset"]["options"] == {"n": 40, "seed": 2, "size": 32}
    assert metadata["architecture"]["name"] == "small-cnn"
    assert (clf / "splits.json").is_file() and (clf / "history.json").is_file()

    assert (
        main(
            [
                "train-fusion",
                "--classifier",
                str(clf / "classifier.safetensors"),
                "--resolution",
                "32",
                "--epochs",
                "2",
                "--batch-size",
                "8",
                "--device",
                "cpu",
                "--out",
                str(net),
                "--quiet",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "mean PCC on the val split" in out and "add(alpha=0.5)" in out
    net_metadata = json.loads((net / "net.json").read_text())
    assert net_metadata["classifier"]["fingerprint"] == metadata["fingerprint"]
    assert net_metadata["train_ids"] == metadata["train_ids"]  # the classifier's splits by default
    assert net_metadata["layers"] == [f"features.stage{i}.relu" for i in range(1, 5)]

    # Images the models never saw (another generator seed), explained by path.
    sample = open_dataset("synthetic", n=1, seed=9, size=32)[0]
    Image.fromarray(sample.image.permute(1, 2, 0).numpy()).save(tmp_path / "img.png")
    assert (
        main(
            [
                "explain",
                str(tmp_path / "img.png"),
                "--model",
                str(clf / "classifier.safetensors"),
                "--fusion",
                f"net:{net / 'net.safetensors'}",
                "--device",
                "cpu",
                "--out",
                str(tmp_path / "maps"),
            ]
        )
        == 0
    )
    saliency = np.load(tmp_path / "maps" / "img.npy")
    assert saliency.shape == (32, 32) and saliency.min() >= 0 and saliency.max() <= 1
    assert "random weights" not in capsys.readouterr().err

    # Rerunning into the same folder needs --resume; resuming a finished run is a no-op.
    assert (
        main(
            [
                "train-classifier",
                "--dataset",
                "synthetic",
                "--n",
                "40",
                "--data-seed",
                "2",
                "--image-size",
                "32",
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--device",
                "cpu",
                "--out",
                str(clf),
                "--quiet",
            ]
        )
        == 2
    )
    assert "--resume" in capsys.readouterr().err
    assert (
        main(
            [
                "train-fusion",
                "--classifier",
                str(clf / "classifier.safetensors"),
                "--resolution",
                "32",
                "--epochs",
                "2",
                "--batch-size",
                "8",
                "--device",
                "cpu",
                "--out",
                str(net),
                "--quiet",
                "--resume",
            ]
        )
        == 0
    )


def test_cli_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert (
        main(
            [
                "train-classifier",
                "--dataset",
                "osie",
                "--root",
                str(tmp_path),
                "--n",
                "5",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "apply to --dataset synthetic only" in capsys.readouterr().err
    assert (
        main(
            [
                "train-classifier",
                "--dataset",
                "synthetic",
                "-O",
                "novalue",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "KEY=VALUE" in capsys.readouterr().err
    assert (
        main(
            [
                "train-fusion",
                "--classifier",
                str(tmp_path / "missing.safetensors"),
                "--out",
                str(tmp_path / "y"),
            ]
        )
        == 2
    )
    assert "file not found" in capsys.readouterr().err
    (tmp_path / "c.safetensors").write_bytes(b"")
    assert (
        main(
            [
                "train-fusion",
                "--classifier",
                str(tmp_path / "c.safetensors"),
                "--resolution",
                "30",
                "--out",
                str(tmp_path / "y"),
            ]
        )
        == 2
    )
    assert "multiple of 4" in capsys.readouterr().err
    assert (
        main(
            [
                "train-fusion",
                "--classifier",
                str(tmp_path / "c.safetensors"),
                "--out",
                str(tmp_path / "y"),
            ]
        )
        == 2
    )
    assert "no JSON sidecar" in capsys.readouterr().err
