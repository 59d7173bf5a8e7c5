"""Cross-check of the network metrics and sAUC against independent implementations, on a few
bundled OSIE images with the ImageNet-pretrained EfficientNet-Lite0 (docs/faithfulness.md).

* deletion curve  vs Quantus 0.6 ``PixelFlipping`` (zeros baseline, the same pixels per step);
* stability       vs Quantus 0.6 ``LocalLipschitzEstimate`` fed the same noisy copies;
* Spearman / SSIM of trained vs randomised maps vs scipy ``spearmanr`` and scikit-image
  ``structural_similarity`` (Gaussian window, sigma 1.5);
* sAUC (pool of the other images' fixations, exact rank form) vs scikit-learn ``roc_auc_score``
  with the fixation counts as sample weights, and the sampled sAUC of ``mlfem evaluate`` beside it.

Quantus is in the development group only (``uv sync`` installs it). Prints one line per check
with the largest absolute difference. Usage::

    uv run python benchmarks/crosscheck_faithfulness.py [--images 3] [--steps 56] [--copies 5]
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np
import torch


def _maps(model, methods, inputs):
    from mlfem.evaluation.methods import MethodRunner

    runner = MethodRunner(model, methods)
    try:
        result = runner.run(inputs)
        targets = result.logits.argmax(1)
        return {m: result.maps[m].float() for m in methods}, targets, runner
    except Exception:
        runner.close()
        raise


def _distinct(maps: torch.Tensor) -> torch.Tensor:
    """Ties broken by pixel index (as the stable sort of mlfem does), so that an unstable
    argsort ranks the pixels the same way."""
    n = maps[0].numel()
    jitter = (n - torch.arange(n, dtype=torch.float64)) / n * 1e-9
    return maps.double() + jitter.view(maps.shape[1:])


def check_deletion(model, inputs, maps, targets, steps: int) -> float:
    import quantus

    from mlfem.metrics.perturbation import deletion_curve

    height, width = inputs.shape[-2:]
    per_step = -(-height * width // steps)
    wrapped = quantus.PyTorchModel(model, softmax=True, channel_first=True, device="cpu")
    worst = 0.0
    for name, m in maps.items():
        ranked = _distinct(m)
        ours = deletion_curve(model, inputs, ranked.float(), targets, steps=steps, baseline="zeros")
        metric = quantus.PixelFlipping(
            features_in_step=3 * per_step, perturb_baseline=0.0, normalise=False, abs=False,
            disable_warnings=True, display_progressbar=False, return_auc_per_sample=False,
        )
        theirs = metric.evaluate_batch(
            model=wrapped, x_batch=inputs.numpy(), y_batch=targets.numpy(),
            a_batch=ranked.numpy()[:, None],
        )
        difference = float(np.abs(ours[:, 1:].numpy() - np.asarray(theirs)).max())
        print(f"deletion curve  {name:10s} max |mlfem - quantus PixelFlipping| = {difference:.2e} "
              f"({ours.shape[1]} points x {ours.shape[0]} images)")
        worst = max(worst, difference)
    return worst


def check_stability(model, runner, inputs, maps, targets, copies: int) -> float:
    import quantus

    from mlfem.metrics.stability import lipschitz_estimate, noisy_copies

    seeds = list(range(inputs.shape[0]))
    noisy = noisy_copies(inputs, seeds, noise=0.1, copies=copies)
    worst = 0.0
    for name, m in maps.items():
        redone = torch.stack([runner.run(noisy[b], [name], targets=targets[b].expand(copies)).maps[name]
                              for b in range(inputs.shape[0])])
        ours = lipschitz_estimate(m, redone.float(), inputs, noisy)
        draws = itertools.count()

        def perturb(arr, indices, **_):
            k = next(draws)
            return noisy[:, k].reshape(arr.shape).numpy()

        def explain(model, inputs, targets, **_):
            x = torch.as_tensor(inputs)
            t = torch.as_tensor(targets)
            return runner.run(x, [name], targets=t).maps[name].float().numpy()[:, None]

        metric = quantus.LocalLipschitzEstimate(
            nr_samples=copies, perturb_func=perturb, normalise=False, abs=False,
            disable_warnings=True, display_progressbar=False,
        )
        wrapped = quantus.PyTorchModel(model, softmax=False, channel_first=True, device="cpu")
        metric.explain_func, metric.explain_func_kwargs = explain, {}
        theirs = metric.evaluate_batch(
            model=wrapped, x_batch=inputs.numpy(), y_batch=targets.numpy(), a_batch=m.numpy()[:, None],
        )
        difference = float(np.abs(ours.numpy() - np.asarray(theirs)).max())
        print(f"stability       {name:10s} max |mlfem - quantus LocalLipschitzEstimate| = {difference:.2e} "
              f"(values {', '.join(f'{v:.4f}' for v in ours.tolist())})")
        worst = max(worst, difference)
    return worst


def check_similarities(model, inputs, maps, targets, methods) -> float:
    from scipy.stats import spearmanr
    from skimage.metrics import structural_similarity

    from mlfem.evaluation.methods import MethodRunner
    from mlfem.metrics.randomisation import Cascade, spearman, ssim

    cascade = Cascade(model, seed=0)
    runner = MethodRunner(cascade.model, methods)
    worst = 0.0
    try:
        cascade.restore()
        for stage in range(len(cascade.stages)):
            cascade.randomise(stage)
            if stage not in (0, len(cascade.stages) // 2, len(cascade.stages) - 1):
                continue
            randomised = runner.run(inputs, methods, targets=targets).maps
            for name in methods:
                a, b = maps[name], randomised[name].float()
                rho, s = spearman(a, b), ssim(a, b)
                for i in range(a.shape[0]):
                    x, y = a[i].double().numpy(), b[i].double().numpy()
                    ref_rho = spearmanr(x.ravel(), y.ravel()).statistic
                    ref_s = structural_similarity(x, y, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                                  use_sample_covariance=False)
                    for ours, theirs in ((float(rho[i]), ref_rho), (float(s[i]), ref_s)):
                        if not (np.isnan(ours) and np.isnan(theirs)):
                            worst = max(worst, abs(ours - theirs))
        print(f"randomisation   Spearman, SSIM vs scipy / scikit-image at 3 stages x {len(methods)} methods: "
              f"max difference {worst:.2e}")
    finally:
        runner.close()
    return worst


def check_sauc(images: int) -> float:
    from sklearn.metrics import roc_auc_score

    from mlfem.datasets import open_dataset
    from mlfem.evaluation.pool import FixationPool
    from mlfem.gaze import fixation_counts
    from mlfem.metrics import sauc
    from mlfem.metrics.centre import centre_bias

    dataset = open_dataset("osie-sample", split=None)
    pool = FixationPool.from_dataset(dataset)
    worst = 0.0
    for index in range(images):
        sample = dataset[index]
        height, width = sample.image.shape[1:]
        xs = torch.cat([f[:, 0] for f in sample.fixations if len(f)])
        ys = torch.cat([f[:, 1] for f in sample.fixations if len(f)])
        own = fixation_counts([xs], [ys], height, width, dtype=torch.float32).counts[0]
        # The negatives rescaled here by a loop of their own, for sklearn.
        neg_x, neg_y = [], []
        for other in range(len(dataset)):
            if other == index:
                continue
            o = dataset[other]
            oh, ow = o.image.shape[1:]
            for f in o.fixations:
                for x, y in f.tolist():
                    neg_x.append(min(width - 1, int((np.floor(x + 0.5) + 0.5) / ow * width)))
                    neg_y.append(min(height - 1, int((np.floor(y + 0.5) + 0.5) / oh * height)))
        pred = centre_bias(height, width).double() + 1e-3 * torch.rand(height, width, generator=torch.Generator().manual_seed(index)).double()
        positives = pred[own > 0].numpy()
        weights = own[own > 0].numpy()
        negatives = pred[torch.tensor(neg_y), torch.tensor(neg_x)].numpy()
        labels = np.r_[np.ones(positives.size), np.zeros(negatives.size)]
        reference = roc_auc_score(labels, np.r_[positives, negatives], sample_weight=np.r_[weights, np.ones(negatives.size)])
        others = pool.others(sample.image_id, height, width)
        exact = float(sauc(pred, own, others, exact=True))
        sampled = float(sauc(pred, own, others, seed=0))
        print(f"sauc            image {sample.image_id}: exact {exact:.6f}, sklearn {reference:.6f}, "
              f"sampled (100 splits, as evaluate) {sampled:.4f}")
        worst = max(worst, abs(exact - reference))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--steps", type=int, default=56)
    parser.add_argument("--copies", type=int, default=5)
    parser.add_argument("--methods", default="fem,mlfem,gradcam")
    parser.add_argument("--checks", default="deletion,stability,similarities,sauc", help="which checks to run")
    args = parser.parse_args()
    torch.manual_seed(0)

    from mlfem.datasets import open_dataset
    from mlfem.models import load_model

    from mlfem.evaluation.model import TensorPreprocessing

    loaded = load_model("efficientnet_lite0", "imagenet")
    model = loaded.model.eval()
    preprocess = TensorPreprocessing(loaded.preprocessing)
    dataset = open_dataset("osie-sample", split=None)
    inputs = torch.stack([preprocess(dataset[i].image)[0] for i in range(args.images)])
    methods = args.methods.split(",")
    checks = args.checks.split(",")
    maps, targets, runner = _maps(model, methods, inputs)
    results = {}
    try:
        if "deletion" in checks:
            results["deletion"] = check_deletion(model, inputs, maps, targets, args.steps)
        if "stability" in checks:
            results["stability"] = check_stability(model, runner, inputs, maps, targets, args.copies)
        if "similarities" in checks:
            results["similarities"] = check_similarities(model, inputs, maps, targets, methods)
    finally:
        runner.close()
    if "sauc" in checks:
        results["sauc"] = check_sauc(args.images)
    print("largest differences: " + ", ".join(f"{k} {v:.2e}" for k, v in results.items()))


if __name__ == "__main__":
    main()
