"""Writing video explanations: map arrays, heat-map overlay animations, per-layer strips.

Every file is written to a temporary name beside its target and renamed when complete
(:func:`mlfem._atomic.replacing`), so an interrupted run never leaves a half-written output
under the final name. The temporary names keep the target's extension, because the writers
(NumPy, PyAV, PIL, matplotlib) choose the format from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mlfem._atomic import replacing
from mlfem.video.reader import frame_rate, require_av

__all__ = [
    "VIDEO_FORMATS",
    "blend_frames",
    "save_layer_strip",
    "save_maps",
    "write_animation",
]

#: Formats of the overlay animation: MP4 (H.264, or MPEG-4 part 2 where FFmpeg has no
#: libx264), animated GIF and animated WebP.
VIDEO_FORMATS: tuple[str, ...] = ("mp4", "gif", "webp")
# Encoders tried in turn for MP4; the first FFmpeg knows is used.
_MP4_CODECS = ("libx264", "h264", "mpeg4")


def _temporary(path: Path) -> str:
    """Suffix of the temporary file: ``.tmp`` before the extension (``x.mp4`` -> ``x.mp4.tmp.mp4``)."""
    return ".tmp" + path.suffix


def save_maps(path: str | Path, maps: np.ndarray) -> None:
    """Save (T, H, W) maps as a float32 ``.npy`` file, atomically."""
    path = Path(path)
    with replacing(path, _temporary(path)) as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.asarray(maps, dtype=np.float32))


def blend_frames(
    frames: np.ndarray, maps: np.ndarray, alpha: float = 0.5, cmap: str = "jet"
) -> np.ndarray:
    """Heat maps of ``maps`` (T, H, W) in [0, 1] blended over ``frames`` (T, H, W, 3) uint8:
    (T, H, W, 3) uint8, each frame as :func:`mlfem.visualize.overlay` draws an image."""
    from mlfem.visualize import colorize

    if maps.shape != frames.shape[:3]:
        raise ValueError(f"maps of shape {maps.shape} do not match frames of shape {frames.shape}")
    heat = colorize(maps, cmap).astype(np.float32)
    blended = (1 - alpha) * frames.astype(np.float32) + alpha * heat
    return blended.round().astype(np.uint8)


def write_animation(path: str | Path, frames: np.ndarray, fps: float, video_format: str = "mp4") -> None:
    """Write (T, H, W, 3) uint8 frames as an MP4, animated GIF or animated WebP at ``fps``."""
    path = Path(path)
    if video_format not in VIDEO_FORMATS:
        raise ValueError(f"video format must be one of {', '.join(VIDEO_FORMATS)}, got {video_format!r}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be a non-empty (T, H, W, 3) uint8 array, got {frames.dtype} {frames.shape}")
    with replacing(path, _temporary(path)) as tmp:
        if video_format == "mp4":
            _write_mp4(tmp, frames, fps)
        else:
            _write_pil_animation(tmp, frames, fps, video_format)


def _write_mp4(path: Path, frames: np.ndarray, fps: float) -> None:
    av = require_av()
    # 4:2:0 chroma needs even sizes: an odd last row or column is repeated.
    height, width = frames.shape[1:3]
    pad = ((0, 0), (0, height % 2), (0, width % 2), (0, 0))
    if any(p[1] for p in pad):
        frames = np.pad(frames, pad, mode="edge")
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = None
        for codec in _MP4_CODECS:
            try:
                stream = container.add_stream(codec, rate=frame_rate(fps))
                break
            except (av.error.FFmpegError, ValueError):  # UnknownCodecError is a ValueError
                continue
        if stream is None:
            raise RuntimeError(f"FFmpeg (as built into PyAV) has none of the MP4 encoders {', '.join(_MP4_CODECS)}")
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        for array in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))  # flush the encoder's delayed frames


def _write_pil_animation(path: Path, frames: np.ndarray, fps: float, video_format: str) -> None:
    from PIL import Image

    images = [Image.fromarray(array) for array in frames]
    # Milliseconds per frame; GIF stores hundredths of a second.
    duration = round(1000 / fps) if fps and fps > 0 else 40
    options = {"lossless": False, "quality": 80} if video_format == "webp" else {"optimize": False}
    images[0].save(
        path,
        format=video_format.upper(),
        save_all=True,
        append_images=images[1:],
        duration=duration,
        loop=0,
        **options,
    )


def save_layer_strip(
    path: str | Path,
    frame: np.ndarray,
    layer_maps: np.ndarray,
    layer_names: Sequence[str],
    fused: np.ndarray,
    title: str,
    max_width: int = 256,
) -> None:
    """Save the paper's Fig. 1 grid for one video frame: the frame (H, W, 3), each layer's map
    (L, H, W) and the fused map (H, W), shown at most ``max_width`` pixels wide."""
    import torch
    from PIL import Image

    from mlfem.normalize import resize_maps
    from mlfem.visualize import save_layer_grid

    path = Path(path)
    height, width = frame.shape[:2]
    scale = min(1.0, max_width / width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    image = Image.fromarray(frame).resize((size[1], size[0]))
    shown_layers = resize_maps(torch.from_numpy(np.ascontiguousarray(layer_maps, dtype=np.float32)), size)
    shown_fused = resize_maps(torch.from_numpy(np.ascontiguousarray(fused, dtype=np.float32)), size)
    with replacing(path, _temporary(path)) as tmp:
        save_layer_grid(tmp, shown_layers.numpy(), layer_names, image=image, fused=shown_fused.numpy(), title=title)
