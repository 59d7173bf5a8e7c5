"""A small evaluation run (random tiny CNN, synthetic images) for the report tests.

Computed once per test session and copied for each caller, so that the report tests and the
browser tests do not evaluate twice.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import torch

from mlfem.datasets import open_dataset
from mlfem.evaluation.model import EvaluatedModel, TensorPreprocessing
from mlfem.evaluation.runner import EvaluationConfig, run_evaluation
from mlfem.models import Preprocessing
from tiny_models import TinyCNN

METHODS = ["mlfem-add", "mlfem-max", "fem", "gradcam"]
N_IMAGES = 8
GALLERY = 3

_CACHE: list[Path] = []


def _evaluate(out: Path) -> None:
    torch.manual_seed(0)
    preprocessing = Preprocessing(crop_size=40, mean=(0.5,) * 3, std=(0.5,) * 3, fit="whole")
    model = EvaluatedModel(TinyCNN(6).eval(), TensorPreprocessing(preprocessing), description="tiny CNN")
    dataset = open_dataset("synthetic", n=N_IMAGES, seed=2, mode="multi", size=40)
    config = EvaluationConfig(
        dataset="synthetic", out=out, split=None, methods=METHODS, metrics=["pcc", "sim"],
        batch_size=4, gallery=GALLERY, progress=False,
    )
    run_evaluation(config, model=model, dataset=dataset)


def make_run(out: Path) -> Path:
    """Four methods evaluated on 8 synthetic multi-label images (40 px), copied into ``out``."""
    if not _CACHE:
        base = Path(tempfile.mkdtemp(prefix="mlfem-eval-"))
        atexit.register(shutil.rmtree, base, True)
        _evaluate(base / "run")
        _CACHE.append(base / "run")
    shutil.copytree(_CACHE[0], out)
    return out
