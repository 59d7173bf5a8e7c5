"""The leakage guard on checkpoint metadata: overlaps by role, refuse vs flag, other datasets,
checkpoints that record nothing."""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict
from pathlib import Path

import pytest

from mlfem.training import LeakageError, LeakageWarning, check_leakage, find_overlap, seen_images


def _classifier(dataset: str = "cat2000") -> dict:
    return {
        "format": "mlfem-classifier/1",
        "dataset": {"name": dataset},
        "train_ids": ["a", "b", "c"],
        "val_ids": ["d"],
        "weights_file": "clf.safetensors",
    }


def _net() -> dict:
    return {
        "format": "mlfem-net/1",
        "dataset": {"name": "CAT2000"},
        "train_ids": ["e"],
        "val_ids": ["f"],
        "classifier": {"train_ids": ["a", "b", "c"], "val_ids": ["d"]},
        "weights_file": "net.safetensors",
    }


def test_overlaps_are_reported_by_checkpoint_and_role() -> None:
    report = find_overlap("cat2000", ["a", "d", "e", "z"], [_classifier(), _net()])
    assert report.leaked and report.leaked_ids == ["a", "d", "e"]
    assert report.overlaps == {
        "clf.safetensors": {"train": ["a"], "val": ["d"]},
        "net.safetensors": {"train": ["e"], "classifier-train": ["a"], "classifier-val": ["d"]},
    }
    assert report.n_images == 4
    only_train = find_overlap("cat2000", ["d"], [_classifier()], roles=("train",))
    assert not only_train.leaked
    json.dumps(asdict(report))  # JSON-able for evaluation records


def test_refuse_raises_and_flag_warns() -> None:
    with pytest.raises(LeakageError, match="1 of the 2 evaluated cat2000 images"):
        check_leakage("cat2000", ["b", "x"], [_classifier()])
    with pytest.warns(LeakageWarning, match="LEAKAGE"):
        report = check_leakage("cat2000", ["b", "x"], [_classifier()], mode="flag")
    assert report.leaked_ids == ["b"] and report.mode == "flag"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clean = check_leakage("cat2000", ["x", "y"], [_classifier(), _net()])
    assert not clean.leaked and "no leakage" in clean.summary()
    with pytest.raises(ValueError, match="mode"):
        check_leakage("cat2000", ["x"], [_classifier()], mode="ignore")  # type: ignore[arg-type]


def test_other_datasets_and_unknown_checkpoints_do_not_raise(tmp_path: Path) -> None:
    bare = tmp_path / "weights.pth"
    bare.write_bytes(b"not an mlfem checkpoint")
    report = check_leakage("osie", ["a"], [_classifier("salicon"), str(bare)])
    assert not report.leaked
    assert report.other_dataset == {"clf.safetensors": "salicon"}
    assert list(report.unknown) == [str(bare)] and "sidecar" in report.unknown[str(bare)]
    assert "unknown" in report.summary()
    # Aliases and case: "MIT" is mit1003.
    assert find_overlap("MIT", ["a"], [_classifier("mit1003")]).leaked


def test_checkpoint_paths_are_read_from_their_sidecar(tmp_path: Path) -> None:
    (tmp_path / "clf.json").write_text(json.dumps(_classifier()))
    seen = seen_images(tmp_path / "clf.safetensors")
    assert seen.kind == "classifier" and seen.ids == {"train": ["a", "b", "c"], "val": ["d"]}
    with pytest.raises(LeakageError):
        check_leakage("cat2000", ["c"], [tmp_path / "clf.safetensors"])
