"""The evaluation's prepared images: fixations read once into gaze.Fixations in the worker,
and the per-observer targets built from them."""

from __future__ import annotations

import numpy as np
import torch

from mlfem.datasets import open_dataset
from mlfem.evaluation.model import TensorPreprocessing
from mlfem.evaluation.observers import observer_targets, targets_for
from mlfem.evaluation.scoring import PreparedImage, PreparedImages, Skip
from mlfem.gaze import Fixations, density_from_counts, fixation_counts
from mlfem.models import Preprocessing


class _WithAnEmptyObserver(torch.utils.data.Dataset):
    """The synthetic set with an observer who looked elsewhere, and an unreadable sample."""

    def __init__(self) -> None:
        self.base = open_dataset("synthetic", n=3, seed=1, mode="multi", size=40)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        from mlfem.datasets import SampleError

        if index == 2:
            raise SampleError(self.base.image_ids[2], "/nowhere.jpg", "truncated JPEG")
        sample = self.base[index]
        sample.fixations = [torch.zeros((0, 2))] + sample.fixations
        return sample


def test_a_prepared_image_carries_its_fixations_as_one_fixations_record() -> None:
    dataset = _WithAnEmptyObserver()
    preprocess = TensorPreprocessing(Preprocessing(crop_size=32, mean=(0.5,) * 3, std=(0.5,) * 3, fit="whole"))
    prepared = PreparedImages(dataset, range(3), preprocess, gallery=1)
    first, second, third = prepared[0], prepared[1], prepared[2]
    assert isinstance(first, PreparedImage) and isinstance(third, Skip) and third.reason == "truncated JPEG"
    assert first.image is not None and second.image is None  # kept for the gallery only
    sample = dataset.base[0]
    observed = [f for f in sample.fixations if len(f)]
    fixations = first.fixations
    assert isinstance(fixations, Fixations) and fixations.name == sample.image_id
    assert first.size == (40, 40) == fixations.size and first.input.shape == (3, 32, 32)
    assert fixations.n_observers == len(observed)  # the empty observer is not one
    np.testing.assert_array_equal(fixations.xs, torch.cat(observed)[:, 0].double().numpy())
    np.testing.assert_array_equal(fixations.ys, torch.cat(observed)[:, 1].double().numpy())
    # The per-observer targets: each observer's counts and own (collapsed) GFDM, whichever
    # form the fixations come in.
    # (float64: the same blur as density_from_counts, up to the order of the sums)
    counts = fixation_counts([f[:, 0] for f in observed], [f[:, 1] for f in observed], 40, 40).counts
    own = density_from_counts((counts > 0).double(), 3.0)
    for got in (targets_for(fixations, 3.0, collapse=True), observer_targets(observed, 40, 40, 3.0, collapse=True)):
        torch.testing.assert_close(got.counts, counts, rtol=0, atol=0)
        torch.testing.assert_close(got.own, own, rtol=1e-12, atol=1e-15)
