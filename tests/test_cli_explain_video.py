"""``mlfem explain`` on video files, end to end, on videos generated in the test."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _video_files import moving_square_frames, write_video
from PIL import Image
from tiny_models import TinyCNN3D

from mlfem import MLFEM
from mlfem.cli import main
from mlfem.cli.explain_video import VIDEO_METHODS
from mlfem.video import VideoPreprocessing, iter_frames, read_clips

TINY = "tiny_models:TinyCNN3D"


@pytest.fixture
def clip_file(tmp_path: Path) -> Path:
    return write_video(tmp_path / "clip.mp4", moving_square_frames(12, (48, 64)), fps=10)


@pytest.fixture
def tiny_weights(tmp_path: Path) -> Path:
    """A TinyCNN3D state_dict, so that the test can rebuild the CLI's model."""
    from safetensors.torch import save_file

    torch.manual_seed(3)
    path = tmp_path / "tiny3d.safetensors"
    save_file(TinyCNN3D().state_dict(), str(path))
    return path


def check_maps(path: Path, frames: int, height: int = 48, width: int = 64) -> np.ndarray:
    maps = np.load(path)
    assert maps.dtype == np.float32 and maps.shape == (frames, height, width)
    assert np.isfinite(maps).all() and maps.min() >= 0.0 and maps.max() <= 1.0
    assert maps.max() > 0.5  # a clip map is normalised over the clip: its peak is near 1
    return maps


def summary_of(out: Path, stem: str = "clip") -> dict:
    return json.loads((out / f"{stem}_summary.json").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_explain_a_video_with_r3d_18(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    video = write_video(tmp_path / "clip.mp4", moving_square_frames(6, (48, 64)), fps=10)
    out = tmp_path / "out"
    code = main(["explain", str(video), "--model", "r3d_18", "--clip-length", "4", "--out", str(out),
                 "--device", "cpu"])
    assert code == 0
    first = check_maps(out / "clip_clip000.npy", 4)
    check_maps(out / "clip_clip001.npy", 2)  # 6 frames: the second clip has 2 real frames
    # (48, 64) frames resized to (128, 171) and centre-cropped to 112: the outer columns
    # were not seen by the model, and their maps are 0.
    assert first[:, :, :4].max() == 0.0 and first[:, :, -4:].max() == 0.0
    for name, frames in (("clip_clip000_overlay.mp4", 4), ("clip_clip001_overlay.mp4", 2)):
        decoded = list(iter_frames(out / name))
        assert len(decoded) == frames and decoded[0].shape == (48, 64, 3)
    with Image.open(out / "clip_clip000_layers.png") as strip:
        assert strip.format == "PNG"
    summary = summary_of(out)
    assert (summary["frames"], summary["fps"], summary["clips"]) == (6, 10.0, 2)
    assert (summary["clip_length"], summary["clip_stride"], summary["clip_step"]) == (4, 1, 4)
    assert summary["model"].startswith("torchvision r3d_18") and summary["method"] == "mlfem"
    assert summary["layers"] == [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)]
    assert summary["preprocessing"]["resize_size"] == [128, 171]
    records = summary["clip_records"]
    assert [r["frame_indices"] for r in records] == [[0, 1, 2, 3], [4, 5]]
    assert [r["padded_frames"] for r in records] == [0, 2]
    assert records[0]["layers"] == "clip_clip000_layers.png" and records[0]["layers_frame"] == 2
    assert "random weights" in capsys.readouterr().err


def test_cli_maps_are_the_python_api_maps(tmp_path: Path, clip_file: Path, tiny_weights: Path) -> None:
    """The saved maps are MLFEM's clip maps of the preprocessed frames, mapped back onto the
    frames; with --per-frame-stats, those of MLFEM(per_frame=True)."""
    from safetensors.torch import load_file

    model = TinyCNN3D()
    model.load_state_dict(load_file(str(tiny_weights)))
    model.eval()
    clips = list(read_clips(clip_file, 6))
    preprocessing = VideoPreprocessing()
    for per_frame in (False, True):
        out = tmp_path / f"out{per_frame}"
        arguments = ["explain", str(clip_file), "--model", TINY, "--weights", str(tiny_weights),
                     "--clip-length", "6", "--out", str(out), "--device", "cpu"]
        assert main(arguments + (["--per-frame-stats"] if per_frame else [])) == 0
        assert summary_of(out)["per_frame_stats"] is per_frame
        for clip in clips:
            tensor, placement = preprocessing(clip.frames)
            with MLFEM(model, per_frame=per_frame) as explainer:
                expected = placement.to_original(explainer(tensor[None])[0]).numpy()
            saved = check_maps(out / f"clip_clip{clip.index:03d}.npy", 6)
            np.testing.assert_allclose(saved, expected, atol=1e-5)
    clip_stats = np.load(tmp_path / "outFalse" / "clip_clip000.npy")
    frame_stats = np.load(tmp_path / "outTrue" / "clip_clip000.npy")
    assert not np.allclose(clip_stats, frame_stats, atol=1e-3)


def test_gif_overlays_with_a_stride(tmp_path: Path, clip_file: Path) -> None:
    out = tmp_path / "out"
    code = main(["explain", str(clip_file), "--model", TINY, "--clip-length", "4", "--clip-stride", "2",
                 "--video-format", "gif", "--fit", "whole", "--batch-size", "1", "--out", str(out)])
    assert code == 0
    summary = summary_of(out)
    # Every 2nd frame, 4 per clip: frames 0-6 and 8-10 (+1 padded); the overlay runs at 10/2 fps.
    assert [r["frame_indices"] for r in summary["clip_records"]] == [[0, 2, 4, 6], [8, 10]]
    assert summary["overlay_fps"] == 5.0 and summary["preprocessing"]["fit"] == "whole"
    maps = check_maps(out / "clip_clip001.npy", 2)
    assert maps[:, :, :4].max() > 0.0 or maps[:, :, -4:].max() > 0.0  # whole frame seen
    with Image.open(out / "clip_clip000_overlay.gif") as animation:
        assert animation.n_frames == 4 and animation.size == (64, 48)
        assert animation.info["duration"] == 200
    assert not list(out.glob("*.tmp*"))


def test_fem_writes_no_layer_strip(tmp_path: Path, clip_file: Path) -> None:
    out = tmp_path / "out"
    assert main(["explain", str(clip_file), "--model", TINY, "--method", "fem", "--clip-length", "12",
                 "--out", str(out)]) == 0
    check_maps(out / "clip_clip000.npy", 12)
    assert not (out / "clip_clip000_layers.png").exists()
    assert summary_of(out)["clip_records"][0]["layers"] is None


def test_a_bad_video_in_a_folder_is_reported_and_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    write_video(folder / "good.mp4", moving_square_frames(5, (32, 48)), fps=5)
    (folder / "broken.avi").write_bytes(b"this is not a video")
    out = tmp_path / "out"
    code = main(["explain", str(folder), "--model", TINY, "--clip-length", "5", "--out", str(out)])
    assert code == 1
    check_maps(out / "good_clip000.npy", 5, 32, 48)
    assert (out / "good_summary.json").is_file() and not (out / "broken_summary.json").exists()
    err = capsys.readouterr().err
    assert "wrote maps for 1 of 2 video(s)" in err
    assert "broken.avi: not a readable video" in err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--model", TINY, "--clip-length", "0"], "--clip-length must be at least 1"),
        (["--model", TINY, "--clip-step", "-2"], "--clip-step must be at least 1"),
        (["--model", TINY, "--strip-frame", "16"], "--strip-frame must lie in 0..15"),
        (["--model", TINY, "--fit", "none"], "--fit none applies to images only"),
        (["--model", TINY, "--method", "lime"], "--method lime does not explain videos"),
        (["--model", TINY, "--method", "nope"], "unknown method 'nope'"),
        (["--model", TINY, "--fusion", "net:bundled"], "a trained NET fuses image maps"),
        ([], "videos need a video model"),
        (["--model", "tiny_models:TinyCNN"], "cannot explain clips: images have shape"),  # a 2-D CNN
    ],
)
def test_bad_arguments_exit_2(
    tmp_path: Path, clip_file: Path, capsys: pytest.CaptureFixture, arguments: list[str], message: str
) -> None:
    out = tmp_path / "out"
    assert main(["explain", str(clip_file), "--out", str(out), *arguments]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() or not list(out.glob("*.npy"))


def test_a_video_that_breaks_midway_keeps_its_clips_and_says_so(
    tmp_path: Path, clip_file: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlfem.video import reader

    decode = reader.iter_frames

    def breaking(path):
        for index, frame in enumerate(decode(path)):
            if index == 9:
                raise reader.VideoReadError(f"{path}: decoding failed at frame 9 (corrupt packet)")
            yield frame

    monkeypatch.setattr(reader, "iter_frames", breaking)
    out = tmp_path / "out"
    code = main(["explain", str(clip_file), "--model", TINY, "--clip-length", "4", "--batch-size", "1",
                 "--out", str(out)])
    assert code == 1
    err = capsys.readouterr().err
    assert "clip.mp4: decoding failed at frame 9 (corrupt packet) (2 clip(s) written before the error)" in err
    assert sorted(p.name for p in out.glob("*.npy")) == ["clip_clip000.npy", "clip_clip001.npy"]
    summary = summary_of(out)
    assert summary["clips"] == 2 and summary["frames"] == 9 and "frame 9" in summary["error"]
    assert [r["maps"] for r in summary["clip_records"]] == ["clip_clip000.npy", "clip_clip001.npy"]


def test_images_and_videos_do_not_mix(tmp_path: Path, clip_file: Path, capsys: pytest.CaptureFixture) -> None:
    image = tmp_path / "frame.png"
    Image.fromarray(moving_square_frames(1)[0]).save(image)
    assert main(["explain", str(clip_file), str(image), "--model", TINY, "--out", str(tmp_path / "o")]) == 2
    assert "mix 1 video(s) and 1 image(s)" in capsys.readouterr().err
    # Video options on images are refused rather than ignored.
    assert main(["explain", str(image), "--clip-length", "4", "--out", str(tmp_path / "o")]) == 2
    assert "--clip-length apply to video inputs only" in capsys.readouterr().err


def test_missing_pyav_is_a_clear_error(
    tmp_path: Path, clip_file: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "av", None)
    assert main(["explain", str(clip_file), "--model", TINY, "--out", str(tmp_path / "o")]) == 2
    assert "pip install 'mlfem[video]'" in capsys.readouterr().err


@pytest.mark.parametrize("method", sorted(VIDEO_METHODS))
def test_every_video_method_explains_clips(method: str) -> None:
    """The allow-list holds: each method gives one map per frame of a clip, in [0, 1]."""
    from mlfem.explainers.registry import create_explainer

    clips = torch.randn(2, 3, 4, 16, 16)
    with create_explainer(method, TinyCNN3D().eval()) as explainer:
        maps = explainer.explain_layers(clips).maps
    assert maps.shape == (2, 4, 16, 16)
    assert maps.min() >= 0.0 and maps.max() <= 1.0 and torch.isfinite(maps).all()
