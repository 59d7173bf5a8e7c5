"""End to end on the synthetic benchmark: a small CNN learns the classes, a NET trained on the
train split fuses its FEM maps into GFDMs better than every algebraic fusion on held-out
images, and the NET is refused for other classifiers or layers.

One classifier and one NET are trained per module (64 px images, 400 images, a few epochs
of a 100 k-parameter CNN and a few thousand-parameter NET) and shared by the tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mlfem import MLFEM
from mlfem.fusion.net import FusionMismatchError, load_fusion_net
from mlfem.models import load_model
from mlfem.models.checkpoint import load_classifier
from mlfem.training import (
    ClassifierConfig,
    FusionConfig,
    LeakageError,
    LeakageWarning,
    MapCache,
    check_leakage,
    compare_fusions,
    default_fusions,
    train_classifier,
    train_fusion,
)
from mlfem.training._data import DatasetSpec

SIZE = 64


# Training tests run single-threaded (see conftest.one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("pipeline")
    clf = train_classifier(
        ClassifierConfig(
            dataset="synthetic",
            out=root / "clf",
            dataset_options={"n": 400},
            image_size=SIZE,
            epochs=5,
            batch_size=32,
            lr=3e-3,
            augment="crop",
            seed=0,
            device="cpu",
        ),
        progress=False,
    )
    net = train_fusion(
        FusionConfig(
            classifier=clf.checkpoint,
            out=root / "net",
            resolution=SIZE,
            epochs=12,
            patience=4,
            device="cpu",
        ),
        progress=False,
    )
    return {"root": root, "clf": clf, "net": net}


def test_the_classifier_learns_well_above_chance(trained: dict) -> None:
    history = trained["clf"].history
    assert history[-1]["train_loss"] < 0.75 * history[0]["train_loss"]
    # 6 balanced classes: chance is 1/6 on the 40 validation images.
    assert trained["clf"].best_metrics["accuracy"] >= 0.5


def test_the_net_beats_every_algebraic_fusion_on_held_out_images(trained: dict) -> None:
    loaded = load_classifier(trained["clf"].checkpoint)
    spec = DatasetSpec.from_dict(loaded.metadata["dataset"])
    test_set = spec.open("test")  # seen neither by the classifier nor by the NET
    assert not set(test_set.image_ids) & set(loaded.metadata["train_ids"])
    net = load_fusion_net(trained["net"].checkpoint, classifier=loaded)
    explainer = MLFEM(loaded.model, fusion=net)
    key = {"layers": explainer.layer_names, "resolution": SIZE, "split": "test"}
    cache = MapCache.build(
        trained["root"] / "test-cache",
        key,
        explainer,
        test_set,
        image_size=SIZE,
        mean=loaded.preprocessing.mean,
        std=loaded.preprocessing.std,
        resolution=SIZE,
        progress=False,
    )
    assert len(cache) == 40
    scores = compare_fusions(cache.maps, cache.gfdm, {"net": net, **default_fusions()})
    best_algebraic = max(v for k, v in scores.items() if k != "net")
    assert scores["net"] > best_algebraic + 0.05, scores


def test_net_spec_works_in_mlfem_and_matches_the_operator(trained: dict) -> None:
    loaded = load_model(str(trained["clf"].checkpoint))
    path = trained["net"].checkpoint
    images = torch.randn(3, 3, SIZE, SIZE)
    with MLFEM(loaded.model, fusion=f"net:{path}") as explainer:
        fused, layers = explainer(images, return_layers=True)
    expected = load_fusion_net(path)(layers)
    assert fused.shape == (3, SIZE, SIZE)
    assert torch.allclose(fused, expected)
    assert float(fused.min()) == 0.0 and float(fused.max()) == 1.0


def test_net_refuses_another_classifier_and_other_layers(trained: dict, tmp_path: Path) -> None:
    path = trained["net"].checkpoint
    loaded = load_classifier(trained["clf"].checkpoint)
    net = load_fusion_net(path, classifier=trained["clf"].checkpoint)
    net.check_classifier(loaded)
    # A copy in memory without the recorded fingerprint is recognised by its weights.
    copy = load_classifier(trained["clf"].checkpoint).model
    del copy.mlfem_fingerprint
    net.check_classifier(copy)
    with torch.no_grad():
        copy.fc.bias.add_(0.01)
    with pytest.raises(FusionMismatchError, match="trained on the FEM maps of classifier"):
        net.check_classifier(copy)
    with pytest.raises(FusionMismatchError):
        load_fusion_net(path, classifier=copy)
    with pytest.raises(ValueError, match="trained on layers"):
        MLFEM(
            loaded.model,
            layers=["features.stage1.relu", "features.stage2.relu"],
            fusion=f"net:{path}",
        )


def test_leakage_guard_on_real_checkpoints(trained: dict) -> None:
    checkpoints = [trained["clf"].checkpoint, trained["net"].checkpoint]
    loaded = load_classifier(trained["clf"].checkpoint)
    test_ids = DatasetSpec.from_dict(loaded.metadata["dataset"]).open("test").image_ids
    report = check_leakage("synthetic", test_ids, checkpoints)
    assert not report.leaked and report.n_images == 40 and not report.unknown
    train_ids = loaded.metadata["train_ids"][:5]
    with pytest.raises(LeakageError, match="5 of the 45"):
        check_leakage("synthetic", list(test_ids) + train_ids, checkpoints)
    with pytest.warns(LeakageWarning):
        flagged = check_leakage("synthetic", list(test_ids) + train_ids, checkpoints, mode="flag")
    assert flagged.leaked_ids == sorted(train_ids)
    # The NET records its classifier's training images too.
    net_roles = flagged.overlaps[str(trained["net"].checkpoint)]
    assert net_roles["train"] == sorted(train_ids) and net_roles["classifier-train"] == sorted(
        train_ids
    )
