"""Shared fixtures: tiny offline models and the location of the real OSIE sample."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import settings

# Property tests draw the same examples on every run and every machine: CI must not pass or
# fail by chance (a failure found by a random draw is then kept as an explicit test).
settings.register_profile("mlfem", derandomize=True, database=None)
settings.load_profile("mlfem")

from tiny_models import TinyCNN

from _osie import require_osie

# Strict CI (CI=true, set by .ci/run): a skip fails the run unless the test is marked
# ci_may_skip (tests/_strict_ci.py). Importing the hooks here registers them.
from _strict_ci import (  # noqa: F401
    pytest_configure,
    pytest_make_collect_report,
    pytest_report_header,
    pytest_runtest_makereport,
)


@pytest.fixture(autouse=True)
def seeded() -> None:
    """Every test starts from the same random state (torch, NumPy and Python), whatever ran
    before it: inputs drawn without a generator are the same on every run and in any order."""
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)


@pytest.fixture
def osie_dir() -> Path:
    """The real OSIE sample (CI has ../shared beside the clone), or a skip with the reason."""
    return require_osie()


@pytest.fixture
def tiny_cnn() -> TinyCNN:
    torch.manual_seed(0)
    return TinyCNN().eval()


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's tests on one intra-op thread: several parallel test jobs on 2 cores
    otherwise make OpenMP threads spin against each other (an order of magnitude slower).
    The previous setting is restored."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
