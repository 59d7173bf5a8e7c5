"""mlfem evaluate's configuration and resolution: a dataset named by an alias is the dataset
a classifier checkpoint records, as it is for the leakage guard."""

from __future__ import annotations

import json

import pytest

from mlfem.evaluation.runner import EvaluationConfig, EvaluationError


def _classifier(tmp_path, dataset: dict) -> str:
    """A classifier checkpoint's JSON sidecar (all the runner reads of it before the model)."""
    sidecar = tmp_path / "classifier.json"
    sidecar.write_text(json.dumps({"format": "mlfem-classifier/1", "dataset": dataset}), encoding="utf-8")
    return str(tmp_path / "classifier.safetensors")


@pytest.mark.parametrize("alias", ["mit", "MIT-1003", "mit_1003"])
def test_an_alias_of_the_classifiers_dataset_takes_its_root_options_and_splits(tmp_path, alias) -> None:
    from mlfem.evaluation.config import dataset_from_classifier
    from mlfem.training.leakage import find_overlap

    recorded = {"name": "mit1003", "root": "/data/mit1003", "options": {"sigma": 30.0}, "splits": "/runs/splits.json"}
    classifier = _classifier(tmp_path, recorded)
    # The leakage guard takes the alias for the recorded dataset: it refuses the images the
    # classifier trained on whichever name the evaluation is given ...
    trained = {"format": "mlfem-classifier/1", "dataset": {"name": "mit1003"}, "train_ids": ["i1"]}
    assert find_overlap(alias, ["i1"], [trained]).leaked
    # ... so the runner must too, and evaluate on the classifier's own splits (its test split
    # is the one it never saw), root and options.
    config = EvaluationConfig(dataset=alias, out=tmp_path / "run", classifier=classifier, dataset_options={"gfdm": "fixations"})
    dataset_from_classifier(config)
    assert config.dataset == "mit1003"
    assert config.root == "/data/mit1003" and config.splits == "/runs/splits.json"
    assert config.dataset_options == {"sigma": 30.0, "gfdm": "fixations"}  # the caller's win


def test_another_dataset_than_the_classifiers_keeps_the_callers_options(tmp_path) -> None:
    from mlfem.evaluation.config import dataset_from_classifier

    classifier = _classifier(tmp_path, {"name": "mit1003", "root": "/data/mit1003", "splits": "/runs/splits.json"})
    config = EvaluationConfig(dataset="osie", out=tmp_path / "run", classifier=classifier)
    dataset_from_classifier(config)
    assert (config.dataset, config.root, config.splits) == ("osie", None, None)
    nothing = EvaluationConfig(dataset=None, out=tmp_path / "run", classifier=_classifier(tmp_path, {}))
    with pytest.raises(EvaluationError, match="records no dataset"):
        dataset_from_classifier(nothing)


def test_gfdm_settings_are_the_datasets_declared_ones() -> None:
    from types import SimpleNamespace

    import pytest

    from mlfem.datasets import GFDMSettings, open_dataset
    from mlfem.evaluation.config import EvaluationError, gfdm_settings

    synthetic = open_dataset("synthetic", n=2, seed=1, size=40)
    assert gfdm_settings(synthetic) == GFDMSettings("fixations", synthetic.config.effective_sigma)
    osie = open_dataset("osie-sample")
    assert (gfdm_settings(osie).sigma, gfdm_settings(osie).collapse) == (24.0, False)
    # No guessing from attributes: a dataset object without the declaration is refused.
    with pytest.raises(EvaluationError, match="does not declare its GFDM settings"):
        gfdm_settings(SimpleNamespace(name="mine", gfdm_source="shipped", sigma=19.0))