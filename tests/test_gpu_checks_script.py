"""benchmarks/gpu_checks.sh, the prepared script for a lent GPU: it parses, refuses bad
arguments, and every benchmark step it runs names options the benchmark accepts (a typo
would otherwise be found only during a short, counted lease)."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_checks.sh"


def test_the_script_parses_and_refuses_an_unknown_mode() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], check=False).returncode == 0
    result = subprocess.run(["bash", str(SCRIPT), "frobnicate"], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "usage: bash benchmarks/gpu_checks.sh prepare | run" in result.stderr


def _benchmark_steps() -> list[list[str]]:
    steps = []
    for line in SCRIPT.read_text().splitlines():
        match = re.search(r"\bstep \S+ \d+ python3 (benchmarks/\S+\.py.*)$", line)
        if match:
            steps.append(shlex.split(match.group(1).replace("$eager", "--methods forward")))
    return steps


def test_every_benchmark_step_is_found() -> None:
    scripts = {step[0] for step in _benchmark_steps()}
    assert scripts == {"benchmarks/bench_explain.py", "benchmarks/profile_mlfem.py"}
    assert len(_benchmark_steps()) >= 8


def _load(script: str):  # type: ignore[no-untyped-def]
    """A benchmark script as a module (its own folder on sys.path, as when it runs)."""
    path = ROOT / script
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location(f"_gpu_step_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(path.parent))


@pytest.mark.parametrize("step", _benchmark_steps(), ids=lambda step: " ".join(step)[11:70])
def test_every_benchmark_step_names_accepted_options(step: list[str]) -> None:
    # The script's own parser: an unknown option or a bad choice exits 2 (SystemExit).
    module = _load(step[0])
    args = module.build_parser().parse_args(step[1:])
    assert args.device == "cuda"
    methods = getattr(args, "methods", None)
    if methods is not None and methods != ",".join(module.METHODS):  # not the default
        allowed = module.MODEL_METHODS if args.models else module.METHODS
        assert set(methods.split(",")) <= set(allowed)


def test_the_steps_fit_one_device_command() -> None:
    # The device tool runs one command for at most 600 s: the steps' limits, plus the
    # wheels' installation, must fit, or the last steps' results would be lost.
    limits = [int(limit) for limit in re.findall(r"\bstep \S+ (\d+) ", SCRIPT.read_text())]
    assert len(limits) >= 9
    assert sum(limits) <= 570
