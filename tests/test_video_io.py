"""Reading videos, sampling clips, preprocessing them, and writing maps and overlays
(mlfem.video); videos are generated in the tests with PyAV."""

from __future__ import annotations

import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch
from _video_files import moving_square_frames, square_centre, write_video
from PIL import Image

from mlfem.video import (
    VideoPreprocessing,
    VideoReadError,
    blend_frames,
    count_clips,
    find_videos,
    iter_frames,
    probe_video,
    read_clips,
    sample_clips,
    save_layer_strip,
    save_maps,
    video_preprocessing_for,
    write_animation,
)
from mlfem.video.reader import require_av
from mlfem.visualize import colorize


def numbered_frames(count: int, consumed: list[int] | None = None):
    """Frames (1, 1, 3) whose pixels hold their index; ``consumed`` counts those taken."""
    for index in range(count):
        if consumed is not None:
            consumed[0] = index + 1
        yield np.full((1, 1, 3), index, dtype=np.uint8)


def clip_table(count: int, length: int, stride: int = 1, step: int | None = None):
    return [(c.frame_indices, c.valid) for c in sample_clips(numbered_frames(count), length, stride, step)]


# Clip sampling ---------------------------------------------------------------------------


def test_consecutive_clips_and_a_padded_last_clip() -> None:
    clips = list(sample_clips(numbered_frames(20), 16))
    assert [c.index for c in clips] == [0, 1]
    assert clips[0].frame_indices == tuple(range(16)) and clips[0].valid == 16 and clips[0].padded == 0
    assert clips[1].frame_indices == (16, 17, 18, 19) + (19,) * 12
    assert clips[1].valid == 4 and clips[1].padded == 12
    # The frames follow their indices: padding repeats the last real frame.
    assert clips[1].frames.shape == (16, 1, 1, 3)
    assert clips[1].frames[:, 0, 0, 0].tolist() == [16, 17, 18, 19] + [19] * 12


def test_stride_step_and_overlap() -> None:
    # Stride 2: a clip of 4 spans 7 frames; by default clips start every 4 x 2 = 8 frames.
    assert clip_table(20, 4, stride=2) == [
        ((0, 2, 4, 6), 4),
        ((8, 10, 12, 14), 4),
        ((16, 18, 18, 18), 2),
    ]
    # Overlapping clips (step 8 < 16): the second clip reaches the end, so no third one.
    assert clip_table(20, 16, step=8) == [(tuple(range(16)), 16), (tuple(range(8, 20)) + (19,) * 4, 12)]
    # A step longer than a clip leaves gaps; the end of the video is then not covered.
    assert clip_table(20, 4, step=10) == [((0, 1, 2, 3), 4), ((10, 11, 12, 13), 4)]
    # A video that ends exactly with a clip has no padded clip.
    assert clip_table(16, 8) == [(tuple(range(8)), 8), (tuple(range(8, 16)), 8)]


def test_short_and_empty_videos() -> None:
    assert clip_table(3, 16) == [((0, 1, 2) + (2,) * 13, 3)]
    assert clip_table(0, 16) == []


@pytest.mark.parametrize("count", [0, 1, 7, 16, 17, 31, 50])
@pytest.mark.parametrize(("length", "stride", "step"), [(16, 1, None), (4, 2, None), (8, 1, 3), (5, 3, 20), (1, 1, None)])
def test_count_clips_agrees_with_the_sampler(count: int, length: int, stride: int, step: int | None) -> None:
    clips = list(sample_clips(numbered_frames(count), length, stride, step))
    assert count_clips(count, length, stride, step) == len(clips)
    assert all(len(c.frame_indices) == length for c in clips)
    # Every real index is a frame of the video, sampled every `stride` frames within a clip.
    for clip in clips:
        real = clip.frame_indices[: clip.valid]
        assert all(0 <= i < count for i in real)
        assert all(b - a == stride for a, b in pairwise(real))


def test_sampling_streams_frames() -> None:
    """The first clip comes out after its span of frames is read, not after the whole video."""
    consumed = [0]
    clips = sample_clips(numbered_frames(1000, consumed), 8, stride=2)
    first = next(clips)
    assert first.frame_indices == (0, 2, 4, 6, 8, 10, 12, 14)
    assert consumed[0] == 15


@pytest.mark.parametrize(("arguments", "message"), [((0, 1, None), "clip_length"), ((4, 0, None), "stride"), ((4, 1, 0), "step")])
def test_bad_sampling_arguments(arguments, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        list(sample_clips(numbered_frames(5), *arguments))


# Reading video files -------------------------------------------------------------------------


@pytest.fixture
def square_video(tmp_path: Path) -> tuple[Path, np.ndarray]:
    frames = moving_square_frames(20, (48, 64))
    return write_video(tmp_path / "square.mp4", frames, fps=10), frames


def test_probe_and_decode_a_generated_video(square_video) -> None:
    path, written = square_video
    info = probe_video(path)
    assert (info.frames, info.frames_exact, info.fps, info.height, info.width) == (20, True, 10.0, 48, 64)
    frames = list(iter_frames(path))
    assert len(frames) == 20
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in frames)
    # Lossy, but the square is where it was written, in every frame.
    for decoded, original in zip(frames, written):
        assert np.allclose(square_centre(decoded), square_centre(original), atol=0.6)
    assert np.abs(frames[7].astype(int) - written[7]).mean() < 6


def test_read_clips_from_a_file(square_video) -> None:
    path, written = square_video
    clips = list(read_clips(path, 8, stride=2))
    assert [(c.frame_indices[: c.valid], c.valid) for c in clips] == [
        ((0, 2, 4, 6, 8, 10, 12, 14), 8),
        ((16, 18), 2),
    ]
    assert clips[0].frames.shape == (8, 48, 64, 3)
    assert np.allclose(square_centre(clips[0].frames[3]), square_centre(written[6]), atol=0.6)


def test_unreadable_files_are_named(tmp_path: Path, square_video) -> None:
    with pytest.raises(VideoReadError, match="nowhere.mp4: video file not found"):
        probe_video(tmp_path / "nowhere.mp4")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoReadError, match="garbage.mp4: not a readable video"):
        probe_video(garbage)
    with pytest.raises(VideoReadError, match="garbage.mp4"):
        list(iter_frames(garbage))
    # An MP4 cut in half loses its index (written at the end): it cannot be opened.
    path, _ = square_video
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(VideoReadError, match="truncated.mp4"):
        list(read_clips(truncated, 4))


def test_a_file_without_video_is_refused(tmp_path: Path) -> None:
    import av

    path = tmp_path / "sound.wav"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), dtype=np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(VideoReadError, match="sound.wav: the file holds no video stream"):
        probe_video(path)


def test_missing_pyav_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # makes `import av` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'mlfem\[video\]'"):
        require_av()


def test_find_videos(tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    (folder / "deep").mkdir(parents=True)
    for name in ("b.mp4", "a.webm", "deep/c.MKV", "notes.txt", "frame.png"):
        (folder / name).write_bytes(b"")
    assert find_videos([folder]) == [folder / "a.webm", folder / "b.mp4", folder / "deep" / "c.MKV"]
    assert find_videos([folder / "notes.txt"]) == []
    with pytest.raises(FileNotFoundError, match="input not found"):
        find_videos([tmp_path / "absent.mp4"])


def test_importing_mlfem_video_loads_neither_pyav_nor_torchvision() -> None:
    code = "import sys, mlfem.video; print(sorted(m for m in ('av', 'torchvision') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# Preprocessing -------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "size"), [("r3d_18", (48, 64)), ("r3d_18", (129, 173)), ("mvit_v2_s", (239, 321))])
def test_preprocessing_matches_torchvision_transforms(model: str, size: tuple[int, int]) -> None:
    import torchvision

    frames = np.random.default_rng(1).integers(0, 256, (3, *size, 3), dtype=np.uint8)
    clip, placement = video_preprocessing_for(model)(frames)
    reference = torchvision.models.get_model_weights(model).DEFAULT.transforms()(
        torch.from_numpy(frames).permute(0, 3, 1, 2)
    )
    assert clip.dtype == torch.float32 and clip.shape == reference.shape
    assert torch.allclose(clip, reference, atol=1e-6)
    assert placement.original == size


def test_preprocessing_defaults_for_other_models() -> None:
    preprocessing = video_preprocessing_for("tests.tiny:Factory")
    assert preprocessing == VideoPreprocessing()
    assert (preprocessing.crop_size, preprocessing.resize_size) == (112, (128, 171))
    assert preprocessing.mean == (0.43216, 0.394666, 0.37645)


@pytest.mark.parametrize("fit", ["crop", "whole"])
def test_maps_come_back_where_the_content_was(fit: str) -> None:
    """Round trip: the bright square of the model input, read as a map and mapped back, lies on
    the square of the original frames."""
    # Squares in the middle columns, which the centre crop keeps.
    frames = np.roll(moving_square_frames(4, (90, 120), square=30), 40, axis=2)
    preprocessing = VideoPreprocessing().with_fit(fit)
    clip, placement = preprocessing(frames)
    assert clip.shape == (3, 4, 112, 112)
    red = clip[0]
    as_map = (red - red.amin()) / (red.amax() - red.amin())
    back = placement.to_original(as_map).numpy()
    assert back.shape == (4, 90, 120)
    for t in range(4):
        truth = frames[t, ..., 0] > 140
        found = back[t] > 0.5
        assert (truth & found).sum() / (truth | found).sum() > 0.85
    if fit == "crop":
        # (128, 171) cropped to 112 columns: the frame's outer columns were not seen and get 0.
        assert back[:, :, :5].max() == 0.0 and back[:, :, -5:].max() == 0.0


def test_preprocessing_refuses_other_arrays() -> None:
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\) uint8"):
        VideoPreprocessing()(np.zeros((4, 8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="video fit must be one of"):
        VideoPreprocessing().with_fit("none")


# Writing ---------------------------------------------------------------------------------


def decoded_frames(path: Path) -> list[np.ndarray]:
    return list(iter_frames(path))


@pytest.mark.parametrize("video_format", ["mp4", "gif", "webp"])
def test_write_animation_round_trip(tmp_path: Path, video_format: str) -> None:
    frames = moving_square_frames(9, (48, 64))
    path = tmp_path / f"overlay.{video_format}"
    write_animation(path, frames, fps=12.5, video_format=video_format)
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary file left
    if video_format == "mp4":
        decoded = decoded_frames(path)
        info = probe_video(path)
        assert info.fps == 12.5
    else:
        with Image.open(path) as animation:
            assert animation.n_frames == 9
            decoded = []
            for index in range(animation.n_frames):
                animation.seek(index)
                decoded.append(np.asarray(animation.convert("RGB")))
            assert animation.info["duration"] == 80
    assert len(decoded) == 9 and decoded[0].shape == (48, 64, 3)
    for got, written in zip(decoded, frames):
        assert np.allclose(square_centre(got), square_centre(written), atol=0.6)


def test_odd_frame_sizes_are_padded_for_mp4(tmp_path: Path) -> None:
    frames = moving_square_frames(3, (47, 63))
    write_animation(tmp_path / "odd.mp4", frames, fps=10)
    decoded = decoded_frames(tmp_path / "odd.mp4")
    assert len(decoded) == 3 and decoded[0].shape == (48, 64, 3)


def test_write_animation_refuses_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="video format"):
        write_animation(tmp_path / "x.avi", moving_square_frames(2), fps=10, video_format="avi")
    with pytest.raises(ValueError, match="non-empty"):
        write_animation(tmp_path / "x.mp4", np.zeros((0, 8, 8, 3), dtype=np.uint8), fps=10)
    assert list(tmp_path.iterdir()) == []


def test_blend_frames_is_the_image_overlay_per_frame() -> None:
    frames = np.zeros((2, 4, 5, 3), dtype=np.uint8)
    frames[1] = 200
    maps = np.zeros((2, 4, 5), dtype=np.float32)
    maps[0, 1, 2] = 1.0
    blended = blend_frames(frames, maps)
    heat = colorize(maps).astype(np.float32)
    assert blended.dtype == np.uint8 and blended.shape == (2, 4, 5, 3)
    assert np.array_equal(blended, (0.5 * frames + 0.5 * heat).round().astype(np.uint8))
    assert blended[0, 1, 2].tolist() == [64, 0, 0]  # jet(1) = dark red, half over black
    with pytest.raises(ValueError, match="do not match"):
        blend_frames(frames, maps[:, :3])


def test_save_maps_and_layer_strip(tmp_path: Path) -> None:
    maps = np.random.default_rng(2).random((3, 6, 7))
    save_maps(tmp_path / "m.npy", maps)
    loaded = np.load(tmp_path / "m.npy")
    assert loaded.dtype == np.float32 and np.allclose(loaded, maps)
    frame = moving_square_frames(1, (48, 64))[0]
    layers = np.random.default_rng(3).random((3, 48, 64)).astype(np.float32)
    save_layer_strip(tmp_path / "s.png", frame, layers, ["a", "b", "c"], layers.mean(0), title="t")
    with Image.open(tmp_path / "s.png") as strip:
        assert strip.format == "PNG" and strip.width > 300
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npy", "s.png"]
