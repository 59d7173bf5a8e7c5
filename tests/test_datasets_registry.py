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


def test_datasets_register_by_decorator_with_their_aliases(monkeypatch) -> None:
    from mlfem.datasets import DATASETS, MIT1003, OSIE, OSIESample, available_datasets, register_dataset
    from mlfem.datasets import registry

    assert DATASETS["mit1003"] is MIT1003 and DATASETS["osiesample"] is OSIESample
    assert available_datasets() == ["salicon", "cat2000", "mexculture", "mit1003", "osie",
                                    "osie-sample", "folder", "synthetic", "synthetic-video",
                                    "video-folder"]
    # A scratch copy of the tables, so the test's registrations do not outlive it.
    monkeypatch.setattr(registry, "DATASETS", dict(DATASETS))
    monkeypatch.setattr(registry, "_ALIASES", dict(registry._ALIASES))

    @register_dataset
    class Eyes(OSIE):
        name = "my-eyes"
        aliases = ("eyes",)

    assert registry.DATASETS["myeyes"] is Eyes
    assert canonical_name("EYES") == canonical_name("My_Eyes") == "myeyes"
    with pytest.raises(ValueError, match="already registered"):
        register_dataset(type("Other", (OSIE,), {"name": "eyes"}))
    with pytest.raises(TypeError, match="dataset name"):
        register_dataset(type("Unnamed", (OSIE,), {}))
