"""The metric values that ``mlfem evaluate`` writes to results.csv, recomputed without the
evaluation code: each image's map from the explainer called directly (MLFEM and Grad-CAM on the
predicted class), its GFDM from the dataset, and PCC, SIM and NSS written out in NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlfem import MLFEM
from mlfem.datasets import open_dataset
from mlfem.evaluation import read_results
from mlfem.evaluation.model import EvaluatedModel, TensorPreprocessing
from mlfem.evaluation.runner import EvaluationConfig, run_evaluation
from mlfem.explainers.cam import GradCAM
from mlfem.models import Preprocessing
from tiny_models import TinyCNN

SIZE = 40  # the images' size and the model's input: the maps need no resizing either way


def pcc(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def sim(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.clip(a, 0, None), np.clip(b, 0, None)
    return float(np.minimum(a / a.sum(), b / b.sum()).sum())


def nss(saliency: np.ndarray, fixations: np.ndarray) -> float:
    """Mean z-score (population std) over the fixations, each on pixel floor(coordinate + 0.5)."""
    z = (saliency - saliency.mean()) / saliency.std()
    cols = np.floor(fixations[:, 0] + 0.5).astype(int)
    rows = np.floor(fixations[:, 1] + 0.5).astype(int)
    inside = (rows >= 0) & (rows < z.shape[0]) & (cols >= 0) & (cols < z.shape[1])
    return float(z[rows[inside], cols[inside]].mean())


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    torch.manual_seed(0)
    model = TinyCNN(6).eval()
    preprocessing = Preprocessing(crop_size=SIZE, mean=(0.5,) * 3, std=(0.5,) * 3, fit="whole")
    dataset = open_dataset("synthetic", n=6, seed=4, mode="multi", size=SIZE)
    out = tmp_path_factory.mktemp("evaluation")
    config = EvaluationConfig(
        dataset="synthetic", out=out, split=None, methods=["mlfem", "gradcam"],
        metrics=["pcc", "sim", "nss"], batch_size=4, gallery=0, progress=False,
    )
    run_evaluation(config, model=EvaluatedModel(model, TensorPreprocessing(preprocessing)), dataset=dataset)
    return model, dataset, read_results(out / "results.csv")


def test_results_csv_values_equal_an_independent_computation(evaluated) -> None:
    model, dataset, table = evaluated
    samples = [dataset[i] for i in range(len(dataset))]
    # The preprocessing written out: pixels / 255, then (x - 0.5) / 0.5; no resize at 40 px.
    images = torch.stack([(s.image.float() / 255 - 0.5) / 0.5 for s in samples])
    with torch.no_grad():
        predicted = model(images).argmax(dim=1)
    maps = {
        "mlfem": MLFEM(model)(images),  # the method's defaults: auto layers, add, alpha 0.5, k 2
        "gradcam": GradCAM(model)(images, predicted),
    }
    checked = 0
    for index, sample in enumerate(samples):
        gfdm = sample.gfdm.double().numpy()
        fixations = sample.all_fixations().double().numpy()
        for method, method_maps in maps.items():
            saliency = method_maps[index].double().numpy()
            row = table.where((table["image_id"] == sample.image_id) & (table["method"] == method))
            assert len(row) == 1
            assert row["pcc"][0] == pytest.approx(pcc(saliency, gfdm), rel=1e-4, abs=1e-5), method
            assert row["sim"][0] == pytest.approx(sim(saliency, gfdm), rel=1e-4, abs=1e-5), method
            assert row["nss"][0] == pytest.approx(nss(saliency, fixations), rel=1e-4, abs=1e-5), method
            checked += 1
    assert checked == 2 * len(samples) == 12
    # The maps differ between the methods, so each row was checked against its own method.
    assert not np.allclose(table.method_rows("mlfem")["pcc"], table.method_rows("gradcam")["pcc"])
