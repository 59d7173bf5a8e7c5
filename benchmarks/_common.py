"""Helpers shared by the benchmarks: timing, and peak memory measured in a fresh process.

Timings are medians of repeated runs after a warm-up, and every figure is printed as a
ratio to a baseline timed in the same run, because ratios carry across machines while
absolute times do not.

Peak memory on CPU is the rise of the process's peak resident set (VmHWM) during one
call, in a fresh subprocess: the peak is reset through /proc/self/clear_refs just before
the call, and MALLOC_MMAP_THRESHOLD_ makes glibc return large freed blocks to the
system so that memory freed by the warm-up does not hide the call's own peak. On CUDA
it is the rise of ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch


def wall_time(
    function: Callable[[], object],
    device: torch.device,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Wall time of one call of ``function`` in seconds (synchronised on CUDA), or the time
    of another ``clock`` (``time.thread_time``: see :data:`CLOCKS`)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = clock()
    function()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return clock() - start


#: ``--clock`` choices. ``cpu`` is the calling thread's CPU time: on a shared machine it
#: leaves out the time the process waited for a core, so ratios move less with the load.
#: Only meaningful with 1 thread on the CPU (other threads' work is not counted).
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.thread_time}


def interleaved_rounds(
    functions: dict[str, Callable[[], object]],
    baseline: str,
    rounds: int,
    device: torch.device,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per-round times of each function, and per-round ratios to ``baseline``.

    Every round times each function once, in turn, after one warm-up call each, so that a
    machine getting busier or quieter affects the baseline and the method alike.
    """
    for function in functions.values():
        function()
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            samples[name].append(wall_time(function, device, clock))
    ratios = {name: [t / b for t, b in zip(values, samples[baseline])] for name, values in samples.items()}
    return samples, ratios


def interleaved_ratios(
    functions: dict[str, Callable[[], object]], baseline: str, rounds: int, device: torch.device
) -> tuple[dict[str, float], dict[str, float]]:
    """Median time of each function, and median of its per-round ratio to ``baseline``.

    On a shared machine the medians of the times are taken over different rounds and need
    not agree with the median ratio; publish the ratio (see :func:`ratio_text`).
    """
    samples, ratios = interleaved_rounds(functions, baseline, rounds, device)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    return medians, {name: statistics.median(values) for name, values in ratios.items()}


def ratio_text(ratios: list[float], digits: int = 2) -> str:
    """``median (min–max)`` of per-round ratios, e.g. ``1.10 (1.06–1.13)``."""
    return f"{statistics.median(ratios):.{digits}f} ({min(ratios):.{digits}f}–{max(ratios):.{digits}f})"


def seconds_text(times: list[float]) -> str:
    """``median (min–max)`` of times in milliseconds, e.g. ``512 ms (480–590)``."""
    return f"{statistics.median(times) * 1000:.0f} ms ({min(times) * 1000:.0f}–{max(times) * 1000:.0f})"


def print_ratio_table(
    functions: dict[str, Callable[[], object]],
    baseline: str,
    rounds: int,
    device: torch.device,
    header: str,
    digits: int = 3,
    clock: Callable[[], float] = time.perf_counter,
) -> None:
    """Time ``functions`` in interleaved rounds and print each one's ratio to ``baseline``
    (median and range of the rounds) as a Markdown table, with the load before and after."""
    print(f"{rounds} interleaved rounds; {load_text()} at the start")
    times, ratios = interleaved_rounds(functions, baseline, rounds, device, clock)
    print(f"{baseline}: {seconds_text(times[baseline])}; {load_text()} at the end")
    print(f"| {header} | time / {baseline}, median (range) of the rounds |")
    print("|---|---:|")
    for name in functions:
        print(f"| {name} | {ratio_text(ratios[name], digits)} |")


def load_text() -> str:
    """The 1-minute load average, which says how busy a shared machine was."""
    try:
        return f"load average {os.getloadavg()[0]:.1f}"
    except OSError:
        return "load average unknown"


def setup_resnet50(
    device: str, batch: int, size: int, threads: int
) -> tuple[torch.nn.Module, torch.Tensor, torch.device]:
    """The benchmarks' subject: ResNet-50 with random weights (cost does not depend on
    them) in eval mode, and a seeded batch of random images."""
    import torchvision

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    where = torch.device(device)
    model = torchvision.models.resnet50().eval().to(where)
    images = torch.randn(batch, 3, size, size, device=where)
    return model, images, where


def add_run_arguments(parser: argparse.ArgumentParser, methods: tuple[str, ...]) -> None:
    """The options of a timing benchmark: where and how much it runs, which methods, and the
    hidden ``--child --method M`` of its peak-memory subprocesses."""
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (median)")
    parser.add_argument("--methods", default=",".join(methods))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)


def forward_pass(model: torch.nn.Module, images: torch.Tensor) -> Callable[[], object]:
    """The baseline every benchmark compares with: one forward pass under inference mode."""

    def forward() -> object:
        with torch.inference_mode():
            return model(images)

    return forward


def print_child_peak(function: Callable[[], object] | None, device: torch.device) -> None:
    """A ``--child`` process's answer: ``function``'s peak memory rise as one JSON line
    (null when the method does not run here)."""
    peak = peak_memory_bytes(function, device) if function is not None else None
    print(json.dumps({"peak": peak}))


def _read_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not found in /proc/self/status")


def peak_memory_bytes(
    function: Callable[[], object], device: torch.device, warm_up: Callable[[], object] | None = None
) -> int:
    """Rise of peak memory during one call of ``function``, after ``warm_up()`` (by default
    one call of ``function`` itself; a cheaper one for slow methods)."""
    (warm_up or function)()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        function()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    Path("/proc/self/clear_refs").write_text("5")
    before = _read_status_kib("VmRSS")
    function()
    return (_read_status_kib("VmHWM") - before) * 1024


def measure_in_subprocess(script: Path, arguments: list[str]) -> dict:
    """Run ``script --child ARGS`` in a fresh interpreter; it prints one JSON line last."""
    environment = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    completed = subprocess.run(
        [sys.executable, str(script), "--child", *arguments],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"child {arguments} failed:\n{completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def machine_description(device: torch.device) -> str:
    """The machine, thread count, torch version and today's date, for the output's header."""
    today = time.strftime("%Y-%m-%d")
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, {today}"
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = os.cpu_count()
    return f"{cpu} ({cores} cores), {torch.get_num_threads()} threads, torch {torch.__version__}, {today}"
