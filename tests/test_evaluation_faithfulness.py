"""The network metrics and sAUC in mlfem evaluate: columns, reference rows, values identical
under resume and whatever the batch, options checked, and the report's sections."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mlfem.datasets import open_dataset
from mlfem.evaluation import read_results
from mlfem.evaluation.model import EvaluatedModel, TensorPreprocessing
from mlfem.evaluation.runner import EvaluationConfig, EvaluationError, run_evaluation
from mlfem.metrics import sauc
from mlfem.metrics.perturbation import deletion
from mlfem.models import Preprocessing
from tiny_models import TinyCNN

SIZE = 32
METRICS = ["pcc", "deletion", "insertion", "stability", "sauc", "rand_spearman", "rand_ssim"]
OPTIONS = {"deletion": {"steps": 6}, "insertion": {"steps": 6}, "stability": {"copies": 2}}


def _model() -> EvaluatedModel:
    torch.manual_seed(0)
    preprocessing = Preprocessing(crop_size=SIZE, mean=(0.5,) * 3, std=(0.5,) * 3, fit="whole")
    return EvaluatedModel(TinyCNN(6).eval(), TensorPreprocessing(preprocessing), description="tiny")


def _run(out, dataset, on_batch=None, **overrides):
    options = dict(
        dataset="synthetic", out=out, split=None, methods=["mlfem-add", "fem", "gradcam"],
        metrics=METRICS, metric_options=OPTIONS, batch_size=3, gallery=1, progress=False,
    )
    options.update(overrides)
    return run_evaluation(EvaluationConfig(**options), model=_model(), dataset=dataset, on_batch=on_batch)


@pytest.fixture(scope="module")
def dataset():
    return open_dataset("synthetic", n=5, seed=3, mode="multi", size=SIZE)


@pytest.fixture(scope="module")
def whole(tmp_path_factory, dataset):
    out = tmp_path_factory.mktemp("faith") / "whole"
    _run(out, dataset)
    return out


def test_columns_and_reference_rows(whole):
    table = read_results(whole / "results.csv")
    header = (whole / "results.csv").read_text().splitlines()[0].split(",")
    assert "rand_spearman@head" in header and "rand_ssim@features.3" in header
    assert "deletion_obs" not in header and "sauc_obs" in header and "pcc_obs" in header
    for method in ("mlfem-add", "fem", "gradcam"):
        rows = table.method_rows(method)
        for metric in METRICS:
            assert np.isfinite(rows[metric]).all(), (method, metric)
    centre = table.method_rows("centre-bias")
    assert np.isfinite(centre["deletion"]).all() and np.isfinite(centre["sauc"]).all()
    assert np.isnan(centre["stability"]).all() and np.isnan(centre["rand_ssim"]).all()  # no explainer
    assert np.isfinite(table.method_rows("human")["sauc_obs"]).all()  # the ceiling with the pool
    # FEM reads the features only: re-initialising the head alone leaves its map unchanged.
    assert table.method_rows("fem")["rand_spearman@head"].tolist() == pytest.approx([1.0] * 5)
    record = json.loads((whole / "run.json").read_text())
    assert record["nan_total"] == 0  # not-applicable cells are not counted as undefined


def test_values_match_the_library_functions(whole, dataset):
    # Deletion of the centre-bias row: the library function on the same input and map.
    from mlfem.metrics.centre import centre_bias

    model = _model()
    sample = dataset[0]
    inputs, _ = model.preprocess(sample.image)
    maps = centre_bias(SIZE, SIZE)[None]
    expected = deletion(model.model, inputs[None], maps, steps=6, multi_label=True)  # a multi-label dataset
    row = read_results(whole / "results.csv").method_rows("centre-bias")
    assert row["deletion"][0] == pytest.approx(float(expected[0]), abs=1e-6)  # float32 passes


def test_sauc_negatives_are_the_other_images_fixations(whole, dataset):
    # The centre-bias row's sAUC from the pool, recomputed by hand with the image's seed.
    from mlfem.evaluation.scoring import image_seed
    from mlfem.gaze import fixation_counts
    from mlfem.metrics.centre import centre_bias

    samples = [dataset[i] for i in range(len(dataset))]
    target = samples[2]
    height, width = target.image.shape[1:]
    xs = [torch.cat([f[:, 0] for f in s.fixations if len(f)]) for s in samples if s.image_id != target.image_id]
    ys = [torch.cat([f[:, 1] for f in s.fixations if len(f)]) for s in samples if s.image_id != target.image_id]
    # Every synthetic image has the same size: rescaling keeps each fixation's pixel.
    other = fixation_counts(xs, ys, height, width, dtype=torch.float32).counts.sum(0)
    own = fixation_counts([torch.cat([f[:, 0] for f in target.fixations if len(f)])],
                          [torch.cat([f[:, 1] for f in target.fixations if len(f)])], height, width,
                          dtype=torch.float32).counts[0]
    expected = sauc(centre_bias(height, width), own, other, seed=image_seed(0, target.image_id))
    table = read_results(whole / "results.csv")
    rows = table.method_rows("centre-bias")
    index = list(table.image_ids).index(target.image_id)
    assert rows["sauc"][index] == pytest.approx(float(expected), abs=1e-9)


def _rows(path):
    head, *body = (path / "results.csv").read_text().splitlines()
    return head, sorted(body)


def test_a_resumed_run_gives_the_same_rows(tmp_path, whole, dataset):
    partial = tmp_path / "partial"

    def interrupt(batch: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(partial, dataset, on_batch=interrupt)
    assert len(read_results(partial / "results.csv").image_ids) == 3
    _run(partial, dataset)  # resumed: the second batch
    assert _rows(partial) == _rows(whole)


def test_metric_values_do_not_depend_on_the_batch(tmp_path, whole, dataset):
    # The centre-bias map does not depend on the batch either (a method's map may, by a few
    # ulps, which can reorder tied pixels): its network and sAUC values must be identical.
    single = tmp_path / "single"
    _run(single, dataset, batch_size=1)
    a = read_results(whole / "results.csv").method_rows("centre-bias")
    b = read_results(single / "results.csv").method_rows("centre-bias")
    for metric in ("deletion", "insertion", "sauc", "sauc_obs"):
        assert a[metric].tolist() == b[metric].tolist(), metric


def test_metric_options_are_checked(tmp_path, dataset):
    with pytest.raises(EvaluationError, match="has no option 'stpes'"):
        EvaluationConfig(dataset="synthetic", out=tmp_path, metrics=["deletion"], metric_options={"deletion": {"stpes": 3}})
    with pytest.raises(EvaluationError, match="not among --metrics"):
        EvaluationConfig(dataset="synthetic", out=tmp_path, metrics=["pcc"], metric_options={"deletion": {"steps": 3}})
    settings = EvaluationConfig(dataset="synthetic", out=tmp_path, metrics=["pcc"]).settings()
    assert "metric_options" not in settings  # runs made before metric options stay resumable


def test_report_shows_every_metric_and_the_randomisation_curves(tmp_path, whole):
    import shutil

    from mlfem.reporting.html import write_report

    folder = tmp_path / "report"
    shutil.copytree(whole, folder)
    page = write_report(folder, resamples=50).read_text()
    for metric in METRICS:
        assert f"{metric.upper()} " in page
    assert "Model randomisation" in page and "faithfulness to the network" in page
    assert (folder / "figures" / "randomisation_rand_spearman.png").is_file()
    assert (folder / "figures" / "fig4_wins_deletion.png").is_file()
