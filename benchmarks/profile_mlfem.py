"""Where MLFEM's time goes beyond the forward pass, stage by stage (a diagnostic).

Each row adds one stage inside the same forward hooks (the blocks MLFEM reads; 16 on
ResNet-50, the default ``--model``) and prints its
time as a ratio to a bare forward pass timed in the same rounds:

  hooks-only   hooks that do nothing
  stats        + per-channel mean and threshold
  fem-raw      + mask and weighted channel sum (the raw FEM map)
  extrema      + the extremes of the map once resized to the input size
               (mlfem.resized_extrema), which normalising needs
  resize-each  instead of extrema: each map resized to the input size and min-max
               normalised (what MLFEM did before fusing at the layers' resolutions,
               and still does for max/top fusions and return_layers)
  mlfem        the full explainer: add fusion at each layer's resolution, one resize
               per resolution, final min-max

    uv run python benchmarks/profile_mlfem.py [--device cuda] [--batch 8] [--model mobilenet_v3_large]
    uv run python benchmarks/profile_mlfem.py --threads 1 --clock cpu   # steadier on a shared machine
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import CLOCKS, machine_description, print_ratio_table  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    """The command line (tests/test_gpu_checks_script.py parses the prepared GPU steps with it)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall", help="cpu: the thread's CPU time (1 thread only)")
    parser.add_argument("--model", default="resnet50", help="a torchvision classifier's name (random weights)")
    return parser


def main() -> None:
    import torchvision

    from mlfem import MLFEM, fem_saliency, find_layers, minmax_normalize, resize_maps, resized_extrema
    from mlfem._fem_statistics import channel_mean_and_threshold
    from mlfem.hooks import forward_hooks

    parser = build_parser()
    args = parser.parse_args()
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu measures the calling thread only: use it with --threads 1")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = torchvision.models.get_model(args.model).eval().to(device)
    images = torch.randn(args.batch, 3, args.size, args.size, device=device)
    names = [spec.name for spec in find_layers(model)]

    def with_hooks(stage):
        def run():
            with torch.inference_mode(), forward_hooks(model, {name: stage for name in names}):
                model(images)

        return run

    def stats(output):
        channel_mean_and_threshold(output.flatten(0, 1).flatten(1), 2.0)

    def extrema(output):
        resized_extrema(fem_saliency(output), (args.size, args.size))

    def resize_each(output):
        minmax_normalize(resize_maps(fem_saliency(output), (args.size, args.size)))

    explainer = MLFEM(model)

    def forward():
        with torch.inference_mode():
            model(images)

    functions = {
        "forward": forward,
        "hooks-only": with_hooks(lambda output: None),
        "stats": with_hooks(stats),
        "fem-raw": with_hooks(fem_saliency),
        "extrema": with_hooks(extrema),
        "resize-each": with_hooks(resize_each),
        "mlfem": lambda: explainer(images),
    }
    print(f"{args.model} ({len(names)} layers), batch {args.batch}, {args.size}x{args.size}, {machine_description(device)}")
    print(f"clock: {args.clock}")
    print_ratio_table(functions, "forward", args.repeats, device, "stage", clock=CLOCKS[args.clock])


if __name__ == "__main__":
    main()
