"""The dataset protocol: every registered dataset - file loaders, folder, the OSIE sample and
the synthetic benchmark - declares its canonical name, label space and GFDM settings, and the
settings it declares are the ones its GFDMs are really built with."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import mlfem.datasets as datasets
from mlfem.datasets import (
    DATASETS,
    GazeDatasetProtocol,
    GFDMSettings,
    available_datasets,
    canonical_name,
    open_dataset,
    register_dataset,
)
from mlfem.datasets._gfdm import build_gfdm
from mlfem.datasets.protocol import GFDM_KINDS, DatasetBase
from test_datasets_cat2000 import make_cat
from test_datasets_core import osie_fixture
from test_datasets_folder import ROWS, make_folder
from test_datasets_mexculture import make_mex
from test_datasets_mit1003 import POINTS, make_mit
from test_datasets_salicon import make_json_salicon
from test_datasets_video import make_video_folder

# One way to open each registered dataset on the tiny fixtures of its own tests.
BUILDERS: dict[str, Callable[[Path], object]] = {
    "salicon": lambda tmp: open_dataset("salicon", make_json_salicon(tmp), sigma=3.0),
    "cat2000": lambda tmp: open_dataset(
        "cat2000", make_cat(tmp, {"Action": {"001": [(0, 0), (17, 31)]}}), sigma=2.0),
    "mexculture": lambda tmp: open_dataset("mexculture", make_mex(tmp)),  # shipped maps
    "mit1003": lambda tmp: open_dataset("mit1003", make_mit(tmp, POINTS)),
    "osie": lambda tmp: open_dataset("osie", osie_fixture(tmp, n=3), sigma=2.0, collapse=True),
    "osie-sample": lambda tmp: open_dataset("osie-sample"),
    "folder": lambda tmp: open_dataset(
        "folder", make_folder(tmp, ROWS), sigma=1.5, weight_by_duration=True),
    "synthetic": lambda tmp: open_dataset("synthetic", n=2, seed=1, size=40, mode="multi"),
    "synthetic-video": lambda tmp: open_dataset("synthetic-video", n=2, seed=1, size=40,
                                                frames=4, temporal_sigma=1.0),
    "video-folder": lambda tmp: open_dataset("video-folder", make_video_folder(tmp),
                                             clip_length=4, sigma=2.0, fps=10),
}


def test_every_registered_dataset_has_a_builder_here() -> None:
    # A new dataset must be added to BUILDERS, so the protocol is checked on it too.
    assert set(BUILDERS) == set(available_datasets())


@pytest.mark.parametrize("name", list(BUILDERS))
def test_every_registered_dataset_follows_the_protocol(tmp_path: Path, name: str) -> None:
    ds = BUILDERS[name](tmp_path)
    assert isinstance(ds, GazeDatasetProtocol) and isinstance(ds, DatasetBase)
    cls = type(ds)
    # The canonical name is the registered one, and the class is what the registry holds.
    assert ds.name == cls.name == name and DATASETS[canonical_name(name)] is cls
    assert isinstance(cls.takes_root, bool)
    assert cls.default_root() is None or Path(cls.default_root()).is_dir()
    # The label space.
    assert isinstance(ds.multi_label, bool) and ds.num_classes == len(ds.class_names)
    assert all(isinstance(c, str) for c in ds.class_names)
    assert len(ds.image_ids) == len(ds) > 0 and ds.n_skipped == len(ds.skipped)
    assert ds.summary()["dataset"] == name
    # The GFDM settings.
    settings = ds.gfdm_settings()
    assert isinstance(settings, GFDMSettings) and settings.source in GFDM_KINDS
    assert settings.from_fixations == (settings.sigma is not None)
    sample = ds[0]
    assert all(0 <= k < ds.num_classes for k in sample.labels)
    assert (sample.gfdm is None) == (settings.source == "none")
    if settings.from_fixations and sample.image.ndim == 4:  # a clip: per-frame GFDMs
        from mlfem.datasets._video_gaze import build_video_gfdm

        frames, height, width = sample.image.shape[1:]
        rebuilt, _ = build_video_gfdm(sample.fixations, frames, height, width, settings.sigma,
                                      ds.temporal_sigma)
        torch.testing.assert_close(sample.gfdm, rebuilt, rtol=0, atol=0)
    elif settings.from_fixations:  # the declared settings rebuild the sample's GFDM exactly
        height, width = sample.image.shape[1:]
        weights = torch.cat(sample.durations) if settings.weight_by_duration else None
        rebuilt = build_gfdm(torch.cat(sample.fixations), height, width, settings.sigma,
                             settings.collapse, weights)
        torch.testing.assert_close(sample.gfdm, rebuilt, rtol=0, atol=0)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_the_evaluation_reads_the_declared_settings(tmp_path: Path, name: str) -> None:
    from mlfem.evaluation.config import gfdm_settings

    ds = BUILDERS[name](tmp_path)
    settings = ds.gfdm_settings()
    assert gfdm_settings(ds) == settings


def test_settings_follow_the_options(tmp_path: Path) -> None:
    root = osie_fixture(tmp_path, n=2)
    assert open_dataset("osie", root).gfdm_settings() == GFDMSettings("fixations", 24.0)
    assert open_dataset("osie", root, sigma=3, collapse=True).gfdm_settings() == GFDMSettings(
        "fixations", 3.0, collapse=True)
    # Options that shape GFDMs built from fixations do not apply to other sources.
    assert open_dataset("osie", root, gfdm="none", collapse=True).gfdm_settings() == GFDMSettings(
        "none")
    assert open_dataset("mexculture", make_mex(tmp_path / "mex")).gfdm_settings() == GFDMSettings(
        "shipped")
    synthetic = open_dataset("synthetic", n=1, size=64)
    assert synthetic.gfdm_settings() == GFDMSettings("fixations", 0.05 * 64)
    assert open_dataset("synthetic", n=1, gfdm="none").gfdm_settings() == GFDMSettings("none")


def test_settings_reject_inconsistent_declarations() -> None:
    with pytest.raises(ValueError, match="source"):
        GFDMSettings("auto")
    with pytest.raises(ValueError, match="sigma"):
        GFDMSettings("fixations")
    with pytest.raises(ValueError, match="fixations only"):
        GFDMSettings("shipped", sigma=19.0)
    assert GFDMSettings.of("shipped", 19.0, collapse=True) == GFDMSettings("shipped")


def test_open_dataset_asks_the_class_for_its_root(tmp_path: Path, monkeypatch) -> None:
    from mlfem.datasets import registry

    # A scratch copy of the tables, so the test's registrations do not outlive it.
    table = dict(DATASETS)
    monkeypatch.setattr(registry, "DATASETS", table)
    monkeypatch.setattr(datasets, "DATASETS", table)
    monkeypatch.setattr(registry, "_ALIASES", dict(registry._ALIASES))
    root = osie_fixture(tmp_path / "mine", n=2)

    @register_dataset
    class Mine(datasets.OSIE):
        name = "mine"

        @classmethod
        def default_root(cls) -> Path:
            return root

    @register_dataset
    class Made(datasets.SyntheticGaze):
        name = "made"
        takes_root = False

    assert open_dataset("mine", sigma=2.0).root == root
    assert len(open_dataset("made", n=3)) == 3
    with pytest.raises(ValueError, match="no root"):
        open_dataset("made", tmp_path)
