"""The dataset registry: one alias table, canonical names shared by the loaders and the guards."""

from __future__ import annotations

import pytest

from mlfem.datasets import canonical_name
from mlfem.training.leakage import _canonical as leakage_canonical


def test_spellings_of_one_dataset_share_a_canonical_name() -> None:
    for spelling in ("mit", "MIT", "mit1003", "mit-1003", " MIT_1003 "):
        assert canonical_name(spelling) == "mit1003"
    assert canonical_name("MexCulture142") == "mexculture"
    assert canonical_name("cat") == canonical_name("CAT2000") == "cat2000"
    assert canonical_name("osie-sample") == "osiesample" != canonical_name("osie")


def test_unknown_names_are_normalised_unless_strict() -> None:
    assert canonical_name("Image-Net") == "imagenet"
    with pytest.raises(ValueError, match="unknown dataset"):
        canonical_name("imagenet", strict=True)


def test_leakage_guard_uses_the_same_aliases() -> None:
    # "mit" and "mit1003" are one dataset for the loaders and for the leakage guard alike.
    for a, b in (("mit", "mit1003"), ("cat", "cat2000"), ("mexculture142", "MexCulture")):
        assert leakage_canonical(a) == leakage_canonical(b) == canonical_name(b)
    # The shipped sample has OSIE's image ids: an OSIE checkpoint is compared with it.
    assert leakage_canonical("osie-sample") == leakage_canonical("osie") == "osie"
