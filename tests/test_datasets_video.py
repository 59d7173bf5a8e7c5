"""Video datasets: the synthetic video gaze benchmark and the ``video-folder`` loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlfem.datasets import open_dataset
from mlfem.datasets.synthetic_video import DIRECTIONS, SyntheticVideo
from mlfem.gaze.video import video_gfdm


# --------------------------------------------------------------------------- synthetic video
def test_synthetic_video_sample_schema() -> None:
    ds = open_dataset("synthetic-video", n=3, seed=2, frames=8, size=48)
    assert isinstance(ds, SyntheticVideo) and len(ds) == 3
    assert ds.class_names == list(DIRECTIONS) and not ds.multi_label
    s = ds[1]
    assert s.image_id == "2-000001"
    assert s.image.dtype == torch.uint8 and s.image.shape == (3, 8, 48, 48)
    assert s.gfdm.dtype == torch.float32 and s.gfdm.shape == (8, 48, 48)
    has = s.extras["has_gaze"]
    torch.testing.assert_close(s.gfdm.sum((1, 2))[has], torch.ones(int(has.sum())))
    assert bool((s.gfdm[~has] == 0).all())
    assert len(s.fixations) == 8  # observers
    for rows in s.fixations:
        assert rows.dtype == torch.float32 and rows.ndim == 2 and rows.shape[1] == 3
        frames = rows[:, 0]
        assert bool((frames == frames.round()).all()) and 0 <= frames.min() <= frames.max() < 8
        assert bool((rows[:, 1] >= -0.5).all() and (rows[:, 1] < 47.5).all())
    assert len(s.labels) == 1 and s.class_names == [DIRECTIONS[s.labels[0]]]
    assert s.extras["masks"].shape == (8, 48, 48) and s.extras["centres"].shape == (8, 2)
    # The declared settings rebuild the GFDMs from the rows.
    rebuilt = video_gfdm(s.fixations, 8, 48, 48, ds.gfdm_settings().sigma, dtype=torch.float64)
    torch.testing.assert_close(s.gfdm, rebuilt.maps.float(), rtol=0, atol=0)


def test_synthetic_video_is_deterministic_and_seeds_differ() -> None:
    a = open_dataset("synthetic-video", n=4, seed=7, frames=6, size=40)
    b = open_dataset("synthetic-video", n=4, seed=7, frames=6, size=40)
    for i in (3, 0):  # any order
        sa, sb = a[i], b[i]
        assert torch.equal(sa.image, sb.image) and torch.equal(sa.gfdm, sb.gfdm)
        assert all(torch.equal(x, y) for x, y in zip(sa.fixations, sb.fixations))
        assert sa.labels == sb.labels
    other = open_dataset("synthetic-video", n=4, seed=8, frames=6, size=40)
    assert not torch.equal(a[0].image, other[0].image)


def test_the_target_moves_in_the_labelled_direction_and_only_it_moves() -> None:
    ds = open_dataset("synthetic-video", n=24, seed=0, frames=10, size=64, noise=0.0)
    unit = {"right": (1, 0), "left": (-1, 0), "down": (0, 1), "up": (0, -1)}
    seen = set()
    for s in ds:
        centres = s.extras["centres"]
        step = (centres[-1] - centres[0]).tolist()
        ux, uy = unit[s.class_names[0]]
        assert ux * step[0] + uy * step[1] >= 0.8 * 9 * 0.8  # speed >= 0.8 px/frame, wobble aside
        seen.add(s.labels[0])
        # Without pixel noise, what changes between frames is the target (old and new place).
        changed = (s.image[:, 1:] != s.image[:, :-1]).any(0)  # (T-1, H, W)
        masks = s.extras["masks"]
        assert bool((~changed | masks[1:] | masks[:-1]).all())
    assert seen == set(range(4))


def test_simulated_observers_follow_the_target() -> None:
    ds = open_dataset("synthetic-video", n=20, seed=3, frames=16, size=64)
    near, late_mass = [], []
    for s in ds:
        centres, radius = s.extras["centres"], s.extras["radius"]
        for rows in s.fixations:
            late = rows[rows[:, 0] >= 6]  # after the slowest reaction (5 frames)
            distance = (late[:, 1:] - centres[late[:, 0].long()]).norm(dim=1) / radius
            near.append(distance)
        mask = s.extras["masks"][6:].float()
        late_mass.append((s.gfdm[6:] * mask).sum((1, 2)).mean())
    near = torch.cat(near)
    # Pursuit with an offset of 0.3 r, a frame of lag and glances: most samples on the object.
    assert float((near < 1.0).float().mean()) > 0.6
    assert float(near.median()) < 0.8
    # The GFDM's mass sits on the target (which covers only ~5 % of the frame).
    area = float(ds[0].extras["masks"].float().mean())
    assert area < 0.1 and float(torch.stack(late_mass).mean()) > 0.3


def test_synthetic_video_options_and_errors() -> None:
    ds = open_dataset("synthetic-video", n=2, frames=4, size=32, gfdm="none")
    assert ds[0].gfdm is None and ds.gfdm_settings().source == "none"
    smooth = open_dataset("synthetic-video", n=1, frames=6, size=32, temporal_sigma=1.5)
    assert smooth.temporal_sigma == 1.5 and smooth.summary()["temporal_sigma"] == 1.5
    train = open_dataset("synthetic-video", n=20, split="train")
    assert 0 < len(train) < 20 and all(train[i].split == "train" for i in range(2))
    with pytest.raises(ValueError, match="frames"):
        open_dataset("synthetic-video", frames=1)
    with pytest.raises(ValueError, match="no root"):
        open_dataset("synthetic-video", "/tmp")
    hard = open_dataset("synthetic-video", n=1, frames=4, size=48, moving_distractors=1,
                        noise=0.0)
    s = hard[0]
    changed = (s.image[:, 1:] != s.image[:, :-1]).any(0)
    masks = s.extras["masks"]
    assert bool((changed & ~(masks[1:] | masks[:-1])).any())  # something else moves too
    assert np.isfinite(float(s.gfdm.sum()))
