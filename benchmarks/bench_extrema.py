"""Minimum and maximum along a dimension: ``amin`` plus ``amax`` against ``torch.aminmax``.

``mlfem.normalize`` (min-max normalisation of maps) and ``mlfem.metrics`` (constant-map
checks) take the extremes of each map with two reductions on the CPU instead of the
single ``aminmax`` kernel. This times both on flattened maps in interleaved rounds of
one run and prints the ratio ``aminmax / (amin + amax)``.

    uv run python benchmarks/bench_extrema.py            # (8, 224*224) and (8, 16, 224*224), 2 threads
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import interleaved_rounds, load_text, machine_description, ratio_text  # noqa: E402

SHAPES = ((8, 224 * 224), (8, 16, 224 * 224), (200, 480 * 640))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=21, help="timed rounds (median)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device("cpu")
    print(f"float32, reduced along the last dimension, {machine_description(device)}")
    print(f"{args.repeats} interleaved rounds; {load_text()} at the start")
    print("| maps | aminmax / (amin + amax), median (range) of the rounds |")
    print("|---|---:|")
    for shape in SHAPES:
        maps = torch.rand(shape)
        functions = {
            "separate": lambda maps=maps: (maps.amin(-1), maps.amax(-1)),
            "aminmax": lambda maps=maps: torch.aminmax(maps, dim=-1),
        }
        _, ratios = interleaved_rounds(functions, "separate", args.repeats, device)
        print(f"| {tuple(shape)} | {ratio_text(ratios['aminmax'], 1)} |")


if __name__ == "__main__":
    main()
