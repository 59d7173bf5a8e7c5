"""Frames of the ``video-folder`` dataset: a video file read with PyAV, or a folder of images.

A minimal reader of its own (the frame count and rate at indexing, the frames of one clip at
``__getitem__``), kept small so that it can give way to :mod:`mlfem.video`'s reader. PyAV is
imported only when a video file is opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import _io

__all__ = ["FRAME_SUFFIXES", "VIDEO_SUFFIXES", "FrameSource", "probe_source", "read_frames"]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class FrameSource:
    """Where a video's frames come from and what is known of them before decoding."""

    path: Path  # the video file, or the folder of frames
    n_frames: int
    fps: float | None  # None: not known (a folder of frames)
    height: int
    width: int
    frame_files: tuple[Path, ...] = ()  # a folder's frames, in order

    @property
    def is_file(self) -> bool:
        return not self.frame_files


def _av() -> Any:
    try:
        import av
    except ImportError as error:  # pragma: no cover - av is a dependency of the dev group
        raise ImportError("reading video files needs PyAV: pip install 'mlfem[video]'") from error
    return av


def _open(path: Path) -> Any:
    av = _av()
    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError, ValueError) as error:
        raise ValueError(f"not a readable video ({error})") from None
    if not container.streams.video:
        container.close()
        raise ValueError("the file holds no video stream")
    return container


def _decode(container: Any, last: int) -> Any:
    """Decoded frames of the first video stream, in order, up to index ``last``."""
    av = _av()
    stream = container.streams.video[0]
    try:
        for index, frame in enumerate(container.decode(stream)):
            if index > last:
                return
            yield index, frame
    except (av.error.FFmpegError, ValueError) as error:
        raise ValueError(f"decoding failed ({error})") from None


def probe_source(path: Path, *, count: bool = False) -> FrameSource:
    """The frame count, rate and size of a video file or a folder of frames.

    For a file, the container's frame count is used when it gives one; otherwise (or with
    ``count=True``, which also proves every frame decodes) the frames are decoded and counted.
    For a folder, ``count=True`` checks every frame file's header and size.
    Raises ``ValueError`` saying what is wrong (the caller names the file).
    """
    if path.is_dir():
        files = tuple(sorted(p for p in path.iterdir()
                             if p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith(".")))
        if not files:
            raise ValueError(f"no frames ({', '.join(FRAME_SUFFIXES)}) in the folder")
        height, width = _io.check_image(files[0])
        for frame in files[1:] if count else ():  # count=True: check every frame's file
            try:
                if _io.check_image(frame) != (height, width):
                    raise ValueError(f"its size differs from the first frame's {width}x{height}")
            except (OSError, ValueError) as error:
                raise ValueError(f"frame {frame.name}: {error}") from None
        return FrameSource(path, len(files), None, height, width, files)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        height, width = int(stream.codec_context.height), int(stream.codec_context.width)
        n_frames = int(stream.frames or 0)
        if count or n_frames <= 0:
            n_frames = sum(1 for _ in _decode(container, last=1 << 62))
    finally:
        container.close()
    if n_frames <= 0:
        raise ValueError("no frame could be decoded")
    return FrameSource(path, n_frames, fps, height, width)


def read_frames(source: FrameSource, indices: list[int]) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 RGB frames at ``indices`` (increasing), at the source's size.

    A video file is decoded from its start up to the last index (no seeking: exact frame
    indices whatever the container's timestamps; a clip late in a long video costs the decoding
    of the frames before it). Raises ``ValueError`` saying what is wrong.
    """
    out = np.empty((len(indices), source.height, source.width, 3), np.uint8)
    if not source.is_file:
        for k, index in enumerate(indices):
            image = _io.read_image(source.frame_files[index])
            if tuple(image.shape[1:]) != (source.height, source.width):
                raise ValueError(f"frame {source.frame_files[index].name} is "
                                 f"{image.shape[2]}x{image.shape[1]}, the first frame "
                                 f"{source.width}x{source.height}")
            out[k] = image.permute(1, 2, 0).numpy()
        return out
    wanted = {index: k for k, index in enumerate(indices)}
    found = 0
    container = _open(source.path)
    try:
        for index, frame in _decode(container, last=max(indices)):
            if index in wanted:
                out[wanted[index]] = frame.to_ndarray(format="rgb24", width=source.width,
                                                      height=source.height)
                found += 1
    finally:
        container.close()
    if found != len(indices):
        raise ValueError(f"the video ended after fewer frames than the {source.n_frames} "
                         f"its header announced")
    return out
