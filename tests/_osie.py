"""Locate the real OSIE eye-tracking data shared beside the repository clone (never copied).

A user's clone has no ``../shared``: tests that need it skip there, saying why. CI always has it,
and under strict CI (``CI=true``, :mod:`_strict_ci`) a missing folder fails the test instead of
skipping it silently.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from _strict_ci import strict

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
OSIE_DIR = SHARED_DATA / "osie"


def _require(folder: Path, what: str) -> Path:
    if (folder / "fixations.mat").is_file() and (folder / "stimuli").is_dir():
        return folder
    reason = f"{what} not found at {folder} (expected ../shared/data/{folder.name} beside the repo)"
    if strict():
        pytest.fail(f"{reason}; CI must have it")
    pytest.skip(reason)


def require_osie() -> Path:
    """The OSIE test sample folder (1001-1040), or skip the calling test when it is not there."""
    return _require(OSIE_DIR, "OSIE sample")
