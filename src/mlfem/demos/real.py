"""The paper's protocol on real gaze, offline (``mlfem demo``, the default).

1. open the OSIE sample shipped with mlfem (12 photos, 15 observers each, MIT licence);
2. load the ImageNet-pretrained EfficientNet-Lite0 installed with mlfem;
3. evaluate MLFEM (NET, ADD, TOP, MAX), FEM, Grad-CAM, LayerCAM and Guided Backprop against
   the real GFDMs, with the human ceiling and the centre bias as references. The NET is the
   one trained by the project for this network on other OSIE images (1041-1600, see
   ``src/mlfem/resources/nets/``); the leakage guard checks that it never saw a demo image;
4. write the HTML report and return the headline table and the report's path.

Rerunning the same command resumes the evaluation and redoes nothing that is finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlfem.demos._steps import DemoResult, start_demo, timed_step, write_report_and_table

__all__ = ["PLANS", "RealDemoPlan", "run_real_demo"]

#: The network the real demo explains (``mlfem.models.load_model`` spec and weights).
MODEL = ("efficientnet_lite0", "imagenet")


@dataclass(frozen=True)
class RealDemoPlan:
    """What the real demo evaluates: ``default`` (every sample image, eight methods, four
    metrics) and ``quick`` (for CI: four images, four methods, two metrics)."""

    name: str
    limit: int | None  # first N images of the sample (None: all 12)
    methods: tuple[str, ...]
    metrics: tuple[str, ...]
    gallery: int
    batch_size: int = 4


PLANS = {
    "default": RealDemoPlan(
        "default", limit=None,
        methods=("mlfem-net", "mlfem-add", "mlfem-top", "mlfem-max", "fem", "gradcam", "layercam",
                 "guided-backprop"),
        metrics=("pcc", "sim", "nss", "auc_judd"), gallery=12,
    ),
    "quick": RealDemoPlan(
        "quick", limit=4, methods=("mlfem-net", "mlfem-add", "fem", "gradcam"),
        metrics=("pcc", "sim"), gallery=2,
    ),
}


def run_real_demo(out: str | Path, *, quick: bool = False, seed: int = 0, workers: int = 0,
                  device: str | None = None, progress: bool = True) -> DemoResult:
    """Run the real-data demo into ``out`` (see the module docstring) and return what it wrote."""
    from mlfem.evaluation.runner import EvaluationConfig, run_evaluation
    from mlfem.training import bundled_net_path

    plan = PLANS["quick" if quick else "default"]
    out, timings, started = start_demo(out)
    net = bundled_net_path()
    model, weights = MODEL

    with timed_step("evaluate", timings, progress):
        run_evaluation(EvaluationConfig(
            dataset="osie-sample", out=out / "evaluation", split=None, model=model, weights=weights,
            net=str(net), methods=list(plan.methods), metrics=list(plan.metrics),
            batch_size=plan.batch_size, workers=workers, device=device, seed=seed,
            gallery=plan.gallery, limit=plan.limit, progress=progress,
        ))

    report, table = write_report_and_table(out, plan, timings, started, seed, progress)
    return DemoResult(out, f"{model} --weights {weights}", net, out / "evaluation", report, timings, table)
