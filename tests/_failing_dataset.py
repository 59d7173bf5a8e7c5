"""A dataset wrapper whose chosen samples cannot be read, for the evaluation's skip tests."""

from __future__ import annotations

from collections.abc import Collection

import torch

from mlfem.datasets import SampleError


class FailingSamples(torch.utils.data.Dataset):
    """``base`` (a synthetic set) where the samples at ``failing`` positions raise
    :class:`SampleError` with ``reason`` (all of them when ``failing`` is None)."""

    def __init__(self, base, failing: Collection[int] | None, path: str, reason: str) -> None:
        self.base, self.failing, self.path, self.reason = base, failing, path, reason
        self.multi_label, self.class_names, self.config = base.multi_label, base.class_names, base.config
        self.name = "synthetic"
        # A dataset given to run_evaluation declares its GFDM settings (the dataset protocol).
        self.gfdm_settings = base.gfdm_settings

    def __len__(self) -> int:
        return len(self.base)

    @property
    def image_ids(self) -> list[str]:
        return self.base.image_ids

    def __getitem__(self, index: int):
        if self.failing is None or index in self.failing:
            raise SampleError(self.base.image_ids[index], self.path, self.reason)
        return self.base[index]
