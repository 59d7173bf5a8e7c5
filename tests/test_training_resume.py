"""Interrupting and resuming gives exactly the weights of an uninterrupted run (CPU, same seed),
for the classifier, the NET and the FEM map cache."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from mlfem import MLFEM
from mlfem.datasets import open_dataset
from mlfem.models.checkpoint import read_metadata
from mlfem.training import (
    CacheMismatchError,
    ClassifierConfig,
    FusionConfig,
    MapCache,
    TrainingInterrupted,
    train_classifier,
    train_fusion,
)


# Training tests run single-threaded (see conftest.one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


def _config(out: Path, **changes) -> ClassifierConfig:
    # 40 images: 32 train (4 batches of 8), 4 val; standard augmentation draws random numbers.
    settings = dict(
        dataset="synthetic",
        out=out,
        dataset_options={"n": 40},
        image_size=32,
        epochs=2,
        batch_size=8,
        lr=2e-3,
        augment="standard",
        seed=3,
        num_workers=0,
        device="cpu",
    )
    settings.update(changes)
    return ClassifierConfig(**settings)


def _stop_at(stop: threading.Event, epoch: int, step: int):
    def on_step(e: int, s: int, loss: float) -> None:
        if (e, s) == (epoch, step):
            stop.set()

    return on_step


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory):
    return train_classifier(_config(tmp_path_factory.mktemp("reference")), progress=False)


@pytest.mark.parametrize("epoch, step", [(0, 2), (0, 4), (1, 1)])
def test_a_resumed_classifier_equals_the_uninterrupted_run(
    reference, tmp_path: Path, epoch, step
) -> None:
    stop = threading.Event()
    with pytest.raises(TrainingInterrupted) as stopped:
        train_classifier(
            _config(tmp_path), progress=False, stop=stop, on_step=_stop_at(stop, epoch, step)
        )
    assert (stopped.value.epoch, stopped.value.step) == (epoch, step)
    resumed = train_classifier(_config(tmp_path, resume=True), progress=False)
    # Identical fingerprints: every weight and batch-norm statistic bit for bit.
    assert (
        read_metadata(resumed.checkpoint)["fingerprint"]
        == read_metadata(reference.checkpoint)["fingerprint"]
    )
    final = read_metadata(tmp_path / "training_state.json")["fingerprint"]
    assert (
        final == read_metadata(reference.checkpoint.parent / "training_state.json")["fingerprint"]
    )
    assert resumed.history == reference.history


def test_an_existing_run_is_not_overwritten_or_resumed_with_other_settings(reference) -> None:
    out = reference.checkpoint.parent
    with pytest.raises(FileExistsError, match="--resume"):
        train_classifier(_config(out), progress=False)
    with pytest.raises(ValueError, match="lr"):
        train_classifier(_config(out, lr=1e-2, resume=True), progress=False)
    # Resuming a finished run with more epochs continues it.
    more = train_classifier(_config(out, epochs=3, resume=True), progress=False)
    assert [h["epoch"] for h in more.history] == [1, 2, 3]


def test_a_resumed_net_equals_the_uninterrupted_run(reference, tmp_path: Path) -> None:
    def config(out: Path, **changes) -> FusionConfig:
        return FusionConfig(
            classifier=reference.checkpoint,
            out=out,
            resolution=32,
            epochs=3,
            batch_size=8,
            patience=5,
            cache=tmp_path / "cache",
            device="cpu",
            **changes,
        )

    full = train_fusion(config(tmp_path / "full"), progress=False)
    stop = threading.Event()
    with pytest.raises(TrainingInterrupted):
        train_fusion(
            config(tmp_path / "cut"), progress=False, stop=stop, on_step=_stop_at(stop, 1, 2)
        )
    resumed = train_fusion(config(tmp_path / "cut", resume=True), progress=False)
    assert (
        read_metadata(resumed.checkpoint)["fingerprint"]
        == read_metadata(full.checkpoint)["fingerprint"]
    )
    assert resumed.history == full.history
    assert resumed.comparison == full.comparison


def test_an_interrupted_map_cache_continues_where_it_stopped(reference, tmp_path: Path) -> None:
    from mlfem.models.checkpoint import load_classifier

    model = load_classifier(reference.checkpoint).model
    explainer = MLFEM(model)
    dataset = open_dataset("synthetic", n=20, seed=7, size=32)
    key = {"layers": explainer.layer_names, "resolution": 16, "what": "test"}
    options = dict(
        image_size=32,
        mean=(0.5,) * 3,
        std=(0.25,) * 3,
        resolution=16,
        batch_size=4,
        shard_size=8,
        progress=False,
    )
    whole = MapCache.build(tmp_path / "whole", key, explainer, dataset, **options)
    stop = threading.Event()
    stop.set()  # stops after the first batch, which is written as a shard
    with pytest.raises(TrainingInterrupted):
        MapCache.build(tmp_path / "cut", key, explainer, dataset, stop=stop, **options)
    assert len(list((tmp_path / "cut").glob("maps-*.npy"))) == 1
    finished = MapCache.build(tmp_path / "cut", key, explainer, dataset, **options)
    assert finished.image_ids == whole.image_ids == dataset.image_ids
    assert np.array_equal(finished.maps.numpy(), whole.maps.numpy())
    assert np.array_equal(finished.gfdm.numpy(), whole.gfdm.numpy())
    assert whole.maps.dtype == torch.float16 and whole.maps.shape == (20, 4, 16, 16)
    assert torch.allclose(whole.gfdm.float().amax(dim=(1, 2)), torch.ones(20))
    with pytest.raises(CacheMismatchError, match="another classifier"):
        MapCache.build(
            tmp_path / "cut",
            {**key, "resolution": 8},
            explainer,
            dataset,
            **{**options, "resolution": 8},
        )
