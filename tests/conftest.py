"""Shared fixtures: tiny offline models and the location of the real OSIE sample."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tiny_models import TinyCNN

from _osie import require_osie


@pytest.fixture
def osie_dir() -> Path:
    """The real OSIE sample (CI has ../shared beside the clone), or a skip with the reason."""
    return require_osie()


@pytest.fixture
def tiny_cnn() -> TinyCNN:
    torch.manual_seed(0)
    return TinyCNN().eval()
