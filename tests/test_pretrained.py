"""The pretrained EfficientNet-Lite0 installed with mlfem, on the OSIE sample shipped with it:
the key mapping, the preprocessing, the class names, its predictions and its explanations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlfem.datasets import open_dataset
from mlfem.models import load_model
from mlfem.models.pretrained import (
    imagenet_class_names,
    lite0_key_mapping,
    lite0_weights_file,
    load_efficientnet_lite0,
)

# Top-1 classes of unambiguous photos of the sample (checked by eye: two boys on a beach in
# swimming trunks, a removal van, a basketball game, five Saint Bernard puppies, a barrel).
EXPECTED_TOP1 = {
    "1004": "swimming trunks",
    "1013": "moving van",
    "1028": "basketball",
    "1031": "Saint Bernard",
    "1034": "barrel",
}


@pytest.fixture(scope="module")
def lite0():
    return load_model("efficientnet_lite0", "imagenet")


@pytest.fixture(scope="module")
def sample():
    return open_dataset("osie-sample")


@pytest.fixture(scope="module")
def inputs(lite0, sample):
    from mlfem.evaluation.model import TensorPreprocessing

    preprocess = TensorPreprocessing(lite0.preprocessing)
    return torch.stack([preprocess(sample[i].image)[0] for i in range(len(sample))])


@pytest.fixture(scope="module")
def logits(lite0, inputs):
    with torch.inference_mode():
        return lite0.model(inputs)


def test_the_key_mapping_is_one_to_one_and_follows_the_file_order() -> None:
    import timm

    source = torch.load(lite0_weights_file(), map_location="cpu", weights_only=True)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    target = model.state_dict()
    mapping = lite0_key_mapping(list(source), model)
    assert len(source) == len(target) == len(mapping) == 296
    # The name rules agree with the only other reading of the file: tensor by tensor, in order.
    assert list(mapping.values()) == list(target)
    assert all(source[key].shape == target[name].shape for key, name in mapping.items())
    assert mapping["_blocks.0._depthwise_conv.weight"] == "blocks.0.0.conv_dw.weight"
    assert mapping["_blocks.1._expand_conv.weight"] == "blocks.1.0.conv_pw.weight"
    assert mapping["_blocks.15._project_conv.weight"] == "blocks.6.0.conv_pwl.weight"
    assert mapping["_fc.bias"] == "classifier.bias"


def test_every_tensor_is_loaded(lite0) -> None:
    source = torch.load(lite0_weights_file(), map_location="cpu", weights_only=True)
    loaded = lite0.model.state_dict()
    mapping = lite0_key_mapping(list(source), lite0.model)
    assert all(torch.equal(source[key], loaded[name]) for key, name in mapping.items())


def test_the_model_spec_and_its_preprocessing(lite0) -> None:
    assert lite0.trained and "tf_efficientnet_lite0" in lite0.description
    assert not lite0.model.training
    p = lite0.preprocessing
    # TF-Lite convention of the EfficientNet-Lite weights: pixels scaled to [-1, 1].
    assert (p.crop_size, p.mean, p.std, p.interpolation) == (224, (0.5,) * 3, (0.5,) * 3, "bicubic")
    # timm's own name resolves to the same installed weights, with no download.
    same = load_model("timm:tf_efficientnet_lite0", "imagenet")
    assert same.preprocessing == p
    first = next(iter(lite0.model.state_dict().values()))
    assert torch.equal(next(iter(same.model.state_dict().values())), first)


def test_imagenet_class_names(lite0) -> None:
    names = imagenet_class_names()
    assert len(names) == 1000 and lite0.class_names == names
    assert names[0] == "tench" and names[673] == "mouse" and names[999] == "toilet tissue"


def test_predictions_on_the_bundled_sample(sample, logits) -> None:
    names = imagenet_class_names()
    probabilities = logits.softmax(dim=1)
    top1 = {sample[i].image_id: names[int(probabilities[i].argmax())] for i in range(len(sample))}
    assert {key: top1[key] for key in EXPECTED_TOP1} == EXPECTED_TOP1
    # Far from the 0.001 of a uniform guess on every photo.
    assert float(probabilities.max(dim=1).values.min()) > 0.05


def test_load_efficientnet_lite0_is_deterministic() -> None:
    a, b = load_efficientnet_lite0(), load_efficientnet_lite0()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(a(x), b(x))


def test_mlfem_agrees_with_human_gaze_better_than_random_maps(lite0, sample, inputs) -> None:
    """An honest check of the explanations: MLFEM's map, placed back on the photo, correlates
    with the 15 observers' GFDM better than a smooth random map does, on most images."""
    from scipy.ndimage import gaussian_filter

    from mlfem import MLFEM
    from mlfem.evaluation.model import TensorPreprocessing
    from mlfem.metrics import pcc

    preprocess = TensorPreprocessing(lite0.preprocessing)
    with MLFEM(lite0.model, fusion="add") as explainer:
        maps = explainer(inputs)
    rng = np.random.default_rng(0)
    wins, scores = 0, []
    for i in range(len(sample)):
        item = sample[i]
        placement = preprocess(item.image)[1]
        saliency = placement.to_original(maps[i : i + 1])[0]
        gfdm = torch.as_tensor(item.gfdm, dtype=torch.float32)
        random_map = torch.from_numpy(gaussian_filter(rng.random(gfdm.shape), sigma=24)).float()
        ours = float(pcc(saliency[None], gfdm[None])[0])
        chance = float(pcc(random_map[None], gfdm[None])[0])
        scores.append(ours)
        wins += ours > chance
    assert wins >= 10, (wins, scores)
    assert np.mean(scores) > 0.15


def test_explain_without_a_model_explains_the_pretrained_network(tmp_path, capsys) -> None:
    import csv

    from mlfem.cli import main
    from mlfem.datasets import bundled_osie_root

    image = bundled_osie_root() / "stimuli" / "1028.jpg"
    assert main(["explain", str(image), "--out", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "efficientnet_lite0" in captured.err and "random weights" not in captured.err
    assert captured.out.strip().startswith("1028: basketball")
    rows = list(csv.DictReader(open(tmp_path / "predictions.csv", encoding="utf-8")))
    assert [row["rank"] for row in rows] == ["1", "2", "3", "4", "5"]
    assert rows[0]["class_name"] == "basketball" and rows[0]["class_index"] == "430"
    saliency = np.load(tmp_path / "1028.npy")
    assert saliency.shape == (600, 800) and saliency.min() >= 0 and saliency.max() > 0.99
    assert (tmp_path / "1028_layers.png").is_file()


def test_explain_with_the_bundled_net(tmp_path, capsys) -> None:
    from mlfem.cli import main
    from mlfem.datasets import bundled_osie_root

    image = bundled_osie_root() / "stimuli" / "1004.jpg"
    assert main(["explain", str(image), "--fusion", "net:bundled", "--out", str(tmp_path)]) == 0
    saliency = np.load(tmp_path / "1004.npy")
    assert saliency.shape == (600, 800) and saliency.max() > 0.99
    # The bundled NET refuses another network (here the same architecture, random weights).
    code = main(["explain", str(image), "--model", "efficientnet_lite0", "--fusion", "net:bundled",
                 "--out", str(tmp_path / "other")])
    assert code == 2 and "efficientnet_lite0" in capsys.readouterr().err
