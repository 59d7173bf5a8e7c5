"""Run by ``torchrun --nproc-per-node 2`` in tests/test_distributed_training.py: both
trainers through the command line, one epoch then a resumed second, keeping a copy of the
one-epoch state. Usage: _dist_train.py OUT CLASSIFIER."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from mlfem.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _dist_settings import CLASSIFIER_ARGS, FUSION_ARGS  # noqa: E402


def _keep(out: Path) -> None:
    if os.environ["RANK"] == "0":  # the others wait for it in the next run's rendezvous
        shutil.copy(out / "training_state.safetensors", out / "epoch1.safetensors")


def run(out: Path, classifier: str) -> None:
    for name, args in (("classifier", CLASSIFIER_ARGS), ("fusion", FUSION_ARGS)):
        folder = out / name
        extra = ["--classifier", classifier] if name == "fusion" else []
        for epochs, resume in (("1", []), ("2", ["--resume"])):
            code = main([*args, *extra, "--epochs", epochs, *resume, "--out", str(folder)])
            if code:
                sys.exit(code)
            if epochs == "1":
                _keep(folder)


if __name__ == "__main__":
    run(Path(sys.argv[1]), sys.argv[2])
