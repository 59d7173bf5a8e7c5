"""MLFEM's cost on vision transformers against a bare forward pass (issue 13 item 5).

Times, in one run, on ViT-S/16 (timm ``vit_small_patch16_224``, 12 blocks) or Swin-T (timm
``swin_tiny_patch4_window7_224``, 12 blocks), random weights (cost does not depend on them):
  forward      one forward pass under inference mode (the baseline)
  mlfem        MLFEM over every block (block outputs through the token adapter), add fusion
  mlfem-mlp    MLFEM over every block's MLP activation (layers="auto-mlp"), add fusion
  gradcam      mlfem's Grad-CAM (last block's input on ViT, the last block on Swin)
  rollout      attention rollout (ViT only: fused attention off for the call)
  gradcam-pgc  pytorch-grad-cam's GradCAM with its ViT/Swin reshape transform, on the same
               layer as mlfem's Grad-CAM (if installed: benchmark extra)

Prints each time as the median over interleaved rounds of its ratio to the forward pass, and
each method's peak memory rise as a ratio to the forward pass's, measured in a fresh process
per method. Figures taken on a busy machine are noisy: compare ratios from one quiet run.

    uv run python benchmarks/bench_vit.py --model vit   # CPU, 2 threads, batch 8, 224x224
    uv run python benchmarks/bench_vit.py --model swin
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    add_run_arguments,
    forward_pass,
    interleaved_ratios,
    machine_description,
    measure_in_subprocess,
    print_child_peak,
)

MODELS = {"vit": "vit_small_patch16_224", "swin": "swin_tiny_patch4_window7_224"}
METHODS = ("forward", "mlfem", "mlfem-mlp", "gradcam", "rollout", "gradcam-pgc")


def setup(args: argparse.Namespace) -> tuple[torch.nn.Module, torch.Tensor, torch.device]:
    from mlfem.models.architectures import create_timm_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    where = torch.device(args.device)
    model = create_timm_model(MODELS[args.model]).eval().to(where)
    images = torch.randn(args.batch, 3, args.size, args.size, device=where)
    return model, images, where


def build(method: str, model: torch.nn.Module, images: torch.Tensor) -> Callable[[], object] | None:
    """A zero-argument callable running ``method`` once, or None when it does not apply."""
    from mlfem import MLFEM
    from mlfem.explainers.registry import create_explainer
    from mlfem.transformers import gradient_layer, token_layout

    if method == "forward":
        return forward_pass(model, images)
    if method in ("mlfem", "mlfem-mlp"):
        explainer = MLFEM(model, layers="auto" if method == "mlfem" else "auto-mlp", fusion="add")
        return lambda: explainer(images)
    if method == "gradcam":
        gradcam = create_explainer("gradcam", model)
        return lambda: gradcam(images)
    if method == "rollout":
        if token_layout(model).channels_last:
            return None  # not defined for windowed attention
        rollout = create_explainer("rollout", model)
        return lambda: rollout(images)
    if method == "gradcam-pgc":
        try:
            from pytorch_grad_cam import GradCAM
        except ImportError:
            return None
        layout = token_layout(model)
        prefix = layout.prefix_tokens or 0
        height, width = layout.grid(tuple(images.shape[-2:]))

        def reshape(tensor: torch.Tensor) -> torch.Tensor:
            if tensor.ndim == 4:  # Swin: (B, H, W, C)
                return tensor.permute(0, 3, 1, 2)
            return tensor[:, prefix:].reshape(tensor.shape[0], height, width, -1).permute(0, 3, 1, 2)

        layer = model.get_submodule(gradient_layer(model))
        cam = GradCAM(model=model, target_layers=[layer], reshape_transform=reshape)
        return lambda: cam(input_tensor=images, targets=None)
    raise ValueError(method)


def child(args: argparse.Namespace) -> None:
    model, images, device = setup(args)
    print_child_peak(build(args.method, model, images), device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=tuple(MODELS), default="vit")
    add_run_arguments(parser, METHODS)
    parser.add_argument("--no-memory", action="store_true", help="time only (no fresh process per method)")
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    model, images, device = setup(args)
    methods = [m for m in args.methods.split(",") if m]
    print(f"timm {MODELS[args.model]} (random weights), batch {args.batch}, {args.size}x{args.size}, "
          f"{machine_description(device)}")
    functions = {}
    for method in ["forward", *[m for m in methods if m != "forward"]]:
        function = build(method, model, images)
        if function is not None:
            functions[method] = function
    times, ratios = interleaved_ratios(functions, "forward", args.repeats, device)
    peaks: dict[str, float | None] = {method: None for method in times}
    if not args.no_memory:
        common = ["--model", args.model, "--device", args.device, "--batch", str(args.batch),
                  "--size", str(args.size), "--threads", str(args.threads)]
        for method in times:
            peaks[method] = measure_in_subprocess(Path(__file__), [*common, "--method", method])["peak"]

    base_peak = peaks["forward"]
    print()
    print("| method | time (ms) | time / forward | peak memory rise (MiB) | peak / forward |")
    print("|---|---:|---:|---:|---:|")
    for method in times:
        peak = peaks[method]
        memory = "n/a | n/a" if peak is None or not base_peak else f"{peak / 2**20:.1f} | {peak / base_peak:.3f}"
        print(f"| {method} | {times[method] * 1000:.1f} | {ratios[method]:.3f} | {memory} |")
    missing = [m for m in methods if m not in times]
    if missing:
        print(f"\nnot run (not applicable or library not installed): {', '.join(missing)}")


if __name__ == "__main__":
    main()
