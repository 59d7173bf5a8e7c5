"""The network metrics (deletion, insertion, stability, model randomisation) on tiny cases whose
answers are computed by hand, and the sAUC pool of the evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from mlfem.evaluation.pool import FixationPool
from mlfem.metrics import compute, resolve
from mlfem.metrics.perturbation import baseline_image, deletion, deletion_curve, insertion, insertion_curve
from mlfem.metrics.randomisation import Cascade, cascade_stages, spearman, ssim
from mlfem.metrics.stability import local_lipschitz, noisy_copies
from tiny_models import TinyCNN


class SumModel(nn.Module):
    """Logits [sum(w * x), 0]: the probability of class 0 is sigmoid(sum(w * x))."""

    def __init__(self, weights: torch.Tensor) -> None:
        super().__init__()
        self.weights = weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = (x * self.weights).flatten(1).sum(1)
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def _trapezoid(ys: list[float], xs: list[float]) -> float:
    return sum((xs[i + 1] - xs[i]) * (ys[i] + ys[i + 1]) / 2 for i in range(len(xs) - 1))


WEIGHTS = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
IMAGE = torch.ones(1, 1, 2, 2)
MAP = torch.tensor([[[0.1, 0.9], [0.5, 0.3]]])  # order of deletion: 2, 3, 4, 1 (the weights)


def test_deletion_by_hand():
    model = SumModel(WEIGHTS)
    # Pixels (weight) go in the map's order: 2, 3, 4, 1; the sums left are 10, 8, 5, 1, 0.
    expected_curve = [_sigmoid(v) for v in (10, 8, 5, 1, 0)]
    curve = deletion_curve(model, IMAGE, MAP, torch.tensor([0]), steps=4, baseline="zeros")
    assert curve[0].tolist() == pytest.approx(expected_curve, abs=1e-6)
    expected = _trapezoid(expected_curve, [0, 0.25, 0.5, 0.75, 1.0])
    assert float(deletion(model, IMAGE, MAP, torch.tensor([0]), steps=4)[0]) == pytest.approx(expected, abs=1e-6)


def test_insertion_by_hand_and_uneven_steps():
    model = SumModel(WEIGHTS)
    # Revealed on zeros in the same order: sums 0, 2, 5, 9, 10.
    expected_curve = [_sigmoid(v) for v in (0, 2, 5, 9, 10)]
    curve = insertion_curve(model, IMAGE, MAP, torch.tensor([0]), steps=4, baseline="zeros")
    assert curve[0].tolist() == pytest.approx(expected_curve, abs=1e-6)
    # 3 steps over 4 pixels: 2 pixels per step, the last step changes nothing more.
    curve3 = insertion_curve(model, IMAGE, MAP, torch.tensor([0]), steps=3, baseline="zeros")
    assert curve3[0].tolist() == pytest.approx([_sigmoid(v) for v in (0, 5, 10, 10)], abs=1e-6)
    area = float(insertion(model, IMAGE, MAP, torch.tensor([0]), steps=3, baseline="zeros")[0])
    assert area == pytest.approx(_trapezoid([_sigmoid(v) for v in (0, 5, 10)], [0, 0.5, 1.0]), abs=1e-6)


def test_deletion_batches_and_chunks_do_not_change_values():
    torch.manual_seed(0)
    model = TinyCNN(4).eval()
    inputs = torch.randn(3, 3, 12, 12)
    maps = torch.rand(3, 12, 12)
    whole = deletion_curve(model, inputs, maps, steps=9, batch_size=64)
    chunked = deletion_curve(model, inputs, maps, steps=9, batch_size=4)
    alone = deletion_curve(model, inputs[1:2], maps[1:2], steps=9)
    torch.testing.assert_close(whole, chunked)
    torch.testing.assert_close(whole[1:2], alone)
    # The curve ends on the baseline and starts on the image.
    with torch.inference_mode():
        p = torch.softmax(model(inputs), 1)
    targets = p.argmax(1)
    assert whole[:, 0].tolist() == pytest.approx(p[torch.arange(3), targets].tolist(), abs=1e-6)


def test_baselines():
    x = torch.arange(2 * 3 * 16 * 16, dtype=torch.float32).reshape(2, 3, 16, 16)
    assert torch.equal(baseline_image(x, "zeros"), torch.zeros_like(x))
    assert torch.allclose(baseline_image(x, "mean")[:, :, 5, 7], x.mean(dim=(2, 3)))
    constant = torch.full((1, 3, 16, 16), 0.7)
    assert torch.allclose(baseline_image(constant, "blur"), constant)  # a blur keeps a constant
    with pytest.raises(ValueError, match="baseline must be one of"):
        baseline_image(x, "noise")


def test_stability_of_a_linear_explainer_is_its_slope():
    inputs = torch.randn(2, 1, 6, 6)
    value = local_lipschitz(lambda x: 2.0 * x[:, 0], inputs, seeds=[3, 4], noise=0.05, copies=4)
    assert value.tolist() == pytest.approx([2.0, 2.0], rel=1e-9)
    # A constant explainer never changes: 0.
    assert local_lipschitz(lambda x: torch.zeros(x.shape[0], 6, 6), inputs, copies=3).tolist() == [0.0, 0.0]


def test_noise_depends_on_the_image_seed_only():
    inputs = torch.zeros(2, 3, 4, 4)
    a = noisy_copies(inputs, [7, 8], noise=0.1, copies=2)
    b = noisy_copies(inputs[1:], [8], noise=0.1, copies=2)
    assert torch.equal(a[1], b[0])
    assert not torch.equal(a[0], a[1])


def test_spearman_and_ssim_by_hand():
    from scipy.stats import spearmanr

    a = torch.tensor([[[1.0, 2.0], [2.0, 4.0]]])
    b = torch.tensor([[[4.0, 3.0], [3.0, 1.0]]])
    assert float(spearman(a, b)[0]) == pytest.approx(-1.0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, size=(2, 9, 9)).astype(np.float32)  # many ties
    y = rng.integers(0, 5, size=(2, 9, 9)).astype(np.float32)
    ours = spearman(torch.from_numpy(x), torch.from_numpy(y))
    for i in range(2):
        assert float(ours[i]) == pytest.approx(spearmanr(x[i].ravel(), y[i].ravel()).statistic, abs=1e-9)
    assert math.isnan(float(spearman(torch.ones(1, 3, 3), torch.rand(1, 3, 3))[0]))
    maps = torch.rand(2, 20, 20)
    assert ssim(maps, maps).tolist() == pytest.approx([1.0, 1.0])


def test_ssim_matches_scikit_image():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(1)
    a = rng.random((32, 40))
    b = np.clip(a + 0.2 * rng.standard_normal(a.shape), 0, 1)
    expected = structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)
    assert float(ssim(torch.from_numpy(a)[None], torch.from_numpy(b)[None])[0]) == pytest.approx(expected, abs=1e-9)


def test_cascade_stages_and_seeded_reinitialisation():
    torch.manual_seed(0)
    model = TinyCNN(3).eval()
    assert [name for name, _ in cascade_stages(model)] == ["head", "features.3", "features.0"]
    trained = {k: v.clone() for k, v in model.state_dict().items()}
    first, second = Cascade(model, seed=5), Cascade(model, seed=5)
    for cascade in (first, second):
        cascade.restore()
        cascade.randomise(0)
    assert not torch.equal(first.model.head.weight, model.head.weight)
    assert torch.equal(first.model.head.weight, second.model.head.weight)  # seeded
    assert torch.equal(first.model.features[0].weight, model.features[0].weight)  # not yet
    with pytest.raises(ValueError, match="in order"):
        first.randomise(2)
    first.restore()
    assert all(torch.equal(first.model.state_dict()[k], v) for k, v in trained.items())
    assert all(torch.equal(model.state_dict()[k], v) for k, v in trained.items())  # original untouched


def test_network_metrics_are_registered_and_refused_by_compute():
    for name, needs in (("deletion", "model"), ("insertion", "model"), ("stability", "explainer"),
                        ("rand_spearman", "explainer"), ("rand_ssim", "explainer")):
        spec = resolve(name)
        assert spec.needs == needs and spec.uses_model and spec.cost
    assert resolve("insertion").higher_is_better and not resolve("deletion").higher_is_better
    with pytest.raises(ValueError, match="faithfulness to the network"):
        compute("deletion", torch.rand(4, 4), gt=torch.rand(4, 4))


def test_fixation_pool_rescales_other_images_fixations():
    # Image a (10 x 20): a fixation at the centre of pixel (x 19, y 0); image b (5 x 5): one at (2, 2).
    pool = FixationPool({
        "a": (np.array([19.5 / 20]), np.array([0.5 / 10])),
        "b": (np.array([2.5 / 5]), np.array([2.5 / 5])),
    })
    others_a = pool.others("a", 10, 20)
    assert others_a.sum() == 1 and others_a[5, 10] == 1  # b's centre, rescaled to a's size
    others_b = pool.others("b", 5, 5)
    assert others_b.sum() == 1 and others_b[0, 4] == 1  # a's top-right corner
    # The order of the pool does not matter.
    reversed_pool = FixationPool(dict(reversed(list(pool.fixations.items()))))
    assert torch.equal(reversed_pool.others("a", 10, 20), others_a)


def test_methods_cli_lists_the_metrics_with_their_cost(capsys):
    from mlfem.cli import main

    assert main(["methods", "--metrics"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "steps + 1" in lines["deletion"] and "copies x" in lines["stability"]
    assert " explainer " in lines["rand_ssim"] and " lower " in lines["deletion"]
