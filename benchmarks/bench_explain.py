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
a ratio to the forward pass's, measured in a fresh process per method on the CPU and with
CUDA's peak-allocation counter in the same process on a GPU.

With ``--models``, the same for several families (random weights, except the pretrained
EfficientNet-Lite0 installed with mlfem; nothing is downloaded), by default the forward
pass and MLFEM (add) only, each model timed in its own interleaved rounds:
  resnet50, convnext_tiny, efficientnet_b0, mobilenet_v3_large, densenet121, vgg16
                (torchvision), efficientnet_lite0 (timm, ImageNet weights), or "all".

``--dtype bfloat16`` runs the model and the images in bfloat16 (MLFEM's maps stay
float32: FEM accumulates half precision in float32).

    uv run python benchmarks/bench_explain.py                # CPU, 2 threads, batch 8, 224x224
    uv run python benchmarks/bench_explain.py --device cuda --batch 32
    uv run python benchmarks/bench_explain.py --models all --repeats 9 [--dtype bfloat16]
    uv run python benchmarks/bench_explain.py --models all --threads 1 --clock cpu

``--clock cpu`` times the calling thread's CPU time instead of the wall clock: on a shared
machine it leaves out the time spent waiting for a core (with 2 threads, one waiting thread
stalls every parallel operation, and wall-clock ratios then say little); 1 thread only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    CLOCKS,
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
# The families of --models all (issue 17), and the methods that run on any of them.
MODELS = (
    "resnet50",
    "convnext_tiny",
    "efficientnet_b0",
    "mobilenet_v3_large",
    "densenet121",
    "vgg16",
    "efficientnet_lite0",
)
MODEL_METHODS = ("forward", "mlfem", "mlfem-max", "mlfem-top", "fem", "naive-mlfem")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


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


def load_family(name: str) -> torch.nn.Module:
    """A model of ``--models``: torchvision with random weights (cost does not depend on
    them), or the pretrained EfficientNet-Lite0 installed with mlfem. Never downloads."""
    if name == "efficientnet_lite0":
        from mlfem.models.pretrained import load_efficientnet_lite0

        return load_efficientnet_lite0()
    if name not in MODELS:
        raise SystemExit(
            f"--models: unknown model {name!r}; expected some of {', '.join(MODELS)} or 'all'"
        )
    import torchvision

    return torchvision.models.get_model(name, weights=None)


def setup(
    args: argparse.Namespace, model_name: str | None = None
) -> tuple[torch.nn.Module, torch.Tensor, torch.device]:
    """The model (ResNet-50 unless ``model_name``) and a seeded batch, in ``--dtype``."""
    dtype = DTYPES[args.dtype]
    if model_name is None:
        model, images, device = setup_resnet50(args.device, args.batch, args.size, args.threads)
        return model.to(dtype), images.to(dtype), device
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = load_family(model_name).eval().to(device=device, dtype=dtype)
    images = torch.randn(args.batch, 3, args.size, args.size, device=device).to(dtype)
    return model, images, device


def child(args: argparse.Namespace) -> None:
    model, images, device = setup(args, args.model)
    function = build(args.method, model, images)
    peak = peak_memory_bytes(function, device) if function is not None else None
    print(json.dumps({"peak": peak}))


def common_arguments(args: argparse.Namespace) -> list[str]:
    """The options a peak-memory subprocess needs to rebuild the same run."""
    return ["--device", args.device, "--batch", str(args.batch), "--size", str(args.size),
            "--threads", str(args.threads), "--dtype", args.dtype]


def peak_memory(
    args: argparse.Namespace,
    method: str,
    function: Callable[[], object],
    device: torch.device,
    extra: list[str],
) -> int:
    """``method``'s peak memory rise: on CUDA in this process (the allocator's peak counter
    is exact and resettable, and a fresh process per method would cost a lease's minutes),
    on the CPU in a fresh process (the resident-set peak is the process's whole life)."""
    if device.type == "cuda":
        return peak_memory_bytes(function, device)
    arguments = [*common_arguments(args), *extra, "--method", method]
    return measure_in_subprocess(Path(__file__), arguments)["peak"]


def run_models(args: argparse.Namespace) -> None:
    """``--models``: for each model, its methods against its forward pass, in its own
    interleaved rounds, and each method's peak memory in a fresh process."""
    names = list(MODELS) if args.models == "all" else [m for m in args.models.split(",") if m]
    requested = args.methods.split(",") if args.methods != ",".join(METHODS) else ["forward", "mlfem"]
    unknown = [m for m in requested if m not in MODEL_METHODS]
    if unknown:
        raise SystemExit(f"--methods with --models: {', '.join(unknown)} run on ResNet-50 only; "
                         f"choose among {', '.join(MODEL_METHODS)}")
    methods = ["forward", *[m for m in requested if m and m != "forward"]]
    from mlfem import find_layers

    rows = []
    for name in names:
        model, images, device = setup(args, name)
        if not rows:
            clock = "" if args.clock == "wall" else ", times are the thread's CPU time"
            print(
                f"batch {args.batch}, {args.size}x{args.size}, {args.dtype}, "
                f"{machine_description(device)}{clock}"
            )
        functions = {method: build(method, model, images) for method in methods}
        print(f"{name}: {len(find_layers(model))} layers; {args.repeats} interleaved rounds; "
              f"{load_text()} at the start", flush=True)
        times, ratios = interleaved_rounds(
            functions, "forward", args.repeats, device, CLOCKS[args.clock]
        )
        print(f"{name}: forward pass {seconds_text(times['forward'])}; {load_text()} at the end", flush=True)
        peaks = {
            method: peak_memory(args, method, functions[method], device, ["--model", name])
            for method in methods
        }
        rows.append((name, times, ratios, peaks))
        del model, images, functions

    print()
    print(
        "| model | forward (ms) | method | time / forward, median (range) of the rounds "
        "| peak memory rise (MiB) | peak / forward |"
    )
    print("|---|---:|---|---:|---:|---:|")
    for name, times, ratios, peaks in rows:
        for method in methods:
            forward_ms = f"{statistics.median(times['forward']) * 1000:.0f}" if method == "forward" else ""
            print(
                f"| {name} | {forward_ms} | {method} | {ratio_text(ratios[method])} | "
                f"{peaks[method] / 2**20:.1f} | {peaks[method] / peaks['forward']:.2f} |"
            )


def build_parser() -> argparse.ArgumentParser:
    """The command line (tests/test_gpu_checks_script.py parses the prepared GPU steps with it)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, METHODS)
    parser.add_argument("--models", help=f"comma-separated, or 'all': {', '.join(MODELS)}")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="cpu: the thread's CPU time, steadier on a shared machine; needs --threads 1",
    )
    parser.add_argument("--model", help=argparse.SUPPRESS)
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.clock == "cpu" and (args.threads != 1 or args.device != "cpu"):
        parser.error("--clock cpu counts one thread's CPU time: use it with --threads 1 on the CPU")
    if args.models:
        run_models(args)
        return

    model, images, device = setup(args)
    methods = [m for m in args.methods.split(",") if m]
    dtype = "" if args.dtype == "float32" else f", {args.dtype}"
    dtype += "" if args.clock == "wall" else ", times are the thread's CPU time"
    print(f"ResNet-50, batch {args.batch}, {args.size}x{args.size}{dtype}, {machine_description(device)}")
    functions = {}
    for method in ["forward", *[m for m in methods if m != "forward"]]:
        function = build(method, model, images)
        if function is not None:
            functions[method] = function
    print(f"{args.repeats} interleaved rounds; {load_text()} at the start")
    times, ratios = interleaved_rounds(
        functions, "forward", args.repeats, device, CLOCKS[args.clock]
    )
    peaks: dict[str, float] = {}
    for method in times:
        peaks[method] = peak_memory(args, method, functions[method], device, [])

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
