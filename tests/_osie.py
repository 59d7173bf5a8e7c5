"""Locate the real OSIE eye-tracking sample shared beside the repository clone (never copied)."""

from __future__ import annotations

from pathlib import Path

import pytest

OSIE_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "osie"


def require_osie() -> Path:
    """The OSIE sample folder, or skip the calling test when it is not there."""
    if not (OSIE_DIR / "fixations.mat").is_file() or not (OSIE_DIR / "stimuli").is_dir():
        pytest.skip(
            f"OSIE sample not found at {OSIE_DIR} (expected ../shared/data/osie beside the repo)"
        )
    return OSIE_DIR
