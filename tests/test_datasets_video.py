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
        along, across = ux * step[0] + uy * step[1], abs(uy * step[0] - ux * step[1])
        assert along >= 0.3 * 64 - 1 and across <= 2 * 1.0 + 1  # travel 30 %+, wobble 1 px
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


# --------------------------------------------------------------------------- video folder
def _write_video(path, frames: np.ndarray, fps: int = 10) -> None:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate, stream.options = 8_000_000, {"qscale": "1"}  # near-lossless levels
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def _ramp(n: int, height: int = 24, width: int = 32) -> np.ndarray:
    """Frames whose red level says their index (10 * k), to check which frames a clip holds."""
    frames = np.zeros((n, height, width, 3), np.uint8)
    frames[..., 0] = (np.arange(n) * 10).reshape(n, 1, 1)
    frames[..., 1] = 60
    return frames


A_ROWS = """observer,t,x,y,duration
o1,0.0,3,4,250
o1,0.35,10,5,250
o2,0.8,20,12,0
o2,abc,1,1,100
o2,1.05,8,8,100
o3,1.2,50,5,0
"""


def make_video_folder(tmp) -> object:
    """videos/a.mp4 (20 frames, 10 fps), videos/bad.mp4 (not a video), frames/b/ (12 PNGs),
    frames/c/ (no fixation file), fixations with one malformed row, labels."""
    from PIL import Image

    root = tmp / "vf"
    _write_video(root / "videos" / "a.mp4", _ramp(20))
    (root / "videos" / "bad.mp4").write_bytes(b"\x00\x01 this is not a video" * 50)
    for name, n in (("b", 12), ("c", 9)):
        (root / "frames" / name).mkdir(parents=True)
        for k, frame in enumerate(_ramp(n, 16, 20)):
            Image.fromarray(frame).save(root / "frames" / name / f"{k + 1:06d}.png")
    (root / "fixations").mkdir()
    (root / "fixations" / "a.csv").write_text(A_ROWS)
    (root / "fixations" / "b.csv").write_text("observer,t,x,y\nx,0.0,2,3\nx,0.1,4,5\ny,0.75,6,7\n")
    (root / "fixations" / "bad.csv").write_text("observer,t,x,y\nx,0.0,2,3\n")
    (root / "labels.csv").write_text("id,label\na,walk\nb,run\nbad,walk\n")
    return root


def test_video_folder_cuts_clips_and_reports_what_it_skipped(tmp_path) -> None:
    from mlfem.datasets import DatasetWarning

    root = make_video_folder(tmp_path)
    with pytest.warns(DatasetWarning) as caught:
        ds = open_dataset("video-folder", root, clip_length=8, sigma=2.0, fps=10)
    messages = " ".join(str(w.message) for w in caught)
    assert "skipped 2" in messages and "1 malformed fixation row" in messages
    skipped = {item.image_id: item.reason for item in ds.skipped}
    assert set(skipped) == {"bad", "c"}
    assert "not a readable video" in skipped["bad"] and skipped["c"] == "fixation file missing"
    assert ds.n_bad_rows == 1 and "line 5" in ds.bad_rows[0][2]
    # a: 20 frames -> 2 clips of 8 (4 frames left out); b: 12 frames -> 1 clip (4 left out).
    assert ds.image_ids == ["a#0000", "a#0001", "b#0000"]
    assert ds.summary()["frames_not_in_clips"] == 8 and ds.summary()["videos"] == 2
    assert ds.class_names == ["run", "walk"] and ds[0].class_names == ["walk"]

    clip = ds[1]  # a, video frames 8..15
    assert clip.image.shape == (3, 8, 24, 32) and clip.image.dtype == torch.uint8
    red = clip.image[0].float().mean((1, 2))  # lossy codec: the levels are approximate
    assert torch.allclose(red, torch.arange(8, 16).float() * 10, atol=4)
    assert clip.extras["frame_indices"] == list(range(8, 16))
    # o1's fixation at 0.35 s for 250 ms is on frames 3..5 (clip 0); o2 at 0.8 s on frame 8 and
    # at 1.05 s for 100 ms on frames 10, 11; o3 at 1.2 s (x = 50) is outside the 32 px frame.
    rows = [r.tolist() for r in clip.fixations]
    assert rows == [[], [[0, 20, 12], [2, 8, 8], [3, 8, 8]], []]
    assert clip.n_outside == 1
    assert clip.extras["has_gaze"].tolist() == [True, False, True, True] + [False] * 4
    expected = video_gfdm(torch.tensor([[0, 20, 12], [2, 8, 8], [3, 8, 8]]), 8, 24, 32, 2.0,
                          dtype=torch.float64)
    torch.testing.assert_close(clip.gfdm, expected.maps.float(), rtol=0, atol=0)
    first = ds[0]
    assert [r[:, 0].tolist() for r in first.fixations] == [[0, 1, 2, 3, 4, 5], [], []]

    frames = ds[2]  # b: PNG frames are exact
    assert torch.equal(frames.image.permute(1, 2, 3, 0), torch.from_numpy(_ramp(12, 16, 20)[:8]))
    assert [r.tolist() for r in frames.fixations] == [[[0, 2, 3], [1, 4, 5]], [[7, 6, 7]]]


def test_video_folder_stride_step_time_unit_and_temporal_sigma(tmp_path) -> None:
    root = make_video_folder(tmp_path)
    with pytest.warns(UserWarning):
        strided = open_dataset("video-folder", root, clip_length=4, stride=2, step=3, sigma=2.0,
                               fps=10)
    # a: span 7, clips start at 0, 3, 6, 9, 12 (12 + 7 = 19 <= 20); b: starts 0, 3 (3 + 7 = 10).
    assert strided.image_ids == [f"a#{k:04d}" for k in range(5)] + ["b#0000", "b#0001"]
    clip = strided[2]  # a, video frames 6, 8, 10, 12; frame j stands for video 6 + 2j, +1
    assert clip.extras["frame_indices"] == [6, 8, 10, 12]
    assert [r.tolist() for r in clip.fixations] == [[], [[1, 20, 12], [2, 8, 8], [2, 8, 8]], []]
    assert clip.extras["fps"] == 5.0

    # Times as frame indices: the same rows for b, whose times were 0, 0.1, 0.75 s at 10 fps.
    (root / "fixations" / "b.csv").write_text("observer,t,x,y\nx,0,2,3\nx,1,4,5\ny,7.5,6,7\n")
    with pytest.warns(UserWarning):
        frames = open_dataset("video-folder", root, clip_length=8, sigma=2.0, time_unit="frame",
                              fps=10)
    assert [r.tolist() for r in frames[2].fixations] == [[[0, 2, 3], [1, 4, 5]], [[7, 6, 7]]]

    # A temporal sigma lets rows just outside a clip weigh on its edge frames, as in the video.
    with pytest.warns(UserWarning):
        smooth = open_dataset("video-folder", root, clip_length=8, sigma=2.0, fps=10,
                              temporal_sigma=1.0)
    rows_a = torch.tensor([[k, 3, 4] for k in range(3)] + [[k, 10, 5] for k in range(3, 6)]
                          + [[8, 20, 12], [10, 8, 8], [11, 8, 8]], dtype=torch.float64)
    whole = video_gfdm(rows_a, 16, 24, 32, 2.0, temporal_sigma=1.0, dtype=torch.float64)
    torch.testing.assert_close(smooth[1].gfdm, whole.maps[8:].float(), rtol=0, atol=1e-7)
    assert smooth.temporal_sigma == 1.0 and smooth.summary()["temporal_sigma"] == 1.0


def test_a_corrupt_frame_fails_on_reading_or_is_skipped_with_full_verification(tmp_path) -> None:
    from mlfem.datasets import SampleError

    root = make_video_folder(tmp_path)
    (root / "frames" / "b" / "000005.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.warns(UserWarning):
        header = open_dataset("video-folder", root, clip_length=8, sigma=2.0, fps=10)
    assert header.image_ids[-1] == "b#0000"
    with pytest.raises(SampleError, match="b#0000"):
        header[2]
    with pytest.warns(UserWarning):
        full = open_dataset("video-folder", root, clip_length=8, sigma=2.0, fps=10,
                            verify="full")
    assert full.image_ids == ["a#0000", "a#0001"]
    assert "000005.png" in {i.image_id: i.reason for i in full.skipped}["b"]
    torch.testing.assert_close(full[1].gfdm, header[1].gfdm)  # decoding every frame: same clips


def test_video_folder_splits_by_video_and_checks_its_arguments(tmp_path) -> None:
    root = make_video_folder(tmp_path)
    with pytest.warns(UserWarning):
        ds = open_dataset("video-folder", root, clip_length=4, sigma=2.0, fps=10,
                          splits=tmp_path / "splits.json", split_fractions=(0.5, 0.5, 0.0))
    by_video = {}
    for sample in ds:
        by_video.setdefault(sample.extras["video"], set()).add(sample.split)
    assert all(len(splits) == 1 for splits in by_video.values())  # clips follow their video
    # The splits file lists video ids, not clip ids.
    assert sorted(i for ids in ds.splits.assignments.values() for i in ids) == ["a", "b"]
    with pytest.raises(ValueError, match="sigma"):
        open_dataset("video-folder", root)
    with pytest.raises(ValueError, match="time_unit"):
        open_dataset("video-folder", root, sigma=1.0, time_unit="ms")
    with pytest.raises(FileNotFoundError, match="videos"):
        open_dataset("video-folder", tmp_path / "splits-dir-that-is-empty", sigma=1.0)
    # Folders of frames with times in seconds need a frame rate.
    with pytest.warns(UserWarning):
        no_rate = open_dataset("video-folder", root, clip_length=4, sigma=2.0)
    assert "fps=" in {i.image_id: i.reason for i in no_rate.skipped}["b"]


def test_video_datasets_batch_with_collate_and_pickle(tmp_path) -> None:
    import pickle

    from torch.utils.data import DataLoader

    from mlfem.datasets import collate

    syn = open_dataset("synthetic-video", n=3, seed=0, frames=4, size=32)
    batch = next(iter(DataLoader(syn, batch_size=3, collate_fn=collate)))
    assert [tuple(image.shape) for image in batch["image"]] == [(3, 4, 32, 32)] * 3
    assert torch.equal(torch.stack(batch["gfdm"])[1], syn[1].gfdm)
    with pytest.warns(UserWarning):
        folder = open_dataset("video-folder", make_video_folder(tmp_path), clip_length=4,
                              sigma=2.0, fps=10)
    again = pickle.loads(pickle.dumps(folder))  # paths and small arrays: worker processes work
    assert again.image_ids == folder.image_ids and torch.equal(again[3].image, folder[3].image)
