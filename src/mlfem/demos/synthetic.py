"""The paper's whole protocol on the synthetic gaze benchmark (``mlfem demo --synthetic``).

1. generate the synthetic gaze benchmark (multi-label, so that correct/wrong and clutter
   analyses have something to show) and split it into train/val/test;
2. train the classifier (``mlfem train-classifier``'s API) on train, selected on val;
3. train the NET fusion (``mlfem train-fusion``'s API) on the GFDMs of the same splits;
4. evaluate MLFEM (NET, ADD, TOP, MAX), FEM, Grad-CAM, LayerCAM and two pixel attribution
   methods (Integrated Gradients, Guided Backprop) on the test split, which neither learned
   component saw (the leakage guard checks it);
5. write the HTML report and return the headline table and the report's path.

Every step resumes: rerunning the same command after an interruption continues where it
stopped, and a finished step is not redone.

``model="vit"`` (``mlfem demo --synthetic --vit``) trains a small timm ViT (:data:`VIT`: patch 8,
4 blocks) instead of the small CNN, from scratch, and adds attention rollout to the methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlfem.demos._steps import DemoResult, start_demo, timed_step, write_report_and_table

__all__ = ["PLANS", "VIT", "SyntheticDemoPlan", "run_synthetic_demo"]

#: The demo's ViT: timm's VisionTransformer with these options (image size added), patch 8 so
#: that a 48x48 or 64x64 image makes a 6x6 or 8x8 grid.
VIT = {"patch_size": 8, "depth": 4, "embed_dim": 64, "num_heads": 4}
VIT_LR = 1e-3  # the CNN's rates (3e-3, 5e-3) are too high for a transformer trained with Adam


@dataclass(frozen=True)
class SyntheticDemoPlan:
    """Sizes of the synthetic demo: ``default`` and ``quick`` (for CI, well under a minute of
    compute)."""

    name: str
    n: int  # generated images (80 % train, 10 % val, 10 % test)
    size: int  # image side in pixels, also the classifier's input size
    epochs: int  # classifier epochs
    net_epochs: int
    net_patience: int
    net_resolution: int  # side of the maps the NET fuses (a multiple of 4)
    ig_steps: int
    gallery: int
    batch_size: int = 32
    lr: float = 3e-3
    methods: tuple[str, ...] = (
        "mlfem-net", "mlfem-add", "mlfem-top", "mlfem-max", "fem",
        "gradcam", "layercam", "ig", "guided-backprop",
    )
    metrics: tuple[str, ...] = ("pcc", "sim")
    extra: dict[str, Any] = field(default_factory=dict)


PLANS = {
    "default": SyntheticDemoPlan("default", n=1500, size=64, epochs=6, net_epochs=20, net_patience=4,
                                 net_resolution=32, ig_steps=16, gallery=12),
    # Small batches: enough optimiser steps on 192 training images for a usable classifier.
    "quick": SyntheticDemoPlan("quick", n=240, size=48, epochs=8, net_epochs=6, net_patience=3,
                               net_resolution=24, ig_steps=4, gallery=4, batch_size=16, lr=5e-3),
}


def run_synthetic_demo(out: str | Path, *, quick: bool = False, seed: int = 0, workers: int = 0,
                       device: str | None = None, progress: bool = True,
                       model: str = "small-cnn") -> DemoResult:
    """Run the synthetic demo into ``out`` (see the module docstring) and return what it wrote.

    ``model``: ``"small-cnn"`` (the default) or ``"vit"`` (:data:`VIT`)."""
    from mlfem.evaluation.runner import EvaluationConfig, run_evaluation
    from mlfem.training import ClassifierConfig, train_classifier

    plan = PLANS["quick" if quick else "default"]
    if model not in ("small-cnn", "vit"):
        raise ValueError(f"model must be 'small-cnn' or 'vit', got {model!r}")
    architecture = (
        {"model": "small-cnn"} if model == "small-cnn"
        else {"model": "timm:vit_tiny_patch16_224", "model_options": {"img_size": plan.size, **VIT}}
    )
    out, timings, started = start_demo(out)
    data = {"n": plan.n, "seed": seed, "mode": "multi"}

    with timed_step("train the classifier", timings, progress):
        classifier = train_classifier(
            ClassifierConfig(
                dataset="synthetic", out=out / "classifier", dataset_options=data,
                **architecture, epochs=plan.epochs, batch_size=plan.batch_size,
                lr=plan.lr if model == "small-cnn" else VIT_LR,
                image_size=plan.size, augment="none", seed=seed, splits=out / "splits.json",
                num_workers=workers, device=device, resume=True,
            ),
            progress=progress,
        ).checkpoint

    with timed_step("train the NET fusion", timings, progress):
        net = _train_net(classifier, out / "net", plan, seed, workers, device, progress)

    methods = [m for m in plan.methods if m != "mlfem-net" or net is not None]
    if model == "vit":
        methods.append("rollout")
    with timed_step("evaluate", timings, progress):
        run_evaluation(EvaluationConfig(
            dataset=None, out=out / "evaluation", split="test", classifier=str(classifier),
            net=None if net is None else str(net), methods=methods, metrics=list(plan.metrics),
            # All of a batch's IG steps in one pass (captum's default chunking is smaller).
            method_options={"ig": {"steps": plan.ig_steps, "internal_batch_size": plan.batch_size * plan.ig_steps}},
            batch_size=plan.batch_size,
            workers=workers, device=device, seed=seed, gallery=plan.gallery, progress=progress,
        ))

    report, table = write_report_and_table(out, plan, timings, started, seed, progress)
    return DemoResult(out, classifier, net, out / "evaluation", report, timings, table)


def _train_net(classifier: Path, out: Path, plan: SyntheticDemoPlan, seed: int, workers: int,
               device: str | None, progress: bool) -> Path | None:
    """Train the NET fusion on the classifier's train/val splits (their GFDMs only)."""
    from mlfem.training import FusionConfig, train_fusion

    run = train_fusion(
        FusionConfig(
            classifier=classifier, out=out, resolution=plan.net_resolution, epochs=plan.net_epochs,
            patience=plan.net_patience, batch_size=plan.batch_size, lr=plan.lr, seed=seed,
            map_batch_size=64, num_workers=workers, device=device, resume=True,
        ),
        progress=progress,
    )
    return run.checkpoint
