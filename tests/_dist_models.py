"""A tiny CNN that fails on purpose in one torchrun process, for the distributed tests.

``MLFEM_TEST_FAIL=RANK:ROWS:HOW`` makes the process of rank RANK fail in the forward pass that
follows the moment its shard (``$MLFEM_TEST_OUT/shards/results-rank<RANK>.csv``) holds ROWS
rows: ``raise`` raises a RuntimeError (the evaluation goes on elsewhere and reports it),
``kill`` kills the process at once (SIGKILL: nothing of it runs any more). Without the
variable it is :class:`tiny_models.TinyCNN`, so a resumed run uses the same model spec.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import torch

from tiny_models import TinyCNN


class FailingCNN(TinyCNN):
    def __init__(self, classes: int = 3) -> None:
        torch.manual_seed(0)  # every process builds the same weights
        super().__init__(classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        setting = os.environ.get("MLFEM_TEST_FAIL")
        if setting:
            rank, rows, how = setting.split(":")
            shard = Path(os.environ["MLFEM_TEST_OUT"]) / "shards" / f"results-rank{int(rank):05d}.csv"
            if os.environ.get("RANK") == rank and shard.exists() and \
                    len(shard.read_bytes().splitlines()) > int(rows):
                if how == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                raise RuntimeError(f"rank {rank} fails on purpose")
        return super().forward(x)
