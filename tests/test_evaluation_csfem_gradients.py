"""`mlfem evaluate --methods csfem` alone on a model whose head is not linear on pooled
features: CS-FEM back-propagates there, so the run must leave autograd on (it used to run
every "gradient-free" method set under inference mode, where CS-FEM then raised)."""

from __future__ import annotations

import csv
import math

import torch

from mlfem.datasets import open_dataset
from mlfem.evaluation.methods import MethodRunner
from mlfem.evaluation.model import EvaluatedModel, TensorPreprocessing
from mlfem.evaluation.runner import EvaluationConfig, run_evaluation
from mlfem.models import Preprocessing
from tiny_models import PooledHeadCNN


def test_runner_counts_csfem_among_the_gradient_methods() -> None:
    torch.manual_seed(0)
    runner = MethodRunner(PooledHeadCNN(6, mlp_head=True).eval(), ["csfem", "fem"])
    assert runner.gradient_methods() == ["csfem"]


def test_evaluate_csfem_alone_on_a_non_linear_head(tmp_path) -> None:
    torch.manual_seed(0)
    preprocessing = Preprocessing(crop_size=40, mean=(0.5,) * 3, std=(0.5,) * 3, fit="whole")
    model = EvaluatedModel(
        PooledHeadCNN(6, mlp_head=True).eval(), TensorPreprocessing(preprocessing), description="MLP head"
    )
    dataset = open_dataset("synthetic", n=4, seed=2, mode="multi", size=40)
    config = EvaluationConfig(
        dataset="synthetic", out=tmp_path / "run", split=None, methods=["csfem"], metrics=["pcc"],
        batch_size=2, gallery=0, progress=False,
    )
    run_evaluation(config, model=model, dataset=dataset)
    with open(tmp_path / "run" / "results.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["method"] == "csfem"]
    assert len(rows) == 4
    assert all(math.isfinite(float(row["pcc"])) for row in rows)
