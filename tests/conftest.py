"""Shared fixtures: tiny offline models and the location of the real OSIE sample."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tiny_models import TinyCNN

# CI checks the repository out with ../shared beside it; a user's clone has no such folder.
SHARED_DIR = Path(__file__).resolve().parents[2] / "shared"
OSIE_DIR = SHARED_DIR / "data" / "osie"


@pytest.fixture
def osie_dir() -> Path:
    """The real OSIE sample, or a skip with the reason when it is not beside the clone."""
    if not (OSIE_DIR / "fixations.mat").is_file():
        pytest.skip(f"OSIE sample not found at {OSIE_DIR} (only CI has ../shared beside the clone)")
    return OSIE_DIR


@pytest.fixture
def tiny_cnn() -> TinyCNN:
    torch.manual_seed(0)
    return TinyCNN().eval()
