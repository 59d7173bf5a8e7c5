"""Frames of the ``video-folder`` dataset: a video file, read with :mod:`mlfem.video`'s PyAV
reader, or a folder of images: the frame count and rate at indexing, the frames of one clip at
``__getitem__``. PyAV is imported only when a video file is opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _io

__all__ = ["FRAME_SUFFIXES", "VIDEO_SUFFIXES", "FrameSource", "probe_source", "read_frames"]

#: The suffixes :mod:`mlfem.video` reads (kept here so that listing a folder imports no PyAV).
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
    from mlfem.video.reader import iter_frames, probe_video

    info = probe_video(path)  # VideoReadError is a ValueError naming the file
    n_frames = info.frames
    if count or not info.frames_exact or n_frames <= 0:  # an estimate is not good enough
        n_frames = sum(1 for _ in iter_frames(path))
    fps = info.fps if info.fps > 0 else None
    height, width = info.height, info.width
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
    from mlfem.video.reader import iter_frames

    wanted = {index: k for k, index in enumerate(indices)}
    last, found = max(indices), 0
    frames = iter_frames(source.path)
    try:
        for index, frame in enumerate(frames):
            if index > last:
                break
            if index in wanted:
                if frame.shape[:2] != (source.height, source.width):
                    raise ValueError(f"frame {index} is {frame.shape[1]}x{frame.shape[0]}, the "
                                     f"header says {source.width}x{source.height}")
                out[wanted[index]] = frame
                found += 1
    finally:
        frames.close()  # closes the container now, not when the generator is collected
    if found != len(indices):
        raise ValueError(f"the video ended after fewer frames than the {source.n_frames} "
                         f"its header announced")
    return out
