"""Cost of replaying a TorchScript file through hookable modules, against the file itself.

``mlfem explain --model file.pt`` runs a TorchScript module's code as Python through
``mlfem.models.torchscript.replay_script_module`` so that FEM can hook its blocks. This
times, in interleaved rounds of one run, a forward pass of a traced (or scripted)
ResNet-50 (random weights) under inference mode, of its replay, and of the eager Python
model, and prints each as a ratio to the TorchScript module's time (median of the
per-round ratios).

    uv run python benchmarks/bench_torchscript.py                   # traced, batch 8, 2 threads
    uv run python benchmarks/bench_torchscript.py --how script --repeats 15
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_description, print_ratio_table, setup_resnet50  # noqa: E402


def main() -> None:
    from mlfem.models.torchscript import replay_script_module

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--how", choices=("trace", "script"), default="trace")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (median)")
    args = parser.parse_args()

    model, images, device = setup_resnet50("cpu", args.batch, args.size, args.threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit deprecation warnings
        script = torch.jit.trace(model, images) if args.how == "trace" else torch.jit.script(model)
    replayed = replay_script_module(script, probe=images)

    def timing(module: torch.nn.Module):
        def run() -> object:
            with torch.inference_mode():
                return module(images)

        return run

    functions = {"torchscript": timing(script), "replay": timing(replayed), "eager": timing(model)}
    print(f"ResNet-50 {args.how}d, batch {args.batch}, {args.size}x{args.size}, {machine_description(device)}")
    print_ratio_table(functions, "torchscript", args.repeats, device, "module")


if __name__ == "__main__":
    main()
