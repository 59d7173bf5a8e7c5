"""``torchrun --nproc-per-node 2`` (two CPU processes, gloo) trains the classifier and the
NET to the checkpoints of one process, within the tolerance docs/scale.md states, after one
epoch and after a resumed second; the NET's map cache, built in two parts, equals the
single-process one exactly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from _dist_settings import CLASSIFIER_ARGS, FUSION_ARGS
from mlfem.cli import main
from mlfem.training import MapCache

TESTS = Path(__file__).resolve().parent
# docs/scale.md: weights of two processes vs one after these runs.
RTOL, ATOL = 1e-3, 1e-4

pytestmark = pytest.mark.usefixtures("one_thread")


def _single(out: Path, args: list[str], extra: list[str]) -> None:
    for epochs, resume in (("1", []), ("2", ["--resume"])):
        assert main([*args, *extra, "--epochs", epochs, *resume, "--out", str(out)]) == 0
        if epochs == "1":
            (out / "epoch1.safetensors").write_bytes((out / "training_state.safetensors").read_bytes())


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    single = tmp_path_factory.mktemp("single")
    _single(single / "classifier", CLASSIFIER_ARGS, [])
    classifier = str(single / "classifier" / "classifier.safetensors")
    _single(single / "fusion", FUSION_ARGS, ["--classifier", classifier])
    two = tmp_path_factory.mktemp("two")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(TESTS / "_dist_train.py"), str(two), classifier],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return single, two


def _assert_states_close(one: Path, two: Path) -> None:
    a, b = load_file(one), load_file(two)
    assert a.keys() == b.keys()
    for key in a:
        if key.startswith("model."):
            torch.testing.assert_close(b[key], a[key], rtol=RTOL, atol=ATOL, msg=key)
        elif key.startswith("rng.") or key.endswith(".step"):
            assert torch.equal(a[key], b[key]), key  # same draws, same number of steps


@pytest.mark.parametrize("name", ["classifier", "fusion"])
@pytest.mark.parametrize("state", ["epoch1.safetensors", "training_state.safetensors"])
def test_two_processes_train_the_single_process_weights(runs, name, state) -> None:
    single, two = runs
    _assert_states_close(single / name / state, two / name / state)


def test_the_map_cache_built_in_two_parts_is_the_single_process_cache(runs) -> None:
    single, two = runs
    for split in ("train", "val"):
        (a,) = (single / "fusion" / "cache").glob(f"{split}-*")
        (b,) = (two / "fusion" / "cache").glob(f"{split}-*")
        assert a.name == b.name and any(b.glob("part-*"))
        one, parts = MapCache.load(a), MapCache.load(b)
        assert one.image_ids == parts.image_ids
        assert torch.equal(one.maps, parts.maps) and torch.equal(one.gfdm, parts.gfdm)
