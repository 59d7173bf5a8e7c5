"""Cost of every registered explanation method, as multiples of one forward pass.

For each method of ``mlfem methods`` (default options unless ``--option`` says
otherwise), on ResNet-50 with random weights (cost does not depend on them):

* time of one call on a batch, divided by the time of one forward pass of the same
  batch under inference mode, timed right before it in the same process (so a
  machine getting busier or quieter affects both alike); the table gives the median
  and the range of these ratios, not seconds, whose medians over different calls
  need not agree with the ratios on a shared machine. Each method is called
  once as a warm-up, then ``--repeats`` times; a method whose warm-up call took
  longer than ``--budget`` seconds is timed by that call alone (its one-time
  costs are negligible next to it) — the ``n`` column says how many calls count;
* peak memory: the rise of peak memory during one call, in a fresh process per
  method, as a ratio to the forward pass's rise measured the same way. On CPU it
  is the rise of VmHWM (reset through /proc/self/clear_refs just before the
  call, with MALLOC_MMAP_THRESHOLD_=65536 so that freed blocks go back to the
  system); on CUDA, of ``torch.cuda.max_memory_allocated``. Each child first
  explains a single image, so that library imports and one-time allocations
  are not counted.

Prints a markdown table.

    uv run python benchmarks/bench_methods.py                      # CPU, 2 threads, batch 8, 224x224
    uv run python benchmarks/bench_methods.py --batch 2 --methods gradcam,ig,lrp
    uv run python benchmarks/bench_methods.py --device cuda --batch 32
    uv run python benchmarks/bench_methods.py --option steps=16 --option samples=64
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    load_text,
    machine_description,
    measure_in_subprocess,
    peak_memory_bytes,
    ratio_text,
    seconds_text,
    setup_resnet50,
    wall_time,
)


def parse_option(text: str) -> tuple[str, Any]:
    """``key=value`` with value read as int, float, true/false/none, or kept as text."""
    key, separator, raw = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return key, lowered == "true"
    if lowered == "none":
        return key, None
    for convert in (int, float):
        try:
            return key, convert(raw)
        except ValueError:
            pass
    return key, raw


def setup(args: argparse.Namespace) -> tuple[torch.nn.Module, torch.Tensor, torch.device]:
    return setup_resnet50(args.device, args.batch, args.size, args.threads)


def build(method: str, model: torch.nn.Module, options: dict[str, Any]) -> Callable[[torch.Tensor], object]:
    """A callable running ``method`` on a batch (``forward`` is the bare forward pass)."""
    if method == "forward":

        def forward(images: torch.Tensor) -> object:
            with torch.inference_mode():
                return model(images)

        return forward
    from mlfem.explainers.registry import create_explainer

    explainer = create_explainer(method, model, **options)
    return explainer


def child(args: argparse.Namespace) -> None:
    """Fresh process: warm up on one image, then measure the peak-memory rise of one call."""
    model, images, device = setup(args)
    function = build(args.method, model, dict(args.option))
    peak = peak_memory_bytes(lambda: function(images), device, warm_up=lambda: function(images[:1]))
    print(json.dumps({"peak": peak}))


def time_method(
    function: Callable[[torch.Tensor], object],
    forward: Callable[[torch.Tensor], object],
    images: torch.Tensor,
    device: torch.device,
    repeats: int,
    budget: float,
) -> list[float]:
    """Ratios of each timed call to the forward pass timed just before it (one ratio, to
    the mean of the passes before and after, when the warm-up call exceeded ``budget``)."""
    forward_before = wall_time(lambda: forward(images), device)
    first = wall_time(lambda: function(images), device)
    if first > budget:
        forward_after = wall_time(lambda: forward(images), device)
        return [first / statistics.mean([forward_before, forward_after])]
    ratios = []
    for _ in range(repeats):
        forward_time = wall_time(lambda: forward(images), device)
        ratios.append(wall_time(lambda: function(images), device) / forward_time)
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per method (median)")
    parser.add_argument("--budget", type=float, default=30.0,
                        help="seconds: a method whose warm-up call takes longer is timed by that call alone")
    parser.add_argument("--methods", default="", help="comma-separated names (default: every registered method)")
    parser.add_argument("--option", action="append", type=parse_option, default=[], metavar="KEY=VALUE",
                        help="option passed to every method's factory (repeatable), e.g. steps=16")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    from mlfem.explainers.registry import available_methods, method_info

    names = [m for m in args.methods.split(",") if m] or [info.name for info in available_methods()]
    model, images, device = setup(args)
    options = dict(args.option)
    print(f"ResNet-50 (random init), batch {args.batch}, {args.size}x{args.size}, {machine_description(device)}")
    if options:
        print(f"options: {', '.join(f'{k}={v}' for k, v in options.items())}")
    print(f"{load_text()} at the start")
    forward = build("forward", model, options)
    forward(images)
    forward_times = [wall_time(lambda: forward(images), device) for _ in range(max(3, args.repeats))]
    results: dict[str, list[float]] = {"forward": [1.0] * len(forward_times)}
    for name in names:
        function = build(name, model, options)
        results[name] = time_method(function, forward, images, device, args.repeats, args.budget)
        print(f"  {name}: {statistics.median(results[name]):.2f}x forward", file=sys.stderr, flush=True)
    print(f"forward pass before the methods: {seconds_text(forward_times)}; {load_text()} after the timings")

    peaks: dict[str, int | None] = {name: None for name in results}
    if not args.no_memory:
        common = ["--device", args.device, "--batch", str(args.batch), "--size", str(args.size),
                  "--threads", str(args.threads)]
        common += [f"--option={key}={value}" for key, value in options.items()]
        for name in results:
            peaks[name] = measure_in_subprocess(Path(__file__), [*common, "--method", name])["peak"]
    base_peak = peaks["forward"]

    print()
    print("| method | gradients | time / forward, median (range) | n | peak memory rise (MiB) | peak / forward |")
    print("|---|:---:|---:|---:|---:|---:|")
    for name, ratios in results.items():
        gradients = "" if name == "forward" else ("yes" if method_info(name).uses_gradients else "no")
        peak = peaks[name]
        memory = "–" if peak is None else f"{peak / 2**20:.0f}"
        memory_ratio = "–" if peak is None or not base_peak else f"{peak / base_peak:.2f}"
        ratio = "1.00" if name == "forward" else ratio_text(ratios)
        print(f"| {name} | {gradients} | {ratio} | {len(ratios)} | {memory} | {memory_ratio} |")


if __name__ == "__main__":
    main()
