"""Reading videos with PyAV: what a file holds, its frames, and clips sampled from them.

Nothing here holds a whole video: :func:`iter_frames` decodes one frame at a time, and
:func:`sample_clips` keeps only the frames the next clip needs (at most one clip's span), so a
long video costs the memory of one clip however long it is.

A clip is ``clip_length`` frames taken every ``stride`` frames (it spans
``(clip_length - 1) * stride + 1`` frames of the video); successive clips start ``step`` frames
apart (by default ``clip_length * stride``: clips follow one another without overlap or gap).
When the video ends inside a clip that would cover frames no earlier clip covered, that last clip
is padded by repeating its last real frame, and says so (:attr:`Clip.valid`).

PyAV (``pip install 'mlfem[video]'``) is imported only when a video is opened.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from mlfem.images import find_files

__all__ = [
    "VIDEO_SUFFIXES",
    "Clip",
    "VideoInfo",
    "VideoReadError",
    "clip_span",
    "count_clips",
    "find_videos",
    "frame_rate",
    "iter_frames",
    "probe_video",
    "read_clips",
    "require_av",
    "sample_clips",
]

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm"})
INSTALL_HINT = "pip install 'mlfem[video]'"


class VideoReadError(ValueError):
    """A file that should be a video could not be opened or decoded; the message names it."""


def require_av() -> Any:
    """The ``av`` module (PyAV), or an :class:`ImportError` saying how to install it."""
    try:
        import av
    except ImportError as error:
        raise ImportError(
            f"reading and writing videos needs PyAV, which is not installed: {INSTALL_HINT}"
        ) from error
    return av


@dataclass(frozen=True)
class VideoInfo:
    """What a video file says about itself before it is decoded."""

    path: Path
    #: Frames in the stream as the container reports them; when it does not, an estimate from
    #: the duration and the frame rate (``frames_exact`` False), or 0 when neither is known.
    frames: int
    frames_exact: bool
    #: Average frame rate (frames per second); 0.0 when the file does not say.
    fps: float
    height: int
    width: int
    codec: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "frames_reported": self.frames,
            "frames_exact": self.frames_exact,
            "fps": self.fps,
            "height": self.height,
            "width": self.width,
            "codec": self.codec,
        }


@dataclass(frozen=True)
class Clip:
    """Frames sampled from a video, ready for preprocessing."""

    #: Position of the clip in the video's sequence of clips (0, 1, ...).
    index: int
    #: (T, H, W, 3) uint8 RGB frames; padded frames repeat the last real one.
    frames: np.ndarray
    #: The video frame index of each of the T frames (padded frames repeat the last real index).
    frame_indices: tuple[int, ...]
    #: How many of the T frames are real (the first ``valid``); the others are padding.
    valid: int

    @property
    def padded(self) -> int:
        """Frames added at the end by repeating the last real frame."""
        return len(self.frame_indices) - self.valid


def find_videos(paths: Iterable[str | Path]) -> list[Path]:
    """Video files among ``paths``: files with a video suffix, and the video files (recursively,
    sorted) inside folders. Paths that do not exist raise :class:`FileNotFoundError`."""
    return find_files(paths, VIDEO_SUFFIXES, keep_named_files=False)


def _open(path: Path) -> Any:
    """Open ``path`` with PyAV; its first video stream is ``container.streams.video[0]``."""
    av = require_av()
    if not path.is_file():
        raise VideoReadError(f"{path}: video file not found")
    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise VideoReadError(f"{path}: not a readable video ({error})") from error
    if not container.streams.video:
        container.close()
        raise VideoReadError(f"{path}: the file holds no video stream")
    return container


def probe_video(path: str | Path) -> VideoInfo:
    """Frame count, frame rate, frame size and codec of ``path``'s first video stream, read from
    the container (no frame is decoded). Raises :class:`VideoReadError` naming the file."""
    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        frames, exact = int(stream.frames or 0), True
        if frames <= 0:
            # Some containers (webm, some avi) do not count frames: estimate from the duration.
            exact = False
            seconds = 0.0
            if stream.duration is not None and stream.time_base is not None:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                seconds = container.duration / 1_000_000  # microseconds
            frames = max(0, round(seconds * fps))
        context = stream.codec_context
        return VideoInfo(path, frames, exact, fps, int(context.height), int(context.width), stream.codec_context.name)
    finally:
        container.close()


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Decode ``path``'s first video stream one frame at a time as (H, W, 3) uint8 RGB arrays,
    all at the size of the first frame. Raises :class:`VideoReadError` naming the file (and the
    frame) when the file cannot be opened or decoding fails."""
    av = require_av()
    path = Path(path)
    container = _open(path)
    index = 0
    size: tuple[int, int] | None = None
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame-parallel decoding; order and content unchanged
        try:
            for frame in container.decode(stream):
                if size is None:
                    size = (frame.width, frame.height)
                # A stream whose size changes midway is scaled to its first size, so that
                # every clip stacks into one array.
                array = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
                yield array
                index += 1
        except (av.error.FFmpegError, ValueError) as error:
            raise VideoReadError(f"{path}: decoding failed at frame {index} ({error})") from error
    finally:
        container.close()
    if index == 0:
        raise VideoReadError(f"{path}: no frame could be decoded")


def clip_span(clip_length: int, stride: int = 1) -> int:
    """Frames of the video a clip covers, from its first sampled frame to its last."""
    return (clip_length - 1) * stride + 1


def _check_sampling(clip_length: int, stride: int, step: int | None) -> int:
    for name, value in (("clip_length", clip_length), ("stride", stride)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if step is None:
        return clip_length * stride
    if not isinstance(step, int) or step < 1:
        raise ValueError(f"step must be a positive integer, got {step!r}")
    return step


def count_clips(frames: int, clip_length: int, stride: int = 1, step: int | None = None) -> int:
    """How many clips :func:`sample_clips` yields from a video of ``frames`` frames."""
    step = _check_sampling(clip_length, stride, step)
    if frames <= 0:
        return 0
    span = clip_span(clip_length, stride)
    full = 0 if frames < span else (frames - span) // step + 1
    last_end = (full - 1) * step + span - 1 if full else -1
    next_start = full * step
    # The padded last clip, when the end of the video is left uncovered.
    return full + int(next_start < frames and last_end < frames - 1)


def sample_clips(
    frames: Iterable[np.ndarray], clip_length: int, stride: int = 1, step: int | None = None
) -> Iterator[Clip]:
    """Clips of ``clip_length`` frames, taken every ``stride`` frames, starting every ``step``
    frames (default ``clip_length * stride``), from an iterable of (H, W, 3) frames.

    Holds at most one clip span of frames. The last clip, when the video ends inside it and it
    covers frames that no earlier clip did, is padded with copies of its last real frame.
    """
    step = _check_sampling(clip_length, stride, step)
    span = clip_span(clip_length, stride)
    window: deque[tuple[int, np.ndarray]] = deque(maxlen=span)
    next_start, last_end, number, count = 0, -1, 0, 0
    for index, frame in enumerate(frames):
        window.append((index, frame))
        count = index + 1
        if index == next_start + span - 1:
            # The window holds exactly frames next_start .. index.
            picked = [window[offset] for offset in range(0, span, stride)]
            yield _make_clip(number, picked, clip_length)
            number += 1
            last_end = index
            next_start += step
    if count and next_start < count and last_end < count - 1:
        picked = [(i, f) for i, f in window if i >= next_start and (i - next_start) % stride == 0]
        yield _make_clip(number, picked, clip_length)


def _make_clip(number: int, picked: list[tuple[int, np.ndarray]], clip_length: int) -> Clip:
    valid = len(picked)
    picked = picked + [picked[-1]] * (clip_length - valid)
    indices = tuple(i for i, _ in picked)
    return Clip(number, np.stack([f for _, f in picked]), indices, valid)


def read_clips(
    path: str | Path, clip_length: int, stride: int = 1, step: int | None = None
) -> Iterator[Clip]:
    """:func:`sample_clips` over the frames of the video file ``path``, decoded as needed."""
    _check_sampling(clip_length, stride, step)
    return sample_clips(iter_frames(path), clip_length, stride, step)


def frame_rate(fps: float) -> Fraction:
    """``fps`` as the fraction a video encoder takes (29.97 -> 30000/1001); 25 when unknown."""
    if not fps or fps <= 0:
        return Fraction(25)
    return Fraction(fps).limit_denominator(1001)
