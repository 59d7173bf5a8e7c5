"""Tiny videos written in the tests with PyAV directly (independent of mlfem's own writer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def moving_square_frames(frames: int = 20, size: tuple[int, int] = (48, 64), square: int = 12) -> np.ndarray:
    """(T, H, W, 3) uint8: a yellow square on a dark grey background moving 2 px right per frame."""
    height, width = size
    video = np.full((frames, height, width, 3), 30, dtype=np.uint8)
    top = (height - square) // 2
    for t in range(frames):
        left = min(2 + 2 * t, width - square)
        video[t, top : top + square, left : left + square] = (250, 220, 20)
    return video


def square_centre(frame: np.ndarray) -> tuple[float, float]:
    """(row, column) centre of the bright pixels of an (H, W, 3) frame."""
    rows, columns = np.nonzero(frame[..., 0] > 140)
    return float(rows.mean()), float(columns.mean())


def write_video(path: Path, video: np.ndarray, fps: int = 10, codec: str = "mpeg4") -> Path:
    """Encode (T, H, W, 3) uint8 frames with PyAV (even H and W, for 4:2:0 chroma)."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = video.shape[2], video.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec == "mpeg4":
            stream.bit_rate = 2_000_000  # near-lossless at this size: decoded frames stay close
        for array in video:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode(None))
    return path
