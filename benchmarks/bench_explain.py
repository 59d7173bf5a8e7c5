"""MLFEM's cost against a bare forward pass, and against Grad-CAM implementations.

Times, in one run, on ResNet-50 (random weights; cost does not depend on them):
  forward       one forward pass under inference mode (the baseline)
  mlfem         MLFEM over the 16 bottleneck blocks, add fusion (fused at each layer's
                resolution, one resize per resolution)
  mlfem-max     the same with max fusion (every map resized to the input first)
  mlfem-top     the same with top fusion (every map resized to the input first)
  fem           FEM on the last block
  naive-mlfem   a straightforward MLFEM: hooks keep every activation, var_mean, masks
  gradcam-pgc   pytorch-grad-cam GradCAM on layer4 (if installed: benchmark extra)
  gradcam-captum captum LayerGradCam on layer4 (if installed)

Prints each time as a ratio to the forward pass, and each method's peak memory rise as
a ratio to the forward pass's, measured in a fresh process per method.

    uv run python benchmarks/bench_explain.py                # CPU, 2 threads, batch 8, 224x224
    uv run python benchmarks/bench_explain.py --device cuda --batch 32
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    add_run_arguments,
    forward_pass,
    interleaved_rounds,
    load_text,
    machine_description,
    measure_in_subprocess,
    peak_memory_bytes,
    ratio_text,
    seconds_text,
    setup_resnet50,
)

METHODS = ("forward", "mlfem", "mlfem-max", "mlfem-top", "fem", "naive-mlfem", "gradcam-pgc", "gradcam-captum")


def build(method: str, model: torch.nn.Module, images: torch.Tensor) -> Callable[[], object] | None:
    """A zero-argument callable running ``method`` once, or None when its library is missing."""
    from mlfem import FEM, MLFEM

    if method == "forward":
        return forward_pass(model, images)
    if method == "mlfem" or method.startswith("mlfem-"):
        fusion = "add" if method == "mlfem" else method.removeprefix("mlfem-")
        explainer = MLFEM(model, fusion=fusion)
        return lambda: explainer(images)
    if method == "fem":
        fem = FEM(model)
        return lambda: fem(images)
    if method == "naive-mlfem":
        return lambda: naive_mlfem(model, images)
    if method == "gradcam-pgc":
        try:
            from pytorch_grad_cam import GradCAM
        except ImportError:
            return None
        cam = GradCAM(model=model, target_layers=[model.layer4[-1]])
        return lambda: cam(input_tensor=images, targets=None)
    if method == "gradcam-captum":
        try:
            from captum.attr import LayerAttribution, LayerGradCam
        except ImportError:
            return None
        gradcam = LayerGradCam(model, model.layer4)

        def captum_gradcam() -> object:
            with torch.no_grad():
                targets = model(images).argmax(1)
            attribution = gradcam.attribute(images, target=targets, relu_attributions=True)
            return LayerAttribution.interpolate(attribution, images.shape[-2:], "bilinear")

        return captum_gradcam
    raise ValueError(method)


def naive_mlfem(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The straightforward version: hooks keep every activation, then FEM on each."""
    from mlfem import find_layers

    captured: list[torch.Tensor] = []
    handles = [
        model.get_submodule(spec.name).register_forward_hook(lambda m, i, o: captured.append(o))
        for spec in find_layers(model)
    ]
    try:
        with torch.inference_mode():
            model(images)
            maps = []
            for activation in captured:
                var, mean = torch.var_mean(activation, dim=(2, 3), keepdim=True, correction=0)
                mask = (activation >= mean + 2 * var.sqrt()).float()
                saliency = (mask * mean).sum(1, keepdim=True)
                saliency = F.interpolate(saliency, images.shape[-2:], mode="bilinear", align_corners=False)
                low = saliency.amin((2, 3), keepdim=True)
                high = saliency.amax((2, 3), keepdim=True)
                maps.append((saliency - low) / (high - low).clamp_min(1e-12))
            fused = maps[0]
            for layer_map in maps[1:]:
                fused = 0.5 * fused + 0.5 * layer_map
            return fused
    finally:
        for handle in handles:
            handle.remove()


def setup(args: argparse.Namespace) -> tuple[torch.nn.Module, torch.Tensor, torch.device]:
    return setup_resnet50(args.device, args.batch, args.size, args.threads)


def child(args: argparse.Namespace) -> None:
    model, images, device = setup(args)
    function = build(args.method, model, images)
    peak = peak_memory_bytes(function, device) if function is not None else None
    print(json.dumps({"peak": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, METHODS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    model, images, device = setup(args)
    methods = [m for m in args.methods.split(",") if m]
    print(f"ResNet-50, batch {args.batch}, {args.size}x{args.size}, {machine_description(device)}")
    functions = {}
    for method in ["forward", *[m for m in methods if m != "forward"]]:
        function = build(method, model, images)
        if function is not None:
            functions[method] = function
    print(f"{args.repeats} interleaved rounds; {load_text()} at the start")
    times, ratios = interleaved_rounds(functions, "forward", args.repeats, device)
    peaks: dict[str, float] = {}
    common = ["--device", args.device, "--batch", str(args.batch), "--size", str(args.size),
              "--threads", str(args.threads)]
    for method in times:
        result = measure_in_subprocess(Path(__file__), [*common, "--method", method])
        peaks[method] = result["peak"]

    base_peak = peaks["forward"]
    print(f"forward pass: {seconds_text(times['forward'])}; {load_text()} at the end")
    print()
    print("| method | time / forward, median (range) of the rounds | peak memory rise (MiB) | peak / forward |")
    print("|---|---:|---:|---:|")
    for method in times:
        print(
            f"| {method} | {ratio_text(ratios[method])} | "
            f"{peaks[method] / 2**20:.1f} | {peaks[method] / base_peak:.2f} |"
        )
    missing = [m for m in methods if m not in times]
    if missing:
        print(f"\nnot run (library not installed): {', '.join(missing)}")


if __name__ == "__main__":
    main()
